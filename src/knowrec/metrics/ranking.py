"""Top-k ranking metrics over flat arrays with a group (query / user / impression) id per row.

Conventions shared by every function here:

* Inputs are flat, equal-length arrays: ``y_true`` (relevance, graded or 0/1), ``y_score``
  (the model's scores, higher = ranked earlier) and ``groups`` (one id per row; ``None`` =
  all rows form one group). Each group is ranked on its own; the result is the unweighted
  mean over groups.
* Ties in ``y_score``: with ``ties="stable"`` (default) tied rows keep their original row
  order (a stable sort by descending score). Beware that this rewards an input order that
  lists relevant rows first; ``ties="pessimistic"`` places the least relevant of tied rows
  first instead (the worst case), which a constant scorer cannot exploit.
  (``sklearn.metrics.ndcg_score`` averages over tied orders instead; the two agree on
  untied scores.)
* An item is *relevant* when ``y_true > 0``. Groups without any relevant item have no
  defined recall / NDCG / MRR / hit rate / precision and are left out of the mean, for
  every @k metric alike. If no group is left (or the input is empty) the result is ``nan``
  with an :class:`UndefinedMetricWarning`.
* A group with fewer than ``k`` rows is ranked in full (see each metric for its
  normalisation).
* Discount at 1-based rank i: ``1 / log2(i + 1)``; gain is linear in the relevance (as in
  ``sklearn.metrics.ndcg_score``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from knowrec.metrics._common import (
    FloatArray,
    Grouping,
    IntArray,
    as_binary,
    as_float,
    check_k,
    dense_rank,
    group_codes,
    grouping,
    warn_undefined,
)

__all__ = [
    "click_ndcg_at_k",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "quality_filtered_click_ndcg_at_k",
    "recall_at_k",
    "reco_dcg_at_k",
]

Ties = Literal["stable", "pessimistic"]


class _Ranked:
    """Rows ranked inside their groups: relevance in ranked order, positions, top-k mask."""

    def __init__(
        self,
        name: str,
        y_true: ArrayLike,
        y_score: ArrayLike,
        groups: ArrayLike | None,
        k: int,
        ties: Ties,
        *,
        true_name: str = "y_true",
        score_name: str = "y_score",
        y: FloatArray | None = None,
    ) -> None:
        self.name = name
        self.k = check_k(k)
        if ties not in ("stable", "pessimistic"):
            raise ValueError(f"ties must be 'stable' or 'pessimistic', got {ties!r}")
        if y is None:
            y = as_float(true_name, y_true)
            if (y < 0).any():
                raise ValueError(f"{true_name} must be non-negative (relevance)")
        n = y.shape[0]
        s = as_float(score_name, y_score, n)
        self.codes = group_codes(groups, n)
        keys = [dense_rank(-s)]
        if ties == "pessimistic":
            keys.append(dense_rank(y))
        self.y = y
        self.g: Grouping = grouping(self.codes, keys, n, stable=True)
        self.rel = y[self.g.order]
        self.pos: IntArray = self.g.position
        self.top = self.pos < self.k

    def per_group(self, values: FloatArray) -> FloatArray:
        """Sum of ``values`` (in ranked order) over each group's top k."""
        weights = np.where(self.top, values, 0.0)
        return np.bincount(self.g.code, weights=weights, minlength=self.g.n_groups).astype(
            np.float64, copy=False
        )

    def discount(self) -> FloatArray:
        return 1.0 / np.log2(self.pos + 2.0)

    def ideal_dcg(self) -> FloatArray:
        """DCG@k of each group's best order (relevance descending)."""
        ideal = grouping(self.codes, [dense_rank(-self.y)], self.y.shape[0], stable=False)
        # Same group layout as self.g, so positions and the top-k mask carry over.
        return self.per_group(self.y[ideal.order] * self.discount())

    def hits(self) -> tuple[FloatArray, FloatArray]:
        """Relevant rows in each group's top k, and relevant rows in each group."""
        relevant = (self.rel > 0).astype(np.float64)
        n_rel = np.bincount(self.g.code, weights=relevant, minlength=self.g.n_groups)
        return self.per_group(relevant), n_rel

    def mean(self, values: FloatArray, defined: np.ndarray) -> float:
        if not defined.any():
            reason = "no group has a relevant item (or input is empty)"
            return warn_undefined(self.name, reason, stacklevel=4)
        return float(values[defined].mean())


def ndcg_at_k(
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int,
    groups: ArrayLike | None = None,
    *,
    ties: Ties = "stable",
) -> float:
    """Mean NDCG@k: DCG@k of the ranking over DCG@k of the ideal ranking, per group.

    Linear gain ``y_true``; a group shorter than k is summed over its rows. Groups with no
    relevant item (ideal DCG 0) are left out; none left → ``nan`` + warning.
    """
    r = _Ranked("ndcg_at_k", y_true, y_score, groups, k, ties)
    dcg = r.per_group(r.rel * r.discount())
    idcg = r.ideal_dcg()
    ok = idcg > 0
    return r.mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=ok), ok)


def recall_at_k(
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int,
    groups: ArrayLike | None = None,
    *,
    ties: Ties = "stable",
) -> float:
    """Mean Recall@k: relevant items in the top k / all relevant items of the group.

    Groups with no relevant item are left out; none left → ``nan`` + warning.
    """
    r = _Ranked("recall_at_k", y_true, y_score, groups, k, ties)
    hit, n_rel = r.hits()
    ok = n_rel > 0
    return r.mean(np.divide(hit, n_rel, out=np.zeros_like(hit), where=ok), ok)


def precision_at_k(
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int,
    groups: ArrayLike | None = None,
    *,
    ties: Ties = "stable",
) -> float:
    """Mean Precision@k: relevant items in the top k / k.

    The divisor is always k, so a group with fewer than k rows cannot reach 1. Groups with
    no relevant item are left out (as for the other @k metrics); none left → ``nan`` +
    warning.
    """
    r = _Ranked("precision_at_k", y_true, y_score, groups, k, ties)
    hit, n_rel = r.hits()
    return r.mean(hit / r.k, n_rel > 0)


def hit_rate_at_k(
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int,
    groups: ArrayLike | None = None,
    *,
    ties: Ties = "stable",
) -> float:
    """Mean HitRate@k: share of groups with at least one relevant item in the top k.

    Groups with no relevant item are left out; none left → ``nan`` + warning.
    """
    r = _Ranked("hit_rate_at_k", y_true, y_score, groups, k, ties)
    hit, n_rel = r.hits()
    return r.mean((hit > 0).astype(np.float64), n_rel > 0)


def mrr_at_k(
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int,
    groups: ArrayLike | None = None,
    *,
    ties: Ties = "stable",
) -> float:
    """Mean reciprocal rank @k: 1 / (1-based rank of the first relevant item), 0 if it is
    not in the top k.

    Groups with no relevant item are left out; none left → ``nan`` + warning.
    """
    r = _Ranked("mrr_at_k", y_true, y_score, groups, k, ties)
    _, n_rel = r.hits()
    rows = np.flatnonzero(r.top & (r.rel > 0))  # ranked order: first row per group comes first
    codes = r.g.code[rows]
    first = rows[np.concatenate(([True], codes[1:] != codes[:-1]))] if rows.size else rows
    rr = np.zeros(r.g.n_groups)
    rr[r.g.code[first]] = 1.0 / (r.pos[first] + 1.0)
    return r.mean(rr, n_rel > 0)


def reco_dcg_at_k(
    judge_scores: ArrayLike,
    ranking_scores: ArrayLike,
    k: int,
    groups: ArrayLike | None = None,
    *,
    ties: Ties = "stable",
) -> float:
    """Mean RecoDCG@k (docs/explore.md), in 0–100.

    ``RecoDCG@k = Σ_{i≤k} rel_i / log2(i+1) / Σ_{i≤k} 1 / log2(i+1)`` with ``rel`` = judge
    score (0–4) × 25, items ranked by ``ranking_scores`` descending. A group (trigger) with
    fewer than k candidates sums both numerator and normaliser over the positions present,
    so every non-empty group has a value (a group of all-0 judge scores scores 0, and is not
    left out). Empty input → ``nan`` + warning.
    """
    judge = as_float("judge_scores", judge_scores)
    if ((judge < 0) | (judge > 4)).any():
        raise ValueError("judge_scores must lie in [0, 4]")
    r = _Ranked(
        "reco_dcg_at_k", None, ranking_scores, groups, k, ties, score_name="ranking_scores", y=judge
    )
    disc = r.discount()
    value = r.per_group(25.0 * r.rel * disc) / r.per_group(disc)
    return r.mean(value, np.ones(r.g.n_groups, dtype=bool))


def click_ndcg_at_k(
    clicked: ArrayLike,
    scores: ArrayLike,
    k: int,
    groups: ArrayLike | None = None,
    *,
    ties: Ties = "stable",
) -> float:
    """Mean ClickNDCG@k (docs/explore.md): NDCG@k with relevance 100 for a satisfied click, else 0.

    ``clicked`` is 0/1 per candidate, ``groups`` the impression (slate) id. The relevance
    scale cancels in NDCG, so the result lies in [0, 1] and equals :func:`ndcg_at_k` on the
    0/1 clicks. Impressions without a click are left out; none left → ``nan`` + warning.
    """
    c = as_binary("clicked", clicked)
    r = _Ranked("click_ndcg_at_k", None, scores, groups, k, ties, score_name="scores", y=c)
    dcg = r.per_group(100.0 * r.rel * r.discount())
    idcg = 100.0 * r.ideal_dcg()
    ok = idcg > 0
    return r.mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=ok), ok)


def quality_filtered_click_ndcg_at_k(
    clicked: ArrayLike,
    scores: ArrayLike,
    judge_scores: ArrayLike,
    k: int,
    groups: ArrayLike | None = None,
    threshold: float = 1.0,
    *,
    ties: Ties = "stable",
) -> float:
    """ClickNDCG@k after dropping impressions with a low-quality click (docs/explore.md).

    An impression (group) is dropped when *any* of its clicked candidates has a judge score
    ``<= threshold`` (default 1, the paper's cut); the rest are scored by
    :func:`click_ndcg_at_k`. ``judge_scores`` (0–4) is only read on clicked rows and may be
    NaN elsewhere. No impression left, or none with a click → ``nan`` + warning.
    """
    c = as_binary("clicked", clicked)
    n = c.shape[0]
    s = as_float("scores", scores, n)
    judge = as_float("judge_scores", judge_scores, n, allow_nan=True)
    check_k(k)
    on_click = judge[c == 1]
    if np.isnan(on_click).any():
        raise ValueError("judge_scores must be finite on clicked rows")
    if ((on_click < 0) | (on_click > 4)).any():
        raise ValueError("judge_scores must lie in [0, 4]")
    codes = group_codes(groups, n)
    bad = (c == 1) & ~(judge > threshold)  # NaN only occurs on unclicked rows
    if codes is None:
        keep = np.full(n, not bad.any())
    else:
        dropped = np.zeros(max(codes[1], 1), dtype=bool)
        dropped[codes[0][bad]] = True
        keep = ~dropped[codes[0]]
    if not keep.any():
        return warn_undefined(
            "quality_filtered_click_ndcg_at_k", "every impression was filtered out"
        )
    kept_groups = None if codes is None else codes[0][keep]
    return click_ndcg_at_k(c[keep], s[keep], k, kept_groups, ties=ties)
