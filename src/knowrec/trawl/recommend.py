"""Top-k items for one user from a finished TRAWL run, and CTR scores for any items.

Candidates come from the adapted item vectors (TRAWL's recall path): the items nearest to
any of the user's last ``liked`` positively rated items, each found by the liked item it
is nearest to. The run's trained CTR model (DIN, DIEN or DeepFM with the knowledge
adapter) then ranks them, with the user's whole history as the behaviour sequence. A user
without liked items, or a run whose model has no item knowledge, gets the catalogue's most
liked items as candidates (``found_by = "popular"``). Items the user has rated are never
recommended. "Now" is the end of the log.

    rec = TrawlRecommender("runs/trawl_synthetic")
    for r in rec.recommend("12", k=5): print(r.title, r.score, r.found_by, r.knowledge)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from knowrec.data.protocol import ctr_samples, label_expr
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError, UnknownIdError, shown_id
from knowrec.runs import read_manifest
from knowrec.trawl.config import TrawlConfig
from knowrec.trawl.pipeline import job_name
from knowrec.trawl.stages import ITEM_VECTORS

POPULAR = "popular"  # the most liked items of the log: a cold user, or no item vectors


@dataclass
class ItemRecommendation:
    item_id: str
    title: str
    score: float  # click probability under the CTR model
    found_by: str  # "like: <title of a liked item>" or POPULAR
    knowledge: str | None  # the item's knowledge text (the served model's method)


def served_job(
    runs: Sequence[dict[str, Any]],
    *,
    method: str | None = None,
    backbone: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The trained model to serve among ``results.json``'s runs: a ``full`` model of
    ``method`` (default ``trawl`` when the run has it, else the first), ``backbone`` and
    ``seed`` (default the first)."""
    full = [job for job in runs if job["variant"] == "full" and job.get("dir")]
    if method is None:
        methods = [job["method"] for job in full]
        method = "trawl" if "trawl" in methods else (methods[0] if methods else None)
    for job in full:
        if (
            job["method"] == method
            and backbone in (None, job["backbone"])
            and (seed in (None, job["seed"]))
        ):
            return job
    wanted = ", ".join(f"{k}={v}" for k, v in (("method", method), ("backbone", backbone),
                                                ("seed", seed)) if v is not None)  # fmt: skip
    raise ConfigError(f"the run has no trained full model with {wanted or 'any settings'}")


def served_model(
    run: Path, manifest: dict[str, Any], **choice: str | int | None
) -> tuple[dict[str, Any], Path]:
    """The job (:func:`served_job`, ``choice``: method, backbone, seed) and stage folder
    of the model a finished run serves."""
    if not (run / "results.json").is_file():
        raise ConfigError(f"{run}: the TRAWL run has not finished (no results.json)")
    cfg = TrawlConfig.model_validate(manifest["config"])
    results = json.loads((run / "results.json").read_text())
    job = served_job(results["runs"], **choice)  # type: ignore[arg-type]
    return job, run / manifest["stages"][job_name(cfg, job)]["folder"]


def served_parts(run: Path, manifest: dict[str, Any]) -> list[Path]:
    """What serving the run reads (:class:`TrawlRecommender`): the results, the data, the
    served model (and its adapted item vectors) and its knowledge tables."""
    job, folder = served_model(run, manifest)
    stages = manifest["stages"]
    knowledge = [f"knowledge-{side}-{job['method']}" for side in ("item", "user")]
    parts = [run / "results.json", run / stages["data"]["folder"], folder / "model"]
    parts += [folder / ITEM_VECTORS] if (folder / ITEM_VECTORS).exists() else []
    return parts + [run / stages[k]["folder"] for k in knowledge if k in stages]


class TrawlRecommender:
    """Serve one trained CTR model of a TRAWL run (see :func:`served_job`)."""

    def __init__(
        self,
        run: str | Path,
        *,
        method: str | None = None,
        backbone: str | None = None,
        seed: int | None = None,
        candidates: int = 200,
        liked: int = 10,
    ) -> None:
        from knowrec.models import CTRModel

        run = Path(run)
        manifest = read_manifest(run)
        stages = manifest["stages"]
        self.cfg = TrawlConfig.model_validate(manifest["config"])
        self.job, folder = served_model(run, manifest, method=method, backbone=backbone, seed=seed)
        self.model, self.fmap = CTRModel.load(folder / "model")
        self.candidates, self.liked = candidates, liked

        data = Dataset.load(run / stages["data"]["folder"])
        self.users, self.items = data.users, data.items
        self.titles = dict(zip(self.items["item_id"], self.items["title"], strict=True))
        self.user_ids = set(self.users["user_id"]) | set(data.interactions["user_id"])
        inter = data.interactions.drop_nulls("timestamp")
        self.timeline = inter.with_columns(liked=label_expr(self.cfg.protocol.label, inter))
        self.now = self.timeline["timestamp"].max() + timedelta(seconds=1)  # the log's end
        self.popular = (
            self.timeline.group_by("item_id")
            .agg(pl.col("liked").sum())
            .sort(["liked", "item_id"], descending=[True, False])["item_id"]
            .to_list()
        )
        self.vectors: tuple[list[str], np.ndarray] | None = None
        if (folder / ITEM_VECTORS).exists():
            saved = np.load(folder / ITEM_VECTORS)
            x = saved["vectors"].astype(np.float32)
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            self.vectors = [str(i) for i in saved["ids"]], x
        self.knowledge = {
            side: _texts(run, stages.get(f"knowledge-{side}-{self.job['method']}"))
            for side in ("item", "user")
        }

    @property
    def model_name(self) -> str:
        """``<method> <backbone> seed <seed>``: the served model."""
        return f"{self.job['method']} {self.job['backbone']} seed {self.job['seed']}"

    def _check_user(self, user_id: str) -> None:
        if user_id not in self.user_ids:
            raise UnknownIdError(f"unknown user {shown_id(user_id)}: not in the run's data")

    def user_knowledge(self, user_id: str) -> str | None:
        return self.knowledge["user"].get(user_id)

    def score(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray:
        """The model's click probability of each item for the user, now."""
        self._check_user(user_id)
        unknown = [i for i in item_ids if i not in self.titles]
        if unknown:
            shown = ", ".join(shown_id(i) for i in unknown[:5])
            raise UnknownIdError(f"{len(unknown)} unknown item ids: {shown}")
        if not item_ids:
            return np.zeros(0)
        frame = pl.DataFrame(
            {"user_id": user_id, "item_id": list(item_ids), "timestamp": self.now, "label": 0},
            schema_overrides={"timestamp": self.timeline.schema["timestamp"]},
        )
        samples = ctr_samples(
            frame, self.timeline, max_len=self.cfg.protocol.max_len, label="label == 1"
        )
        batch = self.fmap.encode(samples, users=self.users, items=self.items).batch(
            slice(0, len(item_ids))
        )
        with torch.no_grad():
            return torch.sigmoid(self.model(batch).logit).double().numpy()

    def recommend(self, user_id: str, k: int = 10) -> list[ItemRecommendation]:
        """The top ``k`` unrated items for the user, ranked by the CTR model."""
        self._check_user(user_id)
        mine = self.timeline.filter(pl.col("user_id") == user_id).sort("timestamp")
        seen = set(mine["item_id"])
        liked = mine.filter(pl.col("liked") == 1)["item_id"].to_list()[-self.liked :]
        found = self._recall(liked, seen)
        if len(found) < k:  # a cold user, or no item vectors: top up with the most liked
            for item in self.popular:
                if len(found) >= max(k, self.candidates):
                    break
                if item not in seen and item not in found:
                    found[item] = POPULAR
        ids = list(found)
        scores = self.score(user_id, ids)
        out = []
        for i in np.argsort(-scores, kind="stable")[:k]:
            item = ids[int(i)]
            by = found[item]
            out.append(
                ItemRecommendation(
                    item_id=item,
                    title=self.titles.get(item, ""),
                    score=float(scores[i]),
                    found_by=by if by == POPULAR else f"like: {self.titles.get(by, by)}",
                    knowledge=self.knowledge["item"].get(item),
                )
            )
        return out

    def _recall(self, liked: list[str], seen: set[str]) -> dict[str, str]:
        """Candidate → the liked item it is nearest to, by adapted-vector cosine."""
        if self.vectors is None:
            return {}
        ids, x = self.vectors
        row = {item: r for r, item in enumerate(ids)}
        queries = [item for item in liked if item in row]
        if not queries:
            return {}
        sims = x[[row[q] for q in queries]] @ x.T  # (liked, items)
        best, by = sims.max(0), sims.argmax(0)
        out: dict[str, str] = {}
        for j in np.argsort(-best, kind="stable"):
            if ids[j] not in seen:
                out[ids[j]] = queries[int(by[j])]
                if len(out) == self.candidates:
                    break
        return out


def _texts(run: Path, stage: dict[str, Any] | None) -> dict[str, str]:
    """id → knowledge text of a knowledge stage (empty when the run has none)."""
    if stage is None:
        return {}
    table = pl.read_parquet(run / stage["folder"] / "knowledge.parquet")
    table = table.filter(pl.col("text").is_not_null())
    return dict(zip(table["id"], table["text"], strict=True))
