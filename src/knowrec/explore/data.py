"""Explore Further data preparation: sessions, temporal hold-out, held-out co-engagement
and click "impressions" for ranking (docs/explore.md).

The protocol on logs without impressions (e.g. ML-1M rating timestamps)::

    sessions = prepare_sessions(inter, gap_minutes=30)           # session_id per row
    parts = split_sessions(sessions, [0.7, 0.85])                 # fit | label | test
    truth = coengagement_pairs(parts["test"], rule="rating >= 4") # held-out co-engagement
    frame = click_impressions(parts["test"], candidates, rule="rating >= 4")

An *impression* is one (held-out session, trigger) pair: the trigger is an item engaged
with satisfaction in that session, its slate is the trigger's candidates, and a
candidate is *clicked* (relevance 100 in ClickNDCG) when the same session also has a
satisfied engagement with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

import numpy as np
import polars as pl

from knowrec.data.protocol import sessionize
from knowrec.errors import ConfigError
from knowrec.similarity.coclick import coclick_counts, satisfied

log = logging.getLogger(__name__)


def prepare_sessions(
    inter: pl.DataFrame,
    *,
    gap_minutes: float = 30.0,
    min_clicks: int = 2,
    resessionize: bool = False,
) -> pl.DataFrame:
    """Interactions with a ``session_id``: kept when the log has one (unless
    ``resessionize``), otherwise cut at ``gap_minutes`` of inactivity per user with
    sessions shorter than ``min_clicks`` dropped (:func:`knowrec.data.protocol.sessionize`)."""
    has = "session_id" in inter.columns and inter["session_id"].null_count() < inter.height
    if has and not resessionize:
        return inter.filter(pl.col("session_id").is_not_null())
    base = inter.drop("session_id") if "session_id" in inter.columns else inter
    return sessionize(base, gap_minutes=gap_minutes, min_clicks=min_clicks)


def split_sessions(
    sessions: pl.DataFrame,
    cuts: Sequence[float | datetime],
    *,
    names: Sequence[str] | None = None,
    session_col: str = "session_id",
) -> dict[str, pl.DataFrame]:
    """Whole sessions split in time at ``cuts`` (datetimes, or floats in (0, 1): quantiles
    of the session start times), ascending.

    Part 0 holds sessions that *end* before the first cut, part j sessions that start at or
    after cut j−1 and end before cut j, the last part sessions starting at or after the last
    cut; sessions that straddle a cut are dropped, so no part sees another's future.
    Default names: ``train, test`` for one cut, ``fit, label, test`` for two.
    """
    for col in (session_col, "timestamp"):
        if col not in sessions.columns:
            raise ConfigError(f"split_sessions needs the column {col!r}; have {sessions.columns}")
    if not cuts:
        raise ConfigError("split_sessions: need at least one cut")
    if names is None:
        names = {1: ("train", "test"), 2: ("fit", "label", "test")}.get(
            len(cuts), tuple(f"part{j}" for j in range(len(cuts) + 1))
        )
    if len(names) != len(cuts) + 1:
        raise ConfigError(f"split_sessions: {len(cuts)} cut(s) need {len(cuts) + 1} names")
    span = sessions.group_by(session_col).agg(
        start=pl.col("timestamp").min(), end=pl.col("timestamp").max()
    )
    when: list[datetime] = []
    for cut in cuts:
        if isinstance(cut, datetime):
            when.append(cut)
        elif isinstance(cut, float | int) and 0 < cut < 1:
            when.append(span["start"].quantile(float(cut), interpolation="lower"))
        else:
            raise ConfigError(f"split_sessions: a cut must be a datetime or in (0, 1), got {cut!r}")
    if any(b <= a for a, b in pairwise(when)):
        raise ConfigError(f"split_sessions: cuts must increase, got {when}")
    bounds = [None, *when, None]
    dtype = sessions.schema["timestamp"]
    parts: dict[str, pl.DataFrame] = {}
    kept = 0
    for j, name in enumerate(names):
        lo, hi = bounds[j], bounds[j + 1]
        cond = pl.lit(True)
        if lo is not None:
            cond = cond & (pl.col("start") >= pl.lit(lo, dtype=dtype))
        if hi is not None:
            cond = cond & (pl.col("end") < pl.lit(hi, dtype=dtype))
        ids = span.filter(cond).select(session_col)
        parts[name] = sessions.join(ids, on=session_col, how="semi", maintain_order="left")
        kept += ids.height
    if kept < span.height:
        log.info(
            "split_sessions: %d of %d sessions straddle a cut, dropped",
            span.height - kept,
            span.height,
        )
    return parts


def coengagement_pairs(
    sessions: pl.DataFrame,
    *,
    rule: str | pl.Expr | None = None,
    max_session_items: int = 50,
    min_count: int = 1,
    session_col: str = "session_id",
) -> pl.DataFrame:
    """Co-engaged pairs ``(trigger_id, item_id, count)`` (both orders): the ground truth of
    recall evaluation on held-out sessions."""
    counts = coclick_counts(
        sessions,
        rule=rule,
        session_col=session_col,
        max_session_items=max_session_items,
        min_count=min_count,
    )
    return counts.select(trigger_id="item_a", item_id="item_b", count="count")


def click_impressions(
    sessions: pl.DataFrame,
    candidates: pl.DataFrame,
    *,
    rule: str | pl.Expr | None = None,
    max_triggers_per_session: int | None = 5,
    max_session_items: int = 50,
    require_click: bool = True,
    session_col: str = "session_id",
    seed: int = 0,
) -> pl.DataFrame:
    """Ranking samples: one group per (session, trigger), one row per candidate.

    ``candidates`` has ``trigger_id`` and ``item_id`` (plus any feature columns, kept),
    e.g. :func:`knowrec.retrieval.merge.candidate_frame`. Triggers are satisfied items of
    the session (its ``max_session_items`` latest, at most ``max_triggers_per_session``
    drawn at random with ``seed``). Adds ``group`` (int, contiguous per impression),
    ``session_id`` and ``clicked`` (Int8: the session also has a satisfied engagement with
    the candidate). ``require_click`` drops impressions without any click.
    """
    for col in ("trigger_id", "item_id"):
        if col not in candidates.columns:
            raise ConfigError(
                f"click_impressions: candidates need {col!r}; have {candidates.columns}"
            )
    if max_triggers_per_session is not None and max_triggers_per_session < 1:
        raise ConfigError("click_impressions: max_triggers_per_session must be positive")
    rows = satisfied(sessions, rule).filter(pl.col(session_col).is_not_null())
    order = [session_col, "timestamp"] if "timestamp" in rows.columns else [session_col]
    engaged = (
        rows.sort(order, descending=[False] + [True] * (len(order) - 1))
        .unique([session_col, "item_id"], keep="first", maintain_order=True)
        .filter(pl.int_range(pl.len()).over(session_col) < max_session_items)
        .select(pl.col(session_col).alias("session_id"), pl.col("item_id").cast(pl.String))
    )
    rng = np.random.default_rng(seed)
    triggers = engaged.with_columns(__r=pl.Series(rng.random(engaged.height)))
    if max_triggers_per_session is not None:
        triggers = triggers.filter(
            pl.col("__r").rank("ordinal").over("session_id") <= max_triggers_per_session
        )
    triggers = triggers.select("session_id", trigger_id="item_id")
    cands = candidates.with_columns(
        pl.col("trigger_id").cast(pl.String), pl.col("item_id").cast(pl.String)
    )
    frame = triggers.join(cands, on="trigger_id", how="inner", maintain_order="left_right")
    clicked = engaged.with_columns(clicked=pl.lit(1, dtype=pl.Int8))
    frame = frame.join(
        clicked, on=["session_id", "item_id"], how="left", maintain_order="left"
    ).with_columns(pl.col("clicked").fill_null(0))
    if require_click:
        frame = frame.filter(pl.col("clicked").max().over("session_id", "trigger_id") > 0)
    frame = frame.sort("session_id", "trigger_id", maintain_order=True)
    new = (pl.col("session_id") != pl.col("session_id").shift()) | (
        pl.col("trigger_id") != pl.col("trigger_id").shift()
    )
    return frame.with_columns(group=new.fill_null(True).cast(pl.Int64).cum_sum() - 1)
