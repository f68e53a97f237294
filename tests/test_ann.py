"""FAISS index wrapper against brute-force NumPy search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowrec.errors import ConfigError, DataFormatError, UnknownIdError
from knowrec.retrieval import AnnIndex


def _data(n: int = 500, d: int = 32, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"i{k}" for k in range(n)], rng.normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_flat_matches_brute_force(metric: str) -> None:
    ids, x = _data()
    q = np.random.default_rng(1).normal(size=(20, x.shape[1])).astype(np.float32)
    got, scores = AnnIndex(ids, x, metric=metric).search(q, k=5)
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        ref = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ xn.T
    elif metric == "ip":
        ref = q @ x.T
    else:
        ref = -((q[:, None, :] - x[None]) ** 2).sum(-1)
    top = np.argsort(-ref, axis=1)[:, :5]
    assert got == [[ids[j] for j in row] for row in top]
    np.testing.assert_allclose(scores, np.take_along_axis(ref, top, 1), rtol=1e-4, atol=1e-4)


def test_neighbours_exclude_self_and_unknown_ids() -> None:
    ids, x = _data(50)
    index = AnnIndex(ids, x)
    got, scores = index.neighbours(["i3", "i7"], k=4)
    assert all(len(row) == 4 for row in got) and "i3" not in got[0] and "i7" not in got[1]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    with pytest.raises(UnknownIdError, match="nope"):
        index.neighbours(["nope"], k=3)


def test_approximate_kinds_recall_and_round_trip(tmp_path: Path) -> None:
    ids, x = _data(3000, 32)
    q = x[:100] + 0.1 * np.random.default_rng(2).normal(size=(100, 32)).astype(np.float32)
    hnsw = AnnIndex(ids, x, kind="hnsw")
    assert hnsw.recall_against_exact(q, 10) > 0.9
    ivfpq = AnnIndex(ids, x, kind="ivfpq", nlist=16, pq_m=8, nprobe=16)
    assert ivfpq.recall_against_exact(q, 10) > 0.3  # 8-byte codes of 32-d Gaussian noise
    loaded = AnnIndex.load(ivfpq.save(tmp_path / "idx"))
    assert loaded.search(q, 5)[0] == ivfpq.search(q, 5)[0]


def test_bad_input() -> None:
    ids, x = _data(10)
    with pytest.raises(ConfigError, match="metric"):
        AnnIndex(ids, x, metric="dot")
    with pytest.raises(DataFormatError, match="one vector row per id"):
        AnnIndex(ids[:5], x)
    with pytest.raises(DataFormatError, match="NaN"):
        AnnIndex(ids, np.full_like(x, np.nan))
    with pytest.raises(ConfigError, match="ivfpq needs"):
        AnnIndex(ids, x, kind="ivfpq", pq_m=8)
    with pytest.raises(DataFormatError, match="dimension"):
        AnnIndex(ids, x).search(np.zeros((1, 3)), 2)
    with pytest.raises(DataFormatError, match="readable"):
        AnnIndex.load("/nonexistent")
