"""Record the tables of a finished Explore Further run in ``benchmarks/results/<name>.json``:
Table 5, per-path recall, the λ sweep, the judge's counts and every stage's seconds, and,
for a run with the cross-encoder, how well its quality head agrees with the LLM judge on
the held-out judged pairs (within-trigger pairwise accuracy; the student never saw these
pairs). Item titles and ids (the example recommendations, the judged triggers) are left
out: the real data sets may not be redistributed.

    knowrec run configs/explore_ml1m.toml
    .venv/bin/python benchmarks/explore_results.py runs/explore_ml1m --name explore_ml1m
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result
from knowrec.metrics import pairwise_accuracy

KEEP = ("protocol", "table5", "recall", "lambda_sweep", "judge", "cross_encoder", "stages")


def quality_head(run: Path, stages: dict[str, Any]) -> dict[str, Any] | None:
    """The quality head (and, for reference, the click head) against the judge's score on
    the judged held-out pairs of the full candidate set."""
    if "cross-encoder" not in stages or "judge" not in stages:
        return None
    ce, s1 = run / stages["cross-encoder"]["folder"], run / stages["stage1"]["folder"]
    keys = pl.read_parquet(s1 / "pairs_full.parquet", columns=["trigger_id", "item_id"])
    heads = pl.concat([keys, pl.read_parquet(ce / "pairs_full.parquet")], how="horizontal")
    judged = pl.read_parquet(run / stages["judge"]["folder"] / "judged.parquet")
    held = judged.filter((pl.col("split") == "eval") & pl.col("quality").is_not_null())
    pairs = held.select("trigger_id", item_id="candidate_id", judge="quality").join(
        heads, on=["trigger_id", "item_id"], how="inner"
    )
    judge, groups = pairs["judge"].to_numpy(), pairs["trigger_id"].to_numpy()
    out: dict[str, Any] = {"held_out_pairs": pairs.height, "triggers": len(np.unique(groups))}
    for head in ("quality_score", "click_score"):
        out[f"{head}_pairwise_accuracy"] = pairwise_accuracy(judge, pairs[head].to_numpy(), groups)
    out["train"] = json.loads((ce / "cross_encoder.json").read_text())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished Explore Further run directory")
    parser.add_argument("--name", required=True, help="benchmarks/results/<name>.json")
    parser.add_argument("--command", default=None, help="how the run was made (recorded)")
    args = parser.parse_args()
    path = args.run / "results.json"
    if not path.is_file():
        sys.exit(f"error: {path} not found: is {args.run} a finished Explore Further run?")
    results = json.loads(path.read_text())
    config = json.loads((args.run / "manifest.json").read_text()).get("config")
    payload = {k: results[k] for k in KEEP if k in results}
    payload["quality_head"] = quality_head(args.run, results.get("stages", {}))
    out = write_result(args.name, {"command": args.command, "config": config, **payload})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
