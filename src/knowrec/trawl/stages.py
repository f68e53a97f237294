"""The work of TRAWL's stages: the protocol, knowledge tables, their vectors, SWING
positives, one trained model (:func:`fit_and_score`) and the two floors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from knowrec.data.protocol import ctr_samples, reserve_history, split_users
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError
from knowrec.metrics import auc, log_loss
from knowrec.trawl.config import (
    FeaturesSection,
    KnowledgeSection,
    ProtocolConfig,
    SwingSection,
    TrawlConfig,
)

Variant = Literal["full", "no_cl", "no_adapter"]
ITEM_VECTORS = "item_vectors.npz"  # in a training stage's folder: ids, adapted vectors


def make_protocol(data: Dataset, cfg: ProtocolConfig) -> dict[str, pl.DataFrame]:
    """History (first n per user, never a sample) and train/valid/test CTR samples."""
    inter = data.interactions.drop_nulls("timestamp")
    guard = reserve_history(inter, n_first=cfg.history_first)
    samples = ctr_samples(guard["rest"], inter, max_len=cfg.max_len, label=cfg.label)
    parts = split_users(samples, cfg.split, seed=cfg.split_seed)
    if cfg.train_users < 1.0:
        users = parts["train"]["user_id"].unique().sort()
        keep = users.sample(fraction=cfg.train_users, seed=cfg.split_seed, shuffle=True)
        parts["train"] = parts["train"].filter(pl.col("user_id").is_in(keep.implode()))
    items = data.items["item_id"].sort()
    n_cold = round(cfg.cold_items * items.len())
    cold = items.sample(n_cold, seed=cfg.split_seed, shuffle=True).to_frame()
    parts["train"] = parts["train"].join(cold, on="item_id", how="anti")
    return {"history": guard["history"], **parts, "cold": cold}


def table_path(cfg: KnowledgeSection, method: str, side: str) -> Path | None:
    """``<tables_dir>/<table_prefix>_<side>_<method>.parquet``; None without ``tables_dir``."""
    if not cfg.tables_dir:
        return None
    return Path(cfg.tables_dir) / f"{cfg.table_prefix}_{side}_{method}.parquet"


def stored_table(cfg: KnowledgeSection, method: str, side: str) -> Path | None:
    """The stored table of ``method`` and ``side`` when it exists."""
    path = table_path(cfg, method, side)
    return path if path is not None and path.exists() else None


def knowledge_table(
    data: Dataset, history: pl.DataFrame, cfg: KnowledgeSection, method: str, side: str,
    cache: Path, *, engine: str = "local", spark: dict[str, Any] | None = None,
) -> pl.DataFrame:  # fmt: skip
    """A stored table from ``tables_dir`` when present, else generated (methods that need
    the LLM only when ``generate`` is true); with ``engine="spark"`` its batches are Spark
    jobs asking the ``openai`` backend's server (:func:`knowrec.spark.llm.spark_llm`)."""
    from knowrec.encoders import Encoder
    from knowrec.knowledge import KnowledgeGenerator, read_knowledge_texts

    # the extractive summaries' sentence vectors, cached beside the run's other vectors
    gen = KnowledgeGenerator(cfg.settings, encoder=Encoder(cache=cache.parent / "vectors.sqlite"))
    path = table_path(cfg, method, side)
    if path is not None and path.exists():  # its answered rows; a clear error if no such table
        return read_knowledge_texts(path)
    if path is not None and not cfg.generate and gen.uses_llm(method):
        raise ConfigError(f"knowledge table {path} is missing and generate = false")
    llm = None
    if gen.uses_llm(method):
        from knowrec.llm import make_llm

        if engine == "spark":  # the batches as Spark jobs, answers kept beside the cache
            from knowrec.spark.llm import spark_llm

            llm = spark_llm(
                cfg.backend, spark or {}, cache.parent / "llm-answers",
                model=cfg.model, cache=cache, **cfg.llm_settings,
            )  # fmt: skip
        else:
            llm = make_llm(cfg.backend, model=cfg.model, cache=cache, **cfg.llm_settings)
        gen.llm = llm
    try:
        return gen.generate(data, method, side, history=history)
    finally:
        if llm is not None:
            llm.close()


def encode_table(table: pl.DataFrame, model: str, cache: Path) -> tuple[list[str], np.ndarray]:
    from knowrec.encoders import Encoder

    ok = table.drop_nulls("text")
    if "status" in ok.columns:  # tables a user brings may have none
        ok = ok.filter(pl.col("status").is_null() | (pl.col("status") == "ok"))
    vectors = Encoder(model, cache=cache).encode(ok["text"].to_list())
    return ok["id"].to_list(), vectors


def swing_positives(
    train: pl.DataFrame,
    cfg: SwingSection,
    *,
    engine: str = "local",
    spark: dict[str, Any] | None = None,
    workdir: Path | None = None,
) -> dict[str, pl.DataFrame]:
    """Each training user's (item's) highest-SWING other user (item), over positives; on
    Spark (``engine="spark"``, session ``spark`` settings) through Parquet in ``workdir``."""
    liked = train.filter(pl.col("label") == 1)
    opts = {
        "alpha": cfg.alpha,
        "beta": cfg.beta,
        "max_users_per_item": cfg.max_users_per_item,
        "max_items_per_user": cfg.max_items_per_user,
    }
    if engine == "spark":
        from knowrec.spark.swing import positives_via_spark

        return positives_via_spark(liked, spark or {}, workdir or Path("."), **opts)
    from knowrec.similarity import swing

    return {s: swing(liked, side=s, top_k=1, **opts).positives_frame() for s in ("user", "item")}


def feature_spec(data: Dataset, cfg: FeaturesSection, *, max_len: int) -> Any:
    """The :class:`~knowrec.models.features.FeatureSpec` of ``data``: the configured fields, or
    with ``"auto"`` the profile and item columns that make good CTR features (see
    :class:`FeaturesSection`)."""
    from knowrec.models.features import (
        CategoricalField,
        FeatureSpec,
        MultiValuedField,
        SequenceField,
    )

    def auto(kind: str) -> list[str]:
        names = []
        for table, key in ((data.users, "user_id"), (data.items, "item_id")):
            for col, dtype in table.schema.items():
                if col == key or table.height == 0:
                    continue
                if kind == "multi" and isinstance(dtype, pl.List):
                    values = table[col].explode().drop_nulls()
                elif kind == "cat" and (dtype == pl.String or dtype.is_integer()):
                    if col in ("title", "text", "year"):  # free text; year is a number
                        continue
                    values = table[col].drop_nulls()
                else:
                    continue
                if 1 < values.n_unique() <= cfg.max_vocab:
                    names.append(col)
        return names

    categorical = auto("cat") if cfg.categorical == "auto" else cfg.categorical
    multi = auto("multi") if cfg.multi_valued == "auto" else cfg.multi_valued
    has_ratings = "rating" in data.interactions.columns and (
        data.interactions["rating"].null_count() < data.interactions.height
    )
    return FeatureSpec(
        categorical=tuple(CategoricalField(name=c) for c in categorical),
        multi_valued=tuple(MultiValuedField(name=c, max_len=cfg.multi_valued_len) for c in multi),
        sequence=SequenceField(
            ratings="hist_ratings" if cfg.ratings and has_ratings else None, max_len=max_len
        ),
    )


def fit_and_score(
    cfg: TrawlConfig,
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
    from knowrec.models import JointLoss, build_backbone
    from knowrec.models.features import FeatureMap, KnowledgeTable
    from knowrec.train import CTRTrainer, seed_everything

    seed_everything(seed)
    spec = feature_spec(data, cfg.features, max_len=cfg.protocol.max_len)
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
        embedding=cfg.embedding.model_copy(
            update={"knowledge": mode, "knowledge_sides": tuple(sorted(knowledge))}
        ),
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
    trainer = CTRTrainer(
        model, cfg.train.model_copy(update={"seed": seed}), loss=loss, checkpoint_dir=work
    )
    trainer.fit(enc["train"], enc["valid"], resume=True)
    model.save(work / "model", fmap)  # reloads by path: CTRModel.load(work / "model")
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


def save_frames(folder: Path, frames: dict[str, pl.DataFrame]) -> None:
    for name, frame in frames.items():
        frame.write_parquet(folder / f"{name}.parquet")


def load_frames(folder: Path) -> dict[str, pl.DataFrame]:
    return {p.stem: pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
