"""Fixtures shared by test files: the real LLM's TRAWL knowledge of the tiny world is
generated once per session (it is the most expensive thing the tests do) and read by the
knowledge-quality test and the TRAWL pipeline test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import polars as pl
import pytest

from knowrec.data.synth import World, generate_world

THREADS = int(os.environ.get("KNOWREC_TEST_THREADS", "2"))


@pytest.fixture(scope="session")
def tiny_world() -> World:
    return generate_world(seed=0, size="tiny")


@pytest.fixture(scope="session")
def session_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from knowrec.llm.llamacpp import LlamaCppLLM

    # KNOWREC_TEST_LLM_CACHE: a persistent answer cache for local re-runs (CI leaves it
    # unset, so every session asks the model afresh).
    cache = os.environ.get("KNOWREC_TEST_LLM_CACHE") or tmp_path_factory.mktemp("llm") / "c.sqlite"
    model = LlamaCppLLM(n_ctx=2048, n_threads=THREADS, cache=cache, progress=False)
    yield model
    model.close()


@pytest.fixture(scope="session")
def demo_trawl_items(tiny_world: World, session_llm: object) -> pl.DataFrame:
    """TRAWL item knowledge of every tiny-world item, with the demo's settings."""
    from knowrec.knowledge import KnowledgeGenerator
    from knowrec.pipelines.demo import demo_config

    settings = demo_config().knowledge.settings
    gen = KnowledgeGenerator(settings, llm=session_llm, progress=False)
    return gen.generate(tiny_world.movies, "trawl", "item")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """A local Spark session (two cores) for the tests of knowrec.spark; skipped without a
    Java runtime (`.ci/run` installs one)."""
    import shutil

    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        pytest.skip("no Java runtime: the Spark tests need one (apt-get install default-jre)")
    from knowrec.spark import spark_session

    session = spark_session({"spark.master": "local[2]", "spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()
