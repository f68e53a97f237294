"""The demo: the built-in synthetic world, its statistics, and baselines with the metrics.

Later issues grow this into the full TRAWL / Explore Further / HKNR pipelines.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from knowrec.data.protocol import split_global_time
from knowrec.data.stats import describe, positives
from knowrec.data.synth import World, generate_world
from knowrec.evaluation import evaluate_topk
from knowrec.models.baselines import ItemKNN, Popularity
from knowrec.report import fmt_value


def load_or_generate(out: Path, size: str, seed: int) -> World:
    """Reuse ``out/world`` when it was generated with the same seed and size."""
    world_dir = out / "world"
    manifest = world_dir / "world.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        if info.get("seed") == seed and info.get("size") == size:
            return World.load(world_dir)
    world = generate_world(seed=seed, size=size)
    world.save(world_dir)
    return world


def run_demo(
    out: Path, *, size: str = "demo", seed: int = 0, console: Console | None = None
) -> dict:
    """Generate (or reuse) the world, print its statistics, evaluate the baselines."""
    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    world = load_or_generate(out, size, seed)
    console.print(f"[bold]synthetic world[/] seed={seed} size={size} → {out / 'world'}")

    stats = Table(title="data sets")
    stats.add_column("statistic")
    for name in ("movies", "news"):
        stats.add_column(name, justify="right")
    described = {n: describe(getattr(world, n)) for n in ("movies", "news")}
    for key in (
        "users_with_interactions",
        "items",
        "interactions",
        "positives",
        "density",
        "time_min",
        "time_max",
    ):
        stats.add_row(key, *(fmt_value(described[n][key]) for n in ("movies", "news")))
    stats.add_row(
        "text words (median)",
        *(fmt_value(described[n]["text"].get("words_median")) for n in ("movies", "news")),
    )
    console.print(stats)

    inter = world.movies.interactions
    split = split_global_time(inter, cut=0.8)
    train_pos = split["train"].filter(positives(inter))
    test_pos = split["test"].filter(positives(inter))
    items = world.movies.items["item_id"].to_list()
    results = {}
    for name, model in (("popularity", Popularity()), ("item-kNN", ItemKNN(k=50))):
        t = time.perf_counter()
        model.fit(train_pos)
        results[name] = evaluate_topk(model.score, split["train"], test_pos, items, k=10)
        results[name]["seconds"] = time.perf_counter() - t

    table = Table(title="movies: next-period top-10 over all items (temporal split at 80%)")
    table.add_column("model")
    metric_names = [m for m in next(iter(results.values())) if m != "seconds"]
    for m in metric_names:
        table.add_column(m, justify="right")
    for name, row in results.items():
        table.add_row(name, *(f"{row[m]:.4f}" for m in metric_names))
    console.print(table)

    report = {
        "seed": seed,
        "size": size,
        "protocol": "movies world; global temporal split at the 80% time quantile; positives "
        "rating >= 4; full ranking over all items, train items excluded",
        "data": described,
        "results": results,
        "seconds": time.perf_counter() - t0,
    }
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    console.print(f"results: {out / 'results.json'}  ({report['seconds']:.1f} s)")
    return report
