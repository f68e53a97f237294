"""knowrec.spark.llm: knowledge generation as a Spark job (local[2]) whose tasks ask a real
``llama_cpp.server`` (the 1.5B Qwen model, one thread) on loopback.

Requests reaching the server are counted from its access log (one line per
``POST /v1/chat/completions``), so "nothing was asked again" is checked on the server's
side, not only on knowrec's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from knowrec.data.synth import World
from knowrec.errors import LLMError
from knowrec.knowledge import KNOWLEDGE_SCHEMA, KnowledgeGenerator
from knowrec.llm import DEFAULT_MODEL, ResultCache, make_llm, pull
from knowrec.spark.llm import generate_knowledge_spark, spark_llm
from tests.serving import free_port, llama_server

pytestmark = pytest.mark.slow

# The demo's TRAWL item settings (three key factors), with short answers.
CONFIG: dict[str, Any] = {
    "factors": ["genres", "mood", "audience"],
    "item_tokens": 128,
    "trawl_max_tokens": 64,
}
CHAT = "POST /v1/chat/completions"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real llama.cpp server with the model (one thread): its URL and its log."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with llama_server(pull(DEFAULT_MODEL), log) as url:
        yield url, log


def settings(url: str) -> dict[str, Any]:
    """What a user would give: the server and the model's name there."""
    return {"model": DEFAULT_MODEL, "base_url": url, "concurrency": 1, "backoff": 0.05}


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


def served(log: Path) -> int:
    """Chat requests the server has answered so far."""
    return log.read_text(errors="replace").count(CHAT)


def answers(out: Path) -> pl.DataFrame:
    """Every answer row written under ``out`` (one Parquet file per flush)."""
    files = sorted(out.glob("part-*.parquet"))
    return pl.concat([pl.from_arrow(pq.read_table(f)) for f in files])  # type: ignore[misc]


def test_unreachable_server_is_one_clear_llm_error(
    spark: Any, tiny_world: World, tmp_path: Path
) -> None:
    ids = tiny_world.movies.items["item_id"].to_list()[:2]
    with pytest.raises(LLMError) as caught:
        generate_knowledge_spark(
            spark, tiny_world.movies, "trawl", "item", config=CONFIG, ids=ids,
            llm_settings={**settings(dead_url()), "http_retries": 1}, out=tmp_path / "out",
        )  # fmt: skip
    message = str(caught.value)
    assert "failed after 2 attempts: ConnectError" in message
    assert "2 of 2 requests are not answered" in message and "run again to resume" in message
    assert "Traceback" not in message and "java" not in message.lower()
    assert not list((tmp_path / "out").glob("*.parquet"))


def test_trawl_knowledge_on_spark_resumes_and_fills_the_local_cache(
    spark: Any, server: tuple[str, Path], tiny_world: World, tmp_path: Path
) -> None:
    url, log = server
    data = tiny_world.movies
    ids = data.items["item_id"].to_list()[:4]
    out, cache = tmp_path / "answers", tmp_path / "llm.sqlite"

    def run(llm_settings: dict[str, Any], **kw: Any) -> pl.DataFrame:
        return generate_knowledge_spark(
            spark, data, "trawl", "item", config=CONFIG, ids=ids, llm_settings=llm_settings,
            out=out, cache=cache, partitions=2, **kw,
        )  # fmt: skip

    # An interrupted job: only the first two items get answered.
    before = served(log)
    first = run(settings(url), limit=2)
    assert first["id"].to_list() == ids[:2]
    assert served(log) - before == answers(out)["attempts"].sum() >= 2

    # A job whose server has gone: the answers stay, the error says what is left.
    with pytest.raises(LLMError, match="2 of 4 requests are not answered, the 2 answered"):
        run({**settings(dead_url()), "http_retries": 0})
    assert answers(out).height == 2

    # The whole job: only the two missing items reach the server.
    before, files = served(log), set(out.glob("part-*.parquet"))
    table = run(settings(url))
    new = pl.concat([pl.from_arrow(pq.read_table(f)) for f in set(out.glob("part-*")) - files])
    assert sorted(new["id"].to_list()) == sorted(ids[2:])
    assert served(log) - before == new["attempts"].sum()
    saved = answers(out)
    assert saved.height == saved["key"].n_unique() == 4  # no finished item was redone
    assert spark.read.parquet(str(out)).count() == 4  # `out` is one Parquet data set

    # The knowledge table: one valid row per item, in order.
    assert table.schema == pl.Schema(KNOWLEDGE_SCHEMA) and table["id"].to_list() == ids
    assert table.head(2).equals(first)
    assert table["status"].to_list() == ["ok"] * 4, table["error"].to_list()
    gen = KnowledgeGenerator(CONFIG, llm=make_llm("openai", **settings(dead_url()), cache=cache))
    factors = gen.domain.for_side("item")
    for row in table.iter_rows(named=True):
        fields = json.loads(row["fields"])
        assert set(fields) == {f.name for f in factors}
        assert fields["genres"], row  # every movie has a genre
        closed = [f for f in factors if f.values is not None]
        for f in closed:
            given = [fields[f.name]] if isinstance(fields[f.name], str) else fields[f.name]
            assert set(given) <= set(f.values or []), (f.name, given)
        assert row["text"] == gen.domain.render(fields, "item") and len(row["text"]) > 10
        assert row["model"] == DEFAULT_MODEL and row["prompt_hash"] == gen.prompt_hash(
            "trawl", "item"
        )

    # The same cache keys as the local path's requests, in the output and in the cache.
    keys = [gen.llm.key(r) for r in gen.llm_requests(data, "trawl", "item", ids=ids)]
    assert sorted(saved["key"].to_list()) == sorted(keys)
    with ResultCache(cache) as stored:
        assert set(stored.get_many(keys)) == set(keys)

    # A local run with that cache calls no model (its server does not exist) ...
    local = gen.generate(data, "trawl", "item", ids=ids)
    assert local.equals(table) and gen.stats.cached == 4 and gen.llm.calls == 0
    gen.llm.close()

    # ... and neither does the Spark job run again (from `out` alone: no cache given).
    files = set(out.glob("part-*.parquet"))
    again = generate_knowledge_spark(
        spark, data, "trawl", "item", config=CONFIG, ids=ids,
        llm_settings=settings(dead_url()), out=out,
    )  # fmt: skip
    assert again.equals(table) and set(out.glob("part-*.parquet")) == files


def test_a_bad_answer_fails_its_item_only(
    spark: Any, server: tuple[str, Path], tiny_world: World, tmp_path: Path
) -> None:
    # 16 tokens cannot hold the JSON object: every attempt is cut → a recorded failure,
    # kept in the output like the local path keeps it in its cache.
    url, log = server
    ids = tiny_world.movies.items["item_id"].to_list()[:1]
    config = {**CONFIG, "trawl_max_tokens": 16}
    kw: dict[str, Any] = {"config": config, "ids": ids, "out": tmp_path / "out"}
    table = generate_knowledge_spark(
        spark, tiny_world.movies, "trawl", "item", llm_settings=settings(url), **kw
    )
    assert table["status"].to_list() == ["failed"] and table["text"].null_count() == 1
    assert "max_tokens=16" in table["error"][0]
    row = answers(tmp_path / "out").row(0, named=True)
    assert row["status"] == "failed" and row["stored"] and row["attempts"] == 2
    before = served(log)
    again = generate_knowledge_spark(
        spark, tiny_world.movies, "trawl", "item", llm_settings=settings(dead_url()), **kw
    )
    assert again.equals(table) and served(log) == before


def test_judge_batches_run_as_spark_jobs(
    spark: Any, server: tuple[str, Path], tiny_world: World, tmp_path: Path
) -> None:
    """``spark_llm``: any caller of ``LLM.map`` — here the quality judge — sends its batch
    through Spark; the answers land in ``out`` and the cache, and a rerun asks nobody."""
    from knowrec.judge import Judge

    url, log = server
    out, cache = tmp_path / "answers", tmp_path / "llm.sqlite"
    spark_settings = {"spark.master": "local[2]"}
    items = tiny_world.movies.items["item_id"].to_list()
    pairs = [(items[0], items[1]), (items[0], items[2])]
    llm = spark_llm("openai", spark_settings, out, **settings(url), cache=cache)
    judge = Judge(llm, noun="movie", personas=1, variants="A", item_tokens=48, progress=False)
    before = served(log)
    scores = judge.score(pairs, tiny_world.movies)
    assert scores["status"].to_list() == ["ok", "ok"], scores["error"].to_list()
    assert all(0.0 <= s <= 4.0 for s in scores["score_a"].to_list())
    assert answers(out).height == 2 == served(log) - before  # one call per pair, on Spark
    llm.close()
    again = Judge(
        spark_llm("openai", spark_settings, out, **settings(dead_url()), cache=cache),
        noun="movie", personas=1, variants="A", item_tokens=48, progress=False,
    ).score(pairs, tiny_world.movies)  # fmt: skip
    assert again["score_a"].equals(scores["score_a"]) and served(log) - before == 2
