"""Bounds on what a request may carry (docs/serving.md, Limits), beyond the ranges of the
parameters themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_ID = 256  # the longest id or run name a request may carry
MAX_ITEMS = 500  # the items one request may score
MAX_PATH = 1024  # the longest run directory an admin request may name
MAX_BODY = 16 * 1024  # bytes: the longest request body
MAX_PROBLEMS = 5  # the parameter problems a 422 lists
MAX_FIELD = 64  # the characters of a parameter's name a 422 echoes

# The request parameters the routes share, each bounded.
RunName = Annotated[str, Path(max_length=MAX_ID, description="a run's name (GET /runs)")]
ItemId = Annotated[str, Path(max_length=MAX_ID, description="an item id")]
UserId = Annotated[str, Path(max_length=MAX_ID, description="a user id")]
Trigger = Annotated[str, Query(max_length=MAX_ID, description="the trigger item id")]
User = Annotated[str, Query(max_length=MAX_ID, description="the user id")]
K = Annotated[int, Query(ge=1, le=100, description="how many")]


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is refused (413) before it is
    read, and so is one without a ``Content-Length`` (411: a chunked body of unknown size),
    so no route ever reads an unbounded body."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            length = headers.get("content-length")
            refusal = None
            if length is None and "transfer-encoding" in headers:
                refusal = (411, "send the request body with a Content-Length")
            elif length is not None and (not length.isdigit() or int(length) > self.limit):
                refusal = (413, f"request body over {self.limit:,} bytes")
            if refusal is not None:
                status, message = refusal
                await JSONResponse({"error": message}, status)(scope, receive, send)
                return
        await self.app(scope, receive, send)
