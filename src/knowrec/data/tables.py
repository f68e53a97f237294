"""Canonical tables: every loader converts its source format into a :class:`Dataset`.

Three polars tables, saved as Parquet:

``interactions``
    ``user_id`` (str), ``item_id`` (str), ``timestamp`` (datetime[ms], UTC, null when the
    source gives no time, e.g. MIND click histories), and optionally ``rating`` (f32),
    ``label`` (i8: 1 positive/clicked, 0 negative/shown-not-clicked), ``session_id`` (str),
    ``impression_id`` (str), ``dwell_time`` (f32 seconds).
``items``
    ``item_id`` (str), ``title`` (str), optionally ``text`` (str: the raw knowledge),
    ``genres`` / ``entities`` / ``topics`` (list[str]), ``year`` (i32), ``category`` (str) ...
``users``
    ``user_id`` (str) and profile fields (``age``, ``gender``, ``occupation`` ...).

Ids are strings in every data set, so one code path serves MovieLens (numeric ids) and
MIND/EB-NeRD (``U123``/``N456``); models map them to contiguous integers themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from knowrec.errors import DataFormatError

TIME = pl.Datetime("ms")

INTERACTION_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "item_id": pl.String(),
    "timestamp": TIME,
    "rating": pl.Float32(),
    "label": pl.Int8(),
    "session_id": pl.String(),
    "impression_id": pl.String(),
    "dwell_time": pl.Float32(),
}
ITEM_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "title": pl.String(),
    "text": pl.String(),
    "year": pl.Int32(),
    "genres": pl.List(pl.String()),
    "category": pl.String(),
    "entities": pl.List(pl.String()),
    "topics": pl.List(pl.String()),
}
USER_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "age": pl.Int32(),
    "gender": pl.String(),
    "occupation": pl.String(),
}
REQUIRED = {
    "interactions": ("user_id", "item_id", "timestamp"),
    "items": ("item_id",),
    "users": ("user_id",),
}
SCHEMAS = {"interactions": INTERACTION_SCHEMA, "items": ITEM_SCHEMA, "users": USER_SCHEMA}
# Timestamps outside this window are treated as corrupt input.
MIN_TIME = datetime(1970, 1, 1)
MAX_TIME = datetime(2100, 1, 1)


@dataclass
class Dataset:
    """The canonical triple of tables plus free-form metadata (source, protocol notes)."""

    interactions: pl.DataFrame
    items: pl.DataFrame = field(default_factory=lambda: empty_table("items"))
    users: pl.DataFrame = field(default_factory=lambda: empty_table("users"))
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SCHEMAS:
            validate_table(getattr(self, name), name, source=self.meta.get("source"))

    def save(self, directory: str | Path) -> Path:
        """Write ``interactions.parquet``, ``items.parquet``, ``users.parquet``, ``meta.json``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name in SCHEMAS:
            getattr(self, name).write_parquet(out / f"{name}.parquet")
        (out / "meta.json").write_text(json.dumps(self.meta, indent=2, default=str))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        """Read a directory written by :meth:`save`."""
        src = Path(directory)
        missing = [n for n in SCHEMAS if not (src / f"{n}.parquet").exists()]
        if missing:
            raise DataFormatError(
                f"not a knowrec data set directory (missing {', '.join(missing)}.parquet)",
                path=src,
            )
        tables = {}
        for name in SCHEMAS:
            try:
                tables[name] = pl.read_parquet(src / f"{name}.parquet")
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise DataFormatError(
                    f"unreadable Parquet: {exc}", path=src / f"{name}.parquet"
                ) from exc
        meta_path = src / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return cls(meta=meta, **tables)

    @property
    def n_users(self) -> int:
        return self.interactions["user_id"].n_unique()

    @property
    def n_items(self) -> int:
        return self.interactions["item_id"].n_unique()


def empty_table(name: str) -> pl.DataFrame:
    schema = SCHEMAS[name]
    return pl.DataFrame(schema={c: schema[c] for c in REQUIRED[name]})


def conform(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """Cast known columns to their canonical dtypes; keep extra columns as they are."""
    schema = SCHEMAS[name]
    return df.with_columns(
        pl.col(c).cast(schema[c]) for c in df.columns if c in schema and df[c].dtype != schema[c]
    )


def validate_table(df: pl.DataFrame, name: str, *, source: str | Path | None = None) -> None:
    """Check required columns, dtypes, null ids, duplicate keys and the timestamp range."""
    schema = SCHEMAS[name]
    for col in REQUIRED[name]:
        if col not in df.columns:
            raise DataFormatError(
                f"{name} table has no column (has {df.columns})", path=source, column=col
            )
    for col in df.columns:
        if col in schema and df[col].dtype != schema[col]:
            raise DataFormatError(
                f"{name} column has dtype {df[col].dtype}, expected {schema[col]}",
                path=source,
                column=col,
            )
    id_cols = [c for c in ("user_id", "item_id") if c in REQUIRED[name]]
    for col in id_cols:
        nulls = df[col].is_null()
        if nulls.any():
            row = int(nulls.arg_max())  # type: ignore[arg-type]
            raise DataFormatError(
                f"{name} has an empty id at row {row + 1}", path=source, column=col
            )
    if name in ("items", "users"):
        key = id_cols[0]
        dup = df[key].is_duplicated()
        if dup.any():
            row = int(dup.arg_max())  # type: ignore[arg-type]
            raise DataFormatError(
                f"duplicate {key} {df[key][row]!r} (first at row {row + 1})",
                path=source,
                column=key,
            )
    if name == "interactions" and df.height:
        ts = df["timestamp"]
        bad = ((ts < MIN_TIME) | (ts >= MAX_TIME)).fill_null(False)
        if bad.any():
            row = int(bad.arg_max())  # type: ignore[arg-type]
            raise DataFormatError(
                f"timestamp {ts[row]} at row {row + 1} is outside {MIN_TIME:%Y}..{MAX_TIME:%Y}",
                path=source,
                column="timestamp",
            )
