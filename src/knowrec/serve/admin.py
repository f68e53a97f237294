"""Reloading runs while serving: ``POST /admin/reload`` and SIGHUP (docs/serving.md).

The admin routes answer loopback clients only, unless the server has an admin token
(``--admin-token`` or ``KNOWREC_ADMIN_TOKEN``): then every caller, loopback too, must send
``Authorization: Bearer <token>``. Behind a proxy on the same machine every client looks
like loopback, so give such a server a token.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from knowrec.errors import ConfigError
from knowrec.serve.limits import MAX_ID, MAX_PATH
from knowrec.serve.served import Runs

BEARER = HTTPBearer(auto_error=False, description="the admin token, when the server has one")


class Reload(BaseModel):
    """What to reload."""

    model_config = ConfigDict(extra="forbid")

    run: str | None = Field(
        None, min_length=1, max_length=MAX_ID, description="the run to reload (default: all)"
    )
    path: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_PATH,
        description="a run directory on the server that `run` answers from now on "
        "(default: the run's own directory)",
    )


def loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:  # a name, not an address
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def admin_routes(runs: Runs, token: str | None) -> APIRouter:
    """The ``/admin`` routes over ``runs``, guarded by ``token`` (None: loopback only)."""

    async def allowed(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if token is not None:
            given = "" if credentials is None else credentials.credentials
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise HTTPException(
                    401,
                    "admin routes need the admin token: 'Authorization: Bearer <token>'",
                    {"WWW-Authenticate": "Bearer"},
                )
        elif request.client is None or not loopback(request.client.host):
            raise HTTPException(
                403, "admin routes answer loopback clients only (or start with --admin-token)"
            )

    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(allowed)])

    @router.post("/reload")
    async def reload(what: Reload | None = None) -> JSONResponse:
        """Check and load ``run`` (every run by default) again, from ``path`` (by default
        its own directory), aside; then swap it in. A run that fails to check or load is
        not swapped in: the previous version keeps serving, the answer is 422 and
        ``/runs`` shows its ``reload_error``. ``runs`` lists each run's outcome, path and
        version."""
        what = what or Reload()
        if what.path is not None and what.run is None:
            raise ConfigError("path: name the run it is for (run)")
        done = await runs.reload(what.run, what.path)
        failed = [f"run {r['run']!r}: {r['error']}" for r in done if not r["reloaded"]]
        if failed:
            message = f"not reloaded, the previous version keeps serving: {'; '.join(failed)}"
            return JSONResponse({"error": message, "runs": done}, 422)
        return JSONResponse({"status": "reloaded", "runs": done})

    return router


@contextmanager
def reload_on_hangup(runs: Runs) -> Iterator[None]:
    """While in the block, SIGHUP reloads every run (as ``POST /admin/reload`` does; the
    log says how it went). Signals reach the main thread only: elsewhere (a test client's
    thread) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Any]] = set()  # the loop keeps weak references only

    def hangup() -> None:
        task = loop.create_task(runs.reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
