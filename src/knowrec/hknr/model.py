"""HKNR's networks: the temporal-graph user encoder (stage 2) and the knowledge-augmented
ranker (stage 3). Shapes: B samples, L clicks per user, H hidden units, D encoder size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GCNConv
from torch_geometric.utils import dropout_edge

N_SCORES = 2  # scalar inputs of the ranker: recall cosine, click prior

#: Edge age buckets, in hours before the snapshot (the last bucket: older or unknown).
AGE_BUCKETS_HOURS = (1.0, 6.0, 24.0, 72.0, 168.0, 720.0)
N_BUCKETS = len(AGE_BUCKETS_HOURS) + 2  # + older + unknown time


class TemporalGraphEncoder(nn.Module):
    """Two GCN layers over the user–article click graph. Node inputs: article semantic
    vectors and users' stage-1 vectors (D), projected to H. Each click edge is weighted by
    a learnt positive weight of its age bucket; 10% of edges are dropped in training; each
    layer is GCN → ReLU → dropout, then a residual and layer norm."""

    def __init__(
        self, in_dim: int, hidden: int = 128, *, edge_dropout: float = 0.1, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, hidden)
        self.convs = nn.ModuleList([GCNConv(hidden, hidden) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(2)])
        self.bucket_weight = nn.Parameter(torch.zeros(N_BUCKETS))  # softplus(0) ≈ 0.69
        self.edge_dropout, self.dropout = edge_dropout, nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_bucket: torch.Tensor
    ) -> torch.Tensor:
        """x (N, D), edge_index (2, E), edge_bucket (E,) → node states (N, H)."""
        h = self.project(x)
        keep = torch.ones(edge_index.shape[1], dtype=torch.bool)
        if self.training and self.edge_dropout > 0:
            _, keep = dropout_edge(edge_index, p=self.edge_dropout, training=True)
        edges, weight = edge_index[:, keep], F.softplus(self.bucket_weight)[edge_bucket[keep]]
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = norm(h + self.dropout(F.relu(conv(h, edges, weight))))
        return h


class TemporalAttentionPool(nn.Module):
    """The user vector: attention over the user's clicked-article states with a query made
    from the user's node state and the clicks' metadata (recency, hour of day)."""

    def __init__(self, hidden: int, meta_dim: int) -> None:
        super().__init__()
        self.query = nn.Sequential(nn.Linear(hidden + meta_dim, hidden), nn.Tanh())
        self.key = nn.Linear(hidden + meta_dim, hidden)

    def forward(
        self, user: torch.Tensor, clicks: torch.Tensor, meta: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """user (B, H), clicks (B, L, H), meta (B, L, M), mask (B, L) → (B, H); a user
        without clicks gets their node state."""
        q = self.query(torch.cat([user, meta.mean(dim=1)], dim=-1))  # (B, H)
        k = self.key(torch.cat([clicks, meta], dim=-1))  # (B, L, H)
        scores = (k @ q.unsqueeze(-1)).squeeze(-1) / k.shape[-1] ** 0.5
        scores = scores.masked_fill(~mask, float("-inf"))
        any_click = mask.any(dim=1, keepdim=True)
        attn = torch.softmax(scores.masked_fill(~any_click, 0.0), dim=1) * mask
        pooled = (attn.unsqueeze(-1) * clicks).sum(dim=1)
        return torch.where(any_click, pooled, user)


class ResidualMLP(nn.Module):
    """``layers`` blocks of Linear → ReLU → dropout with a residual, then a linear head."""

    def __init__(self, in_dim: int, hidden: int, layers: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, hidden)
        self.blocks = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(layers - 1)])
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(F.relu(self.inp(x)))
        for block in self.blocks:
            h = h + self.dropout(F.relu(block(h)))
        return self.out(h).squeeze(-1)


class KnowledgeRanker(nn.Module):
    """Click logit of (user vector u, article). The article's semantic vector s (projected)
    and knowledge vector k (mean of its entity vectors + its topic vector) are fused by a
    gate, ``g = σ(W[s;k]+b)``, ``f = g⊙s + (1−g)⊙k``; the cross features
    ``[u; f; u⊙f; |u−f|]`` feed a 3-layer residual MLP. ``reconstruct(f)`` maps the fused
    vector back to the semantic vector (the auxiliary loss)."""

    def __init__(
        self,
        sem_dim: int,
        hidden: int,
        n_entities: int,
        n_topics: int,
        *,
        entity_init: torch.Tensor | None = None,
        knowledge: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.semantic = nn.Linear(sem_dim, hidden)
        self.entity = nn.Embedding(n_entities, hidden, padding_idx=0)
        self.topic = nn.Embedding(n_topics, hidden, padding_idx=0)
        if entity_init is not None:  # graph vectors (d ≤ H) into the first d columns
            with torch.no_grad():
                self.entity.weight[:, : entity_init.shape[1]] = entity_init
        self.gate = nn.Linear(2 * hidden, hidden)
        self.knowledge = knowledge
        self.mlp = ResidualMLP(4 * hidden + N_SCORES, hidden, layers=3, dropout=dropout)
        self.wide = nn.Linear(N_SCORES, 1)  # set by fit_wide; the MLP starts at 0
        nn.init.zeros_(self.mlp.out.weight)
        nn.init.zeros_(self.mlp.out.bias)
        self.reconstruct = nn.Linear(hidden, sem_dim)

    def fuse(self, sem: torch.Tensor, entities: torch.Tensor, topic: torch.Tensor) -> torch.Tensor:
        """sem (B, D), entities (B, E) indices (0 = none), topic (B,) → f (B, H)."""
        return self.fuse_with_gate(sem, entities, topic)[0]

    def fuse_with_gate(
        self, sem: torch.Tensor, entities: torch.Tensor, topic: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f (B, H) and the gate g (B, H): 1 − g is the share of knowledge in f."""
        s = self.semantic(sem)
        if not self.knowledge:
            return s, torch.ones_like(s)
        mask = (entities > 0).unsqueeze(-1).float()
        ent = (self.entity(entities) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        k = ent + self.topic(topic)
        g = torch.sigmoid(self.gate(torch.cat([s, k], dim=-1)))
        return g * s + (1 - g) * k, g

    def forward(
        self, user: torch.Tensor, fused: torch.Tensor, scores: torch.Tensor
    ) -> torch.Tensor:
        """user (B, H), fused (B, H), scores (B, N_SCORES): the row's scalar signals (the
        stage-1 cosine of the user's and the article's semantic vectors, the article's
        click prior) → click logits (B,): a linear ("wide") term of the scores plus the
        MLP of the cross features and the scores, which learns what the scores miss."""
        cross = torch.cat([user, fused, user * fused, (user - fused).abs(), scores], dim=-1)
        return self.wide(scores).squeeze(-1) + self.mlp(cross)

    @torch.no_grad()
    def fit_wide(self, scores: torch.Tensor, label: torch.Tensor) -> None:
        """Start the wide term at the logistic regression of ``label`` on ``scores``, so
        that training starts from that baseline rather than from chance."""
        fitted = logistic_regression(scores.numpy(), label.numpy())
        if fitted is not None:
            self.wide.weight.copy_(torch.as_tensor(fitted.coef_, dtype=torch.float32))
            self.wide.bias.copy_(torch.as_tensor(fitted.intercept_, dtype=torch.float32))


def logistic_regression(x: np.ndarray, y: np.ndarray) -> Any:
    """scikit-learn's logistic regression of clicks ``y`` on ``x`` (None: one class)."""
    from sklearn.linear_model import LogisticRegression

    y = y > 0
    if y.all() or not y.any():
        return None
    return LogisticRegression(C=100.0, max_iter=200).fit(x, y)
