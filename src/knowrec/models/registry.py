"""The backbone registry: names → :class:`~knowrec.models.base.CTRModel` classes
(:data:`knowrec.registry.BACKBONES`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from knowrec.models.base import CTRModel
from knowrec.models.embedding import EmbeddingConfig
from knowrec.models.features import FeatureMap
from knowrec.registry import BACKBONES


def register_backbone(name: str, cls: type[CTRModel], *, replace: bool = False) -> None:
    """Make ``cls`` buildable as ``name`` (refuses to shadow a name unless ``replace``)."""
    BACKBONES.register(name, cls, replace=replace)


def get_backbone(name: str) -> type[CTRModel]:
    """The class registered as ``name`` (case-insensitive)."""
    return BACKBONES.get(name)


def build_backbone(
    name: str,
    feature_map: FeatureMap,
    *,
    embedding: EmbeddingConfig | Mapping[str, Any] | None = None,
    **params: Any,
) -> CTRModel:
    """Build backbone ``name``; ``params`` must be constructor parameters of its class."""
    return BACKBONES.build(name, feature_map, embedding=embedding, **params)


__all__ = ["BACKBONES", "build_backbone", "get_backbone", "register_backbone"]
