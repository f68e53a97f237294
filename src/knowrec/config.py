"""TOML configs validated by pydantic: unknown keys and wrong types are errors that name
the file and the key (``configs/x.toml: train.lr: Input should be a valid number``)."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, validate_call

from knowrec.errors import ConfigError, KnowrecError, RegistryError
from knowrec.registry import PIPELINES, load_plugins

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., None])


class Section(BaseModel):
    """Base of every config section: unknown keys are rejected, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file, or a ConfigError naming the file and the syntax error."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def validate(model: type[M], data: dict[str, Any], source: str | Path = "config") -> M:
    """``model(**data)`` with every validation problem on one line per field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_problems(exc)}") from None
    except KnowrecError as exc:  # raised by a section's own checks (e.g. a registry lookup)
        raise ConfigError(f"{source}: {exc}") from None


def checked_init(what: str) -> Callable[[F], F]:
    """Decorate an ``__init__`` so its arguments are checked against its annotations
    (``Annotated[int, Field(ge=1)]``, ``Literal[...]``): the constraints live in the
    signature, and a bad value or an unknown keyword is one ConfigError line
    (``cross-encoder: max_tokens: Input should be greater than or equal to 8``)."""

    def decorate(init: F) -> F:
        checked = validate_call(init)

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                checked(self, *args, **kwargs)
            except ValidationError as exc:
                if exc.title != init.__qualname__:  # raised in the body, not by the check
                    raise
                raise ConfigError(f"{what}: {_problems(exc)}") from None

        return __init__  # type: ignore[return-value]

    return decorate


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
    )


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``data`` with ``key.path=value`` settings applied (``judge.eval_triggers=12``,
    ``recall.paths.4.max_triggers=24``, ``cross_encoder.params.mode="direct"``): the value
    is read as a TOML value (number, bool, string, array, inline table), else as a bare
    string; list items are addressed by index."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(
                        f"--set {item!r}: {part!r} is not an index of a {len(node)}-item list"
                    )
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict | list):
                    raise ConfigError(
                        f"--set {item!r}: {'.'.join(parts[: i + 1])} is a value, not a section"
                    )
    return data


def import_plugins(plugins: object, source: str | Path = "config") -> None:
    """Import the modules of a config's top-level ``plugins`` list, so that the components
    they register can be named in the rest of the config."""
    if not isinstance(plugins, list | tuple) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"{source}: plugins: expected a list of module names, got {plugins!r}")
    load_plugins(plugins, source=f"{source}: plugins")


def load_config(path: str | Path | M, model: type[M], overrides: Sequence[str] = ()) -> M:
    """Read and validate a TOML config file (or take a config object), with ``--set``
    style ``overrides``; its ``plugins`` are imported before it is validated."""
    source: str | Path
    if isinstance(path, model):
        if not overrides:
            import_plugins(getattr(path, "plugins", []))
            return path
        data, source = apply_overrides(path.model_dump(mode="json"), overrides), "config"
    else:
        data, source = apply_overrides(read_toml(path), overrides), path
    import_plugins(data.get("plugins", []), source)
    return validate(model, data, source=source)


def pipeline_runner(path: str | Path) -> Callable[..., Any]:
    """The function that runs the config file at ``path``, chosen by its ``pipeline`` key
    from :data:`~knowrec.registry.PIPELINES` (after importing the config's ``plugins``)."""
    data = read_toml(path)
    import_plugins(data.get("plugins", []), path)
    name = data.get("pipeline")
    if name is None:
        known = ", ".join(PIPELINES.names())
        raise ConfigError(f"{path}: no pipeline key; known pipelines are {known}")
    try:
        return PIPELINES.get(name)
    except RegistryError as exc:
        raise RegistryError(f"{path}: {exc}") from None
