"""knowrec.metrics against sklearn and brute-force definitions, plus degenerate inputs."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import ndcg_score, roc_auc_score

from knowrec.metrics import (
    UndefinedMetricWarning,
    auc,
    click_ndcg_at_k,
    gauc,
    hit_rate_at_k,
    log_loss,
    mrr_at_k,
    ndcg_at_k,
    pairwise_accuracy,
    precision_at_k,
    quality_filtered_click_ndcg_at_k,
    recall_at_k,
    reco_dcg_at_k,
)
from knowrec.metrics.classification import _ascending_pairs_bits, _ascending_pairs_merge

RNG = np.random.default_rng(20261123)
FAST = settings(max_examples=60, deadline=None)


# --------------------------------------------------------------------------- references


def brute_pa(y: list[float], p: list[float]) -> float:
    num = den = 0.0
    for i in range(len(y)):
        for j in range(len(y)):
            if y[i] < y[j]:
                den += 1
                num += 1.0 if p[i] < p[j] else 0.5 if p[i] == p[j] else 0.0
    return num / den


def by_group(y, s, g):  # type: ignore[no-untyped-def]
    rows = defaultdict(list)
    for i, gi in enumerate(g):
        rows[gi].append(i)
    return [([y[i] for i in idx], [s[i] for i in idx]) for idx in rows.values()]


def ranked(y: list[float], s: list[float], ties: str = "stable") -> list[float]:
    """Relevance in ranked order: score descending, then row order (or relevance ascending)."""
    if ties == "stable":
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))
    else:
        order = sorted(range(len(s)), key=lambda i: (-s[i], y[i], i))
    return [y[i] for i in order]


def brute_topk(y, s, g, k, ties="stable"):  # type: ignore[no-untyped-def]
    out = defaultdict(list)
    for gy, gs in by_group(y, s, g):
        if not any(v > 0 for v in gy):
            continue
        r = ranked(gy, gs, ties)
        top = r[:k]
        disc = [1 / math.log2(i + 2) for i in range(len(top))]
        ideal = sorted(gy, reverse=True)[:k]
        out["ndcg"].append(
            sum(a * d for a, d in zip(top, disc, strict=False))
            / sum(a * d for a, d in zip(ideal, disc, strict=False))
        )
        hits = sum(v > 0 for v in top)
        out["recall"].append(hits / sum(v > 0 for v in gy))
        out["precision"].append(hits / k)
        out["hit"].append(float(hits > 0))
        first = next((i for i, v in enumerate(top) if v > 0), None)
        out["mrr"].append(0.0 if first is None else 1 / (first + 1))
    return {name: float(np.mean(v)) for name, v in out.items()}


TOPK = {
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "hit": hit_rate_at_k,
    "mrr": mrr_at_k,
}


# --------------------------------------------------------------------------- AUC / GAUC


@pytest.mark.parametrize("levels", [None, 2, 5, 50])
def test_auc_matches_sklearn_with_and_without_ties(levels: int | None) -> None:
    for _ in range(5):
        n = int(RNG.integers(2, 3000))
        y = RNG.random(n) < RNG.uniform(0.05, 0.95)
        y[:2] = [True, False]
        s = RNG.normal(size=n) if levels is None else RNG.integers(0, levels, n).astype(float)
        assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_all_scores_tied_is_half_and_accepts_lists() -> None:
    assert auc([0, 1, 1, 0], [3, 3, 3, 3]) == 0.5
    assert auc([0, 1], [0.1, 0.9]) == 1.0
    assert auc([1, 0], [0.1, 0.9]) == 0.0


@pytest.mark.parametrize("y", [[1, 1, 1], [0, 0], []])
def test_auc_single_class_or_empty_is_nan_with_warning(y: list[int]) -> None:
    with pytest.warns(UndefinedMetricWarning, match="auc: .*one class"):
        assert math.isnan(auc(y, np.arange(len(y), dtype=float)))


@FAST
@given(
    st.lists(st.tuples(st.booleans(), st.integers(-1000, 1000)), min_size=2, max_size=60).filter(
        lambda r: len({a for a, _ in r}) == 2
    )
)
def test_auc_properties(rows: list[tuple[bool, int]]) -> None:
    y = np.array([a for a, _ in rows])
    s = np.array([b for _, b in rows])
    a = auc(y, s)
    assert a == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert a + auc(y, -s) == pytest.approx(1.0)  # ties count 1/2 both ways
    assert auc(y, s.astype(float) ** 3 + 2 * s + 7) == pytest.approx(a)  # strictly monotone
    assert auc(~y, s) == pytest.approx(1.0 - a)


def test_gauc_matches_weighted_per_group_sklearn() -> None:
    n = 2000
    g = RNG.integers(0, 100, n)
    y = RNG.random(n) < 0.3
    s = RNG.integers(0, 8, n).astype(float)  # ties inside groups
    num = den = 0.0
    for gid in np.unique(g):
        m = g == gid
        if len(set(y[m])) == 2:
            num += roc_auc_score(y[m], s[m]) * m.sum()
            den += m.sum()
    assert gauc(y, s, g) == pytest.approx(num / den, abs=1e-12)
    # Any sortable ids work, and the row order does not matter.
    perm = RNG.permutation(n)
    names = np.array([f"user-{v}" for v in g])
    assert gauc(y[perm], s[perm], names[perm]) == pytest.approx(num / den, abs=1e-12)
    assert gauc(y, s, g * 10**15 - 7) == pytest.approx(num / den, abs=1e-12)  # sparse ids
    assert gauc(y, s, np.zeros(n)) == pytest.approx(auc(y, s), abs=1e-12)


def test_gauc_skips_single_class_groups_and_weights_by_size() -> None:
    y = [1, 0, 0, 1, 1, 0, 0, 0, 1, 1]
    s = [0.9, 0.1, 0.8, 0.2, 0.5, 0.5, 0.1, 0.2, 0.3, 0.3]
    g = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # groups 4 and 5 are single-class
    # group 1: 1.0, group 2: 0.0, group 3: tie 0.5; equal sizes → mean.
    assert gauc(y, s, g) == pytest.approx(0.5)
    y2 = [1, 0, 1, 0, 0, 0]
    s2 = [0.9, 0.1, 0.1, 0.9, 0.5, 0.6]
    g2 = [1, 1, 2, 2, 2, 2]  # group 1 AUC 1 (size 2), group 2 AUC 0 (size 4)
    assert gauc(y2, s2, g2) == pytest.approx(2 / 6)


def test_gauc_all_groups_degenerate_is_nan_with_warning() -> None:
    with pytest.warns(UndefinedMetricWarning, match="gauc: no group holds both classes"):
        assert math.isnan(gauc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], [1, 1, 2, 2]))
    with pytest.warns(UndefinedMetricWarning, match="gauc"):
        assert math.isnan(gauc([], [], []))


# --------------------------------------------------------------------------- log loss


def test_log_loss_matches_sklearn_and_clips() -> None:
    y = RNG.random(1000) < 0.4
    p = RNG.uniform(0.01, 0.99, 1000)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-12)
    eps = 1e-7
    assert log_loss([1, 0], [0.0, 1.0], eps=eps) == pytest.approx(-math.log(eps))
    assert log_loss([1, 0], [1.0, 0.0]) == pytest.approx(-math.log(1 - 1e-7))
    assert log_loss([0.5], [0.5]) == pytest.approx(math.log(2))  # soft target


def test_log_loss_rejects_logits_and_warns_on_empty() -> None:
    with pytest.raises(ValueError, match="y_prob must lie in"):
        log_loss([1, 0], [2.0, -1.0])
    with pytest.raises(ValueError, match="y_true must lie in"):
        log_loss([2, 0], [0.5, 0.5])
    with pytest.warns(UndefinedMetricWarning, match="log_loss: empty"):
        assert math.isnan(log_loss([], []))


# --------------------------------------------------------------------------- pairwise accuracy

labels = st.lists(st.integers(0, 4), min_size=2, max_size=40)


@FAST
@given(st.data())
def test_pairwise_accuracy_equals_brute_force(data: st.DataObject) -> None:
    y = data.draw(labels.filter(lambda v: len(set(v)) > 1))
    p = data.draw(st.lists(st.integers(-3, 3), min_size=len(y), max_size=len(y)))
    assert pairwise_accuracy(y, p) == pytest.approx(brute_pa(y, p), abs=1e-12)


def test_pairwise_accuracy_real_labels_and_groups_vs_brute_force() -> None:
    for _ in range(10):
        n = int(RNG.integers(2, 250))
        y = RNG.normal(size=n).round(1)  # many distinct label levels → many bit passes
        p = RNG.integers(0, 20, n).astype(float)
        if len(set(y)) > 1:
            assert pairwise_accuracy(y, p) == pytest.approx(brute_pa(list(y), list(p)))
        g = RNG.integers(0, 6, n)
        num = den = 0.0
        for gy, gp in by_group(list(y), list(p), list(g)):
            for i in range(len(gy)):
                for j in range(len(gy)):
                    if gy[i] < gy[j]:
                        den += 1
                        num += 1.0 if gp[i] < gp[j] else 0.5 if gp[i] == gp[j] else 0.0
        if den:
            assert pairwise_accuracy(y, p, groups=g) == pytest.approx(num / den)


@pytest.mark.parametrize("levels", [1, 2, 5, 1000])
def test_both_concordant_pair_counters_match_brute_force(levels: int) -> None:
    for n in (0, 1, 2, 3, 7, 8, 9, 100, 257):
        v = RNG.integers(0, levels, n)
        expected = sum(v[i] < v[j] for i in range(n) for j in range(i + 1, n))
        assert _ascending_pairs_merge(v) == expected
        if n:
            g = np.sort(RNG.integers(0, 4, n))
            starts = np.searchsorted(g, g, "left")
            sizes = np.searchsorted(g, g, "right") - starts
            within = sum(v[i] < v[j] for i in range(n) for j in range(i + 1, n) if g[i] == g[j])
            assert _ascending_pairs_bits(v, starts, sizes, levels - 1) == within


def test_pairwise_accuracy_binary_equals_auc_and_simple_cases() -> None:
    y = RNG.random(2000) < 0.3
    s = RNG.integers(0, 10, 2000)
    assert pairwise_accuracy(y, s) == pytest.approx(auc(y, s), abs=1e-12)
    assert pairwise_accuracy([0, 1, 2, 3], [1, 2, 3, 4]) == 1.0
    assert pairwise_accuracy([0, 1, 2, 3], [4, 3, 2, 1]) == 0.0
    assert pairwise_accuracy([0, 1, 2, 2], [5, 5, 5, 5]) == 0.5  # all predictions tied
    assert pairwise_accuracy([0, 0, 1], [0.3, 0.1, 0.2]) == 0.5  # equal labels not counted


def test_pairwise_accuracy_no_differing_pair_is_nan_with_warning() -> None:
    with pytest.warns(UndefinedMetricWarning, match="pairwise_accuracy: no pair"):
        assert math.isnan(pairwise_accuracy([2, 2, 2], [0.1, 0.2, 0.3]))
    with pytest.warns(UndefinedMetricWarning, match="pairwise_accuracy"):
        assert math.isnan(pairwise_accuracy([0, 0, 1, 1], [1, 2, 3, 4], groups=[1, 1, 2, 2]))
    with pytest.warns(UndefinedMetricWarning, match="pairwise_accuracy"):
        assert math.isnan(pairwise_accuracy([], []))


# --------------------------------------------------------------------------- top-k metrics


@pytest.mark.parametrize("k", [1, 3, 5, 12, 40])
def test_ndcg_matches_sklearn_on_untied_scores(k: int) -> None:
    n_groups, size = 40, 12
    rel = RNG.integers(0, 4, (n_groups, size)).astype(float)
    rel[:, 0] = np.maximum(rel[:, 0], 1)  # every group has a relevant item
    scores = RNG.normal(size=(n_groups, size))
    expected = ndcg_score(rel, scores, k=k)
    g = np.repeat(np.arange(n_groups) * 7 + 3, size)
    perm = RNG.permutation(n_groups * size)  # interleave the groups' rows
    got = ndcg_at_k(rel.ravel()[perm], scores.ravel()[perm], k, groups=g[perm])
    assert got == pytest.approx(expected, abs=1e-12)
    if k <= size:
        assert ndcg_at_k(rel[0], scores[0], k) == pytest.approx(
            ndcg_score(rel[:1], scores[:1], k=k), abs=1e-12
        )


def _random_ranking_case(n: int, n_groups: int, tied: bool):  # type: ignore[no-untyped-def]
    y = (RNG.random(n) < 0.3) * RNG.integers(1, 4, n)
    s = RNG.integers(0, 4, n).astype(float) if tied else RNG.normal(size=n)
    g = RNG.integers(0, n_groups, n)
    return y.astype(float), s, g


@pytest.mark.parametrize("ties", ["stable", "pessimistic"])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("k", [1, 2, 5, 30])
def test_topk_metrics_match_brute_force(k: int, tied: bool, ties: str) -> None:
    y, s, g = _random_ranking_case(600, 50, tied)
    ref = brute_topk(list(y), list(s), list(g), k, ties)
    for name, fn in TOPK.items():
        assert fn(y, s, k, groups=g, ties=ties) == pytest.approx(ref[name], abs=1e-12), name


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40
    ).filter(lambda r: any(a > 0 for a, _, _ in r)),
    st.integers(1, 6),
)
def test_topk_metrics_brute_force_property(rows: list[tuple[int, int, int]], k: int) -> None:
    y = [float(a) for a, _, _ in rows]
    s = [float(b) for _, b, _ in rows]
    g = [c for _, _, c in rows]
    ref = brute_topk(y, s, g, k)
    for name, fn in TOPK.items():
        assert fn(y, s, k, groups=g) == pytest.approx(ref[name], abs=1e-12), name


def test_groups_none_is_one_group() -> None:
    y, s, _ = _random_ranking_case(300, 1, tied=True)
    for fn in (*TOPK.values(), reco_dcg_at_k):
        yy = np.minimum(y, 4)
        assert fn(yy, s, 7) == pytest.approx(fn(yy, s, 7, groups=np.full(300, "q")))


def test_tie_rules_documented_behaviour() -> None:
    y = [1, 0, 0, 0]
    s = [0.5, 0.5, 0.5, 0.1]
    # stable: the relevant row is first in row order, so it is ranked first.
    assert mrr_at_k(y, s, 3) == 1.0
    assert hit_rate_at_k(y, s, 1) == 1.0
    # pessimistic: among tied rows the least relevant go first → rank 3.
    assert mrr_at_k(y, s, 3, ties="pessimistic") == pytest.approx(1 / 3)
    assert hit_rate_at_k(y, s, 2, ties="pessimistic") == 0.0
    assert ndcg_at_k(y, s, 4, ties="pessimistic") == pytest.approx(1 / math.log2(4))
    with pytest.raises(ValueError, match="ties must be"):
        ndcg_at_k(y, s, 2, ties="average")  # type: ignore[arg-type]


def test_topk_groups_without_relevant_items_are_left_out() -> None:
    y = [1, 0, 0, 0, 0, 1]
    s = [0.9, 0.1, 0.5, 0.4, 0.8, 0.2]
    g = [1, 1, 2, 2, 3, 3]  # group 2 has no relevant item; group 3's is ranked second
    assert recall_at_k(y, s, 1, groups=g) == 0.5
    assert hit_rate_at_k(y, s, 1, groups=g) == 0.5
    assert mrr_at_k(y, s, 2, groups=g) == pytest.approx((1 + 0.5) / 2)
    assert precision_at_k(y, s, 1, groups=g) == 0.5
    assert ndcg_at_k(y, s, 2, groups=g) == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_precision_divides_by_k_even_for_short_groups() -> None:
    assert precision_at_k([1, 1], [0.3, 0.2], 5) == pytest.approx(2 / 5)
    assert recall_at_k([1, 1], [0.3, 0.2], 5) == 1.0
    assert ndcg_at_k([1, 0], [0.3, 0.2], 10) == 1.0


@pytest.mark.parametrize("fn", [*TOPK.values(), click_ndcg_at_k])
def test_topk_all_groups_without_relevant_or_empty_is_nan_with_warning(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.warns(UndefinedMetricWarning, match="no group has a relevant item"):
        assert math.isnan(fn([0, 0, 0], [0.1, 0.2, 0.3], 2, groups=[1, 1, 2]))
    with pytest.warns(UndefinedMetricWarning, match="no group has a relevant item"):
        assert math.isnan(fn([], [], 2))


# --------------------------------------------------------------------------- Explore Further


def brute_reco_dcg(judge, s, g, k):  # type: ignore[no-untyped-def]
    vals = []
    for gj, gs in by_group(judge, s, g):
        r = ranked(gj, gs)[:k]
        disc = [1 / math.log2(i + 2) for i in range(len(r))]
        vals.append(sum(25 * a * d for a, d in zip(r, disc, strict=True)) / sum(disc))
    return float(np.mean(vals))


@pytest.mark.parametrize("k", [1, 5, 9])
def test_reco_dcg_matches_definition(k: int) -> None:
    n = 400
    judge = RNG.integers(0, 5, n) + RNG.choice([0.0, 0.37], n)
    judge = np.minimum(judge, 4.0)
    s = RNG.normal(size=n)
    g = RNG.integers(0, 60, n)  # group sizes vary, many below k
    assert reco_dcg_at_k(judge, s, k, groups=g) == pytest.approx(
        brute_reco_dcg(list(judge), list(s), list(g), k), abs=1e-10
    )


def test_reco_dcg_edges() -> None:
    assert reco_dcg_at_k([4, 0], [0.9, 0.1], 1) == 100.0
    assert reco_dcg_at_k([4, 0], [0.1, 0.9], 1) == 0.0
    assert reco_dcg_at_k([2], [0.5], 5) == 50.0  # one candidate: normaliser over 1 position
    assert reco_dcg_at_k([0, 0, 4, 4], [1, 2, 3, 4], 2, groups=[1, 1, 2, 2]) == 50.0
    with pytest.raises(ValueError, match="judge_scores must lie in"):
        reco_dcg_at_k([5, 0], [0.1, 0.2], 1)
    with pytest.warns(UndefinedMetricWarning, match="reco_dcg_at_k"):
        assert math.isnan(reco_dcg_at_k([], [], 5))


def test_click_ndcg_equals_binary_ndcg() -> None:
    n = 800
    clicked = RNG.random(n) < 0.15
    s = RNG.normal(size=n)
    g = RNG.integers(0, 100, n)
    for k in (1, 5):
        assert click_ndcg_at_k(clicked, s, k, groups=g) == pytest.approx(
            ndcg_at_k(clicked, s, k, groups=g)
        )
    with pytest.raises(ValueError, match="clicked must hold only 0 and 1"):
        click_ndcg_at_k([2, 0], [0.1, 0.2], 1)


def test_quality_filtered_click_ndcg_drops_low_quality_impressions() -> None:
    n = 900
    clicked = RNG.random(n) < 0.2
    s = RNG.normal(size=n)
    g = RNG.integers(0, 120, n)
    judge = RNG.integers(0, 5, n).astype(float)
    judge[~clicked] = np.nan  # only read on clicked rows
    bad = {gid for gid, c, j in zip(g, clicked, judge, strict=True) if c and j <= 1.0}
    keep = np.array([gid not in bad for gid in g])
    expected = click_ndcg_at_k(clicked[keep], s[keep], 5, groups=g[keep])
    got = quality_filtered_click_ndcg_at_k(clicked, s, judge, 5, groups=g)
    assert got == pytest.approx(expected)
    strict = quality_filtered_click_ndcg_at_k(clicked, s, judge, 5, groups=g, threshold=2.0)
    bad2 = {gid for gid, c, j in zip(g, clicked, judge, strict=True) if c and j <= 2.0}
    keep2 = np.array([gid not in bad2 for gid in g])
    assert strict == pytest.approx(click_ndcg_at_k(clicked[keep2], s[keep2], 5, groups=g[keep2]))


def test_quality_filtered_click_ndcg_edges() -> None:
    with pytest.warns(UndefinedMetricWarning, match="every impression was filtered out"):
        assert math.isnan(quality_filtered_click_ndcg_at_k([1, 0], [0.2, 0.1], [1, 4], 1))
    assert quality_filtered_click_ndcg_at_k([1, 0], [0.2, 0.1], [3, np.nan], 1) == 1.0
    with pytest.raises(ValueError, match="finite on clicked rows"):
        quality_filtered_click_ndcg_at_k([1, 0], [0.2, 0.1], [np.nan, 3], 1)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: auc([0, 1], [0.1]), "y_score has length 1, expected 2"),
        (lambda: auc([0, 1], [0.1, np.nan]), "y_score must be finite"),
        (lambda: auc([0, 2], [0.1, 0.2]), "y_true must hold only 0 and 1"),
        (lambda: gauc([0, 1], [0.1, 0.2], [1]), "groups has length 1"),
        (lambda: gauc([0, 1], [0.1, 0.2], [1.0, np.nan]), "groups must be finite"),
        (lambda: pairwise_accuracy([0, 1], [0.1, np.inf]), "y_pred must be finite"),
        (lambda: pairwise_accuracy([0, np.nan], [0.1, 0.2]), "y_true must be finite"),
        (lambda: ndcg_at_k([1, 0], [0.1, -np.inf], 1), "y_score must be finite"),
        (lambda: ndcg_at_k([1, 0], [0.1, 0.2], 0), "k must be an integer >= 1"),
        (lambda: ndcg_at_k([1, 0], [0.1, 0.2], 1.5), "k must be an integer >= 1"),
        (lambda: recall_at_k([-1, 1], [0.1, 0.2], 1), "y_true must be non-negative"),
        (lambda: mrr_at_k([[1, 0]], [[0.1, 0.2]], 1), "y_true must be 1-D"),
        (lambda: reco_dcg_at_k([1, 2], [0.1, np.nan], 1), "ranking_scores must be finite"),
        (lambda: click_ndcg_at_k([1, 0], ["a", "b"], 1), "scores must be numeric"),
    ],
)
def test_invalid_input_raises_value_error_naming_the_argument(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def test_no_warning_on_well_defined_input() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert auc([0, 1], [0.0, 1.0]) == 1.0
        assert ndcg_at_k([1, 0], [0.0, 1.0], 2, groups=np.array(["a", "a"])) < 1.0


def test_large_input_is_fast_enough() -> None:
    n = 200_000
    y = RNG.random(n) < 0.2
    s = RNG.normal(size=n)
    g = RNG.integers(0, 20_000, n)
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert 0.45 < gauc(y, s, g) < 0.55
    assert pairwise_accuracy(y, s) == pytest.approx(auc(y, s), abs=1e-12)
    assert 0.0 < ndcg_at_k(y, s, 10, groups=g) < 1.0
