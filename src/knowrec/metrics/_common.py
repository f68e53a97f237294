"""Shared pieces of the metrics: the warning class, input coercion and grouping."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the input (e.g. one class only); the result is ``nan``."""


def warn_undefined(metric: str, reason: str, *, stacklevel: int = 3) -> float:
    """Emit :class:`UndefinedMetricWarning` for ``metric`` and return ``nan``."""
    msg = f"{metric}: {reason}; returning nan"
    warnings.warn(msg, UndefinedMetricWarning, stacklevel=stacklevel)
    return float("nan")


def as_float(
    name: str, values: ArrayLike, n: int | None = None, *, allow_nan: bool = False
) -> FloatArray:
    """Coerce ``values`` to a 1-D float64 array; checks length ``n`` and finiteness.

    Raises ``ValueError`` naming ``name`` for non-numeric, non-1-D, wrong-length or
    non-finite input (NaN is let through when ``allow_nan``; infinities never are).
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has length {arr.shape[0]}, expected {n}")
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite, got {arr[i]} at position {i}")
    return arr


def as_binary(name: str, values: ArrayLike, n: int | None = None) -> FloatArray:
    """Like :func:`as_float`, and every value must be 0 or 1 (bools are accepted)."""
    arr = as_float(name, values, n)
    if not np.all((arr == 0) | (arr == 1)):
        bad = arr[(arr != 0) & (arr != 1)][0]
        raise ValueError(f"{name} must hold only 0 and 1, got {bad}")
    return arr


def check_k(k: int) -> int:
    """``k`` must be an integer ≥ 1."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def dense_rank(x: NDArray[np.generic]) -> tuple[IntArray, int]:
    """Dense 0-based ranks of ``x`` (equal values share a rank) and the number of levels."""
    n = x.shape[0]
    codes = np.zeros(n, dtype=np.int64)
    if n == 0:
        return codes, 0
    order = np.argsort(x)
    xs = x[order]
    step = np.empty(n, dtype=np.int64)
    step[0] = 0
    np.not_equal(xs[1:], xs[:-1], out=step[1:], casting="unsafe")
    codes[order] = np.cumsum(step)
    return codes, int(codes[order[-1]]) + 1


def group_codes(groups: ArrayLike | None, n: int) -> tuple[IntArray, int] | None:
    """Non-negative integer codes for ``groups`` (any sortable ids) and their range, or None.

    Codes preserve the order of the ids. Integer ids with a small range are shifted, other
    ids (floats, strings, objects) are densely ranked. Float ids must be finite.
    """
    if groups is None:
        return None
    arr = np.asarray(groups)
    if arr.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"groups has length {arr.shape[0]}, expected {n}")
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo < max(4 * n, 1 << 20):
            return (arr - arr.dtype.type(lo)).astype(np.int64), hi - lo + 1
    elif arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("groups must be finite")
    if arr.dtype.kind in "biuf":
        return dense_rank(arr)
    return np.unique(arr, return_inverse=True)[1].reshape(-1).astype(np.int64), n


@dataclass(frozen=True)
class Grouping:
    """Rows laid out group after group (groups in ascending id order).

    ``order`` maps sorted position → original row; ``code`` is the dense group index
    (0..G-1) at each sorted position; ``starts``/``sizes`` describe each group's slice.
    """

    order: IntArray
    code: IntArray
    starts: IntArray
    sizes: IntArray

    @property
    def n_groups(self) -> int:
        return int(self.starts.shape[0])

    @property
    def position(self) -> IntArray:
        """0-based position of each sorted row inside its group."""
        return np.arange(self.code.shape[0]) - self.starts[self.code]


def sort_rows(keys: list[tuple[IntArray, int]], n: int, *, stable: bool) -> IntArray:
    """Order of rows sorted by several dense integer keys (first is the most significant).

    Each key is ``(codes, levels)`` with ``0 <= codes < levels``. With ``stable``, rows equal
    on every key keep their original order.
    """
    if not keys:
        return np.arange(n, dtype=np.int64)
    total = 1
    for _, levels in keys:
        total *= max(levels, 1)
    if total < 2**62:
        combined = keys[0][0].astype(np.int64, copy=True)
        for codes, levels in keys[1:]:
            combined *= levels
            combined += codes
        order = np.argsort(combined, kind="stable" if stable else None)
    else:
        order = np.lexsort([codes for codes, _ in reversed(keys)])
    return order.astype(np.int64, copy=False)


def grouping(
    groups: tuple[IntArray, int] | None, keys: list[tuple[IntArray, int]], n: int, *, stable: bool
) -> Grouping:
    """Sort rows by group, then by ``keys`` (see :func:`sort_rows`), and describe the groups."""
    order = sort_rows(([groups] if groups is not None else []) + keys, n, stable=stable)
    if groups is None:
        code = np.zeros(n, dtype=np.int64)
        starts = np.zeros(min(n, 1), dtype=np.int64)
    else:
        g = groups[0][order]
        new = np.empty(n, dtype=bool)
        new[:1] = True
        np.not_equal(g[1:], g[:-1], out=new[1:])
        code = np.cumsum(new) - 1
        starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, n))
    return Grouping(order=order, code=code, starts=starts, sizes=sizes)


def run_lengths(*sorted_keys: NDArray[np.generic]) -> IntArray:
    """Lengths of the runs of equal rows in keys that are already sorted together."""
    n = sorted_keys[0].shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(n - 1, dtype=bool)
    for k in sorted_keys:
        change |= k[1:] != k[:-1]
    starts = np.flatnonzero(np.concatenate(([True], change)))
    return np.diff(np.append(starts, n))


def tied_pairs(*sorted_keys: NDArray[np.generic]) -> int:
    """Number of unordered pairs that are equal on every key (keys sorted together)."""
    m = run_lengths(*sorted_keys)
    return int((m * (m - 1) // 2).sum())
