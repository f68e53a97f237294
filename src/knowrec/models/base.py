"""The base of every CTR backbone: the shared embedding, the output type, introspection."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from knowrec.config import validate
from knowrec.errors import ConfigError
from knowrec.features import FeatureMap
from knowrec.models.embedding import EmbeddingConfig, FeatureEmbedding


@dataclass
class ModelOutput:
    """``logit`` (B,) click logit; ``aux_loss`` scalar auxiliary loss (unweighted) or None."""

    logit: torch.Tensor
    aux_loss: torch.Tensor | None = None


def embedding_config(embedding: EmbeddingConfig | Mapping[str, Any] | None) -> EmbeddingConfig:
    """An :class:`EmbeddingConfig` from a config, a dict (validated) or None (defaults)."""
    if embedding is None:
        return EmbeddingConfig()
    if isinstance(embedding, EmbeddingConfig):
        return embedding
    return validate(EmbeddingConfig, dict(embedding), source="embedding")


class CTRModel(nn.Module):
    """A CTR network over :class:`FeatureEmbedding`.

    Subclasses take ``(feature_map, embedding=None, *, <explicit keyword parameters>)``,
    call :meth:`_set_params` with their ``locals()``, and implement ``forward(batch) →
    ModelOutput``. ``aux_weight`` scales ``aux_loss`` in the training loss.
    """

    name: ClassVar[str] = "base"
    aux_weight: float = 0.0

    def __init__(
        self, feature_map: FeatureMap, embedding: EmbeddingConfig | Mapping[str, Any] | None
    ) -> None:
        super().__init__()
        self.embedding = FeatureEmbedding(feature_map, embedding_config(embedding))
        self._params: dict[str, Any] = {}

    def _set_params(self, values: Mapping[str, Any]) -> None:
        names = self.param_names()
        self._params = {k: values[k] for k in names if k in values}
        self._params["embedding"] = self.embedding.config.model_dump()

    @classmethod
    def param_names(cls) -> list[str]:
        """Constructor parameters other than the feature map."""
        sig = inspect.signature(cls.__init__)
        return [n for n in sig.parameters if n not in ("self", "feature_map")]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {n: sig.parameters[n].default for n in cls.param_names()}

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters of this model (the embedding as a dict)."""
        return dict(self._params)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def adapted_vectors(
        self, feature_map: FeatureMap, side: str = "item"
    ) -> tuple[list[str], np.ndarray]:
        """The knowledge part of every ``side`` entity that has knowledge (after the MoE
        adapter when there is one): ids and an (n, d) float32 array. These TRAWL item
        vectors exist for cold items too and feed the semantic recall path."""
        index = feature_map.entity(side)
        if index.knowledge is None:
            raise ConfigError(f"this model has no {side} knowledge")
        has = np.flatnonzero(np.abs(index.knowledge).sum(1) > 0)
        has = has[has >= 2]  # skip padding and OOV
        was = self.training
        self.eval()
        entity = self.embedding.entity(side)
        vectors = entity.adapted(torch.as_tensor(has, dtype=torch.long)).numpy()
        self.train(was)
        return [index.vocab.tokens[e - 2] for e in has], vectors.astype(np.float32)

    def regularization(self) -> torch.Tensor | None:
        """Penalty added to the loss each step (embedding L2), or None."""
        return self.embedding.l2_penalty()

    def _require_sequence(self) -> None:
        if not self.embedding.has_sequence:
            raise ConfigError(
                f"backbone {self.name!r} needs a behaviour sequence (feature spec 'sequence')"
            )
