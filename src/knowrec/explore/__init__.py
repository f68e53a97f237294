"""Explore Further (SPEC §2): data preparation and offline evaluation of item-to-item
recommendation; the experiment config in :mod:`knowrec.explore.config`, serving a finished
run in :mod:`knowrec.explore.service`, the offline stages in
:mod:`knowrec.pipelines.explore`. Recall paths live in :mod:`knowrec.retrieval`, rankers
and score combination in :mod:`knowrec.ranking`."""

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
