"""The heavy batch parts of knowrec on Apache Spark (docs/scaling.md).

Everything here gives the same results as the in-process version it mirrors, so a user can
move a step to a cluster by changing ``engine = "spark"`` in the config (or ``--engine``):

- :func:`knowrec.spark.swing.swing_spark` — SWING positives (:func:`knowrec.similarity.swing`);
- :mod:`knowrec.spark.coengagement` — sessions (:func:`knowrec.data.protocol.sessionize`),
  co-click counts (:func:`knowrec.similarity.coclick.coclick_counts`) and the stage-1
  co-engagement tables, saved for :meth:`knowrec.ranking.features.CoEngagementFeatures.load`;
- :func:`knowrec.spark.llm.generate_knowledge_spark` — LLM knowledge generation
  (:meth:`knowrec.knowledge.KnowledgeGenerator.generate`), its requests answered by an
  OpenAI-compatible server from every partition; :func:`knowrec.spark.llm.answer_requests_spark`
  for any batch of LLM requests;

A step reads Spark DataFrames (or Parquet) and writes Parquet. :func:`spark_session` builds
the session from the user's settings (``spark.master`` and any other ``spark.*`` key);
PySpark comes with the ``spark`` extra and needs a Java runtime (17 or newer).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from knowrec.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

Engine = Literal["local", "spark"]
ENGINES: tuple[str, ...] = ("local", "spark")

# Local-mode defaults; any key the user sets wins. 200 shuffle partitions (Spark's default)
# cost more in task overhead than they bring on one machine; timestamps are wall-clock
# values in knowrec (naive datetimes), so the session time zone is fixed to UTC.
_DEFAULTS: dict[str, str] = {
    "spark.master": "local[*]",
    "spark.app.name": "knowrec",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.memory": "2g",
}


def check_engine(engine: str) -> Engine:
    """``engine`` if it is one knowrec knows, else a :class:`ConfigError`."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    return engine  # type: ignore[return-value]


def spark_session(settings: Mapping[str, Any] | None = None) -> SparkSession:
    """A Spark session with ``settings`` (``{"spark.master": "spark://host:7077", …}``) over
    knowrec's local-mode defaults; an active session with the same master is reused."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("engine = 'spark' needs PySpark: pip install 'knowrec[spark]'") from None
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise ConfigError(
            "engine = 'spark' needs a Java runtime (17 or newer), e.g. "
            "apt-get install openjdk-17-jre-headless, or JAVA_HOME set"
        )
    conf = {**_DEFAULTS, **{str(k): str(v) for k, v in (settings or {}).items()}}
    if conf["spark.master"].startswith("local"):  # Python workers: this interpreter (venv)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    bad = [k for k in conf if not k.startswith("spark.")]
    if bad:
        raise ConfigError(f"Spark settings must be spark.* keys, got {bad}")
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    with warnings.catch_warnings():  # PySpark 4.3 warns about pandas 3, which knowrec's calls avoid
        warnings.simplefilter("ignore", FutureWarning)
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf.get("spark.log.level", "ERROR"))
    return spark


def to_spark(spark: SparkSession, frame: pl.DataFrame) -> DataFrame:
    """A polars frame as a Spark DataFrame (through Arrow; for tests and small inputs —
    large inputs should be read by Spark from Parquet)."""
    return spark.createDataFrame(frame.to_arrow())


def to_polars(frame: DataFrame) -> pl.DataFrame:
    """A (small) Spark DataFrame collected into polars through Arrow; timestamps come back
    as the naive datetimes knowrec uses."""
    out: pl.DataFrame = pl.from_arrow(frame.toArrow())  # type: ignore[assignment]
    return out.with_columns(pl.col(pl.Datetime(time_zone="UTC")).dt.replace_time_zone(None))
