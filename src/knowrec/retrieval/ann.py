"""Nearest-neighbour search over item vectors with FAISS, keyed by string ids.

One class for every recall path that needs an ANN index (semantic, two-tower, CF, TRAWL
adapted item vectors, HKNR user-to-article recall)::

    index = AnnIndex(item_ids, vectors, metric="cosine", kind="flat")
    ids, scores = index.search(query_vectors, k=30)
    ids, scores = index.neighbours(["i1", "i2"], k=10)   # item-to-item, self excluded

``kind``: ``flat`` (exact), ``hnsw`` (graph) or ``ivfpq`` (inverted lists with product
quantisation, for millions of items; trained on the vectors themselves).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from knowrec.errors import ConfigError, DataFormatError, UnknownIdError

METRICS = ("cosine", "ip", "l2")
KINDS = ("flat", "hnsw", "ivfpq")


class AnnIndex:
    """A FAISS index over ``vectors`` (n × d) whose rows are the items ``ids``."""

    def __init__(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        *,
        metric: str = "cosine",
        kind: str = "flat",
        nlist: int | None = None,
        pq_m: int = 16,
        nprobe: int = 16,
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
        self.settings = {"nlist": nlist, "pq_m": pq_m, "nprobe": nprobe, "hnsw_m": hnsw_m}
        self.vectors = self._prepare(x)
        self.index = self._build(self.vectors, seed)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            x = x.copy()
            faiss.normalize_L2(x)
        return x

    def _build(self, x: np.ndarray, seed: int) -> faiss.Index:
        measure = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        d, s = self.dim, self.settings
        if self.kind == "flat":
            index = faiss.IndexFlat(d, measure)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, s["hnsw_m"], measure)
        else:
            nlist = s["nlist"] or max(1, int(4 * np.sqrt(len(x))))
            if d % s["pq_m"]:
                raise ConfigError(f"ivfpq: pq_m={s['pq_m']} must divide the dimension {d}")
            if len(x) < 39 * nlist or len(x) < 256:
                raise ConfigError(
                    f"ivfpq needs at least max(256, 39·nlist) = {max(256, 39 * nlist)} "
                    f"vectors to train, got {len(x)}: use kind='flat' or a smaller nlist"
                )
            quantiser = faiss.IndexFlat(d, measure)
            index = faiss.IndexIVFPQ(quantiser, d, nlist, s["pq_m"], 8, measure)
            index.cp.seed = seed
            index.train(x)
            index.nprobe = min(s["nprobe"], nlist)
        index.add(x)
        return index

    def __len__(self) -> int:
        return len(self.ids)

    def search(
        self, queries: np.ndarray, k: int, *, exclude: Sequence[str | None] | None = None
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` ids and scores per query row (higher is better; for ``l2`` the score is
        the negative squared distance). ``exclude[q]`` drops that id from query q's list."""
        q = self._prepare(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.dim:
            raise DataFormatError(f"ANN search: query dimension {q.shape[1]} != {self.dim}")
        extra = 1 if exclude is not None else 0
        want = min(k + extra, len(self.ids))
        scores, rows = self.index.search(np.ascontiguousarray(q), want)
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
        exact = AnnIndex(self.ids, self.vectors, metric=self.metric, kind="flat")
        got, _ = self.search(queries, k)
        ref, _ = exact.search(queries, k)
        pairs = zip(got, ref, strict=True)
        return float(np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in pairs]))

    def save(self, directory: str | Path) -> Path:
        """``index.faiss``, ``vectors.npy`` and ``ann.json`` (ids and settings)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(out / "index.faiss"))
        np.save(out / "vectors.npy", self.vectors)
        meta = {"metric": self.metric, "kind": self.kind, "ids": self.ids, **self.settings}
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
        self.ids = meta["ids"]
        self.row = {item: k for k, item in enumerate(self.ids)}
        self.metric, self.kind, self.dim = meta["metric"], meta["kind"], vectors.shape[1]
        self.settings = {k: meta[k] for k in ("nlist", "pq_m", "nprobe", "hnsw_m")}
        self.vectors, self.index = vectors, index
        return self
