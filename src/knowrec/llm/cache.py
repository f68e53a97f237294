"""Persistent SQLite cache of LLM answers: a re-run is free, a killed job resumes.

One row per request key (a SHA-256 of backend, model, system prompt, prompt, schema and
parameters; see :func:`request_key`). Each finished item is committed on its own (WAL
journal), so a kill loses at most the item in flight. Failed items are stored too, with
their error, so a batch can report them and skip them on a re-run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

KEY_VERSION = 1

_COLUMNS = (
    "key",
    "backend",
    "model",
    "kind",
    "status",
    "text",
    "value",
    "error",
    "attempts",
    "prompt_tokens",
    "prompt_eval_tokens",
    "completion_tokens",
    "prompt_ms",
    "gen_ms",
    "total_ms",
    "truncated",
    "created",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_results (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    text TEXT,
    value TEXT,
    error TEXT,
    attempts INTEGER,
    prompt_tokens INTEGER,
    prompt_eval_tokens INTEGER,
    completion_tokens INTEGER,
    prompt_ms REAL,
    gen_ms REAL,
    total_ms REAL,
    truncated INTEGER,
    created REAL
)
"""


def request_key(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (backend, model, prompt, parameters)."""
    blob = json.dumps({"v": KEY_VERSION, **payload}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResultCache:
    """SQLite store of answers keyed by :func:`request_key`; safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored row for ``key`` as a dict, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Rows for the keys that are stored, by key (looked up in chunks of 500)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        cols = ", ".join(_COLUMNS)
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                    f"SELECT {cols} FROM llm_results WHERE key IN ({marks})", chunk
                ):
                    found[row[0]] = dict(zip(_COLUMNS, row, strict=True))
        return found

    def put(self, key: str, row: Mapping[str, Any]) -> None:
        """Insert or replace one row and commit it at once."""
        record = {c: row.get(c) for c in _COLUMNS}
        record["key"] = key
        record["created"] = record["created"] or time.time()
        if record["truncated"] is not None:
            record["truncated"] = int(bool(record["truncated"]))
        cols = ", ".join(_COLUMNS)
        marks = ", ".join("?" * len(_COLUMNS))
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO llm_results ({cols}) VALUES ({marks})",
                [record[c] for c in _COLUMNS],
            )
            self._db.commit()

    def delete(self, key: str) -> None:
        """Forget one answer."""
        with self._lock:
            self._db.execute("DELETE FROM llm_results WHERE key = ?", (key,))
            self._db.commit()

    def counts(self) -> dict[str, int]:
        """Number of stored rows by status."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM llm_results GROUP BY status")
            return {status: n for status, n in rows}

    def rows(self) -> list[dict[str, Any]]:
        """All rows (for reports and benchmarks)."""
        cols = ", ".join(_COLUMNS)
        with self._lock:
            cur = self._db.execute(f"SELECT {cols} FROM llm_results ORDER BY created")
            return [dict(zip(_COLUMNS, r, strict=True)) for r in cur]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM llm_results").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
