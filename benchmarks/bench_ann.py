"""placeholder: text sources (being written)"""

from __future__ import annotations

import csv
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from common import ROOT, SHARED_DATA
from knowrec.encoders import Encoder

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
