"""Ranking for Explore Further (SPEC §2.2): pair features, LightGBM rankers, the final
score ``(1−λ)·z(ranker) + λ·z(quality)`` and its λ trade-off sweep."""

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

__all__ = [
    "RANKERS",
    "CoEngagementFeatures",
    "ColumnFeatures",
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
    "tradeoff_figure",
]
