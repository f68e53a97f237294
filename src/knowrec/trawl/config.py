"""The TRAWL experiment config (the TOML file of ``knowrec run``), checked whole at load:
an unknown key, a wrong type or a backbone parameter the backbone does not take is one
error line before any stage runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from knowrec.config import Section, validate
from knowrec.data.config import DataConfig
from knowrec.errors import ConfigError
from knowrec.models.config import EmbeddingConfig
from knowrec.train.config import TrainConfig


class ProtocolConfig(Section):
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    history_first: int = 5
    max_len: int = 10
    label: str = "rating > 3"
    # Cold-start evaluation: this share of items (drawn with split_seed) loses its training
    # samples, so the model meets them only through history sequences and knowledge.
    cold_items: float = Field(default=0.0, ge=0.0, lt=1.0)
    # Learning curves: keep this share of the training users (drawn with split_seed);
    # validation and test users stay as they are.
    train_users: float = Field(default=1.0, gt=0.0, le=1.0)


class KnowledgeSection(Section):
    methods: list[str] = Field(default_factory=lambda: ["none", "raw", "trawl"])
    sides: list[Literal["item", "user"]] = Field(default_factory=lambda: ["item", "user"])
    tables_dir: str | None = None  # <dir>/<prefix>_<side>_<method>.parquet
    table_prefix: str = "knowledge"
    generate: bool = True  # generate tables missing from tables_dir
    backend: str = "llamacpp"
    model: str = "qwen2.5-coder-1.5b"
    llm_settings: dict[str, Any] = Field(default_factory=dict)  # make_llm keywords: parallel, …
    settings: dict[str, Any] = Field(default_factory=dict)  # knowrec.knowledge.KnowledgeConfig


class SwingSection(Section):
    alpha: float = 1.0
    beta: float = 0.0
    max_users_per_item: int | None = 500
    max_items_per_user: int | None = 300


class FeaturesSection(Section):
    """The CTR features besides user, item and the behaviour sequence. ``"auto"`` takes
    them from the data set: user/item columns with at most ``max_vocab`` distinct values as
    categorical fields, list columns (genres, topics) as multi-valued fields; ML-1M gets
    gender, age, occupation and genres."""

    categorical: list[str] | Literal["auto"] = "auto"
    multi_valued: list[str] | Literal["auto"] = "auto"
    max_vocab: int = Field(default=100, ge=2)
    multi_valued_len: int = Field(default=6, ge=1)
    ratings: bool = True  # the ratings of history items, when the data has ratings


class TrawlConfig(Section):
    """A whole TRAWL experiment."""

    pipeline: Literal["trawl"] = "trawl"
    name: str = "trawl"
    plugins: list[str] = Field(default_factory=list)
    data: DataConfig = DataConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    knowledge: KnowledgeSection = KnowledgeSection()
    features: FeaturesSection = FeaturesSection()
    encoder: str = "all-MiniLM-L6-v2"
    swing: SwingSection = SwingSection()
    backbones: list[str] = Field(default_factory=lambda: ["din", "dien", "deepfm"])
    backbone_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    embedding: EmbeddingConfig = EmbeddingConfig()
    train: TrainConfig = TrainConfig()  # seed is set per job
    w1: float = 0.004
    w2: float = 0.008
    tau: float = 0.15
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    ablations: bool = True
    ablation_backbones: list[str] | None = None  # default: every backbone
    sweep: dict[Literal["w1", "w2", "tau"], list[float]] = Field(default_factory=dict)
    sweep_backbone: str = "din"
    # Retrain the sweep point with the best validation AUC on every seed: a Table 1 row
    # "<method>, best sweep point" (loss settings tuned on validation, as papers tune them).
    sweep_refit: bool = False
    # The report's nearest-item examples: item ids or titles (default: the 5 most sampled).
    neighbour_items: list[str] = Field(default_factory=list)
    engine: Literal["local", "spark"] = "local"  # where SWING and LLM knowledge run
    # Models trained at once, each in its own process with train.threads / workers threads.
    workers: int = Field(default=1, ge=1)
    spark: dict[str, str | int | float | bool] = Field(default_factory=dict)  # spark.* keys

    @model_validator(mode="after")
    def _check_components(self) -> TrawlConfig:
        """Backbone names and parameters (through the registry), the knowledge and LLM
        settings: a typo is an error at load, not after the knowledge stages."""
        from knowrec.knowledge.generate import KnowledgeConfig
        from knowrec.registry import BACKBONES, LLM_BACKENDS

        named = set(self.backbones) | set(self.backbone_params) | {self.sweep_backbone}
        for name in sorted(named | set(self.ablation_backbones or ())):
            try:
                BACKBONES.check(name, self.backbone_params.get(name), positional=1)
            except ConfigError as exc:
                raise ConfigError(f"backbone_params.{name}: {exc}") from None
        validate(KnowledgeConfig, self.knowledge.settings, source="knowledge.settings")
        try:
            LLM_BACKENDS.check(self.knowledge.backend, self.knowledge.llm_settings)
        except ConfigError as exc:
            raise ConfigError(f"knowledge.llm_settings: {exc}") from None
        return self

    @property
    def loss_settings(self) -> dict[str, float]:
        """The contrastive loss settings a job may change (a sweep point)."""
        return {"w1": self.w1, "w2": self.w2, "tau": self.tau}

    @property
    def sweep_method(self) -> str:
        """The knowledge method the sweep trains: trawl, else the last method."""
        methods = self.knowledge.methods
        return "trawl" if "trawl" in methods else methods[-1]


#: Fields that choose which models to train and how to report them, not how one model
#: trains: left out of a training stage's key (every other field is in it).
NOT_TRAINING = (
    "pipeline", "name", "plugins", "data", "protocol", "knowledge", "encoder", "swing",
    "backbones", "backbone_params", "w1", "w2", "tau", "seeds", "ablations",
    "ablation_backbones", "sweep", "sweep_backbone", "sweep_refit", "neighbour_items",
    "engine", "spark", "workers",
)  # fmt: skip
