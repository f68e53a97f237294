"""HKNR's evaluation protocol on news logs (MIND layout: click histories + impressions).

Users are split at random into train / valid / test (8:1:1 by default). A user's clicks
outside impressions are their *history*; every candidate shown in one of their impressions
is a *sample* (label 1 clicked, 0 shown and not clicked). A sample may only see history
clicks earlier than its impression. Logs without timestamps (NeMig) have none to compare:
there the history (fixed before the study's impressions) is all earlier, its order is the
log's order, and the clicked article's publication date stands in for the click time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl

from knowrec.data.protocol import split_users
from knowrec.data.tables import Dataset
from knowrec.errors import DataFormatError


@dataclass
class NewsProtocol:
    """``history``: ``user_id``, ``item_id``, ``time`` (click time, else the article's
    publication time, else null) and ``pos`` (0 = the user's oldest click); ``samples``:
    per part, ``impression_id``, ``user_id``, ``item_id``, ``label``, ``time`` (the
    impression's time, null when the log has none)."""

    history: pl.DataFrame
    samples: dict[str, pl.DataFrame]

    def describe(self) -> str:
        sizes = ", ".join(
            f"{name} {frame['impression_id'].n_unique():,} impressions"
            for name, frame in self.samples.items()
        )
        timed = self.samples["train"]["time"].null_count() == 0
        clock = (
            "impression times (history clicks strictly earlier)"
            if timed
            else "no impression times: the whole history precedes every impression, in log "
            "order, with article publication dates as click times"
        )
        return f"users split at random into {sizes}; {clock}"


def make_news_protocol(
    data: Dataset, split: Sequence[float] = (0.8, 0.1, 0.1), *, seed: int = 0
) -> NewsProtocol:
    """History and samples (see the module docstring) of a news data set."""
    inter = data.interactions
    for col in ("impression_id", "label"):
        if col not in inter.columns:
            raise DataFormatError(f"a news log needs a {col!r} column (impressions)")
    published = (
        data.items.select("item_id", published=pl.col("published").cast(pl.Datetime("ms")))
        if "published" in data.items.columns
        else data.items.select("item_id", published=pl.lit(None, pl.Datetime("ms")))
    )
    clicks = inter.filter(pl.col("impression_id").is_null() & (pl.col("label") != 0))
    history = (
        clicks.with_row_index("__row")
        .join(published, on="item_id", how="left")
        .with_columns(time=pl.coalesce("timestamp", "published"))
        .sort(["user_id", "timestamp", "__row"], nulls_last=True)
        .with_columns(pos=pl.int_range(pl.len()).over("user_id").cast(pl.Int32))
        .select("user_id", "item_id", "time", "pos")
    )
    shown = inter.filter(pl.col("impression_id").is_not_null()).select(
        "impression_id", "user_id", "item_id", pl.col("label").cast(pl.Int8), time="timestamp"
    )
    if shown.is_empty():
        raise DataFormatError("the log has no impressions: HKNR needs shown candidates")
    return NewsProtocol(history, split_users(shown, split, seed=seed))


def all_clicks(proto: NewsProtocol) -> pl.DataFrame:
    """``item_id``, ``time`` of every click a query may count towards popularity: the
    history and the training impressions' clicks (filter by time before use)."""
    train = proto.samples["train"].filter(pl.col("label") == 1)
    return pl.concat([proto.history.select("item_id", "time"), train.select("item_id", "time")])


POPULAR_HOURS = 48.0  # the window of "recently popular"


def most_clicked(clicks: pl.DataFrame, at: Any, k: int) -> pl.DataFrame:
    """``item_id``, ``n``: the ``k`` articles most clicked in ``clicks`` (``item_id``,
    ``time``) in the ``POPULAR_HOURS`` before ``at`` (all of them when ``at`` is None)."""
    if at is not None:
        since = at - timedelta(hours=POPULAR_HOURS)
        clicks = clicks.filter((pl.col("time") >= since) & (pl.col("time") < at))
    top = clicks.group_by("item_id").agg(n=pl.len())
    return top.sort(["n", "item_id"], descending=True).head(k)


def published_times(items: pl.DataFrame) -> dict[str, Any] | None:
    """Article → publication time, where the data set has them (else None)."""
    if "published" not in items.columns or items["published"].null_count() == items.height:
        return None
    rows = items.select("item_id", pl.col("published").cast(pl.Datetime("ms"))).drop_nulls()
    return dict(zip(rows["item_id"], rows["published"], strict=True))


def history_before(history: pl.DataFrame, queries: pl.DataFrame) -> pl.DataFrame:
    """For each query (``user_id``, ``time``), the user's history clicks strictly before
    ``time``: all of them when ``time`` is null, and every click without a time (a log
    such as MIND gives none to its histories, which precede the impressions)."""
    joined = queries.join(history, on="user_id", how="inner", suffix="_click")
    return joined.filter(before(pl.col("time_click"), pl.col("time")))


def before(click: pl.Expr, at: pl.Expr) -> pl.Expr:
    """Whether a history click at ``click`` may be seen at ``at`` (null: no time)."""
    return at.is_null() | click.is_null() | (click < at)


def click_prior(
    train: pl.DataFrame, frame: pl.DataFrame, *, strength: float = 5.0, own: bool = False
) -> pl.Series:
    """Each row's smoothed log-odds that its article is clicked when shown, counted over the
    training impressions that precede the row's impression: ``(c + k·m) / (n + k)`` with
    ``c`` clicks in ``n`` showings, ``m`` the mean training click rate and ``k =
    strength``. Logs without times count every training impression; ``own=True`` (the
    rows of ``train`` itself) then leaves the row's own label out. With times, a row sees
    only impressions strictly earlier than its own."""
    mean = float(train["label"].mean() or 0.0)
    counts = train.group_by("item_id", "time").agg(c=pl.col("label").sum(), n=pl.len())
    if frame["time"].null_count() == frame.height:
        totals = counts.group_by("item_id").agg(pl.col("c").sum(), pl.col("n").sum())
        rows = frame.join(totals, on="item_id", how="left", maintain_order="left")
        c, n = pl.col("c").fill_null(0), pl.col("n").fill_null(0)
        if own:
            c, n = c - pl.col("label"), n - 1
    else:
        running = counts.sort("item_id", "time").with_columns(
            pl.col("c").cum_sum().over("item_id"), pl.col("n").cum_sum().over("item_id")
        )
        rows = (
            frame.with_row_index("__row")
            .sort("time")
            .join_asof(
                running.sort("time"),
                on="time",
                by="item_id",
                strategy="backward",
                allow_exact_matches=False,
                check_sortedness=False,  # sorted by time above; by-groups cannot be checked
            )
            .sort("__row")
        )
        c, n = pl.col("c").fill_null(0), pl.col("n").fill_null(0)
    rate = (c + strength * mean) / (n + strength)
    return rows.select((rate / (1 - rate)).log().alias("prior"))["prior"]
