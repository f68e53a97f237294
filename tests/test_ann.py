"""FAISS index wrapper against brute-force NumPy search."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from knowrec.errors import ConfigError, DataFormatError, UnknownIdError
from knowrec.retrieval import AnnIndex
from knowrec.retrieval.ann import (
    NPROBE_GRID,
    NprobeSweep,
    SweepPoint,
    choose_nprobe,
    default_nlist,
    default_pq_m,
)


@pytest.fixture(autouse=True)
def _one_faiss_thread() -> Iterator[None]:
    """Tiny indexes train faster on one thread: OpenMP barriers on a busy machine cost more
    than the work (8 s instead of 0.15 s for 64 codebooks of 400 points)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


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


def _clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Unit vectors near a 24-dimensional subspace, in 32 clusters: a stand-in for
    sentence-encoder vectors (low intrinsic dimension, uneven density)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(24, d))  # the same subspace for any seed
    centres = np.random.default_rng(98).normal(size=(32, 24))
    z = centres[rng.integers(32, size=n)] + 0.7 * rng.normal(size=(n, 24))
    x = z @ basis + 0.1 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _sweep(*recalls: float) -> NprobeSweep:
    points = tuple(SweepPoint(2**j, r, 1000.0 / 2**j) for j, r in enumerate(recalls))
    return NprobeSweep(k=10, queries=100, threads=1, points=points)


def test_choose_nprobe_is_the_smallest_meeting_the_target() -> None:
    sweep = _sweep(0.5, 0.8, 0.93, 0.96, 0.99, 0.99)
    assert choose_nprobe(sweep, 0.95) == 8
    assert choose_nprobe(sweep, 0.93) == 4
    assert choose_nprobe(sweep, 0.4) == 1
    assert choose_nprobe(_sweep(0.5, 0.7, 0.7, 0.6), 0.95) == 2  # none meets: best, smallest
    with pytest.raises(ConfigError, match="empty"):
        choose_nprobe(NprobeSweep(k=10, queries=0, threads=1, points=()), 0.9)


def test_default_ivfpq_settings() -> None:
    assert default_pq_m(384, 8) == 64 and default_pq_m(384, 4) == 128
    assert default_pq_m(32, 8) == 32 and default_pq_m(100, 8) == 50
    assert default_nlist(200_000) == 1789  # 4·√n
    assert default_nlist(3_000) == 76  # capped: ≥ 39 training points per list


def test_ivfpq_codes_fit_64_bytes_at_d384() -> None:
    x = _clustered(400, 384)  # enough for 256-centroid codebooks, few for a quick test
    ids = [f"a{k}" for k in range(len(x))]
    for bits, m in ((8, 64), (4, 128)):
        index = AnnIndex(ids, x, kind="ivfpq", pq_bits=bits, nprobe=4)
        assert index.settings["pq_m"] == m and index.code_bytes() == 64


def test_ivfpq_sweep_is_stored_used_and_reloaded(tmp_path: Path) -> None:
    x = _clustered(3000, 384)
    ids = [f"a{k}" for k in range(len(x))]
    index = AnnIndex(ids, x, kind="ivfpq", pq_bits=4, rerank=4, tune_k=10, target_recall=0.85)
    sweep = index.sweep
    assert sweep is not None and sweep.k == 10 and sweep.queries == 1000
    recalls = [p.recall for p in sweep.points]
    nlist = index.settings["nlist"]
    assert [p.nprobe for p in sweep.points] == [p for p in NPROBE_GRID if p < nlist] + [nlist]
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(recalls))  # monotone up to PQ noise
    assert recalls[0] < 0.85 <= recalls[-1]
    assert index.nprobe == choose_nprobe(sweep, 0.85) > 1

    # Searches use the stored nprobe: the recall of a default search is the sweep's at it.
    q = _clustered(200, 384, seed=1)
    chosen = index.tune(q, k=10, target_recall=0.85)
    at = {p.nprobe: p.recall for p in index.sweep.points}
    assert index.recall_against_exact(q, 10) == pytest.approx(at[chosen])
    got, scores = index.search(q, 10)
    assert got == index.search(q, 10, nprobe=chosen)[0] != index.search(q, 10, nprobe=1)[0]
    # Re-ranked scores are exact cosines.
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    exact = np.einsum(
        "qd,qkd->qk", qn, index.vectors_of([i for row in got for i in row]).reshape(200, 10, -1)
    )
    np.testing.assert_allclose(scores, exact, atol=1e-5)

    loaded = AnnIndex.load(index.save(tmp_path / "idx"))
    assert loaded.sweep == index.sweep and loaded.nprobe == chosen
    assert loaded.search(q, 10)[0] == got


def test_sweep_needs_ivfpq_and_a_valid_target() -> None:
    ids, x = _data(300, 8)
    with pytest.raises(ConfigError, match="needs kind='ivfpq'"):
        AnnIndex(ids, x).sweep_nprobe()
    index = AnnIndex(ids, x, kind="ivfpq", nprobe=4)
    assert index.sweep is None and index.nprobe == 4  # a given nprobe is used as given
    with pytest.raises(ConfigError, match="target_recall"):
        index.tune(target_recall=1.5)
