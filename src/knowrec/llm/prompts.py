"""Prompt files: named parts under ``=== part ===`` lines, with checked placeholders.

The knowledge, judge and Q' prompts share one format::

    # Comment lines (and blank lines) may come before the first part.
    === system ===
    Fixed instructions for every $noun.
    === user ===
    $text

Placeholders use :class:`string.Template` syntax (``$name`` or ``${name}``; ``$$`` is a
dollar sign), so JSON braces need no escaping. A :class:`PromptFile` describes one kind
of file (its parts, in order, and the placeholders each part may and must use) and checks
a text against it; every error names the file and the part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from knowrec.errors import ConfigError

_PART = re.compile(r"^===\s*([A-Za-z_]+)\s*===\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PromptFile:
    """The layout of one kind of prompt file.

    ``kind`` starts every error ("judge template t.txt: …"); ``parts`` are the part names
    in the order the file must give them; ``allowed[part]`` are the placeholders a part
    may use and ``required[part]`` those it must use; ``hint`` ends a "may not use" error.
    """

    kind: str
    parts: tuple[str, ...]
    allowed: Mapping[str, frozenset[str]]
    required: Mapping[str, frozenset[str]] = field(default_factory=dict)
    hint: str = ""

    def parse(self, text: str, name: str = "<template>") -> dict[str, str]:
        """The parts of ``text`` (stripped, in order), after checking them."""
        marks = list(_PART.finditer(text))
        found = [m.group(1) for m in marks]
        if found != list(self.parts):
            raise ConfigError(
                f"{self.kind} {name}: needs the parts {', '.join(self.parts)} in this order "
                f"(as '=== name ===' lines), found {found or 'none'}"
            )
        head = text[: marks[0].start()]
        if any(line.strip() and not line.lstrip().startswith("#") for line in head.splitlines()):
            raise ConfigError(
                f"{self.kind} {name}: text before '=== {self.parts[0]} ===' must be comments"
            )
        ends = [m.start() for m in marks[1:]] + [len(text)]
        parts = {m.group(1): text[m.end() : e].strip() for m, e in zip(marks, ends, strict=True)}
        for part, body in parts.items():
            if not body:
                raise self.error(name, part, "is empty")
            used, bad_dollar = _scan(body)
            if bad_dollar is not None:
                raise self.error(
                    name,
                    part,
                    f"has a '$' at character {bad_dollar} that starts no placeholder "
                    "(write $$ for a dollar sign)",
                )
            wrong = sorted(used - self.allowed[part])
            if wrong:
                raise self.error(
                    name,
                    part,
                    f"may not use {wrong}; allowed there: {sorted(self.allowed[part])}{self.hint}",
                )
            missing = sorted(self.required.get(part, frozenset()) - used)
            if missing:
                raise self.error(name, part, f"must use {missing}")
        return parts

    def read(self, path: str | Path) -> tuple[str, str]:
        """The text of the file at ``path`` and its name, as :meth:`parse` takes them."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"{self.kind} {p} does not exist")
        return p.read_text(encoding="utf-8"), str(p)

    def read_builtin(self, package: str, filename: str) -> tuple[str, str]:
        """The text of ``<package>/prompts/<filename>`` and its name ``<builtin:filename>``."""
        ref = resources.files(package) / "prompts" / filename
        if not ref.is_file():
            raise ConfigError(f"no built-in {self.kind} {filename}")
        return ref.read_text(encoding="utf-8"), f"<builtin:{filename}>"

    def error(self, name: str, part: str, problem: str) -> ConfigError:
        """The error for a bad part: "<kind> <name>: the <part> part <problem>"."""
        return ConfigError(f"{self.kind} {name}: the {part} part {problem}")


def placeholders(text: str) -> set[str]:
    """The ``$name`` / ``${name}`` placeholders used in ``text``."""
    names, bad_dollar = _scan(text)
    if bad_dollar is not None:
        raise ConfigError(f"invalid '$' at position {bad_dollar} in a prompt template")
    return names


def _scan(text: str) -> tuple[set[str], int | None]:
    """The placeholders in ``text`` and where its first lone ``$`` is (None: nowhere)."""
    names: set[str] = set()
    for match in Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
        elif match.group("invalid") is not None:
            return names, match.start()
    return names, None
