"""The user × item interaction graph that similarity measures run on: ids mapped to indices,
duplicates merged, and the per-user / per-item list caps of production SWING applied.

Caps are applied in a fixed order, both by one deterministic rule:

1. ``max_items_per_user``: each user keeps at most that many items;
2. ``max_users_per_item``: then each item keeps at most that many of the remaining users.

``cap_order="recent"`` keeps the interactions with the latest timestamp (ties: the lower
index of the other side); ``"random"`` gives every distinct (user, item) pair one random
priority drawn from ``numpy.random.default_rng(seed)`` in (user, item) index order and keeps
the highest priorities, so the result depends only on the pairs, the seed and the caps —
not on row order. Entities keep their index even when caps remove all their interactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
import scipy.sparse as sp

from knowrec.errors import ConfigError, DataFormatError

CapOrder = Literal["recent", "random"]


@dataclass(frozen=True)
class Bipartite:
    """A binary user × item graph: ``matrix[u, i] == 1`` when user ``user_ids[u]`` interacted
    with item ``item_ids[i]`` (after de-duplication and caps). Ids are sorted ascending."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    matrix: sp.csr_array

    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def user_items(self) -> sp.csr_array:
        """Users × items CSR (rows: each user's item indices, sorted)."""
        return self.matrix

    def item_users(self) -> sp.csr_array:
        """Items × users CSR (rows: each item's user indices, sorted)."""
        return sp.csr_array(self.matrix.T.tocsr())


def build_bipartite(
    data: pl.DataFrame | sp.sparray | sp.spmatrix,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    max_items_per_user: int | None = None,
    max_users_per_item: int | None = None,
    cap_order: CapOrder = "recent",
    seed: int = 0,
) -> Bipartite:
    """Build the capped interaction graph from a polars frame or a users × items sparse matrix.

    A frame needs ``user_col`` and ``item_col`` (any sortable dtype, no nulls), and
    ``time_col`` only when a cap is set with ``cap_order="recent"``; repeated (user, item)
    rows count once, at their latest time. A sparse matrix has users as rows and items as
    columns; every stored non-zero is an interaction and ids are the row / column indices.
    A matrix has no timestamps, so capping it needs ``cap_order="random"``.
    """
    _check_cap("max_items_per_user", max_items_per_user)
    _check_cap("max_users_per_item", max_users_per_item)
    if cap_order not in ("recent", "random"):
        raise ConfigError(f"cap_order must be 'recent' or 'random', got {cap_order!r}")
    capped = max_items_per_user is not None or max_users_per_item is not None
    need_time = capped and cap_order == "recent"

    if isinstance(data, pl.DataFrame):
        user_ids, item_ids, users, items, times = _from_frame(
            data, user_col, item_col, time_col if need_time else None
        )
    elif sp.issparse(data):
        if need_time:
            raise ConfigError(
                "cap_order='recent' needs timestamps, which a sparse matrix does not carry: "
                "pass a polars frame with a time column, or use cap_order='random'"
            )
        user_ids, item_ids, users, items = _from_matrix(data)
        times = None
    else:
        raise ConfigError(
            "expected a polars DataFrame or a scipy sparse users × items matrix, "
            f"got {type(data).__name__}"
        )

    n_users, n_items = len(user_ids), len(item_ids)
    users, items, times = _dedupe(users, items, times, n_items)
    if capped and users.size:
        if cap_order == "recent":
            assert times is not None
            prio: np.ndarray = times
        else:
            prio = np.random.default_rng(seed).random(users.size)
        keep = np.ones(users.size, dtype=bool)
        if max_items_per_user is not None:
            keep &= _top_per_group(users, items, prio, max_items_per_user)
        if max_users_per_item is not None:
            sel = np.flatnonzero(keep)
            keep_items = _top_per_group(items[sel], users[sel], prio[sel], max_users_per_item)
            keep[sel[~keep_items]] = False
        users, items = users[keep], items[keep]

    matrix = sp.csr_array(
        (np.ones(users.size, dtype=np.float64), (users, items)), shape=(n_users, n_items)
    )
    matrix.sort_indices()
    return Bipartite(user_ids=user_ids, item_ids=item_ids, matrix=matrix)


def _check_cap(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer or None, got {value!r}")


def _index(series: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ids and each row's index into them."""
    uniq = series.unique().sort()
    return uniq.to_numpy(), uniq.search_sorted(series).to_numpy().astype(np.int64)


def _from_frame(
    df: pl.DataFrame, user_col: str, item_col: str, time_col: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    needed = [user_col, item_col] + ([time_col] if time_col is not None else [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        hint = " (set time_col, or use cap_order='random')" if time_col in missing else ""
        raise ConfigError(
            f"interactions have no column(s) {missing}{hint}; columns are {df.columns}"
        )
    for col in needed:
        nulls = df[col].null_count()
        if nulls:
            row = int(df[col].is_null().arg_true()[0])
            raise DataFormatError(
                f"{nulls} null value(s) in an id/time column", line=row, column=col
            )
    user_ids, users = _index(df[user_col])
    item_ids, items = _index(df[item_col])
    times = None
    if time_col is not None:
        t = df[time_col]
        if t.dtype.is_temporal():
            t = t.to_physical()
        if not t.dtype.is_numeric():
            raise DataFormatError(
                f"time column must be numeric or temporal, got {t.dtype}", column=time_col
            )
        times = t.cast(pl.Float64).to_numpy()
    return user_ids, item_ids, users, items, times


def _from_matrix(m: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if m.ndim != 2:
        raise ConfigError(f"expected a 2-D users × items matrix, got shape {m.shape}")
    coo = sp.coo_array(m)
    nz = coo.data != 0
    n_users, n_items = coo.shape
    return (
        np.arange(n_users, dtype=np.int64),
        np.arange(n_items, dtype=np.int64),
        coo.row[nz].astype(np.int64),
        coo.col[nz].astype(np.int64),
    )


def _dedupe(
    users: np.ndarray, items: np.ndarray, times: np.ndarray | None, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Distinct (user, item) pairs in (user, item) order, each with its latest time."""
    key = users * max(n_items, 1) + items
    if times is None:
        key = np.unique(key)
        return key // max(n_items, 1), key % max(n_items, 1), None
    order = np.lexsort((-times, key))
    key, times = key[order], times[order]
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, times = key[first], times[first]
    return key // max(n_items, 1), key % max(n_items, 1), times


def _top_per_group(
    group: np.ndarray, other: np.ndarray, prio: np.ndarray, limit: int
) -> np.ndarray:
    """Mask of the ``limit`` highest-priority rows per group (ties: lower ``other`` first)."""
    order = np.lexsort((other, -prio, group))
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, g.size])
    rank = np.arange(g.size) - np.repeat(starts, sizes)
    keep = np.zeros(g.size, dtype=bool)
    keep[order[rank < limit]] = True
    return keep
