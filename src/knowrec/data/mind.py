"""MIND (Microsoft News Dataset) loader: ``behaviors.tsv`` + ``news.tsv`` → :class:`Dataset`.

Source format (tab-separated, no header, one record per line):

``behaviors.tsv``
    ``ImpressionID, UserID, Time (M/D/YYYY h:mm:ss AM/PM), History (space-separated news
    ids, may be empty), Impressions (space-separated NewsID-label, label 0/1; the test
    set of MIND-large has bare NewsIDs without labels)``
``news.tsv``
    ``NewsID, Category, SubCategory, Title, Abstract, URL, TitleEntities, AbstractEntities``
    (the entity columns are JSON lists of objects with ``Label, Type, WikidataId,
    Confidence, OccurrenceOffsets, SurfaceForms``)

Canonical mapping
    * every shown impression item → one interaction row (``impression_id``, ``label`` 0/1,
      ``timestamp`` = the impression time; ``label`` is null for unlabelled test files);
    * every history click → one ``label = 1`` row with ``impression_id`` and ``timestamp``
      null (MIND gives no click time), deduplicated per user across impressions (and
      splits), in the order of first appearance;
    * news → items: ``item_id, title, abstract, text`` (title + abstract), ``category,
      subcategory, url, entities`` (WikidataIds of title + abstract entities, first
      occurrence order, deduplicated), ``entity_labels`` and ``entity_types`` (the
      ``Label``/``Type`` of each entry of ``entities``, same order).

News ids in ``behaviors.tsv`` that ``news.tsv`` does not define are kept (sub-samples of
MIND often cut the two files separately); ``meta["coverage"]`` reports the resolved
fractions and a warning is logged.

A directory holding split folders (``MINDsmall_train/``, ``MINDsmall_dev/``, each with
both files) loads all of them: interactions get a ``split`` column (the folder name),
impression ids become ``"<split>/<ImpressionID>"`` (MIND restarts them at 1 per split),
and news present in several folders is kept once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from knowrec.data.io import decode_text, read_bytes
from knowrec.data.tables import MAX_TIME, MIN_TIME, TIME, Dataset, conform
from knowrec.errors import DataFormatError

log = logging.getLogger(__name__)

BEHAVIOR_COLUMNS = ("ImpressionID", "UserID", "Time", "History", "Impressions")
NEWS_COLUMNS = (
    "NewsID", "Category", "SubCategory", "Title", "Abstract", "URL",
    "TitleEntities", "AbstractEntities",
)  # fmt: skip
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
ENTITY_DTYPE = pl.List(pl.Struct({"Label": pl.String, "Type": pl.String, "WikidataId": pl.String}))


def load_mind(path: str | Path) -> Dataset:
    """Load a MIND directory (or a directory of MIND split folders) into canonical tables."""
    root = Path(path)
    if not root.is_dir():
        raise DataFormatError(
            "expected a MIND directory with behaviors.tsv and news.tsv", path=root
        )
    splits = _split_dirs(root)
    multi = len(splits) > 1
    histories, impressions, news = [], [], []
    for name, folder in splits:
        hist, imp = read_behaviors(folder / "behaviors.tsv")
        if multi:
            hist = hist.with_columns(split=pl.lit(name))
            imp = imp.with_columns(
                pl.concat_str(pl.lit(f"{name}/"), "impression_id").alias("impression_id"),
                split=pl.lit(name),
            )
        histories.append(hist)
        impressions.append(imp)
        news.append(read_news(folder / "news.tsv"))
    history = pl.concat(histories).unique(["user_id", "item_id"], keep="first", maintain_order=True)
    interactions = pl.concat([history, *impressions])
    items = pl.concat(news).unique("item_id", keep="first", maintain_order=True)
    coverage = _coverage(history, pl.concat(impressions), items)
    if min(coverage.values(), default=1.0) < 1.0:
        log.warning(
            "MIND %s: some behaviors news ids are not in news.tsv (resolved: %s); kept",
            root,
            ", ".join(f"{k} {v:.1%}" for k, v in coverage.items()),
        )
    meta = {
        "source": str(root),
        "format": "mind",
        "splits": [name for name, _ in splits] if multi else None,
        "coverage": coverage,
        "history_rows": history.height,
        "impression_rows": interactions.height - history.height,
    }
    return Dataset(
        interactions=conform(interactions, "interactions"),
        items=conform(items, "items"),
        meta=meta,
    )


def _split_dirs(root: Path) -> list[tuple[str, Path]]:
    if (root / "behaviors.tsv").exists() or (root / "news.tsv").exists():
        return [(root.name, root)]
    found = sorted(
        (d for d in root.iterdir() if d.is_dir() and (d / "behaviors.tsv").exists()),
        key=lambda d: (_split_rank(d.name), d.name),
    )
    if not found:
        raise DataFormatError(
            "no behaviors.tsv here or in a split folder (e.g. MINDsmall_train/)", path=root
        )
    return [(d.name, d) for d in found]


def _split_rank(name: str) -> int:
    """Train folders first (their history rows win the deduplication), then dev, then test."""
    low = name.lower()
    for rank, keys in enumerate((("train",), ("dev", "val"), ("test",))):
        if any(k in low for k in keys):
            return rank
    return 3


def _coverage(history: pl.DataFrame, impressions: pl.DataFrame, items: pl.DataFrame) -> dict:
    known = items["item_id"]
    out = {}
    for name, df in (("history_items", history), ("impression_items", impressions)):
        ids = df["item_id"].unique()
        out[name] = float(ids.is_in(known.implode()).mean()) if len(ids) else 1.0  # type: ignore[arg-type]
    return out


# --------------------------------------------------------------------------- reading


def read_tsv(path: Path, columns: tuple[str, ...]) -> pl.DataFrame:
    """Read a header-less TSV as string columns (empty field → null), vectorised.

    Each line must hold exactly ``len(columns)`` tab-separated fields; the first line
    that does not is reported with its 1-based number. Row ``i`` is line ``i + 1``.
    """
    text = decode_text(read_bytes(path))
    if text.endswith("\n"):
        text = text[:-1]
    lines = pl.Series("line", text.split("\n")).str.strip_chars_end("\r")
    n = len(columns)
    counts = (lines.str.count_matches("\t") + 1) * (lines != "").cast(pl.UInt32)
    bad = counts != n
    if bad.any():
        row = int(bad.arg_max())  # type: ignore[arg-type]
        raise DataFormatError(
            f"expected {n} tab-separated fields, found {counts[row]} "
            "(wrong separator or truncated line?)",
            path=path,
            line=row + 1,
        )
    fields = lines.str.split_exact("\t", n - 1).struct.rename_fields(list(columns))
    df = fields.struct.unnest()
    return df.with_columns(
        pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c)).alias(c)
        for c in columns
    )


def _fail_at(mask: pl.Series, path: Path, column: str, message: str, values: pl.Series) -> None:
    """Raise for the first ``True`` of ``mask`` (row i → line i + 1); ``{value}`` is filled."""
    if mask.any():
        row = int(mask.arg_max())  # type: ignore[arg-type]
        raise DataFormatError(
            message.format(value=values[row]), path=path, line=row + 1, column=column
        )


def read_behaviors(
    path: Path, columns: tuple[str, ...] = BEHAVIOR_COLUMNS
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse ``behaviors.tsv`` → (history rows, impression rows), both canonical-shaped.

    ``columns`` without ``Time`` (NeMig's 4-column layout) gives null impression times.
    """
    raw = read_tsv(path, columns)
    for col in ("ImpressionID", "UserID", "Time", "Impressions"):
        if col in columns:
            _fail_at(raw[col].is_null(), path, col, "empty field", raw[col])
    ids = raw["ImpressionID"].str.strip_chars()
    _fail_at(
        ids.cast(pl.Int64, strict=False).is_null(),
        path,
        "ImpressionID",
        "expected an integer impression id, found {value!r}",
        ids,
    )
    _fail_at(
        ids.is_duplicated() & ~ids.is_first_distinct(),
        path,
        "ImpressionID",
        "duplicate impression id {value!r}",
        ids,
    )
    if "Time" in columns:
        ts = _read_times(raw["Time"], path)
    else:
        ts = pl.Series("timestamp", [None] * raw.height, dtype=TIME)
    base = pl.DataFrame(
        {
            "row": pl.int_range(0, raw.height, eager=True, dtype=pl.UInt32),
            "user_id": raw["UserID"].str.strip_chars(),
            "impression_id": ids,
            "timestamp": ts,
            "History": raw["History"],
            "Impressions": raw["Impressions"],
        }
    )
    history = (
        base.select(
            "user_id",
            pl.col("History").str.strip_chars().str.split(" ").alias("item_id"),
        )
        .explode("item_id")
        .filter(pl.col("item_id").is_not_null() & (pl.col("item_id") != ""))
        .unique(["user_id", "item_id"], keep="first", maintain_order=True)
        .select(
            "user_id",
            "item_id",
            pl.lit(None, TIME).alias("timestamp"),
            pl.lit(1, pl.Int8).alias("label"),
            pl.lit(None, pl.String).alias("impression_id"),
        )
    )
    tokens = base.select(
        "row",
        "user_id",
        "impression_id",
        "timestamp",
        pl.col("Impressions").str.strip_chars().str.split(" ").alias("token"),
    ).explode("token")
    labelled = tokens["token"].str.contains("-", literal=True)
    if labelled.any():
        item = tokens["token"].str.extract(r"^(\S+)-(\S*)$", 1)
        label = tokens["token"].str.extract(r"^(\S+)-(\S*)$", 2)
        bad = item.is_null() | ~label.is_in(["0", "1"]).fill_null(False)
        if bad.any():
            i = int(bad.arg_max())  # type: ignore[arg-type]
            raise DataFormatError(
                f"expected NewsID-label with label 0 or 1, found {tokens['token'][i]!r}",
                path=path,
                line=int(tokens["row"][i]) + 1,
                column="Impressions",
            )
        labels = label.cast(pl.Int8)
    else:  # the MIND-large test set: bare news ids, no labels
        item = tokens["token"]
        bad = item == ""
        if bad.any():
            i = int(bad.arg_max())  # type: ignore[arg-type]
            raise DataFormatError(
                "empty news id (double space?)",
                path=path,
                line=int(tokens["row"][i]) + 1,
                column="Impressions",
            )
        labels = pl.Series([None] * tokens.height, dtype=pl.Int8)
    impressions = tokens.select(
        "user_id",
        item.alias("item_id"),
        "timestamp",
        labels.alias("label"),
        "impression_id",
    )
    return history, impressions


def _read_times(values: pl.Series, path: Path) -> pl.Series:
    ts = values.str.strip_chars().str.strptime(TIME, TIME_FORMAT, strict=False)
    _fail_at(
        ts.is_null(),
        path,
        "Time",
        "malformed time {value!r}; expected M/D/YYYY h:mm:ss AM/PM",
        values,
    )
    _fail_at(
        (ts < MIN_TIME) | (ts >= MAX_TIME),
        path,
        "Time",
        f"time {{value!r}} is outside {MIN_TIME:%Y}..{MAX_TIME:%Y}",
        values,
    )
    return ts


def read_news(path: Path) -> pl.DataFrame:
    """Parse ``news.tsv`` → items (see the module docstring for the columns)."""
    raw = read_tsv(path, NEWS_COLUMNS)
    ids = raw["NewsID"].str.strip_chars()
    _fail_at(ids.is_null(), path, "NewsID", "empty news id", ids)
    dup = ids.is_duplicated() & ~ids.is_first_distinct()
    if dup.any():
        row = int(dup.arg_max())  # type: ignore[arg-type]
        first = int((ids == ids[row]).arg_max())  # type: ignore[arg-type]
        raise DataFormatError(
            f"duplicate news id {ids[row]!r} (first on line {first + 1})",
            path=path,
            line=row + 1,
            column="NewsID",
        )
    entity_lists = [
        _decode_entities(raw[c], path, c) for c in ("TitleEntities", "AbstractEntities")
    ]
    long = (
        pl.DataFrame({"row": pl.int_range(0, raw.height, eager=True, dtype=pl.UInt32)})
        .with_columns(e=pl.concat_list(entity_lists))
        .explode("e")
        .unnest("e")
        .filter(pl.col("WikidataId").is_not_null())
        .unique(["row", "WikidataId"], keep="first", maintain_order=True)
        .group_by("row", maintain_order=True)
        .agg(
            pl.col("WikidataId").alias("entities"),
            pl.col("Label").alias("entity_labels"),
            pl.col("Type").alias("entity_types"),
        )
    )
    empty = pl.lit([], pl.List(pl.String))
    items = (
        raw.with_row_index("row")
        .with_columns(pl.col("row").cast(pl.UInt32))
        .join(long, on="row", how="left")
        .sort("row")
        .select(
            ids.alias("item_id"),
            pl.col("Title").alias("title"),
            pl.col("Abstract").alias("abstract"),
            pl.concat_str(["Title", "Abstract"], separator="\n\n", ignore_nulls=True).alias("text"),
            pl.col("Category").alias("category"),
            pl.col("SubCategory").alias("subcategory"),
            pl.col("URL").alias("url"),
            *(pl.col(c).fill_null(empty) for c in ("entities", "entity_labels", "entity_types")),
        )
    )
    return items


def _decode_entities(values: pl.Series, path: Path, column: str) -> pl.Series:
    """Decode a JSON entity column (null/empty → []); a malformed row names its line."""
    try:
        decoded = values.str.json_decode(ENTITY_DTYPE)
    except pl.exceptions.PolarsError:
        decoded = None
    if decoded is None or (decoded.is_null() & values.is_not_null()).any():
        _raise_bad_json(values, path, column)
    return decoded.fill_null(pl.lit([], ENTITY_DTYPE))  # type: ignore[union-attr]


def _raise_bad_json(values: pl.Series, path: Path, column: str) -> None:
    """Error path only: find the first malformed entity list row by row."""
    import json

    for row, text in enumerate(values):
        if text is None:
            continue
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise DataFormatError(
                f"malformed entity JSON ({exc}): {text[:60]!r}",
                path=path,
                line=row + 1,
                column=column,
            ) from exc
        ok = isinstance(parsed, list) and all(
            isinstance(e, dict)
            and all(isinstance(e.get(k), str | None) for k in ("Label", "Type", "WikidataId"))
            for e in parsed
        )
        if not ok:
            raise DataFormatError(
                "expected a JSON list of objects with string Label/Type/WikidataId, "
                f"found {text[:60]!r}",
                path=path,
                line=row + 1,
                column=column,
            )
    raise DataFormatError("could not decode the entity JSON", path=path, column=column)
