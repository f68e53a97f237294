"""Protocol utilities against brute-force definitions on small random logs."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from knowrec.data.protocol import (
    ctr_samples,
    label_expr,
    negatives_from_impressions,
    reserve_history,
    sample_negatives,
    sessionize,
    split_global_time,
    split_last_n,
    split_users,
)
from knowrec.errors import ConfigError, DataFormatError

T0 = datetime(2020, 1, 1)


def random_log(seed: int = 0, n: int = 400, users: int = 12, items: int = 30) -> pl.DataFrame:
    """Ratings with many equal timestamps (minutes on a coarse grid) to exercise ties."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "user_id": [f"u{k}" for k in rng.integers(0, users, n)],
            "item_id": [f"i{k}" for k in rng.integers(0, items, n)],
            "timestamp": [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 600, n) * 7],
            "rating": rng.integers(1, 6, n).astype(np.float32),
        },
        schema_overrides={"timestamp": pl.Datetime("ms")},
    )


def timeline(log: pl.DataFrame) -> dict[str, list[tuple[datetime, int, str, float]]]:
    """Brute force: each user's rows as (time, input position, item, rating), in order."""
    out: dict[str, list] = {}
    for pos, row in enumerate(log.iter_rows(named=True)):
        out.setdefault(row["user_id"], []).append(
            (row["timestamp"], pos, row["item_id"], row["rating"])
        )
    return {u: sorted(rows) for u, rows in out.items()}


def test_split_users_partitions_users_by_ratio() -> None:
    log = random_log(n=2000, users=100)
    parts = split_users(log, seed=3)
    sets = {k: set(v["user_id"]) for k, v in parts.items()}
    assert not (sets["train"] & sets["valid"]) and not (sets["train"] & sets["test"])
    assert not (sets["valid"] & sets["test"])
    assert [len(sets[k]) for k in ("train", "valid", "test")] == [80, 10, 10]
    assert sum(p.height for p in parts.values()) == log.height
    # depends on the seed and the users only, not on row order
    shuffled = split_users(log.sample(fraction=1.0, shuffle=True, seed=1), seed=3)
    assert set(shuffled["test"]["user_id"]) == sets["test"]
    assert set(split_users(log, seed=4)["test"]["user_id"]) != sets["test"]


def test_split_global_time() -> None:
    log = random_log()
    parts = split_global_time(log, cut=0.8)
    cut = parts["test"]["timestamp"].min()
    assert parts["train"]["timestamp"].max() < cut
    assert parts["train"].height + parts["test"].height == log.height
    assert 0.7 < parts["train"].height / log.height <= 0.8
    when = T0 + timedelta(hours=20)
    by_date = split_global_time(log, cut=when)
    assert by_date["train"].height == log.filter(pl.col("timestamp") < when).height
    with pytest.raises(ConfigError, match="cut"):
        split_global_time(log, cut=1.5)


def test_split_last_n_matches_brute_force() -> None:
    log = random_log(1)
    parts = split_last_n(log, n=2, valid_n=1)
    lines = timeline(log)
    expect = {"train": [], "valid": [], "test": []}
    for rows in lines.values():
        for back, row in enumerate(reversed(rows)):
            key = "test" if back < 2 else "valid" if back < 3 else "train"
            expect[key].append(row[1])
    for key, positions in expect.items():
        got = parts[key].join(
            log.with_row_index("pos"), on=list(log.columns), how="left"
        )  # rows are unique enough here to find their position
        assert sorted(got["pos"].to_list()) == sorted(positions), key
    assert "valid" not in split_last_n(log, n=1)


def test_reserve_history_is_the_first_n_in_time() -> None:
    log = random_log(2)
    parts = reserve_history(log, n_first=5)
    lines = timeline(log)
    hist = parts["history"].with_row_index()
    for user, rows in lines.items():
        mine = parts["history"].filter(pl.col("user_id") == user)
        assert sorted(mine["item_id"].to_list()) == sorted(r[2] for r in rows[:5])
        rest = parts["rest"].filter(pl.col("user_id") == user)
        if rest.height:
            assert rest["timestamp"].min() >= mine["timestamp"].max()
    assert hist.height + parts["rest"].height == log.height


def test_sessionize_gap_and_minimum() -> None:
    t = [T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=50), T0 + timedelta(minutes=79)]
    log = pl.DataFrame(
        {"user_id": ["a", "a", "a", "a", "b"], "item_id": list("pqrsq"), "timestamp": [*t, T0]},
        schema_overrides={"timestamp": pl.Datetime("ms")},
    )
    out = sessionize(log, gap_minutes=30, min_clicks=2)
    assert out["session_id"].to_list() == ["a:0", "a:0", "a:1", "a:1"]
    assert sessionize(log, gap_minutes=30, min_clicks=1)["session_id"].to_list()[-1] == "b:0"
    assert sessionize(log, gap_minutes=35, min_clicks=3).height == 0  # gaps 10, 40, 29 min
    assert sessionize(log, gap_minutes=45, min_clicks=3)["session_id"].n_unique() == 1


@pytest.mark.parametrize("max_len", [1, 3, 10])
def test_ctr_samples_history_is_strictly_before(max_len: int) -> None:
    log = random_log(5, n=300)
    parts = reserve_history(log, n_first=3)
    out = ctr_samples(parts["rest"], log, max_len=max_len)
    assert out.height == parts["rest"].height
    assert out["label"].to_list() == (parts["rest"]["rating"] > 3).cast(pl.Int8).to_list()
    lines = timeline(log)
    for row in out.iter_rows(named=True):
        before = [r for r in lines[row["user_id"]] if r[0] < row["timestamp"]][-max_len:]
        assert row["hist_item_ids"] == [r[2] for r in before]
        assert row["hist_ratings"] == [r[3] for r in before]
        assert row["hist_len"] == len(before)


def test_ctr_samples_edge_cases() -> None:
    log = random_log(6, n=50)
    alone = ctr_samples(log.head(1))
    assert alone["hist_item_ids"].to_list() == [[]] and alone["hist_len"].to_list() == [0]
    stranger = log.head(2).with_columns(user_id=pl.lit("nobody"))
    assert ctr_samples(stranger, log)["hist_len"].to_list() == [0, 0]
    implicit = ctr_samples(log.drop("rating").with_columns(label=pl.lit(1, pl.Int8)))
    assert "hist_ratings" not in implicit.columns
    with pytest.raises(ConfigError, match="rating > 3"):
        label_expr("rating >> 3", log)
    with pytest.raises(ConfigError, match="score"):
        ctr_samples(log, label="score > 1")
    with pytest.raises(DataFormatError, match="timestamp"):
        ctr_samples(log.with_columns(timestamp=pl.lit(None, pl.Datetime("ms"))))


def test_negatives_from_impressions() -> None:
    log = pl.DataFrame(
        {
            "user_id": ["u"] * 5 + ["v"] * 3,
            "item_id": ["a", "b", "c", "d", "e", "a", "b", "c"],
            "impression_id": ["1"] * 5 + ["2"] * 3,
            "label": [1, 0, 1, 0, 0, 0, 0, 0],
        },
        schema_overrides={"label": pl.Int8},
    )
    out = negatives_from_impressions(log, per_positive=2, seed=1)
    assert out.height == 4  # two clicks of impression 1, two negatives each; 2 has no click
    assert set(out["neg_item_id"]) <= {"b", "d", "e"}
    assert set(out["pos_item_id"]) == {"a", "c"}
    per_click = out.group_by("pos_item_id").agg(pl.col("neg_item_id").n_unique())
    assert per_click["neg_item_id"].to_list() == [2, 2]  # without replacement


def test_sample_negatives_window_and_never_seen() -> None:
    log = random_log(7, n=600, users=30, items=200)
    out = sample_negatives(log, window_hours=2, per_positive=2, seed=0)
    seen = set(zip(log["user_id"], log["item_id"], strict=True))
    assert out.height > 0.9 * 2 * log.height
    assert not any((u, i) in seen for u, i in zip(out["user_id"], out["neg_item_id"], strict=True))
    times = log.group_by("item_id").agg(pl.col("timestamp"))
    when = dict(zip(times["item_id"], times["timestamp"], strict=True))
    for row in out.head(200).iter_rows(named=True):
        gaps = [abs((t - row["timestamp"]).total_seconds()) for t in when[row["neg_item_id"]]]
        assert min(gaps) <= 2 * 3600
    again = sample_negatives(log, window_hours=2, per_positive=2, seed=0)
    assert again.equals(out)


def test_implicit_feedback_every_row_counts_and_ctr_samples_get_negatives() -> None:
    log = random_log(3, n=300, users=10, items=40).drop("rating")  # a click log
    assert log.select(label_expr("all", log)).to_series().to_list() == [1] * log.height
    with pytest.raises(ConfigError, match=r"needs the column 'rating'.*use the rule 'all'"):
        label_expr("rating > 3", log)
    samples = ctr_samples(log, label="all", negatives=2, max_len=4, seed=1)
    positives = samples.filter(pl.col("label") == 1)
    negatives = samples.filter(pl.col("label") == 0)
    assert positives.select("user_id", "item_id", "timestamp").equals(
        log.select("user_id", "item_id", "timestamp")
    )  # every click, in input order, each followed by its negatives
    assert negatives.height > 1.8 * log.height
    seen = set(zip(log["user_id"], log["item_id"], strict=True))
    drawn = zip(negatives["user_id"], negatives["item_id"], strict=True)
    assert not any(pair in seen for pair in drawn)
    first_neg = samples.row(1, named=True)  # the first click's negative: its user, time, history
    first = samples.row(0, named=True)
    assert first_neg["label"] == 0 and first_neg["user_id"] == first["user_id"]
    assert (first_neg["timestamp"], first_neg["hist_item_ids"]) == (
        first["timestamp"],
        first["hist_item_ids"],
    )
    assert ctr_samples(log, label="all", negatives=2, max_len=4, seed=1).equals(samples)
