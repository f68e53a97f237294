"""Encoder throughput: knowrec's Encoder against bare sentence-transformers on the same
texts in the same run, and the cost of a cache hit.

Texts: the movie and news articles of the synthetic "demo" world (~1,200 texts of 40–250
words). Paths, alternated over ``--rounds`` so machine noise hits all alike:
``bare`` (``SentenceTransformer.encode``, batch 64), ``knowrec`` (no cache),
``knowrec+cache miss`` (a fresh SQLite cache: encode and store), ``knowrec+cache hit``
(the same texts again: hashing and SQLite reads only).

    .venv/bin/python benchmarks/bench_encoder.py [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import write_result
from knowrec.data.synth import generate_world
from knowrec.encoders import Encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    world = generate_world(seed=0, size="demo")
    texts = world.movies.items["text"].to_list() + world.news.items["text"].to_list()
    words = [len(t.split()) for t in texts]
    bare_model = Encoder().model  # the same SentenceTransformer the Encoder loads
    times: dict[str, list[float]] = {}
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            cache = Path(tmp) / f"vectors{r}.sqlite"
            encoder = Encoder(cache=cache)
            runs = {
                "bare": lambda: bare_model.encode(
                    texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
                ),
                "knowrec": lambda: Encoder().encode(texts, progress=False),
                "knowrec+cache miss": lambda e=encoder: e.encode(texts, progress=False),
                "knowrec+cache hit": lambda e=encoder: e.encode(texts, progress=False),
            }
            for name, call in runs.items():
                t = time.perf_counter()
                out = call()
                times.setdefault(name, []).append(time.perf_counter() - t)
                first = out if first is None else first
                assert np.allclose(out, first, atol=1e-5), name
    summary = {
        name: {
            "median_s": statistics.median(ts),
            "texts_per_s": len(texts) / statistics.median(ts),
            "runs_s": ts,
        }
        for name, ts in times.items()
    }
    hit = summary["knowrec+cache hit"]["median_s"] / len(texts) * 1e6
    result = {
        "texts": len(texts),
        "words_median": statistics.median(words),
        "threads": args.threads,
        "summary": summary,
        "ratio_knowrec_to_bare": summary["bare"]["median_s"] / summary["knowrec"]["median_s"],
        "cache_hit_us_per_text": hit,
    }
    path = write_result("encoder", result)
    for name, s in summary.items():
        print(f"{name:20s} {s['texts_per_s']:8.1f} texts/s  ({s['median_s']:.2f} s)")
    print(f"knowrec/bare speed ratio {result['ratio_knowrec_to_bare']:.3f}; hit {hit:.0f} µs/text")
    print(f"→ {path}")


if __name__ == "__main__":
    main()
