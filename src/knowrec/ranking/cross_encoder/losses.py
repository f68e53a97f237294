"""The cross-encoder's losses: pairwise softmax on clicks, (symmetric) cross-entropy on
quality labels, MSE to the teachers, and their weighted sum (:class:`MultitaskLoss`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch.nn import functional as F

from knowrec.errors import DataFormatError

N_CLASSES = 5  # quality classes 0–4
Mode = Literal["distill", "direct"]
QualityLoss = Literal["sce", "ce"]
HEADS = ("click", "quality")
_LOG_ZERO = -4.0  # SCE: the value of log 0 in the reverse cross-entropy


# ----------------------------------------------------------------------------- losses


def soft_labels(labels: ArrayLike) -> np.ndarray:
    """Labels in [0, 4] → (n, 5) targets with the mass split between the two nearest
    classes (2.3 → p2 = 0.7, p3 = 0.3; an integer label is one-hot). NaN → a NaN row."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    out = np.zeros((y.size, N_CLASSES))
    ok = np.isfinite(y)
    if ((y[ok] < 0) | (y[ok] > N_CLASSES - 1)).any():
        raise DataFormatError(f"quality labels must lie in [0, {N_CLASSES - 1}]")
    lo = np.floor(y[ok]).astype(np.int64)
    frac = y[ok] - lo
    hi = np.minimum(lo + 1, N_CLASSES - 1)
    rows = np.flatnonzero(ok)
    np.add.at(out, (rows, lo), 1.0 - frac)
    np.add.at(out, (rows, hi), frac)
    out[~ok] = np.nan
    return out


def pairwise_click_loss(
    scores: torch.Tensor, groups: torch.Tensor, clicks: torch.Tensor
) -> torch.Tensor | None:
    """Weighted mean of ``softplus(s− − s+)`` over (clicked, not-clicked) row pairs of the
    same group, each weighted by ``log(1 + clicks+)``; None when the batch has no pair.

    ``scores``: (B,) click logits; ``groups``: (B,) group codes; ``clicks``: (B,) click
    counts (0 = not clicked, NaN = no click information)."""
    pos = clicks > 0
    neg = clicks == 0
    pairs = (groups[:, None] == groups[None, :]) & pos[:, None] & neg[None, :]
    weight = torch.log1p(torch.nan_to_num(clicks, nan=0.0).clamp_min(0))[:, None] * pairs
    total = weight.sum()
    if total <= 0:
        return None
    return (weight * F.softplus(scores[None, :] - scores[:, None])).sum() / total


def quality_label_loss(
    logits: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, beta: float = 0.0
) -> torch.Tensor:
    """Per-row ``α·CE(target, p) + β·RCE`` with ``RCE = −Σ p·log(target)`` where
    ``log 0`` is taken as −4 (symmetric cross-entropy, Wang et al. 2019; β = 0 is plain
    soft cross-entropy).

    ``logits``: (B, 5); ``target``: (B, 5) label distributions."""
    logp = F.log_softmax(logits, dim=-1)
    loss = -(target * logp).sum(-1) * alpha
    if beta:
        rce = -(logp.exp() * torch.log(target).clamp_min(_LOG_ZERO)).sum(-1)
        loss = loss + beta * rce
    return loss


def expected_label(logits: torch.Tensor) -> torch.Tensor:
    """(B, 5) quality logits → (B,) expected label ``Σ l·p(l)`` in [0, 4]."""
    labels = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return F.softmax(logits, dim=-1) @ labels


# ----------------------------------------------------------------------------- model


class MultitaskLoss:
    """The loss of one batch: the terms that have at least one target row, weighted by
    head (``head_weights``) and, in distill mode, ``label_weight`` on the label terms."""

    def __init__(
        self,
        *,
        mode: Mode,
        head_weights: Mapping[str, float],
        label_weight: float,
        quality_loss: QualityLoss,
        sce_alpha: float,
        sce_beta: float,
    ) -> None:
        lw = label_weight if mode == "distill" else 1.0
        self.weights = {
            "click_pair": head_weights["click"] * lw,
            "click_mse": head_weights["click"],
            "quality_label": head_weights["quality"] * lw,
            "quality_mse": head_weights["quality"],
        }
        self.alpha, self.beta = (sce_alpha, sce_beta) if quality_loss == "sce" else (1.0, 0.0)

    def terms(
        self,
        click: torch.Tensor,
        quality: torch.Tensor,
        targets: Mapping[str, torch.Tensor],
        groups: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """The loss terms of a batch: ``click`` (B,) and ``quality`` (B, 5) head outputs,
        ``targets`` (B,) or (B, 5) with NaN where a row has none, ``groups`` (B,)."""
        terms: dict[str, torch.Tensor] = {}
        if "click" in targets:
            pair = pairwise_click_loss(click, groups, targets["click"])
            if pair is not None:
                terms["click_pair"] = pair
        if "click_teacher" in targets:
            t = targets["click_teacher"]
            ok = torch.isfinite(t)
            if ok.any():
                terms["click_mse"] = F.mse_loss(click[ok], t[ok])
        if "quality" in targets:
            t = targets["quality"]
            ok = torch.isfinite(t).all(dim=1)
            if ok.any():
                terms["quality_label"] = quality_label_loss(
                    quality[ok], t[ok], alpha=self.alpha, beta=self.beta
                ).mean()
        if "quality_teacher" in targets:
            t = targets["quality_teacher"]
            ok = torch.isfinite(t).all(dim=1)
            if ok.any():
                p = F.softmax(quality[ok], dim=-1)
                terms["quality_mse"] = ((p - t[ok]) ** 2).sum(-1).mean()
        return terms

    def total(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """The weighted sum of ``terms`` (None: no term with a weight > 0)."""
        parts = [self.weights[k] * v for k, v in terms.items() if self.weights[k] > 0]
        return torch.stack(parts).sum() if parts else None
