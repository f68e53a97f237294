"""Baselines for HKNR under the same protocol and the same frozen article vectors.

Scored without training:

- ``popularity``: a candidate's number of history clicks;
- ``click_rate``: the candidate's smoothed click rate in the earlier training impressions
  (:func:`~knowrec.hknr.protocol.click_prior`, which HKNR also adds to its logit);
- ``semantic``: cosine of the stage-1 user vector and the candidate's vector;
- ``wide``: the logistic regression of the click on the two (HKNR's starting point);
- ``item_knn``: the sum of the candidate's co-click cosines with the user's clicks;
- ``als``: implicit ALS (Hu et al., ICDM 2008) on users × articles, the user folded in
  from their clicks before the impression.

Trained like HKNR (the project's Trainer, the training impressions):

- ``nrms``: NRMS (Wu et al., EMNLP-IJCNLP 2019), the field's reference news recommender:
  the user is multi-head self-attention over the clicked articles' vectors followed by
  additive attention, the score a dot product with the candidate's vector, trained with
  a softmax over each impression's candidates. knowrec's news encoder is the frozen
  sentence encoder plus a linear layer (the paper learns word-level self-attention);
- ``neumf``: NeuMF (He et al., WWW 2017), GMF + MLP, the user a bag of clicked articles;
- ``din``: DIN (Zhou et al., KDD 2018), the candidate attending over the clicked articles.

Users are split at random, so no test user appears in a training impression: every model
reads a user through their history clicks before the impression (``Samples.clicks``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from knowrec.hknr.fit import Graph, NewsWorld, Samples, recall_cosine
from knowrec.models.layers import MLP, ActivationUnit

#: Every baseline's name in the results table.
NAMES: dict[str, str] = {
    "popularity": "popularity",
    "click_rate": "article click rate (earlier train impressions)",
    "wide": "recall cosine + click prior (logistic regression)",
    "semantic": "semantic (encoder cosine)",
    "item_knn": "item-kNN (history co-clicks)",
    "als": "ALS (implicit)",
    "nrms": "NRMS",
    "neumf": "NeuMF",
    "din": "DIN",
}


def popularity_scores(history: pl.DataFrame, frame: pl.DataFrame) -> np.ndarray:
    counts = history.group_by("item_id").agg(n=pl.len())
    scored = frame.select("item_id").join(counts, on="item_id", how="left", maintain_order="left")
    return scored["n"].fill_null(0).cast(pl.Float64).to_numpy()


def wide_scores(world: NewsWorld, train: Samples, test: Samples) -> np.ndarray:
    """The logistic regression of the click on the recall cosine and the click prior,
    fitted on the training rows: where HKNR's ranker starts (its wide term)."""
    from knowrec.hknr.model import logistic_regression

    def x(s: Samples) -> np.ndarray:
        return np.column_stack([recall_cosine(world.semantic, s).numpy(), s.prior.numpy()])

    fitted = logistic_regression(x(train), train.label.numpy())
    return np.zeros(len(test)) if fitted is None else fitted.decision_function(x(test))


def semantic_scores(world: NewsWorld, samples: Samples) -> np.ndarray:
    """Cosine of the mean of the clicked articles' vectors and the candidate's vector."""
    return recall_cosine(world.semantic, samples).numpy()


def _clicks_matrix(graph: Graph, world: NewsWorld) -> sp.csr_matrix:
    """Users × articles click counts of a snapshot's graph (its user → article edges)."""
    src, dst = graph.edge_index.numpy()
    user = src < world.n_users
    shape = (world.n_users, len(world.article_row))
    ones = np.ones(int(user.sum()), dtype=np.float32)
    return sp.csr_matrix((ones, (src[user], dst[user] - world.n_users)), shape=shape)


def _row_clicks(s: Samples, n_articles: int) -> sp.csr_matrix:
    """Rows × articles counts of each row's clicks before its impression."""
    row, pos = s.mask.numpy().nonzero()
    ones = np.ones(len(row), dtype=np.float32)
    return sp.csr_matrix((ones, (row, s.clicks.numpy()[row, pos])), shape=(len(s), n_articles))


def item_knn_scores(world: NewsWorld, samples: Samples) -> np.ndarray:
    """Item-kNN: the sum, over the row's clicks before its impression, of the candidate's
    cosine with the clicked article, two articles' vectors being the users who clicked
    them in the history (an article's cosine with itself left out). The co-clicks of a
    row come from its snapshot's graph, so no click after the impression's window counts
    (all of the history when it precedes the impressions, as in NeMig)."""
    out = np.zeros(len(samples))
    for snap in samples.snapshot.unique().tolist():
        rows = (samples.snapshot == snap).nonzero().squeeze(1).numpy()
        clicked = _clicks_matrix(world.graphs[snap], world)
        clicked.data[:] = 1.0  # a user counts once per article
        norm = np.sqrt(np.asarray(clicked.sum(0)).ravel())
        scale = sp.diags(np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0))
        x = clicked @ scale
        sim = (x.T @ x).tocsr()
        sim.setdiag(0.0)
        part = samples.take(rows)
        row, pos = part.mask.numpy().nonzero()
        pairs = sim[part.clicks.numpy()[row, pos], part.article.numpy()[row]]
        out[rows] = np.bincount(row, weights=np.asarray(pairs).ravel(), minlength=len(rows))
    return out


def als_scores(
    world: NewsWorld,
    train: Samples,
    test: Samples,
    *,
    factors: int = 64,
    iterations: int = 15,
    seed: int = 0,
    num_threads: int = 1,
) -> np.ndarray:
    """Implicit ALS: article factors fitted on users × articles counts of the history
    clicks before the first impression window (all of the history when it precedes the
    impressions, as in NeMig) plus the clicked candidates of ``train`` (never a
    validation or test label). A test row's user factor is folded in from its clicks
    before its impression (ALS's least-squares user step given the article factors), so
    unseen test users need no training row; a row without clicks scores 0. Score = user
    factor · article factor."""
    from knowrec.retrieval.paths import fit_als

    n_articles = len(world.article_row)
    history = _clicks_matrix(world.graphs[0], world)
    pos = train.label > 0
    counts = (train.user[pos].numpy(), train.article[pos].numpy())
    labels = sp.csr_matrix((np.ones(int(pos.sum()), np.float32), counts), shape=history.shape)
    model = fit_als(
        (history + labels).tocsr(),
        factors=factors,
        iterations=iterations,
        seed=seed,
        num_threads=num_threads,
    )
    groups, first, inverse = np.unique(test.group.numpy(), return_index=True, return_inverse=True)
    users = model.recalculate_user(
        np.arange(len(groups)), _row_clicks(test.take(first), n_articles)
    )
    items = np.asarray(model.item_factors)
    return (users[inverse] * items[test.article.numpy()]).sum(1).astype(np.float64)


class AdditiveAttention(nn.Module):
    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, H), mask (B, L) → (B, H)."""
        a = self.proj(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        a = torch.softmax(a.masked_fill(~mask.any(1, keepdim=True), 0.0), dim=1) * mask
        return (a.unsqueeze(-1) * x).sum(1)


class NRMS(nn.Module):
    """NRMS over frozen article vectors (see the module docstring)."""

    def __init__(self, world: NewsWorld, hidden: int = 128, heads: int = 4, dropout: float = 0.2):
        super().__init__()
        self.world = world
        self.news = nn.Sequential(nn.Linear(world.semantic.shape[1], hidden), nn.Dropout(dropout))
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.pool = AdditiveAttention(hidden)

    def forward(self, s: Samples) -> torch.Tensor:
        clicks = self.news(self.world.semantic[s.clicks])
        mask = s.mask.clone()
        mask[~mask.any(1), 0] = True  # a user without clicks attends to one padding row
        h, _ = self.attn(clicks, clicks, clicks, key_padding_mask=~mask)
        user = self.pool(h, mask)
        return (user * self.news(self.world.semantic[s.article])).sum(-1)

    def loss(self, s: Samples) -> dict[str, torch.Tensor]:
        return {"loss": impression_softmax_loss(self(s), s.label, s.group)}


def impression_softmax_loss(
    logits: torch.Tensor, label: torch.Tensor, group: torch.Tensor
) -> torch.Tensor:
    """Mean over clicked rows of −log softmax within their impression."""
    codes, inverse = group.unique(return_inverse=True)
    peak = torch.full((len(codes),), float("-inf")).scatter_reduce(
        0, inverse, logits.detach(), reduce="amax"
    )
    exp = (logits - peak[inverse]).exp()
    norm = torch.zeros(len(codes)).index_add(0, inverse, exp)
    log_p = logits - peak[inverse] - norm[inverse].log()
    pos = label > 0
    return -log_p[pos].mean() if pos.any() else logits.new_zeros(())


def _bag(table: nn.Embedding, s: Samples) -> torch.Tensor:
    """(n, D) mean of the row's clicked articles' embeddings; 0 without clicks."""
    mask = s.mask.unsqueeze(-1).float()
    return (table(s.clicks) * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class NeuMF(nn.Module):
    """NeuMF (He et al., WWW 2017): a GMF branch (user ⊙ article) and an MLP branch over
    [user, article], their last layers joined in the logit; BCE on the training rows.

    Users are split, so a test user has no learnt user-id embedding: in both branches
    NeuMF's user-id embedding is replaced by the mean of learnt embeddings of the ids of
    the user's clicked articles (a bag of clicked-article ids). An article is its learnt
    id embedding plus a projection of its frozen encoder vector."""

    def __init__(
        self,
        world: NewsWorld,
        dim: int = 32,
        hidden: tuple[int, ...] = (64, 32),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.world = world
        n, d_in = len(world.article_row), world.semantic.shape[1]
        self.user_gmf, self.user_mlp = nn.Embedding(n, dim), nn.Embedding(n, dim)
        self.item_gmf, self.item_mlp = nn.Embedding(n, dim), nn.Embedding(n, dim)
        for table in (self.user_gmf, self.user_mlp, self.item_gmf, self.item_mlp):
            nn.init.normal_(table.weight, std=0.01)
        self.text_gmf, self.text_mlp = nn.Linear(d_in, dim), nn.Linear(d_in, dim)
        self.mlp = MLP(2 * dim, hidden, dropout=dropout, output_dim=None)
        self.out = nn.Linear(dim + self.mlp.output_dim, 1)

    def forward(self, s: Samples) -> torch.Tensor:
        text = self.world.semantic[s.article]
        gmf = _bag(self.user_gmf, s) * (self.item_gmf(s.article) + self.text_gmf(text))
        item = self.item_mlp(s.article) + self.text_mlp(text)
        mlp = self.mlp(torch.cat([_bag(self.user_mlp, s), item], dim=-1))
        return self.out(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def loss(self, s: Samples) -> dict[str, torch.Tensor]:
        return {"loss": F.binary_cross_entropy_with_logits(self(s), s.label)}


class DIN(nn.Module):
    """DIN (Zhou et al., KDD 2018) over the clicked articles: the activation unit weighs
    each click given the candidate on [click, cand, click − cand, click ⊙ cand] (0 at
    padding, no softmax, as in the paper), the weighted sum is the user, and an MLP scores
    [user, cand, user ⊙ cand]; BCE on the training rows. An article is a projection of
    its frozen encoder vector plus a learnt id embedding (starting at 0, so an article
    without training rows is its projection). PReLU, not Dice: Dice's batch statistics
    would mix the padding into the scores."""

    def __init__(
        self,
        world: NewsWorld,
        dim: int = 64,
        attention: tuple[int, ...] = (80, 40),
        hidden: tuple[int, ...] = (128, 64),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.world = world
        self.text = nn.Linear(world.semantic.shape[1], dim)
        self.ids = nn.Embedding(len(world.article_row), dim)
        nn.init.zeros_(self.ids.weight)
        self.attention = ActivationUnit(dim, attention, activation_name="prelu")
        self.mlp = MLP(3 * dim, hidden, activation_name="prelu", dropout=dropout)

    def forward(self, s: Samples) -> torch.Tensor:
        # Each article of the batch once (an impression's rows share their clicks).
        rows, at = torch.cat([s.article, s.clicks.flatten()]).unique(return_inverse=True)
        x = self.text(self.world.semantic[rows]) + self.ids(rows)
        cand, clicks = x[at[: len(s)]], x[at[len(s) :]].view(*s.clicks.shape, -1)
        weights = self.attention(cand, clicks, s.mask)  # (n, L)
        user = torch.bmm(weights.unsqueeze(1), clicks).squeeze(1)
        return self.mlp(torch.cat([user, cand, user * cand], dim=-1)).squeeze(-1)

    def loss(self, s: Samples) -> dict[str, torch.Tensor]:
        return {"loss": F.binary_cross_entropy_with_logits(self(s), s.label)}


#: The baselines trained like HKNR: name → the network over a world.
TRAINED: dict[str, Callable[[NewsWorld], nn.Module]] = {
    "nrms": NRMS,
    "neumf": NeuMF,
    "din": DIN,
}
