"""The one trainer: mini-batch training over pre-built tensors, early stopping on
validation AUC, checkpoints holding the full state, exact resume.

Exactness: the order of epoch ``e`` is ``numpy.random.default_rng([seed, e])
.permutation(n)``, so a position (epoch, step) fixes the remaining batches; the
checkpoint holds the model, the optimiser, the torch/NumPy/Python RNG states (dropout,
DIEN's negative sampling), the position, the running epoch loss, the best score and
weights and the early-stopping counter. A run resumed from a checkpoint therefore ends
with the same weights and metrics as an uninterrupted one (same machine, same thread
count).

Files in ``checkpoint_dir``: ``last.pt`` (the latest state, written every
``checkpoint_every`` steps and at each epoch end) and ``best.pt`` (the best weights).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from knowrec.config import Section
from knowrec.errors import ConfigError
from knowrec.features import Samples
from knowrec.metrics import auc, log_loss
from knowrec.models.adapter import JointLoss
from knowrec.models.base import CTRModel
from knowrec.progress import progress_bar
from knowrec.train.checkpoint import load, rng_state, save_atomic, seed_everything, set_rng_state

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
# Settings that change the trajectory: a resume must use the same ones.
_TRAJECTORY = ("batch_size", "lr", "optimizer", "weight_decay", "seed", "grad_clip")


class TrainConfig(Section):
    """Training settings (TRAWL's published ones: batch 256, lr 1e-4).

    ``patience``: epochs without a validation-AUC gain (> ``min_delta``) before stopping,
    0 = never stop early. ``checkpoint_every``: also checkpoint every N steps (0 = at
    epoch ends only). ``weight_decay`` applies to the network weights, not the embedding
    tables (those have :attr:`EmbeddingConfig.l2`). ``threads``: torch intra-op threads.
    An epoch's last batch is dropped when it would hold a single row (BatchNorm/Dice need
    two).
    """

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-4, gt=0)
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    seed: int = 0
    patience: int = Field(2, ge=0)
    min_delta: float = Field(0.0, ge=0)
    restore_best: bool = True
    checkpoint_every: int = Field(0, ge=0)
    eval_batch_size: int = Field(8192, ge=1)
    progress: bool = True
    threads: int | None = Field(None, ge=1)


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did. ``history``: one dict per finished epoch."""

    best_epoch: int = -1
    best_score: float = -math.inf
    history: list[dict[str, float]] = field(default_factory=list)
    global_step: int = 0
    stopped_early: bool = False
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _State:
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    loss_sum: float = 0.0
    loss_rows: int = 0
    bad_epochs: int = 0
    finished: bool = False
    result: FitResult = field(default_factory=FitResult)


class Trainer:
    """Fits a :class:`CTRModel` with a :class:`JointLoss` (default: BCE + the model's own
    auxiliary and regularisation terms)."""

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
        self.loss = loss or JointLoss()
        self.loss.check(model)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.optimizer = self._optimizer()
        self._best_weights: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        train: Samples,
        valid: Samples | None = None,
        *,
        resume: bool = False,
        on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
        stop_after_steps: int | None = None,
    ) -> FitResult:
        """Train; with ``resume`` continue from ``checkpoint_dir/last.pt`` when it exists.

        Hooks: ``on_checkpoint(info)`` runs after each checkpoint write (info: epoch,
        step, global_step, path); ``stop_after_steps`` returns after that many global
        steps as if the process had been killed there (``interrupted=True``, nothing
        extra written) — for tests and debugging.
        """
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if len(train) < 2:
            raise ConfigError("training needs at least 2 samples")
        if "label" not in train.tensors or (valid is not None and "label" not in valid.tensors):
            raise ConfigError("training and validation samples need labels")
        self._n_train = len(train)
        state = _State()
        if resume:
            state = self._restore(len(train))
        else:
            seed_everything(cfg.seed)
        if state.finished:
            logger.info("checkpoint says training finished; nothing to do")
            return state.result

        n = len(train)
        steps_per_epoch = n // cfg.batch_size + (1 if n % cfg.batch_size >= 2 else 0)
        self.model.train()
        while state.epoch < cfg.epochs:
            epoch = state.epoch
            order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
            started = time.perf_counter()
            rows_this_run = 0
            with progress_bar(
                f"epoch {epoch + 1}/{cfg.epochs}", steps_per_epoch, enabled=cfg.progress
            ) as bar:
                bar.advance(state.step)
                while state.step < steps_per_epoch:
                    index = order[state.step * cfg.batch_size : (state.step + 1) * cfg.batch_size]
                    loss = self._train_step(train.batch(index))
                    state.loss_sum += loss * len(index)
                    state.loss_rows += len(index)
                    rows_this_run += len(index)
                    state.step += 1
                    state.global_step += 1
                    bar.advance()
                    if stop_after_steps is not None and state.global_step >= stop_after_steps:
                        state.result.global_step = state.global_step
                        state.result.interrupted = True
                        return state.result
                    every = cfg.checkpoint_every
                    if every and state.global_step % every == 0 and state.step < steps_per_epoch:
                        self._checkpoint(state, on_checkpoint)
            train_seconds = time.perf_counter() - started
            self._end_epoch(state, valid, train_seconds, rows_this_run)
            self._checkpoint(state, on_checkpoint)
            if state.finished:
                break
        if not state.finished:
            state.finished = True
            self._finish(state)
            self._checkpoint(state, on_checkpoint)
        return state.result

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

    # ------------------------------------------------------------------ internals
    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        tables = {id(m.weight) for m in self.model.modules() if isinstance(m, nn.Embedding)}
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if id(p) in tables], "weight_decay": 0.0},
            {
                "params": [p for p in params if id(p) not in tables],
                "weight_decay": cfg.weight_decay,
            },
        ]
        groups = [g for g in groups if g["params"]]
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        try:  # the fused CPU kernel is ~4x faster than the per-tensor loop
            return cls(groups, lr=cfg.lr, fused=True)
        except (RuntimeError, TypeError):  # pragma: no cover - older torch or dtype
            return cls(groups, lr=cfg.lr)

    def _train_step(self, batch: dict[str, torch.Tensor]) -> float:
        output = self.model(batch)
        loss, _parts = self.loss(self.model, batch, output)
        if not torch.isfinite(loss):
            raise ConfigError(f"training loss is {loss.item()}: lower the learning rate?")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return float(loss.detach())

    def _end_epoch(
        self, state: _State, valid: Samples | None, train_seconds: float, rows: int
    ) -> None:
        cfg = self.config
        result = state.result
        record: dict[str, float] = {
            "epoch": state.epoch + 1,
            "train_loss": state.loss_sum / max(state.loss_rows, 1),
            "train_seconds": train_seconds,
            "samples_per_s": rows / train_seconds if train_seconds > 0 else float("nan"),
        }
        t0 = time.perf_counter()
        if valid is not None:
            metrics = self.evaluate(valid)
            record |= {"valid_auc": metrics["auc"], "valid_logloss": metrics["logloss"]}
            score = metrics["auc"]
        else:
            score = -record["train_loss"]
        record["eval_seconds"] = time.perf_counter() - t0
        result.history.append(record)
        if score > result.best_score + cfg.min_delta or result.best_epoch < 0:
            result.best_score, result.best_epoch = score, state.epoch + 1
            state.bad_epochs = 0
            self._best_weights = copy.deepcopy(self.model.state_dict())
            if self.checkpoint_dir is not None:
                save_atomic(self._best_weights, self.checkpoint_dir / "best.pt")
        else:
            state.bad_epochs += 1
        logger.info(
            "epoch %d: loss %.4f, valid AUC %s, %.0f samples/s",
            state.epoch + 1,
            record["train_loss"],
            f"{record['valid_auc']:.4f}" if "valid_auc" in record else "-",
            record["samples_per_s"],
        )
        state.epoch += 1
        state.step = 0
        state.loss_sum, state.loss_rows = 0.0, 0
        result.global_step = state.global_step
        if cfg.patience and state.bad_epochs >= cfg.patience and state.epoch < cfg.epochs:
            result.stopped_early = True
            state.finished = True
            self._finish(state)

    def _finish(self, state: _State) -> None:
        if self.config.restore_best and self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)
        state.result.global_step = state.global_step

    def _checkpoint(self, state: _State, hook: Callable[[dict[str, Any]], None] | None) -> None:
        if self.checkpoint_dir is None:
            return
        path = self.checkpoint_dir / "last.pt"
        save_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "config": self.config.model_dump(),
                "model_params": {k: repr(v) for k, v in self.model.get_params().items()},
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": rng_state(),
                "epoch": state.epoch,
                "step": state.step,
                "global_step": state.global_step,
                "loss_sum": state.loss_sum,
                "loss_rows": state.loss_rows,
                "bad_epochs": state.bad_epochs,
                "finished": state.finished,
                "result": state.result.to_dict(),
                "n_train": self._n_train,
            },
            path,
        )
        if hook is not None:
            hook(
                {
                    "epoch": state.epoch,
                    "step": state.step,
                    "global_step": state.global_step,
                    "path": path,
                }
            )

    _n_train: int = 0

    def _restore(self, n_train: int) -> _State:
        if self.checkpoint_dir is None:
            raise ConfigError("resume=True needs a checkpoint_dir")
        path = self.checkpoint_dir / "last.pt"
        if not path.exists():
            logger.info("no checkpoint in %s: starting from scratch", self.checkpoint_dir)
            seed_everything(self.config.seed)
            return _State()
        ck = load(path)
        if ck.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{path}: checkpoint format {ck.get('format')} is not supported")
        saved = ck["config"]
        changed = [k for k in _TRAJECTORY if saved.get(k) != getattr(self.config, k)]
        if changed:
            was = ", ".join(f"{k}={saved.get(k)}" for k in changed)
            raise ConfigError(
                f"{path}: cannot resume with different {', '.join(changed)} (checkpoint: {was})"
            )
        if ck["n_train"] != n_train:
            raise ConfigError(
                f"{path}: the checkpoint was trained on {ck['n_train']} samples, not {n_train}"
            )
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        best = self.checkpoint_dir / "best.pt"
        self._best_weights = load(best) if best.exists() else None
        r = ck["result"]
        state = _State(
            epoch=ck["epoch"],
            step=ck["step"],
            global_step=ck["global_step"],
            loss_sum=ck["loss_sum"],
            loss_rows=ck["loss_rows"],
            bad_epochs=ck["bad_epochs"],
            finished=ck["finished"],
            result=FitResult(**r),
        )
        logger.info("resumed at epoch %d, step %d", state.epoch + 1, state.step)
        return state
