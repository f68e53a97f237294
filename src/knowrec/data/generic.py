"""Your own logs: a CSV/TSV/Parquet table + a column mapping → :class:`Dataset`.

The format is picked by the file name: ``.csv``, ``.tsv`` (each optionally ``.gz``) or
``.parquet``. Text files must be UTF-8 and need a header line; a record is one line
(errors name the 1-based file line, counting the header as line 1). Parquet errors name
the 1-based row.

Example::

    load_table("logs.csv.gz", TableMapping(user_id="uid", item_id="movie", timestamp="ts",
                                           rating="score", timestamp_unit="s"))
    load_table("logs.parquet", {"user_id": "uid", "item_id": "sku"},   # a dict works too
               items="items.csv", item_mapping={"item_id": "sku", "title": "name"})

A mapping names, for each canonical column, the source column that holds it (``None``:
absent). Unknown keys are rejected. Columns not mapped are dropped unless listed in
``keep`` (copied under their own names); in an items table, a column that already has a
canonical name (``title``, ``text``, ``year`` …) is taken without a mapping.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Literal, TypeVar

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from knowrec.data.io import decode_utf8, read_bytes
from knowrec.data.tables import MAX_TIME, MIN_TIME, SCHEMAS, TIME, Dataset, conform
from knowrec.errors import ConfigError, DataFormatError

EXTENSIONS = (".csv", ".tsv", ".parquet", ".csv.gz", ".tsv.gz")


class _Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keep: tuple[str, ...] = ()

    @field_validator("keep", mode="before")
    @classmethod
    def _split_keep(cls, value: Any) -> Any:
        """Accept ``"a,b"`` (as the CLI passes it) as well as a list."""
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    def columns(self) -> dict[str, str]:
        """Canonical name → source column, for the mapped columns only."""
        skip = {"keep", *self._options()}
        return {k: v for k, v in self.model_dump().items() if k not in skip and v is not None}

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return ()


class TableMapping(_Mapping):
    """Interaction columns: ``canonical = "source column"``.

    ``timestamp_unit``: ``"s"``/``"ms"`` for Unix times, ``"iso"`` for ISO-8601 text
    (``timestamp_format`` = a strptime format for other text layouts). A timestamp
    column that is already a datetime (Parquet) is used as it is. Offsets are
    converted to UTC and dropped.
    """

    user_id: str = "user_id"
    item_id: str = "item_id"
    timestamp: str | None = None
    rating: str | None = None
    label: str | None = None
    session_id: str | None = None
    impression_id: str | None = None
    dwell_time: str | None = None
    timestamp_unit: Literal["s", "ms", "iso"] = "s"
    timestamp_format: str | None = None

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return ("timestamp_unit", "timestamp_format")


class ItemMapping(_Mapping):
    """Item columns; list columns (``genres``/``entities``/``topics``) given as text are
    split on ``list_separator``."""

    item_id: str = "item_id"
    title: str | None = None
    text: str | None = None
    category: str | None = None
    year: str | None = None
    genres: str | None = None
    entities: str | None = None
    topics: str | None = None
    list_separator: str = "|"

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return ("list_separator",)


class UserMapping(_Mapping):
    """User profile columns."""

    user_id: str = "user_id"
    age: str | None = None
    gender: str | None = None
    occupation: str | None = None


M = TypeVar("M", bound=_Mapping)


def coerce_mapping(cls: type[M], value: M | dict[str, Any] | None) -> M:
    """A mapping model from a model, a dict (config/CLI) or ``None`` (defaults)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<mapping>'}: {e['msg']}" for e in exc.errors()
        )
        known = ", ".join(cls.model_fields)
        raise ConfigError(f"invalid {cls.__name__} ({problems}); known keys: {known}") from exc


def load_table(
    path: str | Path,
    mapping: TableMapping | dict[str, Any] | None = None,
    *,
    items: str | Path | None = None,
    item_mapping: ItemMapping | dict[str, Any] | None = None,
    users: str | Path | None = None,
    user_mapping: UserMapping | dict[str, Any] | None = None,
) -> Dataset:
    """Load an interactions table (and optional items / users tables) with column mappings."""
    imap = coerce_mapping(TableMapping, mapping)
    interactions = _interactions(Table.read(path), imap)
    meta: dict[str, Any] = {
        "source": str(path),
        "format": "table",
        "mapping": imap.model_dump(mode="json"),
    }
    tables = {"interactions": conform(interactions, "interactions")}
    if items is not None:
        mm = coerce_mapping(ItemMapping, item_mapping)
        tables["items"] = conform(_items(Table.read(items), mm), "items")
        meta.update(items_source=str(items), item_mapping=mm.model_dump(mode="json"))
    if users is not None:
        um = coerce_mapping(UserMapping, user_mapping)
        tables["users"] = conform(_users(Table.read(users), um), "users")
        meta.update(users_source=str(users), user_mapping=um.model_dump(mode="json"))
    return Dataset(meta=meta, **tables)


# --------------------------------------------------------------------------- reading


class Table:
    """A source table read as-is (text: all strings) plus how to name its rows in errors."""

    def __init__(self, path: Path, df: pl.DataFrame, text: str | None, sep: str) -> None:
        self.path = path
        self.df = df
        self.text = text
        self.sep = sep

    @classmethod
    def read(cls, path: str | Path) -> Table:
        p = Path(path)
        name = p.name.lower()
        if not any(name.endswith(ext) for ext in EXTENSIONS):
            raise DataFormatError(
                f"unsupported file type; expected one of {', '.join(EXTENSIONS)}", path=p
            )
        if name.endswith(".parquet"):
            if not p.is_file():
                raise DataFormatError("file not found", path=p)
            try:
                df = pl.read_parquet(p)
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise DataFormatError(
                    f"not a readable Parquet file (truncated?): {str(exc).splitlines()[0]}",
                    path=p,
                ) from exc
            table = cls(p, df, None, "")
        else:
            sep = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
            text = decode_utf8(read_bytes(p), p)
            try:
                df = pl.read_csv(
                    io.BytesIO(text.encode("utf-8")),
                    separator=sep,
                    infer_schema=False,
                    raise_if_empty=True,
                )
            except pl.exceptions.NoDataError as exc:
                raise DataFormatError("file is empty", path=p) from exc
            except pl.exceptions.PolarsError as exc:
                table = cls(p, pl.DataFrame(), text, sep)
                table._raise_ragged(str(exc).splitlines()[0])
                raise  # unreachable
            table = cls(p, df, text, sep)
        if table.df.height == 0:
            raise DataFormatError("no data rows (only a header?)", path=p)
        return table

    def _raise_ragged(self, reason: str) -> None:
        assert self.text is not None
        reader = csv.reader(io.StringIO(self.text), delimiter=self.sep)
        header = next(reader, [])
        for fields in reader:
            if fields and len(fields) != len(header):
                raise DataFormatError(
                    f"expected {len(header)} fields (as in the header), found {len(fields)}",
                    path=self.path,
                    line=reader.line_num,
                )
        raise DataFormatError(f"malformed {self.kind} ({reason})", path=self.path)

    @property
    def kind(self) -> str:
        return "Parquet" if self.text is None else ("TSV" if self.sep == "\t" else "CSV")

    def fail(self, row: int, column: str, message: str) -> None:
        """Raise for 0-based data row ``row``: a file line for text, a row for Parquet."""
        if self.text is None:
            raise DataFormatError(f"row {row + 1}: {message}", path=self.path, column=column)
        raise DataFormatError(message, path=self.path, line=self._line(row), column=column)

    def _line(self, row: int) -> int:
        """The 1-based file line where data row ``row`` starts (exact with quoted newlines)."""
        assert self.text is not None
        reader = csv.reader(io.StringIO(self.text), delimiter=self.sep)
        next(reader, None)
        start = reader.line_num + 1
        for i, _ in enumerate(reader):
            if i == row:
                return start
            start = reader.line_num + 1
        return row + 2

    def fail_first(self, mask: pl.Series, column: str, message: str) -> None:
        """Raise for the first ``True`` in ``mask``; ``{value}`` in ``message`` is filled."""
        mask = mask.fill_null(False)
        if mask.any():
            row = int(mask.arg_max())  # type: ignore[arg-type]
            self.fail(row, column, message.format(value=self.df[column][row]))

    def require(self, mapping: _Mapping) -> dict[str, str]:
        """Check the mapped (and kept) source columns exist; return canonical → source."""
        cols = mapping.columns()
        wanted = [*cols.values(), *mapping.keep]
        missing = [c for c in wanted if c not in self.df.columns]
        if missing:
            hint = ""
            if len(self.df.columns) == 1 and any(s in self.df.columns[0] for s in ",;\t|"):
                hint = " (one column only: wrong separator?)"
            canon = {v: k for k, v in cols.items()}
            what = f" (mapped to {canon[missing[0]]})" if missing[0] in canon else " (in keep)"
            if canon.get(missing[0]) == missing[0]:  # a default name: say how to map it
                what = f" (the default name of {missing[0]}; map yours: {missing[0]}=<column>)"
            raise DataFormatError(
                f"missing column {missing[0]!r}{what}; available columns: {self.df.columns}{hint}",
                path=self.path,
                line=None if self.text is None else 1,
                column=missing[0],
            )
        return cols


# --------------------------------------------------------------------------- converting


def _ids(t: Table, col: str) -> pl.Series:
    s = t.df[col].cast(pl.String).str.strip_chars()
    t.fail_first(s.is_null() | (s == ""), col, "empty id (missing field or truncated line?)")
    return s


def _number(
    t: Table, col: str, dtype: pl.DataType, what: str = "a number", *, optional: bool = False
) -> pl.Series:
    """Parse a numeric column; a bad (or, unless ``optional``, missing) value names its row."""
    raw = t.df[col]
    if raw.dtype == pl.String:
        text = raw.str.strip_chars()
        s = text.cast(pl.Float64, strict=False)
        missing = text.is_null() | (text == "")
    elif raw.dtype.is_numeric() or raw.dtype == pl.Boolean:
        s = raw.cast(pl.Float64)
        missing = raw.is_null()
    else:
        raise DataFormatError(
            f"column has dtype {raw.dtype}, expected {what}", path=t.path, column=col
        )
    bad = s.is_null() | s.is_nan()
    if dtype.is_integer():
        bad = bad | (s != s.round())
    if optional:
        bad = bad & ~missing
    t.fail_first(bad, col, f"expected {what}, found {{value!r}}")
    return s.cast(dtype)


def _timestamps(t: Table, col: str, m: TableMapping) -> pl.Series:
    raw = t.df[col]
    if isinstance(raw.dtype, pl.Datetime) or raw.dtype == pl.Date:
        ts = raw
        t.fail_first(ts.is_null(), col, "missing timestamp")
    elif m.timestamp_unit == "iso" or m.timestamp_format:
        if raw.dtype != pl.String:
            raise DataFormatError(
                f"timestamp_unit='iso' but the column has dtype {raw.dtype}; use 's' or 'ms'",
                path=t.path,
                column=col,
            )
        text = raw.str.strip_chars()
        if m.timestamp_format:
            ts = text.str.strptime(TIME, m.timestamp_format, strict=False)
        else:
            try:
                ts = text.str.to_datetime(strict=False, time_unit="ms")
            except pl.exceptions.PolarsError:
                ts = pl.Series([None] * len(text), dtype=TIME)
        expected = m.timestamp_format or "ISO-8601"
        t.fail_first(ts.is_null(), col, f"malformed timestamp {{value!r}}; expected {expected}")
    else:
        seconds = _number(t, col, pl.Float64(), f"a Unix time in {m.timestamp_unit}")
        scale = 1000.0 if m.timestamp_unit == "s" else 1.0
        ms = (seconds * scale).round()
        ok = ms.abs() < 2**62
        t.fail_first(~ok, col, "timestamp {value} is out of range")
        ts = ms.cast(pl.Int64).cast(TIME)
    if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is not None:
        ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    ts = ts.cast(TIME)
    bad = ((ts < MIN_TIME) | (ts >= MAX_TIME)).fill_null(False)
    if bad.any():
        row = int(bad.arg_max())  # type: ignore[arg-type]
        t.fail(
            row,
            col,
            f"timestamp {ts.cast(pl.String)[row]} (from {t.df[col][row]!r}) is outside "
            f"{MIN_TIME:%Y}..{MAX_TIME:%Y}; is timestamp_unit={m.timestamp_unit!r} right?",
        )
    return ts


def _with_kept(df: pl.DataFrame, t: Table, mapping: _Mapping, table: str) -> pl.DataFrame:
    """Append the ``keep`` columns under their own names; canonical names must be mapped."""
    clash = sorted(set(mapping.keep) & (set(df.columns) | set(SCHEMAS[table])))
    if clash:
        raise ConfigError(
            f"keep lists canonical column(s) {clash}; map them (e.g. rating=...) instead"
        )
    return df.with_columns(t.df[c] for c in mapping.keep)


def _interactions(t: Table, m: TableMapping) -> pl.DataFrame:
    cols = t.require(m)
    n = t.df.height
    out: dict[str, pl.Series] = {
        "user_id": _ids(t, cols["user_id"]),
        "item_id": _ids(t, cols["item_id"]),
        "timestamp": _timestamps(t, cols["timestamp"], m)
        if "timestamp" in cols
        else pl.Series([None] * n, dtype=TIME),
    }
    if "rating" in cols:
        out["rating"] = _number(t, cols["rating"], pl.Float32())
    if "label" in cols:
        label = _number(t, cols["label"], pl.Int8(), "a 0/1 label")
        t.fail_first(~label.is_in([0, 1]), cols["label"], "expected a 0/1 label, found {value!r}")
        out["label"] = label
    if "dwell_time" in cols:
        out["dwell_time"] = _number(t, cols["dwell_time"], pl.Float32())
    for name in ("session_id", "impression_id"):
        if name in cols:
            out[name] = t.df[cols[name]].cast(pl.String)
    df = pl.DataFrame({k: v.alias(k) for k, v in out.items()})
    return _with_kept(df, t, m, "interactions")


def _list_column(t: Table, col: str, sep: str) -> pl.Series:
    s = t.df[col]
    if isinstance(s.dtype, pl.List | pl.Array):
        return s.cast(pl.List(pl.String))
    if s.dtype != pl.String:
        raise DataFormatError(
            f"column has dtype {s.dtype}, expected text or a list", path=t.path, column=col
        )
    return (
        s.str.split(sep)
        .list.eval(pl.element().str.strip_chars().filter(pl.element().str.strip_chars() != ""))
        .fill_null(pl.lit([], pl.List(pl.String)))
    )


def _unique_ids(t: Table, ids: pl.Series, col: str) -> None:
    dup = ids.is_duplicated() & ~ids.is_first_distinct()
    if dup.any():
        row = int(dup.arg_max())  # type: ignore[arg-type]
        t.fail(row, col, f"duplicate id {ids[row]!r}")


def _items(t: Table, m: ItemMapping) -> pl.DataFrame:
    cols = t.require(m)
    # Unmapped columns that already carry a canonical name (title, text, …) are taken.
    for name in ("title", "text", "category", "year", "genres", "entities", "topics"):
        if name not in cols and name in t.df.columns and name not in cols.values():
            cols[name] = name
    ids = _ids(t, cols["item_id"])
    _unique_ids(t, ids, cols["item_id"])
    out: dict[str, pl.Series] = {"item_id": ids}
    for name in ("title", "text", "category"):
        if name in cols:
            out[name] = t.df[cols[name]].cast(pl.String)
    if "year" in cols:
        out["year"] = _number(t, cols["year"], pl.Int32(), "a year", optional=True)
    for name in ("genres", "entities", "topics"):
        if name in cols:
            out[name] = _list_column(t, cols[name], m.list_separator)
    df = pl.DataFrame({k: v.alias(k) for k, v in out.items()})
    return _with_kept(df, t, m, "items")


def _users(t: Table, m: UserMapping) -> pl.DataFrame:
    cols = t.require(m)
    ids = _ids(t, cols["user_id"])
    _unique_ids(t, ids, cols["user_id"])
    out: dict[str, pl.Series] = {"user_id": ids}
    if "age" in cols:
        out["age"] = _number(t, cols["age"], pl.Int32(), "an age")
    for name in ("gender", "occupation"):
        if name in cols:
            out[name] = t.df[cols[name]].cast(pl.String)
    df = pl.DataFrame({k: v.alias(k) for k, v in out.items()})
    return _with_kept(df, t, m, "users")
