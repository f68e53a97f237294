"""Data layer: source formats → canonical tables (:class:`Dataset`), splits, synthetic world."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError, DataFormatError

Format = Literal["auto", "knowrec", "movielens", "mind", "nemig", "ebnerd", "table"]
FORMATS = ("knowrec", "movielens", "mind", "nemig", "ebnerd", "table")


def detect_format(path: str | Path) -> str:
    """Guess a directory's format from the files it holds."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError("no such file or directory", path=p)
    if p.is_file():
        return "table"
    names = {f.name for f in p.rglob("*")} if p.is_dir() else set()
    if "interactions.parquet" in names:
        return "knowrec"
    if {"behaviors.tsv", "news.tsv"} <= names:
        from knowrec.data.nemig import is_nemig

        return "nemig" if is_nemig(p) else "mind"  # NeMig: MIND without the time column
    if {"behaviors.parquet", "articles.parquet"} <= names:
        return "ebnerd"
    if "movies.dat" in names or "ratings.csv" in names:
        return "movielens"
    raise DataFormatError("cannot tell the format; pass one of " + ", ".join(FORMATS), path=p)


def load_dataset(path: str | Path, format: Format = "auto", **options: Any) -> Dataset:
    """Load any supported source into canonical tables.

    ``options`` go to the format's loader (e.g. ``mapping=`` for ``format="table"``).
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "knowrec":
        return Dataset.load(path)
    if fmt == "movielens":
        from knowrec.data.movielens import load_movielens

        return load_movielens(path)
    if fmt == "mind":
        from knowrec.data.mind import load_mind

        return load_mind(path)
    if fmt == "nemig":
        from knowrec.data.nemig import load_nemig

        return load_nemig(path, **options)
    if fmt == "ebnerd":
        from knowrec.data.ebnerd import load_ebnerd

        return load_ebnerd(path)
    if fmt == "table":
        from knowrec.data.generic import load_table

        return load_table(path, **options)
    raise ConfigError(f"unknown format {fmt!r}; known formats are {', '.join(FORMATS)}")


__all__ = ["FORMATS", "Dataset", "detect_format", "load_dataset"]
