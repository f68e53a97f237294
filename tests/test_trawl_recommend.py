"""Recommendations for a user from a finished TRAWL run (knowrec.trawl.recommend) and
`knowrec recommend --user`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from knowrec.errors import UnknownIdError
from knowrec.trawl import run_trawl
from knowrec.trawl.recommend import POPULAR, TrawlRecommender
from tests.test_explore_pipeline import knowrec, one_line_error
from tests.test_trawl import demo_config, small_config


def tiny_trawl_run(out: Path) -> Path:
    """DIN with the adapter over the raw item text (no LLM), 2 epochs: about 35 s here."""
    cfg = small_config(knowledge=demo_config().knowledge.model_copy(update={"methods": ["raw"]}))
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 2})})
    run_trawl(cfg, out, Console(quiet=True))
    return out


@pytest.fixture(scope="module")
def trawl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_trawl_run(tmp_path_factory.mktemp("trawl") / "run")


@pytest.fixture(scope="module")
def rec(trawl_run: Path) -> TrawlRecommender:
    return TrawlRecommender(trawl_run)


def a_user(rec: TrawlRecommender) -> str:
    """The user with the fewest rated items among those who liked at least 3."""
    likes = rec.timeline.group_by("user_id").agg(pl.col("liked").sum(), pl.len())
    return likes.filter(pl.col("liked") >= 3).sort("len", "user_id")["user_id"][0]


def test_recommends_unrated_items_ranked_by_the_ctr_model(rec: TrawlRecommender) -> None:
    user = a_user(rec)
    recs = rec.recommend(user, k=5)
    rated = set(rec.timeline.filter(pl.col("user_id") == user)["item_id"])
    assert len(recs) == 5 and not rated & {r.item_id for r in recs}
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert all(r.found_by.startswith("like: ") for r in recs)  # adapted-vector recall
    liked = {rec.titles[i] for i in rec.timeline.filter(pl.col("user_id") == user)["item_id"]}
    assert all(r.found_by.removeprefix("like: ") in liked for r in recs)
    assert all(r.title and r.knowledge for r in recs)
    # the served score is the model's score of that (user, item) now
    assert np.allclose(rec.score(user, [r.item_id for r in recs]), scores)


def test_a_user_without_liked_items_gets_the_most_liked(rec: TrawlRecommender) -> None:
    user, saved = a_user(rec), rec.timeline
    rec.timeline = saved.with_columns(
        liked=pl.when(pl.col("user_id") == user).then(0).otherwise(pl.col("liked"))
    )
    try:
        recs = rec.recommend(user, k=3)
    finally:
        rec.timeline = saved
    assert [r.found_by for r in recs] == [POPULAR] * 3


def test_unknown_ids_are_clear_errors(rec: TrawlRecommender) -> None:
    with pytest.raises(UnknownIdError, match="unknown user"):
        rec.recommend("nobody")
    with pytest.raises(UnknownIdError, match="1 unknown item ids: 'nothing'"):
        rec.score(a_user(rec), ["1", "nothing"])


def test_the_cli_recommends_for_a_user(trawl_run: Path, rec: TrawlRecommender) -> None:
    out = knowrec("recommend", "--run", trawl_run, "--user", a_user(rec), "--k", "3", "--json")
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)["items"]
    assert [r["#"] for r in items] == [1, 2, 3] and all(0 < r["score"] < 1 for r in items)
    one_line_error(knowrec("recommend", "--run", trawl_run, "--item", "1"), "give the user")
