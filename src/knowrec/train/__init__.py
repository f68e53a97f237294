"""Training: one trainer for every torch model (early stopping, full-state checkpoints,
exact resume) and its set-up for CTR models. ``TrainConfig`` imports without torch; the
rest loads on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from knowrec.lazy import lazy_exports
from knowrec.train.config import TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from knowrec.train.checkpoint import seed_everything, torch_threads
    from knowrec.train.ctr import CTRObjective, CTRTrainer
    from knowrec.train.trainer import Batches, FitResult, Trainable, Trainer

_WHERE = {
    "seed_everything": "checkpoint",
    "torch_threads": "checkpoint",
    "CTRObjective": "ctr",
    "CTRTrainer": "ctr",
    "Batches": "trainer",
    "FitResult": "trainer",
    "Trainable": "trainer",
    "Trainer": "trainer",
}

__getattr__ = lazy_exports(__name__, _WHERE)


__all__ = [
    "Batches",
    "CTRObjective",
    "CTRTrainer",
    "FitResult",
    "TrainConfig",
    "Trainable",
    "Trainer",
    "seed_everything",
    "torch_threads",
]
