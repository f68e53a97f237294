"""Small CTR worlds with a planted signal, shared by test_models and test_train (and by the
subprocess that test_train kills)."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from knowrec.models.features import (
    CategoricalField,
    FeatureMap,
    FeatureSpec,
    KnowledgeTable,
    MultiValuedField,
    SequenceField,
)

SPEC = FeatureSpec(
    categorical=(CategoricalField(name="gender"),),
    multi_valued=(MultiValuedField(name="genres", max_len=3),),
    sequence=SequenceField(max_len=6),
)
GENRES = ["Drama", "Comedy", "War", "Horror"]


def toy_frame(
    n: int = 3000,
    *,
    n_users: int = 150,
    n_items: int = 100,
    max_len: int = 6,
    kdim: int = 16,
    seed: int = 0,
    signal: str = "rating",
    items: np.ndarray | None = None,
) -> tuple[pl.DataFrame, KnowledgeTable, KnowledgeTable]:
    """Samples with ``user_id``, ``item_id``, ``label``, ``gender``, ``genres``,
    ``hist_item_ids`` and ``hist_ratings``, plus item and user knowledge tables.

    ``signal``: "rating" — the label follows the mean of the history ratings (a user's
    generosity); "knowledge" — it follows a direction of the target item's knowledge vector.
    ``items``: the item ids (ints) to draw targets and history items from (e.g. to keep
    some items cold).
    """
    rng = np.random.default_rng(seed)
    world = np.random.default_rng(12345)  # the same items/users in every call
    item_vec = world.normal(size=(n_items, kdim)).astype(np.float32)
    user_vec = world.normal(size=(n_users, kdim)).astype(np.float32)
    direction = world.normal(size=kdim)
    generosity = world.normal(size=n_users)
    users = rng.integers(0, n_users, n)
    targets = rng.choice(items, n) if items is not None else rng.integers(0, n_items, n)
    lengths = rng.integers(0, max_len + 1, n)
    pool = items if items is not None else np.arange(n_items)
    hist = [[f"i{x}" for x in rng.choice(pool, k)] for k in lengths]
    ratings = [
        np.clip(np.round(3 + generosity[u] + rng.normal(0, 0.5, k)), 1, 5).astype(np.float32)
        for u, k in zip(users, lengths, strict=True)
    ]
    if signal == "rating":
        score = np.array([2.5 * (r.mean() - 3) if len(r) else 0.0 for r in ratings])
    elif signal == "knowledge":
        score = 3 * item_vec[targets] @ direction / np.sqrt(kdim)
    else:
        raise ValueError(signal)
    label = (rng.random(n) < 1 / (1 + np.exp(-score))).astype(np.int8)
    frame = pl.DataFrame(
        {
            "user_id": [f"u{u}" for u in users],
            "item_id": [f"i{i}" for i in targets],
            "label": label,
            "gender": rng.choice(["F", "M"], n),
            "genres": [list(rng.choice(GENRES, rng.integers(0, 3), replace=False)) for _ in users],
            "hist_item_ids": pl.Series(hist, dtype=pl.List(pl.String)),
            "hist_ratings": pl.Series([list(r) for r in ratings], dtype=pl.List(pl.Float32)),
        }
    )
    item_table = KnowledgeTable([f"i{i}" for i in range(n_items)], item_vec)
    user_table = KnowledgeTable([f"u{u}" for u in range(n_users)], user_vec)
    return frame, item_table, user_table


def toy_data(seed: int = 0, n: int = 2400) -> tuple[FeatureMap, dict]:
    """A fitted feature map and encoded train/valid samples (rating signal, knowledge on
    both sides)."""
    frame, items, users = toy_frame(n, seed=seed)
    train, valid = frame[: n * 3 // 4], frame[n * 3 // 4 :]
    fmap = FeatureMap.fit(SPEC, train, knowledge={"item": items, "user": users})
    return fmap, {"train": fmap.encode(train), "valid": fmap.encode(valid)}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
