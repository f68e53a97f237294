"""knowrec against the peer library FuxiCTR 2.3.10: DIN and DeepFM (no knowledge) on ML-1M
users 1–2999, same split, samples and features, in one run.

The protocol and features are those of ``bench_backbones.py`` (built by its functions):
users split 8:1:1 (seed 0), first 5 interactions per user as history only, label =
rating > 3, features = user id, gender, age, occupation, item id, genres and the previous
10 history items with their ratings. The frames are written as parquet under
``runs/peer_fuxictr/`` (git-ignored) and FuxiCTR runs in a subprocess with its own Python
(``--peer-python``, a venv outside the repository) through
``benchmarks/peer_fuxictr_driver.py``, with the DIN/DeepFM classes of the FuxiCTR
repository's model_zoo read from ``--zoo`` (also outside the repository). Both sides are
scored with the project's metrics on the peer's saved predictions.

Shared hyperparameters: embedding dim 32, embedding L2 1e-5 (FuxiCTR: regulariser 2e-5, it
halves), batch 256, Adam lr 1e-3, epochs, early stopping on validation AUC with patience 1
and the best epoch restored; DIN attention units (80, 40) with Dice, DNN (200, 80) with
Dice, no softmax; DeepFM DNN (256, 128) ReLU. User ids: the project trains with user-id
dropout 1.0 (test users are unseen under the user split), so by default the peer gets a
constant user id (``--peer-user-id dropped``); ``raw`` gives it the real ids.

FuxiCTR 2.3.10 bug worked around (``--peer-as-published`` keeps it): DeepFM's first-order
table for the shared-embedding history is left at PyTorch's N(0, 1) init, see
``peer_fuxictr_driver.fix_unshared_init``.

Throughput: training samples per second of the training loop (batching or data loader
included, validation excluded), averaged over the epochs run; ratio = knowrec / FuxiCTR.

    .venv/bin/python benchmarks/peer_fuxictr.py [--epochs 2] [--models din deepfm]
        [--limit-users N] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from bench_backbones import EMBEDDING, PROTOCOL, SETTINGS, floors, ml1m_protocol, train_backbone
from common import ROOT, SHARED_DATA, write_result
from knowrec.metrics import auc, log_loss
from knowrec.models import get_backbone
from knowrec.models.features import FeatureMap, movielens_spec

PEERS = ROOT.parent / "peers"
DRIVER = Path(__file__).resolve().with_name("peer_fuxictr_driver.py")
WORKDIR = ROOT / "runs" / "peer_fuxictr"
PATIENCE = 1  # as train_backbone


def peer_frame(frame: pl.DataFrame, user_id: str) -> pl.DataFrame:
    """The samples as FuxiCTR reads them: string tokens, sequences joined with "^",
    ratings as integer tokens, a constant ``target_rating`` token (DIN's target side of the
    (item, rating) pairs), the user id constant when ``user_id == "dropped"``."""

    def joined(col: str) -> pl.Expr:
        return pl.col(col).list.eval(pl.element().cast(pl.String)).list.join("^")

    user = pl.lit("0") if user_id == "dropped" else pl.col("user_id").cast(pl.String)
    return frame.select(
        pl.col("label").cast(pl.Float32),
        user.alias("user_id"),
        pl.col("gender", "age", "occupation", "item_id").cast(pl.String),
        joined("genres").alias("genres"),
        joined("hist_item_ids").alias("hist_item_ids"),
        pl.col("hist_ratings")
        .list.eval(pl.element().round(0).cast(pl.Int32).cast(pl.String))
        .list.join("^")
        .alias("hist_ratings"),
        pl.lit("target").alias("target_rating"),
    )


def run_peer(args: argparse.Namespace, frames: dict[str, pl.DataFrame]) -> dict[str, Any]:
    data_dir = WORKDIR / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part in ("train", "valid", "test"):
        paths[part] = str(data_dir / f"{part}.parquet")
        peer_frame(frames[part], args.peer_user_id).write_parquet(paths[part])
    outdir = WORKDIR / "out"
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob("*"):
        old.unlink()
    din, deepfm = get_backbone("din").defaults(), get_backbone("deepfm").defaults()
    config = {
        "models": args.models,
        "frames": paths,
        "workdir": str(WORKDIR),
        "outdir": str(outdir),
        "zoo": str(args.zoo),
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "threads": args.threads,
        "patience": PATIENCE,
        "embedding_dim": EMBEDDING["dim"],
        "embedding_l2": EMBEDDING["l2"],
        "din": {
            "attention_units": list(din["attention_units"]),
            "attention_activation": din["attention_activation"],
            "mlp_units": list(din["mlp_units"]),
            "activation": din["activation"],
        },
        "deepfm": {"mlp_units": list(deepfm["mlp_units"]), "activation": deepfm["activation"]},
        "fix_unshared_init": not args.peer_as_published,
    }
    config_path = WORKDIR / "peer_config.json"
    config_path.write_text(json.dumps(config, indent=2))
    env = os.environ | {
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("PYTHONPATH", None)
    log = WORKDIR / "peer_driver.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(
            [str(args.peer_python), str(DRIVER), "--config", str(config_path)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=WORKDIR,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise SystemExit(f"the FuxiCTR driver failed (exit {proc.returncode}); {log}:\n{tail}")
    out = json.loads((outdir / "peer_results.json").read_text())
    out["wall_seconds"] = time.perf_counter() - t0
    for name, row in out["models"].items():
        for part in ("valid", "test"):
            with np.load(outdir / f"{name}_{part}.npz") as z:
                y, p = z["y"], z["p"]
            if len(y) != len(frames[part]):
                raise SystemExit(
                    f"peer {name} {part}: {len(y)} predictions for {len(frames[part])}"
                )
            row[f"{part}_auc"], row[f"{part}_logloss"] = auc(y, p), log_loss(y, p)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--models", nargs="+", choices=["din", "deepfm"], default=["din", "deepfm"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--limit-users", type=int, default=None, help="keep users with id <= N (smoke runs)"
    )
    parser.add_argument("--peer-user-id", choices=["dropped", "raw"], default="dropped")
    parser.add_argument(
        "--peer-python", type=Path, default=PEERS / "fuxictr-venv" / "bin" / "python"
    )
    parser.add_argument("--zoo", type=Path, default=PEERS / "fuxictr_zoo")
    parser.add_argument(
        "--peer-as-published",
        action="store_true",
        help="keep FuxiCTR's N(0,1) init of DeepFM's first-order history table (a peer bug)",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    for path in (args.peer_python, args.zoo, DRIVER):
        if not path.exists():
            raise SystemExit(f"{path} is missing: see PEERS.md (FuxiCTR) for the peer setup")

    t0 = time.perf_counter()
    frames = ml1m_protocol(args.data, seed=args.seed)
    if args.limit_users:
        keep = pl.col("user_id").cast(pl.Int64) <= args.limit_users
        frames = {
            k: v.filter(keep) if k in ("train", "valid", "test") else v for k, v in frames.items()
        }
    protocol_seconds = time.perf_counter() - t0

    peer = run_peer(args, frames)
    print("FuxiCTR done:", {k: round(v["test_auc"], 4) for k, v in peer["models"].items()})

    fmap = FeatureMap.fit(movielens_spec(), frames["train"])
    data = {k: fmap.encode(frames[k]) for k in ("train", "valid", "test")}
    rows: dict[str, dict[str, Any]] = {}
    for name in args.models:
        own = train_backbone(name, fmap, data, args)
        other = peer["models"][name]
        rows[name] = {
            "knowrec": own,
            "fuxictr": other,
            "samples_per_s_ratio": own["samples_per_s"] / other["samples_per_s"],
            "test_auc_gap": own["test_auc"] - other["test_auc"],
        }
    floor_rows = floors(frames)

    print(f"\n{PROTOCOL}")
    print("samples: " + ", ".join(f"{k} {len(v):,}" for k, v in data.items()))
    print(
        f"{'model':<28}{'library':<10}{'test AUC':>10}{'LogLoss':>9}"
        f"{'samples/s':>11}{'ratio':>7}{'epochs':>7}{'model-only/s':>14}"
    )
    for name, r in floor_rows.items():
        print(f"{name:<28}{'knowrec':<10}{r['test_auc']:>10.4f}{r['test_logloss']:>9.4f}")
    for name, r in rows.items():
        for lib in ("fuxictr", "knowrec"):
            x = r[lib]
            ratio = f"{r['samples_per_s_ratio']:>7.2f}" if lib == "knowrec" else f"{'':>7}"
            model_only = x.get("samples_per_s_model_only")
            print(
                f"{name:<28}{lib:<10}{x['test_auc']:>10.4f}{x['test_logloss']:>9.4f}"
                f"{x['samples_per_s']:>11,.0f}{ratio}{x['best_epoch']:>5}/{x['epochs_run']}"
                + (f"{model_only:>14,.0f}" if model_only else "")
            )
    print(
        "(ratio = knowrec / FuxiCTR train samples/s, loader or batching included; "
        "epochs = best/run; model-only = FuxiCTR's train_step alone)"
    )
    write_result(
        "peer_fuxictr",
        {
            "command": " ".join(["python benchmarks/peer_fuxictr.py", *sys.argv[1:]]),
            "protocol": PROTOCOL,
            "limit_users": args.limit_users,
            "peer": {
                "library": "FuxiCTR",
                "version": peer["fuxictr_version"],
                "torch": peer["torch_version"],
                "ray": peer["ray_version"],
                "zoo_commit": _zoo_commit(args.zoo),
                "user_id": args.peer_user_id,
                "fix_unshared_init": not args.peer_as_published,
                "wall_seconds": peer["wall_seconds"],
            },
            "settings": {
                "epochs": args.epochs,
                "lr": args.lr,
                "batch_size": args.batch_size,
                "seed": args.seed,
                "patience": PATIENCE,
                "knowrec": {k: SETTINGS[k] for k in args.models},
            },
            "threads": args.threads,
            "samples": {k: len(v) for k, v in data.items()},
            "protocol_seconds": protocol_seconds,
            "floors": floor_rows,
            "results": rows,
            "notes": [
                "samples/s: training loop incl. batching (knowrec) or the Ray Data loader "
                "(FuxiCTR), validation excluded; FuxiCTR's model-only figure is "
                "samples_per_s_model_only",
                "FuxiCTR DIN attends over (history item, rating) pairs with the target "
                "(item, constant token); knowrec adds the rating embedding to the item "
                "embedding",
                "FuxiCTR clips gradients at norm 10 and initialises embeddings with std 1e-4 "
                "(its defaults); knowrec does not clip and uses std 0.01",
                "FuxiCTR's loader shuffle is not seeded: its runs are not exactly reproducible",
                "FuxiCTR 2.3.10 leaves DeepFM's first-order table of the shared-embedding history "
                "at N(0,1) init (a bug: first-epoch BCE > 1, AUC below the floors); unless "
                "--peer-as-published, the driver re-initialises it with FuxiCTR's initialiser",
            ],
        },
    )


def _zoo_commit(zoo: Path) -> str | None:
    marker = zoo / "COMMIT"
    return marker.read_text().strip() if marker.exists() else None


if __name__ == "__main__":
    main()
