"""Explore Further's report: the protocol, Table 5, per-path recall, the λ sweep, the
stage-1 features, the judge and a few recommendations through the online flow."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console

from knowrec.errors import KnowrecError
from knowrec.explore.config import ExploreConfig
from knowrec.explore.service import ExploreService
from knowrec.ranking.combine import QUALITY, Combination
from knowrec.report import Section as ReportSection
from knowrec.report import group_figure, print_rows, write_report
from knowrec.runs import Run


def protocol_text(cfg: ExploreConfig) -> str:
    s, j, r = cfg.sessions, cfg.judge, cfg.recall
    return (
        f"data={cfg.data.source}; sessions "
        + ("as logged" if not s.resessionize else "")
        + f" (else cut at {s.gap_minutes:g} min, ≥ {s.min_clicks} rows); whole sessions split "
        f"in time at session-start quantiles {s.split[0]:g} / {s.split[1]:g} into fit | label "
        f"| test; satisfied engagement (a click) = {s.rule}. Recall paths fitted on fit answer "
        f"the label period (ranker training, merge weights = each path's label recall@{r.k} "
        f"over the triggers it answered); refitted on fit + label they give the served "
        f"candidates (≤ {r.k} per trigger, near-duplicates by text cosine ≥ "
        f"{r.near_duplicate:g} dropped), evaluated on test. Ranker features come from the "
        f"sessions before each period. Impressions: one per (test session, satisfied trigger, "
        f"≤ {s.test_triggers_per_session} per session), slate = the trigger's candidates, "
        f"relevance 100 for candidates the same session also engaged with satisfaction "
        f"(ClickNDCG@5). The LLM judge (variant {j.variant}, {j.personas} judge(s)) scores "
        f"the first {j.candidates} merged candidates of {j.eval_triggers} held-out triggers "
        f"drawn at random (seed {s.seed}) among test triggers; RecoDCG@k ranks each judged "
        f"trigger's judged candidates; quality-filtered ClickNDCG@5 uses the impressions of "
        f"judged triggers cut to judged candidates, dropping those with a click judged ≤ "
        f"{j.threshold:g}."
    )


def examples(run_dir: Path, triggers: Sequence[str], k: int = 5) -> list[dict[str, Any]]:
    """Recommendations of a few triggers through the online flow (the demo rows)."""
    rows = []
    with ExploreService.load(run_dir) as service:
        for trigger in triggers:
            try:
                rec = service.recommend(trigger, k)
            except KnowrecError as exc:
                rows.append({"trigger": trigger, "error": str(exc)})
                continue
            for item in rec.items:
                rows.append(
                    {
                        "trigger": f"{rec.trigger_title} ({trigger})",
                        "rank": item.rank,
                        "recommendation": f"{item.title} ({item.item_id})",
                        "score": item.score,
                        "paths": _provenance(item.paths),
                    }
                )
    return rows


def _provenance(paths: Mapping[str, float]) -> str:
    return ", ".join(f"{p} {v:.3g}" for p, v in paths.items())


T5_MISSING = "not measured: needs the LLM judge's scores of held-out triggers (judge.eval_triggers)"
RECALL_MISSING = "unique hits are counted per path, not for the union or the merged list"


def report(
    cfg: ExploreConfig,
    run: Run,
    triggers: Mapping[str, list[str]],
    rows: list[dict[str, Any]],
    notes: list[str],
    recall: pl.DataFrame,
    comb: Combination,
    serve_info: dict[str, Any],
    s1_dir: Path,
    judge_dir: Path,
    judged: pl.DataFrame,
    examples: list[dict[str, Any]],
    console: Console,
) -> dict[str, Any]:
    from knowrec.ranking import tradeoff_figure

    k = cfg.recall.k
    stage1 = json.loads((s1_dir / "stage1.json").read_text())
    judge_stats = json.loads((judge_dir / "judge.json").read_text())
    judge_stats["failed_pairs"] = int(judged[QUALITY].null_count())
    t5_protocol = (
        "ClickNDCG@5 on every held-out impression of the set's candidates; quality-filtered "
        "ClickNDCG@5 and RecoDCG@1/@5 on the judged held-out triggers (see protocol). "
        f"Ranking without quality: the last LightGBM stage; with quality: (1−λ)·z(ranker) + "
        f"λ·z(quality), quality from '{cfg.final.quality}', λ = {comb.lam:g} ({comb.chosen_by})."
    )
    recall_protocol = (
        f"recall@{k} of each path's top {k} (fitted on fit + label) against the co-engaged "
        f"pairs (rule {cfg.sessions.rule}) of test sessions, over every trigger asked with a "
        "held-out pair (a trigger a path was not asked counts as 0); unique = pairs found "
        "by that path alone; merged = the served ≤ k list."
    )
    results: dict[str, Any] = {
        "protocol": protocol_text(cfg),
        "table5": {"protocol": t5_protocol, "rows": rows, "omitted": notes},
        "recall": {"protocol": recall_protocol, "rows": recall.to_dicts(), "paths": serve_info},
        "lambda_sweep": {
            "protocol": f"x = {cfg.final.click_label()} ({cfg.final.click_metric} held-out "
            "impressions), y = RecoDCG@5 on the full set's judged held-out triggers",
            **comb.to_dict(),
        },
        "stage1": stage1,
        "judge": judge_stats,
        "judged_triggers": {"eval": triggers["eval"], "train": triggers["train"]},
        "examples": examples,
        "stages": run.manifest["stages"],
    }
    (run.dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    figures = []
    if comb.sweep:
        chosen = next((p for p in comb.sweep if p.lam == comb.lam), None)
        figures.append(tradeoff_figure(comb.sweep, chosen=chosen, label_a=cfg.final.click_label()))
    recall_figure = group_figure(
        recall["path"].to_list(), {f"recall@{k}": recall[f"recall@{k}"]},
        ylabel=f"recall@{k}", title="held-out recall per path", points=False,
    )  # fmt: skip
    sections = [
        ReportSection("Protocol", notes=protocol_text(cfg)),
        ReportSection(
            "Table 5 — recall and ranking variants (held-out sessions)",
            rows,
            notes=t5_protocol + ("\n" + "\n".join(notes) if notes else ""),
            missing=T5_MISSING,
        ),
        ReportSection(
            f"Per-path recall@{k} and unique contribution",
            recall.to_dicts(),
            notes=recall_protocol,
            figures=[recall_figure],
            missing=RECALL_MISSING,
        ),
        ReportSection(
            "λ trade-off sweep",
            [
                {"λ": p.lam, cfg.final.click_label(): p.metric_a, "RecoDCG@5": p.metric_b}
                for p in comb.sweep
            ],
            notes=f"chosen λ = {comb.lam:g}: {comb.chosen_by}",
            figures=figures,
        ),
        ReportSection(
            "Stage-1 LightGBM (full set): top features by gain",
            [{"feature": f, "gain": g} for f, g in stage1["full"]["importance"].items()],
            notes=f"{stage1['full']['label_impressions']:,} label impressions, "
            f"{stage1['full']['label_rows']:,} rows",
        ),
        ReportSection(
            "LLM judge",
            [judge_stats] if judge_stats["pairs"] else [],
            empty="not run: no pair to judge (judge.eval_triggers = judge.train_triggers = 0)",
        ),
        ReportSection("Recommendations of a few triggers (online flow)", examples),
        ReportSection(
            "Stages",
            [{"stage": n, **v} for n, v in run.manifest["stages"].items()],
        ),
    ]
    paths = write_report(run.dir, f"Explore Further — {cfg.name}", sections)
    print_rows(console, "Table 5", rows, missing=T5_MISSING)
    for note in notes:
        console.print(note, style="dim", markup=False)
    print_rows(console, f"per-path recall@{k}", recall.to_dicts(), missing=RECALL_MISSING)
    console.print(f"λ = {comb.lam:g} ({comb.chosen_by}); report: {paths['report.html']}")
    return {**results, "report": str(paths["report.html"]), "run": str(run.dir)}
