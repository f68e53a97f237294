"""TRAWL end to end (SPEC §1): knowledge → frozen encoder → MoE adapter with SWING-positive
contrastive learning → CTR backbones, evaluated under one stated protocol.

    knowrec run configs/trawl_synthetic.toml

Stages (each cached in the run directory, see :mod:`knowrec.runs`):
1. ``data`` — the data set (synthetic world or a path) as canonical tables;
2. ``protocol`` — users split 8:1:1, the first ``history_first`` ratings of each user kept
   as history only (leakage guard), CTR samples with the rated behaviour sequence;
3. ``knowledge`` — per method and side, a knowledge table (from ``tables_dir`` when it
   holds one, else generated; the LLM cache makes a killed run resume);
4. ``vectors`` — the encoder's vectors of every knowledge table;
5. ``swing`` — the highest-SWING positive of every training user and item;
6. ``train`` — one model per (method, backbone, variant, seed) and the sweep points;
7. the report: floors, Table 1, Table 2, the sensitivity curves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field
from rich.console import Console

from knowrec.config import Section, load_config
from knowrec.data.config import DataConfig, load_data
from knowrec.data.protocol import ctr_samples, reserve_history, split_users
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError
from knowrec.metrics import auc, log_loss
from knowrec.report import Section as ReportSection
from knowrec.report import mean_std, print_rows, summary_figure, write_report
from knowrec.runs import Run

log = logging.getLogger(__name__)
Variant = Literal["full", "no_cl", "no_adapter"]
ITEM_VECTORS = "item_vectors.npz"  # in a training stage's folder: ids, adapted vectors


class ProtocolConfig(Section):
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    history_first: int = 5
    max_len: int = 10
    label: str = "rating > 3"
    # Cold-start evaluation: this share of items (drawn with split_seed) loses its training
    # samples, so the model meets them only through history sequences and knowledge.
    cold_items: float = Field(default=0.0, ge=0.0, lt=1.0)


class KnowledgeSection(Section):
    methods: list[str] = Field(default_factory=lambda: ["none", "raw", "trawl"])
    sides: list[Literal["item", "user"]] = Field(default_factory=lambda: ["item", "user"])
    tables_dir: str | None = None  # <dir>/<prefix>_<side>_<method>.parquet
    table_prefix: str = "knowledge"
    generate: bool = True  # generate tables missing from tables_dir
    backend: str = "llamacpp"
    model: str = "qwen2.5-coder-1.5b"
    llm_settings: dict[str, Any] = Field(default_factory=dict)  # make_llm keywords: parallel, …
    settings: dict[str, Any] = Field(default_factory=dict)  # knowrec.knowledge.KnowledgeConfig


class SwingSection(Section):
    alpha: float = 1.0
    beta: float = 0.0
    max_users_per_item: int | None = 500
    max_items_per_user: int | None = 300


class ExperimentConfig(Section):
    """A whole TRAWL experiment (the TOML file of ``knowrec run``)."""

    pipeline: Literal["trawl"] = "trawl"
    name: str = "trawl"
    data: DataConfig = DataConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    knowledge: KnowledgeSection = KnowledgeSection()
    encoder: str = "all-MiniLM-L6-v2"
    swing: SwingSection = SwingSection()
    backbones: list[str] = Field(default_factory=lambda: ["din", "dien", "deepfm"])
    backbone_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    embedding: dict[str, Any] = Field(default_factory=dict)  # knowrec.models.EmbeddingConfig
    train: dict[str, Any] = Field(default_factory=dict)  # knowrec.train.TrainConfig
    w1: float = 0.004
    w2: float = 0.008
    tau: float = 0.15
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    ablations: bool = True
    ablation_backbones: list[str] | None = None  # default: every backbone
    sweep: dict[Literal["w1", "w2", "tau"], list[float]] = Field(default_factory=dict)
    sweep_backbone: str = "din"


# ------------------------------------------------------------------------------ stages


def make_protocol(data: Dataset, cfg: ProtocolConfig) -> dict[str, pl.DataFrame]:
    """History (first n per user, never a sample) and train/valid/test CTR samples."""
    inter = data.interactions.drop_nulls("timestamp")
    guard = reserve_history(inter, n_first=cfg.history_first)
    samples = ctr_samples(guard["rest"], inter, max_len=cfg.max_len, label=cfg.label)
    parts = split_users(samples, cfg.split, seed=cfg.split_seed)
    items = data.items["item_id"].sort()
    n_cold = round(cfg.cold_items * items.len())
    cold = items.sample(n_cold, seed=cfg.split_seed, shuffle=True).to_frame()
    parts["train"] = parts["train"].join(cold, on="item_id", how="anti")
    return {"history": guard["history"], **parts, "cold": cold}


def protocol_text(cfg: ExperimentConfig) -> str:
    p = cfg.protocol
    return (
        f"data={cfg.data.source}; users split {':'.join(f'{r:g}' for r in p.split)} "
        f"(seed {p.split_seed}) into train/valid/test users; the first {p.history_first} "
        f"interactions of each user are history only (behaviour sequences and user "
        f"knowledge), never samples; label = {p.label}; behaviour sequence = last "
        f"{p.max_len} (item, rating) pairs strictly before the sample; metrics on test users"
        + (
            f"; cold start: {p.cold_items:.0%} of items have no training samples "
            "(cold AUC = test AUC on their samples)"
            if p.cold_items
            else ""
        )
    )


def knowledge_table(
    data: Dataset, history: pl.DataFrame, cfg: KnowledgeSection, method: str, side: str,
    cache: Path,
) -> pl.DataFrame:  # fmt: skip
    """A stored table from ``tables_dir`` when present, else generated (methods that need
    the LLM only when ``generate`` is true)."""
    from knowrec.knowledge import KnowledgeGenerator

    gen = KnowledgeGenerator(cfg.settings)
    if cfg.tables_dir:
        path = Path(cfg.tables_dir) / f"{cfg.table_prefix}_{side}_{method}.parquet"
        if path.exists():
            return pl.read_parquet(path)
        if not cfg.generate and gen.uses_llm(method):
            raise ConfigError(f"knowledge table {path} is missing and generate = false")
    llm = None
    if gen.uses_llm(method):
        from knowrec.llm import make_llm

        llm = make_llm(cfg.backend, model=cfg.model, cache=cache, **cfg.llm_settings)
        gen.llm = llm
    try:
        return gen.generate(data, method, side, history=history)
    finally:
        if llm is not None:
            llm.close()


def encode_table(table: pl.DataFrame, model: str, cache: Path) -> tuple[list[str], np.ndarray]:
    from knowrec.encoders import Encoder

    ok = table.filter(pl.col("status").is_null() | (pl.col("status") == "ok"))
    vectors = Encoder(model, cache=cache).encode(ok["text"].to_list())
    return ok["id"].to_list(), vectors


def swing_positives(train: pl.DataFrame, cfg: SwingSection) -> dict[str, pl.DataFrame]:
    """Each training user's (item's) highest-SWING other user (item), over positives."""
    from knowrec.similarity import swing

    liked = train.filter(pl.col("label") == 1)
    opts = {
        "alpha": cfg.alpha,
        "beta": cfg.beta,
        "max_users_per_item": cfg.max_users_per_item,
        "max_items_per_user": cfg.max_items_per_user,
        "top_k": 1,
    }
    return {s: swing(liked, side=s, **opts).positives_frame() for s in ("user", "item")}


# --------------------------------------------------------------------------- training


def fit_and_score(
    cfg: ExperimentConfig,
    samples: dict[str, pl.DataFrame],
    data: Dataset,
    vectors: dict[str, tuple[list[str], np.ndarray]] | None,
    partners: dict[str, pl.DataFrame],
    *,
    method: str,
    backbone: str,
    variant: Variant,
    seed: int,
    w1: float,
    w2: float,
    tau: float,
    work: Path,
) -> dict[str, float]:
    """Train one model; validation and test AUC / LogLoss."""
    from knowrec.features import FeatureMap, KnowledgeTable, data_spec
    from knowrec.models import JointLoss, build_backbone
    from knowrec.train import TrainConfig, Trainer, seed_everything

    seed_everything(seed)
    spec = data_spec(
        samples["train"], users=data.users, items=data.items, max_len=cfg.protocol.max_len
    )
    knowledge = {}
    if vectors is not None:
        knowledge = {s: KnowledgeTable(np.asarray(ids), v) for s, (ids, v) in vectors.items()}
    fmap = FeatureMap.fit(
        spec, samples["train"], knowledge=knowledge, users=data.users, items=data.items
    )
    enc = {
        k: fmap.encode(samples[k], users=data.users, items=data.items)
        for k in ("train", "valid", "test")
    }
    mode = "none" if vectors is None else ("raw" if variant == "no_adapter" else "adapter")
    model = build_backbone(
        backbone, fmap,
        embedding={**cfg.embedding, "knowledge": mode, "knowledge_sides": sorted(knowledge)},
        **cfg.backbone_params.get(backbone, {}),
    )  # fmt: skip
    contrastive = mode == "adapter" and variant == "full"
    loss = JointLoss(
        w_uu=w1 if contrastive and "user" in knowledge else 0.0,
        w_ii=w2 if contrastive and "item" in knowledge else 0.0,
        tau=tau,
        user_partners=fmap.partner_index("user", partners["user"]),
        item_partners=fmap.partner_index("item", partners["item"]),
    )
    trainer = Trainer(
        model, TrainConfig(**{**cfg.train, "seed": seed}), loss=loss, checkpoint_dir=work
    )
    trainer.fit(enc["train"], enc["valid"], resume=True)
    if mode == "adapter" and "item" in knowledge:  # the adapted item vectors (recall path)
        ids, x = model.adapted_vectors(fmap, "item")
        np.savez(work / ITEM_VECTORS, ids=np.asarray(ids), vectors=x)
    out = {f"valid_{k}": v for k, v in trainer.evaluate(enc["valid"]).items()}
    out |= {f"test_{k}": v for k, v in trainer.evaluate(enc["test"]).items()}
    cold = samples["test"]["item_id"].is_in(samples["cold"]["item_id"].implode()).to_numpy()
    y = samples["test"]["label"].to_numpy()
    if 0 < y[cold].sum() < cold.sum():  # both labels among the cold items' test samples
        p = trainer.predict(enc["test"])
        out |= {"test_cold_auc": auc(y[cold], p[cold]), "test_cold_samples": int(cold.sum())}
        out["test_warm_auc"] = auc(y[~cold], p[~cold])
    return out


def floors(samples: dict[str, pl.DataFrame], data: Dataset) -> list[dict[str, Any]]:
    """Per-item positive rate and logistic regression on the same samples."""
    from knowrec.models.floors import ItemRate, LogisticFloor

    def attach(frame: pl.DataFrame) -> pl.DataFrame:
        users = data.users.select(
            [c for c in ("user_id", "gender", "age", "occupation") if c in data.users.columns]
        )
        items = data.items.select([c for c in ("item_id", "genres") if c in data.items.columns])
        frame = frame.join(users, on="user_id", how="left") if users.width > 1 else frame
        return frame.join(items, on="item_id", how="left") if items.width > 1 else frame

    train, test = attach(samples["train"]), attach(samples["test"])
    rows = []
    for name, model in (
        ("item positive rate", ItemRate()),
        ("logistic regression", LogisticFloor()),
    ):
        p = model.fit(train).predict(test)
        y = test["label"].to_numpy()
        rows.append({"model": name, "test AUC": auc(y, p), "test LogLoss": log_loss(y, p)})
    return rows


# ------------------------------------------------------------------------------ runner


def _save_frames(folder: Path, frames: dict[str, pl.DataFrame]) -> None:
    for name, frame in frames.items():
        frame.write_parquet(folder / f"{name}.parquet")


def _load_frames(folder: Path) -> dict[str, pl.DataFrame]:
    return {p.stem: pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


def plan_jobs(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """Every model to train: Table 1 cells × seeds, the ablations, the sweep points."""
    jobs = [
        {"method": m, "backbone": b, "variant": "full", "seed": s}
        for m in cfg.knowledge.methods
        for b in cfg.backbones
        for s in cfg.seeds
    ]
    if cfg.ablations and "trawl" in cfg.knowledge.methods:
        jobs += [
            {"method": "trawl", "backbone": b, "variant": v, "seed": s}
            for b in cfg.ablation_backbones or cfg.backbones
            for v in ("no_cl", "no_adapter")
            for s in cfg.seeds
        ]
    sweep_method = "trawl" if "trawl" in cfg.knowledge.methods else cfg.knowledge.methods[-1]
    for param, values in cfg.sweep.items():
        for value in values:
            base = {"method": sweep_method, "backbone": cfg.sweep_backbone, "variant": "full"}
            jobs.append({**base, "seed": cfg.seeds[0], param: value})
    for job in jobs:
        for hp in ("w1", "w2", "tau"):
            job.setdefault(hp, getattr(cfg, hp))
    return jobs


def run_trawl(
    config: ExperimentConfig | str | Path,
    out: str | Path,
    console: Console | None = None,
    *,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Run every stage and write ``results.json``, ``results.md`` and ``report.html``
    (``overrides``: ``key.path=value`` settings applied to the config)."""
    cfg = load_config(config, ExperimentConfig, overrides)
    console = console or Console()
    run = Run(out, cfg.model_dump(mode="json"))
    run.record(protocol=protocol_text(cfg))

    data = run.stage(
        "data", cfg.data.model_dump(), lambda d: load_data(cfg.data).save(d), Dataset.load
    )
    samples = run.stage(
        "protocol",
        cfg.protocol.model_dump(),
        lambda d: _save_frames(d, make_protocol(data, cfg.protocol)),
        _load_frames,
        after=["data"],
    )
    sizes = ", ".join(f"{k} {samples[k].height:,}" for k in ("train", "valid", "test"))
    console.print(f"CTR samples: {sizes}")

    vectors: dict[str, dict[str, tuple[list[str], np.ndarray]] | None] = {"none": None}
    for method in [m for m in cfg.knowledge.methods if m != "none"]:
        vectors[method] = {}
        for side in cfg.knowledge.sides:

            def build(d: Path, method: str = method, side: str = side) -> None:
                table = knowledge_table(
                    data, samples["history"], cfg.knowledge, method, side,
                    run.dir / "llm-cache.sqlite",
                )  # fmt: skip
                table.write_parquet(d / "knowledge.parquet")

            params = {**cfg.knowledge.model_dump(exclude={"methods", "sides"}), "method": method}
            table = run.stage(
                f"knowledge-{side}-{method}",
                {**params, "side": side},
                build,
                lambda d: pl.read_parquet(d / "knowledge.parquet"),
                after=["protocol"],
            )
            vectors[method][side] = encode_table(table, cfg.encoder, run.dir / "vectors.sqlite")

    partners = run.stage(
        "swing",
        cfg.swing.model_dump(),
        lambda d: _save_frames(d, swing_positives(samples["train"], cfg.swing)),
        _load_frames,
        after=["protocol"],
    )

    results = []
    for job in plan_jobs(cfg):

        def train(d: Path, job: dict[str, Any] = job) -> None:
            scores = fit_and_score(
                cfg, samples, data, vectors[job["method"]], partners, work=d, **job
            )
            (d / "scores.json").write_text(json.dumps(scores))

        knowledge_stages = [f"knowledge-{s}-{job['method']}" for s in cfg.knowledge.sides]
        params = {
            **job,
            "train": cfg.train,
            "embedding": cfg.embedding,
            "backbone_params": cfg.backbone_params.get(job["backbone"], {}),
        }
        scores = run.stage(
            "train",
            params,
            train,
            lambda d: {**json.loads((d / "scores.json").read_text()), "dir": str(d)},
            after=["swing"] + (knowledge_stages if job["method"] != "none" else []),
        )
        results.append({**job, **scores})
        label = " ".join(f"{k}={v}" for k, v in job.items())
        console.print(f"{label}: test AUC {scores['test_auc']:.4f}")

    floor_rows = floors(samples, data)
    report = {"protocol": protocol_text(cfg), "floors": floor_rows, "runs": results}
    (run.dir / "results.json").write_text(json.dumps(report, indent=2))
    sections = summarise(cfg, results, floor_rows)
    paths = write_report(run.dir, f"TRAWL — {cfg.name}", sections)
    print_table(console, sections[1])
    print_table(console, sections[2])
    console.print(f"report: {paths['report.html']}")
    return {**report, "report": str(paths["report.html"])}


def summarise(
    cfg: ExperimentConfig, results: list[dict[str, Any]], floor_rows: list[dict[str, Any]]
) -> list[ReportSection]:
    frame = pl.DataFrame(results)
    full = frame.filter(pl.col("variant") == "full")
    base = [c for c in ("w1", "w2", "tau") if c in full.columns]
    default = full.filter(*(pl.col(c) == getattr(cfg, c) for c in base))
    table1 = []
    for method in cfg.knowledge.methods:
        row: dict[str, Any] = {"method": method}
        for backbone in cfg.backbones:
            sel = default.filter((pl.col("method") == method) & (pl.col("backbone") == backbone))
            row[f"{backbone} AUC"] = mean_std(sel["test_auc"].to_list())
            row[f"{backbone} LogLoss"] = mean_std(sel["test_logloss"].to_list())
            if "test_cold_auc" in sel.columns:
                row[f"{backbone} cold AUC"] = mean_std(sel["test_cold_auc"].drop_nulls().to_list())
        table1.append(row)
    warm_cold = {"warm items": "test_warm_auc", "cold items": "test_cold_auc"}
    figures = [
        summary_figure(default, "method", "test_auc", hue="backbone", ylabel="test AUC",
                       title="test AUC by method (mean ± std over seeds)"),
        summary_figure(default, "method", warm_cold, ylabel="test AUC",
                       title="warm vs cold items (mean ± std over backbones and seeds)"),
    ]  # fmt: skip
    sections = [
        ReportSection("Protocol", notes=protocol_text(cfg)),
        ReportSection(
            "Table 1 — knowledge method × backbone (test, mean ± std over seeds)",
            table1,
            figures=[f for f in figures if f is not None],
            missing="undefined: no test sample of cold items with both labels",
        ),
        ReportSection("Floors", floor_rows),
    ]
    abl = frame.filter(pl.col("method") == "trawl")
    if cfg.ablations and abl.height:
        rows = []
        for backbone in cfg.ablation_backbones or cfg.backbones:
            row = {"backbone": backbone}
            for variant, label in (
                ("full", "TRAWL"),
                ("no_cl", "w/o CL"),
                ("no_adapter", "w/o adapter"),
            ):
                sel = abl.filter((pl.col("backbone") == backbone) & (pl.col("variant") == variant))
                if variant == "full":
                    sel = sel.filter(*(pl.col(c) == getattr(cfg, c) for c in base))
                row[label] = mean_std(sel["test_auc"].to_list())
            rows.append(row)
        sections.append(ReportSection("Table 2 — ablations (test AUC)", rows))
    if cfg.sweep:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figs, rows = [], []
        for param, values in cfg.sweep.items():
            pts = []
            for v in values:
                sel = full.filter((pl.col("backbone") == cfg.sweep_backbone) & (pl.col(param) == v))
                if sel.height:
                    pts.append((v, float(sel["valid_auc"].mean())))
                    rows.append({"parameter": param, "value": v, "valid AUC": pts[-1][1]})
            fig, ax = plt.subplots(figsize=(4, 3))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
            ax.set_xlabel(param)
            ax.set_ylabel("validation AUC")
            ax.set_title(f"{cfg.sweep_backbone}: sensitivity to {param}")
            figs.append(fig)
        sections.append(ReportSection("Sensitivity", rows, figures=figs))
    return sections


def adapted_item_vectors(
    result: dict[str, Any], *, backbone: str | None = None, seed: int | None = None
) -> tuple[list[str], np.ndarray]:
    """The TRAWL adapted item vectors of a finished run (the ``full`` trawl model of
    ``backbone`` and ``seed``, default the first), for
    ``make_recall_path("semantic", vectors=...)``."""
    for job in result["runs"]:
        if (
            job["method"] == "trawl"
            and job["variant"] == "full"
            and backbone in (None, job["backbone"])
            and seed in (None, job["seed"])
            and (Path(job["dir"]) / ITEM_VECTORS).exists()
        ):
            saved = np.load(Path(job["dir"]) / ITEM_VECTORS)
            return [str(i) for i in saved["ids"]], saved["vectors"]
    raise ConfigError("the run has no trained TRAWL model with item knowledge")


def print_table(console: Console, section: ReportSection) -> None:
    print_rows(console, section.title, section.rows, missing=section.missing)
