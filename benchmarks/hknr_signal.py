"""How much signal a news log holds before any model, on the test impressions of an HKNR
run (its cached stages, the same split as the models): random, the display position,
history popularity, the article's click rate in the training impressions, the encoder
cosine of history and candidate, and whether the candidate shares its topic or its outlet's
political leaning with the user's history. Each row is a per-impression AUC / MRR.

    .venv/bin/python benchmarks/hknr_signal.py runs/hknr_nemig_en
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

from knowrec.hknr.baselines import popularity_scores, semantic_scores
from knowrec.hknr.config import GraphSettings
from knowrec.hknr.evaluate import impression_metrics
from knowrec.hknr.fit import build_world, make_samples
from knowrec.hknr.pipeline import load_stages
from knowrec.hknr.protocol import click_prior


def history_share(
    history: pl.DataFrame, test: pl.DataFrame, items: pl.DataFrame, col: str
) -> np.ndarray:
    """Per test row: the share of the user's history clicks whose ``col`` equals the
    candidate's (0 for a user without history)."""
    attr = items.select("item_id", pl.col(col).alias("attr"))
    hist = history.join(attr, on="item_id").group_by("user_id", "attr").agg(n=pl.len())
    total = hist.group_by("user_id").agg(total=pl.col("n").sum())
    rows = (
        test.join(attr, on="item_id", how="left", maintain_order="left")
        .join(hist, on=["user_id", "attr"], how="left", maintain_order="left")
        .join(total, on="user_id", how="left", maintain_order="left")
    )
    return (rows["n"].fill_null(0) / rows["total"].fill_null(1)).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    stages = load_stages(args.run)
    proto, (ids, x), knowledge = stages["protocol"], stages["vectors"], stages["knowledge"]
    frame = proto.samples["test"].filter(pl.col("item_id").is_in(ids))
    frame = frame.with_columns(click_prior(proto.samples["train"], frame))
    world = build_world(proto.history, list(proto.samples.values()), ids, x, knowledge,
                        GraphSettings())  # fmt: skip
    test = make_samples(frame, proto.history, world, 50)
    y, g = test.label.numpy(), test.group.numpy()
    position = frame.select(pl.int_range(pl.len()).over("impression_id"))["literal"]
    rows = {
        "random": np.random.default_rng(0).random(len(y)),
        "display position (first shown first; not a model)": -position.to_numpy(),
        "popularity (history clicks)": popularity_scores(proto.history, frame),
        "article click rate (train impressions)": test.prior.numpy(),
        "semantic (encoder cosine)": semantic_scores(world, test),
    }
    items = stages["data"].items
    for col, label in (("category", "topic"), ("political_leaning", "outlet leaning")):
        if col in items.columns:
            share = history_share(proto.history, frame, items, col)
            rows[f"history share of the candidate's {label}"] = share
    clicked = frame.filter(pl.col("label") == 1)
    first = clicked.join(
        frame.with_columns(pos=position).filter(pl.col("label") == 1),
        on=["impression_id", "item_id"],
    )["pos"]
    print(f"test impressions with a click: {clicked.height:,}; clicked at display position "
          f"0…5: {[round(float((first == p).mean()), 3) for p in range(6)]}")  # fmt: skip
    print(f"{'signal':55s} {'AUC':>7s} {'MRR':>7s}")
    for name, score in rows.items():
        m = impression_metrics(y, score, g)
        print(f"{name:55s} {m['AUC']:7.4f} {m['MRR']:7.4f}")


if __name__ == "__main__":
    main()
