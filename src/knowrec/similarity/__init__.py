"""Behavioural similarity between users and between items.

:func:`swing` computes SWING (docs/trawl.md) top-k neighbours and positives for either side
of a :class:`Bipartite` interaction graph, which :func:`build_bipartite` builds from a
polars interactions frame or a sparse matrix with the per-user / per-item caps of
production SWING. :func:`coclick_counts` counts items engaged in the same session.
"""

from knowrec.similarity.coclick import coclick_counts, top_coclicked
from knowrec.similarity.graph import Bipartite, build_bipartite
from knowrec.similarity.swing import SwingResult, swing

__all__ = [
    "Bipartite",
    "SwingResult",
    "build_bipartite",
    "coclick_counts",
    "swing",
    "top_coclicked",
]
