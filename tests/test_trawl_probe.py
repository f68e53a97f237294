"""The knowledge probe and the nearest-item examples of TRAWL's report."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from knowrec.errors import ConfigError
from knowrec.trawl.probe import (
    category_column,
    knowledge_probes,
    liked_share_targets,
    user_targets,
)
from knowrec.trawl.report import neighbour_examples, pick_items

GENRES = ["Comedy", "Drama", "Horror"]


def world(n_items: int = 120, n_users: int = 80, seed: int = 0) -> dict:
    """Items with one genre each; users who like one genre (positive on it, negative on
    the others), so both probes have a right answer."""
    rng = np.random.default_rng(seed)
    genre = rng.integers(0, 3, n_items)
    taste = rng.integers(0, 3, n_users)
    items = pl.DataFrame(
        {
            "item_id": [str(i) for i in range(n_items)],
            "title": [f"Movie {i}" for i in range(n_items)],
            "genres": [[GENRES[g]] for g in genre],
        }
    )
    rows = [
        (str(u), str(i), int(genre[i] == taste[u]))
        for u in range(n_users)
        for i in rng.choice(n_items, 30, replace=False)
    ]
    samples = pl.DataFrame(rows, schema=["user_id", "item_id", "label"], orient="row")
    onehot = np.eye(3)
    noise = lambda n: 0.3 * rng.normal(size=(n, 8))  # noqa: E731
    vectors = {
        "informative": {
            "item": (items["item_id"].to_list(), np.hstack([onehot[genre], noise(n_items)])),
            "user": ([str(u) for u in range(n_users)], np.hstack([onehot[taste], noise(n_users)])),
        },
        "noise": {"item": (items["item_id"].to_list(), rng.normal(size=(n_items, 11)))},
    }
    return {"items": items, "samples": samples, "vectors": vectors, "genre": genre}


def test_the_probe_reads_what_the_vectors_hold_and_nothing_from_noise() -> None:
    w = world()
    assert category_column(w["items"]) == "genres"
    history = w["samples"].group_by("user_id", maintain_order=True).head(5)
    probes = knowledge_probes(w["items"], w["samples"], history, w["vectors"], "genres")
    rows = {r["vectors"]: r for r in probes}
    assert list(rows) == ["genres only (no text)", "informative", "noise"]
    assert rows["genres only (no text)"]["item genres AUC"] == 1.0  # the column itself
    assert rows["informative"]["item genres AUC"] > 0.95
    assert rows["informative"]["user genres vs own rate AUC"] > 0.95
    assert rows["informative"]["user liked genres AUC"] > 0.95
    assert 0.3 < rows["noise"]["item genres AUC"] < 0.7
    assert 0.0 <= rows["noise"]["item liked AUC"] <= 1.0
    assert rows["noise"]["user liked genres AUC"] is None  # no user vectors


def test_user_targets_compare_a_genre_with_the_users_own_rate() -> None:
    items = pl.DataFrame({"item_id": ["a", "b", "c"], "genres": [["X"], ["X"], ["Y"]]})
    samples = pl.DataFrame(
        {
            "user_id": ["u"] * 6,
            "item_id": ["a", "a", "b", "c", "c", "c"],
            "label": [1, 1, 1, 0, 1, 0],
        }
    )
    users, y, names = user_targets(samples, items, "genres", min_samples=3)
    assert users == ["u"] and names == ["X", "Y"]
    assert y.tolist() == [[1.0, 0.0]]  # X: 3/3 > 4/6; Y: 1/3 < 4/6
    _, y, _ = user_targets(samples, items, "genres", min_samples=4)
    assert np.isnan(y).all()  # too few samples of either genre: not asked


def test_liked_share_compares_a_users_liked_genres_with_other_users() -> None:
    items = pl.DataFrame({"item_id": ["a", "b"], "genres": [["X"], ["Y"]]})
    samples = pl.DataFrame(
        {
            "user_id": ["u"] * 3 + ["v"] * 3 + ["w"],
            "item_id": ["a", "a", "b", "b", "b", "a", "a"],
            "label": [1, 1, 1, 1, 1, 0, 1],
        }
    )
    users, y = liked_share_targets(samples, items, "genres", min_liked=2)
    assert users == ["u", "v"]  # w has one liked item
    assert y.tolist() == [[1.0, 0.0], [0.0, 1.0]]  # X: 2/3 vs mean 1/3; Y: 1/3 vs 2/3


def test_nearest_items_and_the_picked_items() -> None:
    w = world()
    train = w["samples"]
    assert len(pick_items(w["items"], train, [])) == 5
    assert pick_items(w["items"], train, ["movie 7", "3"]) == ["7", "3"]
    godfather = pl.DataFrame({"item_id": ["858"], "title": ["Godfather, The"]})
    assert pick_items(godfather, train, ["The Godfather", "godfather, the"]) == ["858", "858"]
    with pytest.raises(ConfigError, match="no item has the id or title"):
        pick_items(w["items"], train, ["Casablanca"])
    section = neighbour_examples(w["items"], {"genre": w["vectors"]["informative"]["item"]}, ["7"])
    (row,) = section.rows
    near = [int(t.removeprefix("Movie ")) for t in row["nearest"].split("; ")]
    assert len(near) == 5 and 7 not in near
    assert all(w["genre"][n] == w["genre"][7] for n in near)
