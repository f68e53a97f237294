"""The candidate store: trigger id → its precomputed candidates, one lookup online.

Each candidate keeps its provenance: the recall paths that produced it and their scores.
Backends: ``sqlite`` (default, one file), ``lmdb`` (a memory-mapped folder, fastest reads)
and ``redis`` (a server, for serving from several machines)::

    with CandidateStore.open("runs/x/candidates.sqlite") as store:
        store.put_many({"i1": [Candidate("i9", 0.8, {"coclick": 12.0, "qprime": 0.7})]})
        store.get("i1")

Values are compact JSON; a corrupt value or file is a DataFormatError naming the trigger.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowrec.errors import ConfigError, DataFormatError, UnavailableError

BACKENDS = ("sqlite", "lmdb", "redis")
REDIS_TIMEOUT = 0.5  # seconds for Redis to connect or answer before a lookup fails


@dataclass(frozen=True)
class Candidate:
    """One recommended item for a trigger, with the score of each path that produced it."""

    item_id: str
    score: float
    paths: dict[str, float] = field(default_factory=dict)


def _encode(candidates: Iterable[Candidate]) -> bytes:
    rows = [[c.item_id, c.score, c.paths] for c in candidates]
    return json.dumps(rows, separators=(",", ":")).encode()


def _decode(trigger: str, blob: bytes) -> list[Candidate]:
    try:
        return [Candidate(str(i), float(s), dict(p)) for i, s, p in json.loads(blob)]
    except (ValueError, TypeError) as exc:
        msg = f"candidate store: corrupt value for trigger {trigger!r}: {exc}"
        raise DataFormatError(msg) from None


class CandidateStore:
    """Common interface; use :meth:`open` to get one of the backends."""

    backend = ""

    @staticmethod
    def open(path: str | Path, backend: str = "sqlite", **options: Any) -> CandidateStore:
        """Open (creating if needed) a store. ``redis`` takes ``url=`` instead of a path
        (the path is the key prefix there)."""
        if backend == "sqlite":
            return SqliteStore(Path(path))
        if backend == "lmdb":
            return LmdbStore(Path(path), **options)
        if backend == "redis":
            return RedisStore(str(path), **options)
        raise ConfigError(f"unknown candidate store {backend!r}: known are {', '.join(BACKENDS)}")

    def put_many(self, items: Mapping[str, Iterable[Candidate]]) -> None:
        raise NotImplementedError

    def _get_blob(self, trigger: str) -> bytes | None:
        raise NotImplementedError

    def get(self, trigger: str) -> list[Candidate] | None:
        """The stored candidates, or None when the trigger has no entry."""
        blob = self._get_blob(trigger)
        return None if blob is None else _decode(trigger, blob)

    def __len__(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file or connection."""

    def __enter__(self) -> CandidateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteStore(CandidateStore):
    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, check_same_thread=False)
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS c (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID"
            )
        except sqlite3.DatabaseError as exc:
            raise DataFormatError(f"not a candidate store: {exc}", path=path) from None
        self.path = path

    def put_many(self, items: Mapping[str, Iterable[Candidate]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO c VALUES (?, ?)",
                ((k, _encode(v)) for k, v in items.items()),
            )

    def _get_blob(self, trigger: str) -> bytes | None:
        try:
            row = self.db.execute("SELECT v FROM c WHERE k = ?", (trigger,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataFormatError(f"candidate store unreadable: {exc}", path=self.path) from None
        return None if row is None else row[0]

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM c").fetchone()[0]

    def close(self) -> None:
        self.db.close()


class LmdbStore(CandidateStore):
    backend = "lmdb"

    def __init__(self, path: Path, map_size: int = 1 << 32, readonly: bool = False) -> None:
        import lmdb

        try:
            self.env = lmdb.open(str(path), map_size=map_size, readonly=readonly, lock=not readonly)
        except lmdb.Error as exc:
            raise DataFormatError(f"not a candidate store: {exc}", path=path) from None

    def put_many(self, items: Mapping[str, Iterable[Candidate]]) -> None:
        with self.env.begin(write=True) as txn:
            for k, v in items.items():
                txn.put(k.encode(), _encode(v))

    def _get_blob(self, trigger: str) -> bytes | None:
        with self.env.begin() as txn:
            return txn.get(trigger.encode())

    def __len__(self) -> int:
        return self.env.stat()["entries"]

    def close(self) -> None:
        self.env.close()


class RedisStore(CandidateStore):
    """Keys ``<prefix>:<trigger>``. A Redis that is down or stalled fails a lookup within
    ``timeout`` seconds (connecting or answering; the URL's ``?socket_timeout=`` wins),
    without retries, as an :class:`UnavailableError`: a caller answers at once rather
    than hang."""

    backend = "redis"

    def __init__(
        self, prefix: str, url: str = "redis://localhost:6379/0", timeout: float = REDIS_TIMEOUT
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        where = self.client.connection_pool.connection_kwargs
        self.where = f"{where.get('host')}:{where.get('port')}"  # never the URL's password
        self.prefix = prefix.rstrip(":") + ":"
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise ConfigError(
                f"candidate store: cannot reach Redis at {self.where}: {exc}"
            ) from None

    def put_many(self, items: Mapping[str, Iterable[Candidate]]) -> None:
        pipe = self.client.pipeline()
        for k, v in items.items():
            pipe.set(self.prefix + k, _encode(v))
        pipe.execute()

    def _get_blob(self, trigger: str) -> bytes | None:
        import redis

        try:
            return self.client.get(self.prefix + trigger)
        except redis.RedisError as exc:
            msg = f"candidate store: Redis at {self.where} does not answer ({exc})"
            raise UnavailableError(msg) from None

    def __len__(self) -> int:
        return sum(1 for _ in self.client.scan_iter(match=self.prefix + "*", count=1000))

    def close(self) -> None:
        self.client.close()
