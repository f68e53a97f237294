"""The ``knowrec`` command line. User mistakes print one line on stderr and exit 2."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from knowrec.data import FORMATS, Dataset, load_dataset
from knowrec.errors import ConfigError, KnowrecError
from knowrec.report import fmt_value

app = typer.Typer(
    help="LLM-assisted, knowledge-enhanced recommendation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(
    help="Load, convert, inspect and synthesise data sets.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
console = Console()

FormatOpt = Annotated[str, typer.Option("--format", "-f", help=f"auto | {' | '.join(FORMATS)}")]
TextOpt = Annotated[
    Path | None, typer.Option(help="CSV/Parquet of item texts to join onto the items")
]
TextOnOpt = Annotated[str, typer.Option(help="join texts by 'id' or 'title_year'")]
TextColsOpt = Annotated[
    str, typer.Option(help="comma-separated text columns; the first is the body")
]
MapOpt = Annotated[
    list[str] | None,
    typer.Option("--map", help="column mapping for --format table, e.g. --map user_id=uid"),
]


def _load(
    path: Path,
    format: str,
    text: Path | None = None,
    text_on: str = "id",
    text_columns: str = "text",
    id_column: str = "item_id",
    title_column: str = "title",
    year_column: str = "year",
    mapping: list[str] | None = None,
) -> Dataset:
    if format not in ("auto", *FORMATS):
        raise ConfigError(f"unknown format {format!r}; known formats are {', '.join(FORMATS)}")
    options: dict[str, Any] = {}
    if mapping:
        pairs = [m.split("=", 1) for m in mapping]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError("--map takes canonical=source pairs, e.g. --map user_id=uid")
        options["mapping"] = dict(pairs)
    data = load_dataset(path, format, **options)  # type: ignore[arg-type]
    if text is not None:
        from knowrec.data.text import join_item_text

        data, report = join_item_text(
            data,
            text,
            text_columns=[c.strip() for c in text_columns.split(",") if c.strip()],
            on=text_on,  # type: ignore[arg-type]
            id_column=id_column,
            title_column=title_column,
            year_column=year_column or None,
        )
        logging.getLogger(__name__).info("text join: %s", report)
    return data


@data_app.command("inspect")
def data_inspect(
    path: Path,
    format: FormatOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    text: TextOpt = None,
    text_on: TextOnOpt = "id",
    text_columns: TextColsOpt = "text",
    id_column: str = "item_id",
    title_column: str = "title",
    year_column: str = "year",
    map_: MapOpt = None,
) -> None:
    """Print counts, density, time range and text statistics of a data set."""
    from knowrec.data.stats import describe

    data = _load(
        path, format, text, text_on, text_columns, id_column, title_column, year_column, map_
    )
    stats = describe(data)
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    table = Table(title=f"{path} ({stats['format']})", show_header=False)
    for key, value in stats.items():
        if isinstance(value, dict):
            for k, v in value.items():
                table.add_row(f"text.{k}", fmt_value(v))
        elif key not in ("source", "format"):
            table.add_row(key, fmt_value(value))
    console.print(table)


@data_app.command("convert")
def data_convert(
    path: Path,
    out: Annotated[Path, typer.Option(help="output directory (canonical Parquet tables)")],
    format: FormatOpt = "auto",
    text: TextOpt = None,
    text_on: TextOnOpt = "id",
    text_columns: TextColsOpt = "text",
    id_column: str = "item_id",
    title_column: str = "title",
    year_column: str = "year",
    map_: MapOpt = None,
) -> None:
    """Convert a source data set into canonical Parquet tables."""
    data = _load(
        path, format, text, text_on, text_columns, id_column, title_column, year_column, map_
    )
    data.save(out)
    console.print(f"wrote {out} ({data.interactions.height:,} interactions)")


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="output directory")],
    seed: Annotated[int, typer.Option(help="random seed (same seed → same bytes)")] = 0,
    size: Annotated[str, typer.Option(help="small | demo | large")] = "demo",
) -> None:
    """Generate the built-in synthetic world (movies with ratings, news with impressions)."""
    from knowrec.data.synth import generate_world

    world = generate_world(seed=seed, size=size)
    world.save(out)
    console.print(f"wrote the synthetic world (seed {seed}, size {size}) to {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="run directory")] = Path("runs/demo"),
    size: Annotated[str, typer.Option(help="synthetic world size")] = "demo",
    seed: int = 0,
) -> None:
    """Run the main job on the built-in synthetic world and print the results."""
    from knowrec.pipelines.demo import run_demo

    run_demo(out, size=size, seed=seed, console=console)


def main() -> None:
    """Console entry point: typed knowrec errors become one line on stderr and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except KnowrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
