"""The cross-encoder network: a transformer body, pooling and the click and quality heads."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import nn
from torch.nn import functional as F

from knowrec.errors import ConfigError
from knowrec.ranking.cross_encoder.losses import N_CLASSES

Pooling = Literal["interaction", "mean"]
POOLINGS: tuple[str, ...] = get_args(Pooling)


class MultitaskCrossEncoder(nn.Module):
    """A transformer body, pooling and two linear heads (click: 1 logit, quality: 5).

    ``pooling="mean"``: the masked mean of all pair tokens. ``"interaction"`` (default):
    that mean concatenated with ``û ⊙ v̂`` and ``|û − v̂|``, where û, v̂ are the means of
    the trigger's and the candidate's tokens (as read jointly by the cross-encoder),
    L2-normalised and scaled by √hidden so their elements are of unit size — the heads
    then start with a cosine of the two sides within reach (the sum of ``û ⊙ v̂``) and
    learn from far fewer pairs.

    ``forward(input_ids, attention_mask, token_type_ids, segments)`` with (B, T) tensors
    (``segments``: 1 = trigger token, 2 = candidate token, 0 = other) returns the (B,)
    click logits and the (B, 5) quality logits."""

    def __init__(self, body: nn.Module, dropout: float = 0.1, pooling: str = "interaction"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"cross-encoder pooling {pooling!r}: known are {POOLINGS}")
        self.body, self.pooling = body, pooling
        hidden = int(body.config.hidden_size)
        width = hidden * (3 if pooling == "interaction" else 1)
        self.dropout = nn.Dropout(dropout)
        self.click = nn.Linear(width, 1)
        self.quality = nn.Linear(width, N_CLASSES)
        self._frozen: list[nn.Module] = []

    @staticmethod
    def _mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T) inputs → (B, width) pooled pair representations."""
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        tokens = self.body(
            input_ids=input_ids, attention_mask=attention_mask, **kwargs
        ).last_hidden_state
        pooled = self._mean(tokens, attention_mask)
        if self.pooling == "interaction":
            if segments is None:
                raise ConfigError("cross-encoder: interaction pooling needs the segments")
            scale = math.sqrt(tokens.shape[-1])  # unit-size elements, like the token states
            u = F.normalize(self._mean(tokens, segments == 1), dim=-1) * scale
            v = F.normalize(self._mean(tokens, segments == 2), dim=-1) * scale
            pooled = torch.cat([pooled, u * v, (u - v).abs()], dim=-1)
        return pooled

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, width) → (B,) click logits and (B, 5) quality logits."""
        pooled = self.dropout(pooled)
        return self.click(pooled).squeeze(-1), self.quality(pooled)

    def forward(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.encode(**inputs))

    def heads_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("body.")}

    def freeze(self, train_layers: int | None) -> None:
        """Train the heads and the top ``train_layers`` transformer layers (None: all);
        the embedding tables never train. The frozen modules stay in eval mode under
        :meth:`train`: no dropout where nothing learns (as when their output is cached)."""
        body = self.body
        body.requires_grad_(False)
        layers = _encoder_layers(body)
        n = len(layers) if train_layers is None else min(train_layers, len(layers))
        for layer in layers[len(layers) - n :] if n else []:
            layer.requires_grad_(True)
        frozen = list(layers[: len(layers) - n])
        embeddings = getattr(body, "embeddings", None)
        if isinstance(embeddings, nn.Module):
            frozen.append(embeddings)
        self._frozen = frozen if n else [body]

    def train(self, mode: bool = True) -> MultitaskCrossEncoder:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self


def _encoder_layers(body: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a BERT-like body (``encoder.layer``), bottom first."""
    encoder = getattr(body, "encoder", None)
    layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
    if layers is None:
        raise ConfigError(
            f"cross-encoder: cannot find the transformer layers of {type(body).__name__}"
        )
    return list(layers)
