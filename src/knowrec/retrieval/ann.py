"""Nearest-neighbour search over item vectors with FAISS, keyed by string ids.

One class for every recall path that needs an ANN index (semantic, two-tower, CF, TRAWL
adapted item vectors, HKNR user-to-article recall)::

    index = AnnIndex(item_ids, vectors, metric="cosine", kind="flat")
    ids, scores = index.search(query_vectors, k=30)
    ids, scores = index.neighbours(["i1", "i2"], k=10)   # item-to-item, self excluded

``kind``: ``flat`` (exact), ``hnsw`` (graph) or ``ivfpq`` (inverted lists with product
quantisation, for millions of items; trained on the vectors themselves). An ``ivfpq``
index searches with the ``nprobe`` chosen from a sweep stored with it (:meth:`tune`,
:func:`choose_nprobe`), never FAISS's default of 1; docs/ann.md says how to choose.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from knowrec.errors import ConfigError, DataFormatError, UnknownIdError

METRICS = ("cosine", "ip", "l2")
KINDS = ("flat", "hnsw", "ivfpq")
# Steps of ~√2, so the chosen nprobe overshoots the needed one by at most ~40%.
NPROBE_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
MIN_POINTS_PER_LIST = 39  # FAISS's k-means minimum of training points per centroid
PQ_MAX_BYTES = 64  # default size of one PQ code, in bytes

log = logging.getLogger(__name__)


def default_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: 4·√n, capped so every list has at least 39
    training points (FAISS's k-means minimum)."""
    return max(1, min(round(4 * np.sqrt(n)), n // MIN_POINTS_PER_LIST))


def default_pq_m(d: int, bits: int) -> int:
    """Sub-quantizers for dimension ``d`` and ``bits`` per sub-quantizer: the largest
    divisor of ``d`` whose code fits 64 bytes (d = 384: 64 × 8 bits or 128 × 4 bits)."""
    most = min(d, PQ_MAX_BYTES * 8 // bits)
    return max(m for m in range(1, most + 1) if d % m == 0)


@dataclass(frozen=True)
class SweepPoint:
    """One nprobe of a sweep: mean recall@k against exact search and queries per second
    (one batch, FAISS's thread count at the time, id mapping excluded)."""

    nprobe: int
    recall: float
    qps: float


@dataclass(frozen=True)
class NprobeSweep:
    """Recall and speed of an IVF-PQ index over a grid of nprobe, on ``queries`` queries."""

    k: int
    queries: int
    threads: int
    points: tuple[SweepPoint, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "points": [asdict(p) for p in self.points]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NprobeSweep:
        points = tuple(SweepPoint(**p) for p in d["points"])
        return cls(k=d["k"], queries=d["queries"], threads=d["threads"], points=points)


def choose_nprobe(sweep: NprobeSweep, target_recall: float) -> int:
    """The smallest nprobe whose recall meets ``target_recall``; when none does, the
    smallest nprobe with the best recall."""
    if not sweep.points:
        raise ConfigError("choose_nprobe: the sweep is empty")
    met = [p.nprobe for p in sweep.points if p.recall >= target_recall]
    if met:
        return min(met)
    best = max(p.recall for p in sweep.points)
    return min(p.nprobe for p in sweep.points if p.recall == best)


def recall_at_k(got: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row of ``exact`` (row ids, −1 = none) found in the same row of
    ``got``."""
    valid = exact >= 0
    found = np.zeros(exact.shape, dtype=bool)
    step = max(1, (1 << 24) // max(exact.shape[1] * got.shape[1], 1))  # ≤ 16 MB of compares
    for i in range(0, len(exact), step):
        found[i : i + step] = (exact[i : i + step, :, None] == got[i : i + step, None, :]).any(-1)
    return float(np.mean((found & valid).sum(1) / np.maximum(valid.sum(1), 1)))


class AnnIndex:
    """A FAISS index over ``vectors`` (n × d) whose rows are the items ``ids``.

    ``ivfpq`` settings: ``nlist`` inverted lists (default :func:`default_nlist`);
    ``pq_m`` sub-quantizers of ``pq_bits`` bits (4: FAISS's fast-scan kernels, the
    default; or 8), i.e. codes of ``pq_m·pq_bits/8`` bytes (default :func:`default_pq_m`:
    ≤ 64 bytes); ``rerank`` R (default 4; 0 = off): each query's top ``R·k`` by PQ score
    are re-scored exactly against the float32 vectors this class keeps anyway
    (:meth:`vectors_of`) and the best ``k`` kept; ``nprobe``: ``None`` runs :meth:`tune`
    after building (the smallest nprobe reaching ``target_recall`` at ``k = tune_k``), an
    integer is used as given. docs/ann.md has the measurements behind these defaults.
    """

    def __init__(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        *,
        metric: str = "cosine",
        kind: str = "flat",
        nlist: int | None = None,
        pq_m: int | None = None,
        pq_bits: int = 4,
        rerank: int = 4,
        nprobe: int | None = None,
        target_recall: float = 0.95,
        tune_k: int = 100,
        hnsw_m: int = 32,
        seed: int = 0,
    ) -> None:
        if metric not in METRICS:
            raise ConfigError(f"unknown ANN metric {metric!r}: known are {', '.join(METRICS)}")
        if kind not in KINDS:
            raise ConfigError(f"unknown ANN index kind {kind!r}: known are {', '.join(KINDS)}")
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(ids):
            raise DataFormatError(
                f"ANN index: need one vector row per id, got {x.shape} for {len(ids)} ids"
            )
        if not np.isfinite(x).all():
            raise DataFormatError("ANN index: vectors contain NaN or infinity")
        self.ids = [str(i) for i in ids]
        self.row = {item: k for k, item in enumerate(self.ids)}
        if len(self.row) != len(self.ids):
            raise DataFormatError("ANN index: duplicate ids")
        self.metric, self.kind, self.dim = metric, kind, x.shape[1]
        if pq_bits not in (4, 8):
            raise ConfigError(f"ivfpq: pq_bits must be 8 or 4 (fast-scan), got {pq_bits}")
        if rerank < 0:
            raise ConfigError(f"ivfpq: rerank must be ≥ 0, got {rerank}")
        self.settings: dict[str, Any] = {
            "nlist": nlist or default_nlist(len(x)),
            "pq_m": pq_m or default_pq_m(self.dim, pq_bits),
            "pq_bits": pq_bits,
            "rerank": rerank,
            "nprobe": nprobe,
            "hnsw_m": hnsw_m,
        }
        self.sweep: NprobeSweep | None = None
        self.vectors = self._prepare(x)
        self.index = self._build(self.vectors, seed)
        if kind == "ivfpq" and nprobe is None:
            self.tune(k=tune_k, target_recall=target_recall, seed=seed)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            x = x.copy()
            faiss.normalize_L2(x)
        return x

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = self._prepare(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.dim:
            raise DataFormatError(f"ANN search: query dimension {q.shape[1]} != {self.dim}")
        return q

    @property
    def _measure(self) -> int:
        """FAISS's metric: L2 for ``l2``, inner product for ``ip`` and ``cosine``."""
        return faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def _build(self, x: np.ndarray, seed: int) -> faiss.Index:
        measure, d, s = self._measure, self.dim, self.settings
        if self.kind == "flat":
            index = faiss.IndexFlat(d, measure)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, s["hnsw_m"], measure)
        else:
            nlist, m, bits = s["nlist"], s["pq_m"], s["pq_bits"]
            if d % m:
                raise ConfigError(f"ivfpq: pq_m={m} must divide the dimension {d}")
            need = max(256, MIN_POINTS_PER_LIST * nlist)
            if len(x) < need:
                raise ConfigError(
                    f"ivfpq needs at least max(256, 39·nlist) = {need} vectors to train, "
                    f"got {len(x)}: use kind='flat' or a smaller nlist"
                )
            quantiser = faiss.IndexFlat(d, measure)
            ivfpq = faiss.IndexIVFPQFastScan if bits == 4 else faiss.IndexIVFPQ
            index = ivfpq(quantiser, d, nlist, m, bits, measure)
            index.cp.seed = seed
            index.pq.cp.seed = seed
            index.train(x)
        index.add(x)
        return index

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nprobe(self) -> int | None:
        """The nprobe searches use (``ivfpq`` only)."""
        return self.settings["nprobe"] if self.kind == "ivfpq" else None

    def code_bytes(self) -> int:
        """Bytes of one stored code in the FAISS index: ``pq_m·pq_bits/8`` for ``ivfpq``,
        4·d for the float kinds. Not counted: the 8-byte id per entry of the inverted lists,
        the HNSW links, and the float32 vectors (4·d bytes) this class keeps for
        :meth:`vectors_of` and ``rerank``."""
        return int(self.index.code_size) if self.kind == "ivfpq" else 4 * self.dim

    def _rows(
        self, q: np.ndarray, want: int, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's own search (+ re-ranking): (scores, rows) of prepared queries, rows −1
        where none."""
        q = np.ascontiguousarray(q)
        if self.kind != "ivfpq":
            return self.index.search(q, want)
        probe = nprobe or self.settings["nprobe"] or 1
        params = faiss.SearchParametersIVF(nprobe=min(probe, self.index.nlist))
        rerank = self.settings.get("rerank", 0)
        if not rerank:
            return self.index.search(q, want, params=params)
        rows = self.index.search(q, min(rerank * want, len(self)), params=params)[1]
        scores = np.empty(rows.shape, dtype=np.float32)
        exact = faiss.fvec_L2sqr_by_idx if self.metric == "l2" else faiss.fvec_inner_products_by_idx
        ptr = faiss.swig_ptr
        exact(ptr(scores), ptr(q), ptr(self.vectors), ptr(rows), self.dim, *rows.shape)
        # The best `want`, best first: ascending distances (l2), descending inner products.
        key = scores if self.metric == "l2" else -scores
        top = np.argpartition(key, want - 1, axis=1)[:, :want] if want < key.shape[1] else None
        if top is not None:
            key, rows, scores = (np.take_along_axis(a, top, 1) for a in (key, rows, scores))
        order = np.argsort(key, axis=1)
        rows = np.take_along_axis(rows, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        rows[~np.isfinite(scores)] = -1  # FAISS's −1 padding scores ±inf
        return scores, rows

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Sequence[str | None] | None = None,
        nprobe: int | None = None,
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` ids and scores per query row (higher is better; for ``l2`` the score is
        the negative squared distance). ``exclude[q]`` drops that id from query q's list.
        ``nprobe`` overrides the stored one (``ivfpq``)."""
        q = self._queries(queries)
        extra = 1 if exclude is not None else 0
        want = min(k + extra, len(self.ids))
        scores, rows = self._rows(q, want, nprobe)
        if self.metric == "l2":
            scores = -scores
        out_ids: list[list[str]] = []
        out_scores = np.full((len(q), k), np.nan, dtype=np.float32)
        for qi in range(len(q)):
            skip = exclude[qi] if exclude is not None else None
            kept = [(self.ids[r], s) for r, s in zip(rows[qi], scores[qi], strict=True) if r >= 0]
            kept = [(i, s) for i, s in kept if i != skip][:k]
            out_ids.append([i for i, _ in kept])
            out_scores[qi, : len(kept)] = [s for _, s in kept]
        return out_ids, out_scores

    def sweep_nprobe(
        self,
        queries: np.ndarray | None = None,
        *,
        k: int = 100,
        grid: Sequence[int] = NPROBE_GRID,
        sample: int = 1000,
        seed: int = 0,
    ) -> NprobeSweep:
        """Recall@k against exact search and queries/s of an ``ivfpq`` index for each
        nprobe of ``grid`` (capped at nlist). Without ``queries``: ``sample`` stored
        vectors drawn with ``seed``, each one's own row left out of both result lists."""
        if self.kind != "ivfpq":
            raise ConfigError(f"an nprobe sweep needs kind='ivfpq', this index is {self.kind!r}")
        own = None
        if queries is None:
            own = np.random.default_rng(seed).choice(len(self), min(sample, len(self)), False)
            q = self.vectors[own]
        else:
            q = self._queries(queries)
        k = min(k, len(self) - (own is not None))
        want = k + (own is not None)
        exact = _drop_own(faiss.knn(q, self.vectors, want, self._measure)[1], own, k)
        points = []
        for nprobe in sorted({min(p, self.index.nlist) for p in grid}):
            start = time.perf_counter()
            rows = self._rows(q, want, nprobe)[1]
            seconds = time.perf_counter() - start
            got = _drop_own(rows, own, k)
            points.append(SweepPoint(nprobe, recall_at_k(got, exact), len(q) / seconds))
        return NprobeSweep(k, len(q), faiss.omp_get_max_threads(), tuple(points))

    def tune(
        self,
        queries: np.ndarray | None = None,
        *,
        k: int = 100,
        target_recall: float = 0.95,
        grid: Sequence[int] = NPROBE_GRID,
        seed: int = 0,
    ) -> int:
        """Sweep nprobe (:meth:`sweep_nprobe`), store the sweep with the index and make
        :func:`choose_nprobe`'s pick the nprobe that searches use. Returns it."""
        if not 0 < target_recall <= 1:
            raise ConfigError(f"target_recall must be in (0, 1], got {target_recall}")
        self.sweep = self.sweep_nprobe(queries, k=k, grid=grid, seed=seed)
        nprobe = choose_nprobe(self.sweep, target_recall)
        self.settings.update(nprobe=nprobe, target_recall=target_recall)
        best = max(p.recall for p in self.sweep.points)
        if best < target_recall:
            log.warning(
                "ivfpq: no nprobe up to %d reaches recall@%d %.3f (best %.3f at nprobe %d); "
                "re-ranking (rerank), more sub-quantizers (pq_m) or fewer lists (nlist) would help",
                self.sweep.points[-1].nprobe, k, target_recall, best, nprobe,
            )  # fmt: skip
        return nprobe

    def vectors_of(self, ids: Sequence[str]) -> np.ndarray:
        """The stored (normalised for cosine) vectors of known ids."""
        missing = [i for i in ids if i not in self.row]
        if missing:
            raise UnknownIdError(f"unknown item id(s) {missing[:5]} (index has {len(self):,})")
        return self.vectors[[self.row[i] for i in ids]]

    def neighbours(self, ids: Sequence[str], k: int) -> tuple[list[list[str]], np.ndarray]:
        """Item-to-item: the ``k`` nearest other items of each known id."""
        return self.search(self.vectors_of(ids), k, exclude=list(ids))

    def recall_against_exact(self, queries: np.ndarray, k: int) -> float:
        """Mean overlap of this index's top-k with exact search's top-k (1.0 for flat)."""
        q = self._queries(queries)
        return recall_at_k(self._rows(q, k)[1], faiss.knn(q, self.vectors, k, self._measure)[1])

    def save(self, directory: str | Path) -> Path:
        """``index.faiss``, ``vectors.npy`` and ``ann.json`` (ids, settings, the sweep)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(out / "index.faiss"))
        np.save(out / "vectors.npy", self.vectors)
        meta = {
            "metric": self.metric,
            "kind": self.kind,
            "ids": self.ids,
            **self.settings,
            "sweep": self.sweep.to_dict() if self.sweep else None,
        }
        tmp = out / "ann.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, out / "ann.json")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> AnnIndex:
        src = Path(directory)
        try:
            meta = json.loads((src / "ann.json").read_text())
            index = faiss.read_index(str(src / "index.faiss"))
            vectors = np.load(src / "vectors.npy")
        except (OSError, ValueError, RuntimeError) as exc:
            raise DataFormatError(f"not a readable ANN index: {exc}", path=src) from None
        self = cls.__new__(cls)
        self.ids = meta.pop("ids")
        self.row = {item: k for k, item in enumerate(self.ids)}
        self.metric, self.kind, self.dim = meta.pop("metric"), meta.pop("kind"), vectors.shape[1]
        sweep = meta.pop("sweep", None)
        self.sweep = NprobeSweep.from_dict(sweep) if sweep else None
        self.settings = meta
        self.vectors, self.index = vectors, index
        return self


def _drop_own(rows: np.ndarray, own: np.ndarray | None, k: int) -> np.ndarray:
    """The first ``k`` rows of each result list other than the query's own row."""
    if own is None:
        return rows[:, :k]
    order = np.argsort(rows == own[:, None], axis=1, kind="stable")
    return np.take_along_axis(rows, order, axis=1)[:, :k]
