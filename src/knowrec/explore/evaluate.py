"""Explore Further offline evaluation: per-path recall@k with unique contribution, and
ClickNDCG@k of rankings over held-out impressions (SPEC §2.1, §2.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from knowrec.errors import ConfigError
from knowrec.metrics import click_ndcg_at_k
from knowrec.retrieval.store import Candidate

PerPath = Mapping[str, Mapping[str, Sequence[Candidate]]]


def _found(per_path: PerPath, k: int) -> pl.DataFrame:
    rows = [
        (path, str(t), c.item_id)
        for path, lists in per_path.items()
        for t, cands in lists.items()
        for c in list(cands)[:k]
    ]
    schema = {"path": pl.String, "trigger_id": pl.String, "item_id": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row").unique(maintain_order=True)


def recall_by_path(
    per_path: PerPath,
    truth: pl.DataFrame,
    *,
    k: int = 30,
    merged: Mapping[str, Sequence[Candidate]] | None = None,
) -> pl.DataFrame:
    """Recall@k of each path against held-out co-engagement, with its unique contribution.

    ``truth`` has ``trigger_id`` and ``item_id`` (e.g.
    :func:`knowrec.explore.data.coengagement_pairs` of held-out sessions). Evaluated
    triggers: those asked of the paths that have at least one held-out pair; a trigger a
    path did not answer counts as recall 0. Per path: ``recall`` (mean over triggers of
    hits / held-out items, as :func:`knowrec.metrics.recall_at_k`), ``hits``,
    ``coverage`` (share of triggers with any candidate), ``unique_hits`` (held-out pairs
    found by this path alone) and ``unique_share`` (those over all pairs found by any
    path). Extra rows: ``union`` (all paths' top-k together, uncapped) and, when
    ``merged`` is given, ``merged`` (the final ≤ k list).
    """
    if k < 1:
        raise ConfigError(f"recall_by_path: k must be positive, got {k}")
    if not per_path:
        raise ConfigError("recall_by_path: no recall path results given")
    asked = {str(t) for lists in per_path.values() for t in lists}
    truth = truth.select(pl.col("trigger_id").cast(pl.String), pl.col("item_id").cast(pl.String))
    truth = truth.unique().filter(pl.col("trigger_id").is_in(list(asked)))
    n_rel = truth.group_by("trigger_id").agg(n_rel=pl.len())
    n_triggers = n_rel.height
    if n_triggers == 0:
        raise ConfigError("recall_by_path: no asked trigger has a held-out co-engaged item")
    found = _found(per_path, k)
    hits = found.join(truth, on=["trigger_id", "item_id"], how="inner")
    hits = hits.with_columns(n_found=pl.len().over("trigger_id", "item_id"))
    union_hits = hits.select("trigger_id", "item_id").unique().height
    evaluated = n_rel.select("trigger_id")

    def summary(name: str, found_p: pl.DataFrame, hits_p: pl.DataFrame) -> dict[str, object]:
        per_t = hits_p.group_by("trigger_id").agg(h=pl.len())
        rec = n_rel.join(per_t, on="trigger_id", how="left").with_columns(pl.col("h").fill_null(0))
        answered = found_p.select("trigger_id").unique().join(evaluated, on="trigger_id")
        return {
            "path": name,
            f"recall@{k}": float((rec["h"] / rec["n_rel"]).mean()),
            "hits": int(rec["h"].sum()),
            "coverage": answered.height / n_triggers,
        }

    rows = []
    for path in per_path:
        hp = hits.filter(pl.col("path") == path)
        row = summary(path, found.filter(pl.col("path") == path), hp)
        unique = int((hp["n_found"] == 1).sum())
        row["unique_hits"] = unique
        row["unique_share"] = unique / union_hits if union_hits else 0.0
        rows.append(row)
    union_found = found.select("trigger_id", "item_id").unique()
    union = summary("union", union_found, hits.select("trigger_id", "item_id").unique())
    rows.append(union)
    if merged is not None:
        mf = _found({"merged": merged}, k)
        mh = mf.join(truth, on=["trigger_id", "item_id"], how="inner")
        rows.append(summary("merged", mf, mh))
    out = pl.DataFrame(rows)
    return out.with_columns(triggers=pl.lit(n_triggers))


def click_ndcg_table(
    frame: pl.DataFrame,
    scorers: Mapping[str, str | np.ndarray],
    *,
    ks: Sequence[int] = (5,),
    clicked: str = "clicked",
    group: str = "group",
) -> list[dict[str, object]]:
    """ClickNDCG@k of several orderings of the same impressions: ``scorers`` maps a label
    to a score column of ``frame`` or an array (higher ranks first; ties keep row order)."""
    out = []
    for label, scores in scorers.items():
        s = frame[scores].to_numpy() if isinstance(scores, str) else np.asarray(scores)
        row: dict[str, object] = {"ranking": label}
        for k in ks:
            row[f"ClickNDCG@{k}"] = click_ndcg_at_k(
                frame[clicked].to_numpy(), s, k, frame[group].to_numpy()
            )
        out.append(row)
    return out
