"""TRAWL's knowledge adaptation (docs/trawl.md): the MoE adapter, the injection of knowledge
into the user/item embeddings, InfoNCE over SWING positives and the joint loss.

Injection happens in one place, :class:`EntityEmbedding`: the vector of a user or item is
``[ID embedding ⊕ knowledge part]`` wherever a backbone uses it (target item, each history
item, the user), because every backbone reads entities through it. Knowledge modes:

- ``"none"``: ID embedding only;
- ``"raw"`` (ablation *without adapter*): the frozen semantic vector concatenated as is,
  with no projection (the paper's "semantic vector concatenated directly");
- ``"adapter"``: the MoE adapter's output ``a(x)`` concatenated (TRAWL; with the
  contrastive terms of :class:`JointLoss` when their weights are > 0, the full method).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from knowrec.errors import ConfigError
from knowrec.models.config import KnowledgeMode

if TYPE_CHECKING:
    from knowrec.models.base import CTRModel, ModelOutput

KNOWLEDGE_MODES: tuple[str, ...] = ("none", "raw", "adapter")


class MoEAdapter(nn.Module):
    """``a(x) = Σ_e softmax(G x)_e · MLP_e(x)``, MLP_e = Linear → ReLU → Linear.

    (..., in_dim) → (..., out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 32,
        *,
        n_experts: int = 4,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if min(in_dim, out_dim, n_experts, hidden) < 1:
            raise ConfigError("MoEAdapter: dimensions and n_experts must be ≥ 1")
        self.gate = nn.Linear(in_dim, n_experts, bias=False)
        self.hidden = nn.Linear(in_dim, n_experts * hidden)  # all experts' first layers
        self.w_out = nn.Parameter(torch.empty(n_experts, hidden, out_dim))
        self.b_out = nn.Parameter(torch.empty(n_experts, out_dim))
        bound = 1 / math.sqrt(hidden)
        nn.init.uniform_(self.w_out, -bound, bound)
        nn.init.uniform_(self.b_out, -bound, bound)
        self.dropout = nn.Dropout(dropout)
        self.n_experts, self.hidden_dim, self.out_dim = n_experts, hidden, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        gate = torch.softmax(self.gate(x), dim=-1)  # (N, E)
        h = torch.relu(self.hidden(x)).view(-1, self.n_experts, self.hidden_dim)  # (N, E, H)
        y = torch.einsum("neh,eho->neo", self.dropout(h), self.w_out) + self.b_out  # (N, E, O)
        return torch.einsum("ne,neo->no", gate, y).reshape(*lead, self.out_dim)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Expert weights softmax(Gx): (..., in_dim) → (..., n_experts)."""
        return torch.softmax(self.gate(x), dim=-1)


class EntityEmbedding(nn.Module):
    """The one embedding of a side (users or items), with knowledge injected.

    entity indices (...) → (..., dim + knowledge_dim). Entity 0 (padding) gives zeros.
    ``id_dropout``: in training, the share of occurrences whose ID embedding is replaced by
    the OOV row, so the model learns what to do for ids it has never seen (test users under
    a user split; cold items) and the OOV row becomes an "average unseen id".

    Parameters: ``id_row`` (n_entities,) maps entities to ID-embedding rows (OOV for ids
    not trained); ``knowledge`` (n_entities, d_k) frozen vectors or None.
    """

    def __init__(
        self,
        n_rows: int,
        dim: int,
        id_row: np.ndarray,
        knowledge: np.ndarray | None = None,
        *,
        mode: KnowledgeMode = "none",
        adapter_dim: int = 32,
        adapter_experts: int = 4,
        adapter_hidden: int = 128,
        adapter_dropout: float = 0.0,
        init_std: float = 0.01,
        id_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= id_dropout <= 1.0:
            raise ConfigError(f"id_dropout must be in [0, 1], got {id_dropout}")
        self.id_dropout = id_dropout
        if mode not in KNOWLEDGE_MODES:
            raise ConfigError(
                f"unknown knowledge mode {mode!r}: known modes are {', '.join(KNOWLEDGE_MODES)}"
            )
        self.ids = nn.Embedding(n_rows, dim, padding_idx=0)
        nn.init.normal_(self.ids.weight, std=init_std)
        with torch.no_grad():
            self.ids.weight[:2] = 0.0  # padding and OOV start neutral
        self.register_buffer("id_row", torch.as_tensor(id_row, dtype=torch.long))
        self.mode = mode
        self.adapter: MoEAdapter | None = None
        self.knowledge_dim = 0
        if mode != "none":
            if knowledge is None:
                raise ConfigError(
                    f"knowledge mode {mode!r} needs knowledge vectors for this side "
                    "(pass knowledge= to FeatureMap.fit)"
                )
            self.register_buffer("knowledge", torch.as_tensor(knowledge, dtype=torch.float32))
            self.knowledge_dim = knowledge.shape[1]
            if mode == "adapter":
                self.adapter = MoEAdapter(
                    knowledge.shape[1],
                    adapter_dim,
                    n_experts=adapter_experts,
                    hidden=adapter_hidden,
                    dropout=adapter_dropout,
                )
                self.knowledge_dim = adapter_dim
        self.id_dim = dim
        self.out_dim = dim + self.knowledge_dim

    def forward(self, entity: torch.Tensor) -> torch.Tensor:
        rows = self.id_row[entity]
        if self.training and self.id_dropout > 0:
            drop = torch.rand(rows.shape, device=rows.device) < self.id_dropout
            rows = torch.where(drop & (rows > 1), torch.ones_like(rows), rows)
        ids = self.ids(rows)
        if self.mode == "none":
            return ids
        part = self.adapted(entity) * (entity != 0).unsqueeze(-1).to(ids.dtype)
        return torch.cat([ids, part], dim=-1)

    def adapted(self, entity: torch.Tensor) -> torch.Tensor:
        """The knowledge part alone: (...) → (..., knowledge_dim). The adapter runs once per
        distinct entity of the call."""
        if self.mode == "none":
            raise ConfigError("this embedding has no knowledge part (knowledge mode 'none')")
        if self.adapter is None:
            return self.knowledge[entity]
        uniq, inverse = torch.unique(entity, return_inverse=True)
        return self.adapter(self.knowledge[uniq])[inverse]


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    tau: float = 0.15,
    *,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """InfoNCE with in-batch negatives over L2-normalised vectors (docs/trawl.md):

    ``ℓ = − Σ_j log( exp(u_j·p_j/τ) / Σ_{j'} exp(u_{j'}·p_j/τ) )`` — for each positive
    ``p_j`` the anchors ``u_{j'}`` of the batch compete. anchors, positives (n, d) → scalar
    (sum, or mean over j).
    """
    if anchors.shape != positives.shape or anchors.ndim != 2:
        raise ConfigError(f"info_nce: shapes {anchors.shape} and {positives.shape} differ")
    if tau <= 0:
        raise ConfigError(f"info_nce: tau must be > 0, got {tau}")
    u = F.normalize(anchors, dim=-1)
    p = F.normalize(positives, dim=-1)
    logits = p @ u.T / tau  # logits[j, j'] = u_{j'}·p_j / τ
    target = torch.arange(len(u), device=u.device)
    return F.cross_entropy(logits, target, reduction=reduction)


class JointLoss:
    """``L = L_rec + w1·L_uu + w2·L_ii`` (docs/trawl.md), where L_rec is the BCE of the click
    logit plus the backbone's weighted auxiliary loss (DIEN) and its embedding L2 term.

    ``user_partners`` / ``item_partners``: (n_entities,) entity index of each entity's
    positive (highest SWING), -1 when none
    (:meth:`knowrec.models.features.FeatureMap.partner_index`).
    The batch's distinct users (items) that have a partner are the anchors.
    """

    def __init__(
        self,
        *,
        w_uu: float = 0.0,
        w_ii: float = 0.0,
        tau: float = 0.15,
        user_partners: np.ndarray | None = None,
        item_partners: np.ndarray | None = None,
        reduction: Literal["mean", "sum"] = "mean",
    ) -> None:
        if w_uu < 0 or w_ii < 0 or tau <= 0:
            raise ConfigError("JointLoss: need w_uu, w_ii >= 0 and tau > 0")
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"JointLoss: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.w = {"user": w_uu, "item": w_ii}
        self.tau = tau
        self.reduction: Literal["mean", "sum"] = reduction
        self.partners: dict[str, torch.Tensor | None] = {}
        for side, partners, w in (("user", user_partners, w_uu), ("item", item_partners, w_ii)):
            if w > 0 and partners is None:
                raise ConfigError(f"JointLoss: a {side} weight > 0 needs {side}_partners")
            self.partners[side] = None if partners is None else torch.as_tensor(partners)

    @property
    def contrastive(self) -> bool:
        return any(w > 0 for w in self.w.values())

    def check(self, model: CTRModel) -> None:
        """Refuse contrastive weights on a model whose knowledge part is not adapted."""
        for side, w in self.w.items():
            emb = model.embedding.entity(side)
            if w > 0 and emb.adapter is None:
                raise ConfigError(
                    f"the {side}-side contrastive loss needs knowledge mode 'adapter' "
                    f"(the model has {emb.mode!r})"
                )
            p = self.partners[side]
            if w > 0 and p is not None and len(p) != len(emb.id_row):
                raise ConfigError(
                    f"{side}_partners has {len(p)} entries, the feature map {len(emb.id_row)}"
                )

    def side_loss(self, model: CTRModel, side: str, entities: torch.Tensor) -> torch.Tensor:
        """InfoNCE of the distinct ``entities`` that have a partner (0 if fewer than 2)."""
        partners = self.partners[side]
        assert partners is not None
        uniq = torch.unique(entities)
        partner = partners[uniq]
        keep = partner >= 0
        if int(keep.sum()) < 2:
            return torch.zeros(())
        emb = model.embedding.entity(side)
        return info_nce(
            emb.adapted(uniq[keep]), emb.adapted(partner[keep]), self.tau, reduction=self.reduction
        )

    def __call__(
        self, model: CTRModel, batch: dict[str, torch.Tensor], output: ModelOutput
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts (detached) for logging."""
        rec = F.binary_cross_entropy_with_logits(output.logit, batch["label"])
        parts = {"bce": rec.detach()}
        total = rec
        if output.aux_loss is not None and model.aux_weight > 0:
            total = total + model.aux_weight * output.aux_loss
            parts["aux"] = output.aux_loss.detach()
        reg = model.regularization()
        if reg is not None:
            total = total + reg
        for side, key in (("user", "uu"), ("item", "ii")):
            if self.w[side] > 0:
                term = self.side_loss(model, side, batch[side])
                total = total + self.w[side] * term
                parts[key] = term.detach()
        return total, parts
