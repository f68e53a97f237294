"""EB-NeRD (Ekstra Bladet News Recommendation Dataset) loader → :class:`Dataset`.

Column names and dtypes follow the official release (ebanalyse/ebnerd-benchmark,
``src/ebrec/utils/_constants.py``; dtypes as printed in its example notebooks):

``behaviors.parquet`` (one row per impression)
    ``impression_id`` u32, ``article_id`` i32 (page the impression was on; null on the
    front page), ``impression_time`` datetime[us], ``read_time`` f32, ``scroll_percentage``
    f32, ``device_type`` i8, ``article_ids_inview`` list[i32], ``article_ids_clicked``
    list[i32] (absent in the test set), ``user_id`` u32, ``is_sso_user`` bool, ``gender``
    i8, ``postcode`` i8, ``age`` i8, ``is_subscriber`` bool, ``session_id`` u32,
    ``next_read_time`` f32, ``next_scroll_percentage`` f32
``history.parquet`` (one row per user: the clicks before the split's behaviors)
    ``user_id`` u32, ``impression_time_fixed`` list[datetime[us]],
    ``scroll_percentage_fixed`` list[f32], ``article_id_fixed`` list[i32],
    ``read_time_fixed`` list[f32]
``articles.parquet``
    ``article_id`` i32, ``title``, ``subtitle``, ``body``, ``category_str``, ``url``,
    ``article_type``, ``sentiment_label`` str, ``last_modified_time``, ``published_time``
    datetime[us], ``premium`` bool, ``image_ids`` list[i64], ``ner_clusters``,
    ``entity_groups``, ``topics`` list[str], ``category`` i16, ``subcategory`` list[i16],
    ``total_inviews``, ``total_pageviews`` i32, ``total_read_time``, ``sentiment_score`` f32

Canonical mapping
    * impressions → one interaction row per in-view article: ``label`` = 1 if it is in
      ``article_ids_clicked`` (null when the column is absent, i.e. the test set),
      ``timestamp`` = ``impression_time``, ``session_id``, ``impression_id``,
      ``device_type``; for clicked rows ``dwell_time`` = ``next_read_time`` and
      ``scroll_percentage`` = ``next_scroll_percentage`` (the official meaning of the
      ``next_*`` columns: time/scroll on the clicked article; ``read_time`` itself is the
      time on the page the impression was shown on, so it is not the item's dwell time);
    * history → ``label = 1`` rows with ``timestamp`` = ``impression_time_fixed``,
      ``dwell_time`` = ``read_time_fixed``, ``scroll_percentage`` =
      ``scroll_percentage_fixed``, null ``impression_id``/``session_id``; rows repeated
      across splits (the history windows overlap) are kept once;
    * articles → items: ``item_id, title, subtitle, text`` (title + subtitle + body),
      ``category`` (= ``category_str``), ``subcategory_ids``, ``topics``, ``entities``
      (= ``ner_clusters``), ``entity_types`` (= ``entity_groups``), ``published_time``,
      ``url, premium, article_type, sentiment_label, sentiment_score``;
    * users → ``user_id, gender, age, postcode, is_subscriber, is_sso_user`` from the
      behaviors (the last non-null value per user); ``gender`` and ``postcode`` stay the
      release's codes (as strings / i8).

Not kept: ``image_ids``, ``last_modified_time`` and the ``total_*`` popularity counters
(computed over the whole period, so they leak the test window), the impression page's
own ``article_id``/``read_time``/``scroll_percentage``.

Layout: ``path`` holds ``behaviors.parquet`` + ``history.parquet`` (one split), or split
folders (``train/``, ``validation/``, ``test/``) with those files; ``articles.parquet`` is
found in ``path``, its parent, or the split folders. With several splits the
interactions get a ``split`` column and impression ids become ``"<split>/<id>"``.
Timestamps are taken as given (naive); tz-aware ones are converted to UTC.
Errors name the file, the 1-based row and the column.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from knowrec.data.tables import MAX_TIME, MIN_TIME, TIME, Dataset, conform
from knowrec.errors import DataFormatError

log = logging.getLogger(__name__)

# Expected kinds of the columns we read: (required, kind).
BEHAVIOR_COLUMNS: dict[str, tuple[bool, str]] = {
    "impression_id": (True, "id"),
    "user_id": (True, "id"),
    "impression_time": (True, "time"),
    "article_ids_inview": (True, "id_list"),
    "article_ids_clicked": (False, "id_list"),
    "session_id": (False, "id"),
    "device_type": (False, "int"),
    "next_read_time": (False, "float"),
    "next_scroll_percentage": (False, "float"),
    "gender": (False, "int"),
    "age": (False, "int"),
    "postcode": (False, "int"),
    "is_subscriber": (False, "bool"),
    "is_sso_user": (False, "bool"),
}
HISTORY_COLUMNS: dict[str, tuple[bool, str]] = {
    "user_id": (True, "id"),
    "impression_time_fixed": (True, "time_list"),
    "article_id_fixed": (True, "id_list"),
    "read_time_fixed": (False, "float_list"),
    "scroll_percentage_fixed": (False, "float_list"),
}
ARTICLE_COLUMNS: dict[str, tuple[bool, str]] = {
    "article_id": (True, "id"),
    "title": (True, "str"),
    "subtitle": (False, "str"),
    "body": (False, "str"),
    "category_str": (False, "str"),
    "subcategory": (False, "id_list"),
    "topics": (False, "str_list"),
    "ner_clusters": (False, "str_list"),
    "entity_groups": (False, "str_list"),
    "published_time": (False, "time"),
    "url": (False, "str"),
    "premium": (False, "bool"),
    "article_type": (False, "str"),
    "sentiment_label": (False, "str"),
    "sentiment_score": (False, "float"),
}
KIND_TEXT = {
    "id": "an integer or string id",
    "time": "a datetime",
    "id_list": "a list of integer or string ids",
    "time_list": "a list of datetimes",
    "float_list": "a list of numbers",
    "str_list": "a list of strings",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "str": "a string",
}
SPLIT_ORDER = ("train", "validation", "test")
PROFILE = ("gender", "age", "postcode", "is_subscriber", "is_sso_user")


def load_ebnerd(path: str | Path, *, splits: Sequence[str] | None = None) -> Dataset:
    """Load an EB-NeRD directory (one split, or split folders) into canonical tables.

    ``splits`` picks split folders by name (default: all that hold ``behaviors.parquet``).
    """
    root = Path(path)
    if not root.is_dir():
        raise DataFormatError("expected an EB-NeRD directory", path=root)
    folders = _split_dirs(root, splits)
    multi = len(folders) > 1
    histories, impressions, profiles = [], [], []
    for name, folder in folders:
        imp, prof = read_behaviors(folder / "behaviors.parquet")
        hist = read_history(folder / "history.parquet")
        if multi:
            imp = imp.with_columns(
                pl.concat_str(pl.lit(f"{name}/"), "impression_id").alias("impression_id"),
                split=pl.lit(name),
            )
            hist = hist.with_columns(split=pl.lit(name))
        impressions.append(imp)
        histories.append(hist)
        profiles.append(prof)
    history = pl.concat(histories).unique(
        ["user_id", "item_id", "timestamp"], keep="first", maintain_order=True
    )
    interactions = pl.concat([history, *impressions], how="diagonal_relaxed")
    items = read_articles(_articles_path(root, folders))
    users = _users(pl.concat(profiles, how="diagonal_relaxed"))
    coverage = {
        name: _resolved(df["item_id"], items["item_id"])
        for name, df in (("history_items", history), ("impression_items", pl.concat(impressions)))
    }
    if min(coverage.values()) < 1.0:
        log.warning("EB-NeRD %s: some article ids are not in articles.parquet: %s", root, coverage)
    meta = {
        "source": str(root),
        "format": "ebnerd",
        "splits": [n for n, _ in folders] if multi else None,
        "coverage": coverage,
        "history_rows": history.height,
        "impression_rows": interactions.height - history.height,
    }
    return Dataset(
        interactions=conform(interactions, "interactions"),
        items=conform(items, "items"),
        users=conform(users, "users"),
        meta=meta,
    )


def _split_dirs(root: Path, splits: Sequence[str] | None) -> list[tuple[str, Path]]:
    if (root / "behaviors.parquet").exists():
        return [(root.name, root)]
    found = {d.name: d for d in root.iterdir() if d.is_dir() and (d / "behaviors.parquet").exists()}
    if splits is not None:
        unknown = [s for s in splits if s not in found]
        if unknown:
            raise DataFormatError(
                f"no split folder(s) {unknown} with behaviors.parquet; found {sorted(found)}",
                path=root,
            )
        found = {s: found[s] for s in splits}
    if not found:
        raise DataFormatError(
            "no behaviors.parquet here or in a split folder (train/, validation/, test/)",
            path=root,
        )
    order = sorted(found, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else 9, s))
    return [(s, found[s]) for s in order]


def _articles_path(root: Path, folders: list[tuple[str, Path]]) -> Path:
    candidates = [root, root.parent, *(f for _, f in folders)]
    for folder in candidates:
        if (folder / "articles.parquet").exists():
            return folder / "articles.parquet"
    raise DataFormatError("no articles.parquet in the directory, its parent or a split", path=root)


def _resolved(ids: pl.Series, known: pl.Series) -> float:
    uniq = ids.unique()
    return float(uniq.is_in(known.implode()).mean()) if len(uniq) else 1.0  # type: ignore[arg-type]


# --------------------------------------------------------------------------- checks


def _kind_ok(dtype: pl.DataType, kind: str) -> bool:
    if kind.endswith("_list"):
        return isinstance(dtype, pl.List | pl.Array) and _kind_ok(dtype.inner, kind[:-5])  # type: ignore[union-attr]
    if kind == "id":
        return dtype.is_integer() or dtype == pl.String
    if kind == "time":
        return isinstance(dtype, pl.Datetime) or dtype == pl.Date
    if kind == "int":
        return dtype.is_integer()
    if kind == "float":
        return dtype.is_numeric()
    if kind == "bool":
        return dtype == pl.Boolean
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Categorical | pl.Enum)


def read_parquet(path: Path, columns: dict[str, tuple[bool, str]]) -> pl.DataFrame:
    """Read the known columns of an EB-NeRD Parquet file after checking its schema."""
    if not path.is_file():
        raise DataFormatError("file not found", path=path)
    try:
        schema = pl.read_parquet_schema(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataFormatError(
            f"not a readable Parquet file (truncated?): {str(exc).splitlines()[0]}", path=path
        ) from exc
    missing = [c for c, (req, _) in columns.items() if req and c not in schema]
    if missing:
        raise DataFormatError(
            f"missing column(s) {missing}; found {list(schema)} (not the EB-NeRD schema?)",
            path=path,
            column=missing[0],
        )
    for col, (_, kind) in columns.items():
        if col in schema and not _kind_ok(schema[col], kind):
            raise DataFormatError(
                f"column has dtype {schema[col]}, expected {KIND_TEXT[kind]}",
                path=path,
                column=col,
            )
    try:
        df = pl.read_parquet(path, columns=[c for c in columns if c in schema])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataFormatError(
            f"unreadable Parquet (truncated?): {str(exc).splitlines()[0]}", path=path
        ) from exc
    if df.height == 0:
        raise DataFormatError("file has no rows", path=path)
    return df


def _fail_rows(mask: pl.Series, rows: pl.Series | None, path: Path, column: str, msg: str) -> None:
    """Raise for the first ``True`` of ``mask``; ``rows`` maps positions to file rows."""
    mask = mask.fill_null(False)
    if mask.any():
        i = int(mask.arg_max())  # type: ignore[arg-type]
        row = i if rows is None else int(rows[i])
        raise DataFormatError(f"row {row + 1}: {msg}", path=path, column=column)


def _as_time(s: pl.Series) -> pl.Series:
    dtype = s.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return s.cast(TIME)


def _check_time(ts: pl.Series, rows: pl.Series | None, path: Path, column: str) -> None:
    bad = ((ts < MIN_TIME) | (ts >= MAX_TIME)).fill_null(False)
    if bad.any():
        i = int(bad.arg_max())  # type: ignore[arg-type]
        row = i if rows is None else int(rows[i])
        shown = ts.cast(pl.String)[i]
        raise DataFormatError(
            f"row {row + 1}: timestamp {shown} is outside {MIN_TIME:%Y}..{MAX_TIME:%Y}",
            path=path,
            column=column,
        )


def _ids(s: pl.Series) -> pl.Series:
    return s.cast(pl.String).str.strip_chars()


# --------------------------------------------------------------------------- files


def read_behaviors(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``behaviors.parquet`` → (one row per in-view article, per-impression user profile)."""
    raw = read_parquet(path, BEHAVIOR_COLUMNS)
    for col in ("impression_id", "user_id", "impression_time", "article_ids_inview"):
        _fail_rows(raw[col].is_null(), None, path, col, "missing value")
    ids = _ids(raw["impression_id"])
    dup = ids.is_duplicated() & ~ids.is_first_distinct()
    if dup.any():
        i = int(dup.arg_max())  # type: ignore[arg-type]
        raise DataFormatError(
            f"row {i + 1}: duplicate impression_id {ids[i]!r}", path=path, column="impression_id"
        )
    ts = _as_time(raw["impression_time"])
    _check_time(ts, None, path, "impression_time")
    has_clicks = "article_ids_clicked" in raw.columns
    for col in ("article_ids_inview", "article_ids_clicked"):
        if col in raw.columns:
            _fail_rows(
                raw[col].list.eval(pl.element().is_null()).list.any(),
                None,
                path,
                col,
                "null article id in the list",
            )
    cols = {
        "user_id": _ids(raw["user_id"]),
        "impression_id": ids,
        "timestamp": ts,
        "item_id": raw["article_ids_inview"].cast(pl.List(pl.String)),
        "clicked": raw["article_ids_clicked"].cast(pl.List(pl.String))
        if has_clicks
        else pl.Series([None] * raw.height, dtype=pl.List(pl.String)),
    }
    optional = {
        "session_id": ("session_id", pl.String),
        "device_type": ("device_type", pl.Int8),
        "next_read_time": ("next_read_time", pl.Float32),
        "next_scroll_percentage": ("next_scroll_percentage", pl.Float32),
    }
    for name, (src, dtype) in optional.items():
        cols[name] = (
            raw[src].cast(dtype)
            if src in raw.columns
            else pl.Series([None] * raw.height, dtype=dtype)
        )
    base = pl.DataFrame(cols)
    clicked = pl.col("clicked").list.contains(pl.col("item_id"))
    rows = base.explode("item_id").filter(pl.col("item_id").is_not_null())
    label = pl.when(pl.col("clicked").is_null()).then(None).otherwise(clicked.cast(pl.Int8))
    impressions = rows.select(
        "user_id",
        "item_id",
        "timestamp",
        label.alias("label"),
        "session_id",
        "impression_id",
        pl.when(label == 1).then(pl.col("next_read_time")).alias("dwell_time"),
        pl.when(label == 1).then(pl.col("next_scroll_percentage")).alias("scroll_percentage"),
        "device_type",
    )
    if has_clicks:
        outside = pl.col("clicked").list.set_difference("item_id").list.len() > 0
        n_outside = base.select(outside.sum()).item()
        if n_outside:
            log.warning("%s: %d impressions clicked an article not in view", path, n_outside)
    profile = pl.DataFrame({"user_id": cols["user_id"], "timestamp": ts}).with_columns(
        raw.select(c for c in PROFILE if c in raw.columns)
    )
    return impressions, profile


def read_history(path: Path) -> pl.DataFrame:
    """``history.parquet`` → one ``label = 1`` row per past click, with time and dwell."""
    raw = read_parquet(path, HISTORY_COLUMNS)
    _fail_rows(raw["user_id"].is_null(), None, path, "user_id", "missing user id")
    users = _ids(raw["user_id"])
    dup = users.is_duplicated() & ~users.is_first_distinct()
    if dup.any():
        i = int(dup.arg_max())  # type: ignore[arg-type]
        raise DataFormatError(
            f"row {i + 1}: duplicate user_id {users[i]!r} (one history row per user)",
            path=path,
            column="user_id",
        )
    lists = [c for c in HISTORY_COLUMNS if c != "user_id" and c in raw.columns]
    n = raw["article_id_fixed"].list.len().fill_null(0)
    for col in lists:
        _fail_rows(
            raw[col].list.len().fill_null(0) != n,
            None,
            path,
            col,
            "list length differs from article_id_fixed in the same row",
        )
    frame = raw.select(
        pl.int_range(0, raw.height, dtype=pl.UInt32).alias("row"),
        users.alias("user_id"),
        pl.col("article_id_fixed").cast(pl.List(pl.String)).alias("item_id"),
        pl.col("impression_time_fixed").alias("timestamp"),
        *(
            pl.col(c).cast(pl.List(pl.Float32)).alias(alias)
            for c, alias in (
                ("read_time_fixed", "dwell_time"),
                ("scroll_percentage_fixed", "scroll_percentage"),
            )
            if c in raw.columns
        ),
    )
    exploded = frame.explode([c for c in frame.columns if c not in ("row", "user_id")])
    exploded = exploded.filter(pl.col("item_id").is_not_null() | pl.col("timestamp").is_not_null())
    for col, src in (("item_id", "article_id_fixed"), ("timestamp", "impression_time_fixed")):
        _fail_rows(exploded[col].is_null(), exploded["row"], path, src, "null value in the list")
    ts = _as_time(exploded["timestamp"])
    _check_time(ts, exploded["row"], path, "impression_time_fixed")
    out = exploded.with_columns(timestamp=ts).select(
        "user_id",
        "item_id",
        "timestamp",
        pl.lit(1, pl.Int8).alias("label"),
        pl.lit(None, pl.String).alias("session_id"),
        pl.lit(None, pl.String).alias("impression_id"),
        *(c for c in ("dwell_time", "scroll_percentage") if c in exploded.columns),
    )
    for c in ("dwell_time", "scroll_percentage"):
        if c not in out.columns:
            out = out.with_columns(pl.lit(None, pl.Float32).alias(c))
    return out.with_columns(pl.lit(None, pl.Int8).alias("device_type"))


def read_articles(path: Path) -> pl.DataFrame:
    """``articles.parquet`` → canonical items (see the module docstring for the mapping)."""
    raw = read_parquet(path, ARTICLE_COLUMNS)
    ids = _ids(raw["article_id"])
    _fail_rows(ids.is_null(), None, path, "article_id", "missing article id")
    dup = ids.is_duplicated() & ~ids.is_first_distinct()
    if dup.any():
        i = int(dup.arg_max())  # type: ignore[arg-type]
        first = int((ids == ids[i]).arg_max())  # type: ignore[arg-type]
        raise DataFormatError(
            f"row {i + 1}: duplicate article_id {ids[i]!r} (first at row {first + 1})",
            path=path,
            column="article_id",
        )
    if "published_time" in raw.columns:
        published = _as_time(raw["published_time"])
        _check_time(published, None, path, "published_time")
        raw = raw.with_columns(published_time=published)
    strs = pl.List(pl.String)
    text_cols = [c for c in ("title", "subtitle", "body") if c in raw.columns]
    exprs: list[pl.Expr] = [
        pl.lit(ids).alias("item_id"),
        pl.col("title").cast(pl.String),
        pl.concat_str(
            [pl.col(c).cast(pl.String).str.strip_chars().replace("", None) for c in text_cols],
            separator="\n\n",
            ignore_nulls=True,
        ).alias("text"),
    ]
    renames = {
        "subtitle": "subtitle",
        "category_str": "category",
        "subcategory": "subcategory_ids",
        "topics": "topics",
        "ner_clusters": "entities",
        "entity_groups": "entity_types",
        "published_time": "published_time",
        "url": "url",
        "premium": "premium",
        "article_type": "article_type",
        "sentiment_label": "sentiment_label",
        "sentiment_score": "sentiment_score",
    }
    for src, dst in renames.items():
        if src not in raw.columns:
            continue
        kind = ARTICLE_COLUMNS[src][1]
        expr = pl.col(src)
        if kind in ("id_list", "str_list"):
            expr = expr.cast(strs)
        elif kind == "str":
            expr = expr.cast(pl.String)
        elif kind == "float":
            expr = expr.cast(pl.Float32)
        exprs.append(expr.alias(dst))
    return raw.select(exprs)


def _users(profiles: pl.DataFrame) -> pl.DataFrame:
    """Last non-null profile value per user (profiles may change across impressions)."""
    present = [c for c in PROFILE if c in profiles.columns]
    users = (
        profiles.sort("timestamp", maintain_order=True)
        .group_by("user_id", maintain_order=True)
        .agg(pl.col(c).drop_nulls().last() for c in present)
    )
    casts = {"gender": pl.String, "age": pl.Int32, "postcode": pl.Int8}
    return users.with_columns(pl.col(c).cast(t) for c, t in casts.items() if c in present)
