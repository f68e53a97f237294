"""HKNR: the news protocol and stage 1, semantic recall (knowrec.hknr)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError, UnknownIdError
from knowrec.hknr.protocol import history_before, make_news_protocol
from knowrec.hknr.recall import RecallSettings, recall, user_queries
from knowrec.retrieval.ann import AnnIndex

T0 = datetime(2024, 1, 1)
#: Overrides of configs/hknr_synthetic.toml for a run of seconds: the tiny news world.
TINY_RUN = [
    'data.size="tiny"',
    "seeds=[0]",
    "train.epochs=1",
    "train.batch_size=64",
    "train.progress=false",
    "graph.hidden=32",
    "recall.k=20",
]


def news_log(times: bool = True) -> Dataset:
    """Two topics of 10 articles (A0…A9 along one axis, B0…B9 along another). User u1
    clicked A0…A4 on day 0 and B0 on day 2; one impression on day 3 shows A5, B1, B2."""
    items = pl.DataFrame(
        {
            "item_id": [f"{t}{i}" for t in "AB" for i in range(10)],
            "published": [T0 - timedelta(days=1)] * 20,
        }
    )
    clicks = [("u1", f"A{i}", T0 + timedelta(hours=i)) for i in range(5)]
    clicks.append(("u1", "B0", T0 + timedelta(days=2)))
    clicks.append(("u1", "A9", T0 + timedelta(days=4)))  # after the impression: never seen
    shown = [("u1", c, T0 + timedelta(days=3), "i1", int(c == "B1")) for c in ("A5", "B1", "B2")]
    inter = pl.DataFrame(
        {
            "user_id": [c[0] for c in clicks] + [s[0] for s in shown],
            "item_id": [c[1] for c in clicks] + [s[1] for s in shown],
            "timestamp": [c[2] for c in clicks] + [s[2] for s in shown],
            "impression_id": [None] * len(clicks) + [s[3] for s in shown],
            "label": [1] * len(clicks) + [s[4] for s in shown],
        },
        schema_overrides={"timestamp": pl.Datetime("ms"), "label": pl.Int8},
    )
    if not times:
        inter = inter.with_columns(timestamp=pl.lit(None, pl.Datetime("ms")))
        items = items.with_columns(published=pl.lit(None, pl.Datetime("ms")))
    return Dataset(inter, items.with_columns(pl.col("published").cast(pl.Datetime("ms"))))


def topic_index() -> AnnIndex:
    rng = np.random.default_rng(0)
    x = np.zeros((20, 8), dtype=np.float32)
    x[:10, 0], x[10:, 1] = 1.0, 1.0
    x += 0.05 * rng.normal(size=x.shape).astype(np.float32)
    return AnnIndex([f"{t}{i}" for t in "AB" for i in range(10)], x, kind="flat")


def test_a_sample_sees_only_earlier_clicks() -> None:
    proto = make_news_protocol(news_log(), (1.0, 0.0, 0.0))
    (sample,) = proto.samples["train"].unique("impression_id").iter_rows(named=True)
    seen = history_before(proto.history, pl.DataFrame([sample]).select("user_id", "time"))
    assert sorted(seen["item_id"]) == ["A0", "A1", "A2", "A3", "A4", "B0"]  # not A9
    assert proto.history["pos"].to_list() == list(range(7))
    assert "strictly earlier" in proto.describe()


def test_the_click_prior_never_counts_the_row_it_scores_or_a_later_impression() -> None:
    """An article's click prior counts training impressions before the row's own (all of
    them but the row itself when the log has no times)."""
    from knowrec.hknr.protocol import click_prior

    days = [T0 + timedelta(days=d) for d in (0, 1, 2, 2)]
    train = pl.DataFrame(
        {"item_id": ["a", "a", "a", "b"], "label": [1, 1, 0, 0], "time": days},
        schema_overrides={"time": pl.Datetime("ms")},
    )
    rate = np.exp(click_prior(train, train, strength=2.0).to_numpy())
    rate = rate / (1 + rate)  # mean 0.5, smoothing 2: (c + 1) / (n + 2)
    np.testing.assert_allclose(rate, [1 / 2, 2 / 3, 3 / 4, 1 / 2])  # day 2 sees days 0-1

    untimed = train.with_columns(time=pl.lit(None, pl.Datetime("ms")))
    rate = np.exp(click_prior(untimed, untimed, strength=2.0, own=True).to_numpy())
    rate = rate / (1 + rate)
    np.testing.assert_allclose(rate, [2 / 4, 2 / 4, 3 / 4, 1 / 2])  # the row's label left out


def test_the_user_vector_is_the_decayed_mean_of_recent_clicks() -> None:
    proto, index = make_news_protocol(news_log(), (1.0, 0.0, 0.0)), topic_index()
    query = proto.samples["train"].unique("impression_id").select("user_id", "time")
    for cfg, ages in (
        (RecallSettings(decay="time", decay_hours=24.0, n_recent=4), [72 - 2, 72 - 3, 72 - 4, 24]),
        (RecallSettings(decay="position", decay_clicks=2.0, n_recent=4), [3, 2, 1, 0]),
    ):
        users, _, seen = user_queries(proto.history, query, index, cfg)
        recent = ["A2", "A3", "A4", "B0"]
        temperature = cfg.decay_hours if cfg.decay == "time" else cfg.decay_clicks
        w = np.exp(-np.asarray(ages, dtype=float) / temperature)
        expected = (w[:, None] * index.vectors_of(recent)).sum(0)
        np.testing.assert_allclose(users[0], expected / np.linalg.norm(expected), atol=1e-5)
        assert seen[0][0] == "B0"  # most recent first


def test_recall_leaves_out_clicked_articles_and_keeps_a_recent_interest() -> None:
    proto, index = make_news_protocol(news_log(), (1.0, 0.0, 0.0)), topic_index()
    query = proto.samples["train"].unique("impression_id").select("user_id", "time")
    # The old interest (A) dominates the decayed mean when the decay is slow ...
    slow = RecallSettings(decay_hours=1e6, k=5, multi_query=0, index="flat")
    only_mean = recall(proto.history, query, index, slow)
    assert all(i.startswith("A") for i in only_mean["item_id"])
    assert not set(only_mean["item_id"]) & {"A0", "A1", "A2", "A3", "A4"}
    # ... and querying the most recent click too brings the new interest (B) in.
    both = recall(proto.history, query, index, slow.model_copy(update={"multi_query": 1}))
    assert {i[0] for i in both["item_id"]} == {"A", "B"} and "B0" not in set(both["item_id"])
    assert both["rank"].to_list() == list(range(1, 6))
    found_by = dict(zip(both["item_id"], both["found_by"], strict=True))
    assert {found_by[i] for i in found_by if i[0] == "A"} == {"profile"}
    assert "B0" in {found_by[i] for i in found_by if i[0] == "B"}  # the recent click's list
    assert set(only_mean["found_by"]) == {"profile"}


def test_recall_keeps_to_the_freshness_window_and_never_recalls_a_later_article() -> None:
    proto, index = make_news_protocol(news_log(), (1.0, 0.0, 0.0)), topic_index()
    query = proto.samples["train"].unique("impression_id").select("user_id", "time")
    at = query["time"][0]  # day 3
    published = {i: T0 - timedelta(days=1) for i in index.ids}  # 4 days before the query
    published["A5"] = at + timedelta(hours=1)  # published after the impression
    cfg = RecallSettings(k=20, index="flat")
    found = set(recall(proto.history, query, index, cfg, published)["item_id"])
    assert "A5" not in found and len(found) == 20 - 1 - 6  # all others but A5 and the seen
    stale = cfg.model_copy(update={"max_age_hours": 72.0})
    assert recall(proto.history, query, index, stale, published).is_empty()


def test_a_log_without_times_needs_the_position_decay() -> None:
    proto, index = make_news_protocol(news_log(times=False), (1.0, 0.0, 0.0)), topic_index()
    assert "no impression times" in proto.describe()
    query = proto.samples["train"].unique("impression_id").select("user_id", "time")
    with pytest.raises(ConfigError, match="decay = 'position'"):
        user_queries(proto.history, query, index, RecallSettings(decay="time"))
    users, _, seen = user_queries(proto.history, query, index, RecallSettings(decay="position"))
    assert seen[0][0] == "A9" and np.isclose(np.linalg.norm(users[0]), 1.0)  # log order


def test_entities_that_share_graph_neighbours_get_close_vectors() -> None:
    from knowrec.hknr.knowledge import article_knowledge, graph_embeddings

    triples = pl.DataFrame(
        {
            "head": ["Q1", "Q1", "Q2", "Q2", "Q3", "Q4", "Q4"],
            "tail": ["P", "R", "P", "R", "S", "S", "T"],
        }
    )
    x, found = graph_embeddings(triples, ["<none>", "Q1", "Q2", "Q3", "Q4", "Q9"], dim=3)
    cos = x @ x.T
    assert cos[1, 2] > 0.99 and abs(cos[1, 3]) < 0.01 and 0 < cos[3, 4] < cos[1, 2]
    assert not x[5].any() and found == pytest.approx(4 / 6)

    items = pl.DataFrame(
        {"item_id": ["a", "b"], "entities": [["Q1", "Q2", "Q1"], None], "category": ["x", None]}
    )
    k = article_knowledge(items, max_entities=2, triples=triples)
    assert k.entity_vocab == ["<none>", "Q1", "Q2"] and k.topic_vocab == ["<none>", "x"]
    assert k.entities.tolist() == [[1, 2], [0, 0]] and k.topics.tolist() == [1, 0]
    assert k.entity_vectors is not None and not k.entity_vectors[0].any()


def test_no_click_after_an_impression_reaches_its_user_encoding() -> None:
    """The graph a sample's user is encoded on holds only clicks before its impression:
    adding clicks after it (by this user and by others) leaves the encoding unchanged."""
    import torch

    from knowrec.hknr.config import GraphSettings, RankerSettings
    from knowrec.hknr.fit import HknrNet, build_world, make_samples
    from knowrec.hknr.knowledge import article_knowledge

    data = news_log()
    proto = make_news_protocol(data, (1.0, 0.0, 0.0))
    index = topic_index()
    items = pl.DataFrame({"item_id": index.ids, "category": [i[0] for i in index.ids]})
    knowledge = article_knowledge(items)
    later = pl.DataFrame(
        {
            "user_id": ["u1", "u2", "u2"],
            "item_id": ["B5", "B5", "A5"],
            "time": [T0 + timedelta(days=3, hours=h) for h in (1, 2, 48)],
            "pos": [7, 0, 1],
        },
        schema_overrides={"time": pl.Datetime("ms"), "pos": pl.Int32},
    )
    encodings = []
    for history in (proto.history, pl.concat([proto.history, later])):
        world = build_world(
            history, [proto.samples["train"]], index.ids, index.vectors, knowledge, GraphSettings()
        )
        torch.manual_seed(0)
        net = HknrNet(world, GraphSettings(hidden=16), RankerSettings()).eval()
        samples = make_samples(proto.samples["train"], history, world, 10)
        with torch.no_grad():
            states = net.node_states(int(samples.snapshot[0]))
            encodings.append(states[samples.user].clone())
        edge_users = world.graphs[int(samples.snapshot[0])].edge_index[0]
        assert int((edge_users < world.n_users).sum()) == 6  # u1's six earlier clicks only
    assert torch.equal(encodings[0], encodings[1])


def click_log(
    clicks: list[tuple[str, str, int]], shown: list[tuple[str, str, int, int]]
) -> Dataset:
    """A news log over the articles of :func:`topic_index`: history ``clicks`` (user,
    article, hour) and ``shown`` candidates (user, article, hour, label), one impression
    per user and hour."""
    ids = [f"{t}{i}" for t in "AB" for i in range(10)]
    rows = [(u, a, h, None, 1) for u, a, h in clicks] + [
        (u, a, h, f"{u}@{h}", y) for u, a, h, y in shown
    ]
    inter = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "timestamp": [T0 + timedelta(hours=r[2]) for r in rows],
            "impression_id": [r[3] for r in rows],
            "label": [r[4] for r in rows],
        },
        schema_overrides={"timestamp": pl.Datetime("ms"), "label": pl.Int8},
    )
    items = pl.DataFrame({"item_id": ids, "published": [T0 - timedelta(days=1)] * len(ids)})
    return Dataset(inter, items.with_columns(pl.col("published").cast(pl.Datetime("ms"))))


def news_world(data: Dataset) -> tuple[Any, dict[str, Any]]:
    """The world of a log (every user's impressions in one part) and each user's samples."""
    from knowrec.hknr.config import GraphSettings
    from knowrec.hknr.fit import build_world, make_samples
    from knowrec.hknr.knowledge import article_knowledge

    proto = make_news_protocol(data, (1.0, 0.0, 0.0))
    index = topic_index()
    items = pl.DataFrame({"item_id": index.ids, "category": [i[0] for i in index.ids]})
    frame = proto.samples["train"]
    world = build_world(
        proto.history, [frame], index.ids, index.vectors, article_knowledge(items), GraphSettings()
    )
    users = frame["user_id"].unique().sort().to_list()
    by_user = {
        u: make_samples(frame.filter(pl.col("user_id") == u), proto.history, world, 10)
        for u in users
    }
    return world, by_user


def co_click_world() -> tuple[Any, dict[str, Any]]:
    """Day 0: u2, u3 and u4 read A0 and A1, u5 reads B0 and B1, u1 reads A0. Day 1: u1 is
    shown A1 (clicked), B1 and B5; u2 is shown A2 (clicked) and B6. Day 2, after both
    impressions: u6 and u7 read A0 and B5."""
    clicks = [(u, a, 1) for u in ("u2", "u3", "u4") for a in ("A0", "A1")]
    clicks += [("u5", "B0", 2), ("u5", "B1", 2), ("u1", "A0", 3)]
    clicks += [(u, a, 50) for u in ("u6", "u7") for a in ("A0", "B5")]
    shown = [("u1", "A1", 30, 1), ("u1", "B1", 30, 0), ("u1", "B5", 30, 0)]
    shown += [("u2", "A2", 31, 1), ("u2", "B6", 31, 0)]
    return news_world(click_log(clicks, shown))


def scores_by_article(world: Any, samples: Any, scores: np.ndarray) -> dict[str, float]:
    ids = {r: i for i, r in world.article_row.items()}
    return {ids[int(a)]: float(x) for a, x in zip(samples.article, scores, strict=True)}


def test_item_knn_scores_the_articles_co_clicked_before_the_impression() -> None:
    from knowrec.hknr.baselines import item_knn_scores

    world, users = co_click_world()
    score = scores_by_article(world, users["u1"], item_knn_scores(world, users["u1"]))
    # A0 was read by u1…u4, A1 by u2…u4: cosine 3 / √(4·3). B5's co-clicks with A0 come
    # after the impression (the next day's snapshot), B1 is never read with A0.
    assert score == pytest.approx({"A1": 3 / np.sqrt(12), "B1": 0.0, "B5": 0.0})


def test_als_folds_the_user_in_from_the_clicks_before_the_impression() -> None:
    import dataclasses

    import torch

    from knowrec.hknr.baselines import als_scores

    world, users = co_click_world()
    u1 = users["u1"]
    scores = als_scores(world, users["u2"], u1, factors=8, iterations=10)
    assert scores.shape == (len(u1),) and np.isfinite(scores).all()
    score = scores_by_article(world, u1, scores)
    # B5 has no click before the impressions (only later ones): no factor at all.
    assert score["A1"] > 10 * abs(score["B1"]) > 0 and abs(score["B5"]) < 1e-6
    no_clicks = dataclasses.replace(u1, mask=torch.zeros_like(u1.mask))
    assert not als_scores(world, users["u2"], no_clicks, factors=8, iterations=10).any()


@pytest.mark.parametrize("name", ["neumf", "din"])
def test_neumf_and_din_learn_the_users_topic(name: str) -> None:
    """24 users, each reading three articles of one topic; each impression shows two
    articles of either topic and the user clicks one of their own topic."""
    import torch

    from knowrec.hknr.baselines import TRAINED
    from knowrec.hknr.fit import Samples, predict
    from knowrec.train.checkpoint import torch_threads

    rng = np.random.default_rng(0)
    clicks, shown = [], []
    for n in range(24):
        own, other = ("A", "B") if n % 2 else ("B", "A")
        read = rng.permutation(10)
        clicks += [(f"u{n}", f"{own}{i}", h) for h, i in enumerate(read[:3])]
        shown += [(f"u{n}", f"{own}{read[3]}", 10, 1), (f"u{n}", f"{own}{read[4]}", 10, 0)]
        shown += [(f"u{n}", f"{other}{i}", 10, 0) for i in rng.choice(10, 2, replace=False)]
    world, users = news_world(click_log(clicks, shown))
    fields = Samples.__dataclass_fields__
    samples = Samples(*(torch.cat([getattr(s, f) for s in users.values()]) for f in fields))
    torch.manual_seed(0)
    net = TRAINED[name](world)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    with torch_threads(1):  # tiny tensors: more threads only contend
        for _ in range(30):
            net.train()
            loss = net.loss(samples)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        p = predict(net, samples)
    assert losses[-1] < 0.7 * losses[0]
    assert p.shape == (len(samples),) and ((p > 0) & (p < 1)).all()


def test_every_listable_baseline_has_a_name_and_an_unknown_one_is_refused() -> None:
    from typing import get_args

    from knowrec.config import validate
    from knowrec.hknr.baselines import NAMES
    from knowrec.hknr.config import Baseline, HknrConfig

    assert set(NAMES) == set(get_args(Baseline)) == set(HknrConfig().baselines)
    with pytest.raises(ConfigError, match="baselines"):
        validate(HknrConfig, {"baselines": ["popularity", "lightgcn"]})


@pytest.mark.slow
def test_the_pipeline_runs_reports_and_resumes(tmp_path) -> None:
    """HKNR end to end on the tiny synthetic news world (one epoch, one seed): every model
    and baseline in the report, metrics in range, a second run reuses every stage."""
    import json

    from knowrec.hknr.pipeline import run_hknr

    overrides = TINY_RUN
    result = run_hknr("configs/hknr_synthetic.toml", tmp_path / "run", overrides=overrides)
    models = {row["model"] for row in result["runs"]}
    assert models == {
        "popularity", "semantic (encoder cosine)", "item-kNN (history co-clicks)",
        "ALS (implicit)", "article click rate (earlier train impressions)",
        "recall cosine + click prior (logistic regression)", "hknr",
        "hknr w/o graph", "hknr w/o knowledge", "hknr w/o click prior", "NRMS", "NeuMF", "DIN",
    }  # fmt: skip
    assert all(0.0 <= row["AUC"] <= 1.0 and 0.0 < row["MRR"] <= 1.0 for row in result["runs"])
    recall = result["recall"]
    hit = recall["hit_rate"]
    assert hit["semantic recall"] > hit["random"] and len(recall["cascade"]) == 1
    assert all(0 <= recall["cascade"][0][s] <= hit[s] for s in hit)  # top 10 of the K
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Ranking the shown candidates" in html and "nan" not in html

    run_hknr("configs/hknr_synthetic.toml", tmp_path / "run", overrides=overrides)
    stages = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]
    assert all(s["cached"] for s in stages.values())

    from knowrec.hknr.recommend import POPULAR, HknrRecommender

    rec = HknrRecommender(tmp_path / "run")
    user = rec.proto.samples["test"]["user_id"][0]
    read = set(rec.proto.history.filter(pl.col("user_id") == user)["item_id"])
    top = rec.recommend(user, 5)
    assert len(top) == 5 and not {r.item_id for r in top} & read
    by = [r.found_by for r in top]
    recalled = [b == "profile" or b.startswith("recent click: ") for b in by]
    assert any(recalled) and all(ok or b == POPULAR for ok, b in zip(recalled, by, strict=True))
    assert all(0 < r.score < 1 and 0 <= r.knowledge_share <= 1 and r.title for r in top)
    assert [r.score for r in top] == sorted((r.score for r in top), reverse=True)
    rec.proto.history = rec.proto.history.filter(pl.col("user_id") != user)  # now cold
    assert {r.found_by for r in rec.recommend(user, 5)} == {POPULAR}
    with pytest.raises(UnknownIdError, match="unknown user"):
        rec.recommend("nobody")


@pytest.mark.parametrize("layout", ["mind", "ebnerd"])
def test_hknr_reads_mind_and_ebnerd_logs(tmp_path, layout: str) -> None:
    """MIND histories have no times (they precede every impression); EB-NeRD's have. Both
    reach the samples and the graph, and HKNR trains a step on them."""
    import torch

    from knowrec.hknr.config import GraphSettings, RankerSettings
    from knowrec.hknr.fit import HknrNet, HknrObjective, build_world, make_samples
    from knowrec.hknr.knowledge import article_knowledge
    from tests.test_loaders_news import load_ebnerd, load_mind, write_ebnerd, write_mind

    if layout == "mind":
        data = load_mind(write_mind(tmp_path / "mind"))
    else:
        data = load_ebnerd(write_ebnerd(tmp_path / "eb"))
    proto = make_news_protocol(data, (1.0, 0.0, 0.0))
    ids = data.items["item_id"].to_list()
    x = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    world = build_world(
        proto.history, [proto.samples["train"]], ids, x, article_knowledge(data.items),
        GraphSettings(),
    )  # fmt: skip
    samples = make_samples(proto.samples["train"], proto.history, world, 10)
    user1 = "U1" if layout == "mind" else "7"
    rows = (samples.user == world.user_row[user1]).nonzero().squeeze(1)
    assert bool(samples.mask[rows].any(1).all())  # every impression of this user sees clicks
    assert sum(int((g.edge_index[0] < world.n_users).sum()) for g in world.graphs) > 0
    net = HknrNet(world, GraphSettings(hidden=8), RankerSettings())
    loss = HknrObjective(net, RankerSettings()).loss(samples)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
