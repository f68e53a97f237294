"""Prompt templates as files: fixed instructions first, the item or user text last.

A template file (``prompts/<side>_<method>.txt`` in the package, or any path) has two
parts, ``=== system ===`` and ``=== user ===``; lines starting with ``#`` before the
first part are comments. Placeholders use :class:`string.Template` syntax (``$name`` or
``${name}``), so JSON braces need no escaping. The system part may only use the
*domain* placeholders (the same for every item: ``$noun``, ``$factors``,
``$factor_names``, ``$description``, ``$kar_aspects``, ``$k``); the user part holds the
per-item placeholders (``$text``, ``$title``, ``$profile``, ``$history``). So every
prompt of a batch starts with the same tokens and llama.cpp reuses their KV cache
(MODELS.md: prompt time 3.6 s → 1.0 s).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from knowrec.errors import ConfigError
from knowrec.knowledge.factors import Domain, Side

DOMAIN_FIELDS = frozenset({"noun", "factors", "factor_names", "description", "kar_aspects", "k"})
ITEM_FIELDS = frozenset({"text", "title", "profile", "history"})
_PART = re.compile(r"^===\s*(system|user)\s*===\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    """A two-part chat prompt: ``system`` (fixed per batch) and ``user`` (per item)."""

    name: str
    system: str
    user: str

    @classmethod
    def parse(cls, text: str, name: str = "<template>") -> PromptTemplate:
        """Parse the file format; checks the parts and where each placeholder may go."""
        marks = list(_PART.finditer(text))
        if [m.group(1) for m in marks] != ["system", "user"]:
            raise ConfigError(
                f"prompt template {name}: needs a '=== system ===' then a '=== user ===' part"
            )
        head = text[: marks[0].start()]
        if any(line.strip() and not line.lstrip().startswith("#") for line in head.splitlines()):
            raise ConfigError(
                f"prompt template {name}: text before '=== system ===' must be comments"
            )
        system = text[marks[0].end() : marks[1].start()].strip()
        user = text[marks[1].end() :].strip()
        template = cls(name, system, user)
        for part, allowed in (("system", DOMAIN_FIELDS), ("user", ITEM_FIELDS)):
            used = placeholders(getattr(template, part))
            wrong = sorted(used - allowed)
            if wrong:
                raise ConfigError(
                    f"prompt template {name}: the {part} part may not use {wrong}; allowed "
                    f"there: {sorted(allowed)} (per-item text goes last, in the user part)"
                )
        if not placeholders(user):
            raise ConfigError(f"prompt template {name}: the user part has no item placeholder")
        return template

    @classmethod
    def load(cls, path: str | Path) -> PromptTemplate:
        """Read a template file."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"prompt template {p} does not exist")
        return cls.parse(p.read_text(), str(p))

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


def placeholders(text: str) -> set[str]:
    """The ``$name`` / ``${name}`` placeholders used in ``text``."""
    names: set[str] = set()
    for match in Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
        elif match.group("invalid") is not None:
            raise ConfigError(f"invalid '$' at position {match.start()} in a prompt template")
    return names


def builtin_template(side: Side, method: str) -> PromptTemplate:
    """The packaged template ``prompts/<side>_<method>.txt``."""
    name = f"{side}_{method}.txt"
    ref = resources.files("knowrec.knowledge") / "prompts" / name
    if not ref.is_file():
        raise ConfigError(f"no built-in prompt template {name}")
    return PromptTemplate.parse(ref.read_text(), f"<builtin:{name}>")
