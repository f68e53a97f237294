"""HKNR's measurements: the shown candidates of each test impression (every model), stage 1
alone, and the whole cascade (stage 1 → HKNR's ranking) against other candidate sources.

Stage 1 and the cascade are measured on the test impressions of users with history (a
cold user has no profile to recall from): each impression is a query at its time, its
clicked articles the targets. Three candidate sources give ``recall.k`` articles each,
the user's own history clicks left out: the semantic recall, the articles most clicked in
the ``POPULAR_HOURS`` before the query (all of the history when the log has no times) and
random articles. HR@K is the share of the targets among the candidates; the cascade's
HR@10 the share among the 10 the trained model ranks first out of them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import polars as pl

from knowrec.hknr.protocol import (
    NewsProtocol,
    all_clicks,
    click_prior,
    history_before,
    most_clicked,
)
from knowrec.hknr.recall import RecallSettings, recall
from knowrec.retrieval.ann import AnnIndex

SOURCES = ("semantic recall", "popular", "random")


def impression_metrics(y: np.ndarray, score: np.ndarray, group: np.ndarray) -> dict[str, float]:
    """Per-impression metrics averaged over impressions with a click (MIND's protocol).
    The rank metrics break ties at random (seeded): the log's candidate order carries
    the display position (on NeMig the first shown gets 38% of the clicks)."""
    from knowrec.metrics import gauc, mrr_at_k, ndcg_at_k

    rank = np.empty(len(score))
    rank[np.lexsort((np.random.default_rng(0).random(len(score)), score))] = np.arange(len(score))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "AUC": gauc(y, score, group),
            "MRR": mrr_at_k(y, rank, 10_000, group),
            "nDCG@5": ndcg_at_k(y, rank, 5, group),
            "nDCG@10": ndcg_at_k(y, rank, 10, group),
            "HitRate@1": mrr_at_k(y, rank, 1, group),
        }


def stage1(
    proto: NewsProtocol,
    index: AnnIndex,
    cfg: RecallSettings,
    published: dict[str, Any] | None = None,
    *,
    seed: int = 0,
) -> dict[str, pl.DataFrame]:
    """``queries`` (``query``, ``impression_id``, ``user_id``, ``time``) of the test
    impressions whose user has history, their ``targets`` (``query``, ``item_id``) and
    ``candidates`` (``query``, ``item_id``, ``source``). ``published``: the articles'
    publication times, for the recall's freshness window."""
    test = proto.samples["test"].filter(pl.col("item_id").is_in(index.ids))
    queries = test.select("impression_id", "user_id", "time").unique(
        "impression_id", maintain_order=True
    )
    found = recall(proto.history, queries, index, cfg, published)
    queries = queries.with_row_index("query").filter(
        pl.col("query").is_in(found["query"].unique().implode())
    )
    targets = test.filter(pl.col("label") == 1).join(queries, on=["impression_id", "user_id"])
    seen = history_before(proto.history, queries).group_by("query").agg(pl.col("item_id").unique())
    parts = [
        found.select("query", "item_id", source=pl.lit(SOURCES[0])),
        _popular(all_clicks(proto), queries, seen, cfg.k),
        _random(index.ids, queries, seen, cfg.k, seed),
    ]
    return {
        "queries": queries,
        "targets": targets.select("query", "item_id"),
        "candidates": pl.concat(parts),
    }


def _popular(
    history: pl.DataFrame, queries: pl.DataFrame, seen: pl.DataFrame, k: int
) -> pl.DataFrame:
    """The ``k`` articles most clicked (``history``: ``item_id``, ``time``) in the
    ``POPULAR_HOURS`` before each query hour."""
    hours = queries.select(hour=pl.col("time").dt.truncate("1h")).unique()
    windows = []
    for hour in hours["hour"].to_list():
        top = most_clicked(history, hour, k + 200)  # deep enough to drop the seen ones
        windows.append(top.with_columns(hour=pl.lit(hour, hours["hour"].dtype)))
    ranked = pl.concat(windows).with_columns(r=pl.int_range(pl.len()).over("hour"))
    rows = (
        queries.select("query", hour=pl.col("time").dt.truncate("1h"))
        .join(ranked, on="hour", how="inner", nulls_equal=True)
        .join(seen.explode("item_id"), on=["query", "item_id"], how="anti")
        .sort("query", "r")
    )
    return (
        rows.group_by("query", maintain_order=True)
        .head(k)
        .select("query", "item_id", source=pl.lit(SOURCES[1]))
    )


def _random(
    ids: list[str], queries: pl.DataFrame, seen: pl.DataFrame, k: int, seed: int
) -> pl.DataFrame:
    """``k`` articles drawn at random per query (seeded), history clicks left out."""
    rng = np.random.default_rng(seed)
    draws = rng.choice(len(ids), size=(queries.height, min(len(ids), k + 50)), replace=True)
    rows = pl.DataFrame(
        {
            "query": np.repeat(queries["query"].to_numpy(), draws.shape[1]),
            "item_id": np.asarray(ids)[draws.ravel()],
        }
    ).unique(["query", "item_id"], maintain_order=True)
    rows = rows.join(seen.explode("item_id"), on=["query", "item_id"], how="anti")
    return (
        rows.group_by("query", maintain_order=True)
        .head(k)
        .select("query", "item_id", source=pl.lit(SOURCES[2]))
    )


def hit_rates(parts: dict[str, pl.DataFrame]) -> dict[str, float]:
    """HR@K per source: the share of the targets among its candidates."""
    targets, cands = parts["targets"], parts["candidates"]
    n = max(targets.height, 1)
    return {
        source: targets.join(
            cands.filter(pl.col("source") == source), on=["query", "item_id"], how="semi"
        ).height
        / n
        for source in SOURCES
    }


def cascade_hit_rates(
    net: Any,
    world: Any,
    proto: NewsProtocol,
    parts: dict[str, pl.DataFrame],
    max_clicks: int,
    top: int = 10,
) -> dict[str, float]:
    """HR@``top`` per source after ranking its candidates with ``net``."""
    from knowrec.hknr.fit import make_samples, predict

    out = {}
    n = max(parts["targets"].height, 1)
    for source in SOURCES:
        frame = (
            parts["candidates"]
            .filter(pl.col("source") == source)
            .join(parts["queries"], on="query")
            .with_columns(label=pl.lit(0, pl.Int8))
        )
        frame = frame.with_columns(click_prior(proto.samples["train"], frame))
        scores = predict(net, make_samples(frame, proto.history, world, max_clicks))
        ranked = frame.select("query", "item_id", score=pl.Series(scores)).with_columns(
            r=pl.col("score").rank("ordinal", descending=True).over("query")
        )
        kept = ranked.filter(pl.col("r") <= top)
        out[source] = parts["targets"].join(kept, on=["query", "item_id"], how="semi").height / n
    return out
