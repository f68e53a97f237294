"""Key-factor sets: what matters for recommendation in a domain (TRAWL, docs/trawl.md).

A domain is a TOML file (``domains/<name>.toml`` inside the package, or any path) that
lists its key factors. Each factor becomes one field of the LLM's JSON answer; the JSON
schema is built from the set (closed vocabularies as ``enum``, arrays bounded by
``maxItems`` — docs/llm.md: unbounded arrays make a small model loop), and the same set
renders the fields back into the compact knowledge text that is embedded.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from knowrec.errors import ConfigError

Side = Literal["item", "user"]
SIDES: tuple[Side, ...] = ("item", "user")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Factor(BaseModel):
    """One key factor: a field of the structured answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str = ""
    description: str
    user_description: str | None = None
    values: tuple[str, ...] | None = None
    values_from: str | None = None
    #: A value meaning "nothing applies", listed first and dropped from the cleaned
    #: answer (a small model fills an optional field rather than leave it empty).
    empty_value: str | None = None
    max_items: int = Field(default=3, ge=1, le=20)
    min_items: int = Field(default=1, ge=0)
    max_length: int = Field(default=40, ge=1, le=200)
    sides: tuple[Side, ...] = SIDES

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"factor name {value!r} must be lower_snake_case")
        return value

    @field_validator("values")
    @classmethod
    def _values(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        cleaned = tuple(v.strip() for v in value)
        if not cleaned or any(not v for v in cleaned):
            raise ValueError("values must be a non-empty list of non-empty strings")
        if len(set(cleaned)) != len(cleaned):
            dup = sorted({v for v in cleaned if cleaned.count(v) > 1})
            raise ValueError(f"duplicate values {dup}")
        return cleaned

    @property
    def single(self) -> bool:
        """A single value (a string) rather than an array."""
        return self.max_items == 1

    def describe(self, side: Side) -> str:
        """The description shown in the prompt for ``side``."""
        if side == "user" and self.user_description:
            return self.user_description
        return self.description


class Domain(BaseModel):
    """A named set of key factors (movies, news, generic, or a user-defined one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    noun: str = "item"
    description: str = ""
    kar_aspects: str = ""
    factors: tuple[Factor, ...]
    source: str = ""

    @field_validator("factors")
    @classmethod
    def _factors(cls, value: tuple[Factor, ...]) -> tuple[Factor, ...]:
        if not value:
            raise ValueError("a domain needs at least one factor")
        names = [f.name for f in value]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate factor names in {names}")
        by_name = {f.name: f for f in value}
        resolved = []
        for factor in value:
            if factor.values_from is not None:
                base = by_name.get(factor.values_from)
                if base is None or base.values is None:
                    raise ValueError(
                        f"factor {factor.name!r}: values_from={factor.values_from!r} must name "
                        "another factor with values"
                    )
                factor = factor.model_copy(update={"values": base.values})
            if factor.empty_value is not None:
                if factor.values is None:
                    raise ValueError(f"factor {factor.name!r}: empty_value needs values")
                rest = tuple(v for v in factor.values if v != factor.empty_value)
                factor = factor.model_copy(update={"values": (factor.empty_value, *rest)})
            if factor.min_items > factor.max_items:
                raise ValueError(f"factor {factor.name!r}: min_items > max_items")
            if not factor.label:
                factor = factor.model_copy(update={"label": factor.name.replace("_", " ").title()})
            resolved.append(factor)
        return tuple(resolved)

    def subset(self, names: list[str]) -> Domain:
        """The same domain asked only for the factors ``names`` (in the domain's order)."""
        known = [f.name for f in self.factors]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ConfigError(
                f"domain {self.name!r} has no factor(s) {', '.join(unknown)}; "
                f"its factors are {', '.join(known)}"
            )
        return self.model_copy(
            update={"factors": tuple(f for f in self.factors if f.name in names)}
        )

    def for_side(self, side: Side) -> tuple[Factor, ...]:
        """The factors asked for ``side``."""
        _check_side(side)
        return tuple(f for f in self.factors if side in f.sides)

    def json_schema(self, side: Side) -> dict[str, Any]:
        """The JSON schema of the answer: one required property per factor, in order.

        A single-valued factor is a string ``enum``; a multi-valued one an array of at most
        ``max_items`` strings (allowed values for a closed vocabulary, phrases of at most
        ``max_length`` characters for an open one). Arrays are what a small model writes
        by itself for a list: forced into one comma-separated string, the 1.5B model
        picked the first allowed values ("dark, gritty" for Toy Story) on ML-1M.
        """
        props: dict[str, Any] = {}
        for f in self.for_side(side):
            if f.single and f.values is not None:
                props[f.name] = {"type": "string", "enum": list(f.values)}
                continue
            if f.values is not None:
                item: dict[str, Any] = {"type": "string", "enum": list(f.values)}
            else:
                item = {"type": "string", "minLength": 1, "maxLength": f.max_length}
            props[f.name] = {
                "type": "array",
                "items": item,
                "minItems": f.min_items,
                "maxItems": f.max_items,
            }
        return {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }

    def factor_lines(self, side: Side, *, with_values: bool = True) -> str:
        """The key factors as prompt lines: name, count, description, allowed values."""
        lines = []
        for f in self.for_side(side):
            count = "one value" if f.single else f"a list of up to {f.max_items}"
            line = f"- {f.name} ({count}): {f.describe(side)}."
            if with_values and f.values is not None:
                line += f" Allowed: {', '.join(f.values)}."
            lines.append(line)
        return "\n".join(lines)

    def clean(self, fields: Any, side: Side) -> dict[str, Any]:
        """Normalise an answer: every factor present, strings stripped, duplicates dropped
        (also an open-vocabulary value that repeats an earlier factor's value).

        Raises ``ValueError`` (a rejected answer) when ``fields`` is not an object or a
        closed-vocabulary value is unknown.
        """
        if not isinstance(fields, dict):
            raise ValueError(f"expected a JSON object, got {type(fields).__name__}")
        out: dict[str, Any] = {}
        said: set[str] = set()  # values of earlier factors: open factors may not repeat them
        for f in self.for_side(side):
            raw = fields.get(f.name)
            if isinstance(raw, str):
                values = [raw] if f.single else raw.split(",")
            else:
                values = list(raw or [])
            seen: list[str] = []
            for v in values:
                if not isinstance(v, str):
                    raise ValueError(f"{f.name}: expected strings, got {v!r}")
                v = " ".join(v.split()).strip(" .,;:")
                if not v:
                    continue
                if f.values is None:
                    v = v[: f.max_length]
                    if v.lower() in said:
                        continue
                elif v not in f.values:
                    raise ValueError(f"{f.name}: {v!r} is not an allowed value")
                if v == f.empty_value:
                    continue
                if v.lower() not in {s.lower() for s in seen}:
                    seen.append(v)
            seen = seen[: f.max_items]
            said.update(v.lower() for v in seen)
            out[f.name] = (seen[0] if seen else None) if f.single else seen
        return out

    def render(self, fields: dict[str, Any] | None, side: Side) -> str:
        """Compact knowledge text from cleaned fields: ``"Genres: drama, war. Mood: dark."``."""
        if not fields:
            return ""
        parts = []
        for f in self.for_side(side):
            value = fields.get(f.name)
            values = [value] if isinstance(value, str) else list(value or [])
            if values:
                parts.append(f"{f.label}: {', '.join(values)}.")
        return " ".join(parts)

    def fingerprint(self) -> str:
        """A short hash of the factor set (part of the prompt hash)."""
        blob = json.dumps(self.model_dump(exclude={"source"}), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise ConfigError(f"unknown side {side!r}; use 'item' or 'user'")


def builtin_domains() -> list[str]:
    """Names of the key-factor sets shipped with knowrec."""
    folder = resources.files("knowrec.knowledge") / "domains"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_domain(name_or_path: str | Path) -> Domain:
    """A built-in domain by name (``movies``, ``news``, ``generic``) or a TOML file by path."""
    text, source = _read_domain(str(name_or_path))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML ({exc})") from None
    raw.setdefault("name", Path(source).stem)
    try:
        return Domain(**raw, source=source)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{source}: invalid key-factor set at {where}: {first['msg']}") from None


@cache
def _builtin_text(name: str) -> str:
    return (resources.files("knowrec.knowledge") / "domains" / f"{name}.toml").read_text()


def _read_domain(name_or_path: str) -> tuple[str, str]:
    if name_or_path in builtin_domains():
        return _builtin_text(name_or_path), f"<builtin:{name_or_path}>"
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"key-factor set {path} does not exist")
        return path.read_text(), str(path)
    raise ConfigError(
        f"unknown domain {name_or_path!r}: built-in domains are {', '.join(builtin_domains())} "
        "(or pass the path of a TOML key-factor set)"
    )
