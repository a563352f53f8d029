"""The nearest-neighbour index: exact for small desks, FAISS IVF beyond, both saved and loaded the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.kb import ann


def _unit(rows: list[list[float]]) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float32)
    out: np.ndarray = m / np.linalg.norm(m, axis=1, keepdims=True)
    return out


def test_exact_index_returns_the_callers_ids_best_first_and_pads_missing_neighbours(tmp_path: Path) -> None:
    vectors = _unit([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1]])
    index = ann.VectorIndex.build(np.array([11, 12, 13, 14]), vectors)
    assert (index.kind, len(index)) == ("exact", 4)
    ids, scores = index.search(_unit([[1, 0.05, 0]]), k=3)
    assert ids.tolist() == [[11, 12, 13]]
    assert scores[0, 0] > scores[0, 1] > scores[0, 2]
    ids, scores = index.search(_unit([[0, 0, 1]]), k=6)
    assert ids[0, 0] == 14 and set(ids[0, 1:4].tolist()) == {11, 12, 13}  # three ties at 0
    assert ids[0, 4:].tolist() == [-1, -1] and np.isneginf(scores[0, 4:]).all()
    index.save(tmp_path / "i.npz")
    loaded = ann.VectorIndex.load(tmp_path / "i.npz")
    assert loaded.kind == "exact" and loaded.search(_unit([[1, 0.05, 0]]), k=3)[0].tolist() == [[11, 12, 13]]
    empty = ann.VectorIndex.build(np.zeros(0, dtype=np.int64), np.zeros((0, 3), dtype=np.float32))
    assert empty.search(_unit([[1, 0, 0]]), k=2)[0].tolist() == [[-1, -1]]


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    x = centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def test_ivf_index_finds_most_exact_neighbours_and_survives_a_save(tmp_path: Path) -> None:
    vectors = _clustered(6000, 32, seed=0)
    ids = np.arange(100, 6100)
    index = ann.VectorIndex.build(ids, vectors, exact_below=1000)
    exact = ann.VectorIndex.build(ids, vectors)
    assert (index.kind, exact.kind) == ("ivf", "exact")
    queries = _clustered(50, 32, seed=1)
    got, _ = index.search(queries, k=10)
    want, _ = exact.search(queries, k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), want.tolist(), strict=True)])
    assert recall >= 0.9
    index.save(tmp_path / "ivf.npz")
    loaded = ann.VectorIndex.load(tmp_path / "ivf.npz")
    assert loaded.kind == "ivf" and np.array_equal(loaded.search(queries, k=10)[0], got)
