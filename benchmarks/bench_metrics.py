"""knowrec.metrics on 10^6 random scores, side by side with scikit-learn in one run.

    .venv/bin/python benchmarks/bench_metrics.py [--n 1000000] [--groups 100000] [--repeats 5]

Times AUC, GAUC (10^5 groups), pairwise accuracy (binary, graded 0–4 and real-valued
labels) and NDCG@10 (10^5 groups), and sklearn's ``roc_auc_score`` / ``ndcg_score`` on the
same data for a ratio. Median of ``--repeats``, interleaved. Targets: AUC and pairwise
accuracy under 1 s on 10^6 scores.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import ndcg_score, roc_auc_score

from common import write_result
from knowrec.metrics import auc, gauc, ndcg_at_k, pairwise_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    n, n_groups = args.n, args.groups
    y = (rng.random(n) < 0.3).astype(np.int8)
    s = rng.normal(size=n) + 0.5 * y  # a weakly informative score, no ties
    graded = np.minimum(rng.poisson(1.2, n), 4).astype(np.float64)
    real = rng.normal(size=n)
    groups = rng.integers(0, n_groups, n)
    size = n // n_groups  # equal-size groups, laid out as a matrix for sklearn's ndcg_score
    rel = (rng.random((n_groups, size)) < 0.3) * rng.integers(1, 4, (n_groups, size))
    rel[:, 0] = np.maximum(rel[:, 0], 1)
    sc = rng.normal(size=(n_groups, size))
    flat_groups = np.repeat(np.arange(n_groups), size)

    cases: dict[str, Callable[[], Any]] = {
        "knowrec auc": lambda: auc(y, s),
        "sklearn roc_auc_score": lambda: roc_auc_score(y, s),
        f"knowrec gauc ({n_groups:,} groups)": lambda: gauc(y, s, groups),
        "knowrec pairwise_accuracy, binary labels": lambda: pairwise_accuracy(y, s),
        "knowrec pairwise_accuracy, labels 0–4": lambda: pairwise_accuracy(graded, s),
        "knowrec pairwise_accuracy, real labels": lambda: pairwise_accuracy(real, s),
        f"knowrec ndcg_at_k k=10 ({n_groups:,} groups of {size})": lambda: ndcg_at_k(
            rel.ravel(), sc.ravel(), 10, groups=flat_groups
        ),
        f"sklearn ndcg_score k=10 ignore_ties ({n_groups:,} x {size})": lambda: ndcg_score(
            rel, sc, k=10, ignore_ties=True
        ),
    }
    # Agreement on this data (not just speed).
    assert abs(auc(y, s) - roc_auc_score(y, s)) < 1e-12
    assert abs(pairwise_accuracy(y, s) - auc(y, s)) < 1e-12
    ndcg_diff = abs(
        ndcg_at_k(rel.ravel(), sc.ravel(), 10, groups=flat_groups)
        - ndcg_score(rel, sc, k=10, ignore_ties=True)
    )
    assert ndcg_diff < 1e-9

    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every case alike
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    names = list(cases)
    ratios = {
        "auc / sklearn roc_auc_score": median[names[0]] / median[names[1]],
        "ndcg_at_k / sklearn ndcg_score": median[names[6]] / median[names[7]],
    }
    print(f"n = {n:,} scores, median of {args.repeats}")
    for name, value in median.items():
        print(f"{name:55s} {value:8.3f} s")
    for name, value in ratios.items():
        print(f"{'ratio ' + name:55s} {value:8.3f}")
    write_result(
        "metrics",
        {
            "n": n,
            "groups": n_groups,
            "repeats": args.repeats,
            "median_s": median,
            "ratios": ratios,
            "all_s": times,
            "targets": {
                "auc_under_1s": median[names[0]] < 1.0,
                "pairwise_accuracy_under_1s": max(median[names[i]] for i in (3, 4, 5)) < 1.0,
            },
        },
    )


if __name__ == "__main__":
    main()
