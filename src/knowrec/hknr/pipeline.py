"""HKNR (Knowledge-Augmented News Recommendation via LLM Recall, Temporal GNN Encoding,
and Multi-Task Ranking, 2025) end to end, as cached stages of a run directory:

1. ``data`` — the news log (the synthetic news world, NeMig, MIND, EB-NeRD …);
2. ``protocol`` — users split at random; history clicks and impression samples;
3. ``vectors`` — the frozen encoder's vector of every article (title + abstract);
4. ``knowledge`` — each article's entities and topic; entity vectors from the knowledge
   graph when the data has one;
5. ``recall`` — stage 1 on the test impressions: the clicked article's hit rate in the
   top K, against popular articles, and the index's recall against exact search;
6. ``train-<model>-s<seed>`` — HKNR (stages 2 + 3 trained together), its ablations and
   the trained baselines (NRMS, NeuMF, DIN), each scored on the test impressions;
7. the report: impression metrics of every model and of the baselines scored without
   training (popularity, encoder cosine, item-kNN, ALS), mean ± std over seeds.

    knowrec run configs/hknr_synthetic.toml
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console

from knowrec.config import load_config
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError
from knowrec.hknr.config import HknrConfig, NewsData
from knowrec.hknr.evaluate import (
    SOURCES,
    cascade_hit_rates,
    hit_rates,
    impression_metrics,
    stage1,
)
from knowrec.hknr.protocol import (
    POPULAR_HOURS,
    NewsProtocol,
    click_prior,
    make_news_protocol,
    published_times,
)
from knowrec.report import Section as ReportSection
from knowrec.report import mean_std, print_rows, summary_figure, write_report
from knowrec.retrieval.ann import AnnIndex
from knowrec.runs import Run, config_slice

#: HKNR's variants trained per seed: name → (config changes). ``hknr`` is the full method;
#: the trained baselines are :data:`knowrec.hknr.baselines.TRAINED`.
MODELS = {
    "hknr": {},
    "hknr w/o graph": {"graph": {"enabled": False}},
    "hknr w/o knowledge": {"ranker": {"knowledge": False}},
    "hknr w/o click prior": {"ranker": {"click_prior": False}},
}
METRICS = ("AUC", "MRR", "nDCG@5", "nDCG@10", "HitRate@1")
LOADED_STAGES = ("data", "protocol", "vectors", "knowledge")  # what a served run reads


def load_news(cfg: NewsData) -> Dataset:
    """The synthetic news world, or a news log from a path."""
    if cfg.source == "synthetic":
        from knowrec.data.synth import generate_world

        return generate_world(seed=cfg.seed, size=cfg.size).news
    from knowrec.data.config import load_data

    return load_data(cfg)


def article_text(items: pl.DataFrame, kind: str) -> list[str]:
    """Title (+ abstract/body), HTML tags and runs of spaces removed; the encoder cuts
    what is longer than its window (256 tokens)."""
    title = items["title"].fill_null("")
    body = items["abstract"] if "abstract" in items.columns else items.get_column("text")
    text = title if kind == "title" else title + ". " + body.fill_null("")
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", t)).strip() for t in text.to_list()]


def run_hknr(
    config: HknrConfig | str | Path,
    out: str | Path,
    console: Console | None = None,
    *,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Run every stage and write ``results.json``, ``results.md`` and ``report.html``."""
    cfg = load_config(config, HknrConfig, overrides)
    console = console or Console()
    run = Run(out, cfg.model_dump(mode="json"))

    data = run.stage(
        "data", config_slice(cfg.data), lambda d: load_news(cfg.data).save(d), Dataset.load
    )
    proto = run.stage(
        "protocol",
        {"split": cfg.split, "seed": cfg.split_seed},
        lambda d: _save_protocol(d, make_news_protocol(data, cfg.split, seed=cfg.split_seed)),
        _load_protocol,
        after=["data"],
    )
    run.record(protocol=proto.describe())
    console.print(f"protocol: {proto.describe()}")

    def encode(d: Path) -> None:
        from knowrec.encoders import Encoder

        x = Encoder(cfg.encoder, cache=run.dir / "vectors.sqlite").encode(
            article_text(data.items, cfg.data.text)
        )
        np.savez(d / "vectors.npz", ids=np.asarray(data.items["item_id"].to_list()), vectors=x)

    ids, vectors = run.stage(
        "vectors",
        {"encoder": cfg.encoder, "text": cfg.data.text},
        encode,
        _load_vectors,
        after=["data"],
    )
    knowledge = run.stage(
        "knowledge",
        {**config_slice(cfg.ranker, exclude=_NOT_KNOWLEDGE), "kg": cfg.data.kg},
        lambda d: _save_knowledge(d, _knowledge(cfg, data)),
        _load_knowledge,
        after=["data"],
    )
    index_kind = cfg.recall.index if len(ids) >= 20_000 else "flat"  # PQ needs many vectors

    def candidates(d: Path) -> None:
        index = AnnIndex(ids, vectors, kind=index_kind)
        _save_frames(d, stage1(proto, index, cfg.recall, published_times(data.items)))

    parts = run.stage(
        "recall",
        {**config_slice(cfg.recall), "index_kind": index_kind},
        candidates,
        _load_frames,
        after=["data", "protocol", "vectors"],
    )
    recall_info = {
        "k": cfg.recall.k,
        "index": index_kind,
        "articles": len(ids),
        "targets": parts["targets"].height,
        "queries": parts["queries"].height,
        "hit_rate": hit_rates(parts),
        "cascade": [],
    }

    world, samples = build_tensors(cfg, proto, ids, vectors, knowledge)
    test = samples["test"]
    y, group = test.label.numpy(), test.group.numpy()
    rows: list[dict[str, Any]] = []
    from knowrec.hknr import baselines

    test_frame = proto.samples["test"].filter(pl.col("item_id").is_in(ids))
    threads = cfg.train.threads or 1
    fixed: dict[str, Callable[[], np.ndarray]] = {
        "popularity": lambda: baselines.popularity_scores(proto.history, test_frame),
        "semantic": lambda: baselines.semantic_scores(world, test),
        "item_knn": lambda: baselines.item_knn_scores(world, test),
        "als": lambda: baselines.als_scores(world, samples["train"], test, num_threads=threads),
        "click_rate": lambda: test.prior.numpy(),
        "wide": lambda: baselines.wide_scores(world, samples["train"], test),
    }
    for name in cfg.baselines:
        if name in fixed:
            metrics = impression_metrics(y, fixed[name](), group)
            rows.append({"model": baselines.NAMES[name], "seed": 0, **metrics})
    training = config_slice(cfg, exclude=("name", "plugins", "seeds", "ablations", "baselines"))
    for model in _models(cfg):
        for seed in cfg.seeds:

            def train(d: Path, model: str = model, seed: int = seed) -> None:
                scores = _fit_model(cfg, model, seed, world, samples, d)
                np.save(d / "test_scores.npy", scores)

            scores = run.stage(
                train_stage(model, seed),
                {**training, "model": model, "seed": seed},
                train,
                lambda d: np.load(d / "test_scores.npy"),
                after=["protocol", "vectors", "knowledge"],
            )
            name = baselines.NAMES.get(model, model)
            row = {"model": name, "seed": seed, **impression_metrics(y, scores, group)}
            rows.append(row)
            console.print(f"{name} seed {seed}: AUC {row['AUC']:.4f}, MRR {row['MRR']:.4f}")
    for seed in cfg.seeds:  # the whole cascade: stage 1's candidates ranked by HKNR

        def cascade(d: Path, seed: int = seed) -> None:
            net = load_model(cfg, run, "hknr", seed, world)
            rates = cascade_hit_rates(net, world, proto, parts, cfg.graph.max_clicks)
            (d / "cascade.json").write_text(json.dumps(rates))

        recall_info["cascade"].append(
            run.stage(
                f"cascade-hknr-s{seed}",
                {**training, **config_slice(cfg.recall), "seed": seed},
                cascade,
                lambda d: json.loads((d / "cascade.json").read_text()),
                after=[train_stage("hknr", seed), "recall"],
            )
        )
    run.record_files(served_parts(run.dir, run.manifest))
    return _report(cfg, run, proto, recall_info, rows, console)


def served_parts(run: Path, manifest: dict[str, Any]) -> list[Path]:
    """What serving the run reads (:class:`~knowrec.hknr.recommend.HknrRecommender`): the
    folders of the stages :func:`load_stages` reads and the trained HKNR weights."""
    weights = trained_weights(run, manifest)
    return [*stage_folders(run, manifest).values(), weights]


def trained_weights(
    run: Path, manifest: dict[str, Any], model: str = "hknr", seed: int | None = None
) -> Path:
    """The saved weights of ``model`` trained with ``seed`` (the run's first by default);
    a clear error when that model has not been trained (yet)."""
    seed = manifest["config"]["seeds"][0] if seed is None else seed
    stage = manifest["stages"].get(train_stage(model, seed))
    weights = run / stage["folder"] / "model.pt" if stage else None
    if weights is None or not weights.exists():
        raise ConfigError(f"{run}: no trained {model!r} for seed {seed}; run it first")
    return weights


def load_model(cfg: HknrConfig, run: Run | Path, model: str, seed: int, world: Any) -> Any:
    """A trained model of a run (its ``model.pt``), in eval mode."""
    import torch

    if isinstance(run, Run):
        weights = trained_weights(run.dir, run.manifest, model, seed)
    else:
        weights = trained_weights(Path(run), _manifest(Path(run)), model, seed)
    net, _ = build_model(cfg, model, world)
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


def _manifest(run: Path) -> dict[str, Any]:
    return json.loads((run / "manifest.json").read_text())


def stage_folders(run: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """The folders of the stages :func:`load_stages` reads."""
    return {name: run / manifest["stages"][name]["folder"] for name in LOADED_STAGES}


def load_stages(out: str | Path) -> dict[str, Any]:
    """A finished (or running) run's cached stages: ``data`` (Dataset), ``protocol``,
    ``vectors`` (ids, matrix) and ``knowledge``."""
    run = Path(out)
    folders = stage_folders(run, _manifest(run))
    loaders = (Dataset.load, _load_protocol, _load_vectors, _load_knowledge)
    return {name: load(folders[name]) for name, load in zip(LOADED_STAGES, loaders, strict=True)}


def build_tensors(
    cfg: HknrConfig, proto: NewsProtocol, ids: list[str], vectors: np.ndarray, knowledge: Any
) -> tuple[Any, dict[str, Any]]:
    """The news world (articles, users, snapshot graphs) and the samples of every part,
    with each row's click prior."""
    from knowrec.hknr.fit import build_world, make_samples

    frames = proto.samples
    world = build_world(proto.history, list(frames.values()), ids, vectors, knowledge, cfg.graph)
    samples = {
        name: make_samples(
            frame.with_columns(click_prior(frames["train"], frame, own=name == "train")),
            proto.history,
            world,
            cfg.graph.max_clicks,
        )
        for name, frame in frames.items()
    }
    return world, samples


def train_stage(model: str, seed: int) -> str:
    """The stage name of one trained model: ``train-hknr_wo_graph-s0``."""
    return f"train-{model.replace(' ', '_').replace('/', '')}-s{seed}"


def build_model(cfg: HknrConfig, model: str, world: Any) -> tuple[Any, Any]:
    """The network of ``model`` (a name of :data:`MODELS` or of the trained baselines) and
    its objective (None: the network's own ``loss``)."""
    from knowrec.hknr.baselines import TRAINED
    from knowrec.hknr.fit import HknrNet, HknrObjective

    if model in TRAINED:
        return TRAINED[model](world), None
    changes = MODELS[model]
    graph = cfg.graph.model_copy(update=changes.get("graph", {}))
    ranker = cfg.ranker.model_copy(update=changes.get("ranker", {}))
    net = HknrNet(world, graph, ranker)
    return net, HknrObjective(net, ranker)


_NOT_KNOWLEDGE = (
    "dropout", "bce", "bpr", "reconstruction", "label_smoothing", "knowledge", "click_prior"
)  # fmt: skip


def _models(cfg: HknrConfig) -> list[str]:
    """HKNR, its ablations, then the trained baselines the config lists."""
    from knowrec.hknr.baselines import TRAINED

    names = ["hknr"]
    if cfg.ablations:
        names += ["hknr w/o graph", "hknr w/o knowledge", "hknr w/o click prior"]
    return names + [b for b in cfg.baselines if b in TRAINED]


def _knowledge(cfg: HknrConfig, data: Dataset) -> Any:
    from knowrec.hknr.knowledge import article_knowledge

    triples = None
    graph = data.meta.get("entity_graph")
    if cfg.data.kg and graph:
        from knowrec.data.nemig import load_entity_graph

        triples = load_entity_graph(graph)
    return article_knowledge(
        data.items,
        max_entities=cfg.ranker.max_entities,
        triples=triples,
        dim=cfg.ranker.entity_dim,
        seed=cfg.split_seed,
    )


def _fit_model(
    cfg: HknrConfig, model: str, seed: int, world: Any, samples: dict[str, Any], work: Path
) -> np.ndarray:
    """Train one model (checkpoints in ``work``: a killed run resumes) → test scores."""
    import torch

    from knowrec.hknr.fit import impression_batches, predict
    from knowrec.train import Trainer

    torch.manual_seed(seed)
    net, objective = build_model(cfg, model, world)
    if model in MODELS:
        train = samples["train"]
        net.ranker.fit_wide(net.scores(train), train.label)
    train_cfg = cfg.train.model_copy(update={"seed": seed})
    valid = samples["valid"]
    y, group = valid.label.numpy(), valid.group.numpy()
    trainer = Trainer(net, train_cfg, objective=objective, checkpoint_dir=work, name=model)
    fit = trainer.fit(
        impression_batches(samples["train"], train_cfg.batch_size, seed),
        validate=lambda: {
            k.lower(): v for k, v in impression_metrics(y, predict(net, valid), group).items()
        },
        resume=True,
    )
    torch.save(net.state_dict(), work / "model.pt")
    (work / "fit.json").write_text(json.dumps({**fit.to_dict(), "steps": len(fit.steps)}))
    return predict(net, samples["test"])


def _report(
    cfg: HknrConfig,
    run: Run,
    proto: NewsProtocol,
    recall_info: dict[str, Any],
    rows: list[dict[str, Any]],
    console: Console,
) -> dict[str, Any]:
    frame = pl.DataFrame(rows)
    table = []
    for model in frame["model"].unique(maintain_order=True).to_list():
        sel = frame.filter(pl.col("model") == model)
        table.append({"model": model, **{m: mean_std(sel[m].to_list()) for m in METRICS}})
    k = recall_info["k"]
    cascade = recall_info["cascade"]
    recall_rows = [
        {
            "candidates": f"{source} ({recall_info['index']})" if source == SOURCES[0] else source,
            f"HR@{k}": recall_info["hit_rate"][source],
            "HR@10 after HKNR": mean_std([c[source] for c in cascade]) if cascade else "—",
        }
        for source in SOURCES
    ]
    protocol = (
        f"data={cfg.data.source}; {proto.describe()}. Metrics per impression (its shown "
        "candidates), averaged over test impressions with a click; mean ± std over seeds "
        f"{cfg.seeds}. Every model reads the same frozen {cfg.encoder} article vectors."
    )
    sections = [
        ReportSection("Protocol", notes=protocol),
        ReportSection(
            "Ranking the shown candidates (test impressions)",
            table,
            figures=[
                f
                for f in [
                    summary_figure(
                        frame, "model", "AUC", ylabel="AUC", title="per-impression AUC (mean ± std)"
                    )
                ]
                if f is not None
            ],
        ),
        ReportSection(
            f"Stage 1 and the cascade: the clicked article among {k} candidates of "
            f"{recall_info['articles']:,}, and among HKNR's top 10 of them",
            recall_rows,
            notes=f"{recall_info['targets']:,} clicks of {recall_info['queries']:,} test "
            "impressions of users with history. Candidates: the semantic recall, the "
            f"articles most clicked (history and training impressions) in the "
            f"{POPULAR_HOURS:g} h before the impression (all clicks when the log has no "
            "times) and random articles, the user's history left "
            "out; HKNR ranks each source's candidates (mean ± std over seeds).",
        ),
    ]
    results = {"protocol": protocol, "models": table, "runs": rows, "recall": recall_info}
    (run.dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    paths = write_report(run.dir, f"HKNR — {cfg.name}", sections)
    print_rows(console, sections[1].title, table)
    print_rows(console, sections[2].title, recall_rows)
    console.print(f"report: {paths['report.html']}")
    return {**results, "report": str(paths["report.html"])}


def _save_frames(d: Path, frames: dict[str, pl.DataFrame]) -> None:
    for name, frame in frames.items():
        frame.write_parquet(d / f"{name}.parquet")


def _load_frames(d: Path) -> dict[str, pl.DataFrame]:
    return {p.stem: pl.read_parquet(p) for p in sorted(d.glob("*.parquet"))}


def _save_protocol(d: Path, proto: NewsProtocol) -> None:
    proto.history.write_parquet(d / "history.parquet")
    for name, frame in proto.samples.items():
        frame.write_parquet(d / f"samples_{name}.parquet")


def _load_protocol(d: Path) -> NewsProtocol:
    samples = {
        p.stem.removeprefix("samples_"): pl.read_parquet(p)
        for p in sorted(d.glob("samples_*.parquet"))
    }
    order = ["train", "valid", "test"]
    return NewsProtocol(pl.read_parquet(d / "history.parquet"), {n: samples[n] for n in order})


def _load_vectors(d: Path) -> tuple[list[str], np.ndarray]:
    saved = np.load(d / "vectors.npz")
    return [str(i) for i in saved["ids"]], saved["vectors"]


def _save_knowledge(d: Path, k: Any) -> None:
    arrays = {"entities": k.entities, "topics": k.topics}
    if k.entity_vectors is not None:
        arrays["entity_vectors"] = k.entity_vectors
    np.savez(d / "knowledge.npz", **arrays)
    vocab = {"items": k.item_ids, "entities": k.entity_vocab, "topics": k.topic_vocab}
    (d / "knowledge.json").write_text(json.dumps(vocab))


def _load_knowledge(d: Path) -> Any:
    from knowrec.hknr.knowledge import ArticleKnowledge

    z = np.load(d / "knowledge.npz")
    vocab = json.loads((d / "knowledge.json").read_text())
    return ArticleKnowledge(
        vocab["items"],
        z["entities"],
        z["topics"],
        vocab["entities"],
        vocab["topics"],
        z["entity_vectors"] if "entity_vectors" in z.files else None,
    )
