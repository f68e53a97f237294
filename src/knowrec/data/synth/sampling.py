"""Time units and the vectorised random draws the movie and news generators share."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
MS_PER_MIN = 60_000
EPOCH = datetime(1970, 1, 1)


def ms_to_datetime(ms: np.ndarray, name: str) -> pl.Series:
    """Epoch milliseconds as a ``Datetime("ms")`` column."""
    return pl.Series(name, ms.astype(np.int64)).cast(pl.Datetime("ms"))


def epoch_ms(dt: datetime) -> int:
    """Milliseconds since the epoch."""
    return int((dt - EPOCH) / timedelta(milliseconds=1))


def ms_to_iso(ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 string (for ``meta``)."""
    return (EPOCH + timedelta(milliseconds=int(ms))).isoformat()


def pick(rng: np.random.Generator, seq: list[Any]) -> Any:
    """One element of ``seq``, uniformly."""
    return seq[int(rng.integers(len(seq)))]


def sample_categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) probability matrix (rows need not be normalised)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def ranked_topk(keys: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the ``k[r]`` largest keys of each row ``r``, best first."""
    kmax = int(k.max(initial=0))
    if kmax == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if kmax < keys.shape[1]:
        part = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
    else:
        part = np.broadcast_to(np.arange(keys.shape[1]), keys.shape)
    vals = np.take_along_axis(keys, part, axis=1)
    order = np.take_along_axis(part, np.argsort(-vals, axis=1, kind="stable"), axis=1)
    take = np.arange(order.shape[1])[None, :] < k[:, None]
    rows, ranks = np.nonzero(take)
    return rows, order[rows, ranks]


def gumbel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard Gumbel noise in float32 (fast; used for sampling without replacement)."""
    u = rng.random(shape, dtype=np.float32)
    with np.errstate(divide="ignore"):
        return -np.log(-np.log(u))


def group_starts(keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a row starts a new run of equal ``keys`` (rows sorted)."""
    start = np.ones(keys.shape[0], dtype=bool)
    start[1:] = keys[1:] != keys[:-1]
    return start
