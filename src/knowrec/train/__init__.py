"""Training: one trainer for every torch model (early stopping, full-state checkpoints,
exact resume) and its set-up for CTR models."""

from knowrec.train.checkpoint import seed_everything, torch_threads
from knowrec.train.ctr import CTRObjective, CTRTrainer
from knowrec.train.trainer import Batches, FitResult, Trainable, TrainConfig, Trainer

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
