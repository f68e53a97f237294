"""LLM judge prompts A/B/C (docs/explore.md) on the ML-1M golden set: pairwise accuracy and speed.

Items: ML-1M movies with the TML1M plot text (``load_ml1m_with_plots`` of
``knowledge_ml1m.py``: title, genres, certificate, plot, director, cast), each cut to
``--item-tokens`` tokens. Pairs and labels: ``benchmarks/golden/ml1m_golden.csv`` (332
pairs, 51 triggers, 484 (Good, Bad) pairs). The judge: :class:`knowrec.judge.Judge` with
``--personas`` role-played judges; A = mean argmax label, B = mean expected label from
the digit probabilities, C = B after aspect-wise reasoning (``--reasoning-tokens``).

Every LLM answer is committed to a SQLite cache outside git (``runs/judge_ml1m/``), so a
killed run resumes and a re-run is free; per-pair scores go to
``runs/judge_ml1m/scores.parquet`` and the summary to ``benchmarks/results/judge.json``
(pairwise accuracy per variant, on all and on the hard (Good, Bad) pairs, mean score of
Good and Bad candidates, judgements/s of model time as measured when computed).

    nohup nice -n 10 .venv/bin/python benchmarks/bench_judge.py > runs/judge_ml1m.log 2>&1 &
    .venv/bin/python benchmarks/bench_judge.py --limit-triggers 1 --name judge_smoke
    .venv/bin/python benchmarks/bench_judge.py --backend openai --base-url http://gpu:8000/v1
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHARED_DATA, write_result
from knowledge_ml1m import load_ml1m_with_plots
from knowrec.judge import Judge, evaluate_golden, load_golden, parse_variants

log = logging.getLogger("bench_judge")
RUN_DIR = ROOT / "runs" / "judge_ml1m"
GOLDEN = ROOT / "benchmarks" / "golden" / "ml1m_golden.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--golden", type=Path, default=GOLDEN)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--variants", default="A,B,C")
    parser.add_argument("--limit-triggers", type=int, default=None)
    parser.add_argument("--personas", type=int, default=5)
    parser.add_argument("--item-tokens", type=int, default=192)
    parser.add_argument("--reasoning-tokens", type=int, default=64)
    parser.add_argument("--cache", type=Path, default=RUN_DIR / "llm.sqlite")
    parser.add_argument("--scores", type=Path, default=RUN_DIR / "scores.parquet")
    parser.add_argument("--name", default="judge", help="benchmarks/results/<name>.json")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--backend", default="llamacpp", help="llamacpp | openai")
    parser.add_argument("--base-url", default=None, help="openai: server URL ending in /v1")
    parser.add_argument("--concurrency", type=int, default=8, help="openai: parallel requests")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("knowrec.llm.base").setLevel(logging.WARNING)
    variants = parse_variants(args.variants)

    data = load_ml1m_with_plots(args.data_dir)
    golden = load_golden(args.golden, items=data.items)
    if args.limit_triggers is not None:
        keep = golden["trigger_id"].unique(maintain_order=True).head(args.limit_triggers)
        golden = golden.filter(pl.col("trigger_id").is_in(keep.to_list()))
    n_triggers = golden["trigger_id"].n_unique()
    log.info("golden set: %d pairs, %d triggers", golden.height, n_triggers)

    from knowrec.llm import make_llm

    if args.backend == "openai":
        extra = {"concurrency": args.concurrency}
        extra |= {"base_url": args.base_url} if args.base_url else {}
    else:
        extra = {"n_threads": args.threads}
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with make_llm(args.backend, model=args.model, cache=args.cache, **extra) as llm:
        judge = Judge(
            llm,
            noun="movie",
            personas=args.personas,
            variants=variants,
            item_tokens=args.item_tokens,
            reasoning_tokens=args.reasoning_tokens,
        )
        scores = judge.score(golden.select("trigger_id", "candidate_id"), data.items)
        model_id = llm.model_id
    wall = time.perf_counter() - started
    args.scores.parent.mkdir(parents=True, exist_ok=True)
    scores.write_parquet(args.scores)

    report = evaluate_golden(golden, scores, variants)
    labelled = golden.select("trigger_id", "candidate_id", "label").join(
        scores, on=["trigger_id", "candidate_id"]
    )
    results: dict[str, dict] = {}
    for row in report.iter_rows(named=True):
        col = f"score_{row['variant'].lower()}"
        means = {
            f"mean_{label.lower()}": labelled.filter(pl.col("label") == label)[col].mean()
            for label in ("Good", "Bad")
        }
        results[row["variant"]] = {**{k: v for k, v in row.items() if k != "variant"}, **means}
        log.info("%s: %s", row["variant"], results[row["variant"]])
    stats = judge.stats
    payload = {
        "protocol": "ML-1M golden set (benchmarks/golden/ml1m_golden.csv); items = ML-1M movies "
        "with TML1M plot text; pairwise accuracy over the (Good, Bad) pairs of each trigger",
        "model": model_id,
        "backend": args.backend,
        "threads": args.threads,
        "golden": str(
            args.golden.relative_to(ROOT) if args.golden.is_relative_to(ROOT) else args.golden
        ),
        "limit_triggers": args.limit_triggers,
        "triggers": n_triggers,
        "pairs": golden.height,
        "personas": judge.personas,
        "item_tokens": args.item_tokens,
        "reasoning_tokens": args.reasoning_tokens,
        "judge_fingerprint": judge.fingerprint(),
        "variants": results,
        "judgements_per_s_note": "scored pairs per second of model time of the variant's "
        "calls, as measured when they were computed (A and B share their calls; C counts its "
        "reasoning and its judges)",
        "run": {
            "wall_s": wall,
            "model_calls": stats.calls,
            "cached_answers": stats.cached,
            "failed_pairs": stats.failed,
        },
        "scores": str(args.scores),
    }
    out = write_result(args.name, payload)
    log.info("wrote %s and %s (%.1f s, %d model calls)", out, args.scores, wall, stats.calls)


if __name__ == "__main__":
    main()
