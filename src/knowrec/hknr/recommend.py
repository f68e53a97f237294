"""Top-k articles for one user from a finished HKNR run, with the reasons: which stage-1
query found each article, and how much of the ranker's article vector came from knowledge
(its entities and topic) rather than from the text.

A user with history gets stage 1 (semantic recall over the ANN index) and the trained
network's ranking. A user without history (a cold user) gets the articles most clicked in
the last ``POPULAR_HOURS`` of the log (all of it when the log has no times), ranked by the
same network, which then knows the user only by the articles' click prior; they also
top up a recall that found fewer than ``k`` fresh articles. "Now" is the end of the log.

    rec = HknrRecommender("runs/hknr_synthetic")
    for r in rec.recommend("U12", k=5): print(r.title, r.found_by, r.knowledge_share)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import torch

from knowrec.errors import ConfigError, UnknownIdError, shown_id
from knowrec.hknr.config import HknrConfig
from knowrec.hknr.fit import build_world
from knowrec.hknr.pipeline import MODELS, load_model, load_stages
from knowrec.hknr.protocol import all_clicks, most_clicked, published_times
from knowrec.retrieval.ann import AnnIndex

POPULAR = "popular"  # the recently most clicked: a cold user, or a short recall topped up


@dataclass
class NewsRecommendation:
    item_id: str
    title: str
    score: float  # click probability under the model
    found_by: str  # "profile" (the user vector), "recent click: <title>" or POPULAR
    topic: str
    entities: list[str]
    knowledge_share: float  # mean of 1 − g: the knowledge's share of the fused vector


class HknrRecommender:
    """Serve one trained model (``model`` of the run's, ``seed`` its first by default)."""

    def __init__(self, run: str | Path, *, model: str = "hknr", seed: int | None = None) -> None:
        if model not in MODELS:
            raise ConfigError(f"HknrRecommender serves HKNR models ({', '.join(MODELS)})")
        run = Path(run)
        manifest = json.loads((run / "manifest.json").read_text())
        self.cfg = HknrConfig.model_validate(manifest["config"])
        stages = load_stages(run)
        self.proto, (ids, vectors) = stages["protocol"], stages["vectors"]
        self.knowledge = stages["knowledge"]
        self.world = build_world(
            self.proto.history,
            list(self.proto.samples.values()),
            ids,
            vectors,
            self.knowledge,
            self.cfg.graph,
        )
        seed = self.cfg.seeds[0] if seed is None else seed
        self.net = load_model(self.cfg, run, model, seed, self.world)
        self.index = AnnIndex(ids, vectors, kind="flat" if len(ids) < 20_000 else "ivfpq")
        items = stages["data"].items
        self.titles = dict(zip(items["item_id"], items["title"].fill_null(""), strict=True))
        self.entity_labels = _entity_labels(items)
        self.published = published_times(items)
        times = pl.concat(
            [f.select("time") for f in [self.proto.history, *self.proto.samples.values()]]
        )
        latest = times["time"].max()
        self.now = None if latest is None else latest + timedelta(seconds=1)  # the log's end

    def recommend(self, user_id: str, k: int = 5) -> list[NewsRecommendation]:
        """The top ``k`` articles for ``user_id`` after the whole history of the log."""
        from knowrec.hknr.fit import make_samples, predict
        from knowrec.hknr.protocol import click_prior
        from knowrec.hknr.recall import recall

        if user_id not in self.world.user_row:
            raise UnknownIdError(f"unknown user {shown_id(user_id)}: not in the run's data")
        history = self.proto.history
        now = self.now
        query = pl.DataFrame({"user_id": [user_id], "time": [now]}).cast(
            {"time": history.schema["time"]}
        )
        found = recall(history, query, self.index, self.cfg.recall, self.published)
        if found.height < k:  # a cold user, or too few fresh articles: top up
            read = history.filter(pl.col("user_id") == user_id).select("item_id")
            extra = self._popular(now).join(read, on="item_id", how="anti")
            extra = extra.join(found, on="item_id", how="anti").head(k - found.height)
            found = pl.concat(
                [
                    found.select("item_id", "found_by"),
                    extra.select("item_id", found_by=pl.lit(POPULAR)),
                ]
            )
        frame = found.select(
            "item_id",
            "found_by",
            impression_id=pl.lit("serve"),
            user_id=pl.lit(user_id),
            label=pl.lit(0, pl.Int8),
            time=pl.lit(now, history.schema["time"]),
        )
        frame = frame.with_columns(click_prior(self.proto.samples["train"], frame))
        samples = make_samples(frame, history, self.world, self.cfg.graph.max_clicks)
        scores = predict(self.net, samples)
        with torch.no_grad():
            a = samples.article
            _, gate = self.net.ranker.fuse_with_gate(
                self.world.semantic[a], self.net.entities[a], self.net.topics[a]
            )
        share = (1 - gate).mean(1).numpy()
        k_ = self.knowledge
        row = {item: r for r, item in enumerate(k_.item_ids)}
        out = []
        for i in np.argsort(-scores, kind="stable")[:k]:
            item, by = frame["item_id"][int(i)], frame["found_by"][int(i)]
            if by not in ("profile", POPULAR):
                by = f"recent click: {self.titles.get(by, by)}"
            ents = [k_.entity_vocab[e] for e in k_.entities[row[item]] if e > 0]
            out.append(
                NewsRecommendation(
                    item_id=item,
                    title=self.titles.get(item, ""),
                    score=float(scores[i]),
                    found_by=by,
                    topic=k_.topic_vocab[k_.topics[row[item]]] if k_.topics[row[item]] else "",
                    entities=[self.entity_labels.get(e, e) for e in ents],
                    knowledge_share=float(share[i]),
                )
            )
        return out

    def _popular(self, now: object) -> pl.DataFrame:
        """The ``recall.k`` articles most clicked (history and training impressions) in the
        last ``POPULAR_HOURS`` (all of them when the log has no times)."""
        clicks = all_clicks(self.proto).filter(pl.col("item_id").is_in(self.index.ids))
        return most_clicked(clicks, now, self.cfg.recall.k)


def _entity_labels(items: pl.DataFrame) -> dict[str, str]:
    """Entity id → surface form, where the data set has ``entity_labels`` beside
    ``entities`` (NeMig); otherwise the ids are shown."""
    if "entity_labels" not in items.columns or "entities" not in items.columns:
        return {}
    pairs = items.select("entities", "entity_labels").explode("entities", "entity_labels")
    return dict(zip(pairs["entities"], pairs["entity_labels"], strict=True))
