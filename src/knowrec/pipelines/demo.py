"""The demo: TRAWL end to end on the tiny synthetic world, with the real LLM and encoder.

``knowrec demo`` runs :func:`knowrec.trawl.run_trawl` with the packaged
``trawl_demo.toml`` (knowledge → vectors → SWING → DIN and DeepFM with the MoE adapter →
Table 1, Table 2, floors, report), then shows item-to-item neighbours of the TRAWL adapted
item vectors for a few triggers beside their hidden attributes, and Explore Further's
recommendations for the same triggers (``explore_demo.toml``: recall paths, candidate
store, LightGBM; served by :class:`~knowrec.explore.service.ExploreService`), and HKNR's
top-5 articles for a few readers of the synthetic news world (``hknr_demo.toml``) with the
stage that found each and the knowledge that weighed in. Cached stages make a second run
(or a killed one) resume.
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


def news_recommendations(out: Path, console: Console, users: int = 3) -> list[dict[str, Any]]:
    """Run the demo's HKNR config into ``out``; show the top 5 of the first ``users``
    test readers beside their latest clicks."""
    from knowrec.hknr.config import HknrConfig
    from knowrec.hknr.pipeline import run_hknr
    from knowrec.hknr.recommend import HknrRecommender

    with resources.as_file(resources.files("knowrec.pipelines") / "hknr_demo.toml") as path:
        cfg = load_config(path, HknrConfig)
    run_hknr(cfg, out, console)
    rec = HknrRecommender(out)
    readers = rec.proto.samples["test"]["user_id"].unique(maintain_order=True).head(users)
    history = rec.proto.history.sort("pos", descending=True)
    table = Table(title="news: HKNR's top 5 (recall → graph user encoder → knowledge ranker)")
    for col in ("reader / article", "p(click)", "found by", "topic · entities", "knowledge"):
        table.add_column(col)
    rows = []
    for user in readers.to_list():
        latest = history.filter(pl.col("user_id") == user)["item_id"][0]
        table.add_row(f"{user}, last read: {rec.titles[latest]}", "", "", "", "")
        for r in rec.recommend(user, 5):
            about = f"{r.topic} · {', '.join(r.entities[:2])}"
            share = f"{r.knowledge_share:.0%}"
            by = r.found_by if len(r.found_by) <= 40 else r.found_by[:39] + "…"
            table.add_row(f"  {r.title}", f"{r.score:.3f}", by, about, share)
            rows.append(
                {"user": user, "article": r.item_id, "score": r.score, "found_by": r.found_by}
            )
    console.print(table)
    console.print(
        "found by: the reader's profile vector or one recent click (stage 1), or popular "
        "(the last 48 h's most clicked, topping up a short fresh recall); knowledge: the "
        "share of entities and topic in the ranker's article vector (1 − gate)."
    )
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
    news = news_recommendations(out / "hknr", console)
    pl.DataFrame(news).write_csv(out / "news_recommendations.csv")
    console.print(
        f"reports: {result['report']}, {out / 'explore' / 'report.html'}, "
        f"{out / 'hknr' / 'report.html'}"
    )
    return {**result, "neighbours": rows, "explore": explore, "news": news}
