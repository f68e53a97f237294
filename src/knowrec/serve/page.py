"""The web page at ``/`` (static HTML, JS and CSS from ``static/``, no build step, nothing
from a CDN) and the routes it reads beside the recommendations (docs/serving.md):

- ``GET /runs/{run}/items?q=TEXT&limit=N``: items whose title contains ``q``, best first;
- ``GET /runs/{run}/users?limit=N`` and ``/runs/{run}/users/{id}``: an HKNR run's readers
  and one reader's history, most recent first;
- ``GET /runs/{run}/report`` and ``/runs/{run}/files/{name}``: a run's report files, read
  only, from a fixed list of names (never a path).

The title and history indexes are built on first use, once per loaded service.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote
from weakref import WeakKeyDictionary

import polars as pl
from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from knowrec.errors import UnknownIdError, shown_id
from knowrec.serve.limits import MAX_ID, RunName, UserId

if TYPE_CHECKING:
    from knowrec.serve.served import Kind, ServedRun

STATIC = Path(__file__).with_name("static")
MAX_HISTORY = 50  # the most recent clicks /users/{id} shows
REPORT_FILES = ("report.html", "results.md", "results.json")  # servable beside the plots
PLOT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.png")  # a plot at the run's top level
MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".md": "text/plain; charset=utf-8",  # shown by a browser rather than downloaded
    ".json": "application/json",
    ".png": "image/png",
}
# A report is self-contained (inline style, PNGs as data: URLs): it may run nothing.
REPORT_CSP = "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'; sandbox"

FileName = Annotated[str, PathParam(max_length=MAX_ID, description="a file of GET …/report")]
Text = Annotated[str, Query(min_length=1, max_length=200, description="part of a title")]
Limit = Annotated[int, Query(ge=1, le=50, description="how many")]
UserLimit = Annotated[int, Query(ge=1, le=500, description="how many")]


def normalized(text: str) -> str:
    """Case-folded, with runs of white space as one space: what a search compares."""
    return " ".join(text.casefold().split())


class TitleIndex:
    """Case-insensitive title search over one run's items (one vectorised scan a query)."""

    def __init__(self, titles: Mapping[str, str | None]) -> None:
        pairs = [(i, t) for i, t in titles.items() if t]
        self.items = pl.DataFrame(
            {"item_id": [i for i, _ in pairs], "title": [t for _, t in pairs]},
            schema={"item_id": pl.String, "title": pl.String},
        ).with_columns(text=pl.Series([normalized(t) for _, t in pairs], dtype=pl.String))

    def search(self, q: str, limit: int) -> list[dict[str, str]]:
        """Up to ``limit`` items whose title contains ``q``: the whole title first, then
        titles starting with it, then a word starting with it, then anywhere; a shorter
        title first within each."""
        q = normalized(q)
        text = pl.col("text")
        rank = (
            pl.when(text == q)
            .then(0)
            .when(text.str.starts_with(q))
            .then(1)
            .when(text.str.contains(rf"\W{pl.escape_regex(q)}"))
            .then(2)
            .otherwise(3)
        )
        found = self.items.filter(text.str.contains(q, literal=True)).with_columns(
            rank=rank, length=text.str.len_chars()
        )
        order = ["rank", "length", "text", "item_id"]
        best = found.bottom_k(limit, by=order).sort(order)  # bottom_k keeps no order
        return best.select("item_id", "title").to_dicts()


class Histories:
    """The users of an HKNR or TRAWL run and their histories before the recommendation
    time (what the recommender reads: clicks, ratings), each user's rows together, most
    recent first."""

    def __init__(self, history: pl.DataFrame, titles: Mapping[str, str]) -> None:
        order = [c for c in ("user_id", "time", "pos") if c in history.columns]
        descending = [c != "user_id" for c in order]
        self.rows = history.sort(order, descending=descending, nulls_last=True)
        self.users = self.rows["user_id"]  # sorted: a user's rows are found by bisection
        counts = self.rows.group_by("user_id").len("clicks")
        self.busiest = counts.sort(["clicks", "user_id"], descending=[True, False])
        self.titles = titles

    def top(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` users with the most clicks."""
        return self.busiest.head(limit).to_dicts()

    def of(self, user: str) -> dict[str, Any]:
        """``user``'s click count and up to :data:`MAX_HISTORY` clicks, most recent first
        (``time`` where the log has one)."""
        start = int(self.users.search_sorted(user, side="left"))
        end = int(self.users.search_sorted(user, side="right"))
        rows = self.rows.slice(start, min(end - start, MAX_HISTORY))
        history = []
        for r in rows.iter_rows(named=True):
            click = {"item_id": r["item_id"], "title": self.titles.get(r["item_id"], "")}
            if r.get("time") is not None:
                click["time"] = r["time"].isoformat()
            if r.get("rating") is not None:
                click["rating"] = r["rating"]
            history.append(click)
        return {"user_id": user, "clicks": end - start, "history": history}


def report_files(run_dir: Path) -> dict[str, Path]:
    """The files of a run the page may show: its report, results and top-level plots
    (plain files only: a symbolic link could lead out of the run)."""
    plots = sorted(p.name for p in run_dir.glob("*.png") if PLOT.fullmatch(p.name))
    paths = [run_dir / name for name in (*REPORT_FILES, *plots)]
    return {p.name: p for p in paths if p.is_file() and not p.is_symlink()}


def add_page(
    app: FastAPI,
    lookup: Callable[[str], ServedRun],
    service: Callable[[str, Kind], Any],
    first: Callable[[Kind], str],
) -> None:
    """Add the page and its routes to ``app``: ``lookup`` names a run (404 if unknown),
    ``service`` its loaded service of a kind (404, 503), ``first`` the first run of a
    kind (for the short routes)."""
    titles: WeakKeyDictionary[Any, TitleIndex] = WeakKeyDictionary()
    histories: WeakKeyDictionary[Any, Histories] = WeakKeyDictionary()

    def title_index(name: str) -> TitleIndex:
        kind = lookup(name).kind
        if kind not in ("explore", "hknr"):
            raise HTTPException(404, f"run {name!r} has kind {kind}: no items to search")
        svc = service(name, kind)
        if svc not in titles:
            titles[svc] = TitleIndex(svc.titles)
        return titles[svc]

    def history_index(name: str) -> tuple[Any, Histories]:
        kind = lookup(name).kind
        if kind not in ("hknr", "trawl"):
            raise HTTPException(404, f"run {name!r} has kind {kind}: no users")
        svc = service(name, kind)
        if svc not in histories:
            log = svc.proto.history if kind == "hknr" else svc.timeline
            histories[svc] = Histories(log.rename({"timestamp": "time"}, strict=False), svc.titles)
        return svc, histories[svc]

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/page", StaticFiles(directory=STATIC), name="page")

    @app.get("/runs/{run}/items")
    async def run_search(run: RunName, q: Text, limit: Limit = 10) -> dict[str, Any]:
        """Items whose title contains ``q`` (case-insensitive): an Explore run's items or an
        HKNR run's articles; the whole title first, then a title starting with ``q``, a
        word starting with it, ``q`` anywhere; a shorter title first within each."""
        if not q.strip():
            raise HTTPException(422, "q: String should have a character other than a space")
        return {"q": q, "items": title_index(run).search(q, limit)}

    @app.get("/runs/{run}/users")
    async def run_users(run: RunName, limit: UserLimit = 50) -> dict[str, Any]:
        """An HKNR or TRAWL run's users with the most items in their histories (clicks,
        ratings), most first."""
        return {"users": history_index(run)[1].top(limit)}

    @app.get("/runs/{run}/users/{user_id}")
    async def run_user(run: RunName, user_id: UserId) -> dict[str, Any]:
        """An HKNR or TRAWL run's user: the number of items in their history and the most
        recent 50 of them (item, title, time, and rating where the log has one), most
        recent first."""
        svc, index = history_index(run)
        known = svc.world.user_row if lookup(run).kind == "hknr" else svc.user_ids
        if user_id not in known:
            raise UnknownIdError(f"unknown user {shown_id(user_id)}: not in the run's data")
        return index.of(user_id)

    @app.get("/runs/{run}/report")
    async def run_report(run: RunName) -> dict[str, Any]:
        """The report files of a run (``report.html``, ``results.md``, ``results.json``
        and plots at its top level) with their size and URL."""
        served = lookup(run)
        files = report_files(served.path)
        return {
            "run": served.name,
            "files": [
                {
                    "name": name,
                    "bytes": path.stat().st_size,
                    "url": f"/runs/{quote(served.name)}/files/{quote(name)}",
                }
                for name, path in files.items()
            ],
        }

    @app.get("/runs/{run}/files/{name}")
    async def run_file(run: RunName, name: FileName) -> FileResponse:
        """One file of ``/runs/{run}/report``, by its name: nothing else of the run."""
        served = lookup(run)
        files = report_files(served.path)
        if name not in files:
            raise HTTPException(
                404, f"no file {shown_id(name)} to show in run {run!r}: see /runs/{run}/report"
            )
        path = files[name]
        headers = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"}
        return FileResponse(path, media_type=MEDIA[path.suffix], headers=headers)

    @app.get("/items")
    async def search(q: Text, limit: Limit = 10) -> dict[str, Any]:
        """/runs/{run}/items of the first Explore Further run."""
        return await run_search(first("explore"), q, limit)

    @app.get("/users")
    async def users(limit: UserLimit = 50) -> dict[str, Any]:
        """/runs/{run}/users of the first HKNR run."""
        return await run_users(first("hknr"), limit)

    @app.get("/users/{user_id}")
    async def user(user_id: UserId) -> dict[str, Any]:
        """/runs/{run}/users/{user_id} of the first HKNR run."""
        return await run_user(first("hknr"), user_id)
