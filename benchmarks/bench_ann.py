"""FAISS IVF-PQ against exact search on sentence-encoder vectors (issue 14, performance):
recall@100 and speed of each nprobe, as AnnIndex's stored sweep measures them.

Vectors: all-MiniLM-L6-v2 (384-d, L2-normalised) of ``n + queries`` distinct texts from
``--source``:

- ``real`` (default): every sentence (≥ 4 words) of the real text in ``--data``
  (NeMig en + de and MIND titles and abstracts, TML1M and Wikipedia movie plots), then
  windows of 2, 3, … consecutive sentences of ≤ 150 words (shortest first; none is
  truncated by the encoder) until there are enough — 229,462 texts at most;
- ``synth``: articles (title + text) of the synthetic news world, drawn at that size.

The texts are shuffled (seed 0): the first ``--queries`` are the queries, the rest the
index. Vectors are cached in ``runs/ann_bench/<source>_<total>/`` with the encoding time;
encodings also go to the SQLite cache ``--cache``.

With ``--threads`` FAISS threads and all queries in one batch: exact search (AnnIndex
``flat``, FAISS IndexFlatIP) and, for each ``--configs`` entry (AnnIndex ``ivfpq``
keyword arguments; ``rerank`` is 0 unless given), build time, bytes per vector and the
nprobe sweep (``AnnIndex.sweep_nprobe``): recall@100 against exact search and queries/s,
the median of ``--repeats`` sweeps; ``choose_nprobe`` at ``--target``. Queries/s count
FAISS's search (and the exact re-ranking of ``rerank``), not the mapping of rows to
string ids; that is measured once at the chosen nprobe (``search_qps``). A server answers
one user at a time: the chosen nprobe and exact search are also timed with one query per
call over the first 300 queries (``single_query_qps``), where exact search is a
matrix-vector product that reads every vector, not a BLAS matrix product. Writes
``benchmarks/results/ann_<source>.json`` and ``ann_<source>.png`` (recall vs speed-up).

    .venv/bin/python benchmarks/bench_ann.py [--source real|synth] [--n 200000]
        [--queries 1000] [--threads 2] [--repeats 3] [--configs pq_bits=4,rerank=4 ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import matplotlib
import numpy as np
import torch

from common import ROOT, SHARED_DATA, write_result
from knowrec.encoders import Encoder
from knowrec.retrieval import AnnIndex
from knowrec.retrieval.ann import NprobeSweep, SweepPoint, choose_nprobe

matplotlib.use("Agg")
import matplotlib.pyplot as plt

K = 100
SINGLE = 300  # queries timed one at a time
# AnnIndex ivfpq keyword arguments; rerank is 0 unless given (the codes alone). Configs that
# differ only in rerank (a search-time setting) share one build.
CONFIGS = (
    "pq_bits=8,rerank=0",
    "pq_bits=8,rerank=2",
    "pq_bits=4,rerank=0",
    "pq_bits=4,rerank=2",
    "pq_bits=4,rerank=4",
    "pq_bits=4,rerank=8",
)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
MIN_WORDS = 4
MAX_WORDS = 150  # longer windows would be truncated by the encoder (256 tokens)


def _documents(data: Path) -> list[str]:
    """Titles, abstracts and plots of the real text files in ``data`` (news and movies)."""
    csv.field_size_limit(1 << 30)
    docs: list[str] = []
    for lang in ("en", "de"):
        with open(data / "nemig" / lang / "news.tsv", newline="", encoding="utf-8") as f:
            docs += [t for row in csv.reader(f, delimiter="\t") for t in row[1:3]]
    with open(data / "mind-small-subset" / "news.tsv", encoding="utf-8") as f:
        docs += [t for line in f for t in line.rstrip("\n").split("\t")[3:5]]
    for name, column in (
        ("tml1m-movie-plots/movies.csv", "Plot"),
        ("wiki-movie-plots-slice/wiki_movie_plots_deduped.csv", "Plot"),
    ):
        with open(data / name, newline="", encoding="utf-8") as f:
            docs += [row[column] for row in csv.DictReader(f)]
    return docs


def real_texts(n: int, data: Path = SHARED_DATA) -> list[str]:
    """``n`` distinct texts: every sentence of the real documents, then windows of 2, 3, …
    consecutive sentences (shortest first) until there are ``n``."""
    docs = [
        [s.strip() for s in SENTENCE_END.split(d) if len(s.split()) >= MIN_WORDS]
        for d in _documents(data)
    ]
    texts: dict[str, None] = {}
    longest = max(map(len, docs))
    for width in range(1, longest + 1):
        for sents in docs:
            for i in range(len(sents) - width + 1):
                text = " ".join(sents[i : i + width])
                if len(text.split()) <= MAX_WORDS:
                    texts.setdefault(text)
                if len(texts) == n:
                    return list(texts)
    raise SystemExit(f"the real text gives only {len(texts):,} distinct texts, asked for {n:,}")


def synth_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` articles (title + text) of the synthetic news world, drawn at a custom size."""
    from knowrec.data.synth.news import news_world
    from knowrec.data.synth.sizes import SIZES

    spec = replace(SIZES["small"], news_users=20, articles=n)  # few users: articles only
    news, _, _ = news_world(spec, np.random.default_rng(seed))
    items = news.items
    return [f"{t}. {x}" for t, x in zip(items["title"], items["text"], strict=True)]


def vectors(source: str, total: int, data: Path, cache: Path) -> tuple[np.ndarray, dict]:
    """Encoded texts of ``source``, shuffled (seed 0), cached in ``runs/ann_bench/``."""
    out = ROOT / "runs" / "ann_bench" / f"{source}_{total}"
    if (out / "vectors.npy").exists():
        return np.load(out / "vectors.npy"), json.loads((out / "encoding.json").read_text())
    texts = real_texts(total, data) if source == "real" else synth_texts(total)
    texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    encoder = Encoder(cache=cache)
    t0 = time.perf_counter()
    x = encoder.encode(texts)
    info = {
        "texts": len(texts),
        "words_mean": float(np.mean([len(t.split()) for t in texts])),
        "encoded_now": encoder.encoded,
        "encode_s": time.perf_counter() - t0,
        "torch_threads": torch.get_num_threads(),
    }
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "vectors.npy", x)
    (out / "encoding.json").write_text(json.dumps(info, indent=2))
    return x, info


def median_qps(run: Any, queries: int, repeats: int) -> float:
    """Queries/s of ``run()`` over one batch, median of ``repeats`` after a warm-up."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return queries / statistics.median(times)


def single_qps(index: AnnIndex, q: np.ndarray, n: int = SINGLE) -> float:
    """Queries/s with one query per search call (a server answering one user at a time),
    over the first ``n`` queries after one warm-up call."""
    nprobe = index.settings.get("nprobe")
    index._rows(q[:1], K, nprobe)
    start = time.perf_counter()
    for i in range(n):
        index._rows(q[i : i + 1], K, nprobe)
    return n / (time.perf_counter() - start)


def parse_config(spec: str) -> dict[str, int]:
    """``"pq_bits=4,rerank=8"`` → AnnIndex keyword arguments."""
    return {k.strip(): int(v) for k, v in (part.split("=") for part in spec.split(","))}


def measure(
    index: AnnIndex, spec: str, build_s: float, q: np.ndarray, exact_qps: float, args: Any
) -> dict[str, Any]:
    """Sweep one IVF-PQ configuration ``args.repeats`` times."""
    sweeps = [index.sweep_nprobe(q, k=K) for _ in range(args.repeats)]
    points = tuple(
        SweepPoint(p.nprobe, p.recall, statistics.median(s.points[j].qps for s in sweeps))
        for j, p in enumerate(sweeps[0].points)
    )
    sweep = NprobeSweep(K, len(q), faiss.omp_get_max_threads(), points)
    chosen = choose_nprobe(sweep, args.target)
    at = {p.nprobe: p for p in points}[chosen]
    index.settings["nprobe"] = chosen
    search_qps = median_qps(lambda: index.search(q, K), len(q), args.repeats)
    one = single_qps(index, q)
    n, d = index.vectors.shape
    return {
        "config": spec,
        "settings": {k: v for k, v in index.settings.items() if k != "hnsw_m"},
        "build_s": build_s,
        "code_bytes_per_vector": index.code_bytes(),
        # codes + 8-byte list ids + coarse centroids and PQ tables, as FAISS serialises it
        "faiss_index_bytes_per_vector": faiss.serialize_index(index.index).size / n,
        "float32_bytes_per_vector_kept": 4 * d,  # AnnIndex.vectors: vectors_of, re-ranking
        "sweep": [
            {"nprobe": p.nprobe, "recall": p.recall, "qps": p.qps, "speedup": p.qps / exact_qps}
            for p in points
        ],
        "chosen_nprobe": chosen,
        "chosen_recall": at.recall,
        "chosen_qps": at.qps,
        "chosen_speedup": at.qps / exact_qps,
        "target_met": at.recall >= args.target,
        "search_qps": search_qps,
        "single_query_qps": one,
        "single_query_speedup": one / args.exact_single_qps,
    }


def plot(rows: list[dict[str, Any]], title: str, target: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        speed = [p["speedup"] for p in row["sweep"]]
        recall = [p["recall"] for p in row["sweep"]]
        (line,) = ax.plot(speed, recall, marker="o", ms=3, label=row["config"])
        for p in row["sweep"]:
            at = (p["speedup"], p["recall"])
            ax.annotate(str(p["nprobe"]), at, fontsize=6, color=line.get_color())
    ax.axhline(target, color="grey", ls="--", lw=0.8)
    ax.axvline(10, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("speed-up over exact search (queries/s ratio); labels: nprobe")
    ax.set_ylabel(f"recall@{K} against exact search")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("real", "synth"), default="real")
    parser.add_argument("--n", type=int, default=200_000, help="indexed vectors")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache" / "minilm.sqlite")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    load_start = os.getloadavg()[0]

    x, encoding = vectors(args.source, args.n + args.queries, args.data, args.cache)
    print(f"vectors {x.shape}; encoding: {encoding}", flush=True)
    q, db = x[: args.queries], x[args.queries :]
    ids = [f"t{i}" for i in range(len(db))]
    duplicates = len(db) - len({row.tobytes() for row in db})

    flat = AnnIndex(ids, db, kind="flat")
    exact_qps = median_qps(lambda: flat._rows(q, K), len(q), args.repeats)
    exact_search_qps = median_qps(lambda: flat.search(q, K), len(q), args.repeats)
    args.exact_single_qps = single_qps(flat, q)
    print(
        f"exact: {exact_qps:,.0f} q/s (FAISS), {exact_search_qps:,.0f} q/s (search()); "
        f"one query at a time {args.exact_single_qps:,.0f} q/s"
    )

    rows: list[dict[str, Any]] = []
    index, built, build_s = None, None, 0.0
    for spec in args.configs:
        kwargs = parse_config(spec)
        rerank = kwargs.pop("rerank", 0)
        if kwargs != built:
            index = None  # free the previous build first
            start = time.perf_counter()
            index = AnnIndex(ids, db, kind="ivfpq", nprobe=1, **kwargs)  # nprobe given: no tune
            build_s, built = time.perf_counter() - start, kwargs
        assert index is not None
        index.settings["rerank"] = rerank
        row = measure(index, spec, build_s, q, exact_qps, args)
        rows.append(row)
        sweep = "  ".join(
            f"{p['nprobe']}: {p['recall']:.3f} / {p['speedup']:.1f}x" for p in row["sweep"]
        )
        print(
            f"{spec:24s} build {row['build_s']:6.1f} s, {row['code_bytes_per_vector']} B codes "
            f"({row['faiss_index_bytes_per_vector']:.1f} B/vector in FAISS); nprobe: "
            f"recall@{K} / speed-up\n    {sweep}\n    chosen nprobe {row['chosen_nprobe']}: "
            f"recall {row['chosen_recall']:.3f}, {row['chosen_qps']:,.0f} q/s = "
            f"{row['chosen_speedup']:.1f}x exact (search(): {row['search_qps']:,.0f} q/s); one "
            f"at a time {row['single_query_qps']:,.0f} q/s = "
            f"{row['single_query_speedup']:.1f}x exact",
            flush=True,
        )
    load_end = os.getloadavg()[0]
    print(f"load average (1 min) at start {load_start:.1f}, at end {load_end:.1f}")
    payload = {
        "source": args.source,
        "encoder": "all-MiniLM-L6-v2",
        "n": len(db),
        "dim": int(db.shape[1]),
        "queries": len(q),
        "k": K,
        "target_recall": args.target,
        "threads": args.threads,
        "repeats": args.repeats,
        "duplicate_vectors": duplicates,
        "encoding": encoding,
        "exact_qps": exact_qps,
        "exact_search_qps": exact_search_qps,
        "exact_single_query_qps": args.exact_single_qps,
        "configs": rows,
        "loadavg_start_end": [load_start, load_end],
    }
    path = write_result(f"ann_{args.source}", payload)
    title = (
        f"IVF-PQ vs exact, {len(db):,} MiniLM vectors ({args.source} text), "
        f"{len(q):,} queries, {args.threads} threads"
    )
    plot(rows, title, args.target, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
