"""The cheap baselines of a finished (or running) HKNR run, from its cached stages: random,
popularity, encoder cosine (all users / users with history) and each article's click rate
in the training impressions. Shows how much signal a data set holds before any model.

    .venv/bin/python benchmarks/hknr_baselines.py runs/hknr_nemig_en
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl

from knowrec.hknr.baselines import popularity_scores, semantic_scores
from knowrec.hknr.config import HknrConfig
from knowrec.hknr.fit import build_world, make_samples
from knowrec.hknr.pipeline import (
    _load_knowledge,
    _load_protocol,
    _load_vectors,
    impression_metrics,
)


def stage(run: Path, name: str) -> Path:
    return run / json.loads((run / "manifest.json").read_text())["stages"][name]["folder"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    proto = _load_protocol(stage(args.run, "protocol"))
    ids, x = _load_vectors(stage(args.run, "vectors"))
    knowledge = _load_knowledge(stage(args.run, "knowledge"))
    world = build_world(
        proto.history, list(proto.samples.values()), ids, x, knowledge, HknrConfig().graph
    )
    test = make_samples(proto.samples["test"], proto.history, world, 50)
    y, g = test.label.numpy(), test.group.numpy()
    rate = proto.samples["train"].group_by("item_id").agg(rate=pl.col("label").mean())
    mean_rate = float(proto.samples["train"]["label"].mean())
    rows = {
        "random": np.random.default_rng(0).random(len(y)),
        "popularity (history clicks)": popularity_scores(proto.history, proto.samples["test"]),
        "semantic (encoder cosine)": semantic_scores(world, test),
        "article click rate in train impressions": proto.samples["test"]
        .join(rate, on="item_id", how="left")["rate"]
        .fill_null(mean_rate)
        .to_numpy(),
    }
    for name, score in rows.items():
        m = impression_metrics(y, score, g)
        print(f"{name:42s} " + "  ".join(f"{k} {v:.4f}" for k, v in m.items()))


if __name__ == "__main__":
    main()
