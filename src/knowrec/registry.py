"""One registry per kind of pluggable component, found by name from code and from configs.

    from knowrec.registry import BACKBONES

    @BACKBONES.register("meanpool")          # or BACKBONES.register("meanpool", MeanPool)
    class MeanPool(CTRModel): ...

    BACKBONES.names()                          # ['deepfm', 'dien', 'din', 'meanpool']
    BACKBONES.build("meanpool", feature_map, scale=2.0)

A name is found, in order, among the registered components, the built-in lazy entries
(``"module:attr"``, imported on first :meth:`Registry.get`) and the entry points of the
group ``knowrec.<kind>`` of installed packages. Names are case-insensitive. Registering a
different component under a taken name is an error unless ``replace=True``.
A config's ``plugins = ["my_pkg.my_module"]`` imports those modules first
(:func:`load_plugins`), so the components they register can be named in the config.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from knowrec.errors import ConfigError, RegistryError

if TYPE_CHECKING:  # pragma: no cover
    from knowrec.llm.base import LLM
    from knowrec.models.base import CTRModel
    from knowrec.retrieval.paths import RecallPath

T = TypeVar("T")
C = TypeVar("C")
_MISSING: Any = object()
_FIELDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Registry(MutableMapping[str, T], Generic[T]):
    """Names → components of one ``kind`` (``backbone``, ``recall_path``…).

    ``label``: how messages call the kind (default: ``kind`` with spaces); ``base``: a
    ``"module:Class"`` every component must subclass; ``name_attr``: a class attribute set
    to the registered name; ``lazy``: built-in names → ``"module:attr"``. As a mapping,
    ``registry[name] = obj`` registers with ``replace=True`` and ``del registry[name]``
    forgets a name.
    """

    def __init__(
        self,
        kind: str,
        *,
        label: str | None = None,
        base: str | None = None,
        name_attr: str | None = None,
        lazy: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.label = label or kind.replace("_", " ")
        self.group = f"knowrec.{kind}"
        self._base = base
        self._name_attr = name_attr
        self._entries: dict[str, T | str] = {}  # a str is a "module:attr" not imported yet
        for name, target in (lazy or {}).items():
            self.register(name, target)

    # ------------------------------------------------------------------ registering
    @overload
    def register(self, name: str, obj: None = None, *, replace: bool = ...) -> Callable[[C], C]: ...

    @overload
    def register(self, name: str, obj: C, *, replace: bool = ...) -> C: ...

    def register(self, name: str, obj: Any = None, *, replace: bool = False) -> Any:
        """Add ``obj`` (a component or a ``"module:attr"`` string) as ``name``; without
        ``obj``, a decorator. Re-registering the same component (or its re-definition by a
        reloaded module) is fine; another one under a taken name needs ``replace=True``."""
        if obj is None:

            def decorate(component: C) -> C:
                self._add(name, component, replace)
                return component

            return decorate
        self._add(name, obj, replace)
        return obj

    def _add(self, name: str, obj: Any, replace: bool) -> None:
        key = self._key(name)
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            if not module or not attr:
                raise RegistryError(f"{self.label} {key!r}: {obj!r} is not 'module:attr'")
        else:
            self._check_base(key, obj)
        old = self._entries.get(key)
        if old is not None and not replace:
            if _where(old) != _where(obj) and old is not obj:
                raise RegistryError(
                    f"{self.label} {key!r} is already registered as {_where(old)}; "
                    "pass replace=True to replace it"
                )
            if isinstance(obj, str) and not isinstance(old, str):
                return  # a lazy entry for what is already imported
        if not isinstance(obj, str) and self._name_attr:
            setattr(obj, self._name_attr, key)
        self._entries[key] = obj

    def _check_base(self, key: str, obj: Any) -> None:
        if self._base is None:
            return
        base = _import(self._base)
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise RegistryError(f"{self.label} {key!r}: {obj!r} is not a subclass of {self._base}")

    def _key(self, name: object) -> str:
        if not isinstance(name, str) or not name.strip():
            raise RegistryError(f"a {self.label} name must be a non-empty string, got {name!r}")
        return name.strip().lower()

    # ------------------------------------------------------------------ looking up
    def names(self) -> list[str]:
        """Every known name: registered, built-in (imported or not) and entry points."""
        return sorted(set(self._entries) | set(self._entry_points()))

    def get(self, name: str, default: Any = _MISSING) -> T:  # type: ignore[override]
        """The component called ``name``, imported on first use; an unknown name returns
        ``default`` when given, else raises :class:`RegistryError` listing the known ones."""
        key = name.strip().lower() if isinstance(name, str) else ""
        entry = self._entries.get(key)
        if entry is None and key:
            entry = self._entry_points().get(key)  # "module:attr", kept as a lazy entry
            if entry is not None:
                self._add(key, entry, replace=False)
        if entry is None:
            if default is not _MISSING:
                return default
            raise RegistryError(self._unknown(name))
        return self._resolve(key, entry) if isinstance(entry, str) else entry

    def _resolve(self, key: str, target: str) -> T:
        try:
            obj = _import(target)
        except Exception as exc:  # a missing extra, a broken plugin: one line, not a traceback
            raise RegistryError(
                f"{self.label} {key!r}: cannot import {target} ({type(exc).__name__}: {exc})"
            ) from None
        if self._entries.get(key) == target:  # the module did not register it itself
            self._add(key, obj, replace=True)
        return self._entries[key]  # type: ignore[return-value]

    def _entry_points(self) -> dict[str, str]:
        return {ep.name.lower(): ep.value for ep in entry_points(group=self.group)}

    def _unknown(self, name: object) -> str:
        known = ", ".join(self.names()) or "none"
        return f"unknown {self.label} {name!r}; known {self.label}s are {known}"

    # ------------------------------------------------------------------ building
    def parameters(self, name: str, positional: int = 0) -> list[str] | None:
        """The keyword parameters of ``name``'s constructor (or function) after the first
        ``positional`` ones; None when it takes ``**kwargs`` or has no signature."""
        params = _signature(self.get(name))
        if params is None or any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return [p.name for p in params[positional:] if p.kind in _FIELDS]

    def check(self, name: str, params: Mapping[str, Any] | None = None, positional: int = 0) -> T:
        """The component ``name`` once every key of ``params`` is one of its parameters
        (else a ConfigError naming the unknown keys and listing the accepted ones)."""
        obj = self.get(name)
        accepted = self.parameters(name, positional)
        unknown = [k for k in params or {} if accepted is not None and k not in accepted]
        if unknown:
            raise ConfigError(
                f"unknown {_plural('parameter', unknown)} for {self.label} {name!r}; "
                f"known parameters are {', '.join(accepted or ()) or 'none'}"
            )
        return obj

    def build(self, name: str, /, *args: Any, **params: Any) -> Any:
        """``component(*args, **params)`` once ``params`` match its signature: unknown and
        missing parameters are ConfigErrors (one line), not TypeErrors."""
        obj: Any = self.check(name, params, len(args))
        missing = [
            p.name
            for p in (_signature(obj) or [])[len(args) :]
            if p.kind in _FIELDS and p.default is p.empty and p.name not in params
        ]
        if missing:
            raise ConfigError(f"missing {_plural('parameter', missing)} for {self.label} {name!r}")
        return obj(*args, **params)

    # ------------------------------------------------------------------ mapping protocol
    def __getitem__(self, name: str) -> T:
        if name not in self:
            raise KeyError(name)
        return self.get(name)

    def __setitem__(self, name: str, obj: T) -> None:
        self._add(name, obj, replace=True)

    def __delitem__(self, name: str) -> None:
        del self._entries[self._key(name)]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.strip().lower()
        return key in self._entries or key in self._entry_points()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def _signature(obj: Any) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return None


def _plural(word: str, names: list[str]) -> str:
    return f"{word}{'s' * (len(names) > 1)} {', '.join(map(repr, names))}"


def _where(obj: Any) -> str:
    """``"module:qualname"`` of a component (a lazy entry is that string already)."""
    if isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_plugins(modules: Iterable[str], source: str = "plugins") -> None:
    """Import ``modules`` (each registers its components); a failure is one ConfigError
    line starting with ``source``."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ConfigError(
                f"{source}: cannot import plugin {module!r} ({type(exc).__name__}: {exc})"
            ) from None


# --------------------------------------------------------------------------- the kinds
# A built-in component is one line here: its name and "module:attr" (imported on use).

BACKBONES: Registry[type[CTRModel]] = Registry(
    "backbone",
    base="knowrec.models.base:CTRModel",
    lazy={
        "deepfm": "knowrec.models.deepfm:DeepFM",
        "dien": "knowrec.models.dien:DIEN",
        "din": "knowrec.models.din:DIN",
    },
)
RECALL_PATHS: Registry[type[RecallPath]] = Registry(
    "recall_path",
    base="knowrec.retrieval.paths:RecallPath",
    name_attr="kind",
    lazy={
        "cf": "knowrec.retrieval.paths:CFPath",
        "coclick": "knowrec.retrieval.paths:CoClickPath",
        "qprime": "knowrec.retrieval.qprime:QPrimePath",
        "semantic": "knowrec.retrieval.paths:SemanticPath",
        "two_tower": "knowrec.retrieval.twotower:TwoTowerPath",
    },
)
RANKERS: Registry[Callable[..., Any]] = Registry(
    "ranker",
    lazy={
        "cross_encoder": "knowrec.ranking.cross_encoder:CrossEncoderRanker",
        "lgbm": "knowrec.ranking.lgbm:LGBMRanker",
    },
)
LLM_BACKENDS: Registry[Callable[..., LLM]] = Registry(
    "llm_backend",
    label="LLM backend",
    lazy={
        "llamacpp": "knowrec.llm.llamacpp:LlamaCppLLM",
        "openai": "knowrec.llm.openai:OpenAILLM",
        "transformers": "knowrec.llm.hf:TransformersLLM",
    },
)
#: ``function(config_path, out_dir, console=..., overrides=...)`` by a config's ``pipeline``.
PIPELINES: Registry[Callable[..., Any]] = Registry(
    "pipeline",
    lazy={
        "explore": "knowrec.explore.pipeline:run_explore",
        "hknr": "knowrec.hknr.pipeline:run_hknr",
        "trawl": "knowrec.trawl.pipeline:run_trawl",
    },
)
