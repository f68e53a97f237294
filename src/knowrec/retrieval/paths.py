"""Recall paths: named candidate generators for item-to-item recommendation (docs/explore.md).

Every path is fitted on history and then answers triggers with scored candidates::

    path = make_recall_path("cf", rule="rating >= 4", factors=64)
    path.fit(interactions, items)
    path.recall(["i1", "i2"], k=30)       # {"i1": [Candidate("i7", 0.83, {"cf": 0.83}), …]}
    path.failures                          # {"i2": "unknown trigger"} from the last call

Registered kinds: ``coclick`` (session co-engagement counts), ``cf`` (implicit ALS item
factors, FAISS), ``two_tower`` (MiniLM text towers trained on co-click pairs, FAISS; see
:mod:`knowrec.retrieval.twotower`), ``semantic`` (text or any given item vectors, FAISS)
and ``qprime`` (LLM-written complementary queries run on a BM25 index of the corpus; see
:mod:`knowrec.retrieval.qprime`). Register your own with :func:`register_recall_path`; a
path only implements ``fit`` and ``_recall_known``.

Unknown triggers (and triggers a path cannot place, e.g. an item without text for a text
path) never raise by default: they get an empty list and a reason in ``path.failures``;
``recall(..., strict=True)`` raises :class:`~knowrec.errors.UnknownIdError` instead.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import polars as pl

from knowrec.encoders import Encoder
from knowrec.errors import ConfigError, DataFormatError, KnowrecError, UnknownIdError
from knowrec.registry import RECALL_PATHS
from knowrec.retrieval.ann import AnnIndex
from knowrec.retrieval.store import Candidate
from knowrec.similarity.coclick import coclick_counts, satisfied

log = logging.getLogger(__name__)

P = TypeVar("P", bound="type[RecallPath]")
_STATE_FILE = "recall_path.json"


def register_recall_path(kind: str, *, replace: bool = False) -> Callable[[P], P]:
    """Class decorator: make a :class:`RecallPath` subclass available by ``kind`` (and set
    its ``kind``); see :data:`knowrec.registry.RECALL_PATHS`."""
    return RECALL_PATHS.register(kind, replace=replace)


def available_recall_paths() -> list[str]:
    """Every registered (or built-in, not yet imported) recall path kind."""
    return RECALL_PATHS.names()


def recall_path_class(kind: str) -> type[RecallPath]:
    """The class registered as ``kind`` (RegistryError listing the known kinds)."""
    return RECALL_PATHS.get(kind)


def make_recall_path(kind: str, **params: Any) -> RecallPath:
    """A new, unfitted path of a registered ``kind``; unknown parameters are an error."""
    return RECALL_PATHS.build(kind, **params)


class RecallPath(ABC):
    """Base class: ``fit(interactions, items)`` then ``recall(triggers, k)``.

    Subclasses take explicit keyword parameters in ``__init__`` (listed by
    :meth:`get_params`), store them under the same names, and implement :meth:`fit`
    (which must set ``self.corpus``, the ids the path can answer for) and
    :meth:`_recall_known`.
    """

    kind: ClassVar[str] = ""

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or self.kind
        self.corpus: set[str] | None = None
        self.failures: dict[str, str] = {}

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters and their current values."""
        return {p: getattr(self, p) for p in self.param_names()}

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items() if _plain(v)}
        args = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ interface
    @abstractmethod
    def fit(
        self, interactions: pl.DataFrame | None = None, items: pl.DataFrame | None = None
    ) -> Self:
        """Learn from history (``interactions`` with ``session_id`` / ``user_id``) and the
        item table; returns ``self``."""

    @abstractmethod
    def _recall_known(self, triggers: list[str], k: int) -> dict[str, list[Candidate]]:
        """Candidates for triggers that are all in ``self.corpus``. A trigger that fails on
        its own (e.g. an unusable LLM answer) is left out or given ``[]``, with its reason
        added to ``self.failures``, so the other triggers and paths still serve."""

    def reason_unknown(self, trigger: str) -> str:
        """Why a trigger outside the corpus gets no candidates (for ``failures``)."""
        return "unknown trigger"

    def recall(
        self, triggers: Iterable[str], k: int = 30, *, strict: bool = False
    ) -> dict[str, list[Candidate]]:
        """Up to ``k`` candidates per trigger, best first, the trigger itself excluded.

        Triggers the path cannot answer get ``[]`` and an entry in ``self.failures``
        (or an :class:`UnknownIdError` when ``strict``).
        """
        if self.corpus is None:
            raise ConfigError(f"recall path {self.name!r} is not fitted: call fit() first")
        if not isinstance(k, int | np.integer) or k < 1:
            raise ConfigError(f"recall path {self.name!r}: k must be a positive integer, got {k!r}")
        wanted = list(dict.fromkeys(str(t) for t in triggers))
        known = [t for t in wanted if t in self.corpus]
        self.failures = {t: self.reason_unknown(t) for t in wanted if t not in self.corpus}
        if self.failures:
            if strict:
                sample = list(self.failures.items())[:5]
                raise UnknownIdError(
                    f"recall path {self.name!r}: {len(self.failures)} trigger(s) it cannot "
                    f"answer, e.g. {sample}"
                )
            log.info(
                "recall path %s: %d trigger(s) without candidates (%s)",
                self.name,
                len(self.failures),
                next(iter(self.failures.values())),
            )
        found = self._recall_known(known, int(k)) if known else {}
        return {t: found.get(t, []) for t in wanted}

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write the fitted state (enough to answer ``recall``) into ``directory``."""
        if self.corpus is None:
            raise ConfigError(f"recall path {self.name!r} is not fitted: nothing to save")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self._save_state(out)
        meta = {"kind": self.kind, "name": self.name, "params": self._plain_params()}
        tmp = out / (_STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        os.replace(tmp, out / _STATE_FILE)
        return out

    def _plain_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.get_params().items() if _plain(v)}

    def _save_state(self, directory: Path) -> None:
        raise NotImplementedError(f"recall path {self.kind!r} cannot be saved")

    def _load_state(self, directory: Path) -> None:
        raise NotImplementedError(f"recall path {self.kind!r} cannot be loaded")


def load_recall_path(directory: str | Path) -> RecallPath:
    """A fitted path written by :meth:`RecallPath.save` (recall only; ``fit`` again needs
    the original non-serialisable parameters such as an encoder)."""
    src = Path(directory)
    try:
        meta = json.loads((src / _STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"not a saved recall path: {exc}", path=src) from None
    cls = recall_path_class(str(meta.get("kind")))
    allowed = set(cls.param_names())
    path = cls(**{k: v for k, v in meta["params"].items() if k in allowed})
    path.name = meta["name"]
    path._load_state(src)
    return path


def _plain(value: Any) -> bool:
    """JSON-able configuration values (not encoders, vectors or indexes)."""
    if isinstance(value, list | tuple):
        return all(v is None or isinstance(v, str | int | float | bool) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


# ---------------------------------------------------------------------- helpers


def _require_columns(frame: pl.DataFrame | None, columns: Sequence[str], what: str) -> pl.DataFrame:
    if frame is None:
        raise ConfigError(f"{what} needs a table with the column(s) {', '.join(columns)}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what} needs the column(s) {', '.join(missing)}; have {frame.columns}")
    return frame


def item_texts(items: pl.DataFrame | None, column: str, what: str) -> tuple[list[str], list[str]]:
    """Ids and texts of the items with a non-empty ``column``."""
    items = _require_columns(items, ["item_id", column], what)
    rows = items.select(pl.col("item_id").cast(pl.String), pl.col(column).cast(pl.String))
    rows = rows.filter(pl.col(column).str.strip_chars().str.len_chars() > 0)
    rows = rows.unique("item_id", keep="first", maintain_order=True)
    return rows["item_id"].to_list(), rows[column].to_list()


def coerce_vectors(vectors: Any, what: str) -> tuple[list[str], np.ndarray]:
    """``(ids, array)``, a mapping id → vector, or an :class:`AnnIndex` → ids and rows."""
    if isinstance(vectors, AnnIndex):
        return list(vectors.ids), np.asarray(vectors.vectors, dtype=np.float32)
    if isinstance(vectors, Mapping):
        if not vectors:
            raise DataFormatError(f"{what}: the vector mapping is empty")
        ids = [str(i) for i in vectors]
        return ids, np.stack([np.asarray(v, dtype=np.float32) for v in vectors.values()])
    try:
        ids, array = vectors
    except (TypeError, ValueError):
        raise ConfigError(
            f"{what}: vectors must be (ids, array), a mapping id → vector or an AnnIndex"
        ) from None
    array = np.asarray(array, dtype=np.float32)
    ids = [str(i) for i in ids]
    if array.ndim != 2 or array.shape[0] != len(ids):
        raise DataFormatError(
            f"{what}: need one vector row per id, got {array.shape} for {len(ids)}"
        )
    return ids, array


def _nonzero_rows(ids: list[str], x: np.ndarray) -> tuple[list[str], np.ndarray]:
    keep = np.linalg.norm(x, axis=1) > 0
    return [i for i, k in zip(ids, keep, strict=True) if k], x[keep]


# ---------------------------------------------------------------------- co-click


@register_recall_path("coclick")
class CoClickPath(RecallPath):
    """Items engaged in the same sessions as the trigger, by co-click count.

    ``score="count"`` ranks by the raw count; ``"cosine"`` divides by
    ``sqrt(sessions(a) · sessions(b))`` (dampens very popular items). Pairs below
    ``min_count`` are ignored; each item keeps its ``max_neighbours`` best. ``spark``:
    Spark settings to count the pairs on Spark (``engine = "spark"``; same counts).
    """

    def __init__(
        self,
        *,
        rule: str | None = None,
        session_col: str = "session_id",
        max_session_items: int = 50,
        min_count: int = 1,
        score: str = "count",
        max_neighbours: int = 200,
        spark: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.spark = spark
        if score not in ("count", "cosine"):
            raise ConfigError(f"coclick score must be 'count' or 'cosine', got {score!r}")
        self.rule, self.session_col = rule, session_col
        self.max_session_items, self.min_count = max_session_items, min_count
        self.score, self.max_neighbours = score, max_neighbours
        self._table: dict[str, tuple[list[str], list[float]]] = {}

    def fit(
        self, interactions: pl.DataFrame | None = None, items: pl.DataFrame | None = None
    ) -> Self:
        inter = _require_columns(interactions, [self.session_col, "item_id"], "coclick path")
        opts = {
            "rule": self.rule,
            "session_col": self.session_col,
            "max_session_items": self.max_session_items,
            "min_count": self.min_count,
        }
        if self.spark is not None:
            from knowrec.spark import spark_session, to_polars, to_spark
            from knowrec.spark.coengagement import coclick_counts_spark

            frame = to_spark(spark_session(self.spark), inter)
            counts = to_polars(coclick_counts_spark(frame, **opts))  # type: ignore[arg-type]
        else:
            counts = coclick_counts(inter, **opts)  # type: ignore[arg-type]
        counts = counts.select("item_a", "item_b", pl.col("count").cast(pl.Float64).alias("s"))
        if self.score == "cosine":
            rows = satisfied(inter, self.rule).filter(pl.col(self.session_col).is_not_null())
            pop = rows.group_by("item_id").agg(n=pl.col(self.session_col).n_unique())
            counts = (
                counts.join(pop.rename({"item_id": "item_a", "n": "na"}), on="item_a")
                .join(pop.rename({"item_id": "item_b", "n": "nb"}), on="item_b")
                .with_columns(s=pl.col("s") / (pl.col("na") * pl.col("nb")).sqrt())
            )
        top = counts.sort(["item_a", "s", "item_b"], descending=[False, True, False]).filter(
            pl.int_range(pl.len()).over("item_a") < self.max_neighbours
        )
        grouped = top.group_by("item_a", maintain_order=True).agg("item_b", "s")
        self._table = {
            a: (b, s)
            for a, b, s in zip(grouped["item_a"], grouped["item_b"], grouped["s"], strict=True)
        }
        self.corpus = set(inter["item_id"].cast(pl.String).to_list())
        if items is not None and "item_id" in items.columns:
            self.corpus |= set(items["item_id"].cast(pl.String).to_list())
        return self

    def _recall_known(self, triggers: list[str], k: int) -> dict[str, list[Candidate]]:
        out: dict[str, list[Candidate]] = {}
        for t in triggers:
            ids, scores = self._table.get(t, ([], []))
            out[t] = [
                Candidate(i, float(s), {self.name: float(s)})
                for i, s in zip(ids[:k], scores[:k], strict=True)
            ]
        return out

    def neighbours_frame(self) -> pl.DataFrame:
        """The fitted table ``(trigger_id, item_id, score)``."""
        rows = [
            (t, i, s) for t, (ids, ss) in self._table.items() for i, s in zip(ids, ss, strict=True)
        ]
        return pl.DataFrame(
            rows,
            schema={"trigger_id": pl.String, "item_id": pl.String, "score": pl.Float64},
            orient="row",
        )

    def _save_state(self, directory: Path) -> None:
        self.neighbours_frame().write_parquet(directory / "neighbours.parquet")
        (directory / "corpus.json").write_text(json.dumps(sorted(self.corpus or ())))

    def _load_state(self, directory: Path) -> None:
        frame = pl.read_parquet(directory / "neighbours.parquet")
        grouped = frame.group_by("trigger_id", maintain_order=True).agg("item_id", "score")
        self._table = {
            t: (i, s)
            for t, i, s in zip(
                grouped["trigger_id"], grouped["item_id"], grouped["score"], strict=True
            )
        }
        self.corpus = set(json.loads((directory / "corpus.json").read_text()))


# ---------------------------------------------------------------------- vector paths


class VectorRecallPath(RecallPath):
    """A path that answers with an ANN search: one query vector per trigger against an
    index of candidate vectors (the same vectors for symmetric paths)."""

    ann_kind: str

    def _set_vectors(
        self, ids: list[str], item_vectors: np.ndarray, query_vectors: np.ndarray | None = None
    ) -> None:
        if not ids:
            raise DataFormatError(f"recall path {self.name!r}: no item has a vector to index")
        kind = self.ann_kind
        if kind == "ivfpq" and len(ids) < 256:
            kind = "flat"
        self.index = AnnIndex(ids, item_vectors, metric="cosine", kind=kind)
        self.queries = None if query_vectors is None else _normalise(query_vectors)
        self.corpus = set(ids)

    def query_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The (normalised) trigger-side vectors of known ids."""
        if self.queries is None:
            return self.index.vectors_of(ids)
        return self.queries[[self.index.row[i] for i in ids]]

    def _recall_known(self, triggers: list[str], k: int) -> dict[str, list[Candidate]]:
        ids, scores = self.index.search(self.query_vectors(triggers), k, exclude=triggers)
        return {
            t: [
                Candidate(i, float(s), {self.name: float(s)})
                for i, s in zip(row, srow, strict=False)
            ]
            for t, row, srow in zip(triggers, ids, scores, strict=True)
        }

    def _save_state(self, directory: Path) -> None:
        self.index.save(directory / "index")
        if self.queries is not None:
            np.save(directory / "queries.npy", self.queries)

    def _load_state(self, directory: Path) -> None:
        self.index = AnnIndex.load(directory / "index")
        q = directory / "queries.npy"
        self.queries = np.load(q) if q.exists() else None
        self.corpus = set(self.index.ids)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


@register_recall_path("semantic")
class SemanticPath(VectorRecallPath):
    """Nearest items by text embedding (MiniLM by default) or by any given item vectors
    (knowledge embeddings, TRAWL adapted item vectors): ``vectors=(ids, array)``, a
    mapping id → vector or an :class:`AnnIndex`. Items without text (or with a zero
    vector) are neither triggers nor candidates."""

    def __init__(
        self,
        *,
        encoder: Encoder | None = None,
        text_column: str = "text",
        vectors: Any = None,
        ann_kind: str = "flat",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.encoder, self.text_column, self.vectors = encoder, text_column, vectors
        self.ann_kind = ann_kind

    def fit(
        self, interactions: pl.DataFrame | None = None, items: pl.DataFrame | None = None
    ) -> Self:
        if self.vectors is not None:
            ids, x = coerce_vectors(self.vectors, f"recall path {self.name!r}")
        else:
            ids, texts = item_texts(items, self.text_column, f"recall path {self.name!r}")
            encoder = self.encoder or Encoder()
            x = encoder.encode(texts)
        ids, x = _nonzero_rows(ids, x)
        self._set_vectors(ids, x)
        return self

    def reason_unknown(self, trigger: str) -> str:
        return "no text or vector for this item"


def fit_als(
    matrix: Any,
    *,
    factors: int = 64,
    regularization: float = 0.05,
    alpha: float = 1.0,
    iterations: int = 15,
    seed: int = 0,
    num_threads: int = 1,
) -> Any:
    """implicit's ALS (on the CPU: the same factors on every machine) fitted on a users ×
    items CSR matrix of engagement counts; the fitted model (``user_factors``,
    ``item_factors``, ``recalculate_user``)."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's advice: no BLAS threads inside ALS
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
            num_threads=num_threads,
            use_gpu=False,
        )
        model.fit(matrix, show_progress=False)
    return model


@register_recall_path("cf")
class CFPath(VectorRecallPath):
    """Collaborative filtering: implicit ALS item factors of the user–item matrix of
    satisfied engagements (value = number of satisfied engagements), cosine neighbours
    in FAISS. Items with fewer than ``min_item_users`` users are left out (cold)."""

    def __init__(
        self,
        *,
        rule: str | None = None,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        min_item_users: int = 1,
        ann_kind: str = "flat",
        num_threads: int = 1,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if factors < 1 or iterations < 1:
            raise ConfigError("cf path: factors and iterations must be positive")
        self.rule, self.factors, self.regularization = rule, factors, regularization
        self.alpha, self.iterations, self.min_item_users = alpha, iterations, min_item_users
        self.ann_kind, self.num_threads, self.seed = ann_kind, num_threads, seed

    def fit(
        self, interactions: pl.DataFrame | None = None, items: pl.DataFrame | None = None
    ) -> Self:
        import scipy.sparse as sp

        inter = _require_columns(interactions, ["user_id", "item_id"], "cf path")
        rows = satisfied(inter, self.rule).select(
            pl.col("user_id").cast(pl.String), pl.col("item_id").cast(pl.String)
        )
        counts = rows.group_by("user_id", "item_id").len()
        users = counts.group_by("item_id").len().filter(pl.col("len") >= self.min_item_users)
        counts = counts.join(users.select("item_id"), on="item_id")
        if counts.is_empty():
            raise DataFormatError("cf path: no satisfied engagement to learn from")
        u_ids, u = np.unique(counts["user_id"].to_numpy(), return_inverse=True)
        i_ids, i = np.unique(counts["item_id"].to_numpy(), return_inverse=True)
        matrix = sp.csr_matrix(
            (counts["len"].to_numpy().astype(np.float32), (u, i)), shape=(len(u_ids), len(i_ids))
        )
        model = fit_als(
            matrix,
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            seed=self.seed,
            num_threads=self.num_threads,
        )
        factors = np.asarray(model.item_factors, dtype=np.float32)
        ids, factors = _nonzero_rows([str(x) for x in i_ids], factors)
        self._set_vectors(ids, factors)
        return self

    def reason_unknown(self, trigger: str) -> str:
        return "no satisfied engagement history (cold item)"


def fit_paths(
    paths: Sequence[RecallPath],
    interactions: pl.DataFrame | None,
    items: pl.DataFrame | None,
) -> list[RecallPath]:
    """Fit every path on the same history; names must be distinct."""
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise ConfigError(f"recall paths need distinct names, got {names}")
    for p in paths:
        log.info("fitting recall path %s", p.name)
        p.fit(interactions, items)
    return list(paths)


def recall_all(
    paths: Sequence[RecallPath],
    triggers: Sequence[str],
    k: int = 30,
    *,
    on_error: str = "raise",
) -> dict[str, dict[str, list[Candidate]]]:
    """``{path name: {trigger: candidates}}``. With ``on_error="skip"`` a path that fails
    with a knowrec error is logged and answers ``[]`` for every trigger, so the other
    paths still serve (the online fallback)."""
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    out: dict[str, dict[str, list[Candidate]]] = {}
    for p in paths:
        try:
            out[p.name] = p.recall(triggers, k)
        except KnowrecError as exc:
            if on_error == "raise":
                raise
            log.warning("recall path %s failed, skipped: %s", p.name, exc)
            out[p.name] = {str(t): [] for t in triggers}
    return out
