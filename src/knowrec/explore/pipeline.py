"""Explore Further (Liu et al. 2024) end to end: item-to-item recommendation built offline as
cached stages, then served from the run directory.

    knowrec run configs/explore_synthetic.toml
    knowrec recommend --run runs/explore_synthetic --item 12

Stages (each cached in the run directory, see :mod:`knowrec.runs`):

1. ``data`` — the data set (synthetic world or a path) with item text;
2. ``vectors`` — the frozen encoder's item text vectors (near-duplicates, text paths);
3. ``sessions`` — sessions split in time into *fit | label | test*; the judged triggers;
4. ``recall-fit`` / ``recall-serve`` — every configured recall path (by registry name)
   fitted on *fit* (to build the rankers' training candidates) and on *fit + label* (the
   served candidates, evaluated on *test*);
5. ``candidates`` — per candidate set (the *baseline* stack's paths; the *full* set:
   baseline + the added paths, Q' by default) the paths' lists merged (≤ k, provenance
   kept, reciprocal-rank fusion weighted by each path's recall on the *label* sessions);
   the full set is served, from a :class:`CandidateStore`;
6. ``stage1`` — LightGBM on cheap co-engagement features, trained on *label* impressions;
7. ``judge`` — the LLM judge's 0–4 quality of the candidates of a sample of triggers;
8. ``cross-encoder`` (optional) — click and quality heads, then ``stage2`` LightGBM with
   both head scores; or ``quality`` — a LightGBM quality model on the judge's labels;
9. the final score ``(1−λ)·z(ranker) + λ·z(quality)`` (recomputed on every run: it is
   cheap), λ from the trade-off sweep; every served pair's scores in a second store
   (what ``recommend`` reads) and ``serving.json``, the manifest of what serving loads;
10. the report: a table shaped like the paper's Table 5, per-path recall@k and unique
    contribution, the λ sweep plot → ``results.json``, ``results.md``, ``report.html``.

The config is :class:`knowrec.explore.config.ExploreConfig`, the stages' work is in
:mod:`knowrec.explore.stages`, the online flow is :class:`knowrec.explore.service.ExploreService`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console

from knowrec.config import load_config
from knowrec.data.tables import Dataset
from knowrec.explore.config import ExploreConfig
from knowrec.explore.evaluate import choose_combination, eval_frames, path_recall, table5
from knowrec.explore.report import examples, protocol_text, report
from knowrec.explore.service import (
    SERVING_FILE,
    ExploreManifest,
    cross_encoder_class,
    load_vectors,
    open_store,
)
from knowrec.explore.stages import (
    SETS,
    Lists,
    Resources,
    encode_items,
    fit_cross_encoder,
    fit_quality_model,
    fit_recall_paths,
    fit_stage1,
    fit_stage2,
    judge_candidates,
    judge_pairs,
    load_lists,
    make_sessions,
    merge_candidate_sets,
    prepare_data,
    scored_pairs,
    vector_cache,
)
from knowrec.ranking.cascade import score_columns
from knowrec.ranking.combine import Combination
from knowrec.retrieval.store import Candidate
from knowrec.runs import Component, Run, file_digest, versions


def run_explore(
    config: ExploreConfig | str | Path,
    out: str | Path,
    console: Console | None = None,
    *,
    llm: Any = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Run every stage; write ``results.json``, ``results.md``, ``report.html`` and the
    serving manifest. ``llm``: a ready LLM for the judge and LLM recall paths (default:
    built from ``[llm]`` with an answer cache in the run directory); ``overrides``:
    ``key.path=value`` settings applied to the config."""
    cfg = load_config(config, ExploreConfig, overrides)
    console = console or Console()
    run = Run(out, cfg.model_dump(mode="json"))
    run.record(protocol=protocol_text(cfg))
    started = time.perf_counter()

    data = run.stage(
        "data", cfg.data.model_dump(), lambda d: prepare_data(cfg.data).save(d), Dataset.load
    )

    def save_vectors(d: Path) -> None:
        ids, x = encode_items(data.items, cfg.encoder, vector_cache(cfg, run.dir))
        np.savez(d / "vectors.npz", ids=np.asarray(ids), vectors=x)

    vectors = run.stage(
        "vectors", {"encoder": cfg.encoder}, save_vectors, load_vectors, after=["data"]
    )
    sess = run.stage(
        "sessions",
        {
            "sessions": cfg.sessions.model_dump(),
            "eval": cfg.judge.eval_triggers,
            "train": cfg.judge.train_triggers,
        },
        lambda d: _save_sessions(d, make_sessions(data, cfg)),
        _load_sessions,
        after=["data"],
    )
    console.print(
        "sessions: "
        + ", ".join(f"{p} {sess[p]['session_id'].n_unique():,}" for p in ("fit", "label", "test"))
    )
    res = Resources(cfg, run.dir, vectors, llm)
    try:
        result = _run_stages(cfg, run, data, vectors, sess, res, console)
    finally:
        res.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _save_sessions(d: Path, sess: dict[str, Any]) -> None:
    for name in ("fit", "label", "test"):
        sess[name].write_parquet(d / f"{name}.parquet")
    (d / "triggers.json").write_text(json.dumps(sess["triggers"]))


def _load_sessions(d: Path) -> dict[str, Any]:
    out: dict[str, Any] = {n: pl.read_parquet(d / f"{n}.parquet") for n in ("fit", "label", "test")}
    out["triggers"] = json.loads((d / "triggers.json").read_text())
    return out


def _run_stages(
    cfg: ExploreConfig,
    run: Run,
    data: Dataset,
    vectors: tuple[list[str], np.ndarray],
    sess: dict[str, Any],
    res: Resources,
    console: Console,
) -> dict[str, Any]:
    recall_params = {"recall": cfg.recall.model_dump(mode="json"), "llm": res.llm_id()}
    order = sess["triggers"]["order"]

    def loader(d: Path) -> tuple[Lists, dict[str, Any], Path]:
        lists, info = load_lists(d, cfg)
        return lists, info, d

    fit_lists, _, _ = run.stage(
        "recall-fit",
        recall_params,
        lambda d: fit_recall_paths(cfg, sess["fit"], data.items, order, res, d, save_online=False),
        loader,
        after=["sessions", "vectors"],
    )
    history = pl.concat([sess["fit"], sess["label"]])
    serve_lists, serve_info, serve_dir = run.stage(
        "recall-serve",
        recall_params,
        lambda d: fit_recall_paths(cfg, history, data.items, order, res, d, save_online=True),
        loader,
        after=["sessions", "vectors"],
    )
    for name, info in serve_info.items():
        console.print(
            f"recall path {name}: {info['answered']:,}/{info['asked']:,} triggers answered, "
            f"fit {info['fit_s']:.1f}s"
        )

    def load_cands(d: Path) -> tuple[dict[str, pl.DataFrame], Path]:
        return {p.stem: pl.read_parquet(p) for p in d.glob("*.parquet")}, d

    cand, cand_dir = run.stage(
        "candidates",
        {"recall": cfg.recall.model_dump(mode="json"), "store": cfg.store.model_dump()},
        lambda d: merge_candidate_sets(cfg, fit_lists, serve_lists, sess["label"], vectors, d),
        load_cands,
        after=["recall-fit", "recall-serve"],
    )
    s1_dir = run.stage(
        "stage1",
        {"stage1": cfg.stage1.model_dump(), "sessions": cfg.sessions.model_dump()},
        lambda d: fit_stage1(cfg, sess, cand, d),
        lambda d: d,
        after=["candidates"],
    )
    pairs = judge_pairs(cfg, sess["triggers"], cand)
    console.print(
        f"judge: {pairs.height} pairs (real LLM, cached in {run.dir / 'llm-cache.sqlite'})"
    )
    judge_dir = run.stage(
        "judge",
        {
            "judge": cfg.judge.model_dump(),
            "knowledge": file_digest(cfg.judge.knowledge if cfg.judge.item_text != "raw" else None),
            "llm": res.llm_id(),
            "quality": cfg.final.quality,
        },
        lambda d: judge_candidates(cfg, pairs, data.items, res, d),
        lambda d: d,
        after=["candidates"],
    )
    judged = pl.read_parquet(judge_dir / "judged.parquet")
    dirs: dict[str, Path | None] = {
        "stage1": s1_dir,
        "cross_encoder": None,
        "stage2": None,
        "quality": None,
    }
    if cfg.cross_encoder.enabled:
        ce_dir = run.stage(
            "cross-encoder",
            cfg.cross_encoder.model_dump(),
            lambda d: fit_cross_encoder(cfg, judged, data.items, s1_dir, d),
            lambda d: d,
            after=["stage1", "judge"],
        )
        dirs["cross_encoder"] = ce_dir
        dirs["stage2"] = run.stage(
            "stage2",
            cfg.stage2.model_dump(),
            lambda d: fit_stage2(cfg, s1_dir, ce_dir, d),
            lambda d: d,
            after=["cross-encoder"],
        )
    if cfg.final.quality == "lgbm":
        dirs["quality"] = run.stage(
            "quality",
            {"params": cfg.final.quality_params, "grades": "rank within trigger, 0-4"},
            lambda d: fit_quality_model(cfg, judged, s1_dir, vectors, d),
            lambda d: d,
            after=["stage1", "judge"],
        )

    scored = scored_pairs(cfg, dirs, vectors)
    evs = {s: eval_frames(cfg, scored[s], sess["test"], judged) for s in SETS}
    comb = choose_combination(cfg, scored["full"], evs["full"])
    combs = {"full": comb, "baseline": comb.refit_ranker(scored["baseline"])}
    for s in SETS:
        scored[s] = scored[s].with_columns(final=pl.Series(combs[s](scored[s])))
    scores_dir = run.dir / "serving"
    scores_dir.mkdir(exist_ok=True)
    _write_scores(cfg, scored["full"], scores_dir)
    knowledge = _copy_knowledge(cfg.serve.knowledge, scores_dir)
    rows, notes = table5(cfg, evs, combs)
    recall = path_recall(cfg, serve_lists, sess["test"], cand["full_serve"])
    manifest = serving_manifest(cfg, run, serve_dir, cand_dir, dirs, comb, scores_dir)
    if knowledge is not None:
        manifest = manifest.model_copy(update={"knowledge": str(knowledge.relative_to(run.dir))})
    (run.dir / SERVING_FILE).write_text(manifest.model_dump_json(indent=2, by_alias=True))
    run.record_files(manifest.files())
    shown = examples(run.dir, sess["triggers"]["eval"][:3] or order[:3])
    return report(
        cfg,
        run,
        sess["triggers"],
        rows,
        notes,
        recall,
        comb,
        serve_info,
        s1_dir,
        judge_dir,
        judged,
        shown,
        console,
    )


def _copy_knowledge(table: str | None, directory: Path) -> Path | None:
    """The ``id`` and ``text`` of a knowledge table as ``knowledge.parquet`` in ``directory``."""
    from knowrec.knowledge import read_knowledge_texts

    if table is None:
        return None
    out = directory / "knowledge.parquet"
    read_knowledge_texts(table).write_parquet(out)
    return out


def _write_scores(cfg: ExploreConfig, full: pl.DataFrame, directory: Path) -> None:
    """Every served pair's scores as a second store: trigger → candidates best first,
    ``score`` = final, ``paths`` = each stage's score (what ``recommend`` reads)."""
    from knowrec.retrieval import store_candidates

    cols = score_columns(full)
    ranked = full.sort(["trigger_id", "final"], descending=[False, True])
    out: dict[str, list[Candidate]] = {}
    for row in ranked.select("trigger_id", "item_id", "final", *cols).iter_rows(named=True):
        parts = {c: float(row[c]) for c in cols if row[c] is not None}
        out.setdefault(row["trigger_id"], []).append(Candidate(row["item_id"], row["final"], parts))
    full.select("trigger_id", "item_id", *cols, "final").write_parquet(directory / "scores.parquet")
    store = open_store(cfg.store, directory / "scores", cfg.name, create=True)
    with store:
        store_candidates(store, out)


def serving_manifest(
    cfg: ExploreConfig,
    run: Run,
    serve_dir: Path,
    cand_dir: Path,
    dirs: Mapping[str, Path | None],
    comb: Combination,
    scores_dir: Path,
) -> ExploreManifest:
    """What :class:`ExploreService` loads (paths relative to the run directory)."""
    from knowrec.ranking import CoEngagementFeatures, LGBMRanker
    from knowrec.retrieval import load_recall_path

    def rel(p: Path, *parts: str) -> str:
        return str(p.joinpath(*parts).relative_to(run.dir))

    def part(kind: Any, stage: str, *parts: str) -> Component | None:
        folder = dirs.get(stage)
        return None if folder is None else Component.of(kind, rel(folder, *parts))

    def stage(name: str) -> Path:
        return run.dir / run.manifest["stages"][name]["folder"]

    online = {}
    for p in cfg.recall.paths:
        if p.online:
            folder = serve_dir / "paths" / p.label
            online[p.label] = Component.of(load_recall_path(folder), rel(folder))
    merge = json.loads((cand_dir / "merge.json").read_text())
    store = cfg.store.model_dump()
    return ExploreManifest(
        versions=versions(),
        name=cfg.name,
        store={**store, "path": rel(cand_dir, "candidates")},
        scores={**store, "path": rel(scores_dir, "scores")},
        items=rel(stage("data"), "items.parquet"),
        vectors=rel(stage("vectors"), "vectors.npz"),
        paths=cfg.recall.sets()["full"],
        online_paths=online,
        recall_k=cfg.recall.k,
        rrf_k=cfg.recall.rrf_k,
        weights=merge["weights"]["full"],
        features=part(CoEngagementFeatures, "stage1", "features"),
        stage1=part(LGBMRanker, "stage1", "ranker_full"),
        cross_encoder=part(cross_encoder_class(cfg.cross_encoder), "cross_encoder", "model")
        if dirs.get("cross_encoder")
        else None,
        stage2=part(LGBMRanker, "stage2", "ranker_full"),
        quality=cfg.final.quality,
        quality_model=part(LGBMRanker, "quality", "model"),
        combination=comb.to_dict() | {"sweep": []},
        k=cfg.serve.k,
        judged=rel(stage("judge"), "judged.parquet") if "judge" in run.manifest["stages"] else None,
    )
