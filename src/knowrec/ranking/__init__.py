"""Ranking for Explore Further (docs/explore.md): pair features, LightGBM rankers, the
multitask cross-encoder (click + quality heads), the final score
``(1−λ)·z(ranker) + λ·z(quality)`` and its λ trade-off sweep.

The cross-encoder names (torch, transformers) are imported on first use."""

from knowrec.lazy import lazy_exports
from knowrec.ranking.combine import (
    SweepPoint,
    ZScore,
    choose_lambda,
    final_score,
    lambda_sweep,
    tradeoff_figure,
)
from knowrec.ranking.features import (
    CoEngagementFeatures,
    ColumnFeatures,
    FeatureGroup,
    build_features,
    path_columns,
)
from knowrec.ranking.lgbm import RANKERS, LGBMRanker, make_ranker

_LAZY = {
    name: "cross_encoder"
    for name in (
        "CROSS_ENCODER_FEATURES",
        "CrossEncoderFeatures",
        "CrossEncoderRanker",
        "quality_targets",
        "soft_labels",
    )
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "CROSS_ENCODER_FEATURES",
    "RANKERS",
    "CoEngagementFeatures",
    "ColumnFeatures",
    "CrossEncoderFeatures",
    "CrossEncoderRanker",
    "FeatureGroup",
    "LGBMRanker",
    "SweepPoint",
    "ZScore",
    "build_features",
    "choose_lambda",
    "final_score",
    "lambda_sweep",
    "make_ranker",
    "path_columns",
    "quality_targets",
    "soft_labels",
    "tradeoff_figure",
]
