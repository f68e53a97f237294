"""The shared embedding of every backbone: one module turns an encoded batch
(:class:`knowrec.models.features.Samples`) into vectors, with TRAWL knowledge injected into the
user and item embeddings (:class:`~knowrec.models.adapter.EntityEmbedding`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from knowrec.errors import ConfigError
from knowrec.models.adapter import EntityEmbedding
from knowrec.models.config import EmbeddingConfig
from knowrec.models.features import FeatureMap
from knowrec.models.layers import length_mask, masked_mean


@dataclass
class Embedded:
    """Vectors of one batch (B rows).

    ``user`` (B, Du); ``item`` (B, Di); ``fields`` name → (B, dim) for categorical fields
    and mean-pooled multi-valued fields; ``dense`` (B, K) or None; ``hist`` (B, L, Di)
    history items with their rating embedding added; ``hist_items`` (B, L, Di) the same
    items without ratings; ``hist_mask`` (B, L) bool (True = real item).
    """

    user: torch.Tensor
    item: torch.Tensor
    fields: dict[str, torch.Tensor]
    dense: torch.Tensor | None
    hist: torch.Tensor | None
    hist_items: torch.Tensor | None
    hist_mask: torch.Tensor | None

    def context(self) -> torch.Tensor:
        """User, profile/item fields and dense features side by side: (B, context_dim)."""
        parts = [self.user, *self.fields.values()]
        if self.dense is not None:
            parts.append(self.dense)
        return torch.cat(parts, dim=-1)


class FeatureEmbedding(nn.Module):
    """Encoded batch → :class:`Embedded`. Sizes: ``user_dim``, ``item_dim``,
    ``context_dim`` (width of :meth:`Embedded.context`), ``has_sequence``."""

    def __init__(self, feature_map: FeatureMap, config: EmbeddingConfig | None = None) -> None:
        super().__init__()
        cfg = config or EmbeddingConfig()
        self.config = cfg
        spec = feature_map.spec
        entities = {}
        for side in ("user", "item"):
            index = feature_map.entity(side)
            mode = cfg.knowledge if side in cfg.knowledge_sides else "none"
            if mode != "none" and index.knowledge is None:
                raise ConfigError(
                    f"knowledge mode {mode!r} for the {side} side, but the feature map has no "
                    f"{side} knowledge vectors (pass knowledge= to FeatureMap.fit, or set "
                    f"knowledge_sides)"
                )
            entities[side] = EntityEmbedding(
                index.n_rows,
                cfg.dim,
                index.id_row,
                index.knowledge,
                mode=mode,
                adapter_dim=cfg.adapter_dim,
                adapter_experts=cfg.adapter_experts,
                adapter_hidden=cfg.adapter_hidden,
                adapter_dropout=cfg.adapter_dropout,
                init_std=cfg.init_std,
                id_dropout=cfg.user_id_dropout if side == "user" else cfg.item_id_dropout,
            )
        self.user = entities["user"]
        self.item = entities["item"]
        self.categorical = nn.ModuleDict(
            {f.name: self._table(len(feature_map.categorical[f.name])) for f in spec.categorical}
        )
        self.multi_valued = nn.ModuleDict(
            {f.name: self._table(len(feature_map.multi_valued[f.name])) for f in spec.multi_valued}
        )
        self.dense_names = [f.name for f in spec.dense]
        self.dense_dim = sum(f.dim for f in spec.dense)
        self.has_sequence = spec.sequence is not None
        self.max_len = spec.sequence.max_len if spec.sequence is not None else 0
        self.rating: nn.Embedding | None = None
        if feature_map.ratings is not None:
            self.rating = self._table(len(feature_map.ratings), self.item.out_dim)
        self.user_dim = self.user.out_dim
        self.item_dim = self.item.out_dim
        self.n_fields = len(self.categorical) + len(self.multi_valued)
        self.context_dim = self.user_dim + cfg.dim * self.n_fields + self.dense_dim

    def _table(self, rows: int, dim: int | None = None) -> nn.Embedding:
        table = nn.Embedding(rows, dim or self.config.dim, padding_idx=0)
        nn.init.normal_(table.weight, std=self.config.init_std)
        with torch.no_grad():
            table.weight[0] = 0.0
        return table

    def entity(self, side: str) -> EntityEmbedding:
        if side == "user":
            return self.user
        if side == "item":
            return self.item
        raise ConfigError(f"side must be 'user' or 'item', got {side!r}")

    def forward(self, batch: dict[str, torch.Tensor]) -> Embedded:
        fields = {name: table(batch[f"cat:{name}"]) for name, table in self.categorical.items()}
        for name, table in self.multi_valued.items():
            idx = batch[f"multi:{name}"]
            fields[name] = masked_mean(table(idx), idx != 0)
        dense = None
        if self.dense_names:
            dense = torch.cat([batch[f"dense:{n}"] for n in self.dense_names], dim=-1)
        hist = hist_items = mask = None
        if self.has_sequence:
            idx = batch["hist"]
            mask = length_mask(batch["hist_len"], idx.shape[1])
            hist_items = self.item(idx)
            hist = hist_items
            if self.rating is not None and "hist_rating" in batch:
                hist = hist_items + self.rating(batch["hist_rating"])
        return Embedded(
            user=self.user(batch["user"]),
            item=self.item(batch["item"]),
            fields=fields,
            dense=dense,
            hist=hist,
            hist_items=hist_items,
            hist_mask=mask,
        )

    def l2_penalty(self) -> torch.Tensor | None:
        """``l2·Σ‖E‖²`` over every embedding table, or None when ``l2`` is 0."""
        if self.config.l2 <= 0:
            return None
        tables = [m.weight for m in self.modules() if isinstance(m, nn.Embedding)]
        return self.config.l2 * sum(w.pow(2).sum() for w in tables)
