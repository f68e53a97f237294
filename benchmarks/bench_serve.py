"""`knowrec serve` under load (issue: one HTTP service, load, fuzz and fault tests).

A real server (``knowrec serve --no-access-log``, a subprocess) over an Explore Further, an
HKNR and a TRAWL run, and a closed-loop load generator on loopback (``--concurrency``
keep-alive connections, one request in flight on each; plain asyncio streams writing
HTTP/1.1 requests and reading the status line, headers and ``Content-Length`` body, so
that the generator's own CPU per request is small: an httpx client costs ~1.7 ms of CPU a
request and was the bottleneck): for each endpoint in turn, ``--seconds`` of requests
after one second of warm-up, and its QPS, p50 / p99 latency (as the generator sees it),
errors (any answer but 200, or none), and the CPU time of the server process (psutil) and
of the generator (``time.process_time``), each as a share of one core over the wall time.

The endpoints: item to item (``/recommend?item=ID``, triggers drawn from the run's items
that have candidates), the item page (``/items/ID``), news (``/news/recommend?user=ID``,
readers with a history), TRAWL's ``/ctr/recommend?user=ID`` (users with ratings) and
``/health``. The server answers one request at a time on its
event loop, so in a closed loop latency is queueing: p50 ≈ concurrency / QPS (Little's
law). On a small machine the generator competes with the server for the cores: with
``--pin`` (the default with 2 or more cores) the generator runs on core 0 and the server on
the others, and both CPU shares are reported.

Runs: each ``--run DIR`` (finished runs); without one, the demo's runs
(``knowrec/pipelines/explore_demo.toml``, ``hknr_demo.toml`` and ``trawl_demo.toml`` without
the LLM, the tiny synthetic worlds) are built into ``--out`` first (a few minutes; reused
afterwards). The server's log is
``--out``/server.log.

    .venv/bin/python benchmarks/bench_serve.py [--run runs/x --run runs/y] [--seconds 60]
        [--concurrency 16] [--no-pin]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
import polars as pl
import psutil

from common import ROOT, write_result
from knowrec.runs import read_manifest, run_kind

TARGET_P99_MS = 20.0  # item to item, with no errors
#: endpoint → (path, query) of one request, from a random generator and the run's ids.
Request = Callable[[random.Random], tuple[str, dict[str, Any]]]


# The TRAWL demo without the LLM: DIN with the adapter over the raw item text, one seed.
TRAWL_NO_LLM = [
    "knowledge.methods=['raw']", "backbones=['din']", "seeds=[0]", "ablations=false",
]  # fmt: skip


def build_demo_runs(out: Path) -> list[Path]:
    """The demo's Explore Further, HKNR and TRAWL runs in ``out`` (built when not finished;
    TRAWL: :data:`TRAWL_NO_LLM`)."""
    from knowrec.config import load_config
    from knowrec.explore.config import ExploreConfig
    from knowrec.explore.pipeline import run_explore
    from knowrec.hknr.config import HknrConfig
    from knowrec.hknr.pipeline import run_hknr
    from knowrec.trawl import TrawlConfig, run_trawl

    plans = [("explore", "explore_demo.toml", ExploreConfig, run_explore, [])]
    plans.append(("news", "hknr_demo.toml", HknrConfig, run_hknr, []))
    plans.append(("trawl", "trawl_demo.toml", TrawlConfig, run_trawl, TRAWL_NO_LLM))
    runs = []
    for name, toml, kind, run, overrides in plans:
        if not (out / name / "results.json").exists():
            with resources.as_file(resources.files("knowrec.pipelines") / toml) as path:
                run(load_config(path, kind, overrides), out / name)
        runs.append(out / name)
    return runs


def item_ids(run: Path) -> list[str]:
    from knowrec.explore.service import ExploreService

    items = run / ExploreService.manifest_of(run).items
    return pl.read_parquet(items, columns=["item_id"])["item_id"].cast(pl.String).to_list()


def readers(run: Path) -> list[str]:
    """The users with a history in an HKNR run's protocol."""
    from knowrec.hknr.pipeline import stage_folders

    manifest = json.loads((run / "manifest.json").read_text())
    history = stage_folders(run, manifest)["protocol"] / "history.parquet"
    return pl.read_parquet(history, columns=["user_id"])["user_id"].unique().sort().to_list()


def trawl_users(run: Path) -> list[str]:
    """The users with ratings in a TRAWL run's data."""
    folder = read_manifest(run)["stages"]["data"]["folder"]
    inter = pl.read_parquet(run / folder / "interactions.parquet", columns=["user_id"])
    return inter["user_id"].cast(pl.String).unique().sort().to_list()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    runs: list[Path], port: int, cpus: set[int] | None, log: Path
) -> subprocess.Popen[bytes]:
    """``knowrec serve`` (on ``cpus``: all its threads; its log in ``log``), once every run
    is loaded."""
    command = [sys.executable, "-m", "knowrec", "serve", "--port", str(port), "--no-access-log"]
    command += [x for run in runs for x in ("--run", str(run))]
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit(f"the server did not get ready: {log.read_text()[-2000:]}")


def server_cpu(server: psutil.Process) -> float:
    times = server.cpu_times()
    return times.user + times.system


async def get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, query: dict[str, Any]
) -> int:
    """One GET on a kept-alive connection: its status (the body is read and dropped)."""
    target = f"{path}?{urlencode(query)}" if query else path
    writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if length is None:
        raise ConnectionError("an answer without Content-Length")
    await reader.readexactly(int(length.group(1)))
    return status


async def load(
    url: str, request: Request, seconds: float, concurrency: int, server: psutil.Process
) -> dict[str, Any]:
    """``concurrency`` workers, one connection each, sending ``request`` back to back for
    ``seconds``."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    host, port = url.removeprefix("http://").split(":")
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(concurrency)]

    async def worker(seed: int, until: float, timed: bool) -> None:
        rng = random.Random(seed)
        reader, writer = connections[seed]
        while (t0 := time.perf_counter()) < until:
            path, query = request(rng)
            try:
                status = await get(reader, writer, path, query)
                error = None if status == 200 else str(status)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                error = type(exc).__name__
                reader, writer = connections[seed] = await asyncio.open_connection(host, int(port))
            if timed:
                latencies.append(time.perf_counter() - t0)
                if error is not None:
                    errors[error] += 1

    async def run(duration: float, timed: bool) -> None:
        until = time.perf_counter() + duration
        await asyncio.gather(*(worker(i, until, timed) for i in range(concurrency)))

    await run(1.0, timed=False)  # warm-up: caches filled
    cpu0, server0, t0 = time.process_time(), server_cpu(server), time.perf_counter()
    await run(seconds, timed=True)
    wall = time.perf_counter() - t0
    cpu, served = time.process_time() - cpu0, server_cpu(server) - server0
    for _, writer in connections:
        writer.close()
    ms = 1e3 * np.asarray(latencies)
    qps = len(latencies) / wall
    return {
        "requests": len(latencies),
        "qps": round(qps, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "little_ms": round(1e3 * concurrency / qps, 2),  # closed loop: the queueing latency
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "server_cpu_share": round(served / wall, 2),  # cores
        "generator_cpu_share": round(cpu / wall, 2),
    }


def with_candidates(url: str, items: list[str]) -> list[str]:
    """The triggers among ``items`` that item to item answers (200: they have candidates)."""
    with httpx.Client(base_url=url, timeout=120) as client:
        return [i for i in items if client.get("/recommend", params={"item": i}).is_success]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, action="append", help="a finished run to serve")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "runs" / "bench_serve", help="demo runs, server.log"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--ids", type=int, default=200, help="triggers and readers drawn")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=(os.cpu_count() or 1) >= 2,
        help="the generator on core 0, the server on the others",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = args.run or build_demo_runs(args.out)
    by_kind = {run_kind(run): run for run in reversed(runs)}  # the first of each kind
    cores = sorted(os.sched_getaffinity(0))
    server_cpus = set(cores[1:]) if args.pin else None
    if args.pin:
        os.sched_setaffinity(0, {cores[0]})

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    server = start_server(runs, port, server_cpus, args.out / "server.log")
    ready_s = time.perf_counter() - t0
    rng = random.Random(0)
    requests: dict[str, Request] = {}
    triggers: list[str] = []
    try:
        if "explore" in by_kind:
            items = item_ids(by_kind["explore"])
            items = rng.sample(items, min(args.ids, len(items)))
            triggers = with_candidates(url, items)
            requests["item_to_item"] = lambda r: ("/recommend", {"item": r.choice(triggers)})
            requests["item_page"] = lambda r: (f"/items/{r.choice(items)}", {})
        if "hknr" in by_kind:
            users = readers(by_kind["hknr"])
            users = rng.sample(users, min(args.ids, len(users)))
            requests["news_recommend"] = lambda r: ("/news/recommend", {"user": r.choice(users)})
        if "trawl" in by_kind:
            raters = trawl_users(by_kind["trawl"])
            raters = rng.sample(raters, min(args.ids, len(raters)))
            requests["ctr_recommend"] = lambda r: ("/ctr/recommend", {"user": r.choice(raters)})
        requests["health"] = lambda r: ("/health", {})
        process = psutil.Process(server.pid)
        results = {
            name: asyncio.run(load(url, request, args.seconds, args.concurrency, process))
            for name, request in requests.items()
        }
    finally:
        server.terminate()
        server.wait(30)

    print(f"{'endpoint':16s} {'QPS':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>7s} "
          f"{'server CPU':>10s} {'generator CPU':>13s}")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:16s} {r['qps']:8.1f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['errors']:7d} "
            f"{r['server_cpu_share']:10.2f} {r['generator_cpu_share']:13.2f}"
        )
    item = results.get("item_to_item")
    met = item is not None and item["p99_ms"] <= TARGET_P99_MS
    met = met and all(r["errors"] == 0 for r in results.values())
    write_result(
        "serve",
        {
            "command": "python benchmarks/bench_serve.py"
            + "".join(f" --run {r}" for r in args.run or [])
            + f" --seconds {args.seconds:g} --concurrency {args.concurrency}"
            + ("" if args.pin else " --no-pin"),
            "runs": {kind: str(run) for kind, run in by_kind.items()},
            "server": "knowrec serve --no-access-log (uvicorn, one event loop)",
            "server_ready_s": round(ready_s, 1),
            "pinned": {"generator": [cores[0]], "server": sorted(server_cpus)}
            if server_cpus
            else None,
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "triggers": len(triggers),
            "target": {"item_to_item_p99_ms": TARGET_P99_MS, "errors": 0, "met": met},
            "endpoints": results,
        },
    )


if __name__ == "__main__":
    main()
