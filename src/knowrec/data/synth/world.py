"""The world: both data sets and their hidden truth, drawn from one seed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from knowrec.data.synth.movies import movie_world
from knowrec.data.synth.news import news_world
from knowrec.data.synth.sizes import SIZES
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError, DataFormatError

GENERATOR_VERSION = "1"


@dataclass
class World:
    """The synthetic world: two data sets, the hidden truth, and a small manifest."""

    movies: Dataset
    news: Dataset
    truth: dict[str, pl.DataFrame]
    info: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``movies/``, ``news/``, ``truth/*.parquet`` and ``world.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.movies.save(out / "movies")
        self.news.save(out / "news")
        tdir = out / "truth"
        tdir.mkdir(exist_ok=True)
        for name in sorted(self.truth):
            self.truth[name].write_parquet(
                tdir / f"{name}.parquet", compression="zstd", compression_level=3, statistics=True
            )
        (out / "world.json").write_text(json.dumps(self.info, indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> World:
        """Read a directory written by :meth:`save`."""
        src = Path(directory)
        manifest = src / "world.json"
        if not manifest.exists():
            raise DataFormatError("not a synthetic world directory (no world.json)", path=src)
        info = json.loads(manifest.read_text())
        truth = {p.stem: pl.read_parquet(p) for p in sorted((src / "truth").glob("*.parquet"))}
        return cls(
            movies=Dataset.load(src / "movies"),
            news=Dataset.load(src / "news"),
            truth=truth,
            info=info,
        )


def generate_world(seed: int = 0, size: str = "small") -> World:
    """Generate the synthetic world for ``seed`` and ``size`` ("small", "demo", "large")."""
    if size not in SIZES:
        raise ConfigError(f"unknown world size {size!r}; known sizes are {', '.join(SIZES)}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    spec = SIZES[size]
    movie_ss, news_ss = np.random.SeedSequence([int(seed), 20240611]).spawn(2)
    movies, movie_truth, movie_info = movie_world(spec, np.random.default_rng(movie_ss))
    news, news_truth, news_info = news_world(spec, np.random.default_rng(news_ss))
    for ds, kind in ((movies, "movies"), (news, "news")):
        ds.meta.update({"seed": int(seed), "size": size, "generator_version": GENERATOR_VERSION})
        ds.meta["source"] = f"synthetic:{kind}"
    info = {
        "generator": "knowrec.data.synth",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": size,
        "movies": movie_info,
        "news": news_info,
    }
    return World(movies=movies, news=news, truth={**movie_truth, **news_truth}, info=info)
