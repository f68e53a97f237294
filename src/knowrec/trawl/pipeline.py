"""TRAWL (Luo et al., arXiv 2403.06642) end to end, as cached stages of a run directory:

1. ``data`` — the data set (synthetic world or a path) as canonical tables;
2. ``protocol`` — users split 8:1:1, the first ``history_first`` ratings of each user kept
   as history only (leakage guard), CTR samples with the rated behaviour sequence;
3. ``knowledge-<side>-<method>`` — a knowledge table per method and side (from
   ``tables_dir`` when it holds one, else generated; the LLM cache resumes a killed run);
4. ``vectors-<side>-<method>`` — the frozen encoder's vectors of that table;
5. ``swing`` — the highest-SWING positive of every training user and item;
6. ``train-<job>`` — one model per (method, backbone, variant, seed) and per sweep point;
7. the report: floors, Table 1, Table 2, the sensitivity curves.

    knowrec run configs/trawl_synthetic.toml
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console

from knowrec.config import import_plugins, load_config
from knowrec.data.config import load_data
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError
from knowrec.report import write_report
from knowrec.runs import Run, config_slice, file_digest
from knowrec.trawl.config import NOT_TRAINING, TrawlConfig
from knowrec.trawl.probe import category_column, knowledge_probes
from knowrec.trawl.report import (
    best_sweep_point,
    neighbour_examples,
    pick_items,
    print_table,
    probe_section,
    protocol_text,
    summarise,
    swing_examples,
)
from knowrec.trawl.stages import (
    ITEM_VECTORS,
    encode_table,
    fit_and_score,
    floors,
    knowledge_table,
    load_frames,
    make_protocol,
    save_frames,
    stored_table,
    swing_positives,
)


def plan_jobs(cfg: TrawlConfig) -> list[dict[str, Any]]:
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
    for param, values in cfg.sweep.items():
        for value in values:
            base = {"method": cfg.sweep_method, "backbone": cfg.sweep_backbone, "variant": "full"}
            jobs.append({**base, "seed": cfg.seeds[0], param: value})
    jobs = [job | {hp: v for hp, v in cfg.loss_settings.items() if hp not in job} for job in jobs]
    # a sweep point at the default settings is a Table 1 model: trained and counted once
    unique = {tuple(sorted(job.items())): job for job in jobs}
    return list(unique.values())


def refit_jobs(cfg: TrawlConfig, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """With ``sweep_refit``: the best sweep point (validation AUC) on the other seeds."""
    if not cfg.sweep_refit:
        return []
    best = best_sweep_point(cfg, pl.DataFrame(results).filter(pl.col("variant") == "full"))
    if best is None:
        return []
    base = {"method": cfg.sweep_method, "backbone": cfg.sweep_backbone, "variant": "full"}
    settings = {**cfg.loss_settings, best[0]: best[1]}
    return [{**base, "seed": seed, **settings} for seed in cfg.seeds[1:]]


def job_name(cfg: TrawlConfig, job: dict[str, Any]) -> str:
    """``train-<method>-<backbone>-<variant>-s<seed>``, plus any loss setting that differs
    from the config's (a sweep point): unique within a run."""
    name = f"train-{job['method']}-{job['backbone']}-{job['variant']}-s{job['seed']}"
    return name + "".join(
        f"-{hp}={job[hp]:g}" for hp, default in cfg.loss_settings.items() if job[hp] != default
    )


def for_worker(cfg: TrawlConfig) -> TrawlConfig:
    """``cfg`` as one of ``workers`` processes trains with it: its share of the training
    threads and no progress bar (the stage keys still come from ``cfg``)."""
    threads = max(1, (cfg.train.threads or os.cpu_count() or 1) // cfg.workers)
    train = cfg.train.model_copy(update={"threads": threads, "progress": False})
    return cfg.model_copy(update={"train": train})


@cache
def _read_stage(name: str, folder: Path) -> Any:
    """A finished stage's result as a worker reads it, once per worker process."""
    if name == "data":
        return Dataset.load(folder)
    if name.startswith("vectors-"):
        return load_vectors(folder)
    return load_frames(folder)  # protocol, swing


def train_in_worker(
    cfg: TrawlConfig, folders: dict[str, Path], job: dict[str, Any], work: Path
) -> None:
    """Train ``job`` into ``work`` in a worker process, from the finished stages' folders
    (by stage name: ``data``, ``protocol``, ``swing`` and the job's ``vectors-<side>-…``)."""
    import_plugins(cfg.plugins)  # their backbones, registered in this process too

    def read(name: str) -> Any:
        return _read_stage(name, folders[name])

    sides = {name.split("-")[1]: read(name) for name in folders if name.startswith("vectors-")}
    scores = fit_and_score(
        cfg, read("protocol"), read("data"), sides or None, read("swing"), work=work, **job
    )
    (work / "scores.json").write_text(json.dumps(scores))


def load_vectors(d: Path) -> tuple[list[str], np.ndarray]:
    saved = np.load(d / "vectors.npz")
    return [str(i) for i in saved["ids"]], saved["vectors"]


def run_trawl(
    config: TrawlConfig | str | Path,
    out: str | Path,
    console: Console | None = None,
    *,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Run every stage and write ``results.json``, ``results.md`` and ``report.html``
    (``overrides``: ``key.path=value`` settings applied to the config)."""
    cfg = load_config(config, TrawlConfig, overrides)
    console = console or Console()
    run = Run(out, cfg.model_dump(mode="json"))
    run.record(protocol=protocol_text(cfg))

    data = run.stage(
        "data", config_slice(cfg.data), lambda d: load_data(cfg.data).save(d), Dataset.load
    )
    samples = run.stage(
        "protocol",
        # train_users at its default stays out of the key: runs made before it existed keep
        # their stages
        config_slice(
            cfg.protocol, exclude={"train_users"} if cfg.protocol.train_users == 1 else ()
        ),
        lambda d: save_frames(d, make_protocol(data, cfg.protocol)),
        load_frames,
        after=["data"],
    )
    sizes = ", ".join(f"{k} {samples[k].height:,}" for k in ("train", "valid", "test"))
    console.print(f"CTR samples: {sizes}")
    picks = pick_items(data.items, samples["train"], cfg.neighbour_items)  # checked early

    vectors: dict[str, dict[str, tuple[list[str], np.ndarray]] | None] = {"none": None}
    for method in [m for m in cfg.knowledge.methods if m != "none"]:
        vectors[method] = {}
        for side in cfg.knowledge.sides:

            def build(d: Path, method: str = method, side: str = side) -> None:
                table = knowledge_table(
                    data, samples["history"], cfg.knowledge, method, side,
                    run.dir / "llm-cache.sqlite", engine=cfg.engine, spark=cfg.spark,
                )  # fmt: skip
                table.write_parquet(d / "knowledge.parquet")

            knowledge = config_slice(cfg.knowledge, exclude={"methods", "sides"})
            stored = file_digest(stored_table(cfg.knowledge, method, side))  # a new file rebuilds
            table = run.stage(
                f"knowledge-{side}-{method}",
                {**knowledge, "method": method, "side": side, "stored": stored},
                build,
                lambda d: pl.read_parquet(d / "knowledge.parquet"),
                after=["protocol"],
            )

            def encode(d: Path, table: pl.DataFrame = table) -> None:
                ids, x = encode_table(table, cfg.encoder, run.dir / "vectors.sqlite")
                np.savez(d / "vectors.npz", ids=np.asarray(ids), vectors=x)

            vectors[method][side] = run.stage(
                f"vectors-{side}-{method}",
                {"encoder": cfg.encoder},
                encode,
                load_vectors,
                after=[f"knowledge-{side}-{method}"],
            )

    partners = run.stage(
        "swing",
        config_slice(cfg.swing),
        lambda d: save_frames(
            d,
            swing_positives(
                samples["train"], cfg.swing, engine=cfg.engine, spark=cfg.spark, workdir=d
            ),
        ),
        load_frames,
        after=["protocol"],
    )

    training = config_slice(cfg, exclude=NOT_TRAINING)  # train, embedding, features, ...

    def job_stage(job: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
        """The job's stage name, parameters and the stages it reads."""
        params = {**job, **training, "backbone_params": cfg.backbone_params.get(job["backbone"])}
        inputs = [f"vectors-{s}-{job['method']}" for s in cfg.knowledge.sides]
        after = ["protocol", "swing"] + (inputs if job["method"] != "none" else [])
        return job_name(cfg, job), params, after

    def train_job(job: dict[str, Any]) -> dict[str, Any]:
        def train(d: Path) -> None:
            scores = fit_and_score(
                cfg, samples, data, vectors[job["method"]], partners, work=d, **job
            )
            (d / "scores.json").write_text(json.dumps(scores))

        name, params, after = job_stage(job)
        scores = run.stage(
            name,
            params,
            train,
            lambda d: {**json.loads((d / "scores.json").read_text()), "dir": str(d)},
            after=after,
        )
        label = " ".join(f"{k}={v}" for k, v in job.items())
        console.print(f"{label}: test AUC {scores['test_auc']:.4f}")
        return {**job, **scores}

    def train_all(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if cfg.workers > 1:  # the missing models in worker processes, then loaded in order
            worker_cfg = for_worker(cfg)
            stages = []
            for job in jobs:
                name, params, after = job_stage(job)
                folders = {s: run.folder(s) for s in ["data", *after]}
                build = partial(train_in_worker, worker_cfg, folders, job)
                stages.append((name, params, build, after))
            run.prebuild(stages, workers=cfg.workers, label="models")
        return [train_job(job) for job in jobs]

    results = train_all(plan_jobs(cfg))
    results += train_all(refit_jobs(cfg, results))

    floor_rows = floors(samples, data)
    report = {"protocol": protocol_text(cfg), "floors": floor_rows, "runs": results}
    (run.dir / "results.json").write_text(json.dumps(report, indent=2))
    sections = summarise(cfg, results, floor_rows)
    sections.append(swing_examples(partners, data.items))
    sections += vector_sections(data, samples, vectors, results, picks)
    paths = write_report(run.dir, f"TRAWL — {cfg.name}", sections)
    if any(job["variant"] == "full" for job in results):  # what a server reads from it
        from knowrec.trawl.recommend import served_parts

        run.record_files(served_parts(run.dir, run.manifest))
    print_table(console, sections[1])
    print_table(console, sections[2])
    console.print(f"report: {paths['report.html']}")
    return {**report, "report": str(paths["report.html"])}


def vector_sections(
    data: Dataset,
    samples: dict[str, pl.DataFrame],
    vectors: dict[str, dict[str, tuple[list[str], np.ndarray]] | None],
    results: list[dict[str, Any]],
    picks: list[str],
) -> list[Any]:
    """What the vectors hold: the nearest items of ``picks`` and the knowledge probe, for
    each method's frozen vectors and the first TRAWL model's adapted item vectors."""
    from knowrec.trawl.recommend import served_job

    known = {m: v for m, v in vectors.items() if v}
    try:
        job = served_job(results, method="trawl")
        name = f"trawl adapted ({job['backbone']}, seed {job['seed']})"
        known[name] = {"item": job_item_vectors(job)}
    except ConfigError:
        pass
    sources = {name: v["item"] for name, v in known.items() if "item" in v}
    column = category_column(data.items)
    rows = []
    if column:
        every = pl.concat([samples[k] for k in ("train", "valid", "test")], how="diagonal_relaxed")
        rows = knowledge_probes(data.items, every, samples["history"], known, column)
    return [neighbour_examples(data.items, sources, picks), probe_section(rows, column)]


NO_ADAPTED_VECTORS = "the run has no trained TRAWL model with item knowledge"


def adapted_item_vectors(
    result: dict[str, Any], *, backbone: str | None = None, seed: int | None = None
) -> tuple[list[str], np.ndarray]:
    """The TRAWL adapted item vectors of a finished run (the ``full`` trawl model of
    ``backbone`` and ``seed``, default the first), for
    ``make_recall_path("semantic", vectors=...)``."""
    from knowrec.trawl.recommend import served_job

    try:
        job = served_job(result["runs"], method="trawl", backbone=backbone, seed=seed)
    except ConfigError:
        raise ConfigError(NO_ADAPTED_VECTORS) from None
    return job_item_vectors(job)


def job_item_vectors(job: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """The adapted item vectors a trained job saved."""
    path = Path(job["dir"]) / ITEM_VECTORS
    if not path.exists():
        raise ConfigError(NO_ADAPTED_VECTORS)
    saved = np.load(path)
    return [str(i) for i in saved["ids"]], saved["vectors"]
