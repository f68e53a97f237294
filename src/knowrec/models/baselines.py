"""Classic non-neural baselines: item popularity and item-based kNN (cosine).

Both follow one small interface: ``fit(interactions)`` on positive (user, item) pairs, then
``score(user_ids, item_ids) -> ndarray[len(user_ids), len(item_ids)]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp

from knowrec.errors import ConfigError


class IdIndex:
    """A stable mapping from string ids to 0..n-1 (unknown ids → -1)."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = list(dict.fromkeys(ids))
        self._pos = {x: i for i, x in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((self._pos.get(x, -1) for x in ids), dtype=np.int64, count=len(ids))


def _matrix(pairs: pl.DataFrame, users: IdIndex, items: IdIndex) -> sp.csr_matrix:
    rows = users.lookup(pairs["user_id"].to_list())
    cols = items.lookup(pairs["item_id"].to_list())
    keep = (rows >= 0) & (cols >= 0)
    data = np.ones(int(keep.sum()), dtype=np.float32)
    m = sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(len(users), len(items)))
    m.data[:] = 1.0  # duplicates count once
    return m


class Popularity:
    """Score = number of distinct users with a positive interaction on the item."""

    def fit(self, positives: pl.DataFrame) -> Popularity:
        counts = positives.group_by("item_id").agg(pl.col("user_id").n_unique().alias("n"))
        self.counts = dict(zip(counts["item_id"].to_list(), counts["n"].to_list(), strict=True))
        return self

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        row = np.array([self.counts.get(i, 0) for i in item_ids], dtype=np.float32)
        return np.broadcast_to(row, (len(user_ids), len(item_ids))).copy()


class ItemKNN:
    """Item-based CF: score(u, i) = Σ_{j ∈ history(u)} cos(i, j) over i's top-k neighbours."""

    def __init__(self, k: int = 50, shrink: float = 0.0) -> None:
        if k < 1:
            raise ConfigError(f"ItemKNN k must be ≥ 1, got {k}")
        self.k = k
        self.shrink = shrink

    def fit(self, positives: pl.DataFrame) -> ItemKNN:
        self.users = IdIndex(positives["user_id"].to_list())
        self.items = IdIndex(positives["item_id"].to_list())
        self.matrix = _matrix(positives, self.users, self.items)
        norms = np.sqrt(np.asarray(self.matrix.sum(axis=0)).ravel())
        co = (self.matrix.T @ self.matrix).toarray() if len(self.items) <= 20_000 else None
        if co is None:
            raise ConfigError("ItemKNN keeps a dense item×item matrix: at most 20,000 items")
        sim = co / (np.outer(norms, norms) + self.shrink + 1e-12)
        np.fill_diagonal(sim, 0.0)
        if self.k < sim.shape[1]:  # keep the k nearest neighbours of each item
            cut = np.argpartition(-sim, self.k, axis=1)[:, self.k :]
            np.put_along_axis(sim, cut, 0.0, axis=1)
        self.sim = sp.csr_matrix(sim.astype(np.float32))
        return self

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        u = self.users.lookup(user_ids)
        i = self.items.lookup(item_ids)
        hist = self.matrix[np.maximum(u, 0)]
        hist = sp.diags((u >= 0).astype(np.float32)) @ hist  # unknown users have no history
        full = np.asarray((hist @ self.sim.T).todense())  # (users, known items)
        out = np.zeros((len(user_ids), len(item_ids)), dtype=np.float32)
        known = i >= 0
        out[:, known] = full[:, i[known]]
        return out
