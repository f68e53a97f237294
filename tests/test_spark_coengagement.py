"""Sessions, co-click counts and co-engagement features on Spark equal the polars ones."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from knowrec.data.protocol import label_expr, sessionize
from knowrec.errors import ConfigError
from knowrec.ranking.features import CoEngagementFeatures
from knowrec.similarity.coclick import coclick_counts

pytest.importorskip("pyspark")

from knowrec.spark import to_polars, to_spark
from knowrec.spark.coengagement import (
    coclick_counts_spark,
    coengagement_tables_spark,
    fit_coengagement_features_spark,
    label_column,
    sessionize_spark,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.slow

T0 = datetime(2021, 1, 4)
CUT = T0 + timedelta(days=150)


def _log(seed: int = 0) -> pl.DataFrame:
    """~400 clicks of 14 users over ~7 months: sessions of 1–12 clicks (items repeat inside
    a session), gaps of exactly 30 minutes (a new session) and just under, a few exactly
    repeated rows, and one 60-click session (over the 50-item cap). A user's times are
    distinct apart from the repeated rows, so no cap cut falls between tied items."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, datetime, int]] = []
    for u in range(13):
        t = T0 + timedelta(days=int(rng.integers(0, 30)), minutes=int(rng.integers(0, 600)))
        for _ in range(int(rng.integers(3, 6))):
            for j in range(int(rng.integers(1, 13))):
                if j:
                    t += timedelta(minutes=int(rng.integers(1, 20)), seconds=int(rng.integers(60)))
                k = int(rng.integers(0, 15)) if rng.random() < 0.8 else int(rng.integers(15, 25))
                rows.append((f"u{u}", f"i{k}", t, int(rng.integers(1, 6))))
            gap = rng.choice(["exact", "under", "days"], p=[0.15, 0.15, 0.7])
            if gap == "exact":
                t += timedelta(minutes=30)
            elif gap == "under":
                t += timedelta(minutes=29, seconds=59)
            else:
                t += timedelta(days=int(rng.integers(1, 60)), hours=int(rng.integers(0, 24)))
    t = T0 + timedelta(days=145)
    for k in range(60):  # one long session; 55 items, the first 5 twice
        rows.append(("u13", f"i{k % 55}", t + timedelta(minutes=k), int(rng.integers(1, 6))))
    log = pl.DataFrame(
        rows,
        schema={
            "user_id": pl.String,
            "item_id": pl.String,
            "timestamp": pl.Datetime("us"),
            "rating": pl.Int64,
        },
        orient="row",
    )
    return pl.concat([log, log.sample(8, seed=seed)])  # exact duplicates


@pytest.fixture(scope="module")
def log() -> pl.DataFrame:
    return _log()


@pytest.fixture(scope="module")
def sessions(log: pl.DataFrame) -> pl.DataFrame:
    return sessionize(log)


@pytest.fixture(scope="module")
def spark_sessions(spark: SparkSession, sessions: pl.DataFrame) -> Iterator[DataFrame]:
    frame = to_spark(spark, sessions).cache()
    yield frame
    frame.unpersist()


def _same(got: pl.DataFrame, want: pl.DataFrame, by: list[str]) -> None:
    assert got.columns == want.columns
    assert_frame_equal(got.sort(by), want.sort(by))


def test_sessionize(spark: SparkSession, log: pl.DataFrame, sessions: pl.DataFrame) -> None:
    assert sessions["session_id"].n_unique() > 40 and sessions.height < log.height
    got = to_polars(sessionize_spark(to_spark(spark, log)))
    _same(got, sessions, ["user_id", "timestamp", "item_id", "rating"])


@pytest.mark.parametrize("rule", ["rating >= 4", "all", None])
def test_coclick_counts(
    spark_sessions: DataFrame, sessions: pl.DataFrame, rule: str | None
) -> None:
    want = coclick_counts(sessions, rule=rule, windows_days=(30,))
    got = to_polars(coclick_counts_spark(spark_sessions, rule=rule, windows_days=(30,)))
    assert want["count_30d"].sum() > 0
    _same(got, want, ["item_a", "item_b"])


def test_coclick_counts_windows_now_cap(spark_sessions: DataFrame, sessions: pl.DataFrame) -> None:
    opts = {"rule": "rating > 2", "max_session_items": 6, "now": CUT, "min_count": 2}
    want = coclick_counts(sessions, windows_days=(7, 90), **opts)  # type: ignore[arg-type]
    got = coclick_counts_spark(spark_sessions, windows_days=(7, 90), **opts)  # type: ignore[arg-type]
    got = to_polars(got)
    assert want.height > 0 and want["count_7d"].sum() > 0
    _same(got, want, ["item_a", "item_b"])


@pytest.mark.parametrize(("rule", "now"), [("rating >= 4", CUT), (None, None)])
def test_feature_tables(
    spark_sessions: DataFrame, sessions: pl.DataFrame, rule: str | None, now: datetime | None
) -> None:
    fitted = CoEngagementFeatures(rule=rule).fit(sessions, now=now)
    pairs, items = coengagement_tables_spark(spark_sessions, rule=rule, now=now)
    _same(to_polars(pairs), fitted._pairs, ["trigger_id", "item_id"])  # type: ignore[arg-type]
    counts = pl.col(pl.UInt32).cast(pl.Int64)  # polars counts distinct values as UInt32
    _same(to_polars(items), fitted._items.with_columns(counts), ["item_id"])  # type: ignore[union-attr]


def test_saved_features_transform(
    spark_sessions: DataFrame, sessions: pl.DataFrame, tmp_path: Path
) -> None:
    opts = {"rule": "all", "windows_days": (7, 30)}
    fit_coengagement_features_spark(spark_sessions, tmp_path, now=CUT, **opts)  # type: ignore[arg-type]
    loaded = CoEngagementFeatures.load(tmp_path)
    local = CoEngagementFeatures(**opts).fit(sessions, now=CUT)  # type: ignore[arg-type]
    assert loaded.now == local.now and loaded.settings() == local.settings()
    items = [f"i{k}" for k in range(25)] + ["unseen"]
    pairs = pl.DataFrame({"trigger_id": items}).join(pl.DataFrame({"item_id": items}), how="cross")
    got, want = loaded.transform(pairs), local.transform(pairs)
    assert want["cc_sat"].sum() > 0 and want["days_since_cc"].null_count() < want.height
    assert_frame_equal(got, want)
    # a local save over the Spark one replaces its part directories
    assert (tmp_path / "pairs.parquet").is_dir()
    local.save(tmp_path)
    assert_frame_equal(CoEngagementFeatures.load(tmp_path).transform(pairs), want)


def test_label_rules(spark: SparkSession) -> None:
    frame = pl.DataFrame(
        {
            "rating": [1.0, 3.0, 4.0, None, 5.0, float("nan")],
            "dwell_time": [0, 30, 29, 31, None, 120],
            "label": pl.Series([0, 1, 1, 0, None, 1], dtype=pl.Int8),
        }
    )
    bare = frame.drop("label")
    rules = ["rating > 3", " rating>=4 ", "dwell_time >= 30", "label == 1", "dwell_time != 30.5"]
    cases = [(r, frame) for r in [*rules, "all", "ALL", None]] + [(None, bare)]
    want = frame.select(label_expr(r, f).alias(f"c{k}") for k, (r, f) in enumerate(cases))
    sp = to_spark(spark, frame)
    columns = [label_column(r, sp.drop("label") if f is bare else sp) for r, f in cases]
    got = to_polars(sp.select(*(c.alias(f"c{k}") for k, c in enumerate(columns))))
    assert_frame_equal(got, want)


def test_rules_and_columns_refused(spark_sessions: DataFrame) -> None:
    with pytest.raises(ConfigError, match="string"):
        coclick_counts_spark(spark_sessions, rule=pl.col("rating") >= 4)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="string"):
        coengagement_tables_spark(spark_sessions, rule=pl.col("rating") >= 4)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dwell_time"):
        coclick_counts_spark(spark_sessions, rule="dwell_time >= 30")
    with pytest.raises(ConfigError, match="expected '<column> <op> <number>'"):
        coclick_counts_spark(spark_sessions, rule="rating >= four")
    with pytest.raises(ConfigError, match="item_id"):
        coclick_counts_spark(spark_sessions.drop("item_id"))
    with pytest.raises(ConfigError, match="session_id"):
        coengagement_tables_spark(spark_sessions.drop("session_id"))
    with pytest.raises(ConfigError, match="user_id"):
        sessionize_spark(spark_sessions.drop("user_id"))


def test_explore_stage1_features_with_engine_spark(sessions: pl.DataFrame, tmp_path: Path) -> None:
    """``engine = "spark"`` in an Explore config: the stage-1 features come from Spark and
    equal the in-process ones."""
    from knowrec.explore.config import ExploreConfig
    from knowrec.explore.stages import _features

    local_cfg = ExploreConfig.model_validate({"sessions": {"rule": "rating >= 4"}})
    spark_cfg = local_cfg.model_copy(
        update={"engine": "spark", "spark": {"spark.master": "local[2]"}}
    )
    local = _features(sessions, CUT, local_cfg, tmp_path / "local")
    remote = _features(sessions, CUT, spark_cfg, tmp_path / "spark")
    assert (tmp_path / "spark" / "pairs.parquet").is_dir()
    assert not (tmp_path / "spark" / "history.parquet").exists()
    items = sessions["item_id"].unique().sort().to_list()[:15]
    pairs = pl.DataFrame({"trigger_id": items}).join(pl.DataFrame({"item_id": items}), how="cross")
    assert_frame_equal(remote.transform(pairs), local.transform(pairs))


def test_coclick_recall_path_counts_on_spark(sessions: pl.DataFrame) -> None:
    from knowrec.retrieval.paths import CoClickPath

    opts = {"rule": "rating >= 4", "score": "cosine", "max_neighbours": 20}
    local = CoClickPath(**opts).fit(sessions)
    remote = CoClickPath(**opts, spark={"spark.master": "local[2]"}).fit(sessions)
    triggers = sessions["item_id"].unique().sort().to_list()
    want, got = local.recall(triggers, k=10), remote.recall(triggers, k=10)
    assert sum(map(len, want.values())) > 50 and got == want
