"""Sessions, co-click counts and the stage-1 co-engagement tables on Spark.

Each function gives the rows of the in-process version it mirrors
(:func:`knowrec.data.protocol.sessionize`, :func:`knowrec.similarity.coclick.coclick_counts`,
:meth:`knowrec.ranking.features.CoEngagementFeatures.fit`), built from Spark DataFrame
operations only (no Python UDF, nothing collected but one timestamp).

Conventions where Spark and polars differ by nature:

- Results are unordered DataFrames (sort them when the order matters).
- Timestamps are wall-clock times read in the session time zone, which knowrec fixes to
  UTC (:func:`knowrec.spark.spark_session`); ``now`` is a naive :class:`datetime`.
- Rules are strings (``"rating >= 4"``, ``"all"``, None); a polars expression cannot run
  on Spark.
- Session and item counts of the items table are 64-bit integers (polars counts distinct
  values as ``UInt32``); the features computed from them are the same.
- Of items with the same timestamp at the ``max_session_items`` cut of a long session,
  the smaller item ids are kept (as in :func:`~knowrec.similarity.coclick.coclick_counts`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from knowrec.data.protocol import IMPLICIT, is_implicit, parse_rule
from knowrec.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

_DAY_US = 86_400_000_000


def _require(frame: DataFrame, columns: Sequence[str], message: str) -> None:
    for col in columns:
        if col not in frame.columns:
            raise ConfigError(message.format(col=col, have=frame.columns))


def _time_type(frame: DataFrame, what: str) -> DataType:
    """The Spark type of ``frame.timestamp``: a timestamp (with or without time zone)."""
    from pyspark.sql.types import TimestampNTZType, TimestampType

    dtype = frame.schema["timestamp"].dataType
    if not isinstance(dtype, TimestampType | TimestampNTZType):
        raise ConfigError(f"{what}: 'timestamp' must be a timestamp column, got {dtype}")
    return dtype


def _at(value: datetime, dtype: DataType) -> Column:
    """``value`` as a literal of the timestamp type ``dtype``, read in the session time zone
    like the column's own values (``F.lit(datetime)`` would use the Python process's)."""
    from pyspark.sql import functions as F

    if value.tzinfo is not None:
        raise ConfigError(f"now must be a naive datetime (wall-clock time), got {value!r}")
    return F.lit(value.isoformat(sep=" ")).cast(dtype)


def _within(time: Column, ref: Column, days: int) -> Column:
    """1 when ``time >= ref - days`` (as the polars code compares), else 0."""
    from pyspark.sql import functions as F

    recent = F.timestamp_diff("MICROSECOND", time, ref) <= days * _DAY_US
    return F.when(recent, 1).otherwise(0)


# ---------------------------------------------------------------------------- rules


def _check_rule(rule: object) -> None:
    if rule is not None and not isinstance(rule, str):
        raise ConfigError(
            f"on Spark a label rule must be a string such as 'rating >= 4' or {IMPLICIT!r}, "
            f"got {type(rule).__name__} (a polars expression cannot run on Spark)"
        )


def label_column(rule: str | None, frame: DataFrame) -> Column:
    """The label of each row as a tinyint column, as :func:`knowrec.data.protocol.label_expr`:
    ``"<column> <op> <number>"``, ``"all"`` (every row 1) or None (``label == 1`` when the
    frame has a ``label`` column, else ``rating > 3``)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType

    _check_rule(rule)
    if rule is None:
        rule = "label == 1" if "label" in frame.columns else "rating > 3"
    if is_implicit(rule):
        return F.lit(1).cast("tinyint")
    column, compare, number = parse_rule(rule, frame.columns)
    dtype = frame.schema[column].dataType
    if isinstance(dtype, BooleanType):
        value = F.col(column).cast("int")
    elif isinstance(dtype, NumericType):
        value = F.col(column)
    else:
        raise ConfigError(f"label rule {rule!r}: the column {column!r} is {dtype}, not numeric")
    return compare(value, F.lit(number)).cast("tinyint")


def _satisfied_flag(frame: DataFrame, rule: str | None) -> Column | None:
    """Whether a row is a satisfied engagement; None when every row is (``rule`` None or
    ``"all"``, as :func:`knowrec.similarity.coclick.satisfied`)."""
    _check_rule(rule)
    if rule is None or is_implicit(rule):
        return None
    return label_column(rule, frame) == 1


def satisfied_spark(inter: DataFrame, rule: str | None) -> DataFrame:
    """The rows that count as satisfied engagement (:func:`~knowrec.similarity.coclick.
    satisfied`: all rows when ``rule`` is None or ``"all"``)."""
    flag = _satisfied_flag(inter, rule)
    return inter if flag is None else inter.filter(flag)


# ------------------------------------------------------------------------- sessions


def sessionize_spark(inter: DataFrame, gap_minutes: float = 30.0, min_clicks: int = 2) -> DataFrame:
    """Sessions as :func:`knowrec.data.protocol.sessionize`: a user's interactions separated
    by less than ``gap_minutes`` of inactivity, ``session_id`` = ``"<user_id>:<k>"`` (k from 0
    in time order), sessions with fewer than ``min_clicks`` rows dropped.

    Rows with equal timestamps always share a session, so the ids do not depend on how ties
    are ordered. A null timestamp fails the job when it runs (polars refuses it up front).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if gap_minutes <= 0 or min_clicks < 1:
        raise ConfigError("sessionize: need gap_minutes > 0 and min_clicks >= 1")
    _require(inter, ("user_id", "timestamp"), "sessionize needs the column(s) {col}; have {have}")
    _time_type(inter, "sessionize")
    gap_us = timedelta(minutes=gap_minutes) // timedelta(microseconds=1)
    ts = F.col("timestamp")
    checked = inter.withColumn(
        "timestamp",
        F.when(
            ts.isNull(),
            F.raise_error(F.lit("sessionize: interactions without a timestamp; drop them first")),
        ).otherwise(ts),
    )
    by_user = Window.partitionBy("user_id").orderBy("timestamp")
    prev = F.lag("timestamp").over(by_user)
    new = F.when(prev.isNull() | (F.timestamp_diff("MICROSECOND", prev, ts) >= gap_us), 1)
    upto = by_user.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    k = F.sum(new.otherwise(0)).over(upto) - 1
    # partitioned by (user, k): the shuffle by user already groups it
    size = F.count(F.lit(1)).over(Window.partitionBy("user_id", "__k"))
    return (
        checked.withColumn("__k", k)
        .withColumn(
            "session_id", F.concat(F.col("user_id").cast("string"), F.lit(":"), F.col("__k"))
        )
        .withColumn("__size", size)
        .filter(F.col("__size") >= min_clicks)
        .drop("__k", "__size")
    )


# ------------------------------------------------------------------------ co-clicks


def coclick_counts_spark(
    inter: DataFrame,
    *,
    rule: str | None = None,
    session_col: str = "session_id",
    max_session_items: int = 50,
    windows_days: Sequence[int] = (),
    now: datetime | None = None,
    min_count: int = 1,
) -> DataFrame:
    """Symmetric co-click counts ``(item_a, item_b, count[, count_<d>d …, last_time])`` as
    :func:`knowrec.similarity.coclick.coclick_counts`: satisfied rows only, an item once per
    session (its latest engagement), a session's most recent ``max_session_items`` items,
    windows of sessions whose last engagement is within ``d`` days before ``now`` (default:
    the latest satisfied timestamp), both orders, pairs with ``count >= min_count``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    _require(
        inter, (session_col, "item_id"), "co-click counts need the column {col!r}; have {have}"
    )
    if max_session_items < 2:
        raise ConfigError("max_session_items must be at least 2")
    rows = satisfied_spark(inter, rule).filter(F.col(session_col).isNotNull())
    s, has_time = session_col, "timestamp" in rows.columns
    if windows_days and not has_time:
        raise ConfigError("time windows need a timestamp column")
    if has_time:
        dtype = _time_type(rows, "co-click counts")
        ts = F.col("timestamp")
        # the latest engagement of each (session, item); polars sorts a null time first
        latest = F.when(F.bool_or(ts.isNull()), F.lit(None)).otherwise(F.max(ts))
        per = rows.groupBy(s, "item_id").agg(latest.alias("__t"), F.max(ts).alias("__max"))
        recent_first = [F.col("__t").desc_nulls_first(), F.col("item_id")]
    else:
        per = rows.select(s, "item_id").distinct()
        recent_first = [F.col("item_id")]
    rank = F.row_number().over(Window.partitionBy(s).orderBy(*recent_first))
    kept = per.withColumn("__n", rank).filter(F.col("__n") <= max_session_items)
    right = kept.select(s, F.col("item_id").alias("item_b"))
    carried: list[str] = []  # the session's last engagement and its window flags
    if has_time:
        kept = kept.withColumn("__end", F.max("__t").over(Window.partitionBy(s)))
        carried.append("__end")
        if windows_days:
            if now is not None:
                ref = _at(now, dtype)
            else:  # the latest satisfied time, from the shuffled rows (no second scan)
                top = per.agg(F.max("__max").alias("__ref"))
                kept, ref = kept.crossJoin(F.broadcast(top)), F.col("__ref")
            for d in windows_days:
                kept = kept.withColumn(f"__w{d}", _within(F.col("__end"), ref, d))
                carried.append(f"__w{d}")
    left = kept.select(s, F.col("item_id").alias("item_a"), *carried)
    pairs = left.join(right, on=s).filter(F.col("item_a") != F.col("item_b"))
    aggs = [F.count(F.lit(1)).alias("count")]
    aggs += [F.sum(f"__w{d}").cast("long").alias(f"count_{d}d") for d in windows_days]
    if has_time:
        aggs.append(F.max("__end").alias("last_time"))
    counts = pairs.groupBy("item_a", "item_b").agg(*aggs)
    return counts.filter(F.col("count") >= min_count)


# ---------------------------------------------------------------- stage-1 features


def _fit_tables(
    history: DataFrame,
    *,
    rule: str | None,
    windows_days: Sequence[int],
    session_col: str,
    max_session_items: int,
    now: datetime | None,
) -> tuple[DataFrame, DataFrame, datetime]:
    """The pairs and items tables and the ``now`` they count up to (one small job: the
    latest timestamp)."""
    from pyspark.sql import functions as F

    s, windows = session_col, tuple(int(d) for d in windows_days)
    _require(
        history,
        (s, "item_id", "timestamp"),
        "co-engagement features need {col!r}; have {have}",
    )
    dtype = _time_type(history, "co-engagement features")
    sat_flag = _satisfied_flag(history, rule)
    rows = history.filter(F.col(s).isNotNull())
    latest = rows.agg(F.max("timestamp").cast("timestamp_ntz")).first()[0]  # type: ignore[index]
    if latest is None:
        raise ConfigError("co-engagement features: the history has no session rows")
    ref = now or latest
    if now is not None and latest >= now:
        rows = rows.filter(F.col("timestamp") < _at(now, dtype))
    opts = {"session_col": s, "max_session_items": max_session_items}
    sat = coclick_counts_spark(rows, rule=rule, windows_days=windows, now=ref, **opts)
    sat = sat.withColumnsRenamed(
        {"count": "cc_sat", **{f"count_{d}d": f"cc_sat_{d}d" for d in windows}}
    )
    if rule is None:
        pairs = sat.withColumn("cc_all", F.col("cc_sat"))
    elif is_implicit(rule):  # every engagement is satisfied: the same counts, in fit's order
        pairs = sat.select("item_a", "item_b", F.col("cc_sat").alias("cc_all"), *sat.columns[2:])
    else:
        every = coclick_counts_spark(rows, rule=None, **opts)
        every = every.select("item_a", "item_b", F.col("count").alias("cc_all"))
        pairs = every.join(sat, on=["item_a", "item_b"], how="left")
    pairs = pairs.withColumnsRenamed({"item_a": "trigger_id", "item_b": "item_id"})

    # items: one row per (item, session) first, then sums (no count-distinct)
    ts, now_at = F.col("timestamp"), _at(ref, dtype)
    good = F.lit(True) if sat_flag is None else sat_flag
    per = rows.groupBy("item_id", s).agg(
        F.min(ts).alias("__first"),
        F.max(ts).alias("__last"),
        F.max(F.when(good, 1).otherwise(0)).alias("__sat"),
        *(
            F.max(F.when(good, _within(ts, now_at, d)).otherwise(0)).alias(f"__w{d}")
            for d in windows
        ),
    )
    items = per.groupBy("item_id").agg(
        F.count(F.lit(1)).alias("pop"),
        F.min("__first").alias("first"),
        F.max("__last").alias("last"),
        F.sum("__sat").cast("long").alias("sat_pop"),
        *(F.sum(f"__w{d}").cast("long").alias(f"pop_{d}d") for d in windows),
    )
    items = items.withColumn("item_id", F.col("item_id").cast("string"))
    return pairs, items, ref


def coengagement_tables_spark(
    history: DataFrame,
    *,
    rule: str | None = None,
    windows_days: Sequence[int] = (7, 30, 180),
    session_col: str = "session_id",
    max_session_items: int = 50,
    now: datetime | None = None,
) -> tuple[DataFrame, DataFrame]:
    """The ``pairs`` (``trigger_id, item_id``, ``cc_sat``, ``cc_sat_<d>d`` …, ``last_time``,
    ``cc_all``) and ``items`` (``item_id, pop, first, last, sat_pop, pop_<d>d`` …) tables
    that :meth:`CoEngagementFeatures.fit(history, now) <knowrec.ranking.features.
    CoEngagementFeatures.fit>` counts, with its column order, over the sessions before
    ``now`` (default: the latest timestamp)."""
    pairs, items, _ = _fit_tables(
        history,
        rule=rule,
        windows_days=windows_days,
        session_col=session_col,
        max_session_items=max_session_items,
        now=now,
    )
    return pairs, items


def _naive_times(frame: DataFrame) -> DataFrame:
    """Session-time-zone timestamps as wall-clock ones: Parquet then holds naive
    microsecond times, which polars reads as the in-process tables' ``Datetime("us")``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    return frame.select(
        *(
            F.col(f.name).cast("timestamp_ntz") if isinstance(f.dataType, TimestampType) else f.name
            for f in frame.schema.fields
        )
    )


def fit_coengagement_features_spark(
    history: DataFrame,
    directory: str | Path,
    *,
    rule: str | None = None,
    windows_days: Sequence[int] = (7, 30, 180),
    session_col: str = "session_id",
    max_session_items: int = 50,
    now: datetime | None = None,
) -> Path:
    """Count the co-engagement tables on Spark and save them where
    :meth:`CoEngagementFeatures.load <knowrec.ranking.features.CoEngagementFeatures.load>`
    reads them: ``pairs.parquet`` and ``items.parquet`` as Spark writes them (directories
    of part files, written in parallel by the executors; ``load`` reads a directory's parts
    as one table, so nothing passes through a single task or the driver) and
    ``features.json`` (the settings and ``now``). ``directory`` is a local or shared path."""
    from knowrec.ranking.features import CoEngagementFeatures  # LightGBM comes with ranking

    feats = CoEngagementFeatures(
        rule=rule,
        windows_days=windows_days,
        session_col=session_col,
        max_session_items=max_session_items,
    )
    pairs, items, feats.now = _fit_tables(
        history,
        rule=rule,
        windows_days=feats.windows_days,
        session_col=session_col,
        max_session_items=max_session_items,
        now=now,
    )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    _naive_times(pairs).write.mode("overwrite").parquet(str(out / "pairs.parquet"))
    _naive_times(items).write.mode("overwrite").parquet(str(out / "items.parquet"))
    (out / "features.json").write_text(json.dumps(feats.settings(), indent=2))
    return out
