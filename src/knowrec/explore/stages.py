"""The work of Explore Further's offline stages (:mod:`knowrec.explore.pipeline` runs them
as cached stages): data and text vectors, sessions and judged triggers, recall paths,
merged candidates, stage-1 LightGBM, the judge, the cross-encoder, stage 2 and the
quality model."""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from knowrec.data.config import load_data
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError
from knowrec.explore.config import ExploreConfig, ExploreData, PathSpec
from knowrec.explore.service import cross_encoder_class, open_store
from knowrec.ranking import CoEngagementFeatures
from knowrec.ranking.cascade import RankingCascade, text_cosine
from knowrec.ranking.combine import QUALITY
from knowrec.retrieval.store import Candidate

log = logging.getLogger(__name__)

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


def _sample(ids: Sequence[str], n: int, seed: int, exclude: Sequence[str] = ()) -> list[str]:
    """n of ``ids`` not in ``exclude`` at random, in their order; a larger n keeps the
    smaller n's sample (so more judged triggers reuse the judge's cached answers)."""
    skip = set(exclude)
    shuffled = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    keep = set([i for i in shuffled if i not in skip][:n])
    return [i for i in ids if i in keep]


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
    label_ids = _ids_with_engagement(parts["label"], s.rule)
    train_ids = _sample(label_ids, cfg.judge.train_triggers, s.seed + 1, exclude=eval_ids)
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

            c, cache = self.cfg.llm, self.run_dir / "llm-cache.sqlite"
            if self.cfg.engine == "spark":  # judge and Q' batches as Spark jobs
                from knowrec.spark.llm import spark_llm

                out = self.run_dir / "llm-answers"
                self._llm = spark_llm(
                    c.backend, self.cfg.spark, out, model=c.model, cache=cache, **c.settings
                )
            else:
                self._llm = make_llm(c.backend, model=c.model, cache=cache, **c.settings)
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
    if res.cfg.engine == "spark":
        shared["spark"] = lambda: res.cfg.spark
    if spec.text_vectors and "encoder" not in params:
        shared["vectors"] = lambda: res.vectors
    shared["llm"] = lambda: res.llm
    shared["encoder"] = lambda: res.encoder
    for key, make in shared.items():
        if key in accepted and key not in params:
            params[key] = make()
    return make_recall_path(spec.kind, **params)


def fit_recall_paths(
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
        if "checkpoint_dir" in inspect.signature(path.fit).parameters:  # a torch path
            path.fit(history, items, checkpoint_dir=out / "checkpoints" / path.name)
        else:
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


def load_lists(d: Path, cfg: ExploreConfig) -> tuple[Lists, dict[str, Any]]:
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


def merge_candidate_sets(
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


def impressions(
    sessions: pl.DataFrame, cands: pl.DataFrame, cfg: ExploreConfig, per_session: int, seed: int
) -> pl.DataFrame:
    """Click impressions of ``sessions`` over the candidates ``cands`` (see
    :func:`knowrec.explore.data.click_impressions`)."""
    from knowrec.explore.data import click_impressions

    keys = cands.select("trigger_id", "item_id")
    return click_impressions(
        sessions,
        keys,
        rule=cfg.sessions.rule,
        max_triggers_per_session=per_session,
        max_session_items=cfg.sessions.max_session_items,
        seed=seed,
    )


def _features(history: pl.DataFrame, now: datetime, cfg: ExploreConfig, out: Path) -> Any:
    """Co-engagement features counted over ``history`` before ``now``, saved in ``out``;
    on Spark with ``engine = "spark"`` (the history goes through ``out/history.parquet``)."""
    rule, windows = cfg.sessions.rule, cfg.stage1.windows_days
    if cfg.engine == "spark":
        from knowrec.spark import spark_session
        from knowrec.spark.coengagement import fit_coengagement_features_spark

        out.mkdir(parents=True, exist_ok=True)
        source = out / "history.parquet"
        history.write_parquet(source)
        rows = spark_session(cfg.spark).read.parquet(str(source))
        fit_coengagement_features_spark(rows, out, rule=rule, windows_days=windows, now=now)
        source.unlink()
        return CoEngagementFeatures.load(out)
    feats = CoEngagementFeatures(rule=rule, windows_days=windows).fit(history, now=now)
    feats.save(out)
    return feats


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


def fit_stage1(
    cfg: ExploreConfig, sess: dict[str, Any], cand: dict[str, pl.DataFrame], out: Path
) -> None:
    """Per set: stage-1 LightGBM trained on label impressions (features from *fit*),
    scores of every served pair (features from *fit + label*)."""
    from knowrec.ranking import LGBMRanker

    feats_fit = _features(sess["fit"], sess["label"]["timestamp"].min(), cfg, out / "features_fit")
    history = pl.concat([sess["fit"], sess["label"]])
    feats_serve = _features(history, sess["test"]["timestamp"].min(), cfg, out / "features")
    info: dict[str, Any] = {}
    for set_name in SETS:
        fit_c, serve_c = cand[f"{set_name}_fit"], cand[f"{set_name}_serve"]
        train = impressions(
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


def judge_candidates(
    cfg: ExploreConfig, pairs: pl.DataFrame, items: pl.DataFrame, res: Resources, out: Path
) -> None:
    """The judge's 0–4 score of each pair (``quality``; null when the judge failed)."""
    from knowrec.judge import Judge
    from knowrec.knowledge import knowledge_texts

    j = cfg.judge
    table = pairs.with_columns(
        quality=pl.lit(None, pl.Float64), status=pl.lit("ok"), error=pl.lit(None, pl.String)
    )
    stats: dict[str, Any] = {"pairs": 0, "calls": 0, "seconds": 0.0}
    if pairs.height:
        knowledge = None
        if j.item_text != "raw" and j.knowledge is not None:
            knowledge = knowledge_texts(j.knowledge)
        judge = Judge(
            res.llm,
            noun=j.noun,
            personas=j.personas,
            variants=j.variant,
            item_tokens=j.item_tokens,
            reasoning_tokens=j.reasoning_tokens,
            seed=j.seed,
            item_text=j.item_text,
            knowledge=knowledge,
            both_directions=j.both_directions,
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


def fit_quality_model(
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


def fit_cross_encoder(
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
    model = cross_encoder_class(c)(**params).fit(frame, items, checkpoint_dir=out / "checkpoint")
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


def fit_stage2(cfg: ExploreConfig, s1_dir: Path, ce_dir: Path, out: Path) -> None:
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
    """Per set, every served pair with the scores of its :class:`RankingCascade`: the
    stage scores cached by the stages (stage 1, the heads, stage 2), then ``ranker`` and
    ``quality`` (null without a quality source)."""
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
        cascade = RankingCascade(
            features=None,
            stage1=None,
            quality=cfg.final.quality,
            quality_model=LGBMRanker.load(qm / "model") if qm is not None else None,
            vectors=vectors,
        )
        out[set_name] = cascade.score(frame)
    return out
