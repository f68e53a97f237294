"""Feature specification and encoder: a polars samples frame → pre-built tensors, once.

A :class:`FeatureSpec` (TOML-validatable) names the columns of a CTR samples frame (as made
by :func:`knowrec.data.protocol.ctr_samples`) and what they are:

- the user and item id columns (always) — *entities*: their embedding is shared by every
  place the model uses a user or an item (target item, each history item, the user), and
  they can carry a frozen knowledge vector (TRAWL);
- ``categorical`` fields (profile fields such as gender, age, occupation; item fields);
- ``multi_valued`` fields (a list of tokens, e.g. genres: padded, masked, mean-pooled);
- ``dense`` fields (a float, or a fixed-size list of floats; standardised with the
  training mean/std);
- a behaviour ``sequence``: the history item ids and, optionally, each history item's
  rating (a rating embedding is added to each history item's embedding).

:meth:`FeatureMap.fit` builds the vocabularies from the training frame. Index 0 is padding
and index 1 is OOV in every vocabulary, so ids never seen in training (or missing values)
map to OOV instead of failing. Entity vocabularies also cover the ids of the knowledge
tables: an id without a trained embedding (e.g. a test user under a user split) still gets
its own knowledge vector. :meth:`FeatureMap.encode` returns :class:`Samples`, a dict of
tensors; a batch is index slicing (no DataLoader).

Profile/item columns absent from the samples frame are joined from ``users``/``items``
tables when given.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import torch

from knowrec.config import Section
from knowrec.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

PAD = 0
OOV = 1
FEATURE_MAP_FORMAT = 1
Side = Literal["user", "item"]


# ------------------------------------------------------------------------ specification


class CategoricalField(Section):
    """One token per sample (values are cast to strings; null → OOV)."""

    name: str
    min_count: int = 1


class MultiValuedField(Section):
    """A list of tokens per sample, cut to the first ``max_len``."""

    name: str
    max_len: int = 8
    min_count: int = 1


class DenseField(Section):
    """A float column (``dim`` 1) or a column of fixed-size float lists (``dim`` > 1)."""

    name: str
    dim: int = 1
    standardize: bool = True


class SequenceField(Section):
    """Behaviour sequence: history item ids (oldest first) and optional ratings."""

    items: str = "hist_item_ids"
    ratings: str | None = "hist_ratings"
    max_len: int = 10


class FeatureSpec(Section):
    """What the columns of a samples frame are. Defaults fit :func:`ctr_samples` output."""

    user: str = "user_id"
    item: str = "item_id"
    label: str = "label"
    min_count: int = 1
    categorical: tuple[CategoricalField, ...] = ()
    multi_valued: tuple[MultiValuedField, ...] = ()
    dense: tuple[DenseField, ...] = ()
    sequence: SequenceField | None = SequenceField()

    def columns(self) -> list[str]:
        out = [self.user, self.item]
        out += [f.name for f in self.categorical] + [f.name for f in self.multi_valued]
        out += [f.name for f in self.dense]
        if self.sequence is not None:
            out.append(self.sequence.items)
            if self.sequence.ratings:
                out.append(self.sequence.ratings)
        return out


def movielens_spec(*, ratings: bool = True, max_len: int = 10) -> FeatureSpec:
    """The ML-1M TRAWL features: user/item ids, profile (gender, age, occupation), genres,
    and the last ``max_len`` history items with their ratings."""
    return FeatureSpec(
        categorical=tuple(CategoricalField(name=c) for c in ("gender", "age", "occupation")),
        multi_valued=(MultiValuedField(name="genres", max_len=6),),
        sequence=SequenceField(ratings="hist_ratings" if ratings else None, max_len=max_len),
    )


# --------------------------------------------------------------------------- knowledge


@dataclass
class KnowledgeTable:
    """Frozen vectors of one side: ``vectors[k]`` belongs to ``ids[k]``; shape (n, d)."""

    ids: list[str]
    vectors: np.ndarray

    def __post_init__(self) -> None:
        self.ids = [str(x) for x in self.ids]
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.ids):
            raise ConfigError(
                f"knowledge: {len(self.ids)} ids but vectors of shape {self.vectors.shape}"
            )
        if len(set(self.ids)) != len(self.ids):
            raise ConfigError("knowledge: ids must be unique")

    @classmethod
    def from_mapping(cls, vectors: Mapping[str, np.ndarray]) -> KnowledgeTable:
        ids = list(vectors)
        if not ids:
            raise ConfigError("knowledge: the mapping is empty")
        return cls(ids, np.stack([np.asarray(vectors[i], dtype=np.float32) for i in ids]))

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


# ---------------------------------------------------------------------------- vocabulary


class Vocab:
    """Tokens at indices 2..n+1 (0 = padding, 1 = OOV)."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self.tokens = list(dict.fromkeys(tokens))
        self._index = {t: k + 2 for k, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        """Number of rows an embedding table needs (tokens + padding + OOV)."""
        return len(self.tokens) + 2

    def __getitem__(self, token: str) -> int:
        return self._index.get(token, OOV)

    def lookup(self, values: pl.Series) -> np.ndarray:
        """Indices of a string series (unknown or null → OOV), int64."""
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        if not self.tokens:
            return np.full(len(values), OOV, dtype=np.int64)
        out = values.cast(pl.String).replace_strict(
            self.tokens, list(range(2, len(self))), default=OOV, return_dtype=pl.Int64
        )
        return out.fill_null(OOV).to_numpy()


def _counted_vocab(values: pl.Series, min_count: int) -> list[str]:
    """Distinct non-null tokens seen at least ``min_count`` times, sorted."""
    counts = values.cast(pl.String).alias("v").drop_nulls().value_counts(name="n")
    return sorted(counts.filter(pl.col("n") >= min_count)["v"].to_list())


def _flat(lists: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """Flattened values and per-row lengths of a list column (null rows → length 0)."""
    lengths = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    values = lists.explode(empty_as_null=False, keep_nulls=False)
    return values, lengths


def _pad(flat: np.ndarray, lengths: np.ndarray, width: int, *, keep: str, fill=PAD) -> np.ndarray:
    """Right-padded (n, width) matrix; rows longer than ``width`` keep their first or last
    ``width`` values (``keep`` = "first" | "last")."""
    n = len(lengths)
    out = np.full((n, width), fill, dtype=flat.dtype if flat.size else np.int64)
    if not flat.size:
        return out
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    row = np.repeat(np.arange(n), lengths)
    col = np.arange(flat.size) - np.repeat(starts, lengths)
    if keep == "last":
        col = col - np.repeat(np.maximum(lengths - width, 0), lengths)
        ok = col >= 0
    else:
        ok = col < width
    out[row[ok], col[ok]] = flat[ok]
    return out


# --------------------------------------------------------------------------- entities


@dataclass
class EntityIndex:
    """The ids of one side (users or items).

    Entity ``e`` (≥ 2) has an ID-embedding row ``id_row[e]`` (= ``e`` for ids seen in
    training, OOV otherwise) and a knowledge vector ``knowledge[e]`` (zeros when missing).
    Entities ``2 .. n_trained+1`` are the trained ids.
    """

    vocab: Vocab
    n_trained: int
    knowledge: np.ndarray | None = None  # (len(vocab), d) float32

    @property
    def n_rows(self) -> int:
        """Rows of the ID embedding table: trained ids + padding + OOV."""
        return self.n_trained + 2

    @property
    def id_row(self) -> np.ndarray:
        rows = np.arange(len(self.vocab), dtype=np.int64)
        rows[rows >= self.n_rows] = OOV
        return rows

    @property
    def knowledge_dim(self) -> int:
        return 0 if self.knowledge is None else int(self.knowledge.shape[1])


def _entity_index(
    seen: pl.Series, min_count: int, table: KnowledgeTable | None, extra: Iterable[str] = ()
) -> EntityIndex:
    trained = _counted_vocab(seen, min_count)
    known = set(trained)
    others = sorted({*(table.ids if table else ()), *extra} - known)
    vocab = Vocab([*trained, *others])
    knowledge = None
    if table is not None:
        knowledge = np.zeros((len(vocab), table.dim), dtype=np.float32)
        rows = vocab.lookup(pl.Series(table.ids))
        knowledge[rows] = table.vectors
    return EntityIndex(vocab=vocab, n_trained=len(trained), knowledge=knowledge)


# ----------------------------------------------------------------------------- samples


@dataclass
class Samples:
    """Encoded samples: a dict of tensors with ``n`` rows each.

    Keys: ``user``, ``item`` (n,) entity indices; ``label`` (n,) float32 when labelled;
    ``cat:<name>`` (n,); ``multi:<name>`` (n, M) padded with 0; ``dense:<name>`` (n, k);
    ``hist`` (n, L) item entity indices, right-padded with 0, oldest first;
    ``hist_rating`` (n, L) rating indices; ``hist_len`` (n,).
    """

    tensors: dict[str, torch.Tensor]
    n: int = field(init=False)

    def __post_init__(self) -> None:
        sizes = {k: v.shape[0] for k, v in self.tensors.items()}
        if len(set(sizes.values())) > 1:
            raise ConfigError(f"Samples: tensors of different lengths {sizes}")
        self.n = next(iter(sizes.values()), 0)

    def __len__(self) -> int:
        return self.n

    def batch(self, index: np.ndarray | slice | torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``index`` of every tensor (a fancy index or a slice)."""
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        return {k: v[index] for k, v in self.tensors.items()}

    @property
    def labels(self) -> np.ndarray:
        if "label" not in self.tensors:
            raise ConfigError("these samples have no label column")
        return self.tensors["label"].numpy()


# ------------------------------------------------------------------------- feature map


@dataclass
class FeatureMap:
    """Fitted vocabularies and statistics: turns frames into :class:`Samples`."""

    spec: FeatureSpec
    users: EntityIndex
    items: EntityIndex
    categorical: dict[str, Vocab]
    multi_valued: dict[str, Vocab]
    dense_stats: dict[str, tuple[np.ndarray, np.ndarray]]
    ratings: Vocab | None

    # ---- fitting -----------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        spec: FeatureSpec,
        train: pl.DataFrame,
        *,
        knowledge: Mapping[str, KnowledgeTable] | None = None,
        users: pl.DataFrame | None = None,
        items: pl.DataFrame | None = None,
    ) -> FeatureMap:
        """Vocabularies from ``train``; ``knowledge`` maps "user"/"item" to frozen vectors."""
        knowledge = dict(knowledge or {})
        unknown = set(knowledge) - {"user", "item"}
        if unknown:
            raise ConfigError(f"knowledge sides must be 'user' or 'item', got {sorted(unknown)}")
        frame = _attach(spec, train, users, items)
        seq = spec.sequence
        item_seen = frame[spec.item].cast(pl.String)
        if seq is not None:
            hist_ids, _ = _flat(frame[seq.items])
            item_seen = pl.concat([item_seen, hist_ids.cast(pl.String)]).alias(spec.item)
        user_index = _entity_index(
            frame[spec.user].cast(pl.String).alias(spec.user), spec.min_count, knowledge.get("user")
        )
        item_index = _entity_index(item_seen, spec.min_count, knowledge.get("item"))
        categorical = {
            f.name: Vocab(_counted_vocab(frame[f.name].alias(f.name), f.min_count))
            for f in spec.categorical
        }
        multi = {}
        for f in spec.multi_valued:
            values, _ = _flat(frame[f.name])
            multi[f.name] = Vocab(_counted_vocab(values.alias(f.name), f.min_count))
        dense_stats = {}
        for f in spec.dense:
            x = _dense(frame, f)
            mean, std = x.mean(axis=0), x.std(axis=0)
            if not f.standardize:
                mean, std = np.zeros_like(mean), np.ones_like(std)
            dense_stats[f.name] = (mean, np.where(std > 0, std, 1.0).astype(np.float32))
        ratings = None
        if seq is not None and seq.ratings:
            values, _ = _flat(frame[seq.ratings])
            finite = values.cast(pl.Float64).drop_nans().drop_nulls().unique().sort()
            ratings = Vocab([_rating_token(v) for v in finite.to_list()])
        fmap = cls(spec, user_index, item_index, categorical, multi, dense_stats, ratings)
        logger.info(
            "feature map: %d users (%d trained), %d items (%d trained), knowledge dims u=%d i=%d",
            len(user_index.vocab) - 2,
            user_index.n_trained,
            len(item_index.vocab) - 2,
            item_index.n_trained,
            user_index.knowledge_dim,
            item_index.knowledge_dim,
        )
        return fmap

    # ---- encoding ----------------------------------------------------------------------
    def encode(
        self,
        frame: pl.DataFrame,
        *,
        users: pl.DataFrame | None = None,
        items: pl.DataFrame | None = None,
    ) -> Samples:
        """Tensors for every row of ``frame`` (unknown ids → OOV; label kept if present)."""
        spec = self.spec
        frame = _attach(spec, frame, users, items)
        t: dict[str, torch.Tensor] = {
            "user": _tensor(self.users.vocab.lookup(frame[spec.user])),
            "item": _tensor(self.items.vocab.lookup(frame[spec.item])),
        }
        if spec.label in frame.columns:
            labels = frame[spec.label].cast(pl.Float32)
            if labels.null_count():
                raise DataFormatError(
                    f"{labels.null_count()} samples have no label", column=spec.label
                )
            t["label"] = torch.from_numpy(labels.to_numpy().copy())
        for f in spec.categorical:
            t[f"cat:{f.name}"] = _tensor(self.categorical[f.name].lookup(frame[f.name]))
        for f in spec.multi_valued:
            values, lengths = _flat(frame[f.name])
            idx = self.multi_valued[f.name].lookup(values)
            t[f"multi:{f.name}"] = _tensor(_pad(idx, lengths, f.max_len, keep="first"))
        for f in spec.dense:
            mean, std = self.dense_stats[f.name]
            t[f"dense:{f.name}"] = torch.from_numpy(((_dense(frame, f) - mean) / std).astype("f4"))
        seq = spec.sequence
        if seq is not None:
            values, lengths = _flat(frame[seq.items])
            idx = self.items.vocab.lookup(values)
            t["hist"] = _tensor(_pad(idx, lengths, seq.max_len, keep="last"))
            t["hist_len"] = _tensor(np.minimum(lengths, seq.max_len))
            if seq.ratings and self.ratings is not None:
                r_values, r_lengths = _flat(frame[seq.ratings])
                if not np.array_equal(r_lengths, lengths):
                    raise DataFormatError(
                        "history ratings and history items differ in length",
                        column=seq.ratings,
                    )
                r_idx = self.ratings.lookup(_rating_tokens(r_values))
                t["hist_rating"] = _tensor(_pad(r_idx, lengths, seq.max_len, keep="last"))
        return Samples(t)

    # ---- helpers for models and losses -------------------------------------------------
    def entity(self, side: Side) -> EntityIndex:
        if side not in ("user", "item"):
            raise ConfigError(f"side must be 'user' or 'item', got {side!r}")
        return self.users if side == "user" else self.items

    def partner_index(
        self, side: Side, partners: Mapping[str, str | None] | pl.DataFrame
    ) -> np.ndarray:
        """``out[e]`` = entity index of the partner of entity ``e`` (e.g. its highest-SWING
        positive), or -1 when it has none or either id is unknown; shape (n_entities,).

        ``partners``: id → partner id (None = no partner), or a frame with columns ``id``
        and ``positive_id`` (:meth:`knowrec.similarity.SwingResult.positives_frame`).
        """
        index = self.entity(side)
        out = np.full(len(index.vocab), -1, dtype=np.int64)
        if isinstance(partners, pl.DataFrame):
            if not {"id", "positive_id"} <= set(partners.columns):
                raise ConfigError("partners frame needs the columns id and positive_id")
            pairs = partners.select(pl.col("id", "positive_id").cast(pl.String))
        else:
            pairs = pl.DataFrame(
                {"id": [str(k) for k in partners], "positive_id": list(partners.values())},
                schema={"id": pl.String, "positive_id": pl.String},
            )
        pairs = pairs.drop_nulls()
        if not pairs.height:
            return out
        src = index.vocab.lookup(pairs["id"])
        dst = index.vocab.lookup(pairs["positive_id"])
        ok = (src >= 2) & (dst >= 2)
        out[src[ok]] = dst[ok]
        return out

    # ---- persistence -------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``feature_map.json`` (spec, vocabularies, statistics) and, when there are
        knowledge vectors, ``knowledge.npz`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": FEATURE_MAP_FORMAT,
            "spec": self.spec.model_dump(mode="json"),
            "users": {"tokens": self.users.vocab.tokens, "n_trained": self.users.n_trained},
            "items": {"tokens": self.items.vocab.tokens, "n_trained": self.items.n_trained},
            "categorical": {k: v.tokens for k, v in self.categorical.items()},
            "multi_valued": {k: v.tokens for k, v in self.multi_valued.items()},
            "dense_stats": {k: [m.tolist(), s.tolist()] for k, (m, s) in self.dense_stats.items()},
            "ratings": None if self.ratings is None else self.ratings.tokens,
        }
        (out / "feature_map.json").write_text(json.dumps(doc), encoding="utf-8")
        arrays = {
            side: index.knowledge
            for side, index in (("user", self.users), ("item", self.items))
            if index.knowledge is not None
        }
        if arrays:
            np.savez(out / "knowledge.npz", **arrays)  # type: ignore[arg-type]
        return out

    @classmethod
    def load(cls, directory: str | Path) -> FeatureMap:
        """A feature map written by :meth:`save`."""
        root = Path(directory)
        path = root / "feature_map.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no feature map") from None
        if doc.get("format") != FEATURE_MAP_FORMAT:
            raise ConfigError(f"{path}: feature map format {doc.get('format')} is not supported")
        knowledge: dict[str, np.ndarray] = {}
        if (root / "knowledge.npz").exists():
            with np.load(root / "knowledge.npz") as z:
                knowledge = {k: z[k] for k in z.files}

        def entity(side: str) -> EntityIndex:
            d = doc["users" if side == "user" else "items"]
            return EntityIndex(Vocab(d["tokens"]), d["n_trained"], knowledge.get(side))

        return cls(
            spec=FeatureSpec.model_validate(doc["spec"]),
            users=entity("user"),
            items=entity("item"),
            categorical={k: Vocab(v) for k, v in doc["categorical"].items()},
            multi_valued={k: Vocab(v) for k, v in doc["multi_valued"].items()},
            dense_stats={
                k: (np.asarray(m, dtype=np.float32), np.asarray(s, dtype=np.float32))
                for k, (m, s) in doc["dense_stats"].items()
            },
            ratings=None if doc["ratings"] is None else Vocab(doc["ratings"]),
        )

    def describe(self) -> dict[str, object]:
        """Sizes, for logs and run manifests."""
        return {
            "users": len(self.users.vocab) - 2,
            "users_trained": self.users.n_trained,
            "items": len(self.items.vocab) - 2,
            "items_trained": self.items.n_trained,
            "knowledge_dim": {"user": self.users.knowledge_dim, "item": self.items.knowledge_dim},
            "categorical": {k: len(v) for k, v in self.categorical.items()},
            "multi_valued": {k: len(v) for k, v in self.multi_valued.items()},
            "ratings": None if self.ratings is None else self.ratings.tokens,
        }


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(x, dtype=np.int64))  # a writable copy


def _rating_token(value: float) -> str:
    return f"{float(value):g}"


def _rating_tokens(values: pl.Series) -> pl.Series:
    """Rating values as tokens ("4", "3.5"); NaN/null stay null (→ OOV)."""
    v = values.cast(pl.Float64)
    uniq = v.drop_nulls().drop_nans().unique().to_list()
    mapping = {x: _rating_token(x) for x in uniq}
    return v.fill_nan(None).replace_strict(
        list(mapping), list(mapping.values()), default=None, return_dtype=pl.String
    )


def _dense(frame: pl.DataFrame, f: DenseField) -> np.ndarray:
    col = frame[f.name]
    if f.dim == 1 and col.dtype.is_numeric():
        x = col.cast(pl.Float32).to_numpy().reshape(-1, 1)
    else:
        values, lengths = _flat(col)
        if not (lengths == f.dim).all():
            raise DataFormatError(f"dense field needs {f.dim} values per row", column=f.name)
        x = values.cast(pl.Float32).to_numpy().reshape(-1, f.dim)
    if np.isnan(x).any():
        raise DataFormatError("dense field has missing values", column=f.name)
    return x.astype(np.float32)


def _attach(
    spec: FeatureSpec,
    frame: pl.DataFrame,
    users: pl.DataFrame | None,
    items: pl.DataFrame | None,
) -> pl.DataFrame:
    """Join the profile/item columns the spec needs and the frame lacks; check columns."""
    needed = [c for c in spec.columns() if c not in frame.columns]
    for table, key in ((users, spec.user), (items, spec.item)):
        if table is None or not needed:
            continue
        take = [c for c in needed if c in table.columns and c != key]
        if take:
            side = table.select(pl.col(key).cast(pl.String), *take).unique(key, keep="first")
            frame = frame.with_columns(pl.col(key).cast(pl.String)).join(
                side, on=key, how="left", maintain_order="left"
            )
            needed = [c for c in needed if c not in take]
    if needed:
        raise ConfigError(
            f"the samples lack the column(s) {', '.join(needed)} named by the feature spec "
            f"(and no users/items table supplies them); columns: {', '.join(frame.columns)}"
        )
    return frame
