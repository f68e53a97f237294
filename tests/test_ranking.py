"""Ranking: co-engagement features (exact values on a hand-made log), held-out impressions,
LightGBM learning a planted feature, the z-scored final score and the λ sweep."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from knowrec.data.synth import generate_world
from knowrec.errors import ConfigError, DataFormatError, RegistryError
from knowrec.explore import click_impressions, click_ndcg_table, split_sessions
from knowrec.metrics import click_ndcg_at_k, reco_dcg_at_k
from knowrec.ranking import (
    CoEngagementFeatures,
    ColumnFeatures,
    LGBMRanker,
    ZScore,
    build_features,
    choose_lambda,
    final_score,
    lambda_sweep,
    make_ranker,
    path_columns,
    tradeoff_figure,
)
from knowrec.report import Section, write_report
from knowrec.retrieval import candidate_frame, make_recall_path, merge_candidates, recall_all

T0 = datetime(2022, 1, 1)
RULE = "rating >= 4"
SCHEMA = {
    "user_id": pl.String,
    "item_id": pl.String,
    "timestamp": pl.Datetime("ms"),
    "rating": pl.Float32,
    "session_id": pl.String,
}


def _log(sessions: list[tuple[float, list[tuple[str, float]]]]) -> pl.DataFrame:
    """``[(day, [(item, rating), …]), …]``: one session per entry, a minute per click."""
    rows = [
        ("u", item, T0 + timedelta(days=day, minutes=n), rating, f"s{s}")
        for s, (day, clicks) in enumerate(sessions)
        for n, (item, rating) in enumerate(clicks)
    ]
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


# -------------------------------------------------------------------- features


def test_coengagement_features_exact_values() -> None:
    log = _log(
        [
            (0, [("a", 5), ("b", 5), ("c", 2)]),
            (10, [("a", 5), ("b", 5)]),
            (28, [("a", 5), ("c", 5)]),
            (29, [("b", 1), ("c", 5)]),
            (31, [("a", 5), ("b", 5)]),  # after `now`: must not count
        ]
    )
    now = T0 + timedelta(days=30)
    feats = CoEngagementFeatures(rule=RULE, windows_days=(7, 30)).fit(log, now=now)
    pairs = pl.DataFrame(
        {"trigger_id": ["a", "a", "b"], "item_id": ["b", "c", "z"], "keep": [1, 2, 3]}
    )
    out = feats.transform(pairs)
    assert out.columns[:3] == ["trigger_id", "item_id", "keep"] and out["keep"].to_list() == [
        1,
        2,
        3,
    ]
    assert set(feats.columns) <= set(out.columns)
    ab, ac, bz = out.iter_rows(named=True)
    assert (ab["cc_sat"], ab["cc_sat_7d"], ab["cc_sat_30d"], ab["cc_all"]) == (2, 0, 2, 2)
    assert ab["cc_sat_rate"] == 1.0 and ab["cc_cond"] == pytest.approx(2 / 3)
    assert ab["cc_cos"] == pytest.approx(2 / np.sqrt(3 * 2))
    assert (ab["pop_t"], ab["sat_pop_t"], ab["pop_c"], ab["sat_pop_c"]) == (3, 3, 3, 2)
    assert ab["sat_rate_c"] == pytest.approx(2 / 3) and (ab["pop_c_7d"], ab["pop_c_30d"]) == (0, 2)
    assert ab["days_since_cc"] == pytest.approx(20 - 1 / 1440)  # s1 ended at day 10 + 1 min
    assert ab["days_since_c"] == pytest.approx(1.0) and ab["age_c"] == pytest.approx(30 - 1 / 1440)
    assert (ac["cc_sat"], ac["cc_sat_7d"], ac["cc_all"], ac["cc_sat_rate"]) == (1, 1, 2, 0.5)
    assert (bz["cc_sat"], bz["cc_all"], bz["pop_c"]) == (0, 0, 0)
    assert bz["cc_sat_rate"] is None and bz["days_since_cc"] is None and bz["sat_rate_c"] is None
    frame, names = build_features(pairs, [feats, ColumnFeatures(["keep"])])
    assert names == [*feats.columns, "keep"] and frame.height == 3
    with pytest.raises(ConfigError, match="already has"):
        feats.transform(out)
    with pytest.raises(ConfigError, match="not in the pairs frame"):
        build_features(pairs, [ColumnFeatures(["ce_click"])])
    with pytest.raises(ConfigError, match="not fitted"):
        CoEngagementFeatures().transform(pairs)


def test_coengagement_features_save_and_load(tmp_path: Path) -> None:
    log = _log([(0, [("a", 5), ("b", 5), ("c", 2)]), (3, [("a", 5), ("c", 5)])])
    feats = CoEngagementFeatures(rule=RULE, windows_days=(7,)).fit(log)
    again = CoEngagementFeatures.load(feats.save(tmp_path / "features"))
    pairs = pl.DataFrame({"trigger_id": ["a", "a", "b"], "item_id": ["b", "c", "a"]})
    assert again.now == feats.now and again.windows_days == (7,) and again.rule == RULE
    assert again.transform(pairs).equals(feats.transform(pairs))
    with pytest.raises(DataFormatError, match="unreadable"):
        CoEngagementFeatures.load(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="not fitted"):
        CoEngagementFeatures().save(tmp_path / "empty")


def test_click_impressions_and_session_split() -> None:
    log = _log(
        [
            (0, [("a", 5), ("b", 5)]),
            (1, [("a", 5), ("b", 5), ("c", 5), ("d", 1)]),
            (2, [("a", 5), ("x", 5)]),
            (3, [("c", 5), ("z", 5)]),
        ]
    )
    # a session straddling the cut is dropped from both sides
    straddle = pl.concat(
        [log, _log([(1.9, [("q", 5)]), (2.1, [("q", 5)])]).with_columns(session_id=pl.lit("late"))]
    )
    parts = split_sessions(straddle, [T0 + timedelta(days=2)])
    assert set(parts) == {"train", "test"}
    assert set(parts["train"]["session_id"]) == {"s0", "s1"} and set(
        parts["test"]["session_id"]
    ) == {"s2", "s3"}
    with pytest.raises(ConfigError, match="increase"):
        split_sessions(log, [0.8, 0.2])
    cands = pl.DataFrame(
        {
            "trigger_id": ["a", "a", "a", "c"],
            "item_id": ["b", "c", "d", "a"],
            "f": [1.0, 2.0, 3.0, 4.0],
        }
    )
    frame = click_impressions(log, cands, rule=RULE, max_triggers_per_session=None)
    got = {
        (s, t, i): c
        for s, t, i, c in frame.select("session_id", "trigger_id", "item_id", "clicked").iter_rows()
    }
    assert got == {
        ("s0", "a", "b"): 1, ("s0", "a", "c"): 0, ("s0", "a", "d"): 0,
        ("s1", "a", "b"): 1, ("s1", "a", "c"): 1, ("s1", "a", "d"): 0,  # d rated 1
        ("s1", "c", "a"): 1,
    }  # fmt: skip
    assert frame["group"].to_list() == [0, 0, 0, 1, 1, 1, 2] and "f" in frame.columns
    assert frame.filter(pl.col("group") == 1)["item_id"].to_list() == ["b", "c", "d"]  # list order
    everything = click_impressions(
        log, cands, rule=RULE, require_click=False, max_triggers_per_session=None
    )
    assert everything.height == 11  # + s2's trigger a (no click among b, c, d) and s3's c
    one = click_impressions(log, cands, rule=RULE, max_triggers_per_session=1, require_click=False)
    assert one.group_by("session_id").agg(pl.col("trigger_id").n_unique())["trigger_id"].max() == 1


# -------------------------------------------------------------------- LightGBM


def _planted(n_groups: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_groups * 10
    signal = rng.normal(size=n)
    noise = rng.normal(size=(n, 2))
    clicked = (signal + 0.3 * rng.normal(size=n) > 1.0).astype(np.int8)
    frame = pl.DataFrame(
        {
            "group": np.repeat(np.arange(n_groups), 10),
            "signal": signal,
            "noise_a": np.where(rng.random(n) < 0.1, np.nan, noise[:, 0]),
            "noise_b": noise[:, 1],
            "clicked": clicked,
        }
    )
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)  # groups need not be contiguous


@pytest.mark.parametrize("objective", ["lambdarank", "binary"])
def test_lightgbm_learns_a_planted_feature(objective: str, tmp_path: Path) -> None:
    train, test = _planted(400, 0), _planted(200, 1)
    ranker = make_ranker(
        "lgbm", features=["noise_a", "signal", "noise_b"], objective=objective, n_estimators=60
    ).fit(train)
    scores = ranker.predict(test)
    rng = np.random.default_rng(0)
    rows = {
        r["ranking"]: r["ClickNDCG@5"]
        for r in click_ndcg_table(
            test, {"lgbm": scores, "oracle": "signal", "random": rng.random(test.height)}
        )
    }
    assert rows["lgbm"] > rows["oracle"] - 0.03 and rows["lgbm"] > rows["random"] + 0.3
    assert next(iter(ranker.feature_importance())) == "signal"
    again = LGBMRanker.load(ranker.save(tmp_path / "ranker"))
    np.testing.assert_allclose(again.predict(test), scores)
    assert again.features == ranker.features and again.objective == objective


def test_regression_objective_learns_a_continuous_label(tmp_path: Path) -> None:
    """The quality model's pointwise option: the judge's expected 0–4 score as the label
    (no groups needed)."""

    def frame(seed: int) -> pl.DataFrame:
        f = _planted(100, seed)
        return f.with_columns(judge=(2 + pl.col("signal")).clip(0, 4))

    train, test = frame(0), frame(1)
    ranker = LGBMRanker(["noise_a", "signal", "noise_b"], objective="regression", n_estimators=80)
    pred = ranker.fit(train, label="judge", group=None).predict(test)
    assert np.corrcoef(pred, test["judge"].to_numpy())[0, 1] > 0.95
    assert np.abs(pred - test["judge"].to_numpy()).mean() < 0.2
    again = LGBMRanker.load(ranker.save(tmp_path / "quality"))
    np.testing.assert_allclose(again.predict(test), pred)


def test_min_data_in_bin_lets_a_few_rows_split(tmp_path: Path) -> None:
    """A quality model on a handful of judged pairs: with LightGBM's min_data_in_bin of 3,
    three rows leave every feature one bin, hence a constant model; 1 lets it learn."""
    frame = pl.DataFrame({"signal": [0.1, 0.5, 0.9], "noise_a": [1.0, 3.0, 2.0]})
    frame = frame.with_columns(judge=4 * pl.col("signal"))
    params = {"objective": "regression", "n_estimators": 20, "min_child_samples": 1}
    default = LGBMRanker(["signal", "noise_a"], **params).fit(frame, label="judge", group=None)
    assert np.ptp(default.predict(frame)) == 0
    ranker = LGBMRanker(["signal", "noise_a"], min_data_in_bin=1, **params)
    pred = ranker.fit(frame, label="judge", group=None).predict(frame)
    assert pred[0] < pred[1] < pred[2]
    assert ranker.lgb_params()["min_data_in_bin"] == 1
    again = LGBMRanker.load(ranker.save(tmp_path / "few"))
    assert again.min_data_in_bin == 1
    np.testing.assert_allclose(again.predict(frame), pred)
    with pytest.raises(ConfigError, match="min_data_in_bin"):
        LGBMRanker(["signal"], min_data_in_bin=0)


def test_ranker_errors() -> None:
    frame = _planted(5, 0)
    with pytest.raises(ConfigError, match="missing"):
        LGBMRanker(["signal", "ce_click"]).fit(frame)
    with pytest.raises(ConfigError, match="not fitted"):
        LGBMRanker(["signal"]).predict(frame)
    with pytest.raises(ConfigError, match="group"):
        LGBMRanker(["signal"]).fit(frame, group=None)
    with pytest.raises(ConfigError, match="objective"):
        LGBMRanker(["signal"], objective="poisson")
    with pytest.raises(RegistryError, match="known rankers are cross_encoder, lgbm"):
        make_ranker("xgboost")


def test_stage1_on_the_synthetic_world_beats_random_order() -> None:
    movies = generate_world(0, "small").movies
    parts = split_sessions(movies.interactions, [0.6, 0.8])
    label_start = parts["label"]["timestamp"].min()
    paths = [make_recall_path("coclick", rule=RULE), make_recall_path("cf", rule=RULE, factors=16)]
    for p in paths:
        p.fit(parts["fit"])
    merged = merge_candidates(recall_all(paths, movies.items["item_id"].to_list(), 30))
    cands = candidate_frame(merged, ["cf", "coclick"])
    feats = CoEngagementFeatures(rule=RULE, windows_days=(30, 180))
    train = click_impressions(parts["label"], cands, rule=RULE)
    train, names = build_features(
        train, [feats.fit(parts["fit"], now=label_start), ColumnFeatures(path_columns(cands))]
    )
    history = pl.concat([parts["fit"], parts["label"]])
    test = click_impressions(parts["test"], cands, rule=RULE)
    test, _ = build_features(
        test,
        [
            feats.fit(history, now=parts["test"]["timestamp"].min()),
            ColumnFeatures(path_columns(cands)),
        ],
    )
    ranker = LGBMRanker(names, n_estimators=80, min_child_samples=10).fit(train)
    rng = np.random.default_rng(0)
    table = {
        r["ranking"]: r["ClickNDCG@5"]
        for r in click_ndcg_table(
            test, {"lgbm": ranker.predict(test), "random": rng.random(test.height)}
        )
    }
    assert test["group"].n_unique() > 100
    assert table["lgbm"] > table["random"] + 0.1


# -------------------------------------------------------------------- final score


def test_zscore_and_final_score() -> None:
    z = ZScore.fit([1.0, 2.0, 3.0, np.nan])
    assert (z.mean, z.std) == pytest.approx((2.0, np.sqrt(2 / 3)))
    np.testing.assert_allclose(z([2.0, np.nan]), [0.0, 0.0])  # missing → neutral
    assert not ZScore.fit([5.0, 5.0])([1.0, 9.0]).any()
    sampled = ZScore.fit(np.arange(10_000.0), sample_size=500, seed=1)
    assert abs(sampled.mean - 4999.5) < 400
    with pytest.raises(ConfigError, match="finite"):
        ZScore.fit([np.nan])
    ranker, quality = np.array([3.0, 2.0, 1.0]), np.array([0.0, 4.0, 8.0])
    np.testing.assert_allclose(final_score(ranker, quality, 0.0), ZScore.fit(ranker)(ranker))
    np.testing.assert_allclose(final_score(ranker, quality, 1.0), ZScore.fit(quality)(quality))
    half = final_score(ranker, quality, 0.5, ranker_z=ZScore(2.0, 1.0), quality_z=ZScore(4.0, 4.0))
    np.testing.assert_allclose(half, 0.5 * np.array([1, 0, -1]) + 0.5 * np.array([-1, 0, 1]))
    np.testing.assert_allclose(
        final_score(ranker, np.full(3, np.nan), 0.3), 0.7 * ZScore.fit(ranker)(ranker)
    )
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        final_score(ranker, quality, 1.5)
    with pytest.raises(ConfigError, match="shape"):
        final_score(ranker, quality[:2], 0.5)


def test_lambda_sweep_endpoints_and_choice(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(300), 8)
    clicks_latent = rng.normal(size=groups.size)
    judge = np.clip(np.round(2 + 1.2 * rng.normal(size=groups.size)), 0, 4)
    clicked = (clicks_latent + 0.5 * rng.normal(size=groups.size) > 1.0).astype(int)
    ranker = clicks_latent + 0.3 * rng.normal(size=groups.size)
    quality = judge + 0.3 * rng.normal(size=groups.size)

    def metric_a(s: np.ndarray) -> float:
        return click_ndcg_at_k(clicked, s, 5, groups)

    def metric_b(s: np.ndarray) -> float:
        return reco_dcg_at_k(judge, s, 5, groups)

    points = lambda_sweep(ranker, quality, metric_a, metric_b, lambdas=np.linspace(0, 1, 11))
    assert [p.lam for p in points] == pytest.approx(np.linspace(0, 1, 11))
    lam, a0, b0 = points[0]
    assert lam == 0.0 and a0 == metric_a(ranker) and b0 == metric_b(ranker)
    assert points[-1].metric_a == metric_a(quality) and points[-1].metric_b == metric_b(quality)
    assert a0 > points[-1].metric_a + 0.1 and points[-1].metric_b > b0 + 5
    chosen = choose_lambda(points, max_drop_a=0.05)
    assert chosen.metric_a >= 0.95 * a0 and chosen.metric_b > b0 and 0 < chosen.lam < 1
    assert choose_lambda(points, max_drop_a=0.0).metric_a >= a0
    fig = tradeoff_figure(points, chosen=chosen)
    paths = write_report(tmp_path, "sweep", [Section("trade-off", figures=[fig])])
    assert "data:image/png;base64" in paths["report.html"].read_text()
