"""Co-engagement: two items are co-clicked when one session engages with both.

:func:`coclick_counts` turns sessions into symmetric pair counts (overall and over recent
time windows), the cheapest and strongest item-to-item signal of Explore Further
(docs/explore.md: recall paths) and the stage-1 ranking features. Only *satisfied*
engagements count: a rule such as ``rating >= 4`` or ``dwell_time >= 30`` (see
:func:`knowrec.data.protocol.label_expr`), or ``"all"`` for implicit feedback (a click log
without ratings: every click counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from knowrec.data.protocol import is_implicit, label_expr
from knowrec.errors import ConfigError


def satisfied(inter: pl.DataFrame, rule: str | pl.Expr | None) -> pl.DataFrame:
    """The rows that count as satisfied engagement (all rows when ``rule`` is None or
    ``"all"``)."""
    if rule is None or is_implicit(rule):
        return inter
    return inter.filter(label_expr(rule, inter) == 1)


def coclick_counts(
    inter: pl.DataFrame,
    *,
    rule: str | pl.Expr | None = None,
    session_col: str = "session_id",
    max_session_items: int = 50,
    windows_days: Sequence[int] = (),
    now: datetime | None = None,
    min_count: int = 1,
) -> pl.DataFrame:
    """Symmetric co-click counts ``(item_a, item_b, count[, count_<d>d …, last_time])``.

    An item counts once per session. Sessions longer than ``max_session_items`` keep
    their most recent items (bounding the pair explosion; equal times: smaller item ids).
    ``windows_days`` adds counts of sessions whose last engagement is within ``d`` days
    before ``now`` (default: the latest timestamp). ``item_a != item_b``; both orders are
    present.
    """
    for col in (session_col, "item_id"):
        if col not in inter.columns:
            raise ConfigError(f"co-click counts need the column {col!r}; have {inter.columns}")
    if max_session_items < 2:
        raise ConfigError("max_session_items must be at least 2")
    rows = satisfied(inter, rule).filter(pl.col(session_col).is_not_null())
    has_time = "timestamp" in rows.columns
    # Latest first; equal times: the smaller item id (a total order, so the cap is exact).
    order = [session_col, "timestamp", "item_id"] if has_time else [session_col, "item_id"]
    per = (
        rows.sort(order, descending=[False, True, False] if has_time else [False, False])
        .unique([session_col, "item_id"], keep="first", maintain_order=True)
        .filter(pl.int_range(pl.len()).over(session_col) < max_session_items)
    )
    if has_time:
        per = per.with_columns(__end=pl.col("timestamp").max().over(session_col))
    left = per.select(session_col, item_a="item_id", **({"__end": "__end"} if has_time else {}))
    right = per.select(session_col, item_b="item_id")
    pairs = left.join(right, on=session_col).filter(pl.col("item_a") != pl.col("item_b"))
    aggs = [pl.len().cast(pl.Int64).alias("count")]
    if has_time:
        ref = now or rows["timestamp"].max()
        for d in windows_days:
            recent = pl.col("__end") >= pl.lit(ref - timedelta(days=d))
            aggs.append(recent.sum().cast(pl.Int64).alias(f"count_{d}d"))
        aggs.append(pl.col("__end").max().alias("last_time"))
    elif windows_days:
        raise ConfigError("time windows need a timestamp column")
    counts = pairs.group_by("item_a", "item_b").agg(aggs)
    return counts.filter(pl.col("count") >= min_count).sort(
        ["item_a", "count", "item_b"], descending=[False, True, False]
    )


def top_coclicked(counts: pl.DataFrame, k: int = 30) -> pl.DataFrame:
    """The ``k`` most co-clicked items per ``item_a`` (ties by item id)."""
    ordered = counts.sort(["item_a", "count", "item_b"], descending=[False, True, False])
    return ordered.filter(pl.int_range(pl.len()).over("item_a") < k)
