"""DIEN (Zhou et al., 2019): interest extraction with a GRU trained by an auxiliary
next-click loss, interest evolution with an AUGRU driven by attention to the target.

- Extractor: GRU over the history (items with their ratings) → interests h_t (B, L, Di).
- Auxiliary loss: h_t must tell the next clicked item e_{t+1} from a random item
  (uniform over the trained items): BCE of ``aux_net([h_t, e])`` over valid steps.
- Evolution: attention of the target over h_t (bilinear softmax as in the paper, or DIN's
  activation unit), then AUGRU; its final state joins the other vectors in an MLP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from knowrec.errors import ConfigError
from knowrec.models.base import CTRModel, ModelOutput
from knowrec.models.embedding import EmbeddingConfig
from knowrec.models.features import FeatureMap
from knowrec.models.layers import AUGRU, MLP, ActivationUnit, BilinearAttention, masked_sum


class DIEN(CTRModel):
    """logit = MLP([context, target, AUGRU state (, Σh, target⊙Σh)]); (B,)."""

    name = "dien"

    def __init__(
        self,
        feature_map: FeatureMap,
        embedding: EmbeddingConfig | Mapping[str, Any] | None = None,
        *,
        attention: Literal["bilinear", "din"] = "bilinear",
        attention_units: Sequence[int] = (80, 40),
        aux_weight: float = 1.0,
        aux_units: Sequence[int] = (100, 50),
        sum_pooling: bool = False,
        mlp_units: Sequence[int] = (200, 80),
        activation: str = "dice",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(feature_map, embedding)
        self._require_sequence()
        if aux_weight < 0:
            raise ConfigError(f"dien: aux_weight must be >= 0, got {aux_weight}")
        dim = self.embedding.item_dim
        self.extractor = nn.GRU(dim, dim, batch_first=True)
        if attention == "bilinear":
            self.attention: nn.Module = BilinearAttention(dim)
        elif attention == "din":
            self.attention = ActivationUnit(dim, attention_units, softmax=True)
        else:
            raise ConfigError(f"dien: attention must be 'bilinear' or 'din', got {attention!r}")
        self.evolution = AUGRU(dim, dim)
        self.aux_weight = aux_weight
        self.aux_net = MLP(2 * dim, aux_units, activation_name="relu") if aux_weight > 0 else None
        self.n_items = feature_map.items.n_trained
        self.sum_pooling = sum_pooling
        width = self.embedding.context_dim + dim * (4 if sum_pooling else 2)
        self.mlp = MLP(
            width, mlp_units, activation_name=activation, dropout=dropout, batch_norm=batch_norm
        )
        self._set_params(locals())

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        e = self.embedding(batch)
        assert e.hist is not None and e.hist_mask is not None and e.hist_items is not None
        mask = e.hist_mask
        interests, _ = self.extractor(e.hist)  # (B, L, Di); right padding: valid steps exact
        weights = self.attention(e.item, interests, mask)  # (B, L)
        final = self.evolution(interests, weights, mask)  # (B, Di)
        parts = [e.context(), e.item, final]
        if self.sum_pooling:
            pooled = masked_sum(e.hist, mask)
            parts += [pooled, e.item * pooled]
        logit = self.mlp(torch.cat(parts, dim=-1)).squeeze(-1)
        aux = None
        if self.training and self.aux_net is not None:
            aux = self.aux_loss(batch, interests, e.hist_items, mask)
        return ModelOutput(logit, aux)

    def aux_loss(
        self,
        batch: dict[str, torch.Tensor],
        interests: torch.Tensor,
        items: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """BCE of next click vs a random item from h_t, t < len−1; scalar (0 if no step)."""
        assert self.aux_net is not None
        h = interests[:, :-1]  # (B, L-1, Di)
        valid = mask[:, 1:]  # next step exists
        if self.n_items < 1 or not bool(valid.any()):
            return interests.new_zeros(())
        negatives = torch.randint(2, 2 + self.n_items, valid.shape, device=h.device)
        neg = self.embedding.item(negatives)
        pos_logit = self.aux_net(torch.cat([h, items[:, 1:]], dim=-1)).squeeze(-1)
        neg_logit = self.aux_net(torch.cat([h, neg], dim=-1)).squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(
            pos_logit, torch.ones_like(pos_logit), reduction="none"
        ) + F.binary_cross_entropy_with_logits(
            neg_logit, torch.zeros_like(neg_logit), reduction="none"
        )
        w = valid.to(loss.dtype)
        return (loss * w).sum() / w.sum()
