"""Online ``recommend`` latency per trigger from a loaded Explore Further run (issue 5).

The online flow of :class:`knowrec.explore.service.ExploreService`: one candidate-store
lookup, the run's online recall paths (FAISS), then ranking — with the scores precomputed
offline (one more store lookup) or with every ranking stage run at request time
(co-engagement features, stage-1 LightGBM and, when the run has them, the cross-encoder
heads and stage 2, the quality model, the final combination). p50 / p99 over
``--triggers`` requests (trigger ids drawn with replacement from the run's items, after
``--warmup`` untimed requests; ``--ce-triggers`` for online scoring with a cross-encoder,
about 2 s each), one process, one thread for torch / FAISS / LightGBM.

Runs: each ``--run DIR`` given (finished runs, e.g. a full ``knowrec run`` of
``configs/explore_synthetic.toml``); without one, two runs are built first from that
config without the LLM parts (no Q' path, no judge, no quality model): a plain one, and
one with the cross-encoder (click head distilled from stage 1 on a sample of label
impressions) and stage 2 when :mod:`knowrec.ranking.cross_encoder` is installed.

    .venv/bin/python benchmarks/bench_recommend_latency.py [--run runs/explore_synthetic]
        [--triggers 1000] [--k 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from common import ROOT, write_result
from knowrec.config import load_config
from knowrec.errors import KnowrecError
from knowrec.explore.config import ExploreConfig
from knowrec.explore.pipeline import run_explore
from knowrec.explore.service import SERVING_FILE, ExploreService

CONFIG = ROOT / "configs" / "explore_synthetic.toml"
#: The benchmark's cross-encoder: small, so the run builds in a few minutes on 2 cores.
CE_PARAMS = {
    "mode": "distill",
    "head_weights": {"quality": 0.0},  # no judge labels without the LLM
    "train_layers": 2,
    "max_tokens": 96,
    "threads": 2,
}


def build_run(out: Path, *, cross_encoder: bool) -> None:
    """The synthetic config's run without the LLM parts (Q', judge, quality model)."""
    cfg = load_config(CONFIG, ExploreConfig)
    paths = [p for p in cfg.recall.paths if p.kind != "qprime"]
    update: dict[str, Any] = {
        "name": "latency benchmark" + (" (cross-encoder)" if cross_encoder else ""),
        "recall": cfg.recall.model_copy(update={"paths": paths, "added": []}),
        "judge": cfg.judge.model_copy(update={"eval_triggers": 0, "train_triggers": 0}),
        "final": cfg.final.model_copy(update={"quality": "none"}),
    }
    update["cross_encoder"] = cfg.cross_encoder.model_copy(
        update={"enabled": cross_encoder, "max_train_groups": 50, "params": CE_PARAMS}
    )
    run_explore(cfg.model_copy(update=update), out)


def measure(
    service: ExploreService, triggers: list[str], k: int, *, online_scoring: bool
) -> dict[str, Any]:
    """Wall-clock milliseconds per ``recommend`` call (timed outside the call)."""
    wall, inner, failed = [], [], 0
    for trigger in triggers:
        t0 = time.perf_counter()
        try:
            rec = service.recommend(trigger, k, online_scoring=online_scoring)
        except KnowrecError:  # e.g. a trigger without candidates: a timed failure
            failed += 1
            wall.append(1e3 * (time.perf_counter() - t0))
            continue
        wall.append(1e3 * (time.perf_counter() - t0))
        inner.append(rec.latency_ms)
    w = np.asarray(wall)
    return {
        "requests": len(triggers),
        "failed": failed,
        "p50_ms": float(np.percentile(w, 50)),
        "p99_ms": float(np.percentile(w, 99)),
        "mean_ms": float(w.mean()),
        "max_ms": float(w.max()),
        "reported_p50_ms": float(np.percentile(inner, 50)) if inner else None,
    }


def bench_run(run: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Both modes on one loaded run."""
    service = ExploreService.load(run, warm=True)
    ids = sorted(service.titles)
    rng = np.random.default_rng(args.seed)
    triggers = [ids[i] for i in rng.integers(0, len(ids), size=args.triggers)]
    ce = service.ranker.cross_encoder is not None
    for t in triggers[: args.warmup]:
        service.recommend(t, args.k)
    for t in triggers[: 2 if ce else args.warmup]:
        service.recommend(t, args.k, online_scoring=True)
    online = "online scoring" + (" with the cross-encoder" if ce else " (no cross-encoder)")
    modes = {"precomputed scores": measure(service, triggers, args.k, online_scoring=False)}
    n_online = args.ce_triggers if ce else args.triggers  # MiniLM on 1 thread: ~2 s each
    modes[online] = measure(service, triggers[:n_online], args.k, online_scoring=True)
    service.close()
    return {
        "run": str(run),
        "items": len(ids),
        "online_paths": list(service.online_paths),
        "cross_encoder": ce,
        "quality": service.manifest.quality,
        "load_ms": service.load_ms,
        "modes": modes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, action="append", help="a finished explore run")
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument(
        "--ce-triggers", type=int, default=50, help="online-scoring requests with a cross-encoder"
    )
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)

    runs = list(args.run or [])
    built: dict[str, float] = {}
    if not runs:
        plans = [(ROOT / "runs" / "bench_recommend_latency", False)]
        if importlib.util.find_spec("knowrec.ranking.cross_encoder") is not None:
            plans.append((ROOT / "runs" / "bench_recommend_latency_ce", True))
        for run, ce in plans:
            if not (run / SERVING_FILE).exists():
                t0 = time.perf_counter()
                build_run(run, cross_encoder=ce)
                built[str(run)] = time.perf_counter() - t0
            runs.append(run)
    for run in runs:
        if not (run / SERVING_FILE).exists():
            raise SystemExit(f"{run} is not a finished explore run (no {SERVING_FILE})")
        torch.set_num_threads(1)  # building a run may have changed it

    results = [bench_run(run, args) for run in runs]
    print(f"{'run':44s} {'mode':40s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean ms':>8s}")
    for r in results:
        for mode, m in r["modes"].items():
            name = Path(r["run"]).name
            print(
                f"{name:44s} {mode:40s} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f} {m['mean_ms']:8.2f}"
            )
    write_result(
        "recommend_latency",
        {
            "command": "python benchmarks/bench_recommend_latency.py"
            + "".join(f" --run {r}" for r in args.run or []),
            "threads": "torch 1, faiss 1, LightGBM 1 (the rankers' num_threads)",
            "triggers": args.triggers,
            "ce_triggers": min(args.ce_triggers, args.triggers),
            "warmup": args.warmup,
            "k": args.k,
            "runs_built_s": built,
            "runs": results,
        },
    )


if __name__ == "__main__":
    main()
