"""Retrieval: ANN indexes and (later) recall paths and the candidate store."""

from knowrec.retrieval.ann import AnnIndex

__all__ = ["AnnIndex"]
