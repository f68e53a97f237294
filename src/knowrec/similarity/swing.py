"""SWING similarity (docs/trawl.md), user–user and item–item, with top-k neighbours and positives.

Both sides are one formula over a bipartite graph of *targets* (the entities scored) and
*pivots* (the other side). With ``P_t`` the pivots of target t and ``T_p`` the targets of
pivot p::

    s(t, x) = Σ_{p ∈ P_t∩P_x} Σ_{q ∈ P_t∩P_x, q ≠ p}  w_p · w_q / (α + |T_p ∩ T_q|)

- ``side="item"``: targets are items, pivots users:
  ``s(i,j) = Σ_{u≠v ∈ U_i∩U_j} w_u·w_v / (α + |I_u∩I_v|)``, ``w_u = (|I_u| + c)^(-β)``.
- ``side="user"``: targets are users, pivots items:
  ``s(u,v) = Σ_{i≠j ∈ I_u∩I_v} w_i·w_j / (α + |U_i∩U_j|)``, ``w_i = (|U_i| + c)^(-β)``.

The sums run over *ordered* pairs, exactly as the TRAWL paper writes them, so every unordered pivot
pair counts twice. ``β = 0`` (default) gives ``w ≡ 1``, the plain formula; ``β > 0`` is the
industrial activity weighting, a factor ``w_p·w_q`` on each term. Degrees ``|I_u|``,
``|U_i|`` and intersections are those of the graph after caps (:mod:`.graph`).
LibRecommender's ``Swing`` computes a different variant (unordered user pairs, weights fixed
at ``1/√|I_u|``, denominator ``α + |I_u∩I_v| − 1``, float32): its scores are not comparable.

Algorithm (exact; numba, no per-pair Python loops): each unordered pair {t, x} is computed
once, from its smaller index t, and offered to the top-k lists of both. For a target t,
bucket its pivots by their other targets (``L_x = P_t ∩ P_x``, local pivot numbers in
ascending order) and walk the pivots a = 0, 1, … of t: the co-counts ``|T_a ∩ T_b|`` for
b > a (pass 1) become the pair weights, and every bucket x > t that holds a gains the
weights of its members after a (pass 2). Pass 1 reads one shared table of all pivot pairs'
co-counts, built once (n_pivots² uint16 counts, at most ``TABLE_MAX_BYTES`` = 256 MiB:
up to 11,585 pivots); past that it is computed per target from popcounts of 64-bit target
bitsets (≤ 64 MiB) or by scattering the buckets. Pass 2 does Σ_{x>t} |L_x|²/2 additions
per target, reading bucket entries of 16 bits (32 when t has over 65,535 pivots) to stay in
cache. Memory: the table, plus per thread one row of |P_t| weights, the buckets and arrays
of n_targets·(48 + 16·top_k) bytes: nothing grows with n_targets². Targets run in
``n_jobs`` threads (nogil), each with its own top-k lists, merged at the end, so results do
not depend on the thread count.
A pair's score depends only on the pair, so ties are exact float ties; scores that are
equal mathematically but reached by different sums may differ in the last bit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from threading import Lock, local
from typing import Any, Literal

import numba
import numpy as np
import polars as pl
import scipy.sparse as sp
from numba.core import types
from numba.extending import intrinsic

from knowrec.errors import ConfigError
from knowrec.progress import progress_bar
from knowrec.similarity.graph import Bipartite, CapOrder, build_bipartite

Side = Literal["user", "item"]

# Pass 1 (the pivot co-counts |T_a ∩ T_b|) in "auto" mode: one shared table of all pivot
# pairs (n_pivots² uint16, or uint32 from 65,536 targets on) when it fits TABLE_MAX_BYTES;
# otherwise per target, by bitsets when their word operations, weighted by _BITSET_COST, are
# cheaper than the scatter increments and the bitset is small.
TABLE_MAX_BYTES = 256 * 2**20
_BITSET_COST = 0.5
_BITSET_MAX_BYTES = 64 * 2**20
_PASS1 = {"auto": 0, "bitset": 1, "scatter": 2, "table": 3}


@dataclass(frozen=True)
class SwingResult:
    """Top-k SWING neighbours of every entity of one side.

    ``neighbours[r]`` holds indices into ``ids`` (best first; equal scores: smaller index,
    i.e. the smaller id), padded with -1 where an entity has fewer than k neighbours with a positive
    score; ``scores[r]`` the matching similarities, 0.0 in padded slots.
    """

    side: Side
    ids: np.ndarray
    neighbours: np.ndarray
    scores: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def top_k(self) -> int:
        return int(self.neighbours.shape[1])

    @property
    def positives(self) -> np.ndarray:
        """Index of each entity's most similar other entity, -1 when it has none."""
        return self.neighbours[:, 0].copy()

    def positive_ids(self) -> list[Any]:
        """Id of each entity's positive (aligned with ``ids``); None when it has none."""
        ids = self.ids.tolist()
        return [ids[p] if p >= 0 else None for p in self.positives.tolist()]

    def positives_frame(self) -> pl.DataFrame:
        """One row per entity: ``id``, ``positive_id`` and ``score`` (null without one)."""
        has = self.positives >= 0
        return pl.DataFrame(
            {
                "id": self.ids,
                "positive_id": pl.Series(self.positive_ids(), dtype=_dtype(self.ids)),
                "score": pl.Series(np.where(has, self.scores[:, 0], np.nan)).fill_nan(None),
            }
        )

    def to_frame(self) -> pl.DataFrame:
        """Long table of kept neighbours: ``id``, ``rank`` (0 = best), ``neighbour_id``,
        ``score``; entities without neighbours have no rows."""
        rows, ranks = np.nonzero(self.neighbours >= 0)
        return pl.DataFrame(
            {
                "id": pl.Series(self.ids[rows], dtype=_dtype(self.ids)),
                "rank": ranks.astype(np.int32),
                "neighbour_id": pl.Series(
                    self.ids[self.neighbours[rows, ranks]], dtype=_dtype(self.ids)
                ),
                "score": self.scores[rows, ranks],
            }
        )


def swing(
    data: pl.DataFrame | sp.sparray | sp.spmatrix | Bipartite,
    *,
    side: Side = "item",
    alpha: float = 1.0,
    beta: float = 0.0,
    c: float = 5.0,
    top_k: int = 10,
    max_users_per_item: int | None = None,
    max_items_per_user: int | None = None,
    cap_order: CapOrder = "recent",
    seed: int = 0,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    n_jobs: int | None = None,
    progress: bool = False,
    _pass1: Literal["auto", "bitset", "scatter", "table"] = "auto",
    _narrow_max: int = 2**16 - 1,
) -> SwingResult:
    """SWING top-k neighbours and positives for users (``side="user"``) or items.

    ``data``: a polars interactions frame, a users × items scipy sparse matrix, or a
    :class:`Bipartite` (caps and column arguments are then ignored). ``alpha`` ≥ 0 smooths
    the denominator; ``beta`` ≥ 0 and ``c`` ≥ 0 set the pivot weights
    ``(degree + c)^(-beta)`` (``beta=0``: no weighting). Caps and ``cap_order``/``seed``
    are applied by :func:`build_bipartite` before anything is counted. ``n_jobs`` threads
    (None: all available cores). Empty input gives an empty result; an entity with no other
    entity sharing two pivots with it gets no neighbour (positive -1 / None).
    """
    check_swing_args(side, alpha, beta, c, top_k)
    if _pass1 not in _PASS1:
        raise ConfigError(f"_pass1 must be one of {sorted(_PASS1)}, got {_pass1!r}")
    threads = _threads(n_jobs)

    if isinstance(data, Bipartite):
        graph = data
    else:
        graph = build_bipartite(
            data,
            user_col=user_col,
            item_col=item_col,
            time_col=time_col,
            max_items_per_user=max_items_per_user,
            max_users_per_item=max_users_per_item,
            cap_order=cap_order,
            seed=seed,
        )
    ui = graph.user_items()
    iu = graph.item_users()
    if side == "item":
        targets, pivots, ids = iu, ui, graph.item_ids
    else:
        targets, pivots, ids = ui, iu, graph.user_ids
    n_targets = targets.shape[0]
    params = {
        "side": side, "alpha": float(alpha), "beta": float(beta), "c": float(c),
        "top_k": int(top_k), "max_users_per_item": max_users_per_item,
        "max_items_per_user": max_items_per_user, "cap_order": cap_order, "seed": seed,
        "n_users": graph.n_users, "n_items": graph.n_items, "n_interactions": graph.nnz,
    }  # fmt: skip

    if n_targets == 0 or graph.nnz == 0:
        neighbours = np.full((n_targets, top_k), -1, dtype=np.int64)
        return SwingResult(side, ids, neighbours, np.zeros(neighbours.shape), params)

    t_ptr, t_idx = targets.indptr.astype(np.int64), targets.indices.astype(np.int32)
    p_ptr, p_idx = pivots.indptr.astype(np.int64), pivots.indices.astype(np.int32)
    degree = np.diff(p_ptr).astype(np.float64)
    weights = np.ones_like(degree) if beta == 0 else (degree + c) ** (-float(beta))
    # Only targets with two or more pivots can have a neighbour.
    anchors = np.flatnonzero(np.diff(t_ptr) >= 2).astype(np.int64)
    mode = _PASS1[_pass1]
    table = _cocount_table(t_ptr, t_idx, p_ptr, p_idx, n_targets, threads, mode)
    if table.size:
        mode = 3
    scratch = local()
    buffers: list[_Scratch] = []
    lock = Lock()

    def run(chunk: np.ndarray) -> int:
        buf = getattr(scratch, "buf", None)
        if buf is None:
            buf = scratch.buf = _Scratch(n_targets, top_k)
            with lock:
                buffers.append(buf)
        _swing_rows(
            t_ptr, t_idx, p_ptr, p_idx, weights, float(alpha), chunk, mode, table, _narrow_max,
            buf.count, buf.start, buf.cur, buf.local, buf.touched, buf.score,
            buf.neighbours, buf.scores,
        )  # fmt: skip
        return int(chunk.size)

    chunks = list(_chunks(anchors, threads))
    with progress_bar(f"SWING {side}s", n_targets, enabled=progress) as bar:
        bar.advance(n_targets - anchors.size)
        if threads == 1:
            for chunk in chunks:
                bar.advance(run(chunk))
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for done in pool.map(run, chunks):
                    bar.advance(done)
    if not buffers:  # no target has two pivots: nobody has a neighbour
        buffers.append(_Scratch(n_targets, top_k))
    neighbours, scores = buffers[0].neighbours, buffers[0].scores
    for other in buffers[1:]:
        _merge_top_k(neighbours, scores, other.neighbours, other.scores)
    return SwingResult(side, ids, neighbours, scores, params)


# ------------------------------------------------------------------------------- helpers


@dataclass
class _Scratch:
    """Per-thread work arrays indexed by target (zero between targets) and the thread's
    own top-k lists (merged at the end, so threads never write to shared memory)."""

    n: int
    k: int
    count: np.ndarray = field(init=False)
    start: np.ndarray = field(init=False)
    cur: np.ndarray = field(init=False)
    local: np.ndarray = field(init=False)
    touched: np.ndarray = field(init=False)
    score: np.ndarray = field(init=False)
    neighbours: np.ndarray = field(init=False)
    scores: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.neighbours = np.full((self.n, self.k), -1, dtype=np.int64)
        self.scores = np.zeros((self.n, self.k), dtype=np.float64)
        self.count = np.zeros(self.n, dtype=np.int64)
        self.start = np.zeros(self.n, dtype=np.int64)
        self.cur = np.zeros(self.n, dtype=np.int64)
        self.local = np.zeros(self.n, dtype=np.int64)
        self.touched = np.zeros(self.n, dtype=np.int64)
        self.score = np.zeros(self.n, dtype=np.float64)


def check_swing_args(side: str, alpha: float, beta: float, c: float, top_k: int) -> None:
    """A :class:`ConfigError` for a side or parameter that SWING does not take."""
    if side not in ("user", "item"):
        raise ConfigError(f"side must be 'user' or 'item', got {side!r}")
    _check_number("alpha", alpha, minimum=0.0)
    _check_number("beta", beta, minimum=0.0)
    _check_number("c", c, minimum=0.0)
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")


def _threads(n_jobs: int | None) -> int:
    if n_jobs is None or n_jobs == -1:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else (os.cpu_count() or 1))  # fmt: skip
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise ConfigError(f"n_jobs must be a positive integer, -1 or None, got {n_jobs!r}")
    return int(n_jobs)


def _check_number(name: str, value: float, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be finite and ≥ {minimum:g}, got {value!r}")


def _cocount_table(
    t_ptr: np.ndarray,
    t_idx: np.ndarray,
    p_ptr: np.ndarray,
    p_idx: np.ndarray,
    n_targets: int,
    threads: int,
    mode: int,
) -> np.ndarray:
    """``table[a, b] = |T_a ∩ T_b|`` (b > a) for all pivot pairs when pass 1 is "table", or
    "auto" and the table fits ``TABLE_MAX_BYTES``; otherwise an empty array."""
    n_pivots = p_ptr.size - 1
    dtype = np.dtype(np.uint16 if n_targets < 2**16 else np.uint32)
    if not (mode == 3 or (mode == 0 and n_pivots * n_pivots * dtype.itemsize <= TABLE_MAX_BYTES)):
        return np.zeros((0, 0), dtype=np.uint16)
    table = np.zeros((n_pivots, n_pivots), dtype=dtype)
    rows = list(_chunks(np.arange(n_pivots, dtype=np.int64), threads))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda r: _cocounts(p_ptr, p_idx, t_ptr, t_idx, r, table), rows))
    return table


def _chunks(anchors: np.ndarray, threads: int) -> Iterator[np.ndarray]:
    """About 100 chunks per thread, at least 16 targets each (progress and load balance)."""
    size = max(16, -(-anchors.size // (100 * threads)))
    for lo in range(0, anchors.size, size):
        yield anchors[lo : lo + size]


def _dtype(ids: np.ndarray) -> pl.DataType:
    return pl.Series(ids[:1]).dtype if ids.size else pl.Int64()


@intrinsic
def _popcount(typingctx: Any, x: Any) -> Any:
    """LLVM ``ctpop`` on a uint64 (one POPCNT instruction on x86-64)."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _offer(nb: np.ndarray, sc: np.ndarray, t: int, x: int, s: float) -> None:
    """Insert (x, s) into t's top-k list, kept sorted by (score desc, index asc)."""
    k = nb.shape[1]
    last = nb[t, k - 1]
    if last >= 0 and (s < sc[t, k - 1] or (s == sc[t, k - 1] and x > last)):
        return
    r = k - 1
    while r > 0:
        y = nb[t, r - 1]
        if y >= 0 and (s < sc[t, r - 1] or (s == sc[t, r - 1] and x > y)):
            break
        nb[t, r] = y
        sc[t, r] = sc[t, r - 1]
        r -= 1
    nb[t, r] = x
    sc[t, r] = s


@numba.njit(cache=True, nogil=True)
def _merge_top_k(nb: np.ndarray, sc: np.ndarray, nb2: np.ndarray, sc2: np.ndarray) -> None:
    """Offer every entry of another thread's top-k lists to ``nb``/``sc``."""
    for t in range(nb.shape[0]):
        for r in range(nb.shape[1]):
            if nb2[t, r] < 0:
                break
            _offer(nb, sc, t, nb2[t, r], sc2[t, r])


@numba.njit(cache=True, nogil=True)
def _swing_rows(
    t_ptr: np.ndarray,
    t_idx: np.ndarray,
    p_ptr: np.ndarray,
    p_idx: np.ndarray,
    w: np.ndarray,
    alpha: float,
    anchors: np.ndarray,
    mode: int,
    table: np.ndarray,
    narrow_max: int,
    count: np.ndarray,
    start: np.ndarray,
    cur: np.ndarray,
    lid: np.ndarray,
    touched: np.ndarray,
    score: np.ndarray,
    out_nb: np.ndarray,
    out_sc: np.ndarray,
) -> None:
    """For each target t in ``anchors``, compute s(t, x) for every x > t and offer it to the
    top-k lists of both t and x (s is symmetric, so each pair is computed once)."""
    for t in anchors:
        piv = t_idx[t_ptr[t] : t_ptr[t + 1]]
        n = piv.size
        # first[a]: where pivot a's targets start to matter; with the co-count table only
        # targets x > t need a bucket (T_a is sorted).
        first = np.empty(n, dtype=np.int64)
        for a in range(n):
            lo = p_ptr[piv[a]]
            hi = p_ptr[piv[a] + 1]
            first[a] = lo + np.searchsorted(p_idx[lo:hi], t, "right") if mode == 3 else lo
        # Bucket sizes |L_x| = |P_t ∩ P_x| of every target x sharing a pivot with t.
        nt = 0
        total = 0
        for a in range(n):
            p = piv[a]
            for k in range(first[a], p_ptr[p + 1]):
                x = p_idx[k]
                if count[x] == 0:
                    touched[nt] = x
                    nt += 1
                count[x] += 1
            total += p_ptr[p + 1] - first[a]
        off = 0
        pairs = 0
        for q in range(nt):
            x = touched[q]
            start[x] = off
            cur[x] = off
            lid[x] = q
            off += count[x]
            pairs += count[x] * (count[x] - 1) // 2
        # Pass 1 from the co-count table, by bitsets (popcount of shared targets) or by
        # scattering the buckets.
        words = (nt + 63) // 64
        use_bits = mode == 1 or (
            mode == 0
            and n * words * 8 <= _BITSET_MAX_BYTES
            and _BITSET_COST * (n * (n - 1) // 2) * words < pairs
        )
        # Pass 2 reads the buckets about |L_x|/2 times each: narrow entries keep them in cache.
        if n <= narrow_max:
            bucket16 = np.empty(total, dtype=np.uint16)
            _walk(t, piv, first, p_ptr, p_idx, w, alpha, mode == 3, use_bits, nt, table,
                  count, start, cur, lid, touched, score, bucket16)  # fmt: skip
        else:
            bucket32 = np.empty(total, dtype=np.int32)
            _walk(t, piv, first, p_ptr, p_idx, w, alpha, mode == 3, use_bits, nt, table,
                  count, start, cur, lid, touched, score, bucket32)  # fmt: skip
        # Unordered pair sums × 2 = the ordered-pair sum of the formula.
        for q in range(nt):
            x = touched[q]
            if x > t and score[x] > 0.0:
                s = 2.0 * score[x]
                _offer(out_nb, out_sc, t, x, s)
                _offer(out_nb, out_sc, x, t, s)
            count[x] = 0
            score[x] = 0.0


@numba.njit(cache=True, nogil=True)
def _walk(
    t: int,
    piv: np.ndarray,
    first: np.ndarray,
    p_ptr: np.ndarray,
    p_idx: np.ndarray,
    w: np.ndarray,
    alpha: float,
    use_table: bool,
    use_bits: bool,
    nt: int,
    table: np.ndarray,
    count: np.ndarray,
    start: np.ndarray,
    cur: np.ndarray,
    lid: np.ndarray,
    touched: np.ndarray,
    score: np.ndarray,
    bucket: np.ndarray,
) -> None:
    """Fill the buckets of target t, then walk its pivots adding pair weights to ``score``."""
    n = piv.size
    words = (nt + 63) // 64
    bits = np.zeros((n if use_bits else 0, words), dtype=np.uint64)
    # Buckets: L_x lists the local pivot numbers a (ascending) of P_t ∩ P_x.
    for a in range(n):
        p = piv[a]
        for k in range(first[a], p_ptr[p + 1]):
            x = p_idx[k]
            bucket[cur[x]] = a
            cur[x] += 1
            if use_bits:
                q = lid[x]
                bits[a, q >> 6] |= np.uint64(1) << np.uint64(q & 63)
    for q in range(nt):
        x = touched[q]
        cur[x] = start[x]
    # Walk pivots a in order; cur[x] is a's own slot in every bucket x that holds a.
    row = np.zeros(n, dtype=np.float64)
    for a in range(n):
        p = piv[a]
        lo = first[a]
        hi = p_ptr[p + 1]
        # row[b] = |T_a ∩ T_b| for b > a ...
        if use_table:
            counts = table[p]
            for b in range(a + 1, n):
                row[b] = counts[piv[b]]
        elif use_bits:
            ba = bits[a]
            for b in range(a + 1, n):
                bb = bits[b]
                shared = 0
                for j in range(words):
                    shared += _popcount(ba[j] & bb[j])
                row[b] = shared
        else:
            for b in range(a + 1, n):
                row[b] = 0.0
            for k in range(lo, hi):
                x = p_idx[k]
                for j in range(cur[x] + 1, start[x] + count[x]):
                    row[bucket[j]] += 1.0
        # ... then the pair weight w_a·w_b / (α + |T_a ∩ T_b|).
        wa = w[p]
        for b in range(a + 1, n):
            row[b] = wa * w[piv[b]] / (alpha + row[b])
        # Pass 2: every bucket x > t holding a gains the weights of its members after a.
        for k in range(lo, hi):
            x = p_idx[k]
            if x > t:
                j = cur[x] + 1
                end = start[x] + count[x]
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                while j + 3 < end:
                    s0 += row[bucket[j]]
                    s1 += row[bucket[j + 1]]
                    s2 += row[bucket[j + 2]]
                    s3 += row[bucket[j + 3]]
                    j += 4
                while j < end:
                    s0 += row[bucket[j]]
                    j += 1
                score[x] += (s0 + s1) + (s2 + s3)
            cur[x] += 1


@numba.njit(cache=True, nogil=True)
def _cocounts(
    p_ptr: np.ndarray,
    p_idx: np.ndarray,
    t_ptr: np.ndarray,
    t_idx: np.ndarray,
    rows: np.ndarray,
    table: np.ndarray,
) -> None:
    """``table[a, b] = |T_a ∩ T_b|`` for pivots a in ``rows`` and every b > a."""
    for a in rows:
        out = table[a]
        for k in range(p_ptr[a], p_ptr[a + 1]):
            x = p_idx[k]
            # P_x is sorted: walk it from the top down to a.
            for m in range(t_ptr[x + 1] - 1, t_ptr[x] - 1, -1):
                b = t_idx[m]
                if b <= a:
                    break
                out[b] += 1
