"""The trainer: exact resume after a real kill, early stopping, checkpoint contents."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from knowrec.errors import ConfigError
from knowrec.models import JointLoss, build_backbone
from knowrec.train import Batches, CTRTrainer, TrainConfig, Trainer, seed_everything
from knowrec.train.checkpoint import load
from tests.toy_ctr import same_state, toy_data

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
# DIEN with adapted knowledge, dropout, id dropout and both contrastive terms: every
# consumer of randomness (shuffling, dropout, negative sampling, id dropout) is exercised.
EMBEDDING = {"dim": 8, "knowledge": "adapter", "adapter_dim": 8, "l2": 1e-5}
EMBEDDING |= {"user_id_dropout": 0.3, "adapter_dropout": 0.1}
PARAMS = {"dropout": 0.1, "aux_weight": 0.5, "mlp_units": (16,)}
CONFIG = {"epochs": 3, "batch_size": 64, "lr": 3e-3, "patience": 2, "progress": False}

CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
from tests.test_train import build
from pathlib import Path

trainer, data = build(Path({ckpt!r}), checkpoint_every=4)

def pause(info):
    if info["global_step"] >= 20 and info["step"] > 0:  # mid-epoch, after one evaluation
        Path({marker!r}).write_text(str(info["global_step"]))
        time.sleep(600)  # the parent kills us here

trainer.fit(data["train"], data["valid"], on_checkpoint=pause)
"""


def build(checkpoint_dir: Path | None, **config: object) -> tuple[CTRTrainer, dict]:
    """The same trainer and data in every process."""
    fmap, data = toy_data(n=1200)
    partners_u = fmap.partner_index("user", {f"u{k}": f"u{(k + 1) % 150}" for k in range(150)})
    partners_i = fmap.partner_index("item", {f"i{k}": f"i{(k + 7) % 100}" for k in range(100)})
    seed_everything(0)
    model = build_backbone("dien", fmap, embedding=EMBEDDING, **PARAMS)
    loss = JointLoss(w_uu=0.004, w_ii=0.008, user_partners=partners_u, item_partners=partners_i)
    trainer = CTRTrainer(
        model, TrainConfig(**(CONFIG | config)), loss=loss, checkpoint_dir=checkpoint_dir
    )
    return trainer, data


def _untimed(history: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in h.items() if "seconds" not in k and "per_s" not in k} for h in history
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    trainer, data = build(tmp_path_factory.mktemp("straight"), checkpoint_every=4)
    result = trainer.fit(data["train"], data["valid"])
    return result, trainer.model.state_dict(), trainer.predict(data["valid"])


def test_resume_after_sigkill_is_identical(tmp_path: Path, uninterrupted: tuple) -> None:
    ckpt, marker = tmp_path / "ckpt", tmp_path / "paused"
    script = CHILD.format(root=str(ROOT), ckpt=str(ckpt), marker=str(marker))
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, "the training process ended before its checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    state = load(ckpt / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 5, 20)
    assert not state["finished"] and (ckpt / "best.pt").exists()

    trainer, data = build(ckpt, checkpoint_every=4)
    resumed = trainer.fit(data["train"], data["valid"], resume=True)
    result, weights, predictions = uninterrupted
    assert same_state(trainer.model.state_dict(), weights)
    assert torch.equal(
        torch.from_numpy(trainer.predict(data["valid"])), torch.from_numpy(predictions)
    )
    assert _untimed(resumed.history) == _untimed(result.history)
    assert (resumed.best_epoch, resumed.best_score) == (result.best_epoch, result.best_score)
    assert resumed.global_step == result.global_step == 3 * 15


def test_stop_hook_and_resume_in_process(tmp_path: Path, uninterrupted: tuple) -> None:
    trainer, data = build(tmp_path, checkpoint_every=4)
    part = trainer.fit(data["train"], data["valid"], stop_after_steps=26)
    assert part.interrupted and part.global_step == 26
    trainer, data = build(tmp_path, checkpoint_every=4)  # a fresh process would do this
    resumed = trainer.fit(data["train"], data["valid"], resume=True)  # from step 24
    result, weights, _ = uninterrupted
    assert same_state(trainer.model.state_dict(), weights)
    assert _untimed(resumed.history) == _untimed(result.history)
    # a finished run resumes to its result without training
    again = trainer.fit(data["train"], data["valid"], resume=True)
    assert again.history == resumed.history


def test_checkpoint_holds_the_full_state(tmp_path: Path) -> None:
    trainer, data = build(tmp_path, checkpoint_every=5, epochs=1)
    trainer.fit(data["train"], data["valid"], stop_after_steps=12)
    state = load(tmp_path / "last.pt")
    for key in ("model", "optimizer", "rng", "epoch", "step", "global_step", "bad_epochs"):
        assert key in state
    assert set(state["rng"]) == {"torch", "numpy", "python"}
    assert state["model_params"]["backbone"] == "dien"  # the config as data, not repr
    assert state["model_params"]["mlp_units"] == [16]
    assert state["result"]["best_score"] == float("-inf")
    assert (state["epoch"], state["step"]) == (0, 10)
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files
    trainer, data = build(tmp_path, checkpoint_every=5, epochs=1, batch_size=32)
    with pytest.raises(ConfigError, match="different batch_size"):
        trainer.fit(data["train"], data["valid"], resume=True)


def test_early_stopping_restores_the_best_weights(tmp_path: Path) -> None:
    trainer, data = build(tmp_path, epochs=10, patience=1, min_delta=0.5)
    result = trainer.fit(data["train"], data["valid"])
    assert result.stopped_early and len(result.history) == 2 and result.best_epoch == 1
    assert same_state(trainer.model.state_dict(), load(tmp_path / "best.pt"))


def test_same_seed_same_run_other_seed_other_run() -> None:
    runs = []
    for seed in (0, 0, 1):
        trainer, data = build(None, epochs=1, seed=seed)
        trainer.fit(data["train"])
        runs.append(trainer.model.state_dict())
    assert same_state(runs[0], runs[1]) and not same_state(runs[0], runs[2])


class _Mean(nn.Module):
    """A model that is its own Trainable: one weight pulled to the mean row number of a
    batch; batches of fewer than 3 rows have nothing to learn from."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def loss(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        if len(index) < 3:
            return {}
        target = torch.tensor(float(index.mean()))
        return {"loss": (self.w - target) ** 2, "target": target}


def test_any_trainable_with_warm_up_and_linear_decay() -> None:
    config = TrainConfig(epochs=2, lr=0.5, schedule="linear", warmup=0.3, progress=False)
    trainer = Trainer(_Mean(), config)
    result = trainer.fit(Batches.shuffled(10, 4, seed=0))  # batches of 4, 4 and 2 rows
    assert result.global_step == 6 and [s["epoch"] for s in result.steps] == [1, 1, 2, 2]
    assert set(result.steps[0]) == {"epoch", "loss", "target"}
    # linear decay over the 6 planned steps; the 2 skipped batches did not advance it
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * (6 - 4) / (6 - 1))
    assert result.steps[-1]["loss"] < result.steps[0]["loss"]


def test_trainer_mistakes_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"Linear has no loss\(batch\) method"):
        Trainer(nn.Linear(2, 1))

    class NoLoss:
        def loss(self, batch: np.ndarray) -> dict[str, torch.Tensor]:
            return {"mse": torch.zeros((), requires_grad=True)}

    trainer = Trainer(nn.Linear(2, 1), TrainConfig(progress=False), objective=NoLoss())
    with pytest.raises(ConfigError, match=r"gave \['mse'\]: no 'loss' entry"):
        trainer.fit(Batches.shuffled(8, 4, seed=0))
