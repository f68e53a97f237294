"""Training settings, validated without importing torch (configs check them at load)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from knowrec.config import Section


class TrainConfig(Section):
    """Training settings (defaults: TRAWL's published ones, batch 256, lr 1e-4).

    ``patience``: epochs without a gain of the monitored validation metric (> ``min_delta``)
    before stopping, 0 = never stop early. ``monitor``: that metric, a key of what
    ``validate()`` returns (higher is better). ``schedule``: the learning rate after a
    linear warm-up over the first ``warmup`` share of the steps: ``constant``,
    ``linear`` decay to 0 at the last step, or ``cosine`` decay to 0.
    ``checkpoint_every``: also checkpoint every N steps (0 = at epoch ends only).
    ``weight_decay``: the optimiser's default (a parameter group may set its own).
    ``threads``: torch intra-op threads while training.
    ``batch_size`` and ``eval_batch_size`` are read by whoever makes the batches.
    """

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-4, gt=0)
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0)
    seed: int = 0
    patience: int = Field(2, ge=0)
    monitor: str = "auc"
    min_delta: float = Field(0.0, ge=0)
    restore_best: bool = True
    checkpoint_every: int = Field(0, ge=0)
    eval_batch_size: int = Field(8192, ge=1)
    progress: bool = True
    threads: int | None = Field(None, ge=1)
