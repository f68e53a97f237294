"""Prometheus metrics of a server (``GET /metrics``): requests and their latency per route
template and status code, and one info metric per served run (its version too)."""

from __future__ import annotations

import time

from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowrec import __version__
from knowrec.serve.served import Runs

UNMATCHED = "<unmatched>"  # the route label of a URL that no route answers


class Metrics:
    """The metrics of one app, in a registry of its own (two apps in one process do not
    share counters)."""

    def __init__(self, runs: Runs) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter(
            "knowrec_http_requests", "HTTP requests answered", labels, registry=self.registry
        )
        self.latency = Histogram(
            "knowrec_http_request_duration_seconds",
            "Time to answer an HTTP request",
            labels,
            registry=self.registry,
        )
        self.runs = runs
        self.info = Info("knowrec_run", "A served run", ["run"], registry=self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware that counts and times every request under its route template
        (``/runs/{run}/…``, never the raw URL, so ids do not become labels). Plain ASGI:
        Starlette's ``BaseHTTPMiddleware`` costs about a millisecond a request."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            t0 = time.perf_counter()
            status = 500  # unless a response starts

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", UNMATCHED)
                labels = (scope["method"], route, str(status))
                self.requests.labels(*labels).inc()
                self.latency.labels(*labels).observe(time.perf_counter() - t0)

        return counted

    def exposition(self) -> Response:
        """The Prometheus text format of every metric; the run infos are those of the runs
        served now (a reload swaps in a new version)."""
        for run in self.runs:
            written = run.manifest.get("versions", {}).get("knowrec", "")
            about = {"kind": run.kind, "version": run.version, "path": str(run.path)}
            about |= {"knowrec_version": __version__, "written_with": written}
            self.info.labels(run=run.name).info(about)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
