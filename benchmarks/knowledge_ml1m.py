"""Generate the TRAWL/KAR knowledge of ML-1M (users 1–2999) with the local 1.5B LLM.

Raw item knowledge = the TML1M plot + genre, director, cast, runtime, languages and
certificate (../shared/data/tml1m-movie-plots; TML1M MovieID k is line k of ML-1M's
movies.dat). User knowledge reads the profile and the user's first 5 rated movies with
their ratings — the reserved history of the KAR protocol, which is excluded from the CTR
samples later, so nothing leaks.

The work is ordered so that whole comparisons finish first: trawl items, kar items (the
item side of Table 1 is complete after these two, ~1/3 of the LLM time), trawl users,
kar users (items in descending popularity, users by id). Every LLM
answer is committed to a SQLite cache outside git (``runs/knowledge_ml1m/llm.sqlite``),
so a killed run resumes where it stopped, and after every chunk the table so far is
written to ``benchmarks/data/ml1m_knowledge_<side>_<method>.parquet`` (generated text and
ids only, zstd). Only LLM-generated tables are written there: ``none``/``raw`` and the
extractive summaries copy source text, which must not be committed, and they are cheap
to recompute (``--methods raw,summary,topic_summary`` writes them under ``runs/``).

    nohup nice -n 10 .venv/bin/python benchmarks/knowledge_ml1m.py > runs/knowledge_ml1m.log 2>&1 &
    .venv/bin/python benchmarks/knowledge_ml1m.py --backend openai --base-url http://gpu:8000/v1
    .venv/bin/python benchmarks/knowledge_ml1m.py --probe 20   # look at 20 items first

On a GPU machine without the data (see knowrec.llm.batch): export the requests, answer
them there with the ``transformers`` backend, then build the tables from that cache:

    .venv/bin/python benchmarks/knowledge_ml1m.py --backend transformers --export-requests R.jsonl
    python -m knowrec.llm.batch R.jsonl --backend transformers --cache gpu.sqlite  # on the GPU
    .venv/bin/python benchmarks/knowledge_ml1m.py --backend transformers --cache gpu.sqlite
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHARED_DATA, write_result
from knowrec.data.movielens import load_ml1m
from knowrec.data.protocol import reserve_history
from knowrec.data.tables import Dataset, conform
from knowrec.knowledge import KnowledgeConfig, KnowledgeGenerator
from knowrec.knowledge.inputs import display_title

log = logging.getLogger("knowledge_ml1m")
LLM_ORDER = [("item", "trawl"), ("item", "kar"), ("user", "trawl"), ("user", "kar")]
# Token budgets: TML1M texts are ~120 tokens (the longest ~300: the tail of cast, runtime
# and languages is cut); 96 tokens per history item keep the title, genres, certificate
# and most of the plot, so a user's own part of the prompt is ~550 tokens (the ~680
# tokens of instructions are shared by every user and evaluated once).
CONFIG = KnowledgeConfig(domain="movies", k=5, item_tokens=192, history_item_tokens=96)
# KAR's user answers are free prose about tastes, and greedy decoding by the 1.5B model
# ran into loops on lists in 4 of 30 of them ("epic, epic, epic, …"); llama.cpp's mild
# repetition penalty stopped every one (BENCHMARKS.md). KAR items loop in 4 of 3,615 and
# keep the default.
REPEAT_PENALTY = {("user", "kar"): 1.1}
OUT_DIR = ROOT / "benchmarks" / "data"
RUN_DIR = ROOT / "runs" / "knowledge_ml1m"


def compose_plot_text(row: dict[str, str | None]) -> str:
    """One movie's raw knowledge: title, genres, certificate, plot, then director, cast,
    runtime and languages (the most telling parts first, so a token budget keeps them)."""

    def clean(value: str | None) -> str:
        return " ".join((value or "").split())

    head = [display_title(clean(row.get("Title")))]
    year = clean(row.get("Year")).split(".")[0]
    if year:
        head[0] += f" ({year})"
    meta = []
    for col, label in (("Genre", "Genres"), ("Certificate", "Certificate")):
        value = clean(row.get(col))
        if value:
            meta.append(f"{label}: {value.replace('|', ', ')}.")
    lines = [head[0], " ".join(meta)]
    plot = clean(row.get("Plot"))
    if plot:
        lines.append(f"Plot: {plot}")
    rest = []
    for col, label in (
        ("Director", "Director"),
        ("Cast", "Cast"),
        ("Runtime", "Runtime"),
        ("Languages", "Languages"),
    ):
        value = clean(row.get(col))
        if value:
            rest.append(f"{label}: {value.replace(',', ', ')}.")
    if rest:
        lines.append(" ".join(rest))
    return "\n".join(line for line in lines if line)


def load_ml1m_with_plots(data_dir: Path = SHARED_DATA) -> Dataset:
    """ML-1M (users 1–2999) with ``items.text`` = the composed TML1M raw knowledge."""
    data = load_ml1m(data_dir / "ml-1m")
    tml = pl.read_csv(data_dir / "tml1m-movie-plots" / "movies.csv", infer_schema=False)
    # TML1M renumbered the movies: its MovieID k is the k-th line of movies.dat, which is
    # the k-th row of the items table (loaded in file order).
    ids = data.items["item_id"].to_list()
    if tml.height != len(ids):
        raise SystemExit(f"TML1M has {tml.height} rows, ML-1M movies.dat {len(ids)}")
    texts: dict[str, str] = {}
    for row in tml.iter_rows(named=True):
        k = int(row["MovieID"])
        texts[ids[k - 1]] = compose_plot_text(row)
    items = data.items.with_columns(pl.Series("text", [texts.get(i) for i in ids], dtype=pl.String))
    return Dataset(data.interactions, conform(items, "items"), data.users, data.meta)


def table_path(side: str, method: str, out_dir: Path) -> Path:
    return out_dir / f"ml1m_knowledge_{side}_{method}.parquet"


def write_table(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.parquet")
    frame.write_parquet(tmp, compression="zstd", compression_level=19, statistics=False)
    tmp.replace(path)


def run_table(
    gen: KnowledgeGenerator,
    data: Dataset,
    side: str,
    method: str,
    ids: list[str],
    history: pl.DataFrame,
    out: Path,
    chunk: int,
) -> dict:
    """Generate one table chunk by chunk, writing what is done after every chunk. Rows
    already in ``out`` (a committed partial table) are kept and not asked again, so the
    job also resumes on a machine without the LLM cache."""
    parts: list[pl.DataFrame] = []
    if out.exists():
        parts.append(pl.read_parquet(out).filter(pl.col("status") == "ok"))
        ids = missing_ids(ids, out)
        log.info("%s %s: %d rows from %s kept", method, side, parts[0].height, out)
    totals = {"items": 0, "computed": 0, "failed": 0, "prompt_ms": 0.0, "gen_ms": 0.0}
    totals.update({"total_ms": 0.0, "prompt_eval_tokens": 0, "completion_tokens": 0})
    started = time.perf_counter()
    for start in range(0, len(ids), chunk):
        part = gen.generate(data, method, side, ids=ids[start : start + chunk], history=history)
        parts.append(part)
        s = gen.stats
        for key in totals:
            totals[key] += getattr(s, key)
        write_table(pl.concat(parts, how="vertical_relaxed"), out)
        done = start + len(part)
        # wall time: with batched decoding the items' own times overlap
        per = (time.perf_counter() - started) / max(totals["computed"], 1)
        eta_h = per * (len(ids) - done) / 3600
        log.info(
            "%s %s: %d/%d done (%d computed, %d failed), %.2f s/item computed, ETA %.1f h",
            method,
            side,
            done,
            len(ids),
            totals["computed"],
            totals["failed"],
            per,
            eta_h,
        )
    totals["wall_s"] = time.perf_counter() - started
    totals["s_per_item"] = totals["wall_s"] / max(totals["computed"], 1)
    return totals


def probe(gen: KnowledgeGenerator, make, data: Dataset, ids: list[str], users: list[str], history):
    """Print a few answers of every LLM method to check the prompts by eye."""
    for side, method in LLM_ORDER:
        use_llm(gen, make, side, method)
        pick = ids if side == "item" else users
        started = time.perf_counter()
        table = gen.generate(data, method, side, ids=pick, history=history)
        s = gen.stats
        per = (time.perf_counter() - started) / max(s.computed, 1)
        print(
            f"\n=== {method} {side}: {per:.2f} s/item computed, "
            f"{s.completion_tokens / max(s.computed, 1):.0f} output tokens/item, "
            f"{s.prompt_eval_tokens / max(s.computed, 1):.0f} prompt tokens evaluated/item, "
            f"{s.failed} failed"
        )
        titles = dict(zip(data.items["item_id"], data.items["title"], strict=True))
        for row in table.iter_rows(named=True):
            name = titles.get(row["id"], "") if side == "item" else ""
            print(f"- {row['id']} {name}: {row['text'] or row['error']}")


def use_llm(gen: KnowledgeGenerator, make, side: str, method: str) -> None:
    """Give ``gen`` an LLM with the job's repetition penalty (llamacpp), a new one if it changes."""
    penalty = REPEAT_PENALTY.get((side, method), 1.0)
    if not gen.uses_llm(method):
        return
    if gen.llm is None or getattr(gen.llm, "repeat_penalty", penalty) != penalty:
        if gen.llm is not None:
            gen.llm.close()
        gen.llm = make(penalty)


def missing_ids(ids: list[str], out: Path) -> list[str]:
    """``ids`` without the rows already done in the table at ``out``."""
    if not out.exists():
        return ids
    done = set(pl.read_parquet(out).filter(pl.col("status") == "ok")["id"].to_list())
    return [i for i in ids if i not in done]


def export(gen, data, jobs, items, users, history, args) -> None:
    """Write the LLM requests of every job's missing rows (see the module docstring)."""
    from knowrec.llm.batch import export_requests

    requests = []
    for side, method in jobs:
        if gen.uses_llm(method):
            ids = missing_ids(
                items if side == "item" else users, table_path(side, method, args.out_dir)
            )
            requests += gen.llm_requests(data, method, side, ids=ids, history=history)
            log.info("%s %s: %d requests", method, side, len(requests))
    n = export_requests(gen.llm, requests, args.export_requests)
    log.info("%d requests written to %s", n, args.export_requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--cache", type=Path, default=RUN_DIR / "llm.sqlite")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=32, help="llamacpp: prompts together")
    parser.add_argument("--backend", default="llamacpp", help="llamacpp | openai | transformers")
    parser.add_argument("--base-url", default=None, help="openai: server URL ending in /v1")
    parser.add_argument("--concurrency", type=int, default=8, help="openai: parallel requests")
    parser.add_argument("--methods", default="trawl,kar", help="comma-separated")
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--limit-items", type=int, default=None)
    parser.add_argument("--limit-users", type=int, default=None)
    parser.add_argument(
        "--export-requests", type=Path, default=None, help="write the missing rows' requests"
    )
    parser.add_argument("--probe", type=int, default=0, help="print N items/users and stop")
    parser.add_argument(
        "--sides",
        default="item,user",
        help="item,user (one process) or item / user (two processes sharing the cache)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("knowrec.llm.base").setLevel(logging.WARNING)

    data = load_ml1m_with_plots(args.data_dir)
    counts = data.interactions.group_by("item_id").len().sort(["len", "item_id"], descending=True)
    item_order = counts["item_id"].to_list()  # popular first: a partial table covers most
    user_order = sorted(data.interactions["user_id"].unique().to_list(), key=int)
    config = CONFIG
    history = reserve_history(data.interactions, config.k)["history"]
    log.info("ML-1M: %d rated movies, %d users", len(item_order), len(user_order))

    from knowrec.llm import make_llm

    if args.backend == "openai":
        extra = {"concurrency": args.concurrency}
        extra |= {"base_url": args.base_url} if args.base_url else {}
    elif args.backend == "llamacpp":
        extra = {"n_threads": args.threads, "parallel": args.parallel, "n_ctx": 2048}
    else:
        extra = {}

    def make(penalty: float):
        more = {"repeat_penalty": penalty} if args.backend == "llamacpp" else {}
        return make_llm(
            args.backend, model=args.model, cache=args.cache, progress=True, **extra, **more
        )

    gen = KnowledgeGenerator(config, progress=True)
    if args.probe:
        probe(gen, make, data, item_order[: args.probe], user_order[: args.probe], history)
        return

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    items = item_order[: args.limit_items]
    users = user_order[: args.limit_users]
    report: dict = {
        "protocol": "ML-1M users 1-2999; user history = first 5 ratings",
        "model": args.model,
        "repeat_penalty": {f"{side}_{method}": p for (side, method), p in REPEAT_PENALTY.items()},
        "tables": {},
    }
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    jobs = [(s, m) for s, m in LLM_ORDER if m in methods and s in sides]
    jobs += [(s, m) for m in methods for s in sides if (s, m) not in LLM_ORDER]
    if args.export_requests:
        use_llm(gen, make, *jobs[0])
        export(gen, data, jobs, items, users, history, args)
        return
    for side, method in jobs:
        use_llm(gen, make, side, method)
        ids = items if side == "item" else users
        generated = gen.uses_llm(method)
        out_dir = args.out_dir if generated else RUN_DIR  # source-text copies stay out of git
        out = table_path(side, method, out_dir)
        log.info("%s %s → %s", method, side, out)
        totals = run_table(gen, data, side, method, ids, history, out, args.chunk)
        report["tables"][f"{side}_{method}"] = {"rows": len(ids), "path": str(out), **totals}
        write_result("knowledge_ml1m" + ("" if len(sides) == 2 else f"_{sides[0]}"), report)
    log.info("all done: %s", json.dumps(report["tables"], default=str)[:2000])


if __name__ == "__main__":
    main()
