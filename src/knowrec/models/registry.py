"""The backbone registry: names → :class:`~knowrec.models.base.CTRModel` classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from knowrec.errors import ConfigError, RegistryError
from knowrec.features import FeatureMap
from knowrec.models.base import CTRModel
from knowrec.models.deepfm import DeepFM
from knowrec.models.dien import DIEN
from knowrec.models.din import DIN
from knowrec.models.embedding import EmbeddingConfig

BACKBONES: dict[str, type[CTRModel]] = {"deepfm": DeepFM, "din": DIN, "dien": DIEN}


def register_backbone(name: str, cls: type[CTRModel], *, replace: bool = False) -> None:
    """Make ``cls`` buildable as ``name`` (refuses to shadow a name unless ``replace``)."""
    if not (isinstance(cls, type) and issubclass(cls, CTRModel)):
        raise RegistryError(f"backbone {name!r}: {cls!r} is not a CTRModel subclass")
    key = name.lower()
    if key in BACKBONES and not replace:
        raise RegistryError(f"backbone {name!r} is already registered (pass replace=True)")
    BACKBONES[key] = cls


def get_backbone(name: str) -> type[CTRModel]:
    """The class registered as ``name`` (case-insensitive)."""
    try:
        return BACKBONES[name.lower()]
    except KeyError:
        known = ", ".join(sorted(BACKBONES))
        raise RegistryError(f"unknown backbone {name!r}: known names are {known}") from None


def build_backbone(
    name: str,
    feature_map: FeatureMap,
    *,
    embedding: EmbeddingConfig | Mapping[str, Any] | None = None,
    **params: Any,
) -> CTRModel:
    """Build backbone ``name``; ``params`` must be constructor parameters of its class."""
    cls = get_backbone(name)
    known = [p for p in cls.param_names() if p != "embedding"]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(
            f"backbone {name!r} has no parameter(s) {', '.join(unknown)}: "
            f"known parameters are embedding, {', '.join(known)}"
        )
    return cls(feature_map, embedding, **params)
