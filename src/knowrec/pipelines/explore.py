"""Explore Further end to end (SPEC §2): item-to-item recommendation built offline as
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

The config is :class:`knowrec.explore.config.ExploreConfig`; the online flow is
:class:`knowrec.explore.service.ExploreService`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console

from knowrec.config import load_config
from knowrec.data.config import load_data
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError, KnowrecError
from knowrec.explore.config import (
    ExploreConfig,
    ExploreData,
    PathSpec,
    RankerConfig,
)
from knowrec.explore.service import (
    SERVING_FILE,
    ExploreService,
    cross_encoder_class,
    load_vectors,
    open_store,
    quality_scores,
    text_cosine,
)
from knowrec.ranking import CoEngagementFeatures
from knowrec.ranking.combine import QUALITY, Combination
from knowrec.report import Section as ReportSection
from knowrec.report import group_figure, print_rows, write_report
from knowrec.retrieval.store import Candidate
from knowrec.runs import Run

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------ helpers

Lists = dict[str, dict[str, list[Candidate]]]  # path → trigger → candidates
SETS = ("baseline", "full")


def _lists_frame(per_path: Lists) -> pl.DataFrame:
    rows = [
        (p, t, c.item_id, float(c.score), r)
        for p, lists in per_path.items()
        for t, cands in lists.items()
        for r, c in enumerate(cands, start=1)
    ]
    schema = {
        "path": pl.String,
        "trigger_id": pl.String,
        "item_id": pl.String,
        "score": pl.Float64,
        "rank": pl.Int32,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _frame_lists(frame: pl.DataFrame, names: Sequence[str]) -> Lists:
    out: Lists = {p: {} for p in names}
    for p, t, i, s in (
        frame.sort("path", "trigger_id", "rank")
        .select("path", "trigger_id", "item_id", "score")
        .iter_rows()
    ):
        out[p].setdefault(t, []).append(Candidate(i, s, {p: s}))
    return out


def frame_candidates(frame: pl.DataFrame, prefix: str = "path_") -> dict[str, list[Candidate]]:
    """Merged candidates back from a :func:`~knowrec.retrieval.candidate_frame` (in rank
    order; provenance from the non-null path columns)."""
    cols = [c for c in frame.columns if c.startswith(prefix)]
    out: dict[str, list[Candidate]] = {}
    for row in frame.sort("trigger_id", "rank").iter_rows(named=True):
        paths = {c[len(prefix) :]: row[c] for c in cols if row[c] is not None}
        out.setdefault(row["trigger_id"], []).append(Candidate(row["item_id"], row["score"], paths))
    return out


def _ids_with_engagement(sessions: pl.DataFrame, rule: str) -> list[str]:
    """Items with a satisfied engagement in a session with at least two satisfied items
    (the possible triggers of an impression with a click)."""
    from knowrec.similarity.coclick import satisfied

    good = satisfied(sessions, rule).select("session_id", pl.col("item_id").cast(pl.String))
    good = good.unique().filter(pl.len().over("session_id") >= 2)
    return sorted(good["item_id"].unique().to_list())


def _sample(ids: Sequence[str], n: int, seed: int) -> list[str]:
    if n >= len(ids):
        return list(ids)
    rng = np.random.default_rng(seed)
    return [ids[i] for i in sorted(rng.choice(len(ids), size=n, replace=False))]


# ------------------------------------------------------------------------------ stages


def prepare_data(cfg: ExploreData) -> Dataset:
    """The data set with string ids and (optionally) the title leading each text."""
    data = load_data(cfg)
    items = data.items.with_columns(pl.col("item_id").cast(pl.String))
    if "text" not in items.columns:
        raise ConfigError(
            "Explore Further needs item text: set data.items (a text column) or data.text_table"
        )
    if cfg.title_in_text and "title" in items.columns:
        items = items.with_columns(
            text=pl.when(pl.col("text").is_not_null())
            .then(pl.col("title") + "\n" + pl.col("text"))
            .otherwise(pl.col("title"))
        )
    inter = data.interactions.with_columns(pl.col("item_id").cast(pl.String))
    return Dataset(inter, items, data.users, data.meta)


def vector_cache(cfg: ExploreConfig, run_dir: Path) -> Path:
    """The text-vector cache: ``vector_cache`` from the config or one in the run."""
    return Path(cfg.vector_cache) if cfg.vector_cache else run_dir / "vectors.sqlite"


def encode_items(items: pl.DataFrame, model: str, cache: Path) -> tuple[list[str], np.ndarray]:
    from knowrec.encoders import Encoder

    rows = items.filter(pl.col("text").is_not_null() & (pl.col("text").str.len_chars() > 0))
    return rows["item_id"].to_list(), Encoder(model, cache=cache).encode(rows["text"].to_list())


def make_sessions(data: Dataset, cfg: ExploreConfig) -> dict[str, Any]:
    """fit | label | test sessions and the trigger samples (judged held-out triggers,
    judged label triggers, then every item by history popularity: the coverage order)."""
    from knowrec.explore import prepare_sessions, split_sessions

    s = cfg.sessions
    sessions = prepare_sessions(
        data.interactions.drop_nulls("timestamp"),
        gap_minutes=s.gap_minutes,
        min_clicks=s.min_clicks,
        resessionize=s.resessionize,
    ).with_columns(pl.col("session_id").cast(pl.String))
    parts = split_sessions(sessions, list(s.split))
    for name, part in parts.items():
        if part.is_empty():
            raise ConfigError(f"the {name} period has no session; change sessions.split")
    eval_ids = _sample(_ids_with_engagement(parts["test"], s.rule), cfg.judge.eval_triggers, s.seed)
    pool = [i for i in _ids_with_engagement(parts["label"], s.rule) if i not in set(eval_ids)]
    train_ids = _sample(pool, cfg.judge.train_triggers, s.seed + 1)
    history = pl.concat([parts["fit"], parts["label"]])
    pop = history.group_by("item_id").agg(n=pl.col("session_id").n_unique())
    items = data.items.select("item_id").join(pop, on="item_id", how="left")
    by_pop = items.sort(["n", "item_id"], descending=[True, False], nulls_last=True)
    first = eval_ids + train_ids
    order = first + [i for i in by_pop["item_id"].to_list() if i not in set(first)]
    return {**parts, "triggers": {"eval": eval_ids, "train": train_ids, "order": order}}


class Resources:
    """Objects shared by the stages and passed to recall paths by parameter name; the LLM
    is created on first use (or given by the caller) and closed by :meth:`close`."""

    def __init__(
        self, cfg: ExploreConfig, run_dir: Path, vectors: tuple[list[str], np.ndarray], llm: Any
    ) -> None:
        self.cfg, self.run_dir, self.vectors = cfg, run_dir, vectors
        self._llm, self._own_llm = llm, llm is None
        self._encoder: Any = None

    @property
    def llm(self) -> Any:
        if self._llm is None:
            from knowrec.llm import make_llm

            c = self.cfg.llm
            self._llm = make_llm(
                c.backend, model=c.model, cache=self.run_dir / "llm-cache.sqlite", **c.settings
            )
        return self._llm

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from knowrec.encoders import Encoder

            self._encoder = Encoder(self.cfg.encoder, cache=vector_cache(self.cfg, self.run_dir))
        return self._encoder

    def llm_id(self) -> str:
        return (
            f"{self.cfg.llm.backend}:{self.cfg.llm.model}"
            if self._own_llm
            else str(getattr(self._llm, "model_id", "given"))
        )

    def close(self) -> None:
        if self._own_llm and self._llm is not None:
            self._llm.close()
            self._llm = None


def build_path(spec: PathSpec, res: Resources) -> Any:
    """A new recall path from its spec, shared resources passed by parameter name."""
    from knowrec.retrieval import make_recall_path, recall_path_class

    accepted = set(recall_path_class(spec.kind).param_names())
    params = dict(spec.params)
    if spec.name:
        params["name"] = spec.name
    shared: dict[str, Callable[[], Any]] = {"rule": lambda: res.cfg.sessions.rule}
    if spec.text_vectors and "encoder" not in params:
        shared["vectors"] = lambda: res.vectors
    shared["llm"] = lambda: res.llm
    shared["encoder"] = lambda: res.encoder
    for key, make in shared.items():
        if key in accepted and key not in params:
            params[key] = make()
    return make_recall_path(spec.kind, **params)


def recall_stage(
    cfg: ExploreConfig,
    history: pl.DataFrame,
    items: pl.DataFrame,
    order: Sequence[str],
    res: Resources,
    out: Path,
    *,
    save_online: bool,
) -> None:
    """Fit every path on ``history``; write each one's lists (and failures, timings)."""
    every = items["item_id"].to_list()
    per_path: Lists = {}
    report: dict[str, Any] = {}
    for spec in cfg.recall.paths:
        path = build_path(spec, res)
        t0 = time.perf_counter()
        path.fit(history, items)
        fit_s = time.perf_counter() - t0
        triggers = list(order[: spec.max_triggers]) if spec.max_triggers else every
        t0 = time.perf_counter()
        per_path[path.name] = path.recall(triggers, cfg.recall.k)
        recall_s = time.perf_counter() - t0
        answered = sum(1 for c in per_path[path.name].values() if c)
        report[path.name] = {
            "fit_s": round(fit_s, 3),
            "recall_ms_per_trigger": round(1e3 * recall_s / max(len(triggers), 1), 4),
            "asked": len(triggers),
            "answered": answered,
            "failures": dict(list(path.failures.items())[:20]),
            "n_failures": len(path.failures),
        }
        log.info(
            "recall path %s: fit %.1fs, %d/%d answered", path.name, fit_s, answered, len(triggers)
        )
        if save_online and spec.online:
            path.save(out / "paths" / path.name)
    _lists_frame(per_path).write_parquet(out / "lists.parquet")
    (out / "paths.json").write_text(json.dumps(report, indent=2))


def _load_lists(d: Path, cfg: ExploreConfig) -> tuple[Lists, dict[str, Any]]:
    names = [p.label for p in cfg.recall.paths]
    return _frame_lists(pl.read_parquet(d / "lists.parquet"), names), json.loads(
        (d / "paths.json").read_text()
    )


def merge_weights(per_path: Lists, truth: pl.DataFrame, k: int) -> dict[str, float]:
    """Each path's recall@k on the label period over the triggers it answered, relative
    to the best path (1.0 for a path that answered no evaluable trigger)."""
    from knowrec.explore import recall_by_path

    recall: dict[str, float] = {}
    for name, lists in per_path.items():
        answered = {t: c for t, c in lists.items() if c}
        sub = truth.filter(pl.col("trigger_id").is_in(list(answered)))
        if not answered or sub.is_empty():
            continue
        row = recall_by_path({name: answered}, sub, k=k).row(0, named=True)
        recall[name] = float(row[f"recall@{k}"])
    best = max(recall.values(), default=0.0)
    return {p: (recall[p] / best if p in recall and best > 0 else 1.0) for p in per_path}


def candidates_stage(
    cfg: ExploreConfig,
    lists_fit: Lists,
    lists_serve: Lists,
    label: pl.DataFrame,
    vectors: tuple[list[str], np.ndarray],
    out: Path,
) -> None:
    """Merged candidate frames of both periods for both sets; the served store."""
    from knowrec.explore import coengagement_pairs
    from knowrec.retrieval import candidate_frame, merge_candidates, store_candidates

    r, s = cfg.recall, cfg.sessions
    truth = coengagement_pairs(label, rule=s.rule, max_session_items=s.max_session_items)
    names = r.sets()
    weights = {}
    for set_name, paths in names.items():
        sub = {p: lists_fit[p] for p in paths}
        w = merge_weights(sub, truth, r.k) if r.weights == "label_recall" else {}
        weights[set_name] = w
        for period, lists in (("fit", lists_fit), ("serve", lists_serve)):
            merged = merge_candidates(
                {p: lists[p] for p in paths},
                k=r.k,
                weights=w or None,
                rrf_k=r.rrf_k,
                vectors=vectors,
                near_duplicate=r.near_duplicate,
            )
            candidate_frame(merged, paths).write_parquet(out / f"{set_name}_{period}.parquet")
            if set_name == "full" and period == "serve":
                store = open_store(cfg.store, out / "candidates", cfg.name, create=True)
                with store:
                    n = store_candidates(store, merged)
                log.info("candidate store: %d triggers (%s)", n, cfg.store.backend)
    (out / "merge.json").write_text(json.dumps({"weights": weights, "paths": names}, indent=2))


def _impressions(
    sessions: pl.DataFrame, cands: pl.DataFrame, cfg: ExploreConfig, per_session: int, seed: int
) -> pl.DataFrame:
    from knowrec.explore import click_impressions

    keys = cands.select("trigger_id", "item_id")
    return click_impressions(
        sessions,
        keys,
        rule=cfg.sessions.rule,
        max_triggers_per_session=per_session,
        max_session_items=cfg.sessions.max_session_items,
        seed=seed,
    )


def _features(history: pl.DataFrame, now: datetime, cfg: RankerConfig, rule: str) -> Any:
    from knowrec.ranking import CoEngagementFeatures

    return CoEngagementFeatures(rule=rule, windows_days=cfg.windows_days).fit(history, now=now)


def _with_features(
    frame: pl.DataFrame, feats: Any, cands: pl.DataFrame
) -> tuple[pl.DataFrame, list[str]]:
    """``frame`` (trigger_id, item_id, …) with the co-engagement features and the
    candidates' provenance columns (path scores, fusion score, rank, number of paths)."""
    from knowrec.ranking import ColumnFeatures, build_features, path_columns

    prov = path_columns(cands)
    frame = frame.join(
        cands.select("trigger_id", "item_id", *prov),
        on=["trigger_id", "item_id"],
        how="left",
        maintain_order="left",
    )
    return build_features(frame, [feats, ColumnFeatures(prov)])


def stage1_stage(
    cfg: ExploreConfig, sess: dict[str, Any], cand: dict[str, pl.DataFrame], out: Path
) -> None:
    """Per set: stage-1 LightGBM trained on label impressions (features from *fit*),
    scores of every served pair (features from *fit + label*)."""
    from knowrec.ranking import LGBMRanker

    rule = cfg.sessions.rule
    feats_fit = _features(sess["fit"], sess["label"]["timestamp"].min(), cfg.stage1, rule)
    history = pl.concat([sess["fit"], sess["label"]])
    feats_serve = _features(history, sess["test"]["timestamp"].min(), cfg.stage1, rule)
    feats_fit.save(out / "features_fit")
    feats_serve.save(out / "features")
    info: dict[str, Any] = {}
    for set_name in SETS:
        fit_c, serve_c = cand[f"{set_name}_fit"], cand[f"{set_name}_serve"]
        train = _impressions(
            sess["label"], fit_c, cfg, cfg.sessions.train_triggers_per_session, cfg.sessions.seed
        )
        train, names = _with_features(train, feats_fit, fit_c)
        if train.is_empty() or train["clicked"].sum() == 0:
            raise ConfigError(f"no label impression with a click for the {set_name} candidates")
        ranker = LGBMRanker(names, **cfg.stage1.params).fit(train, label="clicked", group="group")
        ranker.save(out / f"ranker_{set_name}")
        pairs, _ = _with_features(serve_c.select("trigger_id", "item_id"), feats_serve, serve_c)
        pairs = pairs.with_columns(stage1=pl.Series(ranker.predict(pairs)))
        train = train.with_columns(stage1=pl.Series(ranker.predict(train)))
        train.write_parquet(out / f"train_{set_name}.parquet")
        pairs.write_parquet(out / f"pairs_{set_name}.parquet")
        info[set_name] = {
            "features": names,
            "label_impressions": int(train["group"].n_unique()),
            "label_rows": train.height,
            "importance": dict(list(ranker.feature_importance().items())[:10]),
        }
    (out / "stage1.json").write_text(json.dumps(info, indent=2))


def judge_pairs(
    cfg: ExploreConfig, triggers: Mapping[str, list[str]], cand: Mapping[str, pl.DataFrame]
) -> pl.DataFrame:
    """The pairs to judge: each sampled held-out trigger's first ``judge.candidates``
    served candidates of either set (``split = eval``) and, when a quality model learns
    from the judge, each sampled label trigger's first candidates of the full set in the
    *fit* period (``split = train``)."""
    m = cfg.judge.candidates
    parts = []
    for set_name in SETS:
        c = cand[f"{set_name}_serve"].filter(
            pl.col("trigger_id").is_in(triggers["eval"]) & (pl.col("rank") <= m)
        )
        parts.append(c.select("trigger_id", candidate_id="item_id", split=pl.lit("eval")))
    if cfg.final.quality != "none":
        c = cand["full_fit"].filter(
            pl.col("trigger_id").is_in(triggers["train"]) & (pl.col("rank") <= m)
        )
        parts.append(c.select("trigger_id", candidate_id="item_id", split=pl.lit("train")))
    return pl.concat(parts).unique(["trigger_id", "candidate_id", "split"], maintain_order=True)


def judge_stage(
    cfg: ExploreConfig, pairs: pl.DataFrame, items: pl.DataFrame, res: Resources, out: Path
) -> None:
    """The judge's 0–4 score of each pair (``quality``; null when the judge failed)."""
    from knowrec.judge import Judge

    j = cfg.judge
    table = pairs.with_columns(
        quality=pl.lit(None, pl.Float64), status=pl.lit("ok"), error=pl.lit(None, pl.String)
    )
    stats: dict[str, Any] = {"pairs": 0, "calls": 0, "seconds": 0.0}
    if pairs.height:
        judge = Judge(
            res.llm,
            noun=j.noun,
            personas=j.personas,
            variants=j.variant,
            item_tokens=j.item_tokens,
            reasoning_tokens=j.reasoning_tokens,
        )
        scores = judge.score(pairs.select("trigger_id", "candidate_id"), items)
        col = f"score_{j.variant.lower()}"
        table = pairs.with_columns(
            scores.select(pl.col(col).fill_nan(None).alias(QUALITY), "status", "error")
        )
        stats = asdict(judge.stats)
    stats |= {"llm": res.llm_id() if pairs.height else None, "variant": j.variant}
    table.write_parquet(out / "judged.parquet")
    (out / "judge.json").write_text(json.dumps(stats, indent=2))


def quality_stage(
    cfg: ExploreConfig,
    judged: pl.DataFrame,
    s1_dir: Path,
    vectors: tuple[list[str], np.ndarray],
    out: Path,
) -> None:
    """A LightGBM quality model on the judge's scores of the label triggers' pairs;
    features: text cosine and co-engagement counts from *fit*. ``lambdarank`` (default)
    learns grades 0–4 *within each trigger* (its judged candidates' rank spread over 0–4:
    the judge's absolute scores can be compressed, its order is what ranking needs);
    ``regression`` learns the judge's continuous score itself."""
    from knowrec.ranking import LGBMRanker, build_features

    train = judged.filter((pl.col("split") == "train") & pl.col(QUALITY).is_not_null())
    if train.height < 2:
        raise ConfigError(
            "final.quality = 'lgbm' needs judged label triggers: set judge.train_triggers"
        )
    params = {"objective": "lambdarank", **cfg.final.quality_params}
    rank = pl.col(QUALITY).rank("dense")
    grade = 4 * (rank.over("trigger_id") - 1) / (rank.max().over("trigger_id") - 1).clip(1)
    frame = train.select(
        "trigger_id",
        item_id="candidate_id",
        grade=pl.col(QUALITY).cast(pl.Float64)
        if params["objective"] == "regression"
        else grade.round().cast(pl.Int32),
        group=pl.col("trigger_id").rank("dense").cast(pl.Int64),
    )
    feats = CoEngagementFeatures.load(s1_dir / "features_fit")
    frame, names = build_features(frame, [feats])
    frame = frame.with_columns(sim_text=pl.Series(text_cosine(frame, vectors)))
    model = LGBMRanker([*names, "sim_text"], **params)
    model.fit(frame, label="grade", group="group").save(out / "model")
    (out / "quality.json").write_text(json.dumps({"train_pairs": frame.height}, indent=2))


def cross_encoder_stage(
    cfg: ExploreConfig, judged: pl.DataFrame, items: pl.DataFrame, s1_dir: Path, out: Path
) -> None:
    """The multitask cross-encoder: the click head on (a sample of) the label
    impressions, distilled from the stage-1 scores (the click teacher) in ``distill``
    mode; the quality head on the judged label pairs (the judge is the quality teacher).
    Then both head scores of every distinct training and served pair."""
    c = cfg.cross_encoder
    impressions = pl.read_parquet(s1_dir / "train_full.parquet")
    groups = impressions["group"].unique().sort()
    if c.max_train_groups is not None and groups.len() > c.max_train_groups:
        groups = groups.sample(c.max_train_groups, seed=cfg.sessions.seed)
        impressions = impressions.filter(pl.col("group").is_in(groups.implode()))
    clicks = impressions.select(
        "trigger_id",
        "item_id",
        group=pl.format("g{}", "group"),
        clicked=pl.col("clicked").cast(pl.Float64),
        click_teacher=pl.col("stage1"),
        quality_label=pl.lit(None, pl.Float64),
    )
    quality = judged.filter((pl.col("split") == "train") & pl.col(QUALITY).is_not_null())
    quality = quality.select(
        "trigger_id",
        item_id="candidate_id",
        group=pl.format("q{}", "trigger_id"),
        clicked=pl.lit(None, pl.Float64),
        click_teacher=pl.lit(None, pl.Float64),
        quality_label=pl.col(QUALITY),
    )
    frame = pl.concat([clicks, quality]).with_columns(quality_teacher=pl.col("quality_label"))
    params = {"group_col": "group", "progress": False, **c.params}
    model = cross_encoder_class(c)(**params).fit(frame, items)
    model.save(out / "model")
    keys = ["trigger_id", "item_id"]
    frames = {
        (kind, s): pl.read_parquet(s1_dir / f"{kind}_{s}.parquet", columns=keys)
        for kind in ("train", "pairs")
        for s in SETS
    }
    distinct = pl.concat(list(frames.values())).unique(maintain_order=True)
    click, quality_score = model.score_pairs(
        distinct["trigger_id"].to_list(), distinct["item_id"].to_list(), items, missing="nan"
    )
    heads = distinct.with_columns(
        click_score=pl.Series(click, dtype=pl.Float64),
        quality_score=pl.Series(quality_score, dtype=pl.Float64),
    )
    for (kind, s), f in frames.items():
        joined = f.join(heads, on=keys, how="left", maintain_order="left")
        joined.select("click_score", "quality_score").write_parquet(out / f"{kind}_{s}.parquet")
    info = {"train_rows": frame.height, "judged_pairs": quality.height, "scored": heads.height}
    (out / "cross_encoder.json").write_text(json.dumps(info, indent=2))


def stage2_stage(cfg: ExploreConfig, s1_dir: Path, ce_dir: Path, out: Path) -> None:
    """Per set: stage-2 LightGBM on the stage-1 features plus both head scores."""
    from knowrec.ranking import LGBMRanker

    info = {}
    for set_name in SETS:
        names = LGBMRanker.load(s1_dir / f"ranker_{set_name}").features
        names = [*names, "click_score", "quality_score"]
        frames = {}
        for kind in ("train", "pairs"):
            frame = pl.read_parquet(s1_dir / f"{kind}_{set_name}.parquet")
            heads = pl.read_parquet(ce_dir / f"{kind}_{set_name}.parquet")
            frames[kind] = pl.concat([frame, heads], how="horizontal")
        ranker = LGBMRanker(names, **cfg.stage2.params)
        ranker.fit(frames["train"], label="clicked", group="group").save(out / f"ranker_{set_name}")
        pl.DataFrame({"stage2": ranker.predict(frames["pairs"])}).write_parquet(
            out / f"pairs_{set_name}.parquet"
        )
        info[set_name] = dict(list(ranker.feature_importance().items())[:10])
    (out / "stage2.json").write_text(json.dumps(info, indent=2))


def scored_pairs(
    cfg: ExploreConfig,
    dirs: Mapping[str, Path | None],
    vectors: tuple[list[str], np.ndarray],
) -> dict[str, pl.DataFrame]:
    """Per set, every served pair with ``stage1``, the head scores and ``stage2`` when
    present, ``ranker`` (the last LightGBM stage) and ``quality`` (null without one)."""
    from knowrec.ranking import LGBMRanker

    out = {}
    s1, ce, s2, qm = (dirs.get(k) for k in ("stage1", "cross_encoder", "stage2", "quality"))
    assert s1 is not None
    for set_name in SETS:
        frame = pl.read_parquet(s1 / f"pairs_{set_name}.parquet")
        if ce is not None and s2 is not None:
            heads = pl.read_parquet(ce / f"pairs_{set_name}.parquet")
            stage2 = pl.read_parquet(s2 / f"pairs_{set_name}.parquet")
            frame = pl.concat([frame, heads, stage2], how="horizontal")
        frame = frame.with_columns(
            ranker=pl.col("stage2" if "stage2" in frame.columns else "stage1")
        )
        if cfg.final.quality == "cross_encoder":
            frame = frame.with_columns(pl.col("quality_score").alias(QUALITY))
        elif cfg.final.quality == "lgbm" and qm is not None:
            model = LGBMRanker.load(qm / "model")
            frame = frame.with_columns(
                pl.Series(QUALITY, quality_scores(model, frame, vectors), dtype=pl.Float64)
            )
        else:
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias(QUALITY))
        out[set_name] = frame
    return out


# ------------------------------------------------------------------------------ evaluation


@dataclass
class EvalFrames:
    """One candidate set's held-out evaluation rows: ``impressions`` (every test
    impression), ``judged`` (impressions of judged triggers cut to judged candidates,
    with ``judge``) and ``slates`` (each judged trigger's judged candidates)."""

    impressions: pl.DataFrame
    judged: pl.DataFrame
    slates: pl.DataFrame


def eval_frames(
    cfg: ExploreConfig, scored: pl.DataFrame, test: pl.DataFrame, judged: pl.DataFrame
) -> EvalFrames:
    keys = ["trigger_id", "item_id"]
    impr = _impressions(
        test, scored, cfg, cfg.sessions.test_triggers_per_session, cfg.sessions.seed + 1
    )
    cols = [c for c in ("ranker", QUALITY, "final") if c in scored.columns]
    impr = impr.join(scored.select(*keys, *cols), on=keys, how="left", maintain_order="left")
    j = judged.filter((pl.col("split") == "eval") & pl.col(QUALITY).is_not_null())
    j = j.select("trigger_id", item_id="candidate_id", judge=QUALITY).unique(keys)
    return EvalFrames(
        impressions=impr,
        judged=impr.join(j, on=keys, how="inner", maintain_order="left"),
        slates=scored.select(*keys, *cols).join(j, on=keys, how="inner", maintain_order="left"),
    )


def _quiet(fn: Callable[[], float]) -> float:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def metrics_row(
    ev: EvalFrames, scores: Callable[[pl.DataFrame], np.ndarray], threshold: float
) -> dict[str, Any]:
    """ClickNDCG@5 (all held-out impressions), quality-filtered ClickNDCG@5 (judged
    triggers), RecoDCG@1 and @5 (judged triggers' slates), with their counts."""
    from knowrec.metrics import (
        click_ndcg_at_k,
        quality_filtered_click_ndcg_at_k,
        reco_dcg_at_k,
    )

    i, j, s = ev.impressions, ev.judged, ev.slates
    row: dict[str, Any] = {
        "ClickNDCG@5": _quiet(
            lambda: click_ndcg_at_k(i["clicked"].to_numpy(), scores(i), 5, i["group"].to_numpy())
        )
        if i.height
        else float("nan")
    }
    row["QF ClickNDCG@5"] = (
        _quiet(
            lambda: quality_filtered_click_ndcg_at_k(
                j["clicked"].to_numpy(),
                scores(j),
                j["judge"].to_numpy(),
                5,
                j["group"].to_numpy(),
                threshold,
            )
        )
        if j.height and j["clicked"].sum()
        else float("nan")
    )
    for k in (1, 5):
        row[f"RecoDCG@{k}"] = (
            _quiet(
                lambda k=k: reco_dcg_at_k(
                    s["judge"].to_numpy(), scores(s), k, s["trigger_id"].to_numpy()
                )
            )
            if s.height
            else float("nan")
        )
    row["impressions"] = int(i["group"].n_unique()) if i.height else 0
    row["judged impressions"] = (
        int(j.filter(pl.col("clicked").max().over("group") > 0)["group"].n_unique())
        if j.height
        else 0
    )
    row["judged triggers"] = int(s["trigger_id"].n_unique()) if s.height else 0
    return row


def choose_combination(cfg: ExploreConfig, full: pl.DataFrame, ev: EvalFrames) -> Combination:
    """z-statistics from every served pair (the traffic sample); λ fixed by the config or
    chosen from the sweep of quality-filtered ClickNDCG@5 against RecoDCG@5 on the judged
    held-out triggers (the paper's trade-off curve)."""
    from knowrec.metrics import quality_filtered_click_ndcg_at_k, reco_dcg_at_k
    from knowrec.ranking import ZScore, choose_lambda, lambda_sweep

    ranker_z = ZScore.fit(full["ranker"].to_numpy())
    q = full[QUALITY].cast(pl.Float64).drop_nulls().to_numpy()
    if cfg.final.quality == "none" or not np.isfinite(q).any():
        return Combination(0.0, ranker_z, None, chosen_by="no quality model: λ = 0")
    quality_z = ZScore.fit(q)
    # Equal scores can still have a std of ~1e-17 (the mean's rounding): test the values.
    if quality_z.std == 0 or np.ptp(q[np.isfinite(q)]) == 0:
        why = "the quality model gives one constant score (too few judged labels?): not used"
        return Combination(0.0, ranker_z, None, chosen_by=why)
    j, s = ev.judged, ev.slates
    fixed = cfg.final.fixed_lambda
    if not (j.height and j["clicked"].sum() and s.height):
        lam = 0.0 if fixed is None else fixed
        why = "fixed by the config" if fixed is not None else "no judged held-out trigger: λ = 0"
        return Combination(lam, ranker_z, quality_z, chosen_by=why)
    n = j.height
    both = pl.concat([j.select("ranker", QUALITY), s.select("ranker", QUALITY)])
    clicked, jg, judge_j = j["clicked"].to_numpy(), j["group"].to_numpy(), j["judge"].to_numpy()
    sj, st = s["judge"].to_numpy(), s["trigger_id"].to_numpy()
    thr = cfg.judge.threshold
    points = lambda_sweep(
        both["ranker"].to_numpy(),
        both[QUALITY].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
        lambda x: _quiet(
            lambda: quality_filtered_click_ndcg_at_k(clicked, x[:n], judge_j, 5, jg, thr)
        ),
        lambda x: _quiet(lambda: reco_dcg_at_k(sj, x[n:], 5, st)),
        lambdas=cfg.final.lambdas,
        ranker_z=ranker_z,
        quality_z=quality_z,
    )
    if fixed is not None:
        return Combination(fixed, ranker_z, quality_z, points, "fixed by the config")
    finite = [p for p in points if np.isfinite(p.metric_a) and np.isfinite(p.metric_b)]
    if not finite:
        return Combination(0.0, ranker_z, quality_z, points, "sweep undefined: λ = 0")
    best = choose_lambda(finite, max_drop_a=cfg.final.max_drop)
    why = (
        f"largest RecoDCG@5 with quality-filtered ClickNDCG@5 within {cfg.final.max_drop:.0%} "
        "of λ = 0, on the same held-out judged triggers (as in the paper)"
    )
    return Combination(best.lam, ranker_z, quality_z, points, why)


def table5(
    cfg: ExploreConfig, evs: Mapping[str, EvalFrames], combs: Mapping[str, Combination]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows shaped like the paper's Table 5 and notes on the rows left out."""
    r = cfg.recall
    sets = r.sets()
    extra = [p for p in r.paths if p.label in set(sets["full"]) - set(sets["baseline"])]
    kinds = {p.kind for p in extra}
    extra_name = "Q'" if not extra or kinds == {"qprime"} else "+".join(p.label for p in extra)
    quality = combs["full"].quality_z is not None
    rows, notes = [], []
    specs = [
        ("baseline stack", "baseline", False),
        ("+ quality-aware ranking", "baseline", True),
        (f"+ {extra_name} recall", "full", False),
        (f"+ quality-aware ranking + {extra_name} recall", "full", True),
    ]
    for label, set_name, with_quality in specs:
        if set_name == "full" and not extra:
            notes.append(
                f"'{label}' omitted: no recall path beyond the baseline stack "
                "(add a `qprime` path to [recall])"
            )
            continue
        if with_quality and not quality:
            notes.append(
                f"'{label}' omitted: no quality score (final.quality = "
                f"'{cfg.final.quality}'; {combs['full'].chosen_by})"
            )
            continue
        ev = evs[set_name]
        comb = combs[set_name]
        lam = comb.lam if with_quality else 0.0
        row = {
            "system": label,
            "paths": ", ".join(sets[set_name]),
            "λ": lam,
        }
        scores = comb if with_quality else (lambda f: f["ranker"].to_numpy())
        rows.append(row | metrics_row(ev, scores, cfg.judge.threshold))
    return rows, notes


def path_recall(
    cfg: ExploreConfig, lists: Lists, test: pl.DataFrame, full: pl.DataFrame
) -> pl.DataFrame:
    from knowrec.explore import coengagement_pairs, recall_by_path

    s = cfg.sessions
    truth = coengagement_pairs(test, rule=s.rule, max_session_items=s.max_session_items)
    return recall_by_path(lists, truth, k=cfg.recall.k, merged=frame_candidates(full))


# ------------------------------------------------------------------------------ runner


def protocol_text(cfg: ExploreConfig) -> str:
    s, j, r = cfg.sessions, cfg.judge, cfg.recall
    return (
        f"data={cfg.data.source}; sessions "
        + ("as logged" if not s.resessionize else "")
        + f" (else cut at {s.gap_minutes:g} min, ≥ {s.min_clicks} rows); whole sessions split "
        f"in time at session-start quantiles {s.split[0]:g} / {s.split[1]:g} into fit | label "
        f"| test; satisfied engagement (a click) = {s.rule}. Recall paths fitted on fit answer "
        f"the label period (ranker training, merge weights = each path's label recall@{r.k} "
        f"over the triggers it answered); refitted on fit + label they give the served "
        f"candidates (≤ {r.k} per trigger, near-duplicates by text cosine ≥ "
        f"{r.near_duplicate:g} dropped), evaluated on test. Ranker features come from the "
        f"sessions before each period. Impressions: one per (test session, satisfied trigger, "
        f"≤ {s.test_triggers_per_session} per session), slate = the trigger's candidates, "
        f"relevance 100 for candidates the same session also engaged with satisfaction "
        f"(ClickNDCG@5). The LLM judge (variant {j.variant}, {j.personas} judge(s)) scores "
        f"the first {j.candidates} merged candidates of {j.eval_triggers} held-out triggers "
        f"drawn at random (seed {s.seed}) among test triggers; RecoDCG@k ranks each judged "
        f"trigger's judged candidates; quality-filtered ClickNDCG@5 uses the impressions of "
        f"judged triggers cut to judged candidates, dropping those with a click judged ≤ "
        f"{j.threshold:g}."
    )


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
        lists, info = _load_lists(d, cfg)
        return lists, info, d

    fit_lists, _, _ = run.stage(
        "recall-fit",
        recall_params,
        lambda d: recall_stage(cfg, sess["fit"], data.items, order, res, d, save_online=False),
        loader,
        after=["sessions", "vectors"],
    )
    history = pl.concat([sess["fit"], sess["label"]])
    serve_lists, serve_info, serve_dir = run.stage(
        "recall-serve",
        recall_params,
        lambda d: recall_stage(cfg, history, data.items, order, res, d, save_online=True),
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
        lambda d: candidates_stage(cfg, fit_lists, serve_lists, sess["label"], vectors, d),
        load_cands,
        after=["recall-fit", "recall-serve"],
    )
    s1_dir = run.stage(
        "stage1",
        {"stage1": cfg.stage1.model_dump(), "sessions": cfg.sessions.model_dump()},
        lambda d: stage1_stage(cfg, sess, cand, d),
        lambda d: d,
        after=["candidates"],
    )
    pairs = judge_pairs(cfg, sess["triggers"], cand)
    console.print(
        f"judge: {pairs.height} pairs (real LLM, cached in {run.dir / 'llm-cache.sqlite'})"
    )
    judge_dir = run.stage(
        "judge",
        {"judge": cfg.judge.model_dump(), "llm": res.llm_id(), "quality": cfg.final.quality},
        lambda d: judge_stage(cfg, pairs, data.items, res, d),
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
            lambda d: cross_encoder_stage(cfg, judged, data.items, s1_dir, d),
            lambda d: d,
            after=["stage1", "judge"],
        )
        dirs["cross_encoder"] = ce_dir
        dirs["stage2"] = run.stage(
            "stage2",
            cfg.stage2.model_dump(),
            lambda d: stage2_stage(cfg, s1_dir, ce_dir, d),
            lambda d: d,
            after=["cross-encoder"],
        )
    if cfg.final.quality == "lgbm":
        dirs["quality"] = run.stage(
            "quality",
            {"params": cfg.final.quality_params, "grades": "rank within trigger, 0-4"},
            lambda d: quality_stage(cfg, judged, s1_dir, vectors, d),
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
    rows, notes = table5(cfg, evs, combs)
    recall = path_recall(cfg, serve_lists, sess["test"], cand["full_serve"])
    manifest = serving_manifest(cfg, run, serve_dir, cand_dir, dirs, comb, scores_dir)
    (run.dir / SERVING_FILE).write_text(json.dumps(manifest, indent=2))
    examples = _examples(run.dir, sess["triggers"]["eval"][:3] or order[:3])
    return _report(
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
        examples,
        console,
    )


def _write_scores(cfg: ExploreConfig, full: pl.DataFrame, directory: Path) -> None:
    """Every served pair's scores as a second store: trigger → candidates best first,
    ``score`` = final, ``paths`` = each stage's score (what ``recommend`` reads)."""
    from knowrec.retrieval import store_candidates

    cols = [
        c
        for c in ("stage1", "click_score", "quality_score", "stage2", "ranker", QUALITY)
        if c in full.columns
    ]
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
) -> dict[str, Any]:
    """What :class:`ExploreService` loads (paths relative to the run directory)."""

    def rel(p: Path | None, *parts: str) -> str | None:
        return None if p is None else str(p.joinpath(*parts).relative_to(run.dir))

    def stage(name: str) -> Path:
        return run.dir / run.manifest["stages"][name]["folder"]

    merge = json.loads((cand_dir / "merge.json").read_text())
    ce = dirs["cross_encoder"]
    return {
        "name": cfg.name,
        "store": {**cfg.store.model_dump(), "path": rel(cand_dir, "candidates")},
        "scores": {**cfg.store.model_dump(), "path": rel(scores_dir, "scores")},
        "items": rel(stage("data"), "items.parquet"),
        "vectors": rel(stage("vectors"), "vectors.npz"),
        "paths": cfg.recall.sets()["full"],
        "online_paths": {
            p.label: rel(serve_dir, "paths", p.label) for p in cfg.recall.paths if p.online
        },
        "recall_k": cfg.recall.k,
        "rrf_k": cfg.recall.rrf_k,
        "weights": merge["weights"]["full"],
        "features": rel(dirs["stage1"], "features"),
        "stage1": rel(dirs["stage1"], "ranker_full"),
        "cross_encoder": None
        if ce is None
        else {
            "model": rel(ce, "model"),
            "kind": cfg.cross_encoder.kind,
            "module": cfg.cross_encoder.module,
        },
        "stage2": rel(dirs["stage2"], "ranker_full"),
        "quality": cfg.final.quality,
        "quality_model": rel(dirs["quality"], "model"),
        "combination": comb.to_dict() | {"sweep": []},
        "k": cfg.serve.k,
    }


def _examples(run_dir: Path, triggers: Sequence[str], k: int = 5) -> list[dict[str, Any]]:
    """Recommendations of a few triggers through the online flow (the demo rows)."""
    rows = []
    with ExploreService.load(run_dir) as service:
        for trigger in triggers:
            try:
                rec = service.recommend(trigger, k)
            except KnowrecError as exc:
                rows.append({"trigger": trigger, "error": str(exc)})
                continue
            for item in rec.items:
                rows.append(
                    {
                        "trigger": f"{rec.trigger_title} ({trigger})",
                        "rank": item.rank,
                        "recommendation": f"{item.title} ({item.item_id})",
                        "score": item.score,
                        "paths": _provenance(item.paths),
                    }
                )
    return rows


def _provenance(paths: Mapping[str, float]) -> str:
    return ", ".join(f"{p} {v:.3g}" for p, v in paths.items())


T5_MISSING = "not measured: needs the LLM judge's scores of held-out triggers (judge.eval_triggers)"
RECALL_MISSING = "unique hits are counted per path, not for the union or the merged list"


def _report(
    cfg: ExploreConfig,
    run: Run,
    triggers: Mapping[str, list[str]],
    rows: list[dict[str, Any]],
    notes: list[str],
    recall: pl.DataFrame,
    comb: Combination,
    serve_info: dict[str, Any],
    s1_dir: Path,
    judge_dir: Path,
    judged: pl.DataFrame,
    examples: list[dict[str, Any]],
    console: Console,
) -> dict[str, Any]:
    from knowrec.ranking import tradeoff_figure

    k = cfg.recall.k
    stage1 = json.loads((s1_dir / "stage1.json").read_text())
    judge_stats = json.loads((judge_dir / "judge.json").read_text())
    judge_stats["failed_pairs"] = int(judged[QUALITY].null_count())
    t5_protocol = (
        "ClickNDCG@5 on every held-out impression of the set's candidates; quality-filtered "
        "ClickNDCG@5 and RecoDCG@1/@5 on the judged held-out triggers (see protocol). "
        f"Ranking without quality: the last LightGBM stage; with quality: (1−λ)·z(ranker) + "
        f"λ·z(quality), quality from '{cfg.final.quality}', λ = {comb.lam:g} ({comb.chosen_by})."
    )
    recall_protocol = (
        f"recall@{k} of each path's top {k} (fitted on fit + label) against the co-engaged "
        f"pairs (rule {cfg.sessions.rule}) of test sessions, over every trigger asked with a "
        "held-out pair (a trigger a path was not asked counts as 0); unique = pairs found "
        "by that path alone; merged = the served ≤ k list."
    )
    results: dict[str, Any] = {
        "protocol": protocol_text(cfg),
        "table5": {"protocol": t5_protocol, "rows": rows, "omitted": notes},
        "recall": {"protocol": recall_protocol, "rows": recall.to_dicts(), "paths": serve_info},
        "lambda_sweep": {
            "protocol": "the full set's judged held-out triggers; x = quality-filtered "
            "ClickNDCG@5, y = RecoDCG@5",
            **comb.to_dict(),
        },
        "stage1": stage1,
        "judge": judge_stats,
        "judged_triggers": {"eval": triggers["eval"], "train": triggers["train"]},
        "examples": examples,
        "stages": run.manifest["stages"],
    }
    (run.dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    figures = []
    if comb.sweep:
        chosen = next((p for p in comb.sweep if p.lam == comb.lam), None)
        figures.append(tradeoff_figure(comb.sweep, chosen=chosen))
    recall_figure = group_figure(
        recall["path"].to_list(), {f"recall@{k}": recall[f"recall@{k}"]},
        ylabel=f"recall@{k}", title="held-out recall per path", points=False,
    )  # fmt: skip
    sections = [
        ReportSection("Protocol", notes=protocol_text(cfg)),
        ReportSection(
            "Table 5 — recall and ranking variants (held-out sessions)",
            rows,
            notes=t5_protocol + ("\n" + "\n".join(notes) if notes else ""),
            missing=T5_MISSING,
        ),
        ReportSection(
            f"Per-path recall@{k} and unique contribution",
            recall.to_dicts(),
            notes=recall_protocol,
            figures=[recall_figure],
            missing=RECALL_MISSING,
        ),
        ReportSection(
            "λ trade-off sweep",
            [
                {"λ": p.lam, "QF ClickNDCG@5": p.metric_a, "RecoDCG@5": p.metric_b}
                for p in comb.sweep
            ],
            notes=f"chosen λ = {comb.lam:g}: {comb.chosen_by}",
            figures=figures,
        ),
        ReportSection(
            "Stage-1 LightGBM (full set): top features by gain",
            [{"feature": f, "gain": g} for f, g in stage1["full"]["importance"].items()],
            notes=f"{stage1['full']['label_impressions']:,} label impressions, "
            f"{stage1['full']['label_rows']:,} rows",
        ),
        ReportSection(
            "LLM judge",
            [judge_stats] if judge_stats["pairs"] else [],
            empty="not run: no pair to judge (judge.eval_triggers = judge.train_triggers = 0)",
        ),
        ReportSection("Recommendations of a few triggers (online flow)", examples),
        ReportSection(
            "Stages",
            [{"stage": n, **v} for n, v in run.manifest["stages"].items()],
        ),
    ]
    paths = write_report(run.dir, f"Explore Further — {cfg.name}", sections)
    print_rows(console, "Table 5", rows, missing=T5_MISSING)
    for note in notes:
        console.print(note, style="dim", markup=False)
    print_rows(console, f"per-path recall@{k}", recall.to_dicts(), missing=RECALL_MISSING)
    console.print(f"λ = {comb.lam:g} ({comb.chosen_by}); report: {paths['report.html']}")
    return {**results, "report": str(paths["report.html"]), "run": str(run.dir)}


# ------------------------------------------------------------------------------ serving
