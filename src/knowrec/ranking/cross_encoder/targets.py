"""Training targets from the pairs frame (clicks, labels, teachers) and from judge output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import polars as pl

from knowrec.errors import ConfigError, DataFormatError
from knowrec.ranking.cross_encoder.losses import N_CLASSES, Mode, soft_labels

PROB_COLUMNS: tuple[str, ...] = tuple(f"quality_probs_{k}" for k in range(N_CLASSES))
TeacherNorm = Literal["group", "global"]


def pair_groups(frame: pl.DataFrame, triggers: list[str], group_col: str | None) -> np.ndarray:
    """Group codes (n,) of the rows: ``group_col``'s values, or the triggers when None."""
    if group_col is None:
        keys = pl.Series(triggers)
    elif group_col not in frame.columns:
        raise ConfigError(f"cross-encoder: group column {group_col!r} missing")
    else:
        keys = frame[group_col]
    return keys.cast(pl.String).rank("dense").to_numpy().astype(np.int64)


def training_targets(
    frame: pl.DataFrame,
    groups: np.ndarray,
    *,
    mode: Mode,
    head_weights: Mapping[str, float],
    label_weight: float,
    click_col: str | None,
    teacher_norm: TeacherNorm,
) -> dict[str, np.ndarray]:
    """Per-row target arrays (NaN = none) for the loss terms this mode trains: ``click``
    (counts), ``click_teacher`` (z-scored), ``quality`` and ``quality_teacher`` (label
    distributions). The parameters are :class:`CrossEncoderRanker`'s."""

    def values(col: str) -> np.ndarray:
        try:
            x = frame[col].cast(pl.Float64).to_numpy().astype(np.float64)
        except pl.exceptions.PolarsError:
            raise DataFormatError("must be numeric", column=col) from None
        if np.isinf(x).any():
            raise DataFormatError("infinite value", column=col)
        return x

    def need(ok: bool, what: str, head: str) -> None:
        if not ok:
            raise ConfigError(
                f"cross-encoder mode {mode!r}: the {head} head needs {what}; "
                f"the frame has {frame.columns} (head_weights={{'{head}': 0}} skips the head)"
            )

    n = frame.height
    out: dict[str, np.ndarray] = {}
    distill = mode == "distill"
    use_labels = not distill or label_weight > 0
    if head_weights["click"] > 0:
        ccol = _click_column(frame, click_col)
        if use_labels and ccol is not None:
            clicks = values(ccol)
            if (clicks[np.isfinite(clicks)] < 0).any():
                raise DataFormatError("click counts must be ≥ 0", column=ccol)
            out["click"] = clicks
        elif not distill:
            need(False, "a click column ('click_count' or 'clicked')", "click")
        if distill:
            need("click_teacher" in frame.columns, "the column 'click_teacher'", "click")
            teacher = values("click_teacher")
            if not np.isfinite(teacher).any():
                raise DataFormatError("no click teacher value", column="click_teacher")
            keys = groups if teacher_norm == "group" else np.zeros(n, dtype=np.int64)
            out["click_teacher"] = _zscore_within(teacher, keys)
    if head_weights["quality"] > 0:
        has_probs = all(c in frame.columns for c in PROB_COLUMNS)
        dist = None
        if has_probs:
            dist = np.stack([values(c) for c in PROB_COLUMNS], axis=1)
            rows = np.isfinite(dist).all(axis=1)
            if (dist[rows] < 0).any():
                raise DataFormatError("negative probability", column=PROB_COLUMNS[0])
            sums = dist.sum(axis=1)
            if (sums[rows] <= 0).any():
                raise DataFormatError("a label distribution sums to 0", column=PROB_COLUMNS[0])
            dist = np.where(rows[:, None], dist / np.where(rows, sums, 1.0)[:, None], np.nan)
        elif "quality_label" in frame.columns:
            labels = values("quality_label")
            try:
                dist = soft_labels(labels)
            except DataFormatError:
                raise DataFormatError(
                    f"labels must lie in [0, {N_CLASSES - 1}]", column="quality_label"
                ) from None
        if use_labels and dist is not None:
            out["quality"] = dist
        elif not distill:
            need(False, "'quality_label' or the columns quality_probs_0..4", "quality")
        if distill:
            if "quality_teacher" in frame.columns:
                teacher = values("quality_teacher")
                bad = np.isfinite(teacher) & ((teacher < 0) | (teacher > N_CLASSES - 1))
                if bad.any():
                    raise DataFormatError(
                        f"teacher scores must lie in [0, {N_CLASSES - 1}]",
                        column="quality_teacher",
                    )
                out["quality_teacher"] = soft_labels(teacher)
            elif has_probs and dist is not None:
                out["quality_teacher"] = dist
            else:
                need(False, "'quality_teacher' (or quality_probs_0..4)", "quality")
    for key, arr in out.items():
        valid = np.isfinite(arr) if arr.ndim == 1 else np.isfinite(arr).all(axis=1)
        if not valid.any():
            raise DataFormatError(f"no usable {key} target: every value is null")
        if len(arr) != n:
            raise AssertionError(key)
    return out


def _click_column(frame: pl.DataFrame, click_col: str | None) -> str | None:
    if click_col is not None:
        return click_col if click_col in frame.columns else None
    return next((c for c in ("click_count", "clicked") if c in frame.columns), None)


def _zscore_within(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``values`` z-scored within each key over its finite values (NaN stays NaN; a key
    whose values are all equal gets 0)."""
    ok = np.isfinite(values)
    x = np.where(ok, values, 0.0)
    count = np.bincount(keys, weights=ok.astype(np.float64))
    mean = np.bincount(keys, weights=x) / np.maximum(count, 1)
    var = np.bincount(keys, weights=ok * (x - mean[keys]) ** 2) / np.maximum(count, 1)
    std = np.sqrt(var)[keys]
    z = np.where(std > 1e-12, (x - mean[keys]) / np.where(std > 1e-12, std, 1.0), 0.0)
    return np.where(ok, z, np.nan)


def quality_targets(scores: pl.DataFrame, *, variant: str = "b") -> pl.DataFrame:
    """Judge output (:meth:`knowrec.judge.judge.Judge.score`) → cross-encoder targets:
    ``trigger_id``, ``item_id``, ``quality_probs_0..4`` (the judges' mean label
    distribution, from ``probs``, or ``probs_c`` for variant ``c``) and
    ``quality_teacher`` (the expected score ``score_b``/``score_c``); failed pairs get
    nulls. Join the result onto the training pairs."""
    variant = variant.lower()
    if variant not in ("b", "c"):
        raise ConfigError(f"quality_targets: variant must be 'b' or 'c', got {variant!r}")
    probs_col, score_col = ("probs", "score_b") if variant == "b" else ("probs_c", "score_c")
    need = ["trigger_id", "candidate_id", probs_col, score_col]
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise ConfigError(
            f"quality_targets: the judge scores need {missing}; have {scores.columns}"
        )
    dists = []
    for judges in scores[probs_col].to_list():
        p = np.asarray(judges if judges else [], dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != N_CLASSES or p.shape[0] == 0:
            dists.append([None] * N_CLASSES)
        else:
            mean = p.mean(axis=0)
            total = mean.sum()
            dists.append(list(mean / total) if total > 0 else [None] * N_CLASSES)
    cols = {c: [d[k] for d in dists] for k, c in enumerate(PROB_COLUMNS)}
    return pl.DataFrame(
        {
            "trigger_id": scores["trigger_id"].cast(pl.String),
            "item_id": scores["candidate_id"].cast(pl.String),
            **{c: pl.Series(c, v, dtype=pl.Float64) for c, v in cols.items()},
            "quality_teacher": scores[score_col].cast(pl.Float64),
        }
    )
