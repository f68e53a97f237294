"""A real `knowrec serve` (or any HTTP server command) in a subprocess, for the tests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    command: Sequence[str],
    port: int,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    ready: str = "/ready",
    timeout: float = 120.0,
) -> Iterator[str]:
    """Start ``command`` (serving on ``port``), wait until ``ready`` answers 200, yield its
    base URL; stop it afterwards. A server that dies or is never ready fails the test."""
    server = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        answer = "no answer"
        while True:
            try:
                response = httpx.get(f"{url}{ready}", timeout=5)
                if response.status_code == 200:
                    break
                answer = response.text
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, f"server not ready: {answer}"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
