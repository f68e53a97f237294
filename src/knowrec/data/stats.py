"""Summary statistics of a canonical data set (``knowrec data inspect``)."""

from __future__ import annotations

from typing import Any

import polars as pl

from knowrec.data.tables import Dataset

POSITIVE_RATING = 4.0  # without a label column, a rating of 4 or more (i.e. > 3) is positive


def positives(interactions: pl.DataFrame) -> pl.Expr:
    """The positive-interaction rule used by the statistics: ``label == 1`` where a label
    exists, else ``rating >= 4``, else every interaction (implicit feedback)."""
    if "label" in interactions.columns:
        return pl.col("label") == 1
    if "rating" in interactions.columns:
        return pl.col("rating") >= POSITIVE_RATING
    return pl.lit(True)


def describe(data: Dataset) -> dict[str, Any]:
    """Counts, density, time range and text statistics, as a JSON-ready dict."""
    inter = data.interactions
    n_users = inter["user_id"].n_unique()
    n_items = inter["item_id"].n_unique()
    ts = inter["timestamp"].drop_nulls()
    out: dict[str, Any] = {
        "source": data.meta.get("source"),
        "format": data.meta.get("format"),
        "interactions": inter.height,
        "positives": inter.filter(positives(inter)).height,
        "users_with_interactions": n_users,
        "items_with_interactions": n_items,
        "users": data.users.height,
        "items": data.items.height,
        "density": inter.height / (n_users * n_items) if n_users and n_items else 0.0,
        "time_min": None if ts.is_empty() else ts.min().isoformat(sep=" ", timespec="seconds"),
        "time_max": None if ts.is_empty() else ts.max().isoformat(sep=" ", timespec="seconds"),
        "interactions_without_time": inter.height - ts.len(),
    }
    if "impression_id" in inter.columns:
        out["impressions"] = inter["impression_id"].drop_nulls().n_unique()
    if "session_id" in inter.columns:
        out["sessions"] = inter["session_id"].drop_nulls().n_unique()
    if "rating" in inter.columns:
        r = inter["rating"].drop_nulls()
        out["rating_min"] = None if r.is_empty() else float(r.min())  # type: ignore[arg-type]
        out["rating_max"] = None if r.is_empty() else float(r.max())  # type: ignore[arg-type]
    known = set(data.items["item_id"].to_list())
    out["interaction_items_missing_from_items"] = (
        inter.filter(~pl.col("item_id").is_in(known))["item_id"].n_unique() if known else None
    )
    out["text"] = text_stats(data.items)
    return out


def text_stats(items: pl.DataFrame) -> dict[str, Any]:
    """Coverage (share of items with non-empty text) and word-length statistics."""
    if "text" not in items.columns or items.height == 0:
        return {"coverage": 0.0, "items_with_text": 0}
    words = (
        items.select(pl.col("text").str.strip_chars())
        .filter(pl.col("text").str.len_chars() > 0)["text"]
        .str.split(" ")
        .list.len()
    )
    if words.is_empty():
        return {"coverage": 0.0, "items_with_text": 0}
    return {
        "coverage": words.len() / items.height,
        "items_with_text": words.len(),
        "words_min": int(words.min()),  # type: ignore[arg-type]
        "words_median": float(words.median()),  # type: ignore[arg-type]
        "words_mean": round(float(words.mean()), 1),  # type: ignore[arg-type]
        "words_p95": float(words.quantile(0.95)),  # type: ignore[arg-type]
        "words_max": int(words.max()),  # type: ignore[arg-type]
    }
