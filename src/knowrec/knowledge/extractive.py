"""Extractive summaries with the sentence encoder: the cheap `summary` / `topic_summary`.

- ``summary`` (generic, not guided): the sentences most central to the document —
  the highest mean cosine similarity to the other sentences (degree centrality, as in
  LexRank), kept in document order.
- ``topic_summary`` (focused on the key factors, no inference): the sentences nearest
  to the key-factor descriptions (max cosine over the factors), in document order.

Both only *select* sentences of the raw text, so they cannot add common-sense inferences
— the property that separates these baselines from TRAWL in the paper — and they cost
an encoder pass (~200 sentences/s on 2 cores) instead of an LLM call (~5 s) per item.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from knowrec.encoders import Encoder

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")


def split_sentences(text: str) -> list[str]:
    """Sentences (and lines) of ``text``, stripped, empty ones dropped."""
    return [s.strip() for s in _SPLIT.split(text or "") if s and s.strip()]


def select_sentences(
    docs: Sequence[str],
    encoder: Encoder,
    *,
    n_sentences: int = 3,
    queries: Sequence[str] | None = None,
    progress: bool = False,
) -> list[str]:
    """For each document, its ``n_sentences`` best sentences joined in document order.

    Without ``queries`` the score is centrality; with ``queries`` it is the maximum
    cosine similarity to any query (the key-factor descriptions). All sentences of all
    documents are encoded in one batch through the encoder's cache.
    """
    split = [split_sentences(d) for d in docs]
    flat = [s for sents in split for s in sents]
    vectors = encoder.encode(flat, progress=progress) if flat else np.zeros((0, 1))
    q = encoder.encode(list(queries), progress=False) if queries else None
    out: list[str] = []
    start = 0
    for sents in split:
        vec = vectors[start : start + len(sents)]
        start += len(sents)
        if len(sents) <= n_sentences:
            out.append(" ".join(sents))
            continue
        if q is not None:
            score = (vec @ q.T).max(axis=1)
        else:
            sim = vec @ vec.T
            score = (sim.sum(axis=1) - np.diag(sim)) / (len(sents) - 1)
        keep = np.sort(np.argsort(-score, kind="stable")[:n_sentences])
        out.append(" ".join(sents[i] for i in keep))
    return out
