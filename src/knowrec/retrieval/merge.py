"""Merging the recall paths' candidates: union, de-duplication, provenance (docs/explore.md).

:func:`merge_candidates` fuses each trigger's lists from several paths by reciprocal
rank fusion (``Σ_path weight / (rrf_k + rank)``, scale-free across paths), drops the
trigger itself, collapses the same item found by several paths into one candidate whose
``paths`` keeps every path's score, drops near-duplicates (embedding cosine ≥
``near_duplicate`` with the trigger or with a better candidate already kept), applies an
optional ``keep`` filter, and keeps at most ``k``. :func:`store_candidates` writes the
result to a :class:`~knowrec.retrieval.store.CandidateStore`; :func:`candidate_frame` turns
it into a table for ranking.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from knowrec.errors import ConfigError
from knowrec.retrieval.ann import AnnIndex
from knowrec.retrieval.paths import coerce_vectors
from knowrec.retrieval.store import Candidate, CandidateStore

log = logging.getLogger(__name__)

PerPath = Mapping[str, Mapping[str, Sequence[Candidate]]]


class _Vectors:
    """Unit vectors by item id, for near-duplicate checks."""

    def __init__(self, vectors: AnnIndex | Any) -> None:
        ids, x = coerce_vectors(vectors, "merge_candidates")
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        self.x = (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)
        self.row = {i: r for r, i in enumerate(ids)}

    def get(self, item: str) -> np.ndarray | None:
        r = self.row.get(item)
        if r is None or not self.x[r].any():
            return None
        return self.x[r]


def merge_candidates(
    per_path: PerPath,
    *,
    k: int = 30,
    weights: Mapping[str, float] | None = None,
    rrf_k: float = 60.0,
    vectors: AnnIndex | Any = None,
    near_duplicate: float = 0.95,
    keep: Callable[[str, Candidate], bool] | None = None,
    stats: Counter[str] | None = None,
) -> dict[str, list[Candidate]]:
    """``{trigger: ≤ k candidates}`` fused from ``{path: {trigger: candidates}}``.

    ``Candidate.score`` is the fusion score, ``Candidate.paths`` maps each path that found
    the item to that path's own score. Lists are taken in their given order (best first).
    ``vectors`` (ids + rows, a mapping or an AnnIndex) enables near-duplicate removal;
    items without a vector are never treated as duplicates. ``stats``, if given, counts
    what was dropped or joined (``self``, ``duplicate``, ``merged``, ``near_duplicate``,
    ``filtered``, ``cut``).
    """
    if k < 1:
        raise ConfigError(f"merge_candidates: k must be positive, got {k}")
    if not -1.0 <= near_duplicate <= 1.0 + 1e-9:
        raise ConfigError(
            f"merge_candidates: near_duplicate must be a cosine, got {near_duplicate}"
        )
    weights = dict(weights or {})
    unknown = set(weights) - set(per_path)
    if unknown:
        raise ConfigError(f"merge_candidates: weights for unknown path(s) {sorted(unknown)}")
    lookup = _Vectors(vectors) if vectors is not None else None
    counter: Counter[str] = stats if stats is not None else Counter()
    triggers = list(dict.fromkeys(t for lists in per_path.values() for t in lists))
    out: dict[str, list[Candidate]] = {}
    for trigger in triggers:
        fused: dict[str, float] = {}
        prov: dict[str, dict[str, float]] = {}
        for path, lists in per_path.items():
            w = float(weights.get(path, 1.0))
            for rank, cand in enumerate(lists.get(trigger, ()), start=1):
                item = cand.item_id
                if item == trigger:
                    counter["self"] += 1
                    continue
                if item in prov and path in prov[item]:
                    counter["duplicate"] += 1  # the same path listed it twice: keep the first
                    continue
                if item in prov:
                    counter["merged"] += 1  # found by several paths: one candidate
                fused[item] = fused.get(item, 0.0) + w / (rrf_k + rank)
                paths = prov.setdefault(item, {})
                paths[path] = float(cand.score)
                for sub, score in cand.paths.items():  # an already merged input keeps its own
                    if sub != path:
                        paths.setdefault(sub, float(score))
        ranked = sorted(fused, key=lambda i: (-fused[i], i))
        out[trigger] = _select(
            trigger, ranked, fused, prov, k, lookup, near_duplicate, keep, counter
        )
    if counter:
        log.debug("merge_candidates dropped %s", dict(counter))
    return out


def _select(
    trigger: str,
    ranked: list[str],
    fused: dict[str, float],
    prov: dict[str, dict[str, float]],
    k: int,
    lookup: _Vectors | None,
    threshold: float,
    keep: Callable[[str, Candidate], bool] | None,
    counter: Counter[str],
) -> list[Candidate]:
    kept: list[Candidate] = []
    kept_vecs = np.empty((k, lookup.x.shape[1]), dtype=np.float32) if lookup is not None else None
    n_vecs = 0
    anchor = lookup.get(trigger) if lookup is not None else None
    for n, item in enumerate(ranked):
        if len(kept) >= k:
            counter["cut"] += len(ranked) - n
            break
        cand = Candidate(item, fused[item], prov[item])
        if keep is not None and not keep(trigger, cand):
            counter["filtered"] += 1
            continue
        vec = lookup.get(item) if lookup is not None else None
        if vec is not None and kept_vecs is not None:
            if anchor is not None and float(anchor @ vec) >= threshold:
                counter["near_duplicate"] += 1
                continue
            if n_vecs and float(np.max(kept_vecs[:n_vecs] @ vec)) >= threshold:
                counter["near_duplicate"] += 1
                continue
            kept_vecs[n_vecs] = vec
            n_vecs += 1
        kept.append(cand)
    return kept


def store_candidates(
    store: CandidateStore, merged: Mapping[str, Iterable[Candidate]], *, batch_size: int = 5_000
) -> int:
    """Write ``{trigger: candidates}`` into ``store`` in batches; returns the triggers written."""
    keys = list(merged)
    for start in range(0, len(keys), batch_size):
        store.put_many({t: list(merged[t]) for t in keys[start : start + batch_size]})
    return len(keys)


def candidate_frame(
    merged: Mapping[str, Sequence[Candidate]],
    paths: Sequence[str] | None = None,
    *,
    prefix: str = "path_",
) -> pl.DataFrame:
    """One row per (trigger, candidate) in list order: ``trigger_id``, ``item_id``,
    ``score`` (fusion), ``rank`` (1-based), ``n_paths`` and ``<prefix><path>`` (that
    path's score; null when the path did not find the item). ``paths`` fixes the path
    columns (default: every path seen, sorted) so train and test frames line up."""
    names = sorted({p for cands in merged.values() for c in cands for p in c.paths})
    names = list(paths) if paths is not None else names
    cols: dict[str, list] = {
        "trigger_id": [],
        "item_id": [],
        "score": [],
        "rank": [],
        "n_paths": [],
    }
    per_path: dict[str, list[float | None]] = {p: [] for p in names}
    for trigger, cands in merged.items():
        for rank, c in enumerate(cands, start=1):
            cols["trigger_id"].append(str(trigger))
            cols["item_id"].append(c.item_id)
            cols["score"].append(float(c.score))
            cols["rank"].append(rank)
            cols["n_paths"].append(len(c.paths))
            for p in names:
                per_path[p].append(c.paths.get(p))
    schema = {
        "trigger_id": pl.String,
        "item_id": pl.String,
        "score": pl.Float64,
        "rank": pl.Int32,
        "n_paths": pl.Int32,
        **{f"{prefix}{p}": pl.Float64 for p in names},
    }
    data = {**cols, **{f"{prefix}{p}": v for p, v in per_path.items()}}
    return pl.DataFrame(data, schema=schema)
