"""Explore Further on ML-1M (users 1–2999) with TML1M plot text: per-path recall@30 with
unique contribution, and stage-1 LightGBM ClickNDCG@5 against co-click count ordering.

Protocol: sessions from rating timestamps (30-minute gap, ≥ 2 ratings); whole sessions
split in time at session-start quantiles 0.70 and 0.85 into fit | label | test.
Satisfied engagement = rating ≥ 4. Recall paths (co-click, ALS, two-tower, MiniLM
semantic) fitted on fit answer every item; their merged lists (≤ 30, near-duplicates by
MiniLM cosine ≥ 0.95 removed; reciprocal-rank fusion weighted by each path's recall@30 on
the label sessions) give the label impressions the ranker learns from (features
from fit sessions only). The paths are refitted on fit + label; recall@30 is measured
against co-engagement in test sessions, and the ranker (features from fit + label) is
evaluated on test impressions: one per (test session, satisfied trigger ≤ 5 per session),
relevance 100 for candidates the same session also rated ≥ 4. The ranker is trained on
label impressions with up to 20 triggers per session (small label window: more groups).

    .venv/bin/python benchmarks/bench_explore_recall.py [--data ../shared/data]
        [--cache runs/cache/minilm.sqlite] [--tt-steps 1000] [--out runs/bench_explore_recall]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from common import ROOT, SHARED_DATA, write_result
from knowrec.data.movielens import load_movielens
from knowrec.data.tables import Dataset
from knowrec.data.text import join_item_text
from knowrec.encoders import Encoder
from knowrec.explore import (
    click_impressions,
    click_ndcg_table,
    coengagement_pairs,
    prepare_sessions,
    recall_by_path,
    split_sessions,
)
from knowrec.ranking import (
    CoEngagementFeatures,
    ColumnFeatures,
    LGBMRanker,
    build_features,
    path_columns,
)
from knowrec.report import Section, write_report
from knowrec.retrieval import RecallPath, candidate_frame, make_recall_path, merge_candidates

RULE = "rating >= 4"
K = 30
PATHS = ["coclick", "cf", "two_tower", "semantic"]


def load(data: Path) -> Dataset:
    ds = load_movielens(data / "ml-1m")
    ds, report = join_item_text(
        ds,
        data / "tml1m-movie-plots" / "movies.csv",
        on="title_year",
        text_columns=["Plot", "Genre", "Director", "Cast"],
        title_column="Title",
        year_column="Year",
    )
    items = ds.items.with_columns(
        text=pl.when(pl.col("text").is_not_null()).then(pl.col("title") + "\n" + pl.col("text"))
    )
    logging.info("plot text for %.1f%% of the movies", 100 * report.coverage)
    return Dataset(ds.interactions, items, ds.users, ds.meta)


def make_paths(vectors: tuple[list[str], np.ndarray], args: argparse.Namespace) -> list[RecallPath]:
    return [
        make_recall_path("coclick", rule=RULE, max_session_items=50),
        make_recall_path("cf", rule=RULE, factors=64, regularization=0.05, iterations=15),
        make_recall_path(
            "two_tower",
            vectors=vectors,
            rule=RULE,
            steps=args.tt_steps,
            batch_size=256,
            progress=False,
        ),
        make_recall_path("semantic", vectors=vectors),
    ]


def candidates(
    history: pl.DataFrame,
    items: pl.DataFrame,
    vectors: tuple[list[str], np.ndarray],
    args: argparse.Namespace,
    timings: dict[str, Any],
    stage: str,
    weights: dict[str, float] | None = None,
) -> tuple[dict, dict]:
    """Fit every path on ``history``, recall for every item, merge (RRF ``weights``)."""
    triggers = items["item_id"].to_list()
    per_path: dict[str, dict] = {}
    for path in make_paths(vectors, args):
        t = time.perf_counter()
        path.fit(history, items)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        per_path[path.name] = path.recall(triggers, K)
        recall_s = time.perf_counter() - t
        timings[f"{stage}.{path.name}.fit_s"] = fit_s
        timings[f"{stage}.{path.name}.recall_ms_per_trigger"] = 1000 * recall_s / len(triggers)
        print(f"  [{stage}] {path.name:10s} fit {fit_s:7.1f}s  recall {recall_s:6.2f}s")
    t = time.perf_counter()
    merged = merge_candidates(per_path, k=K, weights=weights, vectors=vectors, near_duplicate=0.95)
    timings[f"{stage}.merge_ms_per_trigger"] = 1000 * (time.perf_counter() - t) / len(triggers)
    return per_path, merged


def impressions_with_features(
    sessions: pl.DataFrame,
    history: pl.DataFrame,
    cands: pl.DataFrame,
    seed: int,
    triggers_per_session: int = 5,
) -> tuple[pl.DataFrame, list[str]]:
    frame = click_impressions(
        sessions, cands, rule=RULE, max_triggers_per_session=triggers_per_session, seed=seed
    )
    feats = CoEngagementFeatures(rule=RULE, windows_days=(7, 30, 180))
    feats.fit(history, now=sessions["timestamp"].min())
    return build_features(frame, [feats, ColumnFeatures(path_columns(cands))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache" / "minilm.sqlite")
    parser.add_argument("--tt-steps", type=int, default=1000)
    parser.add_argument("--train-triggers", type=int, default=20, help="per label session")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_explore_recall")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)  # shared CPU: one thread avoids oversubscription
    timings: dict[str, Any] = {}
    start = time.perf_counter()

    data = load(args.data)
    sessions = prepare_sessions(data.interactions, gap_minutes=30, min_clicks=2)
    parts = split_sessions(sessions, [0.70, 0.85])
    sizes = {
        k: {"sessions": v["session_id"].n_unique(), "rows": v.height} for k, v in parts.items()
    }
    print("sessions:", sizes)

    t = time.perf_counter()
    ids, texts = data.items.filter(pl.col("text").is_not_null()).select("item_id", "text")
    vectors = (ids.to_list(), Encoder(cache=args.cache).encode(texts.to_list()))
    timings["encode_s"] = time.perf_counter() - t

    # Stage A: paths and features from `fit`, ranker trained on `label` impressions. The
    # merge weights are each path's recall@30 on the label sessions (no test data).
    per_path_a, _ = candidates(parts["fit"], data.items, vectors, args, timings, "A")
    truth_a = coengagement_pairs(parts["label"], rule=RULE, max_session_items=50)
    recall_a = recall_by_path(per_path_a, truth_a, k=K).filter(pl.col("path").is_in(PATHS))
    best = recall_a[f"recall@{K}"].max()
    weights = {p: r / best for p, r in zip(recall_a["path"], recall_a[f"recall@{K}"], strict=True)}
    print(
        "  merge weights (label recall@30, relative):", {p: round(w, 3) for p, w in weights.items()}
    )
    merged_a = merge_candidates(per_path_a, k=K, weights=weights, vectors=vectors)
    cands_a = candidate_frame(merged_a, PATHS)
    t = time.perf_counter()
    train, names = impressions_with_features(
        parts["label"], parts["fit"], cands_a, seed=0, triggers_per_session=args.train_triggers
    )
    timings["A.features_s"] = time.perf_counter() - t
    rankers = {}
    for objective in ("lambdarank", "binary"):
        t = time.perf_counter()
        rankers[objective] = LGBMRanker(
            names,
            objective=objective,
            n_estimators=200,
            learning_rate=0.05,
            num_leaves=7,
            min_child_samples=200,
        ).fit(train)
        timings[f"A.lgbm_{objective}_train_s"] = time.perf_counter() - t

    # Stage B: paths refitted on fit + label; recall and ranking evaluated on `test`.
    history = pl.concat([parts["fit"], parts["label"]])
    per_path, merged_b = candidates(history, data.items, vectors, args, timings, "B", weights)
    truth = coengagement_pairs(parts["test"], rule=RULE, max_session_items=50)
    recall = recall_by_path(per_path, truth, k=K, merged=merged_b)
    equal = merge_candidates(per_path, k=K, vectors=vectors)
    recall_equal = recall_by_path(per_path, truth, k=K, merged=equal).filter(
        pl.col("path") == "merged"
    )
    recall = pl.concat([recall, recall_equal.with_columns(path=pl.lit("merged, equal weights"))])
    cands_b = candidate_frame(merged_b, PATHS)
    t = time.perf_counter()
    test, _ = impressions_with_features(parts["test"], history, cands_b, seed=1)
    timings["B.features_s"] = time.perf_counter() - t
    scorers: dict[str, Any] = {}
    for objective, ranker in rankers.items():
        t = time.perf_counter()
        scorers[f"LightGBM {objective}"] = ranker.predict(test)
        timings[f"B.lgbm_{objective}_predict_us_per_row"] = (
            1e6 * (time.perf_counter() - t) / test.height
        )
    rank = test["rank"].to_numpy()
    scorers["co-click count (ties: merged order)"] = test["cc_sat"].to_numpy() + 0.5 / rank
    scorers["merged order (RRF)"] = -rank.astype(float)
    scorers["random"] = np.random.default_rng(0).random(test.height)
    ranking = click_ndcg_table(test, scorers, ks=(1, 5))
    timings["total_s"] = time.perf_counter() - start

    print("\nper-path recall@30 against held-out co-engagement (test sessions)")
    print(recall)
    print("\nstage-1 ranking on test impressions")
    for row in ranking:
        at1, at5 = row["ClickNDCG@1"], row["ClickNDCG@5"]
        print(f"  {row['ranking']:38s} ClickNDCG@1 {at1:.4f}  ClickNDCG@5 {at5:.4f}")
    importance = rankers["lambdarank"].feature_importance()
    top = dict(list(importance.items())[:10])
    print("\ntop features (gain):", {k: round(v) for k, v in top.items()})
    print("\ntimings:", {k: round(v, 3) for k, v in timings.items()})

    impressions = {
        "label_groups": int(train["group"].n_unique()),
        "label_rows": train.height,
        "test_groups": int(test["group"].n_unique()),
        "test_rows": test.height,
        "test_click_rate": float(test["clicked"].mean()),
    }
    payload = {
        "command": "python benchmarks/bench_explore_recall.py",
        "data": "ML-1M (users 1–2999) + TML1M plot text",
        "protocol": {
            "sessions": "30-minute gap, >= 2 ratings",
            "split": "session-start quantiles 0.70 / 0.85 (fit | label | test), straddlers dropped",
            "satisfied": RULE,
            "k": K,
            "two_tower_steps": args.tt_steps,
            "train_triggers_per_session": args.train_triggers,
            "test_triggers_per_session": 5,
            "torch_threads": 1,
        },
        "sessions": sizes,
        "impressions": impressions,
        "recall": recall.to_dicts(),
        "ranking": ranking,
        "merge_weights": weights,
        "lgbm": {
            "params": "200 trees, learning rate 0.05, 7 leaves, min 200 rows per leaf",
            "features": names,
        },
        "feature_importance_gain": top,
        "timings": timings,
    }
    write_result("explore_recall", payload)
    write_report(
        args.out,
        "Explore Further: recall paths and stage-1 ranking on ML-1M",
        [
            Section("Per-path recall@30 (test sessions)", rows=recall.to_dicts()),
            Section("Stage-1 ranking (test impressions)", rows=ranking, notes=str(impressions)),
            Section("Timings", rows=[{"step": k, "value": v} for k, v in timings.items()]),
        ],
    )


if __name__ == "__main__":
    main()
