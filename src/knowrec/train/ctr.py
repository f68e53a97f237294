"""The :class:`~knowrec.train.Trainer` set up for a CTR model (TRAWL): shuffled row
batches of :class:`~knowrec.models.features.Samples`, the :class:`JointLoss`, validation AUC."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from knowrec.errors import ConfigError
from knowrec.metrics import auc, log_loss
from knowrec.models.adapter import JointLoss
from knowrec.models.base import CTRModel
from knowrec.models.features import Samples
from knowrec.train.trainer import Batches, FitResult, TrainConfig, Trainer


class CTRObjective:
    """The Trainable of a CTR model: :class:`JointLoss` (default: BCE plus the model's own
    auxiliary and regularisation terms) on a batch of samples."""

    def __init__(self, model: CTRModel, loss: JointLoss | None = None) -> None:
        self.model = model
        self.joint = loss or JointLoss()
        self.joint.check(model)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        total, parts = self.joint(self.model, batch, self.model(batch))
        return {"loss": total, **parts}


class CTRTrainer:
    """Fits a :class:`CTRModel`; ``predict``/``evaluate`` give click probabilities and
    AUC/LogLoss. ``model_params`` in the checkpoints: the backbone name and its
    ``get_params()`` as JSON data. Weight decay spares the embedding tables (those have
    :attr:`EmbeddingConfig.l2`)."""

    def __init__(
        self,
        model: CTRModel,
        config: TrainConfig | None = None,
        *,
        loss: JointLoss | None = None,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        self.model = model
        self.config = config or TrainConfig()
        tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
        trained = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trained if id(p) in tables], "weight_decay": 0.0},
            {"params": [p for p in trained if id(p) not in tables]},
        ]
        self.trainer = Trainer(
            model,
            self.config,
            objective=CTRObjective(model, loss),
            param_groups=groups,
            params={"backbone": model.name, **model.get_params()},
            checkpoint_dir=checkpoint_dir,
            name=f"{model.name} training",
        )

    def fit(
        self,
        train: Samples,
        valid: Samples | None = None,
        *,
        resume: bool = False,
        on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
        stop_after_steps: int | None = None,
    ) -> FitResult:
        """Train on ``train``, early-stopping on the AUC of ``valid``; the keywords are
        :meth:`Trainer.fit`'s."""
        if len(train) < 2:
            raise ConfigError("training needs at least 2 samples")
        if "label" not in train.tensors or (valid is not None and "label" not in valid.tensors):
            raise ConfigError("training and validation samples need labels")
        cfg = self.config
        batches = Batches.shuffled(len(train), cfg.batch_size, cfg.seed, train.batch)
        return self.trainer.fit(
            batches,
            validate=None if valid is None else partial(self.evaluate, valid),
            resume=resume,
            on_checkpoint=on_checkpoint,
            stop_after_steps=stop_after_steps,
        )

    @torch.no_grad()
    def predict(self, samples: Samples) -> np.ndarray:
        """Click probabilities (n,) float64, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        out = []
        bs = self.config.eval_batch_size
        for start in range(0, len(samples), bs):
            batch = samples.batch(slice(start, start + bs))
            out.append(torch.sigmoid(self.model(batch).logit).double().numpy())
        self.model.train(was_training)
        return np.concatenate(out) if out else np.zeros(0)

    def evaluate(self, samples: Samples) -> dict[str, float]:
        """AUC and LogLoss on labelled samples."""
        p = self.predict(samples)
        y = samples.labels
        return {"auc": auc(y, p), "logloss": log_loss(y, p)}
