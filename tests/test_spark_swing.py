"""SWING on Spark (local mode, a real JVM) gives the in-process results: the same capped
graph, the same top-k lists (up to scores tied to the last bits), the same TRAWL positives."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from knowrec.errors import ConfigError
from knowrec.similarity import build_bipartite, swing
from knowrec.spark import to_polars, to_spark
from knowrec.spark.swing import graph_spark, swing_spark
from knowrec.trawl.config import SwingSection
from knowrec.trawl.stages import swing_positives

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def log() -> pl.DataFrame:
    """A ratings log shaped like MovieLens: popular items and heavy users, repeated
    (user, item) rows, timestamps over a year, ratings 1–5."""
    rng = np.random.default_rng(7)
    n_users, n_items, n_rows = 70, 45, 1400
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    activity = rng.pareto(1.5, n_users) + 0.3
    users = rng.choice(n_users, n_rows, p=activity / activity.sum())
    items = rng.choice(n_items, n_rows, p=pop / pop.sum())
    start = datetime(2003, 1, 1)
    return pl.DataFrame(
        {
            "user_id": [f"u{u:03d}" for u in users],
            "item_id": (items * 7 + 1).astype(np.int64),  # integer ids, not 0..n-1
            "timestamp": [start + timedelta(hours=int(h)) for h in rng.integers(0, 9000, n_rows)],
            "rating": rng.integers(1, 6, n_rows),
        }
    )


def assert_same_top_k(local: pl.DataFrame, spark: pl.DataFrame) -> None:
    """Same (id, rank) rows and scores; neighbours equal except between scores tied to the
    last bits (rtol 1e-9), where either order is right."""
    key = ["id", "rank"]
    joined = local.join(spark, on=key, how="full", coalesce=True, suffix="_spark").sort(key)
    assert joined.height == local.height == spark.height
    np.testing.assert_allclose(joined["score_spark"], joined["score"], rtol=1e-9)
    differ = joined.filter(pl.col("neighbour_id") != pl.col("neighbour_id_spark"))
    for row in differ.iter_rows(named=True):
        same_id = local.filter(pl.col("id") == row["id"])
        tied = same_id.filter(np.isclose(same_id["score"], row["score"], rtol=1e-9, atol=0))
        assert tied.height > 1, f"{row} differs without a tie"
    assert differ.height <= 0.05 * joined.height


def test_capped_graph_is_the_in_process_graph(spark: Any, log: pl.DataFrame) -> None:
    caps = {"max_users_per_item": 12, "max_items_per_user": 9}
    graph = build_bipartite(log, **caps)
    users, items = graph.matrix.nonzero()
    local = pl.DataFrame({"u": graph.user_ids[users], "i": graph.item_ids[items]})
    edges = to_polars(graph_spark(to_spark(spark, log), **caps))
    assert edges.sort("u", "i").equals(local.sort("u", "i"))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"alpha": 0.5, "beta": 0.35, "c": 2.0, "max_users_per_item": 15, "max_items_per_user": 12},
    ],
)
def test_top_k_equals_the_in_process_version(
    spark: Any, log: pl.DataFrame, options: dict[str, Any]
) -> None:
    frame = to_spark(spark, log)
    for side in ("item", "user"):
        local = swing(log, side=side, top_k=5, **options).to_frame()
        remote = to_polars(swing_spark(frame, side=side, top_k=5, **options))
        assert_same_top_k(local, remote.cast({"id": local["id"].dtype}))


def test_trawl_positives_on_spark(spark: Any, log: pl.DataFrame, tmp_path: Path) -> None:
    train = log.with_columns(label=(pl.col("rating") > 3).cast(pl.Int8))
    cfg = SwingSection(max_users_per_item=20, max_items_per_user=15)
    local = swing_positives(train, cfg)
    remote = swing_positives(
        train, cfg, engine="spark", spark={"spark.master": "local[2]"}, workdir=tmp_path
    )
    for side in ("user", "item"):
        a, b = local[side], remote[side]
        assert a.schema == b.schema and a["id"].equals(b["id"])
        np.testing.assert_allclose(b["score"].fill_null(-1), a["score"].fill_null(-1), rtol=1e-9)
        same = (a["positive_id"] == b["positive_id"]).fill_null(True)
        assert same.mean() >= 0.9  # the rest are tied scores (checked in the test above)
    assert (tmp_path / "positives_item.parquet").is_dir()


def test_bad_options_are_config_errors(spark: Any, log: pl.DataFrame) -> None:
    frame = to_spark(spark, log)
    with pytest.raises(ConfigError, match="cap_order"):
        swing_spark(frame, max_users_per_item=3, cap_order="random")
    with pytest.raises(ConfigError, match="timestamp"):
        swing_spark(frame.drop("timestamp"), max_items_per_user=3)
    with pytest.raises(ConfigError, match="alpha"):
        swing_spark(frame, alpha=-1.0)


def test_engine_settings_are_checked(tmp_path: Path) -> None:
    from knowrec.config import validate
    from knowrec.spark import check_engine
    from knowrec.trawl.config import TrawlConfig

    with pytest.raises(ConfigError, match="engine"):
        validate(TrawlConfig, {"engine": "dask"})
    with pytest.raises(ConfigError, match="engine must be one of"):
        check_engine("dask")
    assert validate(TrawlConfig, {"engine": "spark"}).engine == "spark"
    # LLM batches move to Spark only with the openai backend (executors call its server);
    # a local model stays in process
    from knowrec.llm.openai import OpenAILLM
    from knowrec.spark.llm import SparkLLM, spark_llm

    remote = spark_llm("openai", {}, tmp_path / "out", model="m", base_url="http://x/v1")
    assert isinstance(remote, SparkLLM) and isinstance(remote, OpenAILLM)
    remote.close()
