"""The vector cache of bench/kb_eval.py: one file per model name, rows keyed by the text's hash, so a full run embeds
each text once and another model never reads these vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import kb_eval
from tests.app.assist.conftest import BagEmbedder


def test_each_text_is_embedded_once_per_model(tmp_path: Path) -> None:
    first = BagEmbedder("bag-1")
    got = kb_eval.embed_all(first, ["退款没到账", "发票怎么开", "退款没到账"], tmp_path)
    assert first.embedded == ["退款没到账", "发票怎么开"]
    again = BagEmbedder("bag-1")
    more = kb_eval.embed_all(again, ["发票怎么开", "登录闪退", "退款没到账"], tmp_path)
    assert again.embedded == ["登录闪退"]
    assert np.array_equal(more["退款没到账"], got["退款没到账"])
    assert np.array_equal(more["发票怎么开"], got["发票怎么开"])
    other = BagEmbedder("bag-2")
    kb_eval.embed_all(other, ["退款没到账"], tmp_path)
    assert other.embedded == ["退款没到账"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors-bag-1.npz", "vectors-bag-2.npz"]
    # keyed by hash: the customers' texts are not written out in the clear
    stored = (tmp_path / "vectors-bag-1.npz").read_bytes()
    assert all("退款没到账".encode(codec) not in stored for codec in ("utf-8", "utf-32-le"))


def test_without_a_cache_nothing_is_written(tmp_path: Path) -> None:
    model = BagEmbedder("bag-1")
    kb_eval.embed_all(model, ["退款没到账"], None)
    kb_eval.embed_all(model, ["退款没到账"], None)
    assert model.embedded == ["退款没到账", "退款没到账"]
    assert list(tmp_path.iterdir()) == []


def test_the_default_cache_is_git_ignored() -> None:
    root = Path(kb_eval.__file__).resolve().parents[1]
    assert kb_eval.DEFAULT_CACHE == root / "bench" / ".cache"
    assert "/bench/.cache/" in (root / ".gitignore").read_text().splitlines()
