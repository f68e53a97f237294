"""Q' recall build on ML-1M movies with the real LLM: triggers/s, queries, candidates.

Corpus: the ML-1M movies with their TML1M plot text (``load_ml1m_with_plots``); triggers:
the ``--triggers`` most rated movies. For each trigger the LLM writes queries (one call),
each query searches the bm25s index, and the merged candidates are kept (≤ 30). Reported:
triggers/s of the whole build (LLM + search + merge) and of the search/merge alone,
queries per trigger, candidates per trigger, failures, and a few examples. LLM answers
go to a SQLite cache outside git (``runs/qprime_ml1m/``): a re-run measures search only.

    .venv/bin/python benchmarks/bench_qprime.py --triggers 10
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHARED_DATA, write_result
from knowledge_ml1m import load_ml1m_with_plots
from knowrec.llm import make_llm
from knowrec.retrieval.paths import make_recall_path

RUN_DIR = ROOT / "runs" / "qprime_ml1m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--triggers", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=RUN_DIR / "llm.sqlite")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    data = load_ml1m_with_plots(args.data_dir)
    counts = data.interactions.group_by("item_id").len().sort(["len", "item_id"], descending=True)
    triggers = counts["item_id"].head(args.triggers).to_list()
    titles = dict(zip(data.items["item_id"], data.items["title"], strict=True))
    llm = make_llm("llamacpp", n_threads=args.threads, cache=args.cache, progress=False)
    path = make_recall_path("qprime", llm=llm, noun="movie")
    started = time.perf_counter()
    path.fit(None, data.items)
    index_s = time.perf_counter() - started
    calls = llm.calls
    started = time.perf_counter()
    found = path.precompute(triggers=triggers)
    build_s = time.perf_counter() - started
    computed = llm.calls - calls
    started = time.perf_counter()
    path.precompute(triggers=triggers)  # the queries are stored now: search and merge only
    search_s = time.perf_counter() - started

    n_queries = [len(path.plans[t].queries) for t in triggers if t in path.plans]
    n_cands = [len(found[t]) for t in triggers]
    examples = {}
    for t in triggers[:3]:
        plan = path.plans.get(t)
        examples[titles[t]] = {
            "queries": [(q.text, q.relevance) for q in plan.queries] if plan else [],
            "top5": [titles[c.item_id] for c in found[t][:5]],
        }
    result = {
        "command": f"python benchmarks/bench_qprime.py --triggers {args.triggers}",
        "corpus_items": data.items.height,
        "triggers": len(triggers),
        "llm_calls": computed,
        "index_seconds": round(index_s, 2),
        "build_seconds": round(build_s, 1),
        "build_triggers_per_s": round(len(triggers) / build_s, 4),
        "search_merge_triggers_per_s": round(len(triggers) / search_s, 1),
        "queries_per_trigger": statistics.mean(n_queries) if n_queries else 0.0,
        "candidates_per_trigger": statistics.mean(n_cands),
        "failures": dict(path.failures),
        "examples": examples,
    }
    out = write_result("qprime", result)
    print({k: v for k, v in result.items() if k != "examples"})
    print(f"written to {out}")


if __name__ == "__main__":
    main()
