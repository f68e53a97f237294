"""Candidate store backends: SQLite, LMDB and a real redis-server on loopback."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowrec.errors import ConfigError, DataFormatError, UnavailableError
from knowrec.retrieval.store import REDIS_TIMEOUT, Candidate, CandidateStore
from tests.serving import redis_server

ROWS = {
    "t1": [Candidate("a", 0.9, {"coclick": 12.0, "qprime": 0.7}), Candidate("b", 0.5, {"cf": 0.3})],
    "t2": [],
    "üñí": [Candidate("c", 1.0)],
}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


def _open(backend: str, tmp_path: Path, redis_url: str | None) -> CandidateStore:
    if backend == "redis":
        return CandidateStore.open(f"test{tmp_path.name}", "redis", url=redis_url)
    return CandidateStore.open(tmp_path / f"store.{backend}", backend)


@pytest.mark.parametrize("backend", ["sqlite", "lmdb", "redis"])
def test_round_trip(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    with _open(backend, tmp_path, url) as store:
        store.put_many(ROWS)
        assert len(store) == 3
        assert store.get("t1") == ROWS["t1"]
        assert store.get("t2") == [] and store.get("missing") is None
        store.put_many({"t2": ROWS["t1"][:1]})  # replaces
        assert store.get("t2") == ROWS["t1"][:1]
    if backend != "redis":
        with _open(backend, tmp_path, url) as again:  # persisted
            assert again.get("üñí") == ROWS["üñí"]


def test_corrupt_store_and_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataFormatError, match=r"bad\.sqlite"):
        CandidateStore.open(bad)
    with CandidateStore.open(tmp_path / "ok.sqlite") as store:
        store.db.execute("INSERT INTO c VALUES ('x', ?)", (b"{not json",))
        with pytest.raises(DataFormatError, match="trigger 'x'"):
            store.get("x")
    with pytest.raises(ConfigError, match="known are sqlite"):
        CandidateStore.open(tmp_path / "s", "leveldb")
    with pytest.raises(ConfigError, match="cannot reach Redis"):
        CandidateStore.open("p", "redis", url="redis://127.0.0.1:1/0")


def test_redis_that_goes_away_fails_fast(tmp_path: Path) -> None:
    with redis_server(tmp_path) as (url, redis):
        store = CandidateStore.open("gone", "redis", url=url)
        store.put_many(ROWS)
        os.kill(redis.pid, signal.SIGSTOP)  # stalled: the socket timeout ends the wait
        t0 = time.monotonic()
        with pytest.raises(UnavailableError, match=r"Redis at 127\.0\.0\.1:\d+ does not answer"):
            store.get("t1")
        assert time.monotonic() - t0 < REDIS_TIMEOUT + 1  # no retries
        redis.kill()  # gone: refused at once
        redis.wait(10)
        with pytest.raises(UnavailableError, match="does not answer"):
            store.get("t1")
