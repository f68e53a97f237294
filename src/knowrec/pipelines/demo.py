"""The demo: TRAWL end to end on the tiny synthetic world, with the real LLM and encoder.

``knowrec demo`` runs :func:`knowrec.trawl.run_trawl` with the packaged
``trawl_demo.toml`` (knowledge → vectors → SWING → DIN/DIEN/DeepFM with the MoE adapter →
Table 1, Table 2, floors, report), then shows item-to-item neighbours of the TRAWL adapted
item vectors for a few triggers beside their hidden attributes, and Explore Further's
recommendations for the same triggers (``explore_demo.toml``: recall paths, candidate
store, LightGBM; served by :class:`~knowrec.explore.service.ExploreService`). Cached
stages make a second run (or a killed one) resume.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from knowrec.config import load_config
from knowrec.trawl import TrawlConfig, adapted_item_vectors, run_trawl

N_TRIGGERS = 4


def demo_config() -> TrawlConfig:
    """The packaged demo configuration."""
    with resources.as_file(resources.files("knowrec.pipelines") / "trawl_demo.toml") as path:
        return load_config(path, TrawlConfig)


def explore_recommendations(
    out: Path, triggers: list[str], about: dict[str, Any], console: Console
) -> list[dict[str, Any]]:
    """Run the demo's Explore Further config into ``out`` and show the top 3 per trigger."""
    from knowrec.explore.config import ExploreConfig
    from knowrec.explore.pipeline import run_explore
    from knowrec.explore.service import ExploreService

    with resources.as_file(resources.files("knowrec.pipelines") / "explore_demo.toml") as path:
        cfg = load_config(path, ExploreConfig)
    run_explore(cfg, out, console)
    table = Table(title="item-to-item: Explore Further (recall paths + LightGBM)")
    for col in ("trigger", "recommended", "score", "recall paths", "hidden genres · mood"):
        table.add_column(col)
    rows = []
    with ExploreService.load(out) as service:
        for trigger in triggers:
            rec = service.recommend(trigger, 3)
            table.add_row(rec.trigger_title or trigger, "", "", "", _attributes(about[trigger]))
            for r in rec.items:
                paths = ", ".join(sorted(r.paths))
                table.add_row(
                    "", r.title or r.item_id, f"{r.score:.3f}", paths, _attributes(about[r.item_id])
                )
                rows.append({"trigger": trigger, "recommended": r.item_id, "score": r.score})
            rows[-1]["latency_ms"] = rec.latency_ms
    console.print(table)
    return rows


def _attributes(row: dict[str, Any]) -> str:
    return f"{', '.join(row['hidden_genres'])} · {row['mood']}"


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
        table.add_row(f"{titles[trigger]}{cold}", "", "", _attributes(t))
        for c in cands:
            table.add_row("", titles[c.item_id], f"{c.score:.3f}", _attributes(about[c.item_id]))
            rows.append({"trigger": trigger, "neighbour": c.item_id, "score": c.score})
    console.print(table)
    pl.DataFrame(rows).write_csv(out / "neighbours.csv")
    explore = explore_recommendations(out / "explore", triggers.to_list(), about, console)
    pl.DataFrame(explore).write_csv(out / "explore_recommendations.csv")
    console.print(
        f"report: {result['report']} (Explore Further: {out / 'explore' / 'report.html'})"
    )
    return {**result, "neighbours": rows, "explore": explore}
