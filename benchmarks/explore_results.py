"""Record the tables of a finished Explore Further run in ``benchmarks/results/<name>.json``:
Table 5, per-path recall, the λ sweep, the judge's counts and every stage's seconds. Item
titles and ids (the example recommendations, the judged triggers) are left out: the real
data sets may not be redistributed.

    knowrec run configs/explore_ml1m.toml
    .venv/bin/python benchmarks/explore_results.py runs/explore_ml1m --name explore_ml1m
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result

KEEP = ("protocol", "table5", "recall", "lambda_sweep", "judge", "cross_encoder", "stages")


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
    out = write_result(args.name, {"command": args.command, "config": config, **payload})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
