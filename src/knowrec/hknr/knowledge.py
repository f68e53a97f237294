"""HKNR's article knowledge: what the ranker fuses with the semantic vector.

An article's knowledge is its entities and topic labels. Entities start from vectors
learnt on a knowledge graph when the data set has one (NeMig ships the 1-hop Wikidata
neighbourhood of its entities): a truncated SVD of the entity–neighbour matrix with
PPMI weights, so two entities that share neighbours (the same country, party, office)
get close vectors. The ranker fine-tunes them and learns the topic embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from knowrec.errors import ConfigError

PAD = 0  # index 0 of every vocabulary: no entity / no topic


@dataclass
class ArticleKnowledge:
    """Per article (rows aligned with ``item_ids``): up to ``max_entities`` entity indices
    and one topic index (0 = none); ``entity_vectors`` initialises the entity table."""

    item_ids: list[str]
    entities: np.ndarray  # (n_articles, max_entities) int64
    topics: np.ndarray  # (n_articles,) int64
    entity_vocab: list[str]
    topic_vocab: list[str]
    entity_vectors: np.ndarray | None  # (len(entity_vocab), d), row 0 zeros


def graph_embeddings(
    triples: pl.DataFrame, entities: Sequence[str], dim: int = 32, *, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Vectors of ``entities`` from a ``head``/``tail`` edge list: the SVD of the PPMI
    entity × neighbour matrix (both directions), rows L2-normalised; an entity absent from
    the graph gets zeros. Also returns the share of ``entities`` found in the graph."""
    index = {e: i for i, e in enumerate(entities)}
    edges = pl.concat(
        [triples.select(a="head", b="tail"), triples.select(a="tail", b="head")]
    ).filter(pl.col("a").is_in(list(index)))
    out = np.zeros((len(entities), dim), dtype=np.float32)
    if edges.is_empty():
        return out, 0.0
    nodes = {n: j for j, n in enumerate(edges["b"].unique().sort().to_list())}
    rows = np.array([index[a] for a in edges["a"].to_list()])
    cols = np.array([nodes[b] for b in edges["b"].to_list()])
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(entities), len(nodes)))
    m.sum_duplicates()
    total = m.sum()
    row_sum = np.asarray(m.sum(axis=1)).ravel()
    col_sum = np.asarray(m.sum(axis=0)).ravel()
    coo = m.tocoo()
    pmi = np.log(coo.data * total / (row_sum[coo.row] * col_sum[coo.col]))
    ppmi = sp.csr_matrix((np.maximum(pmi, 0.0), (coo.row, coo.col)), shape=m.shape)
    found = float((row_sum > 0).mean())
    ppmi.eliminate_zeros()
    if ppmi.nnz == 0:
        return out, found
    if min(ppmi.shape) <= 2 * dim + 1:  # small: a dense SVD (ARPACK needs k < min(shape))
        u, s, _ = np.linalg.svd(ppmi.toarray(), full_matrices=False)
        u, s = u[:, :dim], s[:dim]
    else:
        u, s, _ = svds(ppmi, k=dim, random_state=seed)
    x = u * np.sqrt(s)
    k = x.shape[1]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out[:, :k] = np.where(norms > 0, x / np.maximum(norms, 1e-12), 0.0)
    return out, found


def article_knowledge(
    items: pl.DataFrame,
    *,
    max_entities: int = 5,
    triples: pl.DataFrame | None = None,
    dim: int = 32,
    seed: int = 0,
) -> ArticleKnowledge:
    """The entity and topic indices of every article in ``items`` (``entities``: a list
    column; the topic is ``category``, else the first of ``topics``), and graph vectors of
    the entities when ``triples`` is given."""
    if "entities" not in items.columns and "category" not in items.columns:
        raise ConfigError("HKNR knowledge needs an 'entities' or a 'category' column of items")
    n = items.height
    ent_lists = (
        items["entities"].fill_null([]).to_list() if "entities" in items.columns else [[]] * n
    )
    if "category" in items.columns:
        topic = items["category"].to_list()
    elif "topics" in items.columns:
        topic = [t[0] if t else None for t in items["topics"].fill_null([]).to_list()]
    else:
        topic = [None] * n
    entity_vocab = ["<none>", *sorted({e for es in ent_lists for e in es if e})]
    topic_vocab = ["<none>", *sorted({t for t in topic if t})]
    e_index = {e: i for i, e in enumerate(entity_vocab)}
    t_index = {t: i for i, t in enumerate(topic_vocab)}
    entities = np.zeros((n, max_entities), dtype=np.int64)
    for r, es in enumerate(ent_lists):
        ids = list(dict.fromkeys(e_index[e] for e in es if e))[:max_entities]
        entities[r, : len(ids)] = ids
    topics = np.array([t_index.get(t, PAD) if t else PAD for t in topic], dtype=np.int64)
    vectors = None
    if triples is not None:
        vectors, _ = graph_embeddings(triples, entity_vocab, dim, seed=seed)
        vectors[PAD] = 0.0
    return ArticleKnowledge(
        items["item_id"].cast(pl.String).to_list(),
        entities,
        topics,
        entity_vocab,
        topic_vocab,
        vectors,
    )
