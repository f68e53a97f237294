"""The demo: TRAWL end to end on the tiny synthetic world, with the real LLM and encoder.

``knowrec demo`` runs :func:`knowrec.pipelines.trawl.run_trawl` with the packaged
``trawl_demo.toml`` (knowledge → vectors → SWING → DIN/DIEN/DeepFM with the MoE adapter →
Table 1, Table 2, floors, report), then shows item-to-item neighbours of the TRAWL adapted
item vectors for a few triggers beside their hidden attributes. Cached stages make a second
run (or a killed one) resume.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from knowrec.config import load_config
from knowrec.pipelines.trawl import ExperimentConfig, adapted_item_vectors, run_trawl

N_TRIGGERS = 4


def demo_config() -> ExperimentConfig:
    """The packaged demo configuration."""
    with resources.as_file(resources.files("knowrec.pipelines") / "trawl_demo.toml") as path:
        return load_config(path, ExperimentConfig)


def run_demo(out: Path, *, console: Console | None = None) -> dict[str, Any]:
    """Run the demo into ``out``; returns the TRAWL result with the neighbour table."""
    from knowrec.data.synth import generate_world
    from knowrec.retrieval import make_recall_path

    console = console or Console()
    cfg = demo_config()
    result = run_trawl(cfg, out, console)

    world = generate_world(seed=cfg.data.seed, size=cfg.data.size)
    truth = world.truth["movie_items"].select("item_id", "hidden_genres", "mood", "cold")
    about = {r["item_id"]: r for r in truth.iter_rows(named=True)}
    titles = dict(zip(*world.movies.items.select("item_id", "title"), strict=True))

    path = make_recall_path("semantic", vectors=adapted_item_vectors(result)).fit()
    triggers = truth.sort(["cold", "item_id"], descending=[True, False])["item_id"][:N_TRIGGERS]
    table = Table(title="item-to-item: neighbours of TRAWL adapted item vectors (FAISS)")
    for col in ("trigger", "neighbour", "score", "hidden genres · mood"):
        table.add_column(col)
    rows = []
    for trigger, cands in path.recall(triggers.to_list(), k=3).items():
        t = about[trigger]
        cold = " (cold)" if t["cold"] else ""
        table.add_row(
            f"{titles[trigger]}{cold}", "", "", f"{', '.join(t['hidden_genres'])} · {t['mood']}"
        )
        for c in cands:
            a = about[c.item_id]
            table.add_row(
                "", titles[c.item_id], f"{c.score:.3f}",
                f"{', '.join(a['hidden_genres'])} · {a['mood']}",
            )  # fmt: skip
            rows.append({"trigger": trigger, "neighbour": c.item_id, "score": c.score})
    console.print(table)
    pl.DataFrame(rows).write_csv(out / "neighbours.csv")
    console.print(f"report: {result['report']}")
    return {**result, "neighbours": rows}
