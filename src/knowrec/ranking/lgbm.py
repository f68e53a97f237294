"""LightGBM rankers for the Explore Further stack (docs/explore.md and stage 2b).

One class for both stages: the features are named columns of a pairs frame, so stage 2b
is stage 1 with more names (cross-encoder head scores, quality)::

    ranker = LGBMRanker(features=names, objective="lambdarank")
    ranker.fit(train_frame, label="clicked", group="group")
    scores = ranker.predict(test_frame)
    ranker.save("runs/x/stage1"); LGBMRanker.load("runs/x/stage1")
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl

from knowrec.errors import ConfigError, DataFormatError
from knowrec.registry import RANKERS

log = logging.getLogger(__name__)

OBJECTIVES = ("lambdarank", "rank_xendcg", "binary", "regression")
MODEL_START = b"tree\n"  # how LightGBM's text model begins
MODEL_TREES_END = "end of trees"
POINTWISE = ("binary", "regression")  # no groups needed


def make_ranker(kind: str, **params: Any) -> Any:
    """A ranker by registry name (``lgbm``, ``cross_encoder``; see
    :data:`knowrec.registry.RANKERS`); unknown names and parameters list the known ones."""
    return RANKERS.build(kind, **params)


def _matrix(frame: pl.DataFrame, features: Sequence[str]) -> np.ndarray:
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ConfigError(f"ranker: feature column(s) {missing} missing; frame has {frame.columns}")
    try:
        return frame.select(pl.col(c).cast(pl.Float64) for c in features).to_numpy()
    except pl.exceptions.PolarsError as exc:
        raise DataFormatError(f"ranker: features must be numeric: {exc}") from None


class LGBMRanker:
    """A LightGBM ranker over named feature columns (missing values allowed).

    ``objective``: ``lambdarank`` (listwise, NDCG), ``rank_xendcg``, ``binary``
    (pointwise click probability) or ``regression`` (pointwise L2 on a continuous label,
    e.g. the judge's expected 0–4 score). Groups (one per impression) are required for
    the ranking objectives; rows need not be sorted.

    ``min_data_in_bin``: LightGBM bins each feature so that every bin holds at least this
    many training rows (LightGBM's default, 3). With fewer than ``2 * min_data_in_bin`` rows
    a feature has a single bin and no threshold to split at, whatever
    ``min_child_samples``; only the splits that set missing values or zeros apart remain,
    so a model fitted on a handful of rows (e.g. a few judged label pairs) comes out
    constant, or splits on whether a count is zero. Set it to 1 for such small label sets.
    """

    def __init__(
        self,
        features: Sequence[str],
        *,
        objective: str = "lambdarank",
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        min_data_in_bin: int = 3,
        feature_fraction: float = 1.0,
        bagging_fraction: float = 1.0,
        lambda_l2: float = 0.0,
        eval_at: int = 5,
        early_stopping_rounds: int | None = None,
        num_threads: int = 1,
        seed: int = 0,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ConfigError(f"ranker objective {objective!r}: known are {', '.join(OBJECTIVES)}")
        if not features:
            raise ConfigError("ranker: need at least one feature")
        if min_data_in_bin < 1:
            raise ConfigError(f"ranker: min_data_in_bin must be at least 1, got {min_data_in_bin}")
        if len(set(features)) != len(features):
            raise ConfigError(f"ranker: duplicate feature names in {list(features)}")
        self.features = list(features)
        self.objective, self.n_estimators, self.learning_rate = (
            objective,
            n_estimators,
            learning_rate,
        )
        self.num_leaves, self.min_child_samples = num_leaves, min_child_samples
        self.min_data_in_bin = min_data_in_bin
        self.feature_fraction, self.bagging_fraction = feature_fraction, bagging_fraction
        self.lambda_l2, self.eval_at = lambda_l2, eval_at
        self.early_stopping_rounds, self.num_threads, self.seed = (
            early_stopping_rounds,
            num_threads,
            seed,
        )
        self.booster: Any = None
        self.best_iteration: int | None = None

    def lgb_params(self) -> dict[str, Any]:
        """The LightGBM parameter dict used for training."""
        params: dict[str, Any] = {
            "objective": self.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "min_data_in_bin": self.min_data_in_bin,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if self.bagging_fraction < 1.0:
            params.update(bagging_fraction=self.bagging_fraction, bagging_freq=1)
        if self.objective == "binary":
            params["metric"] = "auc"
        elif self.objective == "regression":
            params["metric"] = "l2"
        else:
            params.update(metric="ndcg", eval_at=[self.eval_at])
        return params

    def _dataset(self, frame: pl.DataFrame, label: str, group: str | None) -> Any:
        import lightgbm as lgb

        if label not in frame.columns:
            raise ConfigError(f"ranker: label column {label!r} missing; frame has {frame.columns}")
        if frame.is_empty():
            raise ConfigError("ranker: no training rows")
        sizes = None
        if self.objective not in POINTWISE:
            if group is None or group not in frame.columns:
                raise ConfigError(f"ranker objective {self.objective!r} needs a group column")
            frame = frame.sort(group, maintain_order=True)
            sizes = frame.group_by(group, maintain_order=True).len()["len"].to_numpy()
        y = frame[label].cast(pl.Float64).to_numpy()
        if np.isnan(y).any() or (y < 0).any():
            raise DataFormatError(f"ranker: label {label!r} must be non-negative, without nulls")
        return lgb.Dataset(
            _matrix(frame, self.features),
            label=y,
            group=sizes,
            feature_name=[_safe(f) for f in self.features],
            free_raw_data=True,
        )

    def fit(
        self,
        frame: pl.DataFrame,
        *,
        label: str = "clicked",
        group: str | None = "group",
        valid: pl.DataFrame | None = None,
    ) -> Self:
        """Train on ``frame``; with ``valid`` and ``early_stopping_rounds`` the booster
        stops at the best validation NDCG@eval_at (AUC for ``binary``, L2 for
        ``regression``)."""
        import lightgbm as lgb

        train = self._dataset(frame, label, group)
        sets, callbacks = [], []
        if valid is not None:
            sets = [self._dataset(valid, label, group)]
            sets[0].reference = train
            if self.early_stopping_rounds:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Found `num_iterations`.*")
            self.booster = lgb.train(
                self.lgb_params(),
                train,
                num_boost_round=self.n_estimators,
                valid_sets=sets,
                callbacks=callbacks,
            )
        self.best_iteration = self.booster.best_iteration or None
        log.info("LightGBM %s: %d trees", self.objective, self.booster.num_trees())
        return self

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Scores in row order (higher ranks first)."""
        if self.booster is None:
            raise ConfigError("ranker is not fitted: call fit() first")
        if frame.is_empty():
            return np.zeros(0)
        return np.asarray(
            self.booster.predict(_matrix(frame, self.features), num_iteration=self.best_iteration),
            dtype=np.float64,
        )

    def feature_importance(self, kind: str = "gain") -> dict[str, float]:
        """Total ``gain`` (or ``split`` count) per feature, largest first."""
        if self.booster is None:
            raise ConfigError("ranker is not fitted: call fit() first")
        values = self.booster.feature_importance(importance_type=kind)
        pairs = sorted(zip(self.features, values, strict=True), key=lambda p: -p[1])
        return {f: float(v) for f, v in pairs}

    def get_params(self) -> dict[str, Any]:
        names = [
            "objective", "n_estimators", "learning_rate", "num_leaves", "min_child_samples",
            "min_data_in_bin", "feature_fraction", "bagging_fraction", "lambda_l2", "eval_at",
            "early_stopping_rounds", "num_threads", "seed",
        ]  # fmt: skip
        return {"features": self.features, **{n: getattr(self, n) for n in names}}

    def save(self, directory: str | Path) -> Path:
        """``model.txt`` (the booster) and ``ranker.json`` (features, parameters, versions)."""
        import lightgbm as lgb

        if self.booster is None:
            raise ConfigError("ranker is not fitted: nothing to save")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(out / "model.txt"), num_iteration=self.best_iteration)
        meta = {"class": "LGBMRanker", "lightgbm": lgb.__version__, "params": self.get_params()}
        tmp = out / "ranker.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, out / "ranker.json")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> LGBMRanker:
        import lightgbm as lgb

        src = Path(directory)
        try:
            meta = json.loads((src / "ranker.json").read_text())
            booster = lgb.Booster(model_str=model_text(src / "model.txt"))
        except (OSError, ValueError, lgb.basic.LightGBMError) as exc:
            raise DataFormatError(f"not a saved ranker: {exc}", path=src) from None
        if meta.get("lightgbm") != lgb.__version__:
            log.warning(
                "ranker saved with LightGBM %s, loaded with %s",
                meta.get("lightgbm"),
                lgb.__version__,
            )
        params = dict(meta["params"])
        ranker = cls(params.pop("features"), **params)
        ranker.booster = booster
        return ranker


def model_text(path: Path) -> str:
    """A saved booster's text; a :class:`DataFormatError` when it is cut short before the
    end of its trees (LightGBM itself crashes the process on some such files)."""
    text = path.read_text()
    if MODEL_TREES_END not in text:
        raise DataFormatError(f"cut short: no '{MODEL_TREES_END}' (a LightGBM model)", path=path)
    return text


def _safe(name: str) -> str:
    """LightGBM rejects some characters in feature names."""
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
