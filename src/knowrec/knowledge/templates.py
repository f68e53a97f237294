"""Prompt templates as files: fixed instructions first, the item or user text last.

A template file (``prompts/<side>_<method>.txt`` in the package, or any path) is a
:mod:`knowrec.llm.prompts` file with two parts, ``=== system ===`` and ``=== user ===``.
The system part may only use the *domain* placeholders (the same for every item:
``$noun``, ``$factors``, ``$factor_names``, ``$description``, ``$kar_aspects``, ``$k``);
the user part holds the per-item placeholders (``$text``, ``$title``, ``$profile``,
``$history``). So every prompt of a batch starts with the same tokens and llama.cpp reuses
their KV cache (docs/llm.md, batched local decoding; BENCHMARKS.md: 322 → 72 prompt
tokens evaluated per item).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from string import Template

from knowrec.errors import ConfigError
from knowrec.knowledge.factors import Domain, Side
from knowrec.llm.prompts import PromptFile, placeholders

DOMAIN_FIELDS = frozenset({"noun", "factors", "factor_names", "description", "kar_aspects", "k"})
ITEM_FIELDS = frozenset({"text", "title", "profile", "history"})
_FILE = PromptFile(
    "prompt template",
    ("system", "user"),
    allowed={"system": DOMAIN_FIELDS, "user": ITEM_FIELDS},
    hint=" (per-item text goes last, in the user part)",
)


@dataclass(frozen=True)
class PromptTemplate:
    """A two-part chat prompt: ``system`` (fixed per batch) and ``user`` (per item)."""

    name: str
    system: str
    user: str

    @classmethod
    def parse(cls, text: str, name: str = "<template>") -> PromptTemplate:
        """Parse the file format; checks the parts and where each placeholder may go."""
        parts = _FILE.parse(text, name)
        if not placeholders(parts["user"]):
            raise _FILE.error(name, "user", f"must use one of {sorted(ITEM_FIELDS)}")
        return cls(name=name, **parts)

    @classmethod
    def load(cls, path: str | Path) -> PromptTemplate:
        """Read a template file."""
        return cls.parse(*_FILE.read(path))

    def render_system(self, domain: Domain, side: Side, k: int = 5) -> str:
        """The fixed instructions for ``domain`` and ``side``."""
        factors = domain.for_side(side)
        values = {
            "noun": domain.noun,
            # Names and descriptions only: listing the allowed values made the 1.5B model
            # pick the first ones ("dark, gritty" for most ML-1M movies); the JSON schema's
            # grammar keeps the answer within them (BENCHMARKS.md, knowledge quality).
            "factors": domain.factor_lines(side, with_values=False),
            "factor_names": ", ".join(f.label.lower() for f in factors),
            "description": domain.description,
            "kar_aspects": domain.kar_aspects or ", ".join(f.label.lower() for f in factors),
            "k": str(k),
        }
        return Template(self.system).substitute(values)

    def render_user(self, **values: str) -> str:
        """The per-item part; every placeholder it uses must be given."""
        missing = placeholders(self.user) - set(values)
        if missing:
            raise ConfigError(f"prompt template {self.name}: no value for {sorted(missing)}")
        return Template(self.user).substitute(values)

    def digest(self) -> str:
        """A short hash of the template text."""
        return hashlib.sha256(f"{self.system}\x00{self.user}".encode()).hexdigest()[:16]


def builtin_template(side: Side, method: str) -> PromptTemplate:
    """The packaged template ``prompts/<side>_<method>.txt``."""
    return PromptTemplate.parse(*_FILE.read_builtin("knowrec.knowledge", f"{side}_{method}.txt"))
