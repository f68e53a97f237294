"""Explore Further's ranking cascade, written once for the offline pipeline and the online
service: co-engagement features → stage-1 LightGBM → (cross-encoder click and quality
heads → stage-2 LightGBM) → the quality score → ``final = (1−λ)·z(ranker) + λ·z(quality)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from knowrec.ranking.combine import QUALITY, Combination
from knowrec.ranking.features import ColumnFeatures, build_features, path_columns

#: Every score a cascade can give a pair, in stage order (``ranker`` is the last LightGBM
#: stage's score, ``quality`` the quality source's).
SCORE_COLUMNS = ("stage1", "click_score", "quality_score", "stage2", "ranker", QUALITY)


def text_cosine(frame: pl.DataFrame, vectors: tuple[list[str], np.ndarray]) -> np.ndarray:
    """Cosine of the trigger's and candidate's text vectors (NaN without text)."""
    ids, x = vectors
    row = {i: r for r, i in enumerate(ids)}
    t = np.array([row.get(i, -1) for i in frame["trigger_id"].to_list()])
    c = np.array([row.get(i, -1) for i in frame["item_id"].to_list()])
    ok = (t >= 0) & (c >= 0)
    out = np.full(frame.height, np.nan)
    if ok.any():
        out[ok] = np.einsum("ij,ij->i", x[t[ok]], x[c[ok]])
    return out


def quality_scores(
    model: Any, frame: pl.DataFrame, vectors: tuple[list[str], np.ndarray]
) -> np.ndarray:
    """The LightGBM quality model's score of pairs that carry the co-engagement features."""
    if "sim_text" not in frame.columns:
        frame = frame.with_columns(sim_text=pl.Series(text_cosine(frame, vectors)))
    return model.predict(frame)


@dataclass
class RankingCascade:
    """The fitted stages of one candidate set. ``features``: the co-engagement features
    of the serving history; ``quality``: where the quality score comes from (the
    cross-encoder's quality head, a LightGBM quality model, or none); ``combination``:
    the final score (absent until λ is chosen)."""

    features: Any  # CoEngagementFeatures
    stage1: Any  # LGBMRanker
    quality: Literal["cross_encoder", "lgbm", "none"] = "none"
    cross_encoder: Any = None
    stage2: Any = None
    quality_model: Any = None
    vectors: tuple[list[str], np.ndarray] | None = None
    combination: Combination | None = None
    items: pl.DataFrame | None = None  # item texts, for the cross-encoder

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` (``trigger_id``, ``item_id`` and the candidates' provenance columns)
        with every score of :data:`SCORE_COLUMNS` this cascade has, and ``final`` when the
        combination is set. Score columns already in ``frame`` (computed offline in a
        cached stage) are kept, not computed again."""
        if "stage1" not in frame.columns:
            frame, _ = build_features(frame, [self.features, ColumnFeatures(path_columns(frame))])
            frame = frame.with_columns(stage1=pl.Series(self.stage1.predict(frame)))
        if self.stage2 is not None and "stage2" not in frame.columns:
            if "click_score" not in frame.columns:
                keys = frame.select("trigger_id", "item_id")
                heads = self.cross_encoder.predict(keys, self.items, missing="nan")
                frame = pl.concat(
                    [frame, heads.select("click_score", "quality_score")], how="horizontal"
                )
            frame = frame.with_columns(stage2=pl.Series(self.stage2.predict(frame)))
        frame = frame.with_columns(
            ranker=pl.col("stage2" if "stage2" in frame.columns else "stage1")
        )
        if self.quality == "lgbm" and self.quality_model is not None:
            assert self.vectors is not None, "a LightGBM quality model needs the text vectors"
            q = quality_scores(self.quality_model, frame, self.vectors)
            frame = frame.with_columns(pl.Series(QUALITY, q, dtype=pl.Float64))
        elif self.quality == "cross_encoder" and "quality_score" in frame.columns:
            frame = frame.with_columns(pl.col("quality_score").alias(QUALITY))
        else:
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias(QUALITY))
        if self.combination is not None:
            frame = frame.with_columns(final=pl.Series(self.combination(frame)))
        return frame


def score_columns(frame: pl.DataFrame) -> list[str]:
    """The :data:`SCORE_COLUMNS` that ``frame`` has, in stage order."""
    return [c for c in SCORE_COLUMNS if c in frame.columns]
