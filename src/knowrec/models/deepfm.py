"""DeepFM (Guo et al., 2017): FM first and second order + a DNN over the field embeddings.

Fields: the user, the target item, each categorical / multi-valued field, the mean of the
behaviour sequence (items with their ratings) and the dense features. An entity vector
``[ID ⊕ knowledge]`` enters the FM as two fields (its knowledge part projected to ``dim``
when the sizes differ), and the DNN as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from knowrec.models.base import CTRModel, ModelOutput
from knowrec.models.embedding import Embedded, EmbeddingConfig, FeatureEmbedding
from knowrec.models.features import FeatureMap
from knowrec.models.layers import MLP, FMInteraction, masked_mean


class DeepFM(CTRModel):
    """logit = w₀ + Σ first-order weights + FM(fields) + DNN(concat of fields); (B,)."""

    name = "deepfm"

    def __init__(
        self,
        feature_map: FeatureMap,
        embedding: EmbeddingConfig | Mapping[str, Any] | None = None,
        *,
        mlp_units: Sequence[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(feature_map, embedding)
        cfg = self.embedding.config
        emb = self.embedding
        # first order: a 1-d embedding per id/token, pooled like the field vectors
        self.first_order = FeatureEmbedding(
            feature_map, cfg.model_copy(update={"dim": 1, "knowledge": "none"})
        )
        self.dense_linear = nn.Linear(emb.dense_dim, 1, bias=False) if emb.dense_dim else None
        self.bias = nn.Parameter(torch.zeros(1))
        # second order: every field as a `dim` vector
        self.knowledge_proj = nn.ModuleDict()
        for side in ("user", "item"):
            k = emb.entity(side).knowledge_dim
            if k and k != cfg.dim:
                self.knowledge_proj[side] = nn.Linear(k, cfg.dim, bias=False)
        self.dense_proj = nn.Linear(emb.dense_dim, cfg.dim, bias=False) if emb.dense_dim else None
        self.fm = FMInteraction()
        width = emb.context_dim + emb.item_dim * (2 if emb.has_sequence else 1)
        self.dnn = MLP(
            width, mlp_units, activation_name=activation, dropout=dropout, batch_norm=batch_norm
        )
        self._set_params(locals())

    def _split(self, side: str, x: torch.Tensor) -> list[torch.Tensor]:
        """An entity vector (B, dim + k) → FM fields [(B, dim), (B, dim)] (or one field)."""
        d = self.embedding.config.dim
        if x.shape[-1] == d:
            return [x]
        rest = x[..., d:]
        if side in self.knowledge_proj:
            rest = self.knowledge_proj[side](rest)
        return [x[..., :d], rest]

    def _linear(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        fo: Embedded = self.first_order(batch)
        terms = [fo.user, fo.item, *fo.fields.values()]
        if fo.hist is not None and fo.hist_mask is not None:
            terms.append(masked_mean(fo.hist, fo.hist_mask))
        if self.dense_linear is not None and fo.dense is not None:
            terms.append(self.dense_linear(fo.dense))
        return torch.cat(terms, dim=-1).sum(dim=-1) + self.bias

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        e = self.embedding(batch)
        fields = [*self._split("user", e.user), *self._split("item", e.item)]
        fields += list(e.fields.values())
        deep_in = [e.context(), e.item]
        if e.hist is not None and e.hist_mask is not None:
            pooled = masked_mean(e.hist, e.hist_mask)
            fields += self._split("item", pooled)
            deep_in.append(pooled)
        if self.dense_proj is not None and e.dense is not None:
            fields.append(self.dense_proj(e.dense))
        fm = self.fm(torch.stack(fields, dim=1))
        deep = self.dnn(torch.cat(deep_in, dim=-1)).squeeze(-1)
        return ModelOutput(self._linear(batch) + fm + deep)

    def regularization(self) -> torch.Tensor | None:
        own, first = self.embedding.l2_penalty(), self.first_order.l2_penalty()
        return None if own is None or first is None else own + first
