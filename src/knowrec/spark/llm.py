"""Batch LLM jobs on Spark: every partition asks an OpenAI-compatible server.

:func:`answer_requests_spark` answers any list of :class:`~knowrec.llm.base.Request` (the
same requests, cache keys, validation and failure records as :meth:`LLM.map
<knowrec.llm.base.LLM.map>` of the ``openai`` backend); :class:`SparkLLM` is that backend
with its ``map`` on Spark, so any knowrec component batches through it (pipelines get it
from :func:`spark_llm`); :func:`generate_knowledge_spark` is
:meth:`KnowledgeGenerator.generate <knowrec.knowledge.generate.KnowledgeGenerator.generate>`
with it.

How it runs: the driver builds the requests and their cache keys, drops those already
answered (in ``out`` or in the local SQLite ``cache``) and hands the rest to Spark as
(key, id, request JSON) rows. Each task creates an :class:`~knowrec.llm.openai.OpenAILLM`
from the plain ``llm_settings`` and answers its rows (``concurrency`` requests in flight
per task), writing what it finished as a Parquet file under ``out`` every ``chunk``
answers or ``flush_s`` seconds (``part-*.parquet``: key, id, the answer as the cache
stores it). A killed or failed job therefore keeps its finished answers, and a rerun with
the same ``out`` asks only for the rest. The driver then reads the answers back, copies
them into ``cache`` (so that a later local run, e.g. ``knowrec run``, finds every answer
there and calls no model) and returns the results in request order.

On a cluster a user needs

- an OpenAI-compatible server that the executors can reach (vLLM, a llama.cpp server,
  Ollama, a hosted API): ``llm_settings = {"model": ..., "base_url": "http://gpu:8000/v1",
  "schema_mode": "json_schema", "concurrency": 8}`` (the keywords of ``OpenAILLM``; an API
  key is read on the executors from ``api_key_env``, e.g. set through
  ``spark.executorEnv.OPENAI_API_KEY``);
- ``spark.master`` and the other ``spark.*`` settings for :func:`knowrec.spark.spark_session`;
- ``out`` on storage that the driver and every executor see: a shared directory, or a
  URI that PyArrow's file systems open (``s3://bucket/answers``, ``gs://…``, ``hdfs://…``);
- knowrec installed on the executors (``PYSPARK_PYTHON`` naming that Python).

Requests in flight at once: ``partitions`` × ``concurrency``; size them to the server.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from knowrec import errors
from knowrec.errors import ConfigError, KnowrecError, LLMError
from knowrec.llm.base import LLM, Request, Result, Validator
from knowrec.llm.cache import ResultCache
from knowrec.llm.openai import OpenAILLM

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem
    from pyspark.sql import SparkSession

    from knowrec.data.tables import Dataset
    from knowrec.knowledge.factors import Side
    from knowrec.knowledge.generate import KnowledgeConfig

log = logging.getLogger(__name__)

#: One answer in ``out``: the :class:`ResultCache` row, the caller's id, and whether the
#: answer is final (``stored``: what ``LLM.map`` would cache; refused requests and
#: unexpected errors are recorded but asked again by the next run).
ANSWER_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("id", pa.string()),
        ("backend", pa.string()),
        ("model", pa.string()),
        ("kind", pa.string()),
        ("status", pa.string()),
        ("text", pa.string()),
        ("value", pa.string()),
        ("error", pa.string()),
        ("attempts", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("prompt_eval_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("prompt_ms", pa.float64()),
        ("gen_ms", pa.float64()),
        ("total_ms", pa.float64()),
        ("truncated", pa.bool_()),
        ("created", pa.float64()),
        ("stored", pa.bool_()),
    ]
)
#: What each task reports to the driver: one row per Parquet file it wrote, and a last
#: row with the error that stopped it (an unreachable server), if any.
_REPORT_SCHEMA = pa.schema(
    [
        ("partition", pa.int64()),
        ("file", pa.string()),
        ("answers", pa.int64()),
        ("calls", pa.int64()),
        ("error", pa.string()),
        ("kind", pa.string()),
    ]
)
_REPORT_DDL = (
    "partition BIGINT, file STRING, answers BIGINT, calls BIGINT, error STRING, kind STRING"
)
_INPUT_SCHEMA = pa.schema([("key", pa.string()), ("id", pa.string()), ("request", pa.string())])


def request_json(request: Request) -> str:
    """``request`` as JSON (:func:`request_from_json` reads it back with the same key)."""
    return json.dumps(asdict(request), ensure_ascii=False)


def request_from_json(text: str) -> Request:
    """The request written by :func:`request_json`."""
    fields = json.loads(text)
    if fields.get("labels") is not None:
        fields["labels"] = tuple(fields["labels"])
    return Request(**fields)


def openai_llm(llm_settings: Mapping[str, Any]) -> LLM:
    """The ``openai`` backend built from plain settings (no cache, no progress bar)."""
    from knowrec.llm import make_llm

    if "cache" in llm_settings:
        raise ConfigError("llm_settings may not hold 'cache': pass cache= to the Spark job")
    return make_llm("openai", **{**llm_settings, "progress": False})


def answer_requests_spark(
    spark: SparkSession,
    requests: Sequence[Request],
    llm_settings: Mapping[str, Any],
    out: str | Path,
    *,
    validate: Validator | None = None,
    cache: str | Path | ResultCache | None = None,
    partitions: int | None = None,
    chunk: int = 64,
    flush_s: float = 30.0,
    retry_failed: bool = False,
) -> list[Result]:
    """Answer ``requests`` on Spark through the server of ``llm_settings``; results in
    request order, as :meth:`LLM.map` returns them (``cached`` for answers found in
    ``out`` or ``cache``).

    ``partitions``: Spark tasks (default: the cluster's default parallelism, at most one
    per request). ``validate`` runs on the executors and again on the driver, so it must
    be picklable. A bad answer fails only its item; a server that cannot be reached (or
    another error of the backend) stops the tasks it hits and, once the finished answers
    are saved, raises one :class:`LLMError` naming how many requests are left.
    """
    if chunk < 1 or flush_s <= 0:
        raise ConfigError(f"chunk must be >= 1 and flush_s > 0, got {chunk} and {flush_s}")
    llm = openai_llm(llm_settings)
    items = list(requests)
    keys = [llm.key(r) for r in items]
    first: dict[str, int] = {}  # each key's first request
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    store = ResultCache(cache) if isinstance(cache, str | Path) else cache
    target = _target(out)
    fs, root = _filesystem(target)
    try:
        done: dict[str, Result] = {}
        in_cache = store.get_many(first) if store is not None else {}
        for key, row in in_cache.items():
            hit = llm.from_row(row, items[first[key]], validate, retry_failed)
            if hit is not None:
                done[key] = hit
        from_cache = set(done)
        saved = _read_answers(fs, root, [k for k in first if k not in done], final_only=True)
        fresh: dict[str, dict[str, Any]] = {}  # rows of `out` to copy into the cache
        for key, row in saved.items():
            hit = llm.from_row(row, items[first[key]], validate, retry_failed)
            if hit is not None:
                done[key] = hit
                fresh[key] = row
        todo = [k for k in first if k not in done]
        reports = _run_job(
            spark, llm_settings, [(k, items[first[k]]) for k in todo], target,
            validate=validate, partitions=partitions, chunk=chunk, flush_s=flush_s,
        )  # fmt: skip
        files = [r["file"] for r in reports if r["file"]]
        for key, row in _read_answers(fs, files, todo, final_only=False).items():
            result = llm.from_row(row, items[first[key]], validate, retry_failed=False)
            if result is None:  # accepted on the executor, not here: another validator
                result = Result(row["id"], key, ok=False, error="rejected by the validator")
            done[key] = replace(result, cached=False)
            if row["stored"]:
                fresh[key] = row
        if store is not None:
            for key, row in fresh.items():
                if key not in from_cache:
                    store.put(key, row)
    finally:
        llm.close()
        if store is not None and store is not cache:
            store.close()
    failures = [r for r in reports if r["error"]]
    log.info(
        "%d LLM requests: %d answered before, %d asked on Spark (%d model calls, %d tasks "
        "stopped), %d failed items",
        len(first),
        len(first) - len(todo),
        len(todo),
        _calls(reports),
        len(failures),
        sum(not r.ok for r in done.values()),
    )
    if failures:
        left = sum(k not in done for k in first)
        raise _job_error(failures, left, len(first), out)
    results = []
    seen: set[str] = set()
    for request, key in zip(items, keys, strict=True):
        result = done[key]
        results.append(replace(result, id=request.id, cached=result.cached or key in seen))
        seen.add(key)
    return results


def generate_knowledge_spark(
    spark: SparkSession,
    data: Dataset,
    method: str,
    side: Side,
    *,
    llm_settings: Mapping[str, Any],
    out: str | Path,
    config: KnowledgeConfig | Mapping[str, Any] | None = None,
    ids: Sequence[str] | None = None,
    history: pl.DataFrame | None = None,
    cut: datetime | pl.DataFrame | None = None,
    limit: int | None = None,
    cache: str | Path | ResultCache | None = None,
    partitions: int | None = None,
    chunk: int = 64,
    flush_s: float = 30.0,
) -> pl.DataFrame:
    """The knowledge table of an LLM ``method`` (``trawl``, ``kar``, LLM summaries) with
    its requests answered on Spark: ``KnowledgeGenerator(config, llm=SparkLLM(...))
    .generate(...)``, the table, prompts and cache keys of a local run with the ``openai``
    backend of ``llm_settings``.

    ``out`` keeps the answers (a rerun resumes from it); with ``cache`` they are also
    written to that SQLite cache, where a local run with the same settings finds them.
    """
    from knowrec.knowledge.generate import KnowledgeConfig, KnowledgeGenerator

    if "cache" in llm_settings:
        raise ConfigError("llm_settings may not hold 'cache': pass cache= to the Spark job")
    if config is not None and not isinstance(config, KnowledgeConfig):
        config = KnowledgeConfig.from_mapping(dict(config))
    job = {"partitions": partitions, "chunk": chunk, "flush_s": flush_s}
    llm = SparkLLM({}, out, spark=spark, job=job, cache=cache, **llm_settings)
    try:
        gen = KnowledgeGenerator(config, llm=llm, progress=False)
        return gen.generate(data, method, side, ids=ids, history=history, cut=cut, limit=limit)
    finally:
        if isinstance(cache, ResultCache):
            llm.cache = None  # the caller's cache stays open
        llm.close()


class SparkLLM(OpenAILLM):
    """The ``openai`` backend whose :meth:`map` runs on Spark (:func:`answer_requests_spark`,
    answers kept in ``out``): every batch a pipeline sends — knowledge, judge grades, Q'
    queries — becomes a Spark job; single calls go to the server from the driver.
    ``spark``: a session to use instead of ``spark_session(spark_settings)``; ``job``: the
    ``partitions``, ``chunk`` and ``flush_s`` of :func:`answer_requests_spark`.
    ``settings``: the keywords of :class:`~knowrec.llm.openai.OpenAILLM`."""

    def __init__(
        self,
        spark_settings: Mapping[str, Any],
        out: str | Path,
        *,
        spark: SparkSession | None = None,
        job: Mapping[str, Any] | None = None,
        **settings: Any,
    ):
        super().__init__(**settings)
        self.spark_settings, self.out, self.spark, self.job = dict(spark_settings), out, spark, job
        self._plain = {k: v for k, v in settings.items() if k not in ("cache", "progress")}

    def map(
        self,
        requests: Iterable[Request | str],
        *,
        validate: Validator | None = None,
        progress: bool | None = None,
        desc: str | None = None,
        retry_failed: bool = False,
    ) -> list[Result]:
        from knowrec.spark import spark_session

        items = [r if isinstance(r, Request) else Request(r) for r in requests]
        return answer_requests_spark(
            self.spark or spark_session(self.spark_settings), items, self._plain, self.out,
            validate=validate, cache=self.cache, retry_failed=retry_failed, **(self.job or {}),
        )  # fmt: skip


def spark_llm(
    backend: str, spark_settings: Mapping[str, Any], out: str | Path, **settings: Any
) -> LLM:
    """The LLM of a pipeline whose config says ``engine = "spark"``: a :class:`SparkLLM` for
    the ``openai`` backend; any other backend (a model on this machine, which executors
    cannot share) stays in process, with a warning."""
    if backend != "openai":
        from knowrec.llm import make_llm

        log.warning(
            "engine = 'spark': the %r LLM backend runs in process; LLM batches run on Spark "
            "with backend = 'openai' and a server's base_url that the executors can reach",
            backend,
        )
        return make_llm(backend, **settings)
    return SparkLLM(spark_settings, out, **settings)


# --------------------------------------------------------------------------- the job


def _run_job(
    spark: SparkSession,
    llm_settings: Mapping[str, Any],
    work: list[tuple[str, Request]],
    target: str,
    *,
    validate: Validator | None,
    partitions: int | None,
    chunk: int,
    flush_s: float,
) -> list[dict[str, Any]]:
    """Answer ``work`` on Spark; each task's reports (files written, the error)."""
    if not work:
        return []
    n = partitions or spark.sparkContext.defaultParallelism
    if n < 1:
        raise ConfigError(f"partitions must be >= 1, got {n}")
    n = min(n, len(work))
    rows = pa.table(
        {
            "key": [k for k, _ in work],
            "id": [r.id for _, r in work],
            "request": [request_json(r) for _, r in work],
        },
        schema=_INPUT_SCHEMA,
    )
    run = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    task = _answer_task(dict(llm_settings), validate, target, run, chunk, flush_s)
    frame = spark.createDataFrame(rows).repartition(n)
    spark.sparkContext.setJobDescription(f"knowrec: {len(work)} LLM requests, {n} tasks")
    try:
        with warnings.catch_warnings():  # PySpark 4.3 warns about pandas 3, which is not used
            warnings.simplefilter("ignore", FutureWarning)
            job = frame.mapInArrow(task, _REPORT_DDL)
        reports = job.toArrow().to_pylist()
    finally:
        spark.sparkContext.setJobDescription(None)  # type: ignore[arg-type]
    return reports


def _answer_task(
    settings: dict[str, Any],
    validate: Validator | None,
    target: str,
    run: str,
    chunk: int,
    flush_s: float,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each Spark task runs over its (key, id, request) rows."""

    def answer(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq
        from pyspark import TaskContext

        fs, root = _filesystem(target)
        context = TaskContext.get()
        part = context.partitionId() if context else 0
        attempt = context.attemptNumber() if context else 0
        work = [
            (row["key"], request_from_json(row["request"]))
            for batch in batches
            for row in batch.to_pylist()
        ]
        buffer: list[dict[str, Any]] = []
        files = 0

        def report(
            file: str | None, answers: int, calls: int, error: Exception | None = None
        ) -> pa.RecordBatch:
            return pa.RecordBatch.from_pylist(
                [
                    {
                        "partition": part,
                        "file": file,
                        "answers": answers,
                        "calls": calls,
                        "error": None if error is None else str(error),
                        "kind": None if error is None else type(error).__name__,
                    }
                ],
                schema=_REPORT_SCHEMA,
            )

        def flush() -> str:
            nonlocal files
            name = f"part-{run}-{part:05d}-{attempt}-{files:05d}.parquet"
            files += 1
            pq.write_table(pa.Table.from_pylist(buffer, ANSWER_SCHEMA), f"{root}/_{name}",
                           filesystem=fs)  # fmt: skip
            fs.move(f"{root}/_{name}", f"{root}/{name}")  # visible only when complete
            buffer.clear()
            return f"{root}/{name}"

        llm = None
        error: Exception | None = None
        since = time.monotonic()
        try:
            llm = openai_llm(settings)
            requests = dict(work)
            for key, result, row in llm.answer(work, validate):
                record = row or llm.cache_row(requests[key].kind, result)
                record.update(key=key, id=result.id, created=time.time(), stored=row is not None)
                buffer.append(record)
                if len(buffer) >= chunk or time.monotonic() - since >= flush_s:
                    answers, since = len(buffer), time.monotonic()
                    yield report(flush(), answers, llm.calls)
        except KnowrecError as exc:  # an unreachable server, a bad setting: stop this task
            error = exc
        finally:
            if llm is not None:
                llm.close()
        if buffer:
            answers = len(buffer)
            yield report(flush(), answers, llm.calls if llm else 0)
        if error is not None:
            yield report(None, 0, llm.calls if llm else 0, error)

    return answer


# --------------------------------------------------------------------------- answers in `out`


def _target(out: str | Path) -> str:
    """``out`` as a URI or an absolute local path (the executors open it themselves)."""
    target = str(out)
    return target if "://" in target else str(Path(target).expanduser().resolve())


def _filesystem(target: str) -> tuple[FileSystem, str]:
    """The file system and root path of ``target`` (created)."""
    from pyarrow.fs import FileSystem

    fs, root = FileSystem.from_uri(target)
    fs.create_dir(root, recursive=True)
    return fs, root.rstrip("/")


def _read_answers(
    fs: FileSystem, source: str | list[str], keys: Sequence[str], *, final_only: bool
) -> dict[str, dict[str, Any]]:
    """The answers for ``keys`` in the Parquet files of ``source`` (``out``'s root or a
    list of files): a final answer where there is one, else the newest."""
    import pyarrow.dataset as ds

    if not keys or (isinstance(source, list) and not source):
        return {}
    dataset = ds.dataset(source, schema=ANSWER_SCHEMA, format="parquet", filesystem=fs)
    where = ds.field("key").isin(list(keys))
    if final_only:
        where = where & ds.field("stored")
    found: dict[str, dict[str, Any]] = {}
    for row in sorted(dataset.to_table(filter=where).to_pylist(), key=_rank):
        found[row["key"]] = row  # the best row of each key comes last
    return found


def _calls(reports: list[dict[str, Any]]) -> int:
    """Model calls of the job (each report carries its task's count so far)."""
    most: dict[int, int] = {}
    for r in reports:
        most[r["partition"]] = max(most.get(r["partition"], 0), r["calls"] or 0)
    return sum(most.values())


def _rank(row: Mapping[str, Any]) -> tuple[bool, bool, float]:
    return bool(row["stored"]), row["status"] == "ok", row["created"] or 0.0


def _job_error(failures: list[dict[str, Any]], left: int, total: int, out: str | Path) -> Exception:
    """One error for the tasks that stopped (the first message; the same class)."""
    first = failures[0]
    cls = getattr(errors, str(first["kind"]), None)
    if not (isinstance(cls, type) and issubclass(cls, KnowrecError)):
        cls = LLMError
    more = f" ({len(failures)} tasks stopped)" if len(failures) > 1 else ""
    return cls(
        f"{first['error']}{more}; {left} of {total} requests are not answered, the "
        f"{total - left} answered are saved in {out}: run again to resume"
    )
