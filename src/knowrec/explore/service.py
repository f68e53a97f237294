"""Serving a finished Explore Further run (docs/explore.md, online flow)::

    with ExploreService.load("runs/explore_synthetic") as service:
        rec = service.recommend("12", k=5)      # Recommendations: items, latency_ms, …

One candidate-store lookup, the online recall paths (fallback and fresh candidates),
ranking with the scores precomputed offline, or every stage at request time
(the :class:`~knowrec.ranking.cascade.RankingCascade`) for candidates without one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from knowrec.errors import ConfigError, DataFormatError, KnowrecError, UnknownIdError, shown_id
from knowrec.explore.config import CrossEncoderConfig, StoreConfig
from knowrec.ranking.cascade import RankingCascade, score_columns
from knowrec.ranking.combine import Combination
from knowrec.registry import RANKERS, load_plugins
from knowrec.retrieval.store import Candidate, CandidateStore
from knowrec.runs import Component, check_versions

SERVING_FILE = "serving.json"  # the manifest of what serving loads, in the run directory
MANIFEST_FORMAT = 1


class NoCandidatesError(KnowrecError):
    """A known trigger for which neither the store nor any online path has candidates."""


def load_vectors(d: Path) -> tuple[list[str], np.ndarray]:
    """The item ids and text vectors of a run's ``vectors`` stage folder."""
    saved = np.load(d / "vectors.npz")
    return [str(i) for i in saved["ids"]], saved["vectors"]


def store_file(base: Path, backend: str) -> Path:
    """The file (``.sqlite``) or folder (``.lmdb``) of a local candidate store."""
    return base.with_suffix(f".{backend}")


def open_store(
    cfg: StoreConfig, base: Path, prefix: str, *, create: bool = False
) -> CandidateStore:
    """The candidate store at ``base`` (``.sqlite`` file, ``.lmdb`` folder or a Redis key
    prefix); a missing file or folder is an error unless ``create``."""
    if cfg.backend == "redis":
        return CandidateStore.open(f"knowrec:{prefix}:{base.name}", "redis", url=cfg.url)
    path = store_file(base, cfg.backend)
    if not create and not path.exists():
        raise DataFormatError("candidate store missing", path=path)
    if not create and cfg.backend == "sqlite" and not path.is_file():
        raise DataFormatError("candidate store is not a file", path=path)
    return CandidateStore.open(
        path, cfg.backend, **({"readonly": True} if not create and cfg.backend == "lmdb" else {})
    )


def cross_encoder_class(cfg: CrossEncoderConfig) -> Any:
    """The ranker registered as ``kind``, once ``module`` (a plugin that may register it)
    is imported."""
    try:
        load_plugins([cfg.module], source="cross_encoder.module")
        return RANKERS.get(cfg.kind)
    except ConfigError as exc:  # e.g. torch or transformers not installed
        raise ConfigError(f"{exc}; or set [cross_encoder] enabled = false") from None


@dataclass(frozen=True)
class Recommended:
    """One recommended item: its final score, each stage's score and its provenance."""

    rank: int
    item_id: str
    title: str | None
    score: float
    scores: dict[str, float]
    paths: dict[str, float]
    judged: float | None = None  # the LLM judge's 0–4 quality, where the run judged the pair
    knowledge: str | None = None  # the item's knowledge text, where the run serves a table


@dataclass(frozen=True)
class Recommendations:
    """The answer of :meth:`ExploreService.recommend`."""

    trigger_id: str
    trigger_title: str | None
    items: list[Recommended]
    latency_ms: float
    scoring: str  # precomputed | online | mixed
    sources: dict[str, int]
    failures: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """As JSON types. Shallow: every dict here is the answer's own (``asdict``'s deep
        copy took longer than the recommendation)."""
        return {**vars(self), "items": [dict(vars(r)) for r in self.items]}


class StoreRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["sqlite", "lmdb", "redis"]
    url: str
    path: str


class ExploreManifest(BaseModel):
    """``serving.json``: what :class:`ExploreService` loads from a finished run (paths
    relative to the run directory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = MANIFEST_FORMAT
    system: Literal["explore"] = "explore"
    versions: dict[str, str]
    name: str
    store: StoreRef  # the served candidates
    scores: StoreRef  # every served pair's precomputed scores
    items: str  # items.parquet
    vectors: str  # vectors.npz
    paths: list[str]  # the full set's recall paths
    online_paths: dict[str, Component]
    recall_k: int
    rrf_k: float
    weights: dict[str, float]
    features: Component
    stage1: Component
    cross_encoder: Component | None
    stage2: Component | None
    quality: Literal["cross_encoder", "lgbm", "none"]
    quality_model: Component | None
    combination: dict[str, Any]
    k: int
    judged: str | None = None  # judged.parquet: the LLM judge's scores of sampled pairs
    knowledge: str | None = None  # knowledge.parquet: id → text served with each item

    @classmethod
    def read(cls, path: Path) -> ExploreManifest:
        try:
            doc = json.loads(path.read_text())
        except ValueError as exc:
            raise DataFormatError(f"not valid JSON: {exc}", path=path) from None
        if doc.get("format") != MANIFEST_FORMAT:
            raise ConfigError(
                f"{path}: serving manifest format {doc.get('format')} (this knowrec reads "
                f"{MANIFEST_FORMAT}); run the experiment again with this version"
            )
        try:
            manifest = cls.model_validate(doc)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(x) for x in problem["loc"])
            raise DataFormatError(
                f"not a serving manifest: {where}: {problem['msg']}", path=path
            ) from None
        check_versions(manifest.versions, path)
        return manifest

    def files(self) -> list[Path]:
        """Every file or folder that serving reads, relative to the run directory (a Redis
        store is none)."""
        stores = [
            store_file(Path(ref.path), ref.backend)
            for ref in (self.store, self.scores)
            if ref.backend != "redis"
        ]
        parts = [self.features, self.stage1, self.cross_encoder, self.stage2, self.quality_model]
        folders = [*self.online_paths.values(), *(p for p in parts if p is not None)]
        judged = [Path(p) for p in (self.judged, self.knowledge) if p]
        files = [Path(self.items), Path(self.vectors), *stores, *judged]
        return files + [Path(p.path) for p in folders]


def load_cascade(run_dir: Path, m: ExploreManifest) -> RankingCascade:
    """The served set's :class:`RankingCascade`, from the parts the manifest names."""
    cross_encoder = None
    if m.cross_encoder is not None:
        cross_encoder = m.cross_encoder.load(run_dir, threads=1, progress=False)

    def optional(part: Component | None) -> Any:
        return None if part is None else part.load(run_dir)

    return RankingCascade(
        features=m.features.load(run_dir),
        stage1=m.stage1.load(run_dir),
        quality=m.quality,
        cross_encoder=cross_encoder,
        stage2=optional(m.stage2),
        quality_model=optional(m.quality_model),
        vectors=load_vectors((run_dir / m.vectors).parent),
        combination=Combination.from_dict(m.combination),
        items=pl.read_parquet(run_dir / m.items) if cross_encoder is not None else None,
    )


class ExploreService:
    """A finished Explore Further run, loaded for serving::

        with ExploreService.load("runs/explore_synthetic") as service:
            rec = service.recommend("12", k=5)      # Recommendations: items, latency_ms, …

    The online flow: one candidate-store lookup; the online recall paths (their new
    candidates fill the list up to the recall k; they are the fallback for a trigger the
    store lacks); ranking with the precomputed scores, or every ranking stage at request
    time for candidates without one (and for all with ``online_scoring=True``).
    """

    def __init__(self, run_dir: Path, manifest: ExploreManifest) -> None:
        from knowrec.retrieval import load_recall_path

        self.dir, self.manifest = run_dir, manifest
        items = pl.read_parquet(run_dir / manifest.items, columns=["item_id", "title"])
        self.titles: dict[str, str | None] = dict(
            zip(items["item_id"].cast(pl.String).to_list(), items["title"].to_list(), strict=True)
        )
        self.store = self._open("store")
        self.scores = self._open("scores")
        self.online_paths = {
            name: load_recall_path(run_dir / part.path)
            for name, part in manifest.online_paths.items()
        }
        self.k_recall = manifest.recall_k
        self.rrf_k = manifest.rrf_k
        self.weights = manifest.weights
        self._ranker: RankingCascade | None = None
        self.load_ms = 0.0
        self.judged: dict[tuple[str, str], float] = {}
        if manifest.judged:
            judged = pl.read_parquet(run_dir / manifest.judged).drop_nulls("quality")
            pairs = judged.select(pl.col("trigger_id", "candidate_id").cast(pl.String), "quality")
            self.judged = {(t, c): q for t, c, q in pairs.iter_rows()}
        self.knowledge: dict[str, str] = {}
        if manifest.knowledge:
            table = pl.read_parquet(run_dir / manifest.knowledge)
            self.knowledge = dict(zip(table["id"], table["text"], strict=True))

    def _open(self, key: Literal["store", "scores"]) -> CandidateStore:
        ref: StoreRef = getattr(self.manifest, key)
        cfg = StoreConfig(backend=ref.backend, url=ref.url)
        return open_store(cfg, self.dir / ref.path, self.manifest.name)

    @classmethod
    def load(cls, run_dir: str | Path, *, warm: bool = False) -> ExploreService:
        """Load a run written by :func:`run_explore` (clear errors for a missing or
        unfinished run, a missing or corrupt store). ``warm`` also loads the online
        ranking stages now rather than on first need; ``load_ms`` says how long it took."""
        t0 = time.perf_counter()
        d = Path(run_dir)
        service = cls(d, cls.manifest_of(d))
        if warm:
            service.ranker  # noqa: B018 (loads the online stages)
        service.load_ms = 1e3 * (time.perf_counter() - t0)
        return service

    @staticmethod
    def manifest_of(run_dir: Path) -> ExploreManifest:
        """The serving manifest of the run at ``run_dir`` (clear errors for a missing or
        unfinished run), without loading anything else."""
        path = run_dir / SERVING_FILE
        if not run_dir.is_dir():
            raise ConfigError(f"run directory {run_dir} does not exist")
        if not path.is_file():
            raise ConfigError(
                f"{run_dir} is not a finished Explore Further run (no {SERVING_FILE}); "
                "run `knowrec run <explore config>` first"
            )
        return ExploreManifest.read(path)

    @property
    def ranker(self) -> RankingCascade:
        """The ranking cascade, for candidates without precomputed scores (loaded on
        first use)."""
        if self._ranker is None:
            self._ranker = load_cascade(self.dir, self.manifest)
        return self._ranker

    def score_online(self, trigger: str, cands: Sequence[Candidate]) -> dict[str, dict[str, float]]:
        """``{item: {stage: score, …, "final": …}}``: every ranking stage at request time."""
        from knowrec.retrieval import candidate_frame

        frame = self.ranker.score(candidate_frame({trigger: list(cands)}, self.manifest.paths))
        cols = score_columns(frame)
        out = {}
        for row in frame.select("item_id", "final", *cols).iter_rows(named=True):
            parts = {c: float(row[c]) for c in cols if row[c] is not None}
            out[row["item_id"]] = {**parts, "final": float(row["final"])}
        return out

    def candidates(self, trigger: str) -> tuple[list[Candidate], dict[str, int], dict[str, str]]:
        """The stored candidates, then the online paths' (provenance added to items
        already there, new items appended up to the recall k)."""
        stored = self.store.get(trigger) or []
        cands = [Candidate(c.item_id, c.score, dict(c.paths)) for c in stored]
        where = {c.item_id: i for i, c in enumerate(cands)}
        sources = {"store": len(cands)}
        failures: dict[str, str] = {}
        for name, path in self.online_paths.items():
            found = path.recall([trigger], self.k_recall).get(trigger, [])
            if not found and trigger in path.failures:
                failures[name] = path.failures[trigger]
            new = 0
            w = self.weights.get(name, 1.0)
            for rank, c in enumerate(found, start=1):
                if c.item_id == trigger:
                    continue
                if c.item_id in where:
                    cands[where[c.item_id]].paths.setdefault(name, c.score)
                elif len(cands) < self.k_recall:
                    where[c.item_id] = len(cands)
                    cands.append(Candidate(c.item_id, w / (self.rrf_k + rank), {name: c.score}))
                    new += 1
            sources[f"online:{name}"] = new
        return cands, sources, failures

    def recommend(
        self, item: str, k: int | None = None, *, online_scoring: bool = False
    ) -> Recommendations:
        """The top ``k`` recommendations of trigger ``item`` with scores, provenance and
        latency. Unknown ids and triggers without any candidate are typed errors."""
        t0 = time.perf_counter()
        k = self.manifest.k if k is None else k
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        item = str(item)
        if item not in self.titles:
            some = ", ".join(list(self.titles)[:5])
            raise UnknownIdError(
                f"unknown item id {shown_id(item)}: the run knows {len(self.titles):,} items "
                f"(e.g. {some})"
            )
        cands, sources, failures = self.candidates(item)
        if not cands:
            why = "; ".join(f"{p}: {r}" for p, r in failures.items()) or "no online path"
            raise NoCandidatesError(
                f"item {shown_id(item)} has no candidates: not in the candidate store ({why})"
            )
        scores: dict[str, dict[str, float]] = {}
        if not online_scoring:
            for c in self.scores.get(item) or []:
                scores[c.item_id] = {**c.paths, "final": c.score}
        missing = [c for c in cands if c.item_id not in scores]
        if missing:
            online = self.score_online(item, cands)
            scores |= {c.item_id: online[c.item_id] for c in missing}
        scoring = "online" if len(missing) == len(cands) else "mixed" if missing else "precomputed"
        ranked = sorted(cands, key=lambda c: (-scores[c.item_id]["final"], c.item_id))[:k]
        items = [
            Recommended(
                rank=r,
                item_id=c.item_id,
                title=self.titles.get(c.item_id),
                score=scores[c.item_id]["final"],
                scores={n: v for n, v in scores[c.item_id].items() if n != "final"},
                paths=dict(c.paths),
                judged=self.judged.get((item, c.item_id)),
                knowledge=self.knowledge.get(c.item_id),
            )
            for r, c in enumerate(ranked, start=1)
        ]
        latency = 1e3 * (time.perf_counter() - t0)
        return Recommendations(
            item, self.titles.get(item), items, latency, scoring, sources, failures
        )

    def close(self) -> None:
        self.store.close()
        self.scores.close()

    def __enter__(self) -> ExploreService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
