"""Token counting with the LLM's own tokenizer, without loading the model's weights.

The ``raw`` method and the extractive summaries truncate text by the same tokens as the
LLM prompts do; :class:`VocabTokenizer` loads only the GGUF vocabulary (about 1 s)
when no LLM object is at hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Tokenizer(Protocol):
    """What truncation needs; every :class:`knowrec.llm.base.LLM` provides it."""

    def count_tokens(self, text: str) -> int: ...

    def truncate_tokens(self, text: str, max_tokens: int) -> str: ...


class VocabTokenizer:
    """The tokenizer of a GGUF model (a known name or a path), vocabulary only."""

    def __init__(self, model: str = "qwen2.5-coder-1.5b", model_dir: str | Path | None = None):
        from knowrec.llm.llamacpp import GGUFTokenizer

        self.model = model
        self._tok = GGUFTokenizer(model, model_dir)

    def count_tokens(self, text: str) -> int:
        return self._tok.count(text)

    def truncate_tokens(self, text: str, max_tokens: int) -> str:
        return self._tok.truncate(text, max_tokens)
