"""Candidate store backends: SQLite, LMDB and a real redis-server on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowrec.errors import ConfigError, DataFormatError
from knowrec.retrieval.store import Candidate, CandidateStore

ROWS = {
    "t1": [Candidate("a", 0.9, {"coclick": 12.0, "qprime": 0.7}), Candidate("b", 0.5, {"cf": 0.3})],
    "t2": [],
    "üñí": [Candidate("c", 1.0)],
}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (.ci/run installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


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
