"""The Explore Further experiment config (the TOML file of ``knowrec run``), validated by
pydantic: data, sessions, recall paths and sets, candidate store, ranking stages, LLM and
judge, cross-encoder, final combination, serving."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from knowrec.config import Section
from knowrec.data.config import DataConfig
from knowrec.errors import ConfigError


class ExploreData(DataConfig):
    """The data section (as TRAWL's) plus ``title_in_text``: prefix each item's text with
    its title (ML-1M plots do not name the movie)."""

    title_in_text: bool = False


class SessionsConfig(Section):
    """Sessions, the time split and the satisfied-engagement rule."""

    gap_minutes: float = 30.0  # used when the log has no session ids (or resessionize)
    min_clicks: int = 2
    resessionize: bool = False
    split: tuple[float, float] = (0.70, 0.85)  # session-start quantiles: fit | label | test
    rule: str = "rating >= 4"  # satisfied engagement (a click in ClickNDCG)
    max_session_items: int = 50
    train_triggers_per_session: int = 20
    test_triggers_per_session: int = 5
    seed: int = 0


class PathSpec(Section):
    """One recall path by registry name (:func:`knowrec.retrieval.make_recall_path`).

    Shared resources are passed to every path whose constructor takes them and whose
    ``params`` do not set them: ``rule`` (the satisfied rule), ``vectors`` (the item text
    vectors, when ``text_vectors``), ``llm`` (the pipeline's LLM, e.g. for ``qprime``) and
    ``encoder`` (the cached text encoder). ``max_triggers`` asks the path for the first N
    triggers of the coverage order only (judged triggers first; for slow LLM paths).
    ``online``: saved with the run and asked again at request time by ``recommend``.
    """

    kind: str
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    text_vectors: bool = True
    max_triggers: int | None = Field(default=None, ge=1)
    online: bool = False

    @property
    def label(self) -> str:
        return self.name or self.kind


def _default_paths() -> list[PathSpec]:
    return [
        PathSpec(kind="coclick"),
        PathSpec(kind="cf", params={"factors": 64, "iterations": 15}),
        PathSpec(kind="two_tower", params={"steps": 1000, "progress": False}),
        PathSpec(kind="semantic", online=True),
    ]


class RecallConfig(Section):
    """Recall paths and their merge (≤ ``k`` per trigger, provenance kept).

    Two candidate sets are merged: the *baseline* stack's paths and the *full* set, the
    baseline plus the ``added`` paths (default: every ``qprime`` path); the full set is
    the one served. A path in neither set (e.g. ``semantic`` kept as an online fallback)
    is still fitted, reported in the per-path recall and asked online when ``online``.
    """

    k: int = Field(default=30, ge=1)
    paths: list[PathSpec] = Field(default_factory=_default_paths)
    baseline: list[str] | None = None  # default: every path that is not qprime
    added: list[str] | None = None  # default: every qprime path
    weights: Literal["label_recall", "equal"] = "label_recall"
    rrf_k: float = 60.0
    near_duplicate: float = 0.95

    @model_validator(mode="after")
    def _names(self) -> RecallConfig:
        names = [p.label for p in self.paths]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"recall paths need distinct names, got {names}")
        for key in ("baseline", "added"):
            unknown = sorted(set(getattr(self, key) or ()) - set(names))
            if unknown:
                raise ValueError(f"{key} names unknown path(s) {unknown}; paths are {names}")
        if not self.sets()["baseline"]:
            raise ValueError("the baseline stack needs at least one recall path")
        return self

    def sets(self) -> dict[str, list[str]]:
        """``{"baseline": names, "full": baseline + added}`` in path order."""
        base = self.baseline
        if base is None:
            base = [p.label for p in self.paths if p.kind != "qprime"]
        added = self.added
        if added is None:
            added = [p.label for p in self.paths if p.kind == "qprime"]
        full = set(base) | set(added)
        return {
            "baseline": [p.label for p in self.paths if p.label in set(base)],
            "full": [p.label for p in self.paths if p.label in full],
        }


class StoreConfig(Section):
    """The key-value candidate store: ``sqlite`` (file), ``lmdb`` (folder) or ``redis``."""

    backend: Literal["sqlite", "lmdb", "redis"] = "sqlite"
    url: str = "redis://localhost:6379/0"  # redis only


class RankerConfig(Section):
    """A LightGBM ranking stage (:class:`knowrec.ranking.LGBMRanker` keywords)."""

    params: dict[str, Any] = Field(
        default_factory=lambda: {
            "objective": "lambdarank",
            "n_estimators": 200,
            "learning_rate": 0.05,
            "num_leaves": 7,
            "min_child_samples": 50,
        }
    )
    windows_days: list[int] = Field(default_factory=lambda: [7, 30, 180])


class LLMConfig(Section):
    """The LLM of the judge and of LLM recall paths (:func:`knowrec.llm.make_llm`)."""

    backend: str = "llamacpp"
    model: str = "qwen2.5-coder-1.5b"
    settings: dict[str, Any] = Field(default_factory=dict)


class JudgeConfig(Section):
    """The LLM quality judge on a sample of triggers (it is slow: one call per pair and
    judge for A/B, more for C)."""

    variant: Literal["A", "B", "C"] = "B"
    personas: int = Field(default=1, ge=1, le=5)
    noun: str = "item"
    item_tokens: int = 192
    reasoning_tokens: int = 64
    eval_triggers: int = Field(default=20, ge=0)  # judged held-out triggers (RecoDCG, …)
    train_triggers: int = Field(default=20, ge=0)  # judged label triggers (quality model)
    candidates: int = Field(default=30, ge=1)  # per trigger and set: the first n merged
    threshold: float = 1.0  # quality filter: drop impressions with a click judged ≤ this
    seed: int = 0
    # What describes an item in the prompt: raw text, or its title and knowledge text
    # (`knowledge`: a table of `knowrec knowledge generate`), or both; no knowledge → raw.
    item_text: Literal["raw", "knowledge", "both"] = "raw"
    knowledge: str | None = None
    both_directions: bool = False  # each pair judged both ways, averaged (2× the calls)

    @model_validator(mode="after")
    def _knowledge_table(self) -> JudgeConfig:
        if self.item_text != "raw" and self.knowledge is None:
            raise ConfigError(f"judge.item_text = {self.item_text!r} needs judge.knowledge")
        if self.knowledge is not None and not Path(self.knowledge).is_file():
            raise ConfigError(f"judge.knowledge: no knowledge table at {self.knowledge}")
        return self


class CrossEncoderConfig(Section):
    """The multitask cross-encoder (click and quality heads) by ranker registry name;
    its scores feed stage 2 and its quality head the final score."""

    enabled: bool = False
    kind: str = "cross_encoder"
    module: str = "knowrec.ranking.cross_encoder"  # imported first so the name registers
    params: dict[str, Any] = Field(default_factory=dict)  # CrossEncoderRanker keywords
    max_train_groups: int | None = Field(default=2000, ge=1)  # label impressions sampled


class FinalConfig(Section):
    """``(1−λ)·z(ranker) + λ·z(quality)``: the quality source, the λ grid and choice."""

    quality: Literal["cross_encoder", "lgbm", "none"] = "lgbm"
    quality_params: dict[str, Any] = Field(
        default_factory=lambda: {"n_estimators": 100, "num_leaves": 7, "min_child_samples": 5}
    )
    lambdas: list[float] = Field(default_factory=lambda: [i / 20 for i in range(21)])
    fixed_lambda: float | None = Field(default=None, ge=0.0, le=1.0)
    max_drop: float = 0.02  # λ: best RecoDCG@5 losing ≤ this share of the click metric
    # The click side of the λ sweep: "filtered" = quality-filtered ClickNDCG@5 on the judged
    # triggers' impressions (the paper); "all" = ClickNDCG@5 on every held-out impression
    # (steadier when few judged impressions have a click).
    click_metric: Literal["filtered", "all"] = "filtered"

    def click_label(self) -> str:
        return "ClickNDCG@5" if self.click_metric == "all" else "QF ClickNDCG@5"


class ServeConfig(Section):
    """What ``recommend`` does online."""

    k: int = Field(default=5, ge=1)
    # A knowledge table (columns id and text, as `knowrec knowledge generate` writes it):
    # each recommended item's text is served beside it; copied into the run.
    knowledge: str | None = None

    @model_validator(mode="after")
    def _table_exists(self) -> ServeConfig:
        if self.knowledge is not None and not Path(self.knowledge).is_file():
            raise ConfigError(f"serve.knowledge: no knowledge table at {self.knowledge}")
        return self


class ExploreConfig(Section):
    """A whole Explore Further experiment (the TOML file of ``knowrec run``)."""

    pipeline: Literal["explore"] = "explore"
    plugins: list[str] = Field(default_factory=list)  # modules imported before validation
    name: str = "explore"
    data: ExploreData = ExploreData()
    sessions: SessionsConfig = SessionsConfig()
    encoder: str = "all-MiniLM-L6-v2"
    vector_cache: str | None = None  # a shared text-vector cache (default: in the run)
    recall: RecallConfig = RecallConfig()
    store: StoreConfig = StoreConfig()
    stage1: RankerConfig = RankerConfig()
    llm: LLMConfig = LLMConfig()
    judge: JudgeConfig = JudgeConfig()
    cross_encoder: CrossEncoderConfig = CrossEncoderConfig()
    stage2: RankerConfig = RankerConfig()
    final: FinalConfig = FinalConfig()
    serve: ServeConfig = ServeConfig()
    engine: Literal["local", "spark"] = "local"  # where the co-engagement counts run
    spark: dict[str, str | int | float | bool] = Field(default_factory=dict)  # spark.* keys

    @model_validator(mode="after")
    def _quality(self) -> ExploreConfig:
        if self.final.quality == "cross_encoder" and not self.cross_encoder.enabled:
            raise ValueError(
                "final.quality = 'cross_encoder' needs [cross_encoder] enabled = true "
                "(or set final.quality to 'lgbm' or 'none')"
            )
        return self

    @model_validator(mode="after")
    def _check_components(self) -> ExploreConfig:
        """Every component's name and keyword parameters, through the registries: a typo
        is one error line at load, before any stage runs."""
        from knowrec.registry import LLM_BACKENDS, RANKERS, RECALL_PATHS

        checks: list[tuple[str, Any, str, Mapping[str, Any], int]] = [
            (f"recall.paths.{i}.params", RECALL_PATHS, p.kind, p.params, 0)
            for i, p in enumerate(self.recall.paths)
        ]
        checks += [
            ("stage1.params", RANKERS, "lgbm", self.stage1.params, 1),
            ("stage2.params", RANKERS, "lgbm", self.stage2.params, 1),
            ("final.quality_params", RANKERS, "lgbm", self.final.quality_params, 1),
            ("llm.settings", LLM_BACKENDS, self.llm.backend, self.llm.settings, 0),
        ]
        if self.cross_encoder.enabled:
            from knowrec.explore.service import cross_encoder_class

            cross_encoder_class(self.cross_encoder)  # imports its module
            c = self.cross_encoder
            checks.append(("cross_encoder.params", RANKERS, c.kind, c.params, 0))
        for where, registry, name, params, positional in checks:
            try:
                registry.check(name, params, positional=positional)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return self
