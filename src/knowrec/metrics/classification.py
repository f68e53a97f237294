"""Pointwise and pairwise metrics: AUC, group AUC, log loss and pairwise accuracy.

All are O(n log n) and NumPy-vectorised. Score ties always count one half.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from knowrec.metrics._common import (
    IntArray,
    as_binary,
    as_float,
    dense_rank,
    group_codes,
    grouping,
    run_lengths,
    tied_pairs,
    warn_undefined,
)

__all__ = ["auc", "gauc", "log_loss", "pairwise_accuracy"]


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (Mann–Whitney U / (n_pos · n_neg)).

    ``y_true`` holds 0/1 (or bools); a (positive, negative) pair with tied scores counts 1/2,
    which equals the trapezoidal ROC AUC and ``sklearn.metrics.roc_auc_score``.

    Degenerate input: empty, or one class only → ``nan`` and an :class:`UndefinedMetricWarning`.
    """
    y = as_binary("y_true", y_true)
    s = as_float("y_score", y_score, y.shape[0])
    pos = np.sort(s[y == 1])
    neg = np.sort(s[y == 0])
    if pos.size == 0 or neg.size == 0:
        return warn_undefined("auc", "y_true holds only one class (or is empty)")
    # For each positive: negatives strictly below (left) + negatives at or below (right).
    twice_u = int(np.searchsorted(neg, pos, "left").sum()) + int(
        np.searchsorted(neg, pos, "right").sum()
    )
    return twice_u / (2 * pos.size * neg.size)


def gauc(y_true: ArrayLike, y_score: ArrayLike, groups: ArrayLike) -> float:
    """Group AUC as in DIN: per-group AUC averaged with weights = group size (rows).

    ``groups`` holds a user or impression id per row (any sortable ids). Ties count 1/2 as in
    :func:`auc`. Groups holding one class only have no AUC and are skipped (they carry no
    weight). If every group is skipped (or the input is empty) → ``nan`` and an
    :class:`UndefinedMetricWarning`.
    """
    y = as_binary("y_true", y_true)
    n = y.shape[0]
    s = as_float("y_score", y_score, n)
    codes = group_codes(groups, n)
    per_group, sizes = _group_auc(y, s, codes)
    ok = ~np.isnan(per_group)
    if not ok.any():
        return warn_undefined("gauc", "no group holds both classes")
    w = sizes[ok].astype(np.float64)
    return float(np.dot(per_group[ok], w) / w.sum())


def _group_auc(
    y: np.ndarray, s: np.ndarray, codes: tuple[IntArray, int] | None
) -> tuple[np.ndarray, IntArray]:
    """Per-group AUC (``nan`` for single-class groups) and group sizes, via average ranks."""
    n = y.shape[0]
    ds, levels = dense_rank(s)
    g = grouping(codes, [(ds, levels)], n, stable=False)
    if n == 0:
        return np.zeros(0), g.sizes
    ss = ds[g.order]
    yy = y[g.order]
    blocks = run_lengths(g.code, ss)  # runs of tied scores inside a group
    first = np.cumsum(blocks) - blocks
    avg_pos = first + (blocks - 1) / 2.0  # 0-based average position of each tie block
    rank = np.repeat(avg_pos, blocks) - g.starts[g.code] + 1.0  # 1-based rank in its group
    n_pos = np.bincount(g.code, weights=yy, minlength=g.n_groups)
    n_neg = g.sizes - n_pos
    rank_sum = np.bincount(g.code, weights=yy * rank, minlength=g.n_groups)
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_group = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    return per_group, g.sizes


def log_loss(y_true: ArrayLike, y_prob: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy, probabilities clipped to ``[eps, 1 - eps]``.

    ``y_true`` holds labels in [0, 1] (0/1, or soft targets); ``y_prob`` must lie in [0, 1]
    (logits are rejected with ``ValueError``). Natural log. Empty input → ``nan`` and an
    :class:`UndefinedMetricWarning`.
    """
    y = as_float("y_true", y_true)
    p = as_float("y_prob", y_prob, y.shape[0])
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    if ((y < 0) | (y > 1)).any():
        raise ValueError("y_true must lie in [0, 1]")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("y_prob must lie in [0, 1] (probabilities, not logits)")
    if y.size == 0:
        return warn_undefined("log_loss", "empty input")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def pairwise_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike | None = None
) -> float:
    """Pairwise accuracy (docs/explore.md): the share of differently-labelled pairs ordered rightly.

    Over all pairs i, j with ``y_true[i] < y_true[j]`` (labels may be graded or real), a pair
    scores 1 if ``y_pred[i] < y_pred[j]``, 1/2 if the predictions tie, 0 otherwise; PA is
    the total over the number of such pairs. Pairs with equal labels are not counted at all.
    With binary labels this equals :func:`auc`. With ``groups``, only pairs inside the same
    group are formed and all groups' pairs are pooled (micro average).

    O(n log n): rows sorted by prediction, then concordant pairs are counted either with one
    O(n) pass per bit of the number of distinct labels (few label levels, e.g. 0–4) or with
    a bottom-up merge count (real-valued labels). No differently-labelled pair (empty input,
    one label, or one label per group) → ``nan`` and an :class:`UndefinedMetricWarning`; all
    predictions tied → 0.5.
    """
    y = as_float("y_true", y_true)
    n = y.shape[0]
    p = as_float("y_pred", y_pred, n)
    codes = group_codes(groups, n)
    v, n_labels = dense_rank(y)
    dp, n_preds = dense_rank(p)
    # Rows by group, prediction ascending, and label *descending* among tied predictions, so
    # that a tied-prediction pair never looks like an ascending (concordant) pair below.
    g = grouping(codes, [(dp, n_preds), (n_labels - 1 - v, max(n_labels, 1))], n, stable=False)
    vs = v[g.order]
    ps = dp[g.order]
    all_pairs = int((g.sizes * (g.sizes - 1) // 2).sum())
    same_label = _pairs_with_equal_key(g.code * max(n_labels, 1) + vs, g.n_groups * n_labels)
    differing = all_pairs - same_label
    if differing == 0:
        return warn_undefined("pairwise_accuracy", "no pair with different labels")
    pred_ties = tied_pairs(g.code, ps) - tied_pairs(g.code, ps, vs)
    label_bits = max(n_labels - 1, 1).bit_length()
    if 3 * label_bits <= max(n, 2).bit_length():  # few label levels: one pass per label bit
        concordant = _ascending_pairs_bits(vs, g.starts[g.code], g.sizes[g.code], n_labels - 1)
    else:  # many label levels: one merge pass per bit of n, groups folded into the values
        folded = g.code * n_labels + vs
        if (g.n_groups * n_labels + 2) * 4 * n >= 2**62:
            folded = dense_rank(folded)[0]
        cross = (n * n - int((g.sizes * g.sizes).sum())) // 2  # pairs in different groups
        concordant = _ascending_pairs_merge(folded) - cross
    return (concordant + 0.5 * pred_ties) / differing


def _pairs_with_equal_key(key: IntArray, levels: int) -> int:
    """Number of unordered pairs of rows with equal ``key`` (``0 <= key < levels``)."""
    if key.size == 0:
        return 0
    counts = (
        np.bincount(key, minlength=levels)
        if levels <= 4 * key.size + 1024
        else np.unique(key, return_counts=True)[1]
    )
    return int((counts * (counts - 1) // 2).sum())


def _ascending_pairs_bits(values: IntArray, start: IntArray, size: IntArray, max_value: int) -> int:
    """Pairs i < j in the same bucket with ``values[i] < values[j]``, in O(n · log2 max_value).

    ``start``/``size`` give each row's bucket (a contiguous slice). A pair is counted at the
    highest bit where the two values differ: at bit b, inside each bucket of rows that agree
    on all higher bits, every row with bit b set is paired with the earlier rows with bit b
    clear. Rows are then stably partitioned on bit b (clear first) to refine the buckets,
    which keeps the original order inside each bucket for the next, lower bit.
    """
    n = values.shape[0]
    if n < 2 or max_value < 1:
        return 0
    cur = values.astype(np.int64, copy=True)
    start = start.astype(np.int64, copy=True)
    size = size.astype(np.int64, copy=True)
    idx = np.arange(n, dtype=np.int64)
    total = 0
    for b in range(int(max_value).bit_length() - 1, -1, -1):
        bit = (cur >> b) & 1
        zeros = 1 - bit
        zeros_incl = np.cumsum(zeros)
        zeros_excl = zeros_incl - zeros
        at_start = zeros_excl[start]
        zeros_before = zeros_excl - at_start  # clear-bit rows earlier in the same bucket
        total += int(zeros_before[bit == 1].sum())
        if b == 0:
            break
        zeros_in = zeros_incl[start + size - 1] - at_start
        ones_before = (idx - start) - zeros_before
        set_ = bit == 1
        new_pos = np.where(set_, start + zeros_in + ones_before, start + zeros_before)
        new_start = np.where(set_, start + zeros_in, start)
        new_size = np.where(set_, size - zeros_in, zeros_in)
        cur[new_pos] = cur.copy()
        start[new_pos] = new_start
        size[new_pos] = new_size
    return total


def _ascending_pairs_merge(values: IntArray) -> int:
    """Pairs i < j with ``values[i] < values[j]`` (values >= 0), by a bottom-up merge sort.

    The input is padded with a smaller-than-all value up to a power of two, then each pass
    merges pairs of sorted blocks of width w with one stable (run-aware) sort of offset keys.
    Left-block rows get the odd tie-break bit, so a right-block row lands after exactly the
    left rows smaller than it: its merged position, less the pair start and its rank among
    the right rows, is that count. O(n log n), one sort of near-sorted data per pass.
    """
    n = values.shape[0]
    if n < 2:
        return 0
    size = 1 << (n - 1).bit_length()
    span = 2 * (int(values.max()) + 2)
    a = np.zeros(size, dtype=np.int64)
    a[:n] = values
    a[:n] += 1  # 0 is the padding, at the tail: never smaller than a later row
    pos = np.arange(size, dtype=np.int64)
    total = 0
    w = 1
    while w < size:
        p = size // (2 * w)
        off = np.arange(p, dtype=np.int64)[:, None] * span
        key = a.reshape(p, 2, w) * 2 + off[:, :, None]
        key[:, 0, :] += 1  # left rows sort after equal right rows
        key = key.reshape(-1)
        key.sort(kind="stable")
        right = (key & 1) ^ 1
        total += int(np.dot(pos, right))
        total -= 2 * w * w * (p * (p - 1) // 2) + p * (w * (w - 1) // 2)
        a = ((key.reshape(p, 2 * w) - off) >> 1).reshape(-1)
        w *= 2
    return total
