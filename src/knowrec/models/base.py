"""The base of every CTR backbone: the shared embedding, the output type, introspection."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from knowrec.config import validate
from knowrec.errors import ConfigError
from knowrec.models.embedding import EmbeddingConfig, FeatureEmbedding
from knowrec.models.features import FeatureMap
from knowrec.runs import versions

MODEL_FORMAT = 1


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

    def save(self, directory: str | Path, feature_map: FeatureMap) -> Path:
        """Write the model so that :meth:`load` rebuilds it from the folder alone:
        ``model.json`` (class, parameters, library versions), ``weights.pt`` and the
        ``feature_map/`` that turns frames into its inputs."""
        out = Path(directory)
        feature_map.save(out / "feature_map")
        torch.save(self.state_dict(), out / "weights.pt")
        cls = type(self)
        doc = {
            "format": MODEL_FORMAT,
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "params": self.get_params(),
            "versions": versions(),
        }
        tmp = out / "model.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2, default=list))
        os.replace(tmp, out / "model.json")
        return out

    @staticmethod
    def load(directory: str | Path) -> tuple[CTRModel, FeatureMap]:
        """The model and feature map saved by :meth:`save` (in eval mode); warns when the
        folder was written by another knowrec or torch version."""
        src = Path(directory)
        try:
            doc = json.loads((src / "model.json").read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{src}: not a saved CTR model ({exc})") from None
        if doc.get("format") != MODEL_FORMAT:
            raise ConfigError(f"{src}: model format {doc.get('format')} is not supported")
        now = versions()
        for lib in ("knowrec", "torch"):
            if doc["versions"].get(lib) != now.get(lib):
                warnings.warn(
                    f"{src}: saved with {lib} {doc['versions'].get(lib)}, loaded with "
                    f"{now.get(lib)}",
                    stacklevel=2,
                )
        module, name = doc["class"].split(":")
        cls = getattr(importlib.import_module(module), name)
        feature_map = FeatureMap.load(src / "feature_map")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in doc["params"].items()}
        model = cls(feature_map, **params)
        model.load_state_dict(torch.load(src / "weights.pt", weights_only=True))
        return model.eval(), feature_map

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
