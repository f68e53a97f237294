"""Co-click counts against a brute-force count over sessions."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from itertools import permutations

import numpy as np
import polars as pl
import pytest

from knowrec.errors import ConfigError
from knowrec.similarity.coclick import coclick_counts, top_coclicked

T0 = datetime(2021, 3, 1)


def _log(seed: int = 0, n: int = 300) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "session_id": [f"s{k}" for k in rng.integers(0, 40, n)],
            "item_id": [f"i{k}" for k in rng.integers(0, 15, n)],
            "timestamp": [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 20, n)],
            "rating": rng.integers(1, 6, n).astype(np.float32),
        }
    )


def _brute(log: pl.DataFrame, cap: int, days: int | None = None) -> Counter:
    out: Counter = Counter()
    ref = log["timestamp"].max()
    for _, rows in log.group_by("session_id"):
        rows = rows.sort("timestamp", descending=True, maintain_order=True)
        items = list(dict.fromkeys(rows["item_id"].to_list()))[:cap]
        if days is not None and rows["timestamp"].max() < ref - timedelta(days=days):
            continue
        out.update(permutations(items, 2))
    return out


@pytest.mark.parametrize("cap", [2, 5, 50])
def test_counts_match_brute_force(cap: int) -> None:
    log = _log().with_row_index().sort("timestamp").drop("index")  # distinct times
    log = log.unique(["session_id", "timestamp"], keep="first")
    got = coclick_counts(log, max_session_items=cap, windows_days=[7])
    pairs = dict(zip(zip(got["item_a"], got["item_b"], strict=True), got["count"], strict=True))
    assert pairs == dict(_brute(log, cap))
    week = dict(zip(zip(got["item_a"], got["item_b"], strict=True), got["count_7d"], strict=True))
    assert {k: v for k, v in week.items() if v} == dict(_brute(log, cap, days=7))


def test_rule_symmetry_and_top_k() -> None:
    log = _log(1)
    liked = coclick_counts(log, rule="rating >= 4")
    assert liked["count"].sum() < coclick_counts(log)["count"].sum()
    flipped = liked.select(item_a="item_b", item_b="item_a", count="count")
    assert flipped.sort("item_a", "item_b").equals(
        liked.select("item_a", "item_b", "count").sort("item_a", "item_b")
    )
    top = top_coclicked(liked, k=3)
    assert top.group_by("item_a").len()["len"].max() <= 3
    first = liked.filter(pl.col("item_a") == "i0")["count"].max()
    assert top.filter(pl.col("item_a") == "i0")["count"][0] == first


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="session_id"):
        coclick_counts(pl.DataFrame({"item_id": ["a"]}))
    with pytest.raises(ConfigError, match="timestamp"):
        coclick_counts(pl.DataFrame({"item_id": ["a"], "session_id": ["s"]}), windows_days=[7])


def test_implicit_rule_counts_every_click() -> None:
    t = datetime(2024, 1, 1)
    clicks = pl.DataFrame(
        {
            "session_id": ["s1", "s1", "s1", "s2", "s2"],
            "item_id": ["a", "b", "c", "a", "b"],
            "timestamp": [t + timedelta(minutes=m) for m in range(5)],
        }
    )
    counts = coclick_counts(clicks, rule="all")
    assert counts.equals(coclick_counts(clicks, rule=None))
    pairs = {(r["item_a"], r["item_b"]): r["count"] for r in counts.iter_rows(named=True)}
    assert pairs[("a", "b")] == 2 and pairs[("a", "c")] == 1
    with pytest.raises(ConfigError, match="use the rule 'all'"):
        coclick_counts(clicks, rule="rating >= 4")
