"""Baselines for HKNR under the same protocol and the same frozen article vectors.

- ``popularity``: a candidate's number of history clicks (newest first on ties);
- ``semantic``: cosine of the stage-1 user vector and the candidate's vector;
- ``nrms``: NRMS (Wu et al., EMNLP-IJCNLP 2019), the field's reference news recommender:
  the user is multi-head self-attention over the clicked articles' vectors followed by
  additive attention, the score a dot product with the candidate's vector, trained with
  a softmax over each impression's candidates. knowrec's news encoder is the frozen
  sentence encoder plus a linear layer (the paper learns word-level self-attention).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch
from torch import nn

from knowrec.hknr.fit import NewsWorld, Samples, recall_cosine


def popularity_scores(history: pl.DataFrame, frame: pl.DataFrame) -> np.ndarray:
    counts = history.group_by("item_id").agg(n=pl.len())
    scored = frame.select("item_id").join(counts, on="item_id", how="left", maintain_order="left")
    return scored["n"].fill_null(0).cast(pl.Float64).to_numpy()


def semantic_scores(world: NewsWorld, samples: Samples) -> np.ndarray:
    """Cosine of the mean of the clicked articles' vectors and the candidate's vector."""
    return recall_cosine(world.semantic, samples).numpy()


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
