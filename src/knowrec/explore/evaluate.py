"""Explore Further offline evaluation: per-path recall@k with unique contribution,
ClickNDCG@k of rankings over held-out impressions, the judged metrics (RecoDCG, quality-
filtered ClickNDCG), the choice of λ and the rows of Table 5."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from knowrec.errors import ConfigError
from knowrec.explore.config import ExploreConfig
from knowrec.metrics import click_ndcg_at_k
from knowrec.ranking.combine import QUALITY, Combination
from knowrec.retrieval.store import Candidate

PerPath = Mapping[str, Mapping[str, Sequence[Candidate]]]


def _found(per_path: PerPath, k: int) -> pl.DataFrame:
    rows = [
        (path, str(t), c.item_id)
        for path, lists in per_path.items()
        for t, cands in lists.items()
        for c in list(cands)[:k]
    ]
    schema = {"path": pl.String, "trigger_id": pl.String, "item_id": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row").unique(maintain_order=True)


def recall_by_path(
    per_path: PerPath,
    truth: pl.DataFrame,
    *,
    k: int = 30,
    merged: Mapping[str, Sequence[Candidate]] | None = None,
) -> pl.DataFrame:
    """Recall@k of each path against held-out co-engagement, with its unique contribution.

    ``truth`` has ``trigger_id`` and ``item_id`` (e.g.
    :func:`knowrec.explore.data.coengagement_pairs` of held-out sessions). Evaluated
    triggers: those asked of the paths that have at least one held-out pair; a trigger a
    path did not answer counts as recall 0. Per path: ``recall`` (mean over triggers of
    hits / held-out items, as :func:`knowrec.metrics.recall_at_k`), ``hits``,
    ``coverage`` (share of triggers with any candidate), ``unique_hits`` (held-out pairs
    found by this path alone) and ``unique_share`` (those over all pairs found by any
    path). Extra rows: ``union`` (all paths' top-k together, uncapped) and, when
    ``merged`` is given, ``merged`` (the final ≤ k list).
    """
    if k < 1:
        raise ConfigError(f"recall_by_path: k must be positive, got {k}")
    if not per_path:
        raise ConfigError("recall_by_path: no recall path results given")
    asked = {str(t) for lists in per_path.values() for t in lists}
    truth = truth.select(pl.col("trigger_id").cast(pl.String), pl.col("item_id").cast(pl.String))
    truth = truth.unique().filter(pl.col("trigger_id").is_in(list(asked)))
    n_rel = truth.group_by("trigger_id").agg(n_rel=pl.len())
    n_triggers = n_rel.height
    if n_triggers == 0:
        raise ConfigError("recall_by_path: no asked trigger has a held-out co-engaged item")
    found = _found(per_path, k)
    hits = found.join(truth, on=["trigger_id", "item_id"], how="inner")
    hits = hits.with_columns(n_found=pl.len().over("trigger_id", "item_id"))
    union_hits = hits.select("trigger_id", "item_id").unique().height
    evaluated = n_rel.select("trigger_id")

    def summary(name: str, found_p: pl.DataFrame, hits_p: pl.DataFrame) -> dict[str, object]:
        per_t = hits_p.group_by("trigger_id").agg(h=pl.len())
        rec = n_rel.join(per_t, on="trigger_id", how="left").with_columns(pl.col("h").fill_null(0))
        answered = found_p.select("trigger_id").unique().join(evaluated, on="trigger_id")
        return {
            "path": name,
            f"recall@{k}": float((rec["h"] / rec["n_rel"]).mean()),
            "hits": int(rec["h"].sum()),
            "coverage": answered.height / n_triggers,
        }

    rows = []
    for path in per_path:
        hp = hits.filter(pl.col("path") == path)
        row = summary(path, found.filter(pl.col("path") == path), hp)
        unique = int((hp["n_found"] == 1).sum())
        row["unique_hits"] = unique
        row["unique_share"] = unique / union_hits if union_hits else 0.0
        rows.append(row)
    union_found = found.select("trigger_id", "item_id").unique()
    union = summary("union", union_found, hits.select("trigger_id", "item_id").unique())
    rows.append(union)
    if merged is not None:
        mf = _found({"merged": merged}, k)
        mh = mf.join(truth, on=["trigger_id", "item_id"], how="inner")
        rows.append(summary("merged", mf, mh))
    out = pl.DataFrame(rows)
    return out.with_columns(triggers=pl.lit(n_triggers))


def click_ndcg_table(
    frame: pl.DataFrame,
    scorers: Mapping[str, str | np.ndarray],
    *,
    ks: Sequence[int] = (5,),
    clicked: str = "clicked",
    group: str = "group",
) -> list[dict[str, object]]:
    """ClickNDCG@k of several orderings of the same impressions: ``scorers`` maps a label
    to a score column of ``frame`` or an array (higher ranks first; ties keep row order)."""
    out = []
    for label, scores in scorers.items():
        s = frame[scores].to_numpy() if isinstance(scores, str) else np.asarray(scores)
        row: dict[str, object] = {"ranking": label}
        for k in ks:
            row[f"ClickNDCG@{k}"] = click_ndcg_at_k(
                frame[clicked].to_numpy(), s, k, frame[group].to_numpy()
            )
        out.append(row)
    return out


@dataclass
class EvalFrames:
    """One candidate set's held-out evaluation rows: ``impressions`` (every test
    impression), ``judged`` (impressions of judged triggers cut to judged candidates,
    with ``judge``) and ``slates`` (each judged trigger's judged candidates)."""

    impressions: pl.DataFrame
    judged: pl.DataFrame
    slates: pl.DataFrame


def eval_frames(
    cfg: ExploreConfig, scored: pl.DataFrame, test: pl.DataFrame, judged: pl.DataFrame
) -> EvalFrames:
    keys = ["trigger_id", "item_id"]
    from knowrec.explore.stages import impressions

    impr = impressions(
        test, scored, cfg, cfg.sessions.test_triggers_per_session, cfg.sessions.seed + 1
    )
    cols = [c for c in ("ranker", QUALITY, "final") if c in scored.columns]
    impr = impr.join(scored.select(*keys, *cols), on=keys, how="left", maintain_order="left")
    j = judged.filter((pl.col("split") == "eval") & pl.col(QUALITY).is_not_null())
    j = j.select("trigger_id", item_id="candidate_id", judge=QUALITY).unique(keys)
    return EvalFrames(
        impressions=impr,
        judged=impr.join(j, on=keys, how="inner", maintain_order="left"),
        slates=scored.select(*keys, *cols).join(j, on=keys, how="inner", maintain_order="left"),
    )


def _quiet(fn: Callable[[], float]) -> float:
    """``fn()`` without its UndefinedMetricWarning: a metric with no defined value is a nan
    cell of the table, not a warning (other warnings still show)."""
    import warnings

    from knowrec.metrics import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return fn()


def metrics_row(
    ev: EvalFrames, scores: Callable[[pl.DataFrame], np.ndarray], threshold: float
) -> dict[str, Any]:
    """ClickNDCG@5 (all held-out impressions), quality-filtered ClickNDCG@5 (judged
    triggers), RecoDCG@1 and @5 (judged triggers' slates), with their counts."""
    from knowrec.metrics import (
        click_ndcg_at_k,
        quality_filtered_click_ndcg_at_k,
        reco_dcg_at_k,
    )

    i, j, s = ev.impressions, ev.judged, ev.slates
    row: dict[str, Any] = {
        "ClickNDCG@5": _quiet(
            lambda: click_ndcg_at_k(i["clicked"].to_numpy(), scores(i), 5, i["group"].to_numpy())
        )
        if i.height
        else float("nan")
    }
    row["QF ClickNDCG@5"] = (
        _quiet(
            lambda: quality_filtered_click_ndcg_at_k(
                j["clicked"].to_numpy(),
                scores(j),
                j["judge"].to_numpy(),
                5,
                j["group"].to_numpy(),
                threshold,
            )
        )
        if j.height and j["clicked"].sum()
        else float("nan")
    )
    for k in (1, 5):
        row[f"RecoDCG@{k}"] = (
            _quiet(
                lambda k=k: reco_dcg_at_k(
                    s["judge"].to_numpy(), scores(s), k, s["trigger_id"].to_numpy()
                )
            )
            if s.height
            else float("nan")
        )
    row["impressions"] = int(i["group"].n_unique()) if i.height else 0
    row["judged impressions"] = (
        int(j.filter(pl.col("clicked").max().over("group") > 0)["group"].n_unique())
        if j.height
        else 0
    )
    row["judged triggers"] = int(s["trigger_id"].n_unique()) if s.height else 0
    return row


def choose_combination(cfg: ExploreConfig, full: pl.DataFrame, ev: EvalFrames) -> Combination:
    """z-statistics from every served pair (the traffic sample); λ fixed by the config or
    chosen from the sweep of the click metric (``final.click_metric``: quality-filtered
    ClickNDCG@5 as in the paper, or ClickNDCG@5 on every held-out impression) against
    RecoDCG@5 on the judged held-out triggers (the paper's trade-off curve)."""
    from knowrec.metrics import quality_filtered_click_ndcg_at_k, reco_dcg_at_k
    from knowrec.ranking import ZScore, choose_lambda, lambda_sweep

    ranker_z = ZScore.fit(full["ranker"].to_numpy())
    q = full[QUALITY].cast(pl.Float64).drop_nulls().to_numpy()
    if cfg.final.quality == "none" or not np.isfinite(q).any():
        return Combination(0.0, ranker_z, None, chosen_by="no quality model")
    quality_z = ZScore.fit(q)
    # Equal scores can still have a std of ~1e-17 (the mean's rounding): test the values.
    if quality_z.std == 0 or np.ptp(q[np.isfinite(q)]) == 0:
        why = "the quality model gives one constant score (too few judged labels?): not used"
        return Combination(0.0, ranker_z, None, chosen_by=why)
    s, fixed = ev.slates, cfg.final.fixed_lambda
    j = ev.impressions if cfg.final.click_metric == "all" else ev.judged
    if not (j.height and j["clicked"].sum() and s.height):
        lam = 0.0 if fixed is None else fixed
        why = "fixed by the config" if fixed is not None else "no judged held-out trigger"
        return Combination(lam, ranker_z, quality_z, chosen_by=why)
    n = j.height
    both = pl.concat([j.select("ranker", QUALITY), s.select("ranker", QUALITY)])
    clicked, jg = j["clicked"].to_numpy(), j["group"].to_numpy()
    sj, st = s["judge"].to_numpy(), s["trigger_id"].to_numpy()
    thr = cfg.judge.threshold
    if cfg.final.click_metric == "all":

        def clicks(x: np.ndarray) -> float:
            return _quiet(lambda: click_ndcg_at_k(clicked, x[:n], 5, jg))
    else:
        judge_j = j["judge"].to_numpy()

        def clicks(x: np.ndarray) -> float:
            return _quiet(
                lambda: quality_filtered_click_ndcg_at_k(clicked, x[:n], judge_j, 5, jg, thr)
            )

    points = lambda_sweep(
        both["ranker"].to_numpy(),
        both[QUALITY].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
        clicks,
        lambda x: _quiet(lambda: reco_dcg_at_k(sj, x[n:], 5, st)),
        lambdas=cfg.final.lambdas,
        ranker_z=ranker_z,
        quality_z=quality_z,
    )
    if fixed is not None:
        return Combination(fixed, ranker_z, quality_z, points, "fixed by the config")
    finite = [p for p in points if np.isfinite(p.metric_a) and np.isfinite(p.metric_b)]
    if not finite:
        return Combination(0.0, ranker_z, quality_z, points, "sweep undefined")
    best = choose_lambda(finite, max_drop_a=cfg.final.max_drop)
    where = (
        "every held-out impression"
        if cfg.final.click_metric == "all"
        else "the same held-out judged triggers (as in the paper)"
    )
    why = (
        f"largest RecoDCG@5 with {cfg.final.click_label()} within {cfg.final.max_drop:.0%} "
        f"of λ = 0, on {where}"
    )
    return Combination(best.lam, ranker_z, quality_z, points, why)


def table5(
    cfg: ExploreConfig, evs: Mapping[str, EvalFrames], combs: Mapping[str, Combination]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows shaped like the paper's Table 5 and notes on the rows left out."""
    r = cfg.recall
    sets = r.sets()
    extra = [p for p in r.paths if p.label in set(sets["full"]) - set(sets["baseline"])]
    kinds = {p.kind for p in extra}
    extra_name = "Q'" if not extra or kinds == {"qprime"} else "+".join(p.label for p in extra)
    quality = combs["full"].quality_z is not None
    rows, notes, per_trigger = [], [], []
    specs = [
        ("baseline stack", "baseline", False),
        ("+ quality-aware ranking", "baseline", True),
        (f"+ {extra_name} recall", "full", False),
        (f"+ quality-aware ranking + {extra_name} recall", "full", True),
    ]
    for label, set_name, with_quality in specs:
        if set_name == "full" and not extra:
            notes.append(
                f"'{label}' omitted: no recall path beyond the baseline stack "
                "(add a `qprime` path to [recall])"
            )
            continue
        if with_quality and not quality:
            notes.append(
                f"'{label}' omitted: no quality score (final.quality = "
                f"'{cfg.final.quality}'; {combs['full'].chosen_by})"
            )
            continue
        ev = evs[set_name]
        comb = combs[set_name]
        lam = comb.lam if with_quality else 0.0
        row = {
            "system": label,
            "paths": ", ".join(sets[set_name]),
            "λ": lam,
        }
        scores = comb if with_quality else (lambda f: f["ranker"].to_numpy())
        rows.append(row | metrics_row(ev, scores, cfg.judge.threshold))
        per_trigger.append(reco_dcg_per_trigger(ev.slates, scores))
    for row, values in zip(rows, per_trigger, strict=True):
        row |= reco_dcg_intervals(values, per_trigger[0], seed=cfg.sessions.seed)
    return rows, notes


def reco_dcg_per_trigger(
    slates: pl.DataFrame, scores: Callable[[pl.DataFrame], np.ndarray], k: int = 5
) -> dict[str, float]:
    """RecoDCG@k of each judged trigger's slate ranked by ``scores``."""
    from knowrec.metrics import reco_dcg_at_k

    if not slates.height:
        return {}
    frame = slates.select("trigger_id", "judge", x=pl.Series(scores(slates), dtype=pl.Float64))
    return {
        str(key[0]): reco_dcg_at_k(part["judge"].to_numpy(), part["x"].to_numpy(), k)
        for key, part in frame.group_by("trigger_id")
    }


#: Table 5 column: judged triggers a row's difference to the baseline needs to clear 0.
NEEDED = "triggers for a clear Δ"


def reco_dcg_intervals(
    values: Mapping[str, float],
    baseline: Mapping[str, float],
    *,
    draws: int = 2000,
    seed: int = 0,
) -> dict[str, str]:
    """95% bootstrap intervals over judged triggers (resampled with replacement) of a row's
    RecoDCG@5 and of its difference to the baseline row on the same triggers (paired), and
    the number of judged triggers at which a difference of this mean and per-trigger
    spread would clear 0 (``(1.96·sd / |mean|)²``)."""
    shared = sorted(set(values) & set(baseline))
    if len(shared) < 2:
        return {"RecoDCG@5 95% CI": "", "Δ RecoDCG@5 vs baseline (95% CI)": "", NEEDED: None}
    v = np.array([values[t] for t in shared])
    d = v - np.array([baseline[t] for t in shared])
    idx = np.random.default_rng(seed).integers(0, len(shared), size=(draws, len(shared)))
    lo, hi = np.quantile(v[idx].mean(axis=1), [0.025, 0.975])
    dlo, dhi = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    sd, mean = float(d.std(ddof=1)), float(d.mean())
    return {
        "RecoDCG@5 95% CI": f"[{lo:.1f}, {hi:.1f}]",
        "Δ RecoDCG@5 vs baseline (95% CI)": f"{mean:+.2f} [{dlo:+.2f}, {dhi:+.2f}]",
        NEEDED: math.ceil((1.96 * sd / abs(mean)) ** 2) if abs(mean) > 1e-9 else None,
    }


def path_recall(
    cfg: ExploreConfig, lists: PerPath, test: pl.DataFrame, full: pl.DataFrame
) -> pl.DataFrame:
    from knowrec.explore.data import coengagement_pairs
    from knowrec.explore.stages import frame_candidates

    s = cfg.sessions
    truth = coengagement_pairs(test, rule=s.rule, max_session_items=s.max_session_items)
    return recall_by_path(lists, truth, k=cfg.recall.k, merged=frame_candidates(full))
