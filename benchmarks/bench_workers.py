"""TRAWL's models trained one after another vs side by side (`workers`), on the same
cached upstream stages: wall time of the training part of `knowrec run`.

The run directory is first filled with every stage but the models (data, protocol,
knowledge, vectors, SWING; not timed). Then, for each worker count, the models' folders
are removed and the run is timed again: `workers = 1` trains with all `train.threads`
threads, `workers = n` runs n models at once with `threads / n` each. The scores must
agree up to rounding (same seeds and stage keys; other thread counts).

    .venv/bin/python benchmarks/bench_workers.py            # ML-1M, item side, DIN, 4 models
    .venv/bin/python benchmarks/bench_workers.py --workers 1,2 --set 'seeds=[0,1,2]'
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, write_result
from knowrec.trawl import run_trawl

DEFAULTS = [
    'backbones=["din"]',
    "seeds=[0,1]",
    "ablations=false",
    "sweep={}",
    'knowledge.sides=["item"]',
    'knowledge.methods=["none","raw"]',
    "train.epochs=1",
    "train.threads=2",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "trawl_ml1m.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_workers")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    overrides = DEFAULTS + args.overrides
    console = Console(stderr=True)
    counts = [int(w) for w in args.workers.split(",")]
    # the upstream stages, with one model (the last method's) as cheap as the config allows
    methods = next(o for o in reversed(overrides) if o.startswith("knowledge.methods="))
    last = methods.split("=", 1)[1].strip("[]").split(",")[-1]
    run_trawl(args.config, args.out, console, overrides=[*overrides, "seeds=[0]",
              f"knowledge.methods=[{last}]"])  # fmt: skip
    rows, scores = [], {}
    for workers in counts:
        for folder in args.out.glob("train-*"):
            shutil.rmtree(folder)
        t0 = time.perf_counter()
        result = run_trawl(
            args.config, args.out, console, overrides=[*overrides, f"workers={workers}"]
        )
        seconds = time.perf_counter() - t0
        scores[workers] = [round(r["test_auc"], 6) for r in result["runs"]]
        rows.append(
            {"workers": workers, "models": len(result["runs"]), "wall_s": round(seconds, 1)}
        )
        console.print(rows[-1])
    base = rows[0]["wall_s"]
    for row in rows:
        row["x_first"] = round(base / row["wall_s"], 2)
    # the thread count per model differs, so the sums may round differently
    first = scores[counts[0]]
    diff = max(abs(a - b) for s in scores.values() for a, b in zip(first, s, strict=True))
    path = write_result(
        "workers",
        {"config": str(args.config), "overrides": overrides, "rows": rows,
         "test_auc": scores, "max_test_auc_difference": diff},
    )  # fmt: skip
    print(rows, f"largest test AUC difference {diff:.2g}", path)


if __name__ == "__main__":
    main()
