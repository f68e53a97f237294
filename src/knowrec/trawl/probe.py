"""Linear probes of knowledge vectors: how much of what a recommender needs can a linear
model read from them? Three targets, from a category column of the items (ML-1M's genres,
a news set's topics) and the CTR samples:

- item categories: does the item belong to category g?
- item liked: is the item's positive rate above the median item's (items with at least
  ``min_samples`` samples)?
- user liked categories: is g's share among the items the user liked (positive samples)
  above the average user's share (users with at least ``min_liked`` positives)?
- user categories vs own rate: does the user like g more than items overall (their
  positive rate on g's samples above their own positive rate; users with at least
  ``min_samples`` samples of g)? This is what a CTR model needs beyond popularity, and
  the harder target.
User vectors come from the reserved history; the targets from the CTR samples after it.

Each score is the AUC, macro-averaged over the categories with enough rows of both
classes, of ridge-regression decision values predicted out of fold (5 folds, pooled). The
reference row reads the categories alone (an item's one-hot categories; a user's mean over
their history items), so a text method has to beat what the category column already says."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from knowrec.metrics import auc

MIN_ROWS = 5  # of each class per category, or the category is skipped


def category_column(items: pl.DataFrame) -> str | None:
    """``genres`` or ``topics`` when the items have it, else their first list column."""
    lists = [c for c, t in items.schema.items() if isinstance(t, pl.List)]
    for name in ("genres", "topics", "categories"):
        if name in lists:
            return name
    return lists[0] if lists else None


def item_targets(items: pl.DataFrame, column: str) -> tuple[list[str], np.ndarray, list[str]]:
    """Item ids, a 0/1 matrix (items × categories) and the category names."""
    names = sorted(items[column].explode().drop_nulls().unique().to_list())
    rows = items.select("item_id", column).drop_nulls(column)
    y = np.array([[g in set(gs) for g in names] for gs in rows[column].to_list()], dtype=float)
    return rows["item_id"].cast(pl.String).to_list(), y, names


def liked_targets(samples: pl.DataFrame, *, min_samples: int = 20) -> tuple[list[str], np.ndarray]:
    """Item ids and a one-column matrix: 1 when the item's positive rate is above the median
    of the items with at least ``min_samples`` samples."""
    rate = (
        samples.group_by("item_id")
        .agg(rate=pl.col("label").mean(), n=pl.len())
        .filter(pl.col("n") >= min_samples)
        .sort("item_id")
    )
    y = (rate["rate"] > rate["rate"].median()).cast(pl.Float64).to_numpy()[:, None]
    return rate["item_id"].cast(pl.String).to_list(), y


def category_vectors(
    items: pl.DataFrame, history: pl.DataFrame, column: str
) -> dict[str, tuple[list[str], np.ndarray]]:
    """The reference: items as their one-hot categories, users as the mean of their history
    items' one-hots."""
    ids, onehot, _ = item_targets(items, column)
    row = {i: k for k, i in enumerate(ids)}
    users: dict[str, list[int]] = {}
    for u, i in history.select(
        pl.col("user_id").cast(pl.String), pl.col("item_id").cast(pl.String)
    ).iter_rows():
        if i in row:
            users.setdefault(u, []).append(row[i])
    names = sorted(users)
    mean = np.array([onehot[users[u]].mean(axis=0) for u in names]).reshape(len(names), -1)
    return {"item": (ids, onehot), "user": (names, mean)}


def liked_share_targets(
    samples: pl.DataFrame, items: pl.DataFrame, column: str, *, min_liked: int = 5
) -> tuple[list[str], np.ndarray]:
    """User ids and a 0/1 matrix (users × categories): the category's share among the
    user's positive samples above the mean share over users."""
    names = sorted(items[column].explode().drop_nulls().unique().to_list())
    liked = samples.filter(pl.col("label") == 1).select("user_id", "item_id")
    liked = liked.filter(pl.len().over("user_id") >= min_liked)
    counts = (
        liked.join(items.select("item_id", column), on="item_id", how="left")
        .with_columns(n=pl.len().over("user_id"))
        .explode(column)
        .drop_nulls(column)
        .group_by("user_id", column)
        .agg(share=pl.len() / pl.col("n").first())
    )
    users = sorted(liked["user_id"].cast(pl.String).unique().to_list())
    row = {u: i for i, u in enumerate(users)}
    col = {g: j for j, g in enumerate(names)}
    share = np.zeros((len(users), len(names)))
    for u, g, v in counts.select("user_id", column, "share").iter_rows():
        share[row[str(u)], col[g]] = v
    return users, (share > share.mean(axis=0)).astype(float)


def user_targets(
    samples: pl.DataFrame, items: pl.DataFrame, column: str, *, min_samples: int = 5
) -> tuple[list[str], np.ndarray, list[str]]:
    """User ids and a matrix (users × categories): 1 where the user's positive rate on the
    category beats their overall rate, 0 where it does not, NaN with too few samples."""
    names = sorted(items[column].explode().drop_nulls().unique().to_list())
    s = samples.select("user_id", "item_id", "label").with_columns(
        overall=pl.col("label").mean().over("user_id")
    )
    per = (
        s.join(items.select("item_id", column), on="item_id")
        .explode(column)
        .group_by("user_id", column)
        .agg(rate=pl.col("label").mean(), n=pl.len(), overall=pl.col("overall").first())
        .filter(pl.col("n") >= min_samples)
        .with_columns(liked=(pl.col("rate") > pl.col("overall")).cast(pl.Float64))
    )
    users = sorted(per["user_id"].cast(pl.String).unique().to_list())
    row = {u: i for i, u in enumerate(users)}
    col = {g: j for j, g in enumerate(names)}
    y = np.full((len(users), len(names)), np.nan)
    for u, g, liked in per.select("user_id", column, "liked").iter_rows():
        y[row[str(u)], col[g]] = liked
    return users, y, names


def probe_auc(
    ids: list[str],
    vectors: np.ndarray,
    target_ids: list[str],
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    alpha: float = 1.0,
) -> float:
    """Macro AUC of out-of-fold ridge predictions of each column of ``y`` (NaN = not
    asked) from the rows of ``vectors`` whose id is in ``target_ids``; nan when no column
    has ``MIN_ROWS`` rows of each class."""
    from sklearn.linear_model import Ridge

    where = {str(i): k for k, i in enumerate(ids)}
    keep = [k for k, t in enumerate(target_ids) if t in where]
    x = vectors[[where[target_ids[k]] for k in keep]].astype(np.float64)
    y = y[keep]
    fold = np.random.default_rng(seed).permutation(len(keep)) % folds
    aucs = []
    for j in range(y.shape[1]):
        asked = ~np.isnan(y[:, j])
        labels = y[asked, j]
        if min(labels.sum(), (1 - labels).sum()) < MIN_ROWS:
            continue
        pred = np.empty(len(labels))
        xs, fs = x[asked], fold[asked]
        for f in range(folds):
            train = fs != f
            if (fs == f).any() and 0 < labels[train].sum() < train.sum():
                model = Ridge(alpha=alpha).fit(xs[train], labels[train])
                pred[fs == f] = model.predict(xs[fs == f])
            else:
                pred[fs == f] = labels[train].mean() if train.any() else 0.5
        aucs.append(auc(labels, pred))
    return float(np.mean(aucs)) if aucs else float("nan")


def knowledge_probes(
    items: pl.DataFrame,
    samples: pl.DataFrame,
    history: pl.DataFrame,
    vectors: dict[str, dict[str, tuple[list[str], np.ndarray]]],
    column: str,
) -> list[dict[str, Any]]:
    """One row per vector source (``vectors[name][side] = (ids, matrix)``), after the
    categories-only reference: the probe AUCs (None where the source has no vectors of
    that side)."""
    item_ids, item_y, _ = item_targets(items, column)
    targets = {
        f"item {column}": ("item", item_ids, item_y),
        "item liked": ("item", *liked_targets(samples)),
        f"user liked {column}": ("user", *liked_share_targets(samples, items, column)),
        f"user {column} vs own rate": ("user", *user_targets(samples, items, column)[:2]),
    }
    sources = {f"{column} only (no text)": category_vectors(items, history, column), **vectors}
    rows = []
    for name, sides in sources.items():
        row: dict[str, Any] = {"vectors": name}
        for label, (side, target_ids, y) in targets.items():
            row[f"{label} AUC"] = probe_auc(*sides[side], target_ids, y) if side in sides else None
        rows.append(row)
    return rows
