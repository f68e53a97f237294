"""Evaluation protocols: splits, sessions, CTR samples, negatives and the leakage guard.

Every function takes a canonical ``interactions`` table (see :mod:`knowrec.data.tables`)
and returns new tables; nothing is modified in place. Time order within a user is
``(timestamp, original row order)``, so equal timestamps keep the order of the input.

- :func:`split_users` — users split by ratio (TRAWL: 8:1:1 train/valid/test users).
- :func:`split_global_time` — one cut in time for everybody.
- :func:`split_last_n` — each user's last ``n`` interactions held out.
- :func:`sessionize` — sessions at an inactivity gap, short sessions dropped (HKNR).
- :func:`reserve_history` — the first ``n`` interactions of each user kept for history and
  profile building only (the KAR protocol's leakage guard).
- :func:`label_expr` — the label rule: ``"rating > 3"``-style, or ``"all"``
  (:data:`IMPLICIT`: implicit feedback, every logged interaction is a positive).
- :func:`ctr_samples` — labelled samples with the behaviour sequence of the last ``L``
  items strictly before each sample's time (with their ratings); under ``"all"`` with
  sampled negatives (:func:`with_negatives`).
- :func:`negatives_from_impressions`, :func:`sample_negatives` — (user, positive, negative)
  triplets from impression logs or from items seen in a time window around the click.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa

from knowrec.errors import ConfigError, DataFormatError

_ROW = "__row"
_OPS: dict[str, Callable] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_RULE = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


def _require(inter: pl.DataFrame, *columns: str, what: str) -> None:
    missing = [c for c in columns if c not in inter.columns]
    if missing:
        raise ConfigError(
            f"{what} needs the column(s) {', '.join(missing)}; the table has "
            f"{', '.join(inter.columns)}"
        )


def _timed(inter: pl.DataFrame, what: str) -> pl.DataFrame:
    """Refuse rows without a timestamp: a temporal protocol cannot place them."""
    _require(inter, "user_id", "timestamp", what=what)
    nulls = inter["timestamp"].null_count()
    if nulls:
        raise DataFormatError(
            f"{what}: {nulls:,} interactions have no timestamp; drop them first "
            "(e.g. interactions.drop_nulls('timestamp'))",
            column="timestamp",
        )
    return inter


def _in_time_order(inter: pl.DataFrame) -> pl.DataFrame:
    """Rows sorted by (user_id, timestamp, input order), with the input row index."""
    return inter.with_row_index(_ROW).sort(["user_id", "timestamp", _ROW])


# ---------------------------------------------------------------------------- splits


def split_users(
    inter: pl.DataFrame,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
    names: Sequence[str] = ("train", "valid", "test"),
) -> dict[str, pl.DataFrame]:
    """Split *users* (not rows) at random in ``ratios``; every user lands in one part.

    Users are shuffled from their sorted ids with ``numpy.random.default_rng(seed)``, so
    the split depends on the seed and the set of users only, not on row order.
    """
    _require(inter, "user_id", what="split_users")
    if len(ratios) != len(names) or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ConfigError(f"split_users: need one non-negative ratio per part, got {ratios}")
    users = np.sort(inter["user_id"].unique().to_numpy())
    order = np.random.default_rng(seed).permutation(len(users))
    fractions = np.cumsum(np.asarray(ratios, dtype=float)) / float(sum(ratios))
    bounds = np.round(fractions * len(users)).astype(int)
    part = np.searchsorted(bounds, np.arange(len(users)), side="right")
    assignment = pl.DataFrame(
        {"user_id": users[order], "__part": part.astype(np.int32)},
        schema_overrides={"user_id": pl.String},
    )
    tagged = inter.join(assignment, on="user_id", how="left", maintain_order="left")
    return {
        name: tagged.filter(pl.col("__part") == k).drop("__part") for k, name in enumerate(names)
    }


def split_global_time(inter: pl.DataFrame, cut: float | datetime) -> dict[str, pl.DataFrame]:
    """One cut in time: ``train`` = before the cut, ``test`` = at or after it.

    ``cut`` is a datetime, or a float in (0, 1): the quantile of the timestamps (0.8 puts
    about 80% of the interactions in ``train``).
    """
    _timed(inter, "split_global_time")
    if isinstance(cut, datetime):
        when = cut
    elif isinstance(cut, float | int) and 0 < cut < 1:
        when = inter["timestamp"].quantile(float(cut), interpolation="lower")
    else:
        raise ConfigError(f"split_global_time: cut must be a datetime or in (0, 1), got {cut!r}")
    before = pl.col("timestamp") < pl.lit(when, dtype=inter.schema["timestamp"])
    return {"train": inter.filter(before), "test": inter.filter(~before)}


def split_last_n(inter: pl.DataFrame, n: int = 1, *, valid_n: int = 0) -> dict[str, pl.DataFrame]:
    """Per user, the last ``n`` interactions → ``test``, the ``valid_n`` before them →
    ``valid``, the rest → ``train``. Users with fewer rows give up ``train`` first."""
    if n < 1 or valid_n < 0:
        raise ConfigError(f"split_last_n: need n >= 1 and valid_n >= 0, got {n}, {valid_n}")
    ordered = _in_time_order(_timed(inter, "split_last_n"))
    from_end = ordered.with_columns(
        __back=pl.int_range(pl.len(), 0, -1, dtype=pl.Int64).over("user_id")
    )
    parts = {
        "train": pl.col("__back") > n + valid_n,
        "valid": (pl.col("__back") > n) & (pl.col("__back") <= n + valid_n),
        "test": pl.col("__back") <= n,
    }
    out = {k: from_end.filter(e).sort(_ROW).drop(_ROW, "__back") for k, e in parts.items()}
    if not valid_n:
        del out["valid"]
    return out


def reserve_history(inter: pl.DataFrame, n_first: int = 5) -> dict[str, pl.DataFrame]:
    """The KAR leakage guard: each user's first ``n_first`` interactions (in time) form
    ``history`` — usable for behaviour sequences and user knowledge/profiles only — and
    the rest is ``rest``, from which samples are drawn. Users with ``n_first`` or fewer
    interactions contribute history only."""
    if n_first < 0:
        raise ConfigError(f"reserve_history: n_first must be >= 0, got {n_first}")
    ordered = _in_time_order(_timed(inter, "reserve_history"))
    rank = pl.int_range(pl.len(), dtype=pl.Int64).over("user_id")
    ordered = ordered.with_columns(__rank=rank)
    first = pl.col("__rank") < n_first
    return {
        "history": ordered.filter(first).sort(_ROW).drop(_ROW, "__rank"),
        "rest": ordered.filter(~first).sort(_ROW).drop(_ROW, "__rank"),
    }


def sessionize(inter: pl.DataFrame, gap_minutes: float = 30.0, min_clicks: int = 2) -> pl.DataFrame:
    """Sessions: a user's interactions separated by less than ``gap_minutes`` of
    inactivity. Sets ``session_id`` = ``"<user_id>:<k>"`` (k from 0 in time order) and
    drops sessions with fewer than ``min_clicks`` rows. Rows come back in time order."""
    if gap_minutes <= 0 or min_clicks < 1:
        raise ConfigError("sessionize: need gap_minutes > 0 and min_clicks >= 1")
    ordered = _in_time_order(_timed(inter, "sessionize"))
    gap = timedelta(minutes=gap_minutes)
    new = (pl.col("timestamp").diff().over("user_id") >= gap).fill_null(True)
    ordered = ordered.with_columns(__k=new.cast(pl.Int64).cum_sum().over("user_id") - 1)
    ordered = ordered.with_columns(
        session_id=pl.col("user_id") + ":" + pl.col("__k").cast(pl.String)
    )
    sizes = pl.len().over("session_id")
    return ordered.filter(sizes >= min_clicks).drop(_ROW, "__k")


# ----------------------------------------------------------------------- CTR samples


#: The implicit-feedback rule: every logged interaction is a positive ("every click
#: counts"), for logs without ratings or labels. Co-click counts and ClickNDCG then count
#: every click; CTR samples get sampled negatives (see :func:`ctr_samples`).
IMPLICIT = "all"


def is_implicit(rule: str | pl.Expr | None) -> bool:
    """Whether ``rule`` is the implicit-feedback rule :data:`IMPLICIT`."""
    return isinstance(rule, str) and rule.strip().lower() == IMPLICIT


def label_expr(rule: str | pl.Expr | None, inter: pl.DataFrame) -> pl.Expr:
    """The label of a sample as an Int8 expression.

    ``rule`` is a polars expression, a string ``"<column> <op> <number>"`` (e.g.
    ``"rating > 3"``, the TRAWL/KAR rule on MovieLens), ``"all"`` (implicit feedback:
    every row is a positive), or None: the ``label`` column when present, else
    ``rating > 3``.
    """
    if rule is None:
        rule = "label == 1" if "label" in inter.columns else "rating > 3"
    if is_implicit(rule):
        return pl.repeat(1, pl.len(), dtype=pl.Int8)
    if isinstance(rule, str):
        column, compare, number = parse_rule(rule, inter.columns)
        rule = compare(pl.col(column), number)
    return rule.cast(pl.Int8)


def parse_rule(rule: str, columns: Sequence[str]) -> tuple[str, Callable, float]:
    """``(column, compare, number)`` of a rule ``"<column> <op> <number>"`` whose column is
    one of ``columns`` (``compare`` is the operator's function, e.g. ``operator.gt``, for
    polars and Spark columns alike); a :class:`ConfigError` that shows the form otherwise."""
    match = _RULE.match(rule)
    if not match:
        raise ConfigError(
            f"label rule {rule!r}: expected '<column> <op> <number>', e.g. 'rating > 3', "
            f"or {IMPLICIT!r} (every interaction is a positive)"
        )
    column, op, number = match.groups()
    if column not in columns:
        raise ConfigError(
            f"label rule {rule!r} needs the column {column!r}; the table has "
            f"{', '.join(columns)}. A log without ratings or labels: use the rule "
            f"{IMPLICIT!r} (every click counts)"
        )
    return column, _OPS[op], float(number)


def with_negatives(
    samples: pl.DataFrame, timeline: pl.DataFrame, *, per_positive: int = 1, seed: int = 0
) -> pl.DataFrame:
    """Implicit feedback as CTR samples: every row of ``samples`` with ``label`` 1, each
    followed by up to ``per_positive`` copies with ``label`` 0 and another item: one drawn
    from ``timeline`` in proportion to its popularity that the user never interacted
    with (:func:`sample_negatives` over the whole log)."""
    _timed(timeline, "with_negatives")
    span = timeline["timestamp"].max() - timeline["timestamp"].min()  # type: ignore[operator]
    hours = span.total_seconds() / 3600 + 1  # type: ignore[union-attr]
    rows = samples.with_row_index(_ROW).with_columns(__neg=pl.lit(0, pl.Int64))
    drawn = sample_negatives(
        rows, timeline, window_hours=hours, per_positive=per_positive, seed=seed, carry=[_ROW]
    )
    picks = drawn.select(_ROW, "neg_item_id").with_columns(
        __neg=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(_ROW)
    )
    blank = [c for c in ("rating", "dwell_time") if c in rows.columns]  # not the negative's
    negatives = (
        rows.drop("__neg", "item_id")
        .join(picks, on=_ROW, how="inner")
        .rename({"neg_item_id": "item_id"})
        .with_columns(pl.lit(None, rows.schema[c]).alias(c) for c in blank)
        .select(rows.columns)
    )
    both = pl.concat([rows, negatives]).sort(_ROW, "__neg")
    return both.with_columns(label=(pl.col("__neg") == 0).cast(pl.Int8)).drop(_ROW, "__neg")


def _list_column(values: np.ndarray, offsets: np.ndarray, arrow_type: pa.DataType) -> pl.Series:
    arr = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, arrow_type))
    return pl.Series(arr)


def ctr_samples(
    samples: pl.DataFrame,
    timeline: pl.DataFrame | None = None,
    *,
    max_len: int = 10,
    label: str | pl.Expr | None = None,
    negatives: int = 1,
    seed: int = 0,
) -> pl.DataFrame:
    """CTR samples with behaviour sequences.

    With ``label="all"`` (implicit feedback) every row of ``samples`` is a positive and
    ``negatives`` sampled items per positive are added (:func:`with_negatives`, ``seed``).

    For every row of ``samples``: ``label`` (see :func:`label_expr`) and the sequence of
    the last ``max_len`` items of the same user in ``timeline`` (default: ``samples``)
    *strictly before* the sample's timestamp, oldest first, as ``hist_item_ids`` and —
    when ``timeline`` has ratings — ``hist_ratings``; ``hist_len`` is the length. Pass the
    user's whole timeline (reserved history included) as ``timeline`` and only the rows to
    predict as ``samples``. Rows keep the order of ``samples``.

    Vectorised: one sort of the timeline and a binary search per sample.
    """
    if max_len < 1:
        raise ConfigError(f"ctr_samples: max_len must be >= 1, got {max_len}")
    timeline = samples if timeline is None else timeline
    _timed(samples, "ctr_samples")
    _require(timeline, "user_id", "item_id", "timestamp", what="ctr_samples (timeline)")
    _timed(timeline, "ctr_samples (timeline)")
    if is_implicit(label):
        samples = with_negatives(samples, timeline, per_positive=negatives, seed=seed)
        label = "label == 1"
    line = _in_time_order(timeline)

    # Users and times become dense integer codes shared by both tables, so one sorted
    # composite key (user, time) serves the binary search.
    users = pl.concat([line["user_id"], samples["user_id"]]).unique().sort()
    user_code = {"user_id": users, "__u": pl.int_range(len(users), eager=True, dtype=pl.Int64)}
    codes = pl.DataFrame(user_code)
    times = pl.concat([line["timestamp"], samples["timestamp"]]).unique().sort()
    n_times = len(times) + 1

    def keys(frame: pl.DataFrame) -> np.ndarray:
        u = frame.join(codes, on="user_id", how="left", maintain_order="left")["__u"]
        t = times.search_sorted(frame["timestamp"], side="left")
        return u.to_numpy() * n_times + t.to_numpy().astype(np.int64)

    line_keys = keys(line)
    line_user = line_keys // n_times
    # first row of each sample's user (in `line`) and first row at/after its time
    sample_keys = keys(samples)
    end = np.searchsorted(line_keys, sample_keys, side="left")
    user_start = np.searchsorted(line_user, sample_keys // n_times, side="left")
    start = np.maximum(user_start, end - max_len)
    lengths = end - start
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])

    out = samples.with_columns(label=label_expr(label, samples))
    hist = {
        "hist_item_ids": _list_column(line["item_id"].to_numpy()[flat], offsets, pa.string()),
        "hist_len": pl.Series(lengths.astype(np.int32)),
    }
    if "rating" in line.columns:
        ratings = line["rating"].cast(pl.Float32).fill_null(float("nan")).to_numpy()[flat]
        hist["hist_ratings"] = _list_column(ratings, offsets, pa.float32())
    return out.with_columns(**hist)


# ------------------------------------------------------------------------- negatives


def negatives_from_impressions(
    inter: pl.DataFrame, *, per_positive: int = 1, seed: int = 0
) -> pl.DataFrame:
    """(user, impression, positive, negative) triplets: each clicked item of an impression
    against up to ``per_positive`` not-clicked items shown in the same impression, drawn
    without replacement. Impressions with no click or no non-click give none."""
    _require(inter, "user_id", "item_id", "impression_id", "label", what="impression negatives")
    shown = inter.filter(pl.col("impression_id").is_not_null() & pl.col("label").is_not_null())
    negs = shown.filter(pl.col("label") == 0).select("impression_id", neg_item_id="item_id")
    pos = shown.filter(pl.col("label") == 1).select(
        "user_id", "impression_id", pos_item_id="item_id", **_time_col(shown)
    )
    # each positive gets a fresh random order of its impression's negatives
    pairs = pos.with_row_index("__p").join(negs, on="impression_id", how="inner")
    rng = np.random.default_rng(seed)
    pairs = pairs.with_columns(__r=pl.Series(rng.random(pairs.height))).sort(["__p", "__r"])
    pairs = pairs.filter(pl.int_range(pl.len()).over("__p") < per_positive)
    return pairs.drop("__p", "__r")


def _codes(ids: pl.Series) -> np.ndarray:
    """Dense integer codes 0..n-1 of string ids (equal ids, equal codes)."""
    return (ids.rank("dense") - 1).to_numpy().astype(np.int64)


def _time_col(frame: pl.DataFrame) -> dict[str, pl.Expr]:
    return {"timestamp": pl.col("timestamp")} if "timestamp" in frame.columns else {}


def sample_negatives(
    positives: pl.DataFrame,
    pool: pl.DataFrame | None = None,
    *,
    window_hours: float = 48.0,
    per_positive: int = 1,
    seed: int = 0,
    max_tries: int = 8,
    carry: Sequence[str] = (),
) -> pl.DataFrame:
    """(user, positive, negative) triplets for logs without impressions: negatives are
    items of ``pool`` events (default: ``positives``) within ``window_hours`` of the click,
    drawn in proportion to their activity in that window (HKNR: "shown within 48 h"),
    never an item the user has interacted with in ``pool`` or ``positives``. A positive
    for which ``max_tries`` draws find nothing gets fewer negatives. ``carry``: columns of
    ``positives`` copied to their triplets. Triplets keep the order of the positives."""
    pool = positives if pool is None else pool
    _timed(positives, "sample_negatives")
    _timed(pool, "sample_negatives (pool)")
    _require(positives, "item_id", what="sample_negatives")
    if per_positive < 1 or window_hours <= 0:
        raise ConfigError("sample_negatives: need per_positive >= 1 and window_hours > 0")
    events = pool.select("item_id", "timestamp").sort("timestamp")
    ev_time = events["timestamp"].dt.epoch("ms").to_numpy()
    ev_item = events["item_id"].to_numpy()
    half = int(window_hours * 3_600_000)
    t = positives["timestamp"].dt.epoch("ms").to_numpy()
    lo = np.searchsorted(ev_time, t - half, side="left")
    hi = np.searchsorted(ev_time, t + half, side="right")

    # (user, item) pairs as integer keys: a draw is rejected when its key was seen
    seen = pl.concat([pool.select("user_id", "item_id"), positives.select("user_id", "item_id")])
    user_codes = _codes(seen["user_id"])
    item_codes = _codes(pl.concat([seen["item_id"], events["item_id"]]))
    n_items = int(item_codes.max()) + 1 if len(item_codes) else 1
    seen_keys = np.unique(user_codes * n_items + item_codes[: seen.height])
    ev_code = item_codes[seen.height :]
    pos_user = user_codes[pool.height :]

    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(positives.height), per_positive)
    negative = np.full(len(rows), -1, dtype=np.int64)
    todo = np.arange(len(rows))
    for _ in range(max_tries):
        todo = todo[(hi - lo)[rows[todo]] > 0]
        if not len(todo):
            break
        r = rows[todo]
        draw = lo[r] + (rng.random(len(todo)) * (hi - lo)[r]).astype(np.int64)
        keys = pos_user[r] * n_items + ev_code[draw]
        at = np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)
        ok = seen_keys[at] != keys
        negative[todo[ok]] = draw[ok]
        todo = todo[~ok]
    keep = negative >= 0
    base = positives.select("user_id", *carry, pos_item_id="item_id", timestamp="timestamp")
    return base[rows[keep]].with_columns(neg_item_id=pl.Series(ev_item[negative[keep]]))
