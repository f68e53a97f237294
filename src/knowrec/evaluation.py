"""Applying a scoring model to a split: full-catalogue top-k ranking evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from knowrec.metrics import hit_rate_at_k, mrr_at_k, ndcg_at_k, precision_at_k, recall_at_k

Scorer = Callable[[Sequence[str], Sequence[str]], np.ndarray]
TOPK_METRICS = {
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "hit_rate": hit_rate_at_k,
    "precision": precision_at_k,
}


def evaluate_topk(
    score: Scorer,
    train: pl.DataFrame,
    test: pl.DataFrame,
    item_ids: Sequence[str],
    *,
    k: int = 10,
    batch_users: int = 512,
) -> dict[str, float]:
    """Rank every catalogue item for each test user, items seen in ``train`` excluded.

    ``test`` holds the held-out positive (user, item) pairs; users without any positive in
    the catalogue are skipped, so every evaluated user has at least one relevant item.
    Returns the mean over test users of recall, NDCG, MRR, hit rate and precision at k.
    """
    items = list(item_ids)
    col = {x: i for i, x in enumerate(items)}
    test = test.filter(pl.col("item_id").is_in(items))
    users = test["user_id"].unique(maintain_order=True).to_list()
    seen = _lists(train, users)
    relevant = _lists(test, users)
    sums = dict.fromkeys(TOPK_METRICS, 0.0)
    for start in range(0, len(users), batch_users):
        batch = users[start : start + batch_users]
        scores = np.asarray(score(batch, items), dtype=np.float64)
        truth = np.zeros_like(scores)
        for row, user in enumerate(batch):
            scores[row, [col[i] for i in seen[user] if i in col]] = -np.inf
            truth[row, [col[i] for i in relevant[user] if i in col]] = 1.0
        keep = np.isfinite(scores)
        groups = np.broadcast_to(np.arange(len(batch))[:, None], scores.shape)
        args = (truth[keep], scores[keep])
        for name, fn in TOPK_METRICS.items():
            sums[name] += fn(*args, k=k, groups=groups[keep]) * len(batch)
    return {f"{name}@{k}": value / max(len(users), 1) for name, value in sums.items()}


def _lists(df: pl.DataFrame, users: list[str]) -> dict[str, list[str]]:
    grouped = df.filter(pl.col("user_id").is_in(users)).group_by("user_id").agg("item_id")
    out: dict[str, list[str]] = {u: [] for u in users}
    out.update(zip(grouped["user_id"].to_list(), grouped["item_id"].to_list(), strict=True))
    return out
