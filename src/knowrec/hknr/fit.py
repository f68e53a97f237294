"""HKNR stages 2 and 3 trained together: the samples and the click graph as tensors, the
network (graph encoder → temporal attention pooling → knowledge-augmented ranker), its
loss and its scores.

Snapshots keep the graph honest: impressions are grouped into windows of
``snapshot_hours``; a window's graph holds only the history clicks before the window
starts, so no click later than a prediction reaches that user's encoding (logs without
times have one snapshot: their whole history precedes every impression).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from knowrec.errors import DataFormatError
from knowrec.hknr.config import GraphSettings, RankerSettings
from knowrec.hknr.knowledge import ArticleKnowledge
from knowrec.hknr.model import (
    AGE_BUCKETS_HOURS,
    N_BUCKETS,
    KnowledgeRanker,
    TemporalAttentionPool,
    TemporalGraphEncoder,
)
from knowrec.hknr.protocol import before, history_before

META = 3  # click metadata: recency rank, log age, age known
UNKNOWN_BUCKET = N_BUCKETS - 1


@dataclass
class Graph:
    """One snapshot's click graph: node ids are users (0…U−1) then articles (U…)."""

    edge_index: torch.Tensor  # (2, E), both directions
    edge_bucket: torch.Tensor  # (E,)


@dataclass
class Samples:
    """Rows to score: user and article rows, label, impression code, snapshot, the
    user's clicks before the impression (article rows, metadata, mask) and the article's
    click prior (:func:`~knowrec.hknr.protocol.click_prior`; 0 when not given)."""

    user: torch.Tensor  # (n,)
    article: torch.Tensor  # (n,)
    label: torch.Tensor  # (n,) float
    group: torch.Tensor  # (n,) impression code
    snapshot: torch.Tensor  # (n,)
    clicks: torch.Tensor  # (n, L) article rows (0 where masked)
    meta: torch.Tensor  # (n, L, META)
    mask: torch.Tensor  # (n, L) bool
    prior: torch.Tensor  # (n,) log-odds

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def take(self, index: np.ndarray | torch.Tensor) -> Samples:
        i = torch.as_tensor(index, dtype=torch.long)
        return Samples(*(getattr(self, f)[i] for f in self.__dataclass_fields__))


@dataclass
class NewsWorld:
    """The articles (semantic vectors, knowledge), the users and the snapshots' graphs."""

    article_row: dict[str, int]
    user_row: dict[str, int]
    semantic: torch.Tensor  # (A, D)
    knowledge: ArticleKnowledge
    graphs: list[Graph]
    snapshot_starts: list[Any]  # datetime or None, per snapshot

    @property
    def n_users(self) -> int:
        return len(self.user_row)


def _bucket(hours: np.ndarray) -> np.ndarray:
    """Age buckets of edges (NaN → the unknown bucket)."""
    out = np.searchsorted(np.asarray(AGE_BUCKETS_HOURS), np.nan_to_num(hours, nan=0.0))
    return np.where(np.isnan(hours), UNKNOWN_BUCKET, out).astype(np.int64)


def _hours(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    return (later - earlier).dt.total_seconds() / 3600.0


def build_world(
    history: pl.DataFrame,
    samples: list[pl.DataFrame],
    item_ids: list[str],
    vectors: np.ndarray,
    knowledge: ArticleKnowledge,
    cfg: GraphSettings,
) -> NewsWorld:
    """Users of the history and of every sample frame, articles of ``item_ids``, and one
    graph per snapshot of the samples' impression times."""
    article_row = {i: r for r, i in enumerate(item_ids)}
    if knowledge.item_ids != item_ids:
        raise DataFormatError("HKNR: the knowledge rows are not the articles' rows")
    users = pl.concat([history.select("user_id")] + [s.select("user_id") for s in samples])
    user_row = {u: r for r, u in enumerate(users["user_id"].unique().sort().to_list())}
    times = pl.concat([s.select("time") for s in samples])["time"]
    starts = _snapshot_starts(times, cfg.snapshot_hours)
    clicks = history.filter(pl.col("item_id").is_in(list(article_row)))
    latest = pl.col("time").max().over("user_id")
    graphs = []
    for start in starts:
        if start is None:
            part, age = clicks, _hours(latest, pl.col("time"))
        else:
            part = clicks.filter(before(pl.col("time"), pl.lit(start)))
            age = _hours(pl.lit(start), pl.col("time"))
        part = part.with_columns(age=age)
        u = np.array([user_row[x] for x in part["user_id"].to_list()], dtype=np.int64)
        a = np.array([article_row[x] for x in part["item_id"].to_list()], dtype=np.int64)
        a = a + len(user_row)
        bucket = _bucket(part["age"].cast(pl.Float64).fill_null(float("nan")).to_numpy())
        edges = np.stack([np.concatenate([u, a]), np.concatenate([a, u])])
        graphs.append(Graph(torch.as_tensor(edges), torch.as_tensor(np.tile(bucket, 2))))
    return NewsWorld(
        article_row,
        user_row,
        torch.as_tensor(vectors, dtype=torch.float32),
        knowledge,
        graphs,
        starts,
    )


def _snapshot_starts(times: pl.Series, hours: float) -> list[Any]:
    """The starts of the windows (``hours`` wide, calendar-aligned) holding ``times``;
    ``[None]`` for a log without times."""
    if times.null_count() == len(times):
        return [None]
    if times.null_count():
        raise DataFormatError("some impressions have a time and others not")
    return times.dt.truncate(f"{round(hours * 60)}m").unique().sort().to_list()


def _snapshot_of(times: pl.Series, starts: list[Any]) -> np.ndarray:
    if starts == [None]:
        return np.zeros(len(times), dtype=np.int64)
    ref = pl.Series(starts, dtype=times.dtype).to_physical().to_numpy()
    return np.searchsorted(ref, times.to_physical().to_numpy(), side="right") - 1


def make_samples(
    frame: pl.DataFrame, history: pl.DataFrame, world: NewsWorld, max_clicks: int
) -> Samples:
    """The tensors of a sample frame (``impression_id``, ``user_id``, ``item_id``,
    ``label``, ``time``, optionally ``prior``); rows whose article is unknown are dropped."""
    frame = frame.filter(pl.col("item_id").is_in(list(world.article_row)))
    queries = frame.select("impression_id", "user_id", "time").unique(
        "impression_id", maintain_order=True
    )
    q = queries.with_row_index("query")
    before = history_before(history, q).filter(pl.col("item_id").is_in(list(world.article_row)))
    before = (
        before.sort("query", "pos", descending=[False, True])
        .with_columns(
            rank=pl.int_range(pl.len()).over("query"),
            age=pl.when(pl.col("time").is_null())
            .then(_hours(pl.col("time_click").max().over("query"), pl.col("time_click")))
            .otherwise(_hours(pl.col("time"), pl.col("time_click"))),
        )
        .filter(pl.col("rank") < max_clicks)
    )
    # As wide as the longest history kept (NeMig: 10), not max_clicks: padding costs time.
    n_q = q.height
    width = max(1, min(max_clicks, int(before["rank"].max() or 0) + 1))
    clicks = np.zeros((n_q, width), dtype=np.int64)
    meta = np.zeros((n_q, width, META), dtype=np.float32)
    mask = np.zeros((n_q, width), dtype=bool)
    rows = before["query"].to_numpy().astype(np.int64)
    ranks = before["rank"].to_numpy().astype(np.int64)
    age = before["age"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    clicks[rows, ranks] = [world.article_row[i] for i in before["item_id"].to_list()]
    mask[rows, ranks] = True
    meta[rows, ranks, 0] = ranks / max_clicks
    meta[rows, ranks, 1] = np.log1p(np.nan_to_num(np.clip(age, 0, None), nan=0.0)) / 5.0
    meta[rows, ranks, 2] = ~np.isnan(age)
    query_of = dict(zip(q["impression_id"].to_list(), range(n_q), strict=True))
    qi = np.array([query_of[i] for i in frame["impression_id"].to_list()], dtype=np.int64)
    snap = _snapshot_of(queries["time"], world.snapshot_starts)
    return Samples(
        user=torch.as_tensor([world.user_row[u] for u in frame["user_id"].to_list()]),
        article=torch.as_tensor([world.article_row[i] for i in frame["item_id"].to_list()]),
        label=torch.as_tensor(frame["label"].to_numpy().astype(np.float32)),
        group=torch.as_tensor(qi),
        snapshot=torch.as_tensor(snap[qi]),
        clicks=torch.as_tensor(clicks[qi]),
        meta=torch.as_tensor(meta[qi]),
        mask=torch.as_tensor(mask[qi]),
        prior=torch.as_tensor(
            frame["prior"].to_numpy().astype(np.float32)
            if "prior" in frame.columns
            else np.zeros(frame.height, dtype=np.float32)
        ),
    )


class HknrNet(nn.Module):
    """Graph encoder (or, without it, projected article vectors) → the user vector by
    temporal attention pooling (or the mean of the clicks) → the knowledge ranker, which
    also reads the recall cosine and the article's click prior."""

    def __init__(self, world: NewsWorld, graph: GraphSettings, ranker: RankerSettings) -> None:
        super().__init__()
        self.world, self.use_graph = world, graph.enabled
        dim, hidden = world.semantic.shape[1], graph.hidden
        k = world.knowledge
        self.encoder = TemporalGraphEncoder(
            dim, hidden, edge_dropout=graph.edge_dropout, dropout=graph.dropout
        )
        self.pool = TemporalAttentionPool(hidden, META)
        init = None if k.entity_vectors is None else torch.as_tensor(k.entity_vectors)
        self.ranker = KnowledgeRanker(
            dim,
            hidden,
            len(k.entity_vocab),
            len(k.topic_vocab),
            entity_init=init,
            knowledge=ranker.knowledge,
            dropout=ranker.dropout,
        )
        self.use_prior = ranker.click_prior
        self.register_buffer("entities", torch.as_tensor(k.entities), persistent=False)
        self.register_buffer("topics", torch.as_tensor(k.topics), persistent=False)

    def node_states(self, snapshot: int) -> torch.Tensor:
        """(U + A, H): every node's state in a snapshot's graph."""
        w = self.world
        x = torch.cat([torch.zeros(w.n_users, w.semantic.shape[1]), w.semantic])
        if not self.use_graph:
            return self.encoder.project(x)
        g = w.graphs[snapshot]
        return self.encoder(x, g.edge_index, g.edge_bucket)

    def forward(self, s: Samples) -> tuple[torch.Tensor, torch.Tensor]:
        """Click logits (n,) and the articles' fused vectors (n, H)."""
        users = torch.empty(len(s), self.encoder.project.out_features)
        for snap in s.snapshot.unique().tolist():
            rows = (s.snapshot == snap).nonzero().squeeze(1)
            states = self.node_states(int(snap))
            n_users = self.world.n_users
            clicks = states[n_users + s.clicks[rows]] * s.mask[rows].unsqueeze(-1)
            if self.use_graph:
                users[rows] = self.pool(states[s.user[rows]], clicks, s.meta[rows], s.mask[rows])
            else:
                count = s.mask[rows].sum(1, keepdim=True).clamp(min=1)
                users[rows] = clicks.sum(1) / count
        a, sem = s.article, self.world.semantic
        fused = self.ranker.fuse(sem[a], self.entities[a], self.topics[a])
        return self.ranker(users, fused, self.scores(s)), fused

    def scores(self, s: Samples) -> torch.Tensor:
        """(n, 2): the recall cosine and (unless switched off) the click prior, which says
        which articles people click at all, whoever they are (NeMig's strongest signal)."""
        prior = s.prior if self.use_prior else torch.zeros_like(s.prior)
        return torch.stack([recall_cosine(self.world.semantic, s), prior], dim=-1)


@torch.no_grad()
def recall_cosine(semantic: torch.Tensor, s: Samples, chunk: int = 4096) -> torch.Tensor:
    """(n,) cosine of the mean of each row's clicked articles' vectors (the stage-1 user
    vector without decay) and the row's article vector; 0 without clicks. The vectors are
    frozen (no gradient); rows go in chunks, so scoring every training row at once stays
    small (a gather of 68k × 10 clicks × 384 floats would take 1 GB)."""
    x = F.normalize(semantic, dim=1)
    out = []
    for i in range(0, len(s), chunk):
        clicks, mask = s.clicks[i : i + chunk], s.mask[i : i + chunk]
        user = F.normalize((x[clicks] * mask.unsqueeze(-1)).sum(1), dim=1)
        out.append((user * x[s.article[i : i + chunk]]).sum(1))
    return torch.cat(out) if out else torch.zeros(0)


class HknrObjective:
    """``λ1·BCE(label smoothing) + λ2·BPR + λ3·reconstruction``. BPR pairs each clicked
    article with the highest-scored non-clicked article of its impression (a dynamic hard
    negative: the hardest one under the current model)."""

    def __init__(self, net: HknrNet, cfg: RankerSettings) -> None:
        self.net, self.cfg = net, cfg

    def loss(self, s: Samples) -> dict[str, torch.Tensor]:
        c = self.cfg
        logits, fused = self.net(s)
        y = s.label * (1 - c.label_smoothing) + c.label_smoothing / 2
        bce = F.binary_cross_entropy_with_logits(logits, y)
        bpr = _bpr(logits, s.label, s.group)
        rec = F.mse_loss(self.net.ranker.reconstruct(fused), self.net.world.semantic[s.article])
        total = c.bce * bce + c.bpr * bpr + c.reconstruction * rec
        return {"loss": total, "bce": bce, "bpr": bpr, "reconstruction": rec}


def _bpr(logits: torch.Tensor, label: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    codes, inverse = group.unique(return_inverse=True)
    neg = logits.masked_fill(label > 0, float("-inf"))
    hardest = torch.full((len(codes),), float("-inf")).scatter_reduce(
        0, inverse, neg, reduce="amax"
    )
    pos = (label > 0) & torch.isfinite(hardest[inverse])
    if not pos.any():
        return logits.new_zeros(())
    return -F.logsigmoid(logits[pos] - hardest[inverse][pos]).mean()


def impression_batches(samples: Samples, batch_size: int, seed: int) -> Any:
    """:class:`~knowrec.train.Batches` of :class:`Samples` made of whole impressions (the
    losses compare an impression's rows), impressions of one snapshot kept together, the
    same number of batches in every epoch."""
    from knowrec.train import Batches

    group = samples.group.numpy()
    snapshot = samples.snapshot.numpy()
    order = np.argsort(group, kind="stable")
    codes, starts = np.unique(group[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    snap_of = snapshot[order[starts]]
    per_batch = max(1, round(batch_size * len(codes) / max(len(order), 1)))
    count = math.ceil(len(codes) / per_batch)

    def plan(epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([seed, epoch])
        perm = rng.permutation(len(codes))
        perm = perm[np.argsort(snap_of[perm], kind="stable")]
        chunks = [perm[i * per_batch : (i + 1) * per_batch] for i in range(count)]
        rng.shuffle(chunks)
        return [np.concatenate([order[starts[j] : ends[j]] for j in c]) for c in chunks]

    return Batches(len(order), plan, samples.take)


@torch.no_grad()
def predict(net: nn.Module, samples: Samples, chunk: int = 8192) -> np.ndarray:
    """Click probabilities of every row (``net(samples)``: logits, or logits first)."""
    net.eval()
    out = []
    for i in range(0, len(samples), chunk):
        logits = net(samples.take(np.arange(i, min(i + chunk, len(samples)))))
        out.append(torch.sigmoid(logits[0] if isinstance(logits, tuple) else logits))
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)
