"""Serving a finished Explore Further run (SPEC §2, online flow)::

    with ExploreService.load("runs/explore_synthetic") as service:
        rec = service.recommend("12", k=5)      # Recommendations: items, latency_ms, …

One candidate-store lookup, the online recall paths (fallback and fresh candidates),
ranking with the scores precomputed offline, or every stage at request time
(:class:`OnlineRanker`) for candidates without one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from knowrec.errors import ConfigError, DataFormatError, KnowrecError, UnknownIdError
from knowrec.explore.config import CrossEncoderConfig, StoreConfig
from knowrec.ranking import (
    CoEngagementFeatures,
    ColumnFeatures,
    LGBMRanker,
    build_features,
    path_columns,
)
from knowrec.ranking.combine import QUALITY, Combination
from knowrec.registry import RANKERS, load_plugins
from knowrec.retrieval.store import Candidate, CandidateStore

SERVING_FILE = "serving.json"  # the manifest of what serving loads, in the run directory


class NoCandidatesError(KnowrecError):
    """A known trigger for which neither the store nor any online path has candidates."""


def text_cosine(frame: pl.DataFrame, vectors: tuple[list[str], np.ndarray]) -> np.ndarray:
    """Cosine of the trigger's and candidate's text vectors (NaN without text)."""
    ids, x = vectors
    row = {i: r for r, i in enumerate(ids)}
    t = np.array([row.get(i, -1) for i in frame["trigger_id"].to_list()])
    c = np.array([row.get(i, -1) for i in frame["item_id"].to_list()])
    ok = (t >= 0) & (c >= 0)
    out = np.full(frame.height, np.nan)
    if ok.any():
        out[ok] = np.einsum("ij,ij->i", x[t[ok]], x[c[ok]])
    return out


def load_vectors(d: Path) -> tuple[list[str], np.ndarray]:
    """The item ids and text vectors of a run's ``vectors`` stage folder."""
    saved = np.load(d / "vectors.npz")
    return [str(i) for i in saved["ids"]], saved["vectors"]


def open_store(
    cfg: StoreConfig, base: Path, prefix: str, *, create: bool = False
) -> CandidateStore:
    """The candidate store at ``base`` (``.sqlite`` file, ``.lmdb`` folder or a Redis key
    prefix); a missing file or folder is an error unless ``create``."""
    if cfg.backend == "redis":
        return CandidateStore.open(f"knowrec:{prefix}:{base.name}", "redis", url=cfg.url)
    path = base.with_suffix(f".{cfg.backend}")
    if not create and not path.exists():
        raise DataFormatError("candidate store missing", path=path)
    if not create and cfg.backend == "sqlite" and not path.is_file():
        raise DataFormatError("candidate store is not a file", path=path)
    return CandidateStore.open(
        path, cfg.backend, **({"readonly": True} if not create and cfg.backend == "lmdb" else {})
    )


def quality_scores(
    model: Any, frame: pl.DataFrame, vectors: tuple[list[str], np.ndarray]
) -> np.ndarray:
    """The LightGBM quality model's score of pairs that carry the co-engagement features."""
    if "sim_text" not in frame.columns:
        frame = frame.with_columns(sim_text=pl.Series(text_cosine(frame, vectors)))
    return model.predict(frame)


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
        return asdict(self)


class OnlineRanker:
    """Every ranking stage at request time: co-engagement features, stage-1 LightGBM,
    the cross-encoder heads and stage 2 when the run has them, the quality model, the
    final combination."""

    def __init__(self, run_dir: Path, manifest: Mapping[str, Any]) -> None:
        m = manifest
        self.paths = list(m["paths"])
        self.features = CoEngagementFeatures.load(run_dir / m["features"])
        self.stage1 = LGBMRanker.load(run_dir / m["stage1"])
        self.cross_encoder = None
        if m.get("cross_encoder"):
            ce = m["cross_encoder"]
            cls = cross_encoder_class(CrossEncoderConfig(kind=ce["kind"], module=ce["module"]))
            self.cross_encoder = cls.load(run_dir / ce["model"], threads=1, progress=False)
        self.stage2 = LGBMRanker.load(run_dir / m["stage2"]) if m.get("stage2") else None
        self.quality_model = (
            LGBMRanker.load(run_dir / m["quality_model"]) if m.get("quality_model") else None
        )
        self.comb = Combination.from_dict(m["combination"])
        self.quality = m["quality"]
        self.vectors = load_vectors((run_dir / m["vectors"]).parent)
        self.items: pl.DataFrame | None = None

    def score(self, trigger: str, cands: Sequence[Candidate]) -> dict[str, dict[str, float]]:
        """``{item: {stage: score, …, "final": …}}`` for the candidates in list order."""
        from knowrec.retrieval import candidate_frame

        frame = candidate_frame({trigger: list(cands)}, self.paths)
        frame, _ = build_features(frame, [self.features, ColumnFeatures(path_columns(frame))])
        frame = frame.with_columns(stage1=pl.Series(self.stage1.predict(frame)))
        if self.cross_encoder is not None and self.stage2 is not None:
            keys = frame.select("trigger_id", "item_id")
            heads = self.cross_encoder.predict(keys, self.items, missing="nan")
            frame = pl.concat(
                [frame, heads.select("click_score", "quality_score")], how="horizontal"
            )
            frame = frame.with_columns(stage2=pl.Series(self.stage2.predict(frame)))
        frame = frame.with_columns(
            ranker=pl.col("stage2" if "stage2" in frame.columns else "stage1")
        )
        if self.quality_model is not None:
            q = quality_scores(self.quality_model, frame, self.vectors)
            frame = frame.with_columns(pl.Series(QUALITY, q, dtype=pl.Float64))
        elif self.quality == "cross_encoder" and "quality_score" in frame.columns:
            frame = frame.with_columns(pl.col("quality_score").alias(QUALITY))
        else:
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias(QUALITY))
        frame = frame.with_columns(final=pl.Series(self.comb(frame)))
        cols = [
            c
            for c in ("stage1", "click_score", "quality_score", "stage2", "ranker", QUALITY)
            if c in frame.columns
        ]
        out = {}
        for row in frame.select("item_id", "final", *cols).iter_rows(named=True):
            parts = {c: float(row[c]) for c in cols if row[c] is not None}
            out[row["item_id"]] = {**parts, "final": float(row["final"])}
        return out


class ExploreService:
    """A finished Explore Further run, loaded for serving::

        with ExploreService.load("runs/explore_synthetic") as service:
            rec = service.recommend("12", k=5)      # Recommendations: items, latency_ms, …

    The online flow: one candidate-store lookup; the online recall paths (their new
    candidates fill the list up to the recall k; they are the fallback for a trigger the
    store lacks); ranking with the precomputed scores, or every ranking stage at request
    time for candidates without one (and for all with ``online_scoring=True``).
    """

    def __init__(self, run_dir: Path, manifest: Mapping[str, Any]) -> None:
        from knowrec.retrieval import load_recall_path

        self.dir, self.manifest = run_dir, dict(manifest)
        items = pl.read_parquet(run_dir / manifest["items"], columns=["item_id", "title"])
        self.titles: dict[str, str | None] = dict(
            zip(items["item_id"].cast(pl.String).to_list(), items["title"].to_list(), strict=True)
        )
        self.store = self._open("store")
        self.scores = self._open("scores")
        self.online_paths = {
            name: load_recall_path(run_dir / rel) for name, rel in manifest["online_paths"].items()
        }
        self.k_recall = int(manifest["recall_k"])
        self.rrf_k = float(manifest["rrf_k"])
        self.weights = {str(k): float(v) for k, v in manifest["weights"].items()}
        self._ranker: OnlineRanker | None = None
        self.load_ms = 0.0

    def _open(self, key: str) -> CandidateStore:
        spec = dict(self.manifest[key])
        cfg = StoreConfig(backend=spec["backend"], url=spec["url"])
        base = self.dir / spec["path"]
        return open_store(cfg, base, self.manifest["name"])

    @classmethod
    def load(cls, run_dir: str | Path, *, warm: bool = False) -> ExploreService:
        """Load a run written by :func:`run_explore` (clear errors for a missing or
        unfinished run, a missing or corrupt store). ``warm`` also loads the online
        ranking stages now rather than on first need; ``load_ms`` says how long it took."""
        t0 = time.perf_counter()
        d = Path(run_dir)
        path = d / SERVING_FILE
        if not d.is_dir():
            raise ConfigError(f"run directory {d} does not exist")
        if not path.is_file():
            raise ConfigError(
                f"{d} is not a finished Explore Further run (no {SERVING_FILE}); "
                "run `knowrec run <explore config>` first"
            )
        try:
            manifest = json.loads(path.read_text())
        except ValueError as exc:
            raise DataFormatError(f"not valid JSON: {exc}", path=path) from None
        service = cls(d, manifest)
        if warm:
            service.ranker  # noqa: B018 (loads the online stages)
        service.load_ms = 1e3 * (time.perf_counter() - t0)
        return service

    @property
    def ranker(self) -> OnlineRanker:
        """The online ranking stages (loaded on first use)."""
        if self._ranker is None:
            self._ranker = OnlineRanker(self.dir, self.manifest)
            if self._ranker.cross_encoder is not None:
                self._ranker.items = pl.read_parquet(self.dir / self.manifest["items"])
        return self._ranker

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
        k = int(self.manifest.get("k", 5)) if k is None else k
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        item = str(item)
        if item not in self.titles:
            some = ", ".join(list(self.titles)[:5])
            raise UnknownIdError(
                f"unknown item id {item!r}: the run knows {len(self.titles):,} items (e.g. {some})"
            )
        cands, sources, failures = self.candidates(item)
        if not cands:
            why = "; ".join(f"{p}: {r}" for p, r in failures.items()) or "no online path"
            raise NoCandidatesError(
                f"item {item!r} has no candidates: not in the candidate store ({why})"
            )
        scores: dict[str, dict[str, float]] = {}
        if not online_scoring:
            for c in self.scores.get(item) or []:
                scores[c.item_id] = {**c.paths, "final": c.score}
        missing = [c for c in cands if c.item_id not in scores]
        if missing:
            online = self.ranker.score(item, cands)
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
