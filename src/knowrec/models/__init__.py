"""CTR backbones by name, the TRAWL adapter and the CTR floors.

    from knowrec.models import build_backbone
    model = build_backbone("din", feature_map, embedding={"knowledge": "adapter"},
                           mlp_units=(200, 80))

``BACKBONES`` maps names to classes; :func:`register_backbone` adds a user's own
(a subclass of :class:`CTRModel`). Unknown names raise :class:`RegistryError`, unknown
parameters :class:`ConfigError`, both listing what is known.

The torch-based names load on first use, so ``knowrec.models.floors`` imports without
torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from knowrec.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from knowrec.models.adapter import EntityEmbedding, JointLoss, MoEAdapter, info_nce
    from knowrec.models.base import CTRModel, ModelOutput
    from knowrec.models.deepfm import DeepFM
    from knowrec.models.dien import DIEN
    from knowrec.models.din import DIN
    from knowrec.models.embedding import Embedded, EmbeddingConfig, FeatureEmbedding
    from knowrec.models.registry import (
        BACKBONES,
        build_backbone,
        get_backbone,
        register_backbone,
    )

_WHERE = {
    "EntityEmbedding": "adapter",
    "JointLoss": "adapter",
    "MoEAdapter": "adapter",
    "info_nce": "adapter",
    "CTRModel": "base",
    "ModelOutput": "base",
    "DeepFM": "deepfm",
    "DIEN": "dien",
    "DIN": "din",
    "Embedded": "embedding",
    "EmbeddingConfig": "embedding",
    "FeatureEmbedding": "embedding",
    "BACKBONES": "registry",
    "build_backbone": "registry",
    "get_backbone": "registry",
    "register_backbone": "registry",
}

__getattr__ = lazy_exports(__name__, _WHERE)


__all__ = [
    "BACKBONES",
    "DIEN",
    "DIN",
    "CTRModel",
    "DeepFM",
    "Embedded",
    "EmbeddingConfig",
    "EntityEmbedding",
    "FeatureEmbedding",
    "JointLoss",
    "MoEAdapter",
    "ModelOutput",
    "build_backbone",
    "get_backbone",
    "info_nce",
    "register_backbone",
]
