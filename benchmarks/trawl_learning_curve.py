"""TRAWL on ML-1M as the training data shrinks: DIN with item knowledge (none, raw text,
TRAWL) trained on a share of the training users, 3 seeds each, the same validation and
test users throughout. Knowledge should matter most where the item ids have the fewest
samples to learn from.

    .venv/bin/python benchmarks/trawl_learning_curve.py                # 10%, 30%, 100%
    .venv/bin/python benchmarks/trawl_learning_curve.py --shares 0.1 --methods none,trawl

Every model is a stage of ``runs/trawl_ml1m`` (the run directory of
``configs/trawl_ml1m.toml``), so a rerun only trains what is missing. Results:
``benchmarks/results/trawl_learning_curve.json`` (``…_item_user.json`` for ``--sides
item,user``) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, write_result
from knowrec.trawl import run_trawl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shares", default="0.1,0.3,1.0", help="shares of training users")
    parser.add_argument("--methods", default="none,raw,trawl")
    parser.add_argument("--sides", default="item", help="item | user | item,user")
    parser.add_argument("--backbone", default="din")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "trawl_ml1m.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "trawl_ml1m")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if methods[0] != "none":
        raise SystemExit("--methods must start with none (the baseline of the differences)")
    sides = ",".join(f'"{s}"' for s in args.sides.split(","))
    rows = []
    for share in [float(s) for s in args.shares.split(",")]:
        overrides = [
            f'backbones=["{args.backbone}"]',
            f"seeds=[{args.seeds}]",
            "ablations=false",
            "sweep={}",
            f"knowledge.sides=[{sides}]",
            "knowledge.methods=[" + ",".join(f'"{m}"' for m in methods) + "]",
            f"protocol.train_users={share}",
        ]
        result = run_trawl(args.config, args.out, Console(quiet=True), overrides=overrides)
        runs = result["runs"]
        by = {m: {r["seed"]: r for r in runs if r["method"] == m} for m in methods}
        for m in methods:
            auc = np.array([by[m][s]["test_auc"] for s in sorted(by[m])])
            cold = np.array([by[m][s].get("test_cold_auc", np.nan) for s in sorted(by[m])])
            gain = auc - np.array([by["none"][s]["test_auc"] for s in sorted(by[m])])
            rows.append(
                {
                    "train_users": share,
                    "method": m,
                    "test_auc": float(auc.mean()),
                    "test_auc_std": float(auc.std(ddof=1)) if len(auc) > 1 else 0.0,
                    "cold_auc": float(np.nanmean(cold)),
                    "gain_vs_none": [round(float(g), 4) for g in gain],
                }
            )
    print("| training users | knowledge | test AUC | cold-item AUC | − none, per seed |")
    print("|---|---|---|---|---|")
    for r in rows:
        gains = ", ".join(f"{g:+.4f}" for g in r["gain_vs_none"]) if r["method"] != "none" else ""
        print(
            f"| {r['train_users']:.0%} | {r['method']} | {r['test_auc']:.4f} ± "
            f"{r['test_auc_std']:.4f} | {r['cold_auc']:.4f} | {gains} |"
        )
    suffix = "" if args.sides == "item" else "_" + args.sides.replace(",", "_")
    write_result(
        f"trawl_learning_curve{suffix}",
        {
            "protocol": f"configs/trawl_ml1m.toml, {args.backbone}, knowledge sides {args.sides}",
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
