"""The FuxiCTR side of ``benchmarks/peer_fuxictr.py``: run with the *peer's* Python (its own
venv, FuxiCTR 2.3.10), never with the project's. It holds no FuxiCTR code: it calls the
library's public API (FeatureProcessor, build_dataset, FeatureMap, RankDataLoader,
BaseModel.fit) and loads the DIN / DeepFM classes from a checkout of the FuxiCTR
repository's ``model_zoo`` (``--zoo``), outside this repository.

    <peer-python> benchmarks/peer_fuxictr_driver.py --config runs/peer_fuxictr/peer_config.json

The config (written by peer_fuxictr.py) names the parquet frames, the models, the shared
hyperparameters and where to write ``peer_results.json`` and the per-model predictions
(``<model>_{valid,test}.npz`` with ``y`` and ``p``), which the benchmark scores with the
project's own metrics.

Timing: ``train_seconds`` is the wall time of ``fit`` minus its per-epoch validation
(``eval_step``: evaluation + checkpoint), so it includes FuxiCTR's data loader (Ray Data);
``step_seconds`` is the time inside ``train_step`` alone (forward, loss, backward, clipping,
optimiser), the "model-only" figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ZOO_FILES = {
    "din": ("model_zoo/DIN/src/DIN.py", "DIN"),
    "deepfm": ("model_zoo/DeepFM/DeepFM_torch/src/DeepFM.py", "DeepFM"),
}


def model_class(zoo: Path, name: str) -> Any:
    rel, cls = ZOO_FILES[name]
    path = zoo / rel
    spec = importlib.util.spec_from_file_location(f"fuxictr_zoo_{name}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: cannot load the FuxiCTR model_zoo file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, cls)


def feature_cols(name: str) -> list[dict[str, Any]]:
    """The benchmark's features in FuxiCTR's schema. DIN attends over (history item,
    its rating) pairs with the target (item, a constant ``target_rating`` token), so the
    sequences stay unpooled; DeepFM mean-pools them as fields."""
    categorical = ["user_id", "gender", "age", "occupation", "item_id"]
    if name == "din":
        categorical.append("target_rating")
    pooled = None if name == "din" else "layers.MaskedAveragePooling()"
    seq = {"active": True, "dtype": "str", "type": "sequence", "splitter": "^", "padding": "pre"}
    return [
        {"name": categorical, "active": True, "dtype": "str", "type": "categorical"},
        {"name": "genres", "max_len": 6, **seq},
        {
            "name": "hist_item_ids",
            "max_len": 10,
            "share_embedding": "item_id",
            "feature_encoder": pooled,
            **seq,
        },
        {"name": "hist_ratings", "max_len": 10, "feature_encoder": pooled, **seq},
    ]


def model_params(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    common = {
        "gpu": -1,
        "task": "binary_classification",
        "loss": "binary_crossentropy",
        "metrics": ["logloss", "AUC"],
        "optimizer": "adam",
        "learning_rate": cfg["lr"],
        "embedding_dim": cfg["embedding_dim"],
        # FuxiCTR adds (λ/2)·‖E‖² per table; the project adds l2·‖E‖²: λ = 2·l2.
        "embedding_regularizer": float(2 * cfg["embedding_l2"]),
        "net_regularizer": 0,
        "net_dropout": 0,
        "batch_norm": False,
        "monitor": "AUC",
        "monitor_mode": "max",
        "early_stop_patience": cfg["patience"],
        "save_best_only": True,
        "verbose": 0,
        "model_root": str(Path(cfg["workdir"]) / "checkpoints"),
    }
    if name == "din":
        return common | {
            "model_id": "DIN",
            "dnn_hidden_units": list(cfg["din"]["mlp_units"]),
            "dnn_activations": cfg["din"]["activation"],
            "attention_hidden_units": list(cfg["din"]["attention_units"]),
            "attention_hidden_activations": cfg["din"]["attention_activation"],
            "attention_output_activation": None,
            "attention_dropout": 0,
            "din_target_field": [("item_id", "target_rating")],
            "din_sequence_field": [("hist_item_ids", "hist_ratings")],
            "din_use_softmax": False,
        }
    return common | {
        "model_id": "DeepFM",
        "hidden_units": list(cfg["deepfm"]["mlp_units"]),
        "hidden_activations": cfg["deepfm"]["activation"],
    }


def fix_unshared_init(model: Any) -> list[str]:
    """Re-initialise the tables FuxiCTR 2.3.10 leaves at PyTorch's N(0, 1) default.

    ``FeatureEmbeddingDict.init_weights`` skips every feature that declares
    ``share_embedding`` (its table is the shared one, initialised there), but a layer built
    with ``use_sharing=False`` (DeepFM's first-order ``LogisticRegression``) gives such a
    feature a table of its own, which then keeps N(0, 1) weights: here ~±9 first-order
    logits from the 10 history items at step 0 (first-epoch BCE > 1, test AUC below the
    item-rate floor). The fix applies the layer's own initialiser to those tables.
    """
    from fuxictr.pytorch.layers import FeatureEmbeddingDict

    fixed = []
    for path, module in model.named_modules():
        if not isinstance(module, FeatureEmbeddingDict):
            continue
        for feature, layer in module.embedding_layers.items():
            shared = module._feature_map.features[feature].get("share_embedding")
            if shared and layer is not module.embedding_layers[shared]:
                with torch.no_grad():
                    module.embedding_initializer(layer.weight[1:, :])  # row 0: padding
                fixed.append(f"{path}.{feature}")
    return fixed


def predictions(model: Any, gen: Any) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    ys, ps = [], []
    with torch.no_grad():
        for batch in gen:
            ps.append(model.forward(batch)["y_pred"].reshape(-1).double().numpy())
            ys.append(model.get_labels(batch).reshape(-1).double().numpy())
    return np.concatenate(ys), np.concatenate(ps)


def run_model(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.torch_utils import seed_everything

    workdir = Path(cfg["workdir"])
    data_root = workdir / "fuxictr_data"
    dataset_id = f"ml1m_{name}"
    shutil.rmtree(data_root / dataset_id, ignore_errors=True)  # build_dataset skips if present
    seed_everything(seed=cfg["seed"])
    t0 = time.perf_counter()
    encoder = FeatureProcessor(
        feature_cols=feature_cols(name),
        label_col={"name": "label", "dtype": "float"},
        dataset_id=dataset_id,
        data_root=str(data_root),
    )
    train, valid, test = build_dataset(
        encoder,
        train_data=cfg["frames"]["train"],
        valid_data=cfg["frames"]["valid"],
        test_data=cfg["frames"]["test"],
        data_format="parquet",
    )
    params = model_params(name, cfg)
    fmap = FeatureMap(dataset_id, str(data_root / dataset_id))
    fmap.load(str(data_root / dataset_id / "feature_map.json"), params)
    train_gen, valid_gen = RankDataLoader(
        fmap,
        stage="train",
        train_data=train,
        valid_data=valid,
        batch_size=cfg["batch_size"],
        shuffle=True,
        data_format="parquet",
    )
    test_gen = RankDataLoader(
        fmap, stage="test", test_data=test, batch_size=cfg["batch_size"], data_format="parquet"
    )
    prepare_seconds = time.perf_counter() - t0

    seed_everything(seed=cfg["seed"])
    model = model_class(Path(cfg["zoo"]), name)(fmap, **params)
    os.makedirs(model.model_dir, exist_ok=True)  # fit saves its best checkpoint there
    reinitialised = fix_unshared_init(model) if cfg.get("fix_unshared_init", True) else []
    timers = {"step": 0.0, "eval": 0.0}
    valid_auc: list[float] = []
    train_step, eval_step, early_stop = (
        model.train_step,
        model.eval_step,
        model.checkpoint_and_earlystop,
    )

    def timed_train_step(batch: Any) -> Any:
        t = time.perf_counter()
        out = train_step(batch)
        timers["step"] += time.perf_counter() - t
        return out

    def timed_eval_step() -> None:
        t = time.perf_counter()
        eval_step()
        timers["eval"] += time.perf_counter() - t

    def recording_early_stop(logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        valid_auc.append(float(logs["AUC"]))
        early_stop(logs, *args, **kwargs)

    model.train_step = timed_train_step
    model.eval_step = timed_eval_step
    model.checkpoint_and_earlystop = recording_early_stop
    t0 = time.perf_counter()
    model.fit(train_gen, epochs=cfg["epochs"], validation_data=valid_gen)
    fit_seconds = time.perf_counter() - t0
    epochs_run = len(valid_auc)
    rows = train_gen.num_samples * epochs_run
    train_seconds = fit_seconds - timers["eval"]

    out = Path(cfg["outdir"])
    t0 = time.perf_counter()
    for part, gen in (("valid", valid_gen), ("test", test_gen)):
        y, p = predictions(model, gen)
        np.savez(out / f"{name}_{part}.npz", y=y, p=p)
    predict_seconds = time.perf_counter() - t0
    return {
        "epochs_run": epochs_run,
        "best_epoch": int(np.argmax(valid_auc)) + 1 if valid_auc else -1,
        "valid_auc_per_epoch": valid_auc,
        "train_samples": train_gen.num_samples,
        "samples_per_s": rows / train_seconds,
        "samples_per_s_model_only": rows / timers["step"],
        "seconds_per_epoch": train_seconds / max(epochs_run, 1),
        "eval_seconds_valid": timers["eval"] / max(epochs_run, 1),
        "prepare_seconds": prepare_seconds,
        "predict_seconds_valid_test": predict_seconds,
        "params": {k: v for k, v in params.items() if k not in ("model_root",)},
        "n_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "reinitialised_tables": reinitialised,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    cfg = json.loads(args.config.read_text())
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    torch.set_num_threads(cfg["threads"])
    os.makedirs(cfg["outdir"], exist_ok=True)

    import fuxictr
    import ray

    # FuxiCTR starts Ray itself for preprocessing and loading; start it first to bound the
    # object store and keep the dashboard off.
    ray.init(
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        object_store_memory=cfg.get("ray_object_store_bytes", 1 << 30),
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    results: dict[str, Any] = {
        "fuxictr_version": fuxictr.__version__,
        "torch_version": torch.__version__,
        "ray_version": ray.__version__,
        "models": {},
    }
    try:
        for name in cfg["models"]:
            results["models"][name] = run_model(name, cfg)
            print(name, json.dumps(results["models"][name], default=str), flush=True)
    finally:
        ray.shutdown()
    (Path(cfg["outdir"]) / "peer_results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
