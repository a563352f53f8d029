"""Nearest neighbours over many stored vectors (similar tickets, clustering), exact for small desks, FAISS beyond.

The library is faiss-cpu (Meta's FAISS, wheels for CPython 3.10+ on manylinux x86_64 from PyPI, numpy its only
run-time dependency). hnswlib ships no wheel (a C++ build on install) and an HNSW graph of a million vectors takes
several minutes to build on one thread; FAISS's inverted file with 8-bit scalar quantisation (``IVF<n>,SQ8``) is
built from a k-means sample in seconds, holds a million 384-d vectors in about 400 MB instead of 1.5 GB, and answers
a query by scanning ``nprobe`` of its lists. Below ``EXACT_BELOW`` vectors the index is an exact numpy product
(every desk starts there: nothing to train, recall 1). ``python -m bench.kb_eval --ann`` measures build time,
p99 and recall@10 against the exact answer.

Vectors are L2-normalised rows, so inner product = cosine. Ids are the caller's (ticket ids), int64.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from app.logs import get_logger

log = get_logger(__name__)

#: up to this many vectors the index is exact (a 20,000 x 384 product is about 3 ms on one thread)
EXACT_BELOW = 20_000
#: inverted lists scanned per query (bench/kb_eval.py --ann: recall@10 about 0.94 on clustered synthetic vectors,
#: under 2 ms at a million)
NPROBE = 96
#: k-means sample per list when training the coarse quantiser
TRAIN_PER_LIST = 40
#: k-means iterations (10 rather than faiss's 25: a million vectors train in under a minute on one thread)
KMEANS_ITERATIONS = 10


def _faiss() -> Any:
    """faiss, single-threaded (a query must not fight the event loop for the cores), or None when missing."""
    try:
        import faiss
    except ImportError:
        return None
    faiss.omp_set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
    return faiss


class VectorIndex:
    """Inner-product search over (id, vector) pairs; exact below EXACT_BELOW, FAISS IVF-SQ8 at or above."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._ann: Any = None

    @property
    def kind(self) -> str:
        """"exact" or "ivf" (what answers queries)."""
        return "ivf" if self._ann is not None else "exact"

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, *, exact_below: int = EXACT_BELOW,
              seed: int = 0) -> VectorIndex:
        """An index over the rows (ids[i] names vectors[i])."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = cls(int(vectors.shape[1]) if vectors.ndim == 2 else 0)
        index.ids = np.asarray(ids, dtype=np.int64)
        faiss = _faiss() if len(vectors) >= exact_below else None
        if faiss is None:
            if len(vectors) >= exact_below:
                log.warning("kb.ann_unavailable", vectors=len(vectors), fallback="exact")
            index._matrix = vectors
            return index
        nlist = max(64, int(2 * math.sqrt(len(vectors))))
        quantizer = faiss.IndexFlatIP(index.dim)
        ivf = faiss.IndexIVFScalarQuantizer(quantizer, index.dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                            faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(len(vectors), size=min(len(vectors), nlist * TRAIN_PER_LIST), replace=False)]
        ivf.cp.seed = seed
        ivf.cp.niter = KMEANS_ITERATIONS
        ivf.train(sample)
        ivf.add_with_ids(vectors, index.ids)
        ivf.nprobe = NPROBE
        index._ann = ivf
        return index

    def search(self, queries: np.ndarray, *, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores), each (queries x k), best first; missing neighbours are id -1 and score -inf."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, k)
        if self._ann is not None:
            scores, ids = self._ann.search(queries, k)
            return np.asarray(ids, dtype=np.int64), np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        if not len(self.ids):
            return out_ids, out_scores
        sims = queries @ self._matrix.T
        take = min(k, sims.shape[1])
        part = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(part, order, axis=1)
        out_ids[:, :take] = self.ids[best]
        out_scores[:, :take] = np.take_along_axis(sims, best, axis=1)
        return out_ids, out_scores

    def save(self, path: Path) -> None:
        """Write the index to a file (atomically: readers see the old or the new one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        if self._ann is not None:
            faiss = _faiss()
            assert faiss is not None
            raw = faiss.serialize_index(self._ann)
            np.savez(tmp.open("wb"), kind=np.array("ivf"), dim=np.array(self.dim), ids=self.ids, raw=raw)
        else:
            np.savez(tmp.open("wb"), kind=np.array("exact"), dim=np.array(self.dim), ids=self.ids,
                     matrix=self._matrix)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read an index written by save."""
        with np.load(path, allow_pickle=False) as data:
            index = cls(int(data["dim"]))
            index.ids = data["ids"].astype(np.int64)
            if str(data["kind"]) == "ivf":
                faiss = _faiss()
                if faiss is None:
                    raise RuntimeError("faiss is not installed")
                index._ann = faiss.deserialize_index(data["raw"])
                index._ann.nprobe = NPROBE
            else:
                index._matrix = data["matrix"].astype(np.float32)
        return index
