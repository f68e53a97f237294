"""Evaluation metrics (docs/README.md): NumPy-vectorised, O(n log n), with documented results for
ties, empty input, single-class groups and groups without a relevant item.

Classification / pairwise: :func:`auc`, :func:`gauc`, :func:`log_loss`,
:func:`pairwise_accuracy`. Top-k ranking over flat arrays with a group id per row:
:func:`ndcg_at_k`, :func:`recall_at_k`, :func:`precision_at_k`, :func:`hit_rate_at_k`,
:func:`mrr_at_k`, and the Explore Further metrics :func:`reco_dcg_at_k`,
:func:`click_ndcg_at_k`, :func:`quality_filtered_click_ndcg_at_k`. Undefined results are
``nan`` with an :class:`UndefinedMetricWarning`; invalid input raises ``ValueError``.
"""

from knowrec.metrics._common import UndefinedMetricWarning
from knowrec.metrics.classification import auc, gauc, log_loss, pairwise_accuracy
from knowrec.metrics.ranking import (
    click_ndcg_at_k,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    quality_filtered_click_ndcg_at_k,
    recall_at_k,
    reco_dcg_at_k,
)

__all__ = [
    "UndefinedMetricWarning",
    "auc",
    "click_ndcg_at_k",
    "gauc",
    "hit_rate_at_k",
    "log_loss",
    "mrr_at_k",
    "ndcg_at_k",
    "pairwise_accuracy",
    "precision_at_k",
    "quality_filtered_click_ndcg_at_k",
    "recall_at_k",
    "reco_dcg_at_k",
]
