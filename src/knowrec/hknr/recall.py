"""HKNR stage 1, semantic recall: a user vector from the frozen encoder's vectors of their
recent clicks, searched in an ANN index of every article.

The user vector is the time-decayed mean of the vectors of the last ``n_recent`` clicks,
``w_i ∝ exp(−Δt_i / T)`` with Δt in hours before the query time (``decay = "time"``), or
``w_i ∝ exp(−r_i / T)`` with r_i the click's rank from the most recent (``decay =
"position"``, for logs whose click times are unknown), L2-normalised. With
``multi_query > 0`` the most recent clicks are also searched on their own and every
list is merged by reciprocal-rank fusion, so one recent interest is not averaged away
and does not crowd out the rest either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field

from knowrec.config import Section
from knowrec.errors import ConfigError
from knowrec.hknr.protocol import history_before
from knowrec.retrieval.ann import AnnIndex

RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al. 2009)


class RecallSettings(Section):
    n_recent: int = Field(default=20, ge=1)
    decay: Literal["time", "position"] = "time"
    decay_hours: float = Field(default=24.0, gt=0)  # T for decay = "time"
    decay_clicks: float = Field(default=5.0, gt=0)  # T for decay = "position"
    multi_query: int = Field(default=2, ge=0)  # the most recent clicks searched on their own
    k: int = Field(default=100, ge=1)
    index: Literal["flat", "hnsw", "ivfpq"] = "ivfpq"
    dropout: float = Field(default=0.1, ge=0, lt=1)  # embedding dropout on training users
    # Logs with times: only articles published in the max_age_hours before the query (news
    # goes stale); never one published after it.
    max_age_hours: float | None = Field(default=None, gt=0)


def decay_weights(cfg: RecallSettings) -> pl.Expr:
    """The unnormalised weight of each click row (columns ``time`` of the query,
    ``time_click``, ``rank`` from the most recent, ``query``)."""
    if cfg.decay == "position":
        return (-pl.col("rank") / cfg.decay_clicks).exp()
    since_query = (pl.col("time") - pl.col("time_click")).dt.total_seconds() / 3600.0
    since_latest = (
        pl.col("time_click").max().over("query") - pl.col("time_click")
    ).dt.total_seconds() / 3600.0
    # Without a query time (NeMig) Δt counts from the user's latest click.
    age = pl.when(pl.col("time").is_null()).then(since_latest).otherwise(since_query)
    return (-age.fill_null(0.0).clip(0.0) / cfg.decay_hours).exp()


def user_queries(
    history: pl.DataFrame,
    queries: pl.DataFrame,
    index: AnnIndex,
    cfg: RecallSettings,
    *,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, list[np.ndarray], list[list[str]]]:
    """For each row of ``queries`` (``user_id``, ``time``): the decayed user vector, the
    vectors of its ``multi_query`` most recent clicks and the ids of all its clicks
    (excluded from its candidates). A query without history gets a zero vector (the
    caller's cold-start fallback). ``rng`` applies embedding dropout (training)."""
    if cfg.decay == "time" and history["time"].null_count() == history.height:
        raise ConfigError(
            "recall.decay = 'time' needs click or publication times; use decay = 'position'"
        )
    q = queries.select("user_id", "time").with_row_index("query")
    clicks = history_before(history, q).filter(pl.col("item_id").is_in(index.ids))
    clicks = clicks.sort("query", "pos", descending=[False, True]).with_columns(
        rank=pl.int_range(pl.len()).over("query")
    )
    seen = clicks.group_by("query", maintain_order=True).agg("item_id")
    recent = clicks.filter(pl.col("rank") < cfg.n_recent)
    recent = recent.with_columns(w=decay_weights(cfg))
    x = index.vectors_of(recent["item_id"].to_list())
    if rng is not None and cfg.dropout > 0:
        x = x * (rng.random(x.shape) >= cfg.dropout) / (1.0 - cfg.dropout)
    rows = recent["query"].to_numpy()
    users = np.zeros((q.height, index.dim), dtype=np.float32)
    np.add.at(users, rows, x * recent["w"].to_numpy()[:, None])
    norms = np.linalg.norm(users, axis=1, keepdims=True)
    users = np.where(norms > 0, users / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    latest: list[np.ndarray] = [np.zeros((0, index.dim), np.float32)] * q.height
    seen_ids: list[list[str]] = [[] for _ in range(q.height)]
    for row, items in zip(seen["query"].to_list(), seen["item_id"].to_list(), strict=True):
        seen_ids[row] = items
        latest[row] = index.vectors_of(items[: cfg.multi_query])
    return users, latest, seen_ids


def recall(
    history: pl.DataFrame,
    queries: pl.DataFrame,
    index: AnnIndex,
    cfg: RecallSettings,
    published: dict[str, Any] | None = None,
) -> pl.DataFrame:
    """Top-``k`` candidates per query row: ``query`` (row number), ``item_id``, ``score``
    (reciprocal-rank fusion of the user vector's list and each recent click's list),
    ``cosine`` (the best cosine among them), ``rank`` (1 = best) and ``found_by`` (the
    list where it ranked best: ``"profile"``, the decayed user vector, or the id of the
    recent click). Already clicked articles are left out; queries without history get no
    row. With ``published`` (article → publication time) and a query time, articles
    published after the query, or more than ``max_age_hours`` before it, are left out
    too."""
    users, latest, seen = user_queries(history, queries, index, cfg)
    want = cfg.k + max((len(s) for s in seen), default=0)
    times = queries["time"].to_list()
    if published and any(t is not None for t in times):
        want *= 10  # most articles fall outside the window: search deeper, then filter
    ids, scores = index.search(users, min(want, len(index)))
    owner = [r for r, vs in enumerate(latest) for _ in vs]
    e_ids: list[list[str]] = []
    if owner:
        e_ids, e_scores = index.search(np.concatenate(latest), min(want, len(index)))
    by_query: dict[int, list[int]] = {}
    for j, r in enumerate(owner):
        by_query.setdefault(r, []).append(j)
    rows = []
    for r in range(len(users)):
        if not seen[r]:
            continue
        lists = [("profile", ids[r], scores[r])] + [
            (seen[r][n], e_ids[j], e_scores[j]) for n, j in enumerate(by_query.get(r, []))
        ]
        fused: dict[str, float] = {}
        cosine: dict[str, float] = {}
        best: dict[str, tuple[int, str]] = {}
        skip = set(seen[r])
        fresh = _window(published, times[r], cfg.max_age_hours)
        for source, found, sc in lists:
            kept = [(i, c) for i, c in zip(found, sc, strict=False) if i not in skip and fresh(i)]
            for rank, (item, c) in enumerate(kept, start=1):
                fused[item] = fused.get(item, 0.0) + 1.0 / (RRF_K + rank)
                cosine[item] = max(cosine.get(item, -np.inf), float(c))
                if item not in best or rank < best[item][0]:
                    best[item] = (rank, source)
        top = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.k]
        rows += [
            (r, item, s, cosine[item], rank, best[item][1])
            for rank, (item, s) in enumerate(top, start=1)
        ]
    schema = {
        "query": pl.UInt32,
        "item_id": pl.String,
        "score": pl.Float64,
        "cosine": pl.Float64,
        "rank": pl.Int32,
        "found_by": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _window(
    published: dict[str, Any] | None, at: Any, max_age_hours: float | None
) -> Callable[[str], bool]:
    """Whether an article may be recalled at ``at``: published by then, and within
    ``max_age_hours`` (articles or queries without a time always pass)."""
    if not published or at is None:
        return lambda item: True
    oldest = at - timedelta(hours=max_age_hours) if max_age_hours else None

    def ok(item: str) -> bool:
        t = published.get(item)
        return t is None or (t <= at and (oldest is None or t >= oldest))

    return ok
