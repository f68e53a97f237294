"""The TRAWL protocol on ML-1M (users 1–2999): user split, reserved history, CTR samples with
the last 10 (item, rating) pairs, against a per-user Python loop building the same sequences
in the same run (outputs compared).

    .venv/bin/python benchmarks/bench_protocol.py [--data ../shared/data] [--max-len 10]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from common import SHARED_DATA, write_result
from knowrec.data.movielens import load_movielens
from knowrec.data.protocol import ctr_samples, reserve_history, split_users


def loop_reference(rest: pl.DataFrame, timeline: pl.DataFrame, max_len: int) -> list[list[str]]:
    """Per user: walk the timeline in order, keep the items strictly before each sample."""
    by_user: dict[str, list[tuple]] = {}
    for pos, (u, i, t) in enumerate(timeline.select("user_id", "item_id", "timestamp").rows()):
        by_user.setdefault(u, []).append((t, pos, i))
    for rows in by_user.values():
        rows.sort()
    out = []
    for u, t in rest.select("user_id", "timestamp").rows():
        rows = by_user.get(u, [])
        before = [r[2] for r in rows if r[0] < t]
        out.append(before[-max_len:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--max-len", type=int, default=10)
    args = parser.parse_args()
    inter = load_movielens(args.data / "ml-1m").interactions

    t0 = time.perf_counter()
    parts = split_users(inter, seed=0)
    t1 = time.perf_counter()
    guard = reserve_history(inter, n_first=5)
    t2 = time.perf_counter()
    samples = ctr_samples(guard["rest"], inter, max_len=args.max_len, label="rating > 3")
    t3 = time.perf_counter()
    reference = loop_reference(guard["rest"], inter, args.max_len)
    t4 = time.perf_counter()
    same = samples["hist_item_ids"].to_list() == reference

    rows = {
        "split_users_s": t1 - t0,
        "reserve_history_s": t2 - t1,
        "ctr_samples_s": t3 - t2,
        "python_loop_s": t4 - t3,
        "ratio_knowrec_to_loop": (t3 - t2) / (t4 - t3),
        "samples": samples.height,
        "positive_rate": float(samples["label"].mean()),
        "users_per_part": {k: v["user_id"].n_unique() for k, v in parts.items()},
        "identical_sequences": same,
    }
    for key, value in rows.items():
        print(f"{key:>24}: {value:.3f}" if isinstance(value, float) else f"{key:>24}: {value}")
    write_result("protocol", {"command": "python benchmarks/bench_protocol.py", **rows})
    if not same:
        raise SystemExit("ctr_samples and the reference loop disagree")


if __name__ == "__main__":
    main()
