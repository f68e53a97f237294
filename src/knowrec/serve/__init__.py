"""An HTTP API over a finished Explore Further run (FastAPI + uvicorn)::

    knowrec serve --run runs/explore_synthetic --port 8000
    curl 'localhost:8000/recommend?item=12&k=5'

``GET /recommend?item=ID&k=5&online_scoring=false`` answers what ``knowrec recommend
--json`` prints (items with scores and provenance, latency, scoring, sources);
``GET /items/ID`` the item's title; ``GET /health`` the run's name and size. Unknown ids
and items without candidates are 404, bad parameters 422, each with ``{"error": …}``.

The run is loaded once, when the server starts; requests are answered one at a time on
the event loop (a recommendation with stored scores takes about a millisecond, and the
candidate stores are not shared across threads).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from knowrec.errors import ConfigError, UnknownIdError
from knowrec.explore.service import ExploreService, NoCandidatesError


def create_app(run_dir: str | Path, *, warm: bool = True) -> FastAPI:
    """The API of the run at ``run_dir`` (loaded at startup; ``warm`` also loads the online
    ranking stages then rather than on the first request that needs them)."""
    run_dir = Path(run_dir)
    ExploreService.load(run_dir).close()  # a missing or unfinished run fails here, clearly

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ExploreService.load(run_dir, warm=warm) as service:
            app.state.service = service
            yield

    app = FastAPI(title="knowrec: Explore Further", lifespan=lifespan)

    def service(request: Request) -> ExploreService:
        return request.app.state.service

    @app.exception_handler(UnknownIdError)
    @app.exception_handler(NoCandidatesError)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(ConfigError)
    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        s = service(request)
        return {"status": "ok", "run": s.manifest.name, "items": len(s.titles)}

    @app.get("/items/{item_id}")
    async def item(request: Request, item_id: str) -> dict[str, Any]:
        titles = service(request).titles
        if item_id not in titles:
            raise UnknownIdError(f"unknown item id {item_id!r}")
        return {"item_id": item_id, "title": titles[item_id]}

    @app.get("/recommend")
    async def recommend(
        request: Request,
        item: str = Query(description="the trigger item id"),
        k: int | None = Query(default=None, ge=1, le=100, description="how many"),
        online_scoring: bool = Query(default=False, description="every stage now"),
    ) -> dict[str, Any]:
        rec = service(request).recommend(item, k, online_scoring=online_scoring)
        return rec.to_dict()

    return app


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the run until interrupted."""
    import uvicorn

    uvicorn.run(create_app(run_dir), host=host, port=port, log_level="info")
