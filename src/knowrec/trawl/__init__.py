"""TRAWL: LLM knowledge of items and users, a frozen encoder, a Mixture-of-Experts adapter
trained with SWING-positive contrastive terms, injected into DIN, DIEN and DeepFM
(docs/trawl.md). :func:`run_trawl` runs the whole experiment from a :class:`TrawlConfig`."""

from knowrec.trawl.config import TrawlConfig
from knowrec.trawl.pipeline import adapted_item_vectors, run_trawl

__all__ = ["TrawlConfig", "adapted_item_vectors", "run_trawl"]
