"""Training: one trainer with early stopping, full-state checkpoints and exact resume."""

from knowrec.train.checkpoint import seed_everything, torch_threads
from knowrec.train.trainer import FitResult, TrainConfig, Trainer

__all__ = ["FitResult", "TrainConfig", "Trainer", "seed_everything", "torch_threads"]
