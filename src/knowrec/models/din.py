"""DIN (Zhou et al., 2018): the target item attends over the behaviour sequence.

The activation unit scores each history item h against the target t on
``[h, t, h−t, h⊙t]``; padding gets weight 0; the weighted sum (no softmax, as in the
paper) joins the user/profile/item vectors in an MLP with Dice (or PReLU) activations.
History vectors carry their rating embedding, so the pooled interest says how the user
rated what resembles the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from knowrec.models.base import CTRModel, ModelOutput
from knowrec.models.embedding import EmbeddingConfig
from knowrec.models.features import FeatureMap
from knowrec.models.layers import MLP, ActivationUnit


class DIN(CTRModel):
    """logit = MLP([context, target, Σ_k a(h_k, t)·h_k]); (B,)."""

    name = "din"

    def __init__(
        self,
        feature_map: FeatureMap,
        embedding: EmbeddingConfig | Mapping[str, Any] | None = None,
        *,
        attention_units: Sequence[int] = (80, 40),
        attention_activation: str = "dice",
        attention_softmax: bool = False,
        mlp_units: Sequence[int] = (200, 80),
        activation: str = "dice",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(feature_map, embedding)
        self._require_sequence()
        emb = self.embedding
        self.attention = ActivationUnit(
            emb.item_dim,
            attention_units,
            activation_name=attention_activation,
            softmax=attention_softmax,
        )
        self.mlp = MLP(
            emb.context_dim + 2 * emb.item_dim,
            mlp_units,
            activation_name=activation,
            dropout=dropout,
            batch_norm=batch_norm,
        )
        self._set_params(locals())

    def attend(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Attention weights of the target over the history: (B, L), 0 at padding."""
        e = self.embedding(batch)
        assert e.hist is not None and e.hist_mask is not None
        return self.attention(e.item, e.hist, e.hist_mask)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        e = self.embedding(batch)
        assert e.hist is not None and e.hist_mask is not None
        weights = self.attention(e.item, e.hist, e.hist_mask)  # (B, L)
        interest = torch.bmm(weights.unsqueeze(1), e.hist).squeeze(1)  # Σ_k a_k·h_k: (B, Di)
        x = torch.cat([e.context(), e.item, interest], dim=-1)
        return ModelOutput(self.mlp(x).squeeze(-1))
