"""The runs a server answers from. Each is checked when the app is created (a missing,
unfinished or unservable run is a :class:`~knowrec.errors.ConfigError` then, before the
server listens) and loaded in the background once it has started."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from knowrec.errors import ConfigError, DataFormatError
from knowrec.explore.service import ExploreService

if TYPE_CHECKING:
    from knowrec.hknr.recommend import HknrRecommender

log = logging.getLogger(__name__)
Kind = Literal["explore", "hknr"]  # the pipelines whose runs can be served


@dataclass
class ServedRun:
    """One run directory: its name (the directory's), kind (``config.pipeline``),
    ``manifest.json``, the parts it serves and, once loaded, its service."""

    name: str
    kind: Kind
    path: Path
    manifest: dict[str, Any]
    components: dict[str, str]
    service: ExploreService | HknrRecommender | None = None
    error: str | None = None  # why loading failed

    @classmethod
    def check(cls, path: str | Path) -> ServedRun:
        """The run at ``path``, read from its manifest without loading it; a clear error
        for a missing or unfinished run or one of a kind that cannot be served."""
        d = Path(path)
        if not d.is_dir():
            raise ConfigError(f"run directory {d} does not exist")
        if not (d / "manifest.json").is_file():
            raise ConfigError(f"{d} is not a knowrec run (no manifest.json)")
        try:
            manifest = json.loads((d / "manifest.json").read_text())
        except ValueError as exc:
            raise DataFormatError(f"not valid JSON: {exc}", path=d / "manifest.json") from None
        kind = manifest.get("config", {}).get("pipeline")
        if kind not in get_args(Kind):
            raise ConfigError(
                f"{d} is a {kind} run: knowrec serve answers from "
                f"{' and '.join(get_args(Kind))} runs only"
            )
        if kind == "explore":
            m = ExploreService.manifest_of(d)
            parts = {"features": m.features, "stage1": m.stage1, "stage2": m.stage2}
            parts |= {"cross_encoder": m.cross_encoder, "quality_model": m.quality_model}
            components = {name: part.cls for name, part in parts.items() if part is not None}
        else:
            from knowrec.hknr.pipeline import trained_weights

            weights = trained_weights(d, manifest)
            components = {"model": "hknr", "weights": str(weights.relative_to(d))}
        where = Path(os.path.abspath(d))  # a symbolic link keeps its own name
        return cls(where.name, kind, where, manifest, components)

    def load(self, *, warm: bool) -> None:
        """Load the service (``warm``: an Explore run's online ranking stages too); a
        failure is logged and kept in ``error``, which ``/ready`` reports."""
        try:
            if self.kind == "explore":
                self.service = ExploreService.load(self.path, warm=warm)
            else:
                from knowrec.hknr.recommend import HknrRecommender

                self.service = HknrRecommender(self.path)
        except Exception as exc:  # any failure: the server stays up and says why
            log.exception("run %s (%s) failed to load", self.name, self.path)
            self.error = f"{type(exc).__name__}: {exc}"

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
            "state": self.state,
            **({"error": self.error} if self.error else {}),
            "versions": self.manifest.get("versions", {}),
            "components": self.components,
        }

    def close(self) -> None:
        if isinstance(self.service, ExploreService):
            self.service.close()
