"""HKNR end to end on one config, as a user runs it (issue 14, performance): wall time and
peak RSS of ``knowrec run`` into a fresh run directory (article encoding included), the
same without the encoding stage (what a rerun with cached vectors costs), each stage's
seconds, and the graph encoder's epoch time (HKNR's training seconds per epoch).

One seed and HKNR alone (no ablations, no baselines): the system, not the comparison
study that ``configs/hknr_nemig_en.toml`` runs.

    .venv/bin/python benchmarks/bench_hknr.py configs/hknr_nemig_en.toml [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, write_result

SETTINGS = ["seeds=[0]", "ablations=false", "baselines=[]"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_hknr")
    parser.add_argument("--set", action="append", default=[], help="more config overrides")
    args = parser.parse_args()
    settings = SETTINGS + args.set
    out = args.out / args.config.stem
    shutil.rmtree(out, ignore_errors=True)
    overrides = [x for s in settings for x in ("--set", s)]
    cmd = [sys.executable, "-m", "knowrec", "run", str(args.config), "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd + overrides, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    seconds = {name: s["seconds"] for name, s in stages.items()}
    train = next(out / s["folder"] for n, s in stages.items() if n.startswith("train-hknr-"))
    epochs = json.loads((train / "fit.json").read_text())["history"]
    result = {
        "config": str(args.config),
        "settings": settings,
        "wall_s": round(wall, 1),
        "wall_without_encoding_s": round(wall - seconds["vectors"], 1),
        "peak_rss_mib": round(peak_mib),
        "stage_s": seconds,
        "epochs": len(epochs),
        "epoch_train_s": [round(e["train_seconds"], 1) for e in epochs],
        "epoch_eval_s": [round(e["eval_seconds"], 1) for e in epochs],
    }
    print(json.dumps(result, indent=2))
    write_result(f"hknr_e2e_{args.config.stem}", result)


if __name__ == "__main__":
    main()
