"""Model settings that configs validate without importing torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from knowrec.config import Section

KnowledgeMode = Literal["none", "raw", "adapter"]


class EmbeddingConfig(Section):
    """Embedding settings shared by all backbones.

    ``dim``: ID/field embedding size. ``knowledge``: "none" | "raw" | "adapter" (see
    :mod:`knowrec.models.adapter`), applied to ``knowledge_sides``. ``l2``: weight of the
    L2 penalty ``l2·Σ‖E‖²`` over all embedding tables, added to the loss each step.
    ``user_id_dropout`` / ``item_id_dropout``: share of training occurrences whose ID
    embedding is swapped for OOV (see :class:`~knowrec.models.adapter.EntityEmbedding`).
    """

    dim: int = Field(32, ge=1)
    knowledge: KnowledgeMode = "none"
    knowledge_sides: tuple[Literal["user", "item"], ...] = ("user", "item")
    adapter_dim: int = Field(32, ge=1)
    adapter_experts: int = Field(4, ge=1)
    adapter_hidden: int = Field(128, ge=1)
    adapter_dropout: float = Field(0.0, ge=0, lt=1)
    l2: float = Field(0.0, ge=0)
    init_std: float = Field(0.01, gt=0)
    user_id_dropout: float = Field(0.0, ge=0, le=1)
    item_id_dropout: float = Field(0.0, ge=0, le=1)
