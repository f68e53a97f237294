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
from knowrec.hknr.config import HknrConfig, NewsData
from knowrec.hknr.protocol import NewsProtocol, click_prior, make_news_protocol
from knowrec.report import Section as ReportSection
from knowrec.report import mean_std, print_rows, summary_figure, write_report
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


def impression_metrics(y: np.ndarray, score: np.ndarray, group: np.ndarray) -> dict[str, float]:
    """Per-impression metrics averaged over impressions with a click (MIND's protocol).
    The rank metrics break ties at random (seeded): the log's candidate order carries
    the display position (on NeMig the first shown gets 38% of the clicks)."""
    import warnings

    from knowrec.metrics import gauc, mrr_at_k, ndcg_at_k

    rank = np.empty(len(score))
    rank[np.lexsort((np.random.default_rng(0).random(len(score)), score))] = np.arange(len(score))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "AUC": gauc(y, score, group),
            "MRR": mrr_at_k(y, rank, 10_000, group),
            "nDCG@5": ndcg_at_k(y, rank, 5, group),
            "nDCG@10": ndcg_at_k(y, rank, 10, group),
            "HitRate@1": mrr_at_k(y, rank, 1, group),
        }


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
    recall_info = run.stage(
        "recall",
        config_slice(cfg.recall),
        lambda d: (d / "recall.json").write_text(
            json.dumps(_evaluate_recall(cfg, proto, ids, vectors))
        ),
        lambda d: json.loads((d / "recall.json").read_text()),
        after=["protocol", "vectors"],
    )

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
    return _report(cfg, run, proto, recall_info, rows, console)


def load_stages(out: str | Path) -> dict[str, Any]:
    """A finished (or running) run's cached stages: ``data`` (Dataset), ``protocol``,
    ``vectors`` (ids, matrix) and ``knowledge``."""
    run = Path(out)
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    loaders = {
        "data": Dataset.load,
        "protocol": _load_protocol,
        "vectors": _load_vectors,
        "knowledge": _load_knowledge,
    }
    return {name: load(run / stages[name]["folder"]) for name, load in loaders.items()}


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


def _evaluate_recall(
    cfg: HknrConfig, proto: NewsProtocol, ids: list[str], vectors: np.ndarray
) -> dict[str, Any]:
    """Stage 1 on the test impressions' clicks: HR@K of the clicked article among all
    articles, for the semantic recall and for the K most clicked articles."""
    from knowrec.hknr.recall import recall
    from knowrec.retrieval.ann import AnnIndex

    k = cfg.recall.k
    kind = cfg.recall.index if len(ids) >= 20_000 else "flat"  # IVF-PQ needs many vectors
    index = AnnIndex(ids, vectors, kind=kind)
    test = proto.samples["test"]
    queries = test.select("impression_id", "user_id", "time").unique(
        "impression_id", maintain_order=True
    )
    found = recall(proto.history, queries, index, cfg.recall)
    clicked = test.filter(pl.col("label") == 1).join(
        queries.with_row_index("query"), on=["impression_id", "user_id"]
    )
    with_history = clicked.filter(pl.col("query").is_in(found["query"].unique().implode()))
    hits = with_history.join(found, on=["query", "item_id"], how="semi").height
    popular = proto.history.group_by("item_id").len().sort("len", descending=True)
    top = popular["item_id"].head(k).implode()
    pop_hits = with_history.filter(pl.col("item_id").is_in(top)).height
    n = max(with_history.height, 1)
    return {
        "k": k,
        "index": kind,
        "articles": len(ids),
        "clicks": with_history.height,
        "clicks_without_history": clicked.height - with_history.height,
        "semantic_hit_rate": hits / n,
        "popular_hit_rate": pop_hits / n,
        "random_hit_rate": min(1.0, k / len(ids)),
    }


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
    recall_rows = [
        {
            "candidates": f"semantic recall ({recall_info['index']})",
            f"HR@{k}": recall_info["semantic_hit_rate"],
        },
        {"candidates": f"{k} most clicked articles", f"HR@{k}": recall_info["popular_hit_rate"]},
        {
            "candidates": f"{k} random articles (expected)",
            f"HR@{k}": recall_info["random_hit_rate"],
        },
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
            f"Stage 1: the clicked article among the top {k} of {recall_info['articles']:,}",
            recall_rows,
            notes=f"{recall_info['clicks']:,} test clicks of users with history; "
            f"{recall_info['clicks_without_history']:,} clicks of users without history "
            "(cold users) are left out.",
        ),
    ]
    results = {"protocol": protocol, "models": table, "runs": rows, "recall": recall_info}
    (run.dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    paths = write_report(run.dir, f"HKNR — {cfg.name}", sections)
    print_rows(console, sections[1].title, table)
    print_rows(console, sections[2].title, recall_rows)
    console.print(f"report: {paths['report.html']}")
    return {**results, "report": str(paths["report.html"])}


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
