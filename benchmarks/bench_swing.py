"""SWING on ML-1M (users 1–2999): knowrec.similarity.swing against a straightforward
set-intersection reference of the docs/trawl.md formula, side by side in one run.

Every variant runs in its own child process. Memory: after loading the data and building the
graph, the child resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), so
``added_mib`` = peak RSS during the computation − RSS before it (after ``gc.collect()`` and
glibc ``malloc_trim``, so freed heap is not silently reused; numba's allocations are
invisible to tracemalloc); ``peak_mib`` is that peak for the whole process.

The reference needs ~8·10⁹ set intersections on all 2,999 users (about 37 h, see
PEERS.md), so both implementations also run on the users with id ≤ ``--ref-users``, where
their results are compared and their times give a ratio. On all ratings the version before
issue 17 (per-target co-counts, 32-bit buckets) runs beside today's. Subsets: all 487,650
ratings, and the positives (rating > 3) that TRAWL mines its contrastive positives from.

    .venv/bin/python benchmarks/bench_swing.py [--data ../shared/data] [--ref-users 300]
        [--jobs 1 2] [--skip-reference]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from common import SHARED_DATA, write_result

TOP_K = 10
CAPS = {"max_users_per_item": 300, "max_items_per_user": 300}


# --------------------------------------------------------------------------- reference


def reference_swing(
    pairs: list[tuple[str, str]], side: str, alpha: float = 1.0
) -> dict[str, dict[str, float]]:
    """The formula as written, with Python sets: for every target t and every x sharing a
    pivot with it, sum 1/(α + |T_p ∩ T_q|) over ordered pairs p ≠ q of P_t ∩ P_x. The
    pivot-pair intersections are memoised (without that it is the ~37 h of PEERS.md)."""
    targets_of: dict[str, set[str]] = defaultdict(set)
    pivots_of: dict[str, set[str]] = defaultdict(set)
    for user, item in pairs:
        t, p = (item, user) if side == "item" else (user, item)
        pivots_of[t].add(p)
        targets_of[p].add(t)
    shared: dict[tuple[str, str], int] = {}
    out: dict[str, dict[str, float]] = {}
    for t, mine in pivots_of.items():
        scores: dict[str, float] = {}
        for x in set().union(*(targets_of[p] for p in mine)) - {t}:
            common = mine & pivots_of[x]
            s = 0.0
            for p in common:
                for q in common:
                    if p == q:
                        continue
                    key = (p, q) if p < q else (q, p)
                    n = shared.get(key)
                    if n is None:
                        n = shared[key] = len(targets_of[p] & targets_of[q])
                    s += 1.0 / (alpha + n)
            if s > 0:
                scores[x] = s
        out[t] = scores
    return out


def reference_top_k(
    scores: dict[str, dict[str, float]], ids: list[str], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k arrays in knowrec's layout: best first, ties to the smaller id, -1 padding."""
    index = {x: i for i, x in enumerate(ids)}
    nb = np.full((len(ids), k), -1, dtype=np.int64)
    sc = np.zeros((len(ids), k))
    for t, row in scores.items():
        best = sorted(((-s, index[x]) for x, s in row.items()))[:k]
        for r, (neg, x) in enumerate(best):
            nb[index[t], r], sc[index[t], r] = x, -neg
    return nb, sc


# --------------------------------------------------------------------------- child


def subset(data: Path, which: str, max_user: int | None) -> pl.DataFrame:
    from knowrec.data.movielens import load_movielens

    df = load_movielens(data / "ml-1m").interactions
    if which == "pos":
        df = df.filter(pl.col("rating") > 3)
    if max_user is not None:
        df = df.filter(pl.col("user_id").cast(pl.Int64) <= max_user)
    return df


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one variant; return timings and this process's peak RSS."""
    from knowrec.similarity import build_bipartite, swing

    df = subset(Path(spec["data"]), spec["subset"], spec.get("max_user"))
    caps = CAPS if spec.get("capped") else {}
    graph = build_bipartite(df, **caps)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    swing(graph.matrix[:20], side="item", n_jobs=1)  # compiles or loads the numba cache
    first_call = time.perf_counter() - t0
    out: dict[str, Any] = {"ratings": df.height, "first_call_s": first_call}
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back: no silent reuse
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (Linux ≥ 4.0)
    rss_before = _status_mib("VmRSS")
    kind = spec["kind"]
    extra: dict[str, Any] = {}
    if kind == "previous":  # the version before issue 17: per-target co-counts, int32 buckets
        import knowrec.similarity.swing as swing_module

        swing_module.TABLE_MAX_BYTES = 0
        extra = {"_narrow_max": 0}
    walls, cpus = [], []
    for _ in range(spec.get("repeats", 1)):
        w, c = time.perf_counter(), time.process_time()
        if kind in ("fast", "previous"):
            res = swing(graph, side=spec["side"], top_k=TOP_K, n_jobs=spec["jobs"], **extra)
            nb, sc, ids = res.neighbours, res.scores, res.ids
        elif kind == "reference":
            pairs = list(zip(df["user_id"].to_list(), df["item_id"].to_list(), strict=True))
            scores = reference_swing(pairs, spec["side"])
            ids = graph.item_ids if spec["side"] == "item" else graph.user_ids
            nb, sc = reference_top_k(scores, ids.tolist(), TOP_K)
        else:
            raise ValueError(f"unknown variant kind {kind!r}")
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    if spec.get("save"):
        np.savez(spec["save"], neighbours=nb, scores=sc, ids=np.asarray(ids, dtype=str))
    out.update(
        wall_s=float(np.median(walls)),
        cpu_s=float(np.median(cpus)),
        peak_mib=_status_mib("VmHWM"),
        added_mib=_status_mib("VmHWM") - rss_before,
    )
    return out


def _status_mib(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match, field
    return int(match.group(1)) / 1024


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"variant {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- parent


def agreement(fast: Path, ref: Path) -> dict[str, Any]:
    """Scores and positives of two saved top-k results on the same entity ids."""
    a, b = np.load(fast), np.load(ref)
    assert (a["ids"] == b["ids"]).all()
    sa, sb = a["scores"], b["scores"]
    rel = np.abs(sa - sb) / np.maximum(np.abs(sb), 1e-300)
    rel[(sa == 0) & (sb == 0)] = 0.0
    pa, pb = a["neighbours"][:, 0], b["neighbours"][:, 0]
    # A differing positive is acceptable only where the reference has a tie at the top.
    tie = np.isclose(sb[:, 0], sb[:, 1], rtol=1e-9) & (b["neighbours"][:, 1] >= 0)
    return {
        "max_rel_score_diff": float(rel.max()) if rel.size else 0.0,
        "positives_equal": int((pa == pb).sum()),
        "positives_differ_at_ties": int(((pa != pb) & tie).sum()),
        "positives_differ_otherwise": int(((pa != pb) & ~tie).sum()),
        "entities": int(pa.size),
    }


def same_positives(a: Path, b: Path) -> float:
    x, y = np.load(a)["neighbours"][:, 0], np.load(b)["neighbours"][:, 0]
    has = x >= 0
    return float((x[has] == y[has]).mean()) if has.any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--ref-users", type=int, default=300)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--full-users", type=int, default=None, help="smoke runs: fewer users")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench_swing_"))
    base = {"data": str(args.data)}
    full = {} if args.full_users is None else {"max_user": args.full_users}
    load_start = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    previous_vs_now: dict[str, dict[str, Any]] = {}

    def variant(name: str, **spec: Any) -> dict[str, Any]:
        res = run_child({**base, **spec})
        row = {"variant": name, **spec, **res}
        row.pop("data", None)
        rows.append(row)
        print(
            f"{name:44s} wall {res['wall_s']:9.3f} s  cpu {res['cpu_s']:9.3f} s  "
            f"added RSS {res['added_mib']:7.1f} MiB (peak {res['peak_mib']:5.0f})",
            flush=True,
        )
        return row

    for which in ("all", "pos"):
        for side in ("item", "user"):
            for jobs in args.jobs:
                for kind in ("previous", "fast") if which == "all" else ("fast",):
                    variant(
                        f"knowrec{' (previous)' * (kind == 'previous')} {side} {which} full, "
                        f"{jobs} thread(s)",
                        kind=kind, subset=which, side=side, jobs=jobs, **full,
                        save=str(tmp / f"{kind}_{side}_{which}.npz"),
                    )  # fmt: skip
            if which == "all":
                same = agreement(tmp / f"fast_{side}_all.npz", tmp / f"previous_{side}_all.npz")
                previous_vs_now[side] = same
                print(f"  {side}: now vs previous {same}", flush=True)
        for side in ("item", "user"):
            variant(
                f"knowrec {side} {which} full, caps 300/300 (recent)",
                kind="fast", subset=which, side=side, jobs=1, capped=True, **full,
                save=str(tmp / f"capped_{side}_{which}.npz"),
            )  # fmt: skip
    for row in rows:
        if row.get("capped"):
            exact = tmp / f"fast_{row['side']}_{row['subset']}.npz"
            row["same_positive_as_uncapped"] = same_positives(Path(row["save"]), exact)

    ratios = []
    if not args.skip_reference:
        n = args.ref_users
        for which in ("all", "pos"):
            for side in ("item", "user"):
                fast = variant(
                    f"knowrec {side} {which} users<={n}", kind="fast", subset=which,
                    side=side, jobs=1, max_user=n, repeats=5,
                    save=str(tmp / f"sub_fast_{side}_{which}.npz"),
                )  # fmt: skip
                ref = variant(
                    f"reference {side} {which} users<={n}", kind="reference", subset=which,
                    side=side, max_user=n, save=str(tmp / f"sub_ref_{side}_{which}.npz"),
                )  # fmt: skip
                agree = agreement(Path(fast["save"]), Path(ref["save"]))
                ratios.append(
                    {
                        "side": side, "subset": which, "users": n,
                        "ratings": fast["ratings"],
                        "knowrec_wall_s": fast["wall_s"], "reference_wall_s": ref["wall_s"],
                        "speedup_wall": ref["wall_s"] / fast["wall_s"],
                        "speedup_cpu": ref["cpu_s"] / fast["cpu_s"],
                        "knowrec_added_mib": fast["added_mib"],
                        "reference_added_mib": ref["added_mib"],
                        **agree,
                    }
                )  # fmt: skip
                r = ratios[-1]
                print(
                    f"  -> {side} {which}: reference / knowrec = {r['speedup_wall']:.0f}x wall, "
                    f"{r['speedup_cpu']:.0f}x cpu; max rel score diff "
                    f"{r['max_rel_score_diff']:.1e}; positives equal {r['positives_equal']}"
                    f"/{r['entities']} (+{r['positives_differ_at_ties']} at ties)",
                    flush=True,
                )
    for row in rows:
        row.pop("save", None)
    load_end = os.getloadavg()[0]
    print(f"load average (1 min) at start {load_start:.1f}, at end {load_end:.1f}")
    path = write_result(
        "swing",
        {
            "top_k": TOP_K,
            "alpha": 1.0,
            "caps": CAPS,
            "loadavg_start_end": [load_start, load_end],
            "variants": rows,
            "now_vs_previous": previous_vs_now,
            "reference_ratio": ratios,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
