"""SWING and co-engagement counts at 1×, 2×, 4×, 8× ML-1M-shaped data, in process and on
Spark (local mode), side by side: time, peak memory and agreement (docs/scaling.md).

Data of size k: ML-1M (users 1–2999) copied k times; copy j ≥ 1 renames every user and
moves each interaction, with probability ½, to a twin item of copy j (so items grow with
the data while the copies still share the popular originals). Steps, as TRAWL and Explore
use them:

- ``swing``: SWING positives over the liked ratings (rating > 3), caps 500 users per item
  and 300 items per user (TRAWL's defaults), top-10, both sides;
- ``coengagement``: 30-minute sessions, satisfied = rating ≥ 4, pair counts with 7/30/180
  day windows.

Each (size, step, engine) runs in its own child process. Memory: peak RSS of the child
(in process), and of the child plus its JVM (Spark). Spark's time includes its start (a few
seconds, also reported alone). At 1× the results of the two engines are compared.

    .venv/bin/python benchmarks/bench_scaling.py [--sizes 1 2 4 8] [--spark-max 8]
        [--master local[2]]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from common import ROOT, SHARED_DATA, write_result

CAPS = {"max_users_per_item": 500, "max_items_per_user": 300}
RULE = "rating >= 4"
WINDOWS = (7, 30, 180)


def scaled(data: Path, k: int) -> pl.DataFrame:
    """ML-1M ratings copied ``k`` times (see the module docstring), string ids."""
    from knowrec.data.movielens import load_movielens

    base = load_movielens(data / "ml-1m").interactions.select(
        pl.col("user_id").cast(pl.String),
        pl.col("item_id").cast(pl.String),
        "timestamp",
        "rating",
    )
    rng = np.random.default_rng(0)
    parts = [base]
    for j in range(1, k):
        twin = rng.random(base.height) < 0.5
        parts.append(
            base.with_columns(
                user_id=pl.col("user_id") + f"_{j}",
                item_id=pl.when(pl.Series(twin))
                .then(pl.col("item_id") + f"_{j}")
                .otherwise(pl.col("item_id")),
            )
        )
    return pl.concat(parts)


# --------------------------------------------------------------------------- child


def child(spec: dict[str, Any]) -> dict[str, Any]:
    source = Path(spec["source"])
    out_dir = Path(spec["out"])
    step, engine = spec["step"], spec["engine"]
    started = time.perf_counter()
    if engine == "local":
        from knowrec.similarity import swing
        from knowrec.similarity.coclick import coclick_counts

        inter = pl.read_parquet(source)
        if step == "swing":
            liked = inter.filter(pl.col("rating") > 3)
            frames = [
                swing(liked, side=side, top_k=10, **CAPS).to_frame().with_columns(side=pl.lit(side))
                for side in ("item", "user")
            ]
            result = pl.concat(frames)
        else:
            from knowrec.data.protocol import sessionize

            result = coclick_counts(sessionize(inter), rule=RULE, windows_days=WINDOWS)
        result.write_parquet(out_dir / f"{step}_local.parquet")
        rows = result.height
        spark_start = 0.0
    else:
        from pyspark.sql import functions as F

        from knowrec.spark import spark_session
        from knowrec.spark.swing import swing_spark

        spark = spark_session({"spark.master": spec["master"], "spark.driver.memory": "6g"})
        spark_start = time.perf_counter() - started
        inter = spark.read.parquet(str(source))
        if step == "swing":
            liked = inter.where(F.col("rating") > 3)
            frames = [
                swing_spark(liked, side=side, top_k=10, **CAPS).withColumn("side", F.lit(side))
                for side in ("item", "user")
            ]
            result = frames[0].unionByName(frames[1])
        else:
            from knowrec.spark.coengagement import coclick_counts_spark, sessionize_spark

            result = coclick_counts_spark(sessionize_spark(inter), rule=RULE, windows_days=WINDOWS)
        path = out_dir / f"{step}_spark.parquet"
        result.write.mode("overwrite").parquet(str(path))
        rows = spark.read.parquet(str(path)).count()
        jvm = _jvm_peak_mib(spark)
        spark.stop()
    wall = time.perf_counter() - started
    peak = _status_mib(os.getpid())
    if engine == "spark":
        peak += jvm
    return {"wall_s": wall, "spark_start_s": spark_start, "peak_mib": peak, "rows": rows}


def _status_mib(pid: int, field: str = "VmHWM") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else float("nan")


def _jvm_peak_mib(spark: Any) -> float:
    """Peak RSS of the JVM behind this session (local mode: driver and executors)."""
    pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    return _status_mib(pid)


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['step']} {spec['engine']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- parent


def agreement(step: str, out_dir: Path) -> dict[str, Any]:
    """How the Spark result compares with the in-process one."""
    local = pl.read_parquet(out_dir / f"{step}_local.parquet")
    remote = pl.read_parquet(out_dir / f"{step}_spark.parquet/*.parquet")
    if step == "swing":
        key = ["side", "id", "rank"]
        j = local.join(remote, on=key, how="full", coalesce=True, suffix="_s")
        rel = ((j["score"] - j["score_s"]).abs() / j["score"]).max()
        same = (j["neighbour_id"] == j["neighbour_id_s"]).fill_null(False)
        return {
            "rows_local": local.height, "rows_spark": remote.height,
            "same_neighbour_share": float(same.mean()), "max_rel_score_diff": float(rel),
        }  # fmt: skip
    key = ["item_a", "item_b"]
    local = local.sort(key)
    remote = remote.select(local.columns).sort(key)
    return {
        "rows_local": local.height, "rows_spark": remote.height,
        "equal": local.equals(remote),
    }  # fmt: skip


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for step in ("swing", "coengagement"):
        for engine, style in (("local", "-o"), ("spark", "--s")):
            pts = [r for r in rows if r["step"] == step and r["engine"] == engine]
            x = [r["interactions"] / 1e6 for r in pts]
            axes[0].plot(x, [r["wall_s"] for r in pts], style, label=f"{step}, {engine}")
            axes[1].plot(x, [r["peak_mib"] for r in pts], style, label=f"{step}, {engine}")
    for ax, label in zip(axes, ("wall time (s)", "peak memory (MiB)"), strict=True):
        ax.set_xlabel("interactions (millions)")
        ax.set_ylabel(label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([0.5, 1, 2, 4], labels=["0.5", "1", "2", "4"])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    ticks = [300, 1000, 3000, 8000]
    axes[1].set_yticks(ticks, labels=[f"{t:,}" for t in ticks])
    axes[0].legend(fontsize=8)
    fig.suptitle("SWING and co-engagement counts: in process vs Spark local mode")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--steps", nargs="+", default=["swing", "coengagement"])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--spark-max", type=int, default=8, help="largest size run on Spark")
    parser.add_argument(
        "--append", action="store_true", help="keep the other sizes of results/scaling.json"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    load_start = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        for k in args.sizes:
            out_dir = Path(tmp) / f"x{k}"
            out_dir.mkdir()
            data = scaled(args.data, k)
            source = out_dir / "interactions.parquet"
            data.write_parquet(source)
            for step in args.steps:
                for engine in ("local", "spark") if k <= args.spark_max else ("local",):
                    spec = {"source": str(source), "out": str(out_dir), "step": step,
                            "engine": engine, "master": args.master}  # fmt: skip
                    res = run_child(spec)
                    row = {"size": k, "interactions": data.height, "step": step,
                           "engine": engine, **res}  # fmt: skip
                    rows.append(row)
                    print(
                        f"{k}x ({data.height:,} rows) {step:13s} {engine:5s} "
                        f"wall {res['wall_s']:8.1f} s  peak {res['peak_mib']:7.0f} MiB  "
                        f"rows {res['rows']:,}",
                        flush=True,
                    )
                if k == 1:
                    checks[step] = agreement(step, out_dir)
                    print(f"  1x {step}: Spark vs in process {checks[step]}", flush=True)
    earlier: dict[str, Any] = {}
    if args.append and (ROOT / "benchmarks" / "results" / "scaling.json").exists():
        earlier = json.loads((ROOT / "benchmarks" / "results" / "scaling.json").read_text())
        done = {(r["size"], r["step"], r["engine"]) for r in rows}
        kept = [r for r in earlier["runs"] if (r["size"], r["step"], r["engine"]) not in done]
        rows = sorted(kept + rows, key=lambda r: (r["size"], r["step"], r["engine"]))
        checks = {**earlier.get("agreement_1x", {}), **checks}
    png = ROOT / "benchmarks" / "results" / "scaling.png"
    plot(rows, png)
    load_end = os.getloadavg()[0]
    path = write_result(
        "scaling",
        {
            "caps": CAPS, "rule": RULE, "windows_days": list(WINDOWS), "master": args.master,
            "loadavg_start_end": [load_start, load_end], "runs": rows, "agreement_1x": checks,
            "earlier_runs_from": earlier.get("date"),
        },
    )  # fmt: skip
    print(f"wrote {path} and {png}; load average {load_start:.1f} → {load_end:.1f}")


if __name__ == "__main__":
    main()
