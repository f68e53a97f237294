"""The runs a server answers from: :class:`Runs`, the served runs by name.

Each run is checked when the app is created, before the server listens: its manifest, and
that every file it serves from exists, has the size it was written with and is whole as
far as a cheap look can tell (:mod:`knowrec.serve.checks`); a problem is a
:class:`~knowrec.errors.ConfigError` or :class:`~knowrec.errors.DataFormatError` then. Once
the server has started, the runs are loaded in a background thread; a load that fails
leaves the run ``failed`` and says why.

A reload (``POST /admin/reload``, SIGHUP) checks and loads a run again, from its directory
or a new one, aside in a background thread, and swaps it in with one reference assignment:
a request sees the old run or the new one, never half of one. A run that fails to check or
load is not swapped in: the old one keeps serving and keeps the failure as
``reload_error``. The services are used on the event loop only (the routes are ``async``
and do not await while they use one), so the old one is closed on the loop right after
the swap, when no request is using it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from knowrec.errors import ConfigError, KnowrecError, UnknownIdError, shown_id
from knowrec.explore.service import ExploreService
from knowrec.runs import fingerprint, read_manifest
from knowrec.serve.checks import check_parts, check_sizes

if TYPE_CHECKING:
    from knowrec.hknr.recommend import HknrRecommender
    from knowrec.trawl.recommend import TrawlRecommender

log = logging.getLogger(__name__)
T = TypeVar("T")
Kind = Literal["explore", "hknr", "trawl"]  # the pipelines whose runs can be served


def failure(exc: BaseException) -> str:
    """An exception as a run's error: a knowrec error's own line, else with its type."""
    return str(exc) if isinstance(exc, KnowrecError) else f"{type(exc).__name__}: {exc}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


async def in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a daemon thread: a server told to stop does not wait for a long load."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[Any], None], value: Any) -> None:
        if not future.done():  # not cancelled meanwhile
            outcome(value)

    def run() -> None:
        try:
            outcome: tuple[Callable[[Any], None], Any] = (future.set_result, fn())
        except Exception as exc:
            outcome = (future.set_exception, exc)
        with suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="knowrec-load", daemon=True).start()
    return await future


@dataclass
class ServedRun:
    """One run directory: its name (the directory's, or the run it replaced), kind
    (``config.pipeline``), ``manifest.json``, version (a hash of the manifest: new whenever
    the run is written again), the parts it serves and, once loaded, its service."""

    name: str
    kind: Kind
    path: Path
    manifest: dict[str, Any]
    version: str
    components: dict[str, str]
    service: ExploreService | HknrRecommender | TrawlRecommender | None = None
    error: str | None = None  # why loading failed
    loaded: str | None = None  # when the load finished
    reload_error: str | None = None  # why the latest reload failed (this one kept serving)

    @classmethod
    def check(cls, path: str | Path, name: str | None = None) -> ServedRun:
        """The run at ``path``, read from its manifests and checked without loading it; a
        clear error for a missing, unfinished or damaged run or one of a kind that cannot
        be served."""
        d = Path(path)
        manifest = read_manifest(d)
        kind = manifest["config"].get("pipeline")
        if kind not in get_args(Kind):
            raise ConfigError(
                f"{d} is a {kind} run: knowrec serve answers from "
                f"{', '.join(get_args(Kind))} runs only"
            )
        if kind == "explore":
            m = ExploreService.manifest_of(d)
            parts = {"features": m.features, "stage1": m.stage1, "stage2": m.stage2}
            parts |= {"cross_encoder": m.cross_encoder, "quality_model": m.quality_model}
            components = {name: part.cls for name, part in parts.items() if part is not None}
            files = m.files()
        elif kind == "hknr":
            from knowrec.hknr.pipeline import served_parts

            try:
                files = served_parts(d, manifest)
            except (KeyError, IndexError, TypeError) as exc:
                raise ConfigError(f"{d} is not a finished HKNR run (no {exc})") from None
            components = {"model": "hknr", "weights": str(files[-1].relative_to(d))}
        else:
            from knowrec.trawl.recommend import served_model, served_parts

            job, folder = served_model(d, manifest)
            files = served_parts(d, manifest)
            components = {"model": f"{job['method']} {job['backbone']} seed {job['seed']}"}
            components["folder"] = str(folder.relative_to(d))
        check_sizes(d, manifest.get("files", {}))
        check_parts(d, files)
        where = Path(os.path.abspath(d))  # a symbolic link keeps its own name
        return cls(name or where.name, kind, where, manifest, fingerprint(manifest), components)

    def load(self, *, warm: bool) -> None:
        """Load the service (``warm``: an Explore run's online ranking stages too); a
        failure is logged and kept in ``error``, which ``/ready`` reports."""
        try:
            if self.kind == "explore":
                self.service = ExploreService.load(self.path, warm=warm)
            elif self.kind == "hknr":
                from knowrec.hknr.recommend import HknrRecommender

                self.service = HknrRecommender(self.path)
            else:
                from knowrec.trawl.recommend import TrawlRecommender

                self.service = TrawlRecommender(self.path)
        except Exception as exc:  # any failure: the server stays up and says why
            log.exception("run %s (%s) failed to load", self.name, self.path)
            self.error = failure(exc)
        self.loaded = now()

    @property
    def state(self) -> Literal["loading", "ready", "failed"]:
        return "failed" if self.error else "loading" if self.service is None else "ready"

    def info(self) -> dict[str, Any]:
        """What ``/runs`` says about the run."""
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "title": self.manifest["config"].get("name"),
            "started": self.manifest.get("started"),
            "version": self.version,
            "loaded": self.loaded,
            "state": self.state,
            **({"error": self.error} if self.error else {}),
            **({"reload_error": self.reload_error} if self.reload_error else {}),
            "versions": self.manifest.get("versions", {}),
            "components": self.components,
        }

    def close(self) -> None:
        if isinstance(self.service, ExploreService):
            self.service.close()


class Runs:
    """The served runs by name, in the command line's order. A request takes a run from
    :meth:`__getitem__` or :meth:`first`; :meth:`reload` swaps in a new one."""

    def __init__(self, paths: Sequence[str | Path], *, warm: bool = True) -> None:
        if not paths:
            raise ConfigError("no run to serve: give one or more run directories")
        self.warm = warm
        self._runs: dict[str, ServedRun] = {}
        for run in map(ServedRun.check, paths):
            if run.name in self._runs:
                raise ConfigError(
                    f"two runs named {run.name!r} ({self._runs[run.name].path}, {run.path}): a "
                    "run is named by its directory, so rename one"
                )
            self._runs[run.name] = run
        self._reloading = asyncio.Lock()  # one load or reload at a time

    def __iter__(self) -> Iterator[ServedRun]:
        return iter(self._runs.values())

    def __getitem__(self, name: str) -> ServedRun:
        """The run ``name``; an :class:`UnknownIdError` naming the served ones."""
        if name not in self._runs:
            raise UnknownIdError(f"unknown run {shown_id(name)}: serving {', '.join(self._runs)}")
        return self._runs[name]

    def first(self, kind: Kind) -> ServedRun | None:
        """The first run of ``kind``: the one the short routes answer from."""
        return next((run for run in self if run.kind == kind), None)

    async def load(self) -> None:
        """Load every run, one after the other, in a background thread."""
        async with self._reloading:
            for run in self:
                await in_thread(partial(run.load, warm=self.warm))
        # The loaded runs stay for the server's life: keep them out of the garbage
        # collector's full passes, which otherwise walk them all (p99 latency).
        gc.collect()
        gc.freeze()

    async def reload(
        self, name: str | None = None, path: str | Path | None = None
    ) -> list[dict[str, Any]]:
        """Reload run ``name`` (every run when None) from ``path`` (its own directory when
        None); one line per run: ``reloaded`` (swapped in) or ``error`` (the old one kept
        serving), and the served path and version."""
        async with self._reloading:
            names = list(self._runs) if name is None else [self[name].name]
            return [await self._reload(n, path) for n in names]

    async def _reload(self, name: str, path: str | Path | None) -> dict[str, Any]:
        old = self._runs[name]
        new: ServedRun | None = None
        try:
            new = await in_thread(partial(self._aside, old, path))
            error = new.error
        except Exception as exc:  # a run that fails its check: the old one keeps serving
            error = failure(exc)
        if new is not None and error is None:
            self._runs = {**self._runs, name: new}  # the swap: one reference assignment
            old.close()
            log.info("run %s: version %s from %s swapped in", name, new.version, new.path)
        else:
            old.reload_error = error
            log.error("run %s: reload failed, the previous version keeps serving: %s", name, error)
        run = self._runs[name]
        return {
            "run": name,
            "reloaded": error is None,
            **({"error": error} if error else {}),
            "path": str(run.path),
            "version": run.version,
        }

    def _aside(self, old: ServedRun, path: str | Path | None) -> ServedRun:
        """A new version of ``old``, checked and loaded (in a background thread)."""
        new = ServedRun.check(old.path if path is None else path, name=old.name)
        if new.kind != old.kind:
            raise ConfigError(f"{new.path} is a {new.kind} run: run {old.name!r} is {old.kind}")
        new.load(warm=self.warm)
        return new

    def close(self) -> None:
        for run in self:
            run.close()
