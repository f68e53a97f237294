"""An HTTP API over finished runs (FastAPI + uvicorn; docs/serving.md)::

    knowrec serve --run runs/explore_synthetic --run runs/hknr_synthetic \
        --run runs/trawl_synthetic --port 8000
    curl 'localhost:8000/recommend?item=12&k=5'               # the first Explore run
    curl 'localhost:8000/news/recommend?user=U12&k=5'         # the first HKNR run
    curl 'localhost:8000/runs/hknr_synthetic/news/recommend?user=U12'
    curl 'localhost:8000/ctr/recommend?user=17&k=5'           # the first TRAWL run

A run is named by its directory. Every run answers under ``/runs/{run}/``: an Explore
Further run ``recommend?item=ID`` and ``items/{id}``, an HKNR run ``news/recommend?user=ID``,
a TRAWL run ``ctr/recommend?user=ID`` and ``POST ctr/score`` (a user and up to 500 items).
The same paths without the ``/runs/{run}`` prefix answer from the first run of the kind.
``GET /runs`` lists the runs, ``/health`` says the process is up, ``/ready`` that every
run is loaded, ``/metrics`` is Prometheus' text format, ``/docs`` the API page (its assets
served by this server, nothing from a CDN). ``/`` is a web page over the runs (title
search, users, recommendations with their reasons, reports: knowrec.serve.page).

Every error is JSON ``{"error": …}``: 404 for unknown runs and ids, 422 for bad parameters
(naming the parameter), 503 while a run is loading, after it failed to load or while its
Redis candidate store does not answer. ``k`` is 1..100, ids at most 256 characters, a
request body at most 16 KiB (:mod:`knowrec.serve.limits`).

Runs are checked when the app is created (files too: :mod:`knowrec.serve.checks`) and
loaded in a background thread once the server has started; ``POST /admin/reload`` and
SIGHUP load them again aside and swap them in (:mod:`knowrec.serve.admin`,
:class:`~knowrec.serve.served.Runs`). Requests are answered one at a time on the event loop
(an Explore recommendation with stored scores takes about a millisecond; the HKNR networks
are torch models that must not run concurrently).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from knowrec.errors import ConfigError, UnavailableError, UnknownIdError, shown_id
from knowrec.explore.service import ExploreService, NoCandidatesError
from knowrec.serve.admin import admin_routes, reload_on_hangup
from knowrec.serve.limits import (
    MAX_FIELD,
    MAX_ID,
    MAX_ITEMS,
    MAX_PROBLEMS,
    BodyLimit,
    ItemId,
    K,
    RunName,
    Trigger,
    User,
)
from knowrec.serve.metrics import Metrics
from knowrec.serve.page import add_page
from knowrec.serve.served import Kind, Runs, ServedRun

OnlineScoring = Annotated[bool, Query(description="every ranking stage now")]


class ScoreRequest(BaseModel):
    """A user and the items to score for them."""

    user: str = Field(min_length=1, max_length=MAX_ID)
    items: list[Annotated[str, Field(max_length=MAX_ID)]] = Field(
        min_length=1, max_length=MAX_ITEMS
    )


class Error(BaseModel):
    """Every error answer."""

    error: str  # what is wrong, naming the parameter


ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": Error, "description": "a bad request, naming the parameter"},
    503: {"model": Error, "description": "the run is loading or failed, or Redis is down"},
}
PROMETHEUS_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}


def problem(error: Mapping[str, Any]) -> str:
    """One validation error as ``<parameter>: <what is wrong>``: the parameter is the last
    name in its location (``body`` for a body that is not JSON), cut to ``MAX_FIELD``
    characters; an unknown key of a JSON body is named as such, in the body."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        return f"body: unknown key {shown_id(str(loc[-1]), MAX_FIELD)}"
    name = next((str(x)[:MAX_FIELD] for x in reversed(loc) if isinstance(x, str) and x), "body")
    return f"{name}: {error['msg']}"


def create_app(
    runs: str | Path | Sequence[str | Path], *, warm: bool = True, admin_token: str | None = None
) -> FastAPI:
    """The API of one or more finished runs. Each is checked now (a missing, unfinished,
    or damaged run is a :class:`ConfigError` or
    :class:`~knowrec.errors.DataFormatError`) and loaded in the background once the server
    has started (``warm``: an Explore run's online ranking stages too). ``admin_token``
    guards ``/admin/reload`` (None: loopback clients only)."""
    served = Runs([runs] if isinstance(runs, str | Path) else list(runs), warm=warm)
    metrics = Metrics(served)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(served.load())
        with reload_on_hangup(served):
            yield
        loading.cancel()
        served.close()

    app = FastAPIOffline(title="knowrec", lifespan=lifespan, static_url="/static", responses=ERRORS)
    app.add_middleware(BodyLimit)
    app.add_middleware(metrics.middleware)  # outermost: it counts the refused bodies too
    app.include_router(admin_routes(served, admin_token))

    def lookup(name: str) -> ServedRun:
        return served[name]

    def service(name: str, kind: Kind) -> Any:
        """The loaded service of run ``name``, which must be of ``kind``."""
        run = lookup(name)
        if run.kind != kind:
            raise HTTPException(404, f"run {name!r} has kind {run.kind}, not {kind}: see /runs")
        if run.error:
            raise HTTPException(503, f"run {name!r} failed to load: {run.error}")
        if run.service is None:
            raise HTTPException(503, f"run {name!r} is still loading", {"Retry-After": "5"})
        return run.service

    def first(kind: Kind) -> str:
        """The name of the first run of ``kind``: the one the short routes answer from."""
        run = served.first(kind)
        if run is None:
            names = ", ".join(r.name for r in served)
            raise HTTPException(404, f"no {kind} run is served (runs: {names})")
        return run.name

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [problem(e) for e in exc.errors()]
        more = len(problems) - MAX_PROBLEMS
        shown = problems[:MAX_PROBLEMS] + ([f"{more} more"] if more > 0 else [])
        return JSONResponse({"error": "; ".join(shown)}, 422)

    @app.exception_handler(UnknownIdError)
    @app.exception_handler(NoCandidatesError)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 404)

    @app.exception_handler(ConfigError)
    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 422)

    @app.exception_handler(UnavailableError)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 503, headers={"Retry-After": "5"})

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The process is up (the runs may still be loading: see /ready)."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"description": "a run is loading or failed"}})
    async def ready() -> JSONResponse:
        """Every run is loaded: 200, else 503 naming the runs that are not."""
        states = {run.name: run.state for run in served}
        waiting = [f"{name} {state}" for name, state in states.items() if state != "ready"]
        if waiting:
            return JSONResponse({"error": f"not ready: {', '.join(waiting)}", "runs": states}, 503)
        return JSONResponse({"status": "ready", "runs": states})

    @app.get("/metrics", response_class=Response, responses={200: PROMETHEUS_TEXT})
    async def prometheus() -> Response:
        """Request counts and latencies per route and status, and one info per run, in
        Prometheus' text format."""
        return metrics.exposition()

    @app.get("/runs")
    async def list_runs() -> dict[str, list[dict[str, Any]]]:
        """Every served run: name, kind, path, version, state, the libraries it was written
        with and its served components."""
        return {"runs": [run.info() for run in served]}

    @app.get("/runs/{run}")
    async def one_run(run: RunName) -> dict[str, Any]:
        """One served run, as /runs lists it."""
        return lookup(run).info()

    @app.get("/runs/{run}/recommend")
    async def run_recommend(
        run: RunName, item: Trigger, k: K | None = None, online_scoring: OnlineScoring = False
    ) -> dict[str, Any]:
        """An Explore Further run's top ``k`` for trigger ``item`` (default: the run's k),
        with scores, provenance and latency: what ``knowrec recommend --json`` prints."""
        explore: ExploreService = service(run, "explore")
        return explore.recommend(item, k, online_scoring=online_scoring).to_dict()

    @app.get("/runs/{run}/items/{item_id}")
    async def run_item(run: RunName, item_id: ItemId) -> dict[str, Any]:
        """An Explore Further run's item: its title."""
        titles = service(run, "explore").titles
        if item_id not in titles:
            raise UnknownIdError(f"unknown item id {shown_id(item_id)}")
        return {"item_id": item_id, "title": titles[item_id]}

    @app.get("/runs/{run}/news/recommend")
    async def run_news(run: RunName, user: User, k: K = 5) -> dict[str, Any]:
        """An HKNR run's top ``k`` articles for ``user``: score, the stage-1 query that found
        each, topic, entities and knowledge share; ``cold`` when the user has no history
        and gets only recently popular articles (they also top up a short recall)."""
        from knowrec.hknr.recommend import POPULAR

        t0 = time.perf_counter()
        recs = service(run, "hknr").recommend(user, k)
        return {
            "user_id": user,
            "cold": all(r.found_by == POPULAR for r in recs),
            "items": [{"rank": i, **asdict(r)} for i, r in enumerate(recs, start=1)],
            "latency_ms": 1e3 * (time.perf_counter() - t0),
        }

    @app.get("/runs/{run}/ctr/recommend")
    async def run_ctr(run: RunName, user: User, k: K = 10) -> dict[str, Any]:
        """A TRAWL run's top ``k`` unrated items for ``user``: the CTR model's click
        probability, the liked item whose adapted vector found each (``popular`` for a user
        without liked items) and the item's knowledge; the user's knowledge."""
        from knowrec.trawl.recommend import POPULAR

        t0 = time.perf_counter()
        rec = service(run, "trawl")
        recs = rec.recommend(user, k)
        return {
            "user_id": user,
            "model": rec.model_name,
            "user_knowledge": rec.user_knowledge(user),
            "cold": all(r.found_by == POPULAR for r in recs),
            "items": [{"rank": i, **asdict(r)} for i, r in enumerate(recs, start=1)],
            "latency_ms": 1e3 * (time.perf_counter() - t0),
        }

    @app.post("/runs/{run}/ctr/score")
    async def run_ctr_score(run: RunName, body: ScoreRequest) -> dict[str, Any]:
        """A TRAWL run's click probability of each of ``items`` for ``user`` now, in the
        order given."""
        scores = service(run, "trawl").score(body.user, body.items).tolist()
        pairs = zip(body.items, scores, strict=True)
        return {"user_id": body.user, "scores": [{"item_id": i, "score": p} for i, p in pairs]}

    @app.get("/recommend")
    async def recommend(
        item: Trigger, k: K | None = None, online_scoring: OnlineScoring = False
    ) -> dict[str, Any]:
        """/runs/{run}/recommend of the first Explore Further run."""
        return await run_recommend(first("explore"), item, k, online_scoring)

    @app.get("/items/{item_id}")
    async def item(item_id: ItemId) -> dict[str, Any]:
        """/runs/{run}/items/{item_id} of the first Explore Further run."""
        return await run_item(first("explore"), item_id)

    @app.get("/news/recommend")
    async def news(user: User, k: K = 5) -> dict[str, Any]:
        """/runs/{run}/news/recommend of the first HKNR run."""
        return await run_news(first("hknr"), user, k)

    @app.get("/ctr/recommend")
    async def ctr(user: User, k: K = 10) -> dict[str, Any]:
        """/runs/{run}/ctr/recommend of the first TRAWL run."""
        return await run_ctr(first("trawl"), user, k)

    @app.post("/ctr/score")
    async def ctr_score(body: ScoreRequest) -> dict[str, Any]:
        """/runs/{run}/ctr/score of the first TRAWL run."""
        return await run_ctr_score(first("trawl"), body)

    add_page(app, lookup, service, first)  # / and the routes it reads: search, users, reports
    return app


def serve(
    runs: str | Path | Sequence[str | Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    admin_token: str | None = None,
    access_log: bool = True,
) -> None:
    """Serve the runs until interrupted (loads and reloads are logged)."""
    import uvicorn

    app = create_app(runs, admin_token=admin_token)
    logging.getLogger("knowrec.serve").setLevel(logging.INFO)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)
