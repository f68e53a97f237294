"""How distinct each knowledge method's frozen vectors are, per side, in a finished TRAWL run:
mean cosine of random pairs, mean cosine to the nearest other row, and the effective rank
(exp of the entropy of the centred spectrum). Near-identical rows carry little to a CTR
model; rows as distinct as ids let it memorise the training users (test users are unseen).

    .venv/bin/python benchmarks/trawl_vector_spread.py runs/trawl_ml1m
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result

PAIRS, NEAREST = 3000, 500  # random pairs; rows whose nearest neighbour is measured


def spread(x: np.ndarray, seed: int = 0) -> dict[str, float]:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(x), PAIRS), rng.integers(0, len(x), PAIRS)
    keep = i != j
    sims = x @ x[:NEAREST].T
    sims[np.arange(NEAREST), np.arange(NEAREST)] = -1.0  # not the row itself
    s = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    p = s / s.sum()
    return {
        "rows": len(x),
        "mean_cos": float((x[i[keep]] * x[j[keep]]).sum(1).mean()),
        "nearest_cos": float(sims.max(0).mean()),
        "effective_rank": float(np.exp(-(p * np.log(p + 1e-12)).sum())),
    }


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/trawl_ml1m")
    rows = []
    for path in sorted(run.glob("vectors-*-*/vectors.npz")):
        _, side, method = path.parent.name.rsplit("-", 1)[0].split("-", 2)
        rows.append({"side": side, "method": method, **spread(np.load(path)["vectors"])})
    if not rows:
        sys.exit(f"no finished vectors-* stages in {run}")
    for r in rows:
        print(
            f"{r['side']:5} {r['method']:14} rows {r['rows']:5}  mean cos {r['mean_cos']:.3f}  "
            f"nearest {r['nearest_cos']:.3f}  effective rank {r['effective_rank']:.1f}"
        )
    print(write_result("trawl_vector_spread", {"run": str(run), "rows": rows}))


if __name__ == "__main__":
    main()
