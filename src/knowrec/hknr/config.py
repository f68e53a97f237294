"""The HKNR experiment config (the TOML file of ``knowrec run``), checked whole at load."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from knowrec.config import Section
from knowrec.data.config import DataConfig
from knowrec.hknr.recall import RecallSettings
from knowrec.train.config import TrainConfig

#: The baselines a config may list (see :data:`knowrec.hknr.baselines.NAMES`).
Baseline = Literal[
    "popularity", "click_rate", "semantic", "wide", "item_knn", "als", "nrms", "neumf", "din"
]


class NewsData(DataConfig):
    """The data section: a news log (``source = "synthetic"`` is the synthetic news world)
    and, for NeMig, the entity graph that initialises the entity vectors."""

    kg: bool = True  # NeMig: read the 1-hop Wikidata graph of the entities
    text: Literal["title", "title_abstract"] = "title_abstract"


class GraphSettings(Section):
    """Stage 2: the temporal-graph user encoder."""

    enabled: bool = True  # false: the user vector is the mean of the clicks' states
    hidden: int = Field(default=128, ge=8)
    edge_dropout: float = Field(default=0.1, ge=0, lt=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    max_clicks: int = Field(default=50, ge=1)  # clicks pooled per user
    snapshot_hours: float = Field(default=24.0, gt=0)  # graph rebuilt per window of impressions


class RankerSettings(Section):
    """Stage 3: the knowledge-augmented ranker and its loss."""

    knowledge: bool = True  # false: no gated fusion, the semantic vector alone
    click_prior: bool = True  # add the article's smoothed training click rate (log-odds)
    max_entities: int = Field(default=5, ge=1)
    entity_dim: int = Field(default=32, ge=2)  # graph vectors of the entities
    dropout: float = Field(default=0.1, ge=0, lt=1)
    bce: float = 1.0  # λ1
    bpr: float = 0.5  # λ2
    reconstruction: float = 0.1  # λ3
    label_smoothing: float = Field(default=0.05, ge=0, lt=0.5)


class HknrConfig(Section):
    """A whole HKNR experiment."""

    pipeline: Literal["hknr"] = "hknr"
    name: str = "hknr"
    plugins: list[str] = Field(default_factory=list)
    data: NewsData = NewsData()
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    encoder: str = "all-MiniLM-L6-v2"
    recall: RecallSettings = RecallSettings()
    graph: GraphSettings = GraphSettings()
    ranker: RankerSettings = RankerSettings()
    # The paper's optimisation: AdamW, cosine decay after a warm-up, batch 1024, clipping 5.0,
    # early stopping (on MRR: impressions hold ~6 candidates, too few for NDCG@10).
    train: TrainConfig = TrainConfig(
        epochs=10,
        batch_size=1024,
        lr=1e-3,
        optimizer="adamw",
        weight_decay=1e-4,
        schedule="cosine",
        warmup=0.05,
        grad_clip=5.0,
        patience=2,
        monitor="mrr",
    )
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    ablations: bool = True
    baselines: list[Baseline] = Field(default_factory=lambda: list(get_args(Baseline)))
