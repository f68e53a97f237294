"""Explore Further (docs/explore.md): item-to-item recommendation. The config is in
:mod:`~knowrec.explore.config`, sessions and impressions in :mod:`~knowrec.explore.data`,
the offline stages' work in :mod:`~knowrec.explore.stages`, metrics, λ and Table 5 in
:mod:`~knowrec.explore.evaluate`, the report in :mod:`~knowrec.explore.report`, the runner
in :mod:`~knowrec.explore.pipeline` and serving in :mod:`~knowrec.explore.service`. Recall
paths live in :mod:`knowrec.retrieval`, rankers and score combination in
:mod:`knowrec.ranking`."""

from knowrec.explore.data import (
    click_impressions,
    coengagement_pairs,
    prepare_sessions,
    split_sessions,
)
from knowrec.explore.evaluate import click_ndcg_table, recall_by_path

__all__ = [
    "click_impressions",
    "click_ndcg_table",
    "coengagement_pairs",
    "prepare_sessions",
    "recall_by_path",
    "split_sessions",
]
