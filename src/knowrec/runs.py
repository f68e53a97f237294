"""Run directories: cached stages, the resolved config, versions and timings.

A pipeline is a sequence of stages. Each stage is a function of (inputs, parameters) that
writes its artifacts into a folder; the folder's name carries a hash of the parameters
and of the keys of the stages it depends on, so a re-run skips finished stages and a
changed parameter recomputes only what depends on it::

    run = Run("runs/trawl")
    world = run.stage("data", {"seed": 0}, build=make_data, load=read_data)
    # build(work_dir) writes files into work_dir; load(final_dir) reads them back

The key is derived, not listed by hand: pass a stage the whole config section(s) it reads
(:func:`config_slice` dumps a config minus the fields declared irrelevant), so a setting
added later is part of the key unless it is explicitly excluded — the way
huggingface/datasets fingerprints a transform by all its arguments. Every stage of a run
has its own name; staging one name twice with different keys is an error.

A stage builds in ``<name>-<key>.partial/`` and is renamed to ``<name>-<key>/`` when it
returns, so a killed run never leaves a folder that looks finished; long stages (LLM
calls, training) keep their own caches and checkpoints in the ``.partial`` folder and
resume from them when the run is started again.

Independent stages (one model per seed, backbone, …) can build side by side:
:meth:`Run.prebuild` builds the missing ones in worker processes, and the ``stage`` calls
that follow find them finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from knowrec.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)
T = TypeVar("T")
_PACKAGES = (
    "knowrec", "numpy", "polars", "torch", "lightgbm", "sentence-transformers", "llama-cpp-python",
)  # fmt: skip


def fingerprint(value: Any) -> str:
    """A short stable hash of a JSON-able value (dict keys sorted)."""
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def file_digest(path: str | Path | None) -> str | None:
    """A short hash of a file's bytes (None for no path): for stage keys that read a file
    the config only names, so that a changed file rebuilds the stage."""
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def config_slice(config: BaseModel, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """Every field of ``config`` except ``exclude``: the parameters of a stage that reads
    (almost) all of it. Opt-out, so a new field cannot be forgotten."""
    return config.model_dump(mode="json", exclude=set(exclude))


def versions() -> dict[str, str]:
    """Python and the versions of the main libraries (absent ones omitted)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def part_files(root: Path, parts: Iterable[str | Path]) -> Iterator[Path]:
    """The files of ``parts`` (files, or folders walked in order; relative to ``root``); a
    :class:`DataFormatError` for a part that is not there."""
    for part in parts:
        path = root / part
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise DataFormatError("missing (the run serves from it)", path=path)


class Component(BaseModel):
    """One saved part of a finished run, as a serving manifest names it: the class that
    reads it back (``module:QualName``, whose ``load(folder)`` rebuilds it) and its folder
    relative to the run directory."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    cls: str = Field(alias="class")
    path: str

    @classmethod
    def of(cls, obj_or_class: Any, path: str) -> Component:
        kind = obj_or_class if isinstance(obj_or_class, type) else type(obj_or_class)
        return cls(cls=f"{kind.__module__}:{kind.__qualname__}", path=path)

    def load(self, run_dir: Path, **options: Any) -> Any:
        """``Class.load(run_dir / path, **options)``."""
        import importlib

        module, name = self.cls.split(":")
        try:
            kind = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{run_dir}: cannot load {self.cls} ({exc})") from None
        return kind.load(run_dir / self.path, **options)


def check_versions(saved: Mapping[str, str], where: str | Path) -> None:
    """Warn when ``saved`` (a :func:`versions` dict) differs from this environment in
    knowrec or a library that reads the saved parts."""
    now = versions()
    for lib in ("knowrec", "torch", "lightgbm"):
        if lib in saved and saved[lib] != now.get(lib):
            log.warning(
                "%s: written with %s %s, read with %s", where, lib, saved[lib], now.get(lib)
            )


class Run:
    """A run directory: ``manifest.json`` (config, protocol, versions, stage timings) and
    one folder per finished stage."""

    def __init__(self, directory: str | Path, config: Mapping[str, Any] | None = None) -> None:
        self.dir = Path(directory).absolute()  # served parts are recorded relative to it
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keys: dict[str, str] = {}
        self._prebuilt: dict[str, float] = {}  # stage name → seconds its worker took
        self.manifest: dict[str, Any] = {
            "config": dict(config or {}),
            "versions": versions(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "stages": {},
        }
        self._save_manifest()

    def stage(
        self,
        name: str,
        params: Mapping[str, Any],
        build: Callable[[Path], Any],
        load: Callable[[Path], T],
        *,
        after: Sequence[str] = (),
    ) -> T:
        """Build the stage unless a finished folder with the same key exists; return
        ``load(folder)``. ``after`` names earlier stages whose results this one uses."""
        key, final = self._folder(name, params, after)
        t0 = time.perf_counter()
        cached = final.is_dir()
        if not cached:
            build_folder(final, params, build)
        result = load(final)
        prebuilt = self._prebuilt.pop(name, None)
        self.keys[name] = key
        self.manifest["stages"][name] = {
            "key": key,
            "folder": final.name,
            "cached": cached and prebuilt is None,
            "seconds": round(time.perf_counter() - t0 + (prebuilt or 0.0), 3),
        }
        self._save_manifest()
        return result

    def prebuild(
        self,
        stages: Sequence[tuple[str, Mapping[str, Any], Callable[[Path], Any], Sequence[str]]],
        *,
        workers: int,
        label: str = "stages",
    ) -> None:
        """Build the missing ones of ``stages`` (``name, params, build, after``, as for
        :meth:`stage`) in ``workers`` processes at once; ``stage`` then loads them. Each
        ``build`` runs in a fresh process, so it must pickle (a module-level function or a
        ``functools.partial`` of one) and read its inputs from disk. A failed build stops
        the ones not started; the finished ones stay."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from knowrec.progress import progress_bar

        todo = []
        for name, params, build, after in stages:
            final = self._folder(name, params, after)[1]
            if not final.is_dir():
                todo.append((name, final, dict(params), build))
        if not todo:
            return
        spawn = multiprocessing.get_context("spawn")  # no forked torch or OpenMP state
        with (
            ProcessPoolExecutor(min(workers, len(todo)), mp_context=spawn) as pool,
            progress_bar(f"{label}, {workers} at once", len(todo), unit=label) as bar,
        ):
            futures = {pool.submit(build_folder, *job[1:]): job[0] for job in todo}
            try:
                for future in as_completed(futures):
                    self._prebuilt[futures[future]] = future.result()
                    bar.advance()
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise

    def _folder(
        self, name: str, params: Mapping[str, Any], after: Sequence[str]
    ) -> tuple[str, Path]:
        """The stage's key and final folder."""
        missing = [s for s in after if s not in self.keys]
        if missing:
            raise ConfigError(f"stage {name!r} depends on stages not run yet: {missing}")
        key = fingerprint({"params": dict(params), "after": {s: self.keys[s] for s in after}})
        if self.keys.get(name, key) != key:
            raise ConfigError(f"stage {name!r} staged twice with different parameters")
        return key, self.dir / f"{name}-{key}"

    def folder(self, name: str) -> Path:
        """The folder of a stage this run has staged."""
        return self.dir / self.manifest["stages"][name]["folder"]

    def record(self, **fields: Any) -> None:
        """Add top-level fields (e.g. ``protocol=...``) to ``manifest.json``."""
        self.manifest.update(fields)
        self._save_manifest()

    def record_files(self, parts: Iterable[str | Path]) -> None:
        """Add ``files`` to ``manifest.json``: the size of each file of ``parts`` (files or
        folders in the run directory), the parts a server reads. Its checks then tell a
        file deleted or cut since before loading it."""
        files = part_files(self.dir, parts)
        self.record(files={str(f.relative_to(self.dir)): f.stat().st_size for f in files})

    def _save_manifest(self) -> None:
        path = self.dir / "manifest.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.manifest, indent=2, default=str) + "\n")
        os.replace(tmp, path)


def build_folder(final: Path, params: Mapping[str, Any], build: Callable[[Path], Any]) -> float:
    """Build a stage in ``<final>.partial`` (kept when ``build`` fails, so a rerun resumes
    in it) and rename it to ``final``; the seconds it took."""
    t0 = time.perf_counter()
    work = final.with_name(final.name + ".partial")
    work.mkdir(exist_ok=True)
    (work / "params.json").write_text(json.dumps(dict(params), indent=2, default=str))
    log.info("stage %s: building in %s", final.name, work)
    build(work)
    if final.exists():  # another process finished it meanwhile
        shutil.rmtree(work)
    else:
        os.replace(work, final)
    return time.perf_counter() - t0


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The ``manifest.json`` of a run directory; a clear error when there is none."""
    from knowrec.errors import DataFormatError

    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"run directory {d} does not exist")
    if not (d / "manifest.json").is_file():
        raise ConfigError(f"{d} is not a knowrec run (no manifest.json)")
    try:
        manifest = json.loads((d / "manifest.json").read_text())
    except ValueError as exc:
        raise DataFormatError(f"not valid JSON: {exc}", path=d / "manifest.json") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise DataFormatError("not a run manifest (no config)", path=d / "manifest.json")
    return manifest


def run_kind(directory: str | Path) -> str:
    """The pipeline that made a run (``explore``, ``trawl``, ``hknr``), from its manifest."""
    return str(read_manifest(directory)["config"].get("pipeline"))
