"""Small shared layers with documented tensor shapes (B = batch, L = sequence length)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from knowrec.errors import ConfigError

ACTIVATIONS = ("relu", "prelu", "dice", "sigmoid", "tanh", "none")


class Dice(nn.Module):
    """Data-adaptive activation of DIN: ``p·x + (1−p)·α·x``, ``p = σ(BN(x))``.

    (..., dim) → (..., dim); batch statistics are taken over all leading dimensions.
    """

    def __init__(self, dim: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, eps=eps, affine=False)
        self.alpha = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape))
        # p·x + (1−p)·α·x = x·(α + (1−α)·p): two passes over (…, dim) instead of five
        return x * torch.addcmul(self.alpha, p, 1 - self.alpha)


class PReLU(nn.Module):
    """PReLU with one slope per feature of the *last* dimension: (..., dim) → (..., dim)."""

    def __init__(self, dim: int, init: float = 0.25) -> None:
        super().__init__()
        self.slope = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, self.slope * x)


def activation(name: str, dim: int) -> nn.Module:
    """An activation module by name (see :data:`ACTIVATIONS`)."""
    key = name.lower()
    if key == "relu":
        return nn.ReLU()
    if key == "prelu":
        return PReLU(dim)
    if key == "dice":
        return Dice(dim)
    if key == "sigmoid":
        return nn.Sigmoid()
    if key == "tanh":
        return nn.Tanh()
    if key == "none":
        return nn.Identity()
    raise ConfigError(f"unknown activation {name!r}: known names are {', '.join(ACTIVATIONS)}")


class MLP(nn.Module):
    """Linear → [BatchNorm] → activation → [Dropout] per hidden layer, then an optional
    linear output. (..., input_dim) → (..., output_dim or hidden_units[-1])."""

    def __init__(
        self,
        input_dim: int,
        hidden_units: Sequence[int],
        *,
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        output_dim: int | None = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = input_dim
        for units in hidden_units:
            layers.append(nn.Linear(dim, units))
            if batch_norm:
                layers.append(_BatchNormLast(units))
            layers.append(activation(activation_name, units))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            dim = units
        if output_dim is not None:
            layers.append(nn.Linear(dim, output_dim))
            dim = output_dim
        self.net = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _BatchNormLast(nn.Module):
    """BatchNorm over the last dimension of a (..., dim) tensor."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) bool → (B, D): sum over valid positions."""
    return (x * mask.unsqueeze(-1).to(x.dtype)).sum(dim=1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) bool → (B, D): mean over valid positions (0 for empty rows)."""
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)
    return masked_sum(x, mask) / count


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths → (B, L) bool, True at positions < length (right padding)."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class ActivationUnit(nn.Module):
    """DIN's attention: score(h, t) = MLP([h, t, h−t, h⊙t]).

    target (B, D), keys (B, L, D), mask (B, L) → weights (B, L): 0 at padding; with
    ``softmax`` the weights are normalised over the valid positions (DIN itself: no softmax).
    """

    def __init__(
        self,
        dim: int,
        hidden_units: Sequence[int] = (80, 40),
        *,
        activation_name: str = "dice",
        softmax: bool = False,
    ) -> None:
        super().__init__()
        self.mlp = MLP(4 * dim, hidden_units, activation_name=activation_name, output_dim=1)
        self.softmax = softmax

    def forward(self, target: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # The first layer W·[h, t, h−t, h⊙t] + b, with W = [W_h, W_t, W_d, W_p], equals
        # [h, h⊙t]·[W_h + W_d, W_p] + (t·(W_t − W_d) + b): the target part is computed once
        # per row instead of once per history position, and the per-position product is
        # over 2·dim inputs instead of 4·dim (the parameters are the same Linear layer).
        first, rest = self.mlp.net[0], self.mlp.net[1:]
        assert isinstance(first, nn.Linear)
        w_h, w_t, w_d, w_p = first.weight.chunk(4, dim=1)
        per_key = F.linear(
            torch.cat([keys, keys * target.unsqueeze(1)], dim=-1),
            torch.cat([w_h + w_d, w_p], dim=1),
        )
        per_row = F.linear(target, w_t - w_d, first.bias)
        score = rest(per_key + per_row.unsqueeze(1)).squeeze(-1)
        return _normalise(score, mask, self.softmax)


class BilinearAttention(nn.Module):
    """DIEN's attention ``a_t ∝ exp(h_t W e)``: target (B, D), keys (B, L, D), mask (B, L)
    → weights (B, L), softmax over valid positions (all zero for an empty row)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(dim))

    def forward(self, target: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        score = torch.einsum("bld,de,be->bl", keys, self.weight, target)
        return _normalise(score, mask, True)


def _normalise(score: torch.Tensor, mask: torch.Tensor, softmax: bool) -> torch.Tensor:
    if not softmax:
        return score * mask.to(score.dtype)
    score = score.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(score, dim=-1)
    return torch.nan_to_num(weights, nan=0.0)  # rows without any valid position


class FMInteraction(nn.Module):
    """FM second-order term ``Σ_{i<j} <v_i, v_j>``: (B, F, D) → (B,)."""

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        square_of_sum = fields.sum(dim=1).pow(2)
        sum_of_square = fields.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=-1)


class AUGRU(nn.Module):
    """GRU with an attentional update gate (DIEN): ``u'_t = a_t·u_t``,
    ``h_t = (1−u'_t)⊙h_{t−1} + u'_t⊙h̃_t``; padded steps keep the state.

    inputs (B, L, D), attention (B, L), mask (B, L) → final state (B, H) at each row's last
    valid step (zeros for an empty row).
    """

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.x2h = nn.Linear(input_dim, 3 * hidden_dim)
        self.h2h = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.hidden_dim = hidden_dim

    def forward(
        self, inputs: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        b, steps, _ = inputs.shape
        gates_x = self.x2h(inputs)  # (B, L, 3H)
        h = inputs.new_zeros(b, self.hidden_dim)
        for t in range(steps):
            xu, xr, xn = gates_x[:, t].chunk(3, dim=-1)
            hu, hr, hn = self.h2h(h).chunk(3, dim=-1)
            update = torch.sigmoid(xu + hu) * attention[:, t : t + 1]
            reset = torch.sigmoid(xr + hr)
            candidate = torch.tanh(xn + reset * hn)
            new = (1 - update) * h + update * candidate
            h = torch.where(mask[:, t : t + 1], new, h)
        return h
