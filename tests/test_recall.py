"""Recall paths, merging and recall evaluation, on data where the right answer is known.

- co-click finds planted pairs with their counts;
- ALS (``cf``) beats random recall@30 on held-out co-engagement of the synthetic world;
- on a constructed corpus where *dissimilar* topics are co-engaged in pairs, the two-tower
  path (real MiniLM vectors, torch towers, FAISS) learns the pairing — for cold items too —
  while text similarity alone finds only half, and random a quarter;
- merging keeps provenance, removes the trigger, duplicates and near-duplicate texts;
- unknown triggers / items without text give empty results and a recorded reason.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from knowrec.data.synth import generate_world
from knowrec.encoders import Encoder
from knowrec.errors import ConfigError, LLMError, RegistryError, UnknownIdError
from knowrec.explore import coengagement_pairs, recall_by_path, split_sessions
from knowrec.retrieval import (
    Candidate,
    CandidateStore,
    RecallPath,
    available_recall_paths,
    candidate_frame,
    fit_paths,
    load_recall_path,
    make_recall_path,
    merge_candidates,
    recall_all,
    register_recall_path,
    store_candidates,
)

T0 = datetime(2022, 1, 1)
RULE = "rating >= 4"


def _random_lists(ids: list[str], triggers: list[str], k: int = 30) -> dict[str, list[Candidate]]:
    rng = np.random.default_rng(0)
    out = {}
    for t in triggers:
        pool = [i for i in ids if i != t]
        out[t] = [Candidate(i, 0.0, {"random": 0.0}) for i in rng.choice(pool, k, replace=False)]
    return out


def _log(sessions: list[list[str]], ratings: list[list[float]] | None = None) -> pl.DataFrame:
    rows = []
    for s, items in enumerate(sessions):
        for n, item in enumerate(items):
            r = 5.0 if ratings is None else ratings[s][n]
            rows.append((f"u{s % 7}", item, T0 + timedelta(hours=s, minutes=n), r, f"s{s}"))
    schema = {
        "user_id": pl.String,
        "item_id": pl.String,
        "timestamp": pl.Datetime("ms"),
        "rating": pl.Float32,
        "session_id": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


# ------------------------------------------------------------------------ co-click


def test_coclick_finds_planted_pairs_with_counts(tmp_path: Path) -> None:
    sessions = [["a", "b"]] * 6 + [["a", "c"]] * 3 + [["a", "d", "e"]] + [["x", "y"]] * 2
    ratings = [[5, 5]] * 6 + [[5, 5]] * 3 + [[5, 2, 5]] + [[5, 5]] * 2
    log = _log(sessions, ratings)
    path = make_recall_path("coclick", rule=RULE).fit(log)
    got = path.recall(["a", "x", "d"], k=2)
    assert [(c.item_id, c.score) for c in got["a"]] == [("b", 6.0), ("c", 3.0)]
    assert got["a"][0].paths == {"coclick": 6.0}
    assert [c.item_id for c in got["x"]] == ["y"]
    assert got["d"] == [] and path.failures == {}  # known item, but never a satisfied co-click
    cosine = make_recall_path("coclick", rule=RULE, score="cosine", name="cc_cos").fit(log)
    top = cosine.recall(["a"], k=3)["a"]
    assert top[0].item_id == "b" and top[0].paths == {"cc_cos": pytest.approx(6 / np.sqrt(10 * 6))}
    again = load_recall_path(cosine.save(tmp_path / "cc"))
    assert again.name == "cc_cos" and again.recall(["a", "zz"], k=3) == cosine.recall(
        ["a", "zz"], k=3
    )
    assert again.failures == {"zz": "unknown trigger"}


def test_unknown_triggers_registry_and_params() -> None:
    log = _log([["a", "b"], ["a", "b"]])
    path = make_recall_path("coclick").fit(log)
    out = path.recall(["a", "nope", "a"], k=5)
    assert list(out) == ["a", "nope"] and out["nope"] == []
    assert path.failures == {"nope": "unknown trigger"}
    with pytest.raises(UnknownIdError, match="nope"):
        path.recall(["nope"], strict=True)
    with pytest.raises(ConfigError, match="positive"):
        path.recall(["a"], k=0)
    with pytest.raises(ConfigError, match="not fitted"):
        make_recall_path("cf").recall(["a"])
    with pytest.raises(RegistryError, match=r"known recall paths are .*coclick.*two_tower"):
        make_recall_path("nonsense")
    with pytest.raises(ConfigError, match=r"unknown parameter.*factor\b.*known parameters are"):
        make_recall_path("cf", factor=3)
    assert {"coclick", "cf", "semantic", "two_tower"} <= set(available_recall_paths())
    with pytest.raises(ConfigError, match="distinct names"):
        fit_paths([make_recall_path("coclick"), make_recall_path("coclick")], log, None)


@register_recall_path("test_echo")
class EchoPath(RecallPath):
    """A user-registered path (as the Q' path will be): per-trigger failures are recorded,
    a path-wide failure raises a knowrec error."""

    def __init__(self, *, boom: bool = False, name: str | None = None) -> None:
        super().__init__(name=name)
        self.boom = boom

    def fit(self, interactions=None, items=None):  # type: ignore[no-untyped-def]
        self.corpus = {"a", "b", "bad"}
        return self

    def _recall_known(self, triggers: list[str], k: int) -> dict[str, list[Candidate]]:
        if self.boom:
            raise LLMError("server unreachable")
        self.failures.update({t: "LLM answer was not a query" for t in triggers if t == "bad"})
        return {t: [Candidate("a" if t != "a" else "b", 1.0, {self.name: 1.0})] for t in triggers}


def test_user_paths_per_trigger_failures_and_fallback() -> None:
    good = make_recall_path("test_echo").fit()
    out = good.recall(["a", "bad", "zz"])
    assert out["a"][0].item_id == "b" and out["zz"] == []
    assert good.failures == {"zz": "unknown trigger", "bad": "LLM answer was not a query"}
    broken = make_recall_path("test_echo", boom=True, name="qprime").fit()
    coclick = make_recall_path("coclick").fit(_log([["a", "b"]]))
    with pytest.raises(LLMError):
        recall_all([coclick, broken], ["a"])
    both = recall_all([coclick, broken], ["a"], on_error="skip")
    assert both["qprime"] == {"a": []} and [c.item_id for c in both["coclick"]["a"]] == ["b"]
    assert [c.paths for c in merge_candidates(both)["a"]] == [{"coclick": 1.0}]


# ------------------------------------------------------------------------ CF (ALS)


@pytest.fixture(scope="module")
def movies() -> dict:
    world = generate_world(0, "small")
    parts = split_sessions(world.movies.interactions, [0.7])
    truth = coengagement_pairs(parts["test"], rule=RULE)
    return {"world": world, "parts": parts, "truth": truth}


def test_als_beats_random_on_held_out_coengagement(movies: dict, tmp_path: Path) -> None:
    parts, truth = movies["parts"], movies["truth"]
    items = movies["world"].movies.items
    cf = make_recall_path("cf", rule=RULE, factors=16, regularization=1.0).fit(parts["train"])
    triggers = sorted(set(truth["trigger_id"].to_list()))
    answered = [t for t in triggers if t in cf.corpus]
    assert len(answered) > 0.8 * len(triggers)
    results = recall_all([cf], answered, 30)
    results["random"] = _random_lists(items["item_id"].to_list(), answered)
    table = {r["path"]: r for r in recall_by_path(results, truth, k=30).iter_rows(named=True)}
    assert table["cf"]["recall@30"] > table["random"]["recall@30"] + 0.07
    # cold items (no satisfied history before the cut) are reported, not crashed on
    cf.recall(triggers)
    assert set(cf.failures) == set(triggers) - set(answered)
    assert all("cold" in why for why in cf.failures.values())
    # a saved path answers the same
    again = load_recall_path(cf.save(tmp_path / "cf"))
    a, b = cf.recall(answered[:20], 10), again.recall(answered[:20], 10)
    assert {t: [c.item_id for c in v] for t, v in a.items()} == {
        t: [c.item_id for c in v] for t, v in b.items()
    }


# ------------------------------------------------------------------ text paths (MiniLM)

TOPICS = [
    ("dragons and wizards in a fantasy kingdom", "a sorcerer's quest", "an ancient dragon"),
    ("lawyers arguing a murder case in court", "a tense trial", "a surprise witness"),
    ("pirates sailing the Caribbean sea", "a treasure map", "a mutiny on deck"),
    ("chefs competing in a cooking contest", "a secret recipe", "a harsh food critic"),
    ("astronauts exploring the surface of Mars", "a dust storm", "a broken rover"),
    ("teenagers at a high school prom", "a first dance", "a locker room rumour"),
    ("soldiers in the trenches of the First World War", "a night raid", "a letter home"),
    ("jazz musicians playing in New Orleans clubs", "a saxophone solo", "a smoky bar"),
    ("cowboys herding cattle across the frontier", "a stampede", "a dusty saloon"),
    ("vampires hunting in a gothic castle", "a coffin in the crypt", "garlic and crosses"),
    ("surfers riding giant waves in Hawaii", "a wipeout", "the perfect swell"),
    ("accountants auditing a corporate fraud", "a missing ledger", "a whistleblower"),
]
WARM, COLD = 8, 2  # items per topic seen in training sessions / only in held-out sessions


def topic_corpus(n_train: int = 700, n_test: int = 250) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Topics 2g and 2g+1 (unrelated in meaning) are co-engaged together; each held-out
    trigger's co-engaged items are the ~19 others of its pair of topics."""
    rng = np.random.default_rng(1)
    ids, texts, topic, cold = [], [], [], []
    for k, (phrase, m1, m2) in enumerate(TOPICS):
        for j in range(WARM + COLD):
            ids.append(f"t{k}-{j}")
            texts.append(f"Film {k * 20 + j}: a story about {phrase}, featuring {(m1, m2)[j % 2]}.")
            topic.append(k)
            cold.append(j >= WARM)
    group, is_cold = np.array(topic) // 2, np.array(cold)
    sessions = []
    for s in range(n_train + n_test):
        pool = np.flatnonzero((group == rng.integers(0, 6)) & ((s >= n_train) | ~is_cold))
        sessions.append([ids[c] for c in rng.choice(pool, rng.integers(2, 5), replace=False)])
    items = pl.DataFrame({"item_id": ids, "text": texts, "cold": cold})
    return items, _log(sessions)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    items, log = topic_corpus()
    parts = split_sessions(log, [T0 + timedelta(hours=700)])
    encoder = Encoder(cache=tmp_path_factory.mktemp("enc") / "vectors.sqlite")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared CPU: one thread is much faster than oversubscribing
    try:
        vectors = encoder.encode(items["text"].to_list(), progress=False)
    finally:
        torch.set_num_threads(threads)
    return {
        "items": items,
        "parts": parts,
        "truth": coengagement_pairs(parts["test"]),
        "encoder": encoder,
        "vectors": (items["item_id"].to_list(), vectors),
    }


def test_two_tower_learns_coengagement_that_text_similarity_misses(corpus: dict) -> None:
    items, parts, truth = corpus["items"], corpus["parts"], corpus["truth"]
    assert not set(parts["train"]["item_id"]) & set(items.filter(pl.col("cold"))["item_id"])
    tower = make_recall_path(
        "two_tower", encoder=corpus["encoder"], steps=100, batch_size=128, progress=False
    ).fit(parts["train"], items)  # encodes through the (warm) vector cache
    assert np.mean(tower.losses[-10:]) < np.mean(tower.losses[:10]) - 1.0
    semantic = make_recall_path("semantic", vectors=corpus["vectors"]).fit()
    triggers = sorted(set(truth["trigger_id"].to_list()))
    results = recall_all([tower, semantic], triggers, 30)
    results["random"] = _random_lists(items["item_id"].to_list(), triggers)
    table = recall_by_path(results, truth, k=30)
    recall = dict(zip(table["path"], table["recall@30"], strict=True))
    assert recall["random"] < 0.35
    assert 0.35 < recall["semantic"] < 0.75  # its own topic only
    assert recall["two_tower"] > 0.9
    unique = dict(zip(table["path"], table["unique_share"], strict=True))
    assert unique["two_tower"] > unique["semantic"]
    cold = items.filter(pl.col("cold"))["item_id"].to_list()
    cold_table = recall_by_path({"two_tower": {t: results["two_tower"][t] for t in cold}}, truth)
    assert cold_table["recall@30"][0] > 0.8  # cold triggers: text towers generalise


def test_an_interrupted_two_tower_fit_resumes_to_the_same_towers(
    corpus: dict, tmp_path: Path
) -> None:
    """Training killed after a checkpoint (an error raised in the loop) and fitted again
    with the same checkpoint directory ends with the towers of an uninterrupted fit."""
    params = {"vectors": corpus["vectors"], "steps": 12, "batch_size": 32, "progress": False}
    train = corpus["parts"]["train"]

    class Killed(Exception):
        pass

    def kill(info: dict) -> None:
        if info["global_step"] == 8:
            raise Killed

    whole = make_recall_path("two_tower", **params).fit(train)
    with pytest.raises(Killed):
        make_recall_path("two_tower", checkpoint_every=4, **params).fit(
            train, checkpoint_dir=tmp_path, on_checkpoint=kill
        )
    seen: list[int] = []
    resumed = make_recall_path("two_tower", checkpoint_every=4, **params).fit(
        train, checkpoint_dir=tmp_path, on_checkpoint=lambda i: seen.append(i["global_step"])
    )
    assert seen == [12, 12]  # went on from step 8: the epoch end, then the finish
    assert resumed.losses == whole.losses and len(whole.losses) == 12
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_text_paths_skip_items_without_text(corpus: dict) -> None:
    items = pl.concat(
        [
            corpus["items"].head(30).select("item_id", "text"),
            pl.DataFrame({"item_id": ["blank", "none"], "text": ["  ", None]}),
        ]
    )
    path = make_recall_path("semantic", encoder=corpus["encoder"]).fit(None, items)
    out = path.recall(["t0-0", "blank", "none", "ghost"], k=5)
    assert len(out["t0-0"]) == 5 and out["blank"] == out["none"] == []
    assert set(path.failures) == {"blank", "none", "ghost"}
    assert "no text" in path.failures["blank"]
    with pytest.raises(ConfigError, match="text"):
        make_recall_path("semantic", encoder=corpus["encoder"]).fit(None, items.drop("text"))


def test_semantic_accepts_given_vectors() -> None:
    ids = ["a", "b", "c", "z"]
    x = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float32)
    path = make_recall_path("semantic", vectors=dict(zip(ids, x, strict=True)), name="trawl")
    out = path.fit().recall(["a", "z"], k=2)
    assert [c.item_id for c in out["a"]] == ["b", "c"]
    assert out["a"][0].paths == {"trawl": pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-6)}
    assert out["z"] == [] and "z" in path.failures  # a zero vector is not an item to index


# ------------------------------------------------------------------------ merge


def test_merge_provenance_dedup_and_cap(corpus: dict) -> None:
    vecs = corpus["vectors"][1]
    near = {"t0-0": vecs[0], "copy": vecs[0] + 0.01, "t0-1": vecs[1], "t1-0": vecs[10]}
    per_path = {
        "coclick": {"t0-0": [Candidate("t1-0", 9, {"coclick": 9}), Candidate("t0-0", 5, {})]},
        "cf": {
            "t0-0": [
                Candidate("copy", 0.9, {"cf": 0.9}),
                Candidate("t1-0", 0.8, {"cf": 0.8}),
                Candidate("t0-1", 0.7, {"cf": 0.7}),
                Candidate("t0-1", 0.6, {"cf": 0.6}),
            ],
            "t5-5": [Candidate(f"x{i}", 1 - i / 100, {"cf": 1 - i / 100}) for i in range(40)],
        },
    }
    stats: Counter[str] = Counter()
    merged = merge_candidates(per_path, k=30, vectors=near, near_duplicate=0.95, stats=stats)
    first = merged["t0-0"]
    assert [c.item_id for c in first] == ["t1-0", "t0-1"]  # trigger and its copy dropped
    assert first[0].paths == {"coclick": 9.0, "cf": 0.8}
    assert first[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert len(merged["t5-5"]) == 30 and merged["t5-5"][0].paths == {"cf": 1.0}
    assert stats["self"] == 1 and stats["near_duplicate"] == 1 and stats["cut"] == 10
    assert stats["duplicate"] == 1 and stats["merged"] == 1
    plain = merge_candidates(per_path)  # no vectors: the copy is kept
    assert [c.item_id for c in plain["t0-0"]] == ["t1-0", "copy", "t0-1"]
    muted = merge_candidates(per_path, weights={"coclick": 0.0})
    assert [c.item_id for c in muted["t0-0"]] == ["copy", "t1-0", "t0-1"]
    kept = merge_candidates(per_path, keep=lambda t, c: not c.item_id.startswith("x"))
    assert kept["t5-5"] == []
    frame = candidate_frame(merged, ["cf", "coclick", "qprime"])
    assert frame.columns[-3:] == ["path_cf", "path_coclick", "path_qprime"]
    assert frame.filter(pl.col("item_id") == "t1-0")["n_paths"][0] == 2
    assert frame["path_qprime"].null_count() == frame.height
    with pytest.raises(ConfigError, match="unknown path"):
        merge_candidates(per_path, weights={"qprime": 1.0})


@pytest.mark.parametrize("backend", ["sqlite", "lmdb"])
def test_merged_candidates_round_trip_through_the_store(tmp_path: Path, backend: str) -> None:
    log = _log([["a", "b", "c"], ["a", "b"], ["b", "c"]])
    cc = make_recall_path("coclick").fit(log)
    sem = make_recall_path(
        "semantic", vectors=(["a", "b", "c"], np.eye(3, dtype=np.float32) + 0.1)
    ).fit()
    merged = merge_candidates(recall_all([cc, sem], ["a", "b", "c"], 30))
    with CandidateStore.open(tmp_path / f"c.{backend}", backend=backend) as store:
        assert store_candidates(store, merged, batch_size=2) == 3
        assert store.get("a") == merged["a"]
        assert set(store.get("a")[0].paths) == {"coclick", "semantic"}


def test_recall_by_path_unique_contribution() -> None:
    truth = pl.DataFrame({"trigger_id": ["t", "t", "t", "t", "u"], "item_id": list("abcdx")})
    per_path = {
        "p": {"t": [Candidate("a", 1), Candidate("b", 1)], "u": []},
        "q": {"t": [Candidate("b", 1), Candidate("c", 1), Candidate("z", 1)]},
    }
    table = {r["path"]: r for r in recall_by_path(per_path, truth, k=30).iter_rows(named=True)}
    assert table["p"]["recall@30"] == pytest.approx((2 / 4 + 0) / 2)
    assert table["q"]["recall@30"] == pytest.approx((2 / 4 + 0) / 2)
    assert table["p"]["unique_hits"] == 1 and table["p"]["unique_share"] == pytest.approx(1 / 3)
    assert table["union"]["hits"] == 3 and table["q"]["coverage"] == 0.5
    top1 = {r["path"]: r for r in recall_by_path(per_path, truth, k=1).iter_rows(named=True)}
    assert top1["p"]["hits"] == 1 and top1["q"]["hits"] == 1
