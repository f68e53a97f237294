"""The multitask cross-encoder (SPEC §2.2 stage 2a) on the tiny synthetic world.

Test data: every ordered pair of the 32 tiny-world movies. Item text is a one-sentence
description rendered from the world's hidden attributes (sub-genres, themes, audience,
mood) — the article texts state them at random places in ~140 tokens, beyond what a CPU
test can afford to read. The quality label is the attribute overlap of the pair (0–4),
clicks are real co-engagement counts of the world's sessions (satisfied, rating ≥ 4): a
pair is clicked when the two movies were co-engaged at least ``CLICK_MIN`` times, and
its click count is that co-engagement count. Triggers are split into training and
held-out triggers; the learning checks score the held-out triggers' candidates.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from scipy.stats import spearmanr

from knowrec.data.synth import World
from knowrec.errors import ConfigError, DataFormatError, UnknownIdError
from knowrec.explore.data import coengagement_pairs
from knowrec.ranking import (
    CROSS_ENCODER_FEATURES,
    CrossEncoderFeatures,
    CrossEncoderRanker,
    LGBMRanker,
    build_features,
    final_score,
    make_ranker,
    quality_targets,
    soft_labels,
)
from knowrec.ranking.cross_encoder import (
    PairTokenizer,
    _zscore_within,
    pairwise_click_loss,
    quality_label_loss,
)

THREADS = min(2, int(os.environ.get("KNOWREC_TEST_THREADS", "2")))
CLICK_MIN = 3
N_TRAIN_TRIGGERS = 22  # → 10 held-out triggers × 31 candidates = 310 scored pairs
TRAIN_CANDIDATES = 16  # per training trigger → 352 training pairs
# Heads on the frozen body: each pair is encoded once, the epochs then cost next to nothing.
HEADS_ONLY = {"max_tokens": 48, "train_layers": 0, "epochs": 10, "batch_size": 8, "head_lr": 1e-3}
# Fine-tuning the top two layers too: one epoch, the CPU cost of a few hundred pairs.
FINE_TUNE = {
    "max_tokens": 48,
    "train_layers": 2,
    "epochs": 1,
    "batch_size": 8,
    "lr": 2e-4,
    "head_lr": 3e-3,
}


# ------------------------------------------------------------------ test data


def _overlap(a: dict, b: dict) -> int:
    """Quality label 0–4: 2 per shared sub-genre, 1 per shared theme, 1 for the same
    audience, 1 for the same mood, capped at 4."""
    score = 2 * len(set(a["hidden_genres"]) & set(b["hidden_genres"]))
    score += len(set(a["themes"]) & set(b["themes"]))
    score += int(a["audience"] == b["audience"]) + int(a["mood"] == b["mood"])
    return min(4, score)


@pytest.fixture(scope="module")
def data(tiny_world: World) -> dict[str, pl.DataFrame]:
    truth = tiny_world.truth["movie_items"]
    movies = tiny_world.movies.items
    titles = dict(zip(movies["item_id"], movies["title"], strict=True))
    rows = {r["item_id"]: r for r in truth.iter_rows(named=True)}
    items = pl.DataFrame(
        {
            "item_id": list(rows),
            "text": [
                f"{titles[i]}: a {' and '.join(r['hidden_genres'])} film about "
                f"{' and '.join(r['themes'])}, for {r['audience']}, {r['mood']} in mood."
                for i, r in rows.items()
            ],
        }
    )
    ids = list(rows)
    pairs = pl.DataFrame(
        [(a, b, _overlap(rows[a], rows[b])) for a in ids for b in ids if a != b],
        schema=["trigger_id", "item_id", "quality_label"],
        orient="row",
    )
    counts = coengagement_pairs(tiny_world.movies.interactions, rule="rating >= 4")
    pairs = (
        pairs.join(counts, on=["trigger_id", "item_id"], how="left")
        .with_columns(pl.col("count").fill_null(0))
        .with_columns(
            click_count=pl.when(pl.col("count") >= CLICK_MIN).then("count").otherwise(0),
            # teachers: co-click counts (click) and a noisy judge (quality)
            click_teacher=pl.col("count").log1p(),
        )
    )
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.3, pairs.height)
    pairs = pairs.with_columns(
        quality_teacher=(pl.col("quality_label") + pl.Series(noise)).clip(0.0, 4.0)
    )
    order = rng.permutation(ids)
    train_t, test_t = list(order[:N_TRAIN_TRIGGERS]), list(order[N_TRAIN_TRIGGERS:])

    # training slates: the informative candidates (clicked, or label ≥ 2) first, then random
    informative = ((pl.col("quality_label") >= 2) | (pl.col("click_count") > 0)).cast(pl.Float64)
    train = pairs.filter(pl.col("trigger_id").is_in(train_t))
    train = (
        train.with_columns(__r=pl.Series(rng.random(train.height)) - informative)
        .filter(pl.col("__r").rank("ordinal").over("trigger_id") <= TRAIN_CANDIDATES)
        .drop("__r")
    )
    return {
        "items": items,
        "train": train,
        "test": pairs.filter(pl.col("trigger_id").is_in(test_t)),
    }


def _within_trigger_auc(frame: pl.DataFrame, score: str) -> float:
    """Share of (clicked, not clicked) candidate pairs of the same trigger that ``score``
    orders correctly (ties count half)."""
    good = total = 0.0
    for _, sub in frame.group_by("trigger_id"):
        y = sub["click_count"].to_numpy() > 0
        s = sub[score].to_numpy()
        d = s[y][:, None] - s[~y][None, :]
        good += (d > 0).sum() + 0.5 * (d == 0).sum()
        total += d.size
    return good / total


def _auc_threshold(frame: pl.DataFrame, q: float = 0.99, n: int = 2000) -> float:
    """The ``q`` quantile of the within-trigger AUC of random scores on the same slates:
    exceeding it means better than chance at p < 1 − q."""
    rng = np.random.default_rng(0)
    null = [
        _within_trigger_auc(frame.with_columns(r=pl.Series(rng.random(frame.height))), "r")
        for _ in range(n // 10)
    ]
    return float(np.quantile(null, q))


def _spearman_threshold(n: int, z: float = 2.326) -> float:
    """One-sided p < 0.01 critical value of Spearman's ρ for n pairs (normal approx.)."""
    return z / math.sqrt(n - 1)


def _early_late(history: list[dict[str, float]], key: str) -> tuple[float, float]:
    values = [h[key] for h in history if key in h]
    k = max(1, len(values) // 4)
    return float(np.mean(values[:k])), float(np.mean(values[-k:]))


# ------------------------------------------------------------------ units


def test_soft_labels_split_mass_between_nearest_classes() -> None:
    got = soft_labels([2.3, 0, 4, 3.5, float("nan")])
    np.testing.assert_allclose(got[0], [0, 0, 0.7, 0.3, 0], atol=1e-12)
    np.testing.assert_allclose(got[1], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(got[2], [0, 0, 0, 0, 1])
    np.testing.assert_allclose(got[3], [0, 0, 0, 0.5, 0.5])
    assert np.isnan(got[4]).all()
    with pytest.raises(DataFormatError, match="quality labels"):
        soft_labels([4.5])


def test_pairwise_click_loss_matches_the_formula() -> None:
    scores = torch.tensor([2.0, 0.5, -1.0, 1.0, 0.0])
    groups = torch.tensor([0, 0, 0, 1, 1])
    clicks = torch.tensor([3.0, 0.0, 0.0, 1.0, 0.0])
    # pairs: (0,1), (0,2) weight log 4; (3,4) weight log 2
    terms = [
        (math.log(4), -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5)))),
        (math.log(4), -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(-1.0)))),
        (math.log(2), -math.log(math.exp(1.0) / (math.exp(1.0) + math.exp(0.0)))),
    ]
    want = sum(w * v for w, v in terms) / sum(w for w, _ in terms)
    got = pairwise_click_loss(scores, groups, clicks)
    assert got is not None and float(got) == pytest.approx(want, rel=1e-6)
    # no clicked/not-clicked pair within a group → no loss
    assert pairwise_click_loss(scores, torch.arange(5), clicks) is None


def test_symmetric_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.0, 0.5]])
    target = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]])
    logp = torch.log_softmax(logits, -1)
    ce = -logp[0, 1]
    assert float(quality_label_loss(logits, target)) == pytest.approx(float(ce))
    p = logp.exp()[0]
    rce = 4.0 * float(1 - p[1])  # log 0 := −4 for the four empty classes
    got = quality_label_loss(logits, target, alpha=0.5, beta=2.0)
    assert float(got) == pytest.approx(0.5 * float(ce) + 2.0 * rce, rel=1e-6)


def test_registered_by_name() -> None:
    ranker = make_ranker("cross_encoder", mode="direct", max_tokens=32)
    assert isinstance(ranker, CrossEncoderRanker) and ranker.mode == "direct"


def test_click_teacher_is_z_scored_within_groups() -> None:
    values = np.array([1.0, 3.0, np.nan, 10.0, 10.0, 5.0])
    keys = np.array([0, 0, 0, 1, 1, 2])
    z = _zscore_within(values, keys)
    np.testing.assert_allclose(z[[0, 1, 3, 4, 5]], [-1.0, 1.0, 0.0, 0.0, 0.0])
    assert np.isnan(z[2])


def test_quality_targets_from_judge_scores() -> None:
    scores = pl.DataFrame(
        {
            "trigger_id": ["a", "a"],
            "candidate_id": ["b", "c"],
            "score_b": [2.5, None],
            "probs": [[[0.0, 0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 0.5, 0.5]], None],
        },
        schema_overrides={"probs": pl.List(pl.List(pl.Float64))},
    )
    out = quality_targets(scores)
    assert out.columns[:2] == ["trigger_id", "item_id"]
    assert out.row(0)[2:] == (0.0, 0.0, 0.25, 0.5, 0.25, 2.5)
    assert all(v is None for v in out.row(1)[2:])
    with pytest.raises(ConfigError, match="variant"):
        quality_targets(scores, variant="a")


def test_pair_tokenizer_matches_the_hf_pair_encoding() -> None:
    from transformers import AutoTokenizer

    from knowrec.encoders import resolve_model_path

    hf = AutoTokenizer.from_pretrained(str(resolve_model_path("all-MiniLM-L6-v2")))
    texts = {
        "short": "a quiet film",
        "mid": "a war epic about family bonds and redemption, for adults, light-hearted",
        "long": " ".join(["a sprawling space opera saga among distant galaxies"] * 8),
        "long2": " ".join(["the heist caper about one last big score"] * 9),
    }
    for max_tokens in (16, 31, 48, 128):
        tok = PairTokenizer(hf, max_tokens)
        tok.add(texts, list(texts))
        pairs = [(a, b) for a in texts for b in texts]
        got = tok.batch([a for a, _ in pairs], [b for _, b in pairs])
        for k, (a, b) in enumerate(pairs):
            want = hf(texts[a], texts[b], truncation="longest_first", max_length=max_tokens)
            n = int(got["attention_mask"][k].sum())
            assert got["input_ids"][k, :n].tolist() == want["input_ids"], (max_tokens, a, b)
            assert got["token_type_ids"][k, :n].tolist() == want["token_type_ids"]
            assert n == tok.pair_length(a, b) <= max_tokens
            segs = got["segments"][k, :n]
            assert int((segs == 1).sum()) + int((segs == 2).sum()) == n - 3


# ------------------------------------------------------------------ bad input


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ConfigError, match="mode"):
        CrossEncoderRanker(mode="both")
    with pytest.raises(ConfigError, match="unknown head"):
        CrossEncoderRanker(head_weights={"clicks": 1.0})
    with pytest.raises(ConfigError, match="not all 0"):
        CrossEncoderRanker(head_weights={"click": 0.0, "quality": 0.0})
    with pytest.raises(ConfigError, match="max_tokens"):
        CrossEncoderRanker(max_tokens=4)
    with pytest.raises(ConfigError, match="quality_loss"):
        CrossEncoderRanker(quality_loss="mse")
    with pytest.raises(ConfigError, match="pooling"):
        CrossEncoderRanker(pooling="cls")
    with pytest.raises(ConfigError, match="unknown parameter"):
        CrossEncoderRanker().set_params(learning_rate=1e-4)
    with pytest.raises(ConfigError, match="not fitted"):
        CrossEncoderRanker().predict(pl.DataFrame({"trigger_id": ["1"], "item_id": ["2"]}), {})


def test_bad_frames_are_rejected(data: dict[str, pl.DataFrame]) -> None:
    items, train = data["items"], data["train"].head(16)
    direct = CrossEncoderRanker(mode="direct", progress=False)
    distill = CrossEncoderRanker(mode="distill", progress=False)
    with pytest.raises(ConfigError, match="empty"):
        direct.fit(train.clear(), items)
    with pytest.raises(ConfigError, match=r"needs \['trigger_id'\]"):
        direct.fit(train.drop("trigger_id"), items)
    with pytest.raises(UnknownIdError, match="without text"):
        direct.fit(train, items.filter(pl.col("item_id") != train["item_id"][0]))
    with pytest.raises(ConfigError, match="click head needs a click column"):
        direct.fit(train.drop("click_count"), items)
    with pytest.raises(ConfigError, match="quality head needs 'quality_label'"):
        direct.fit(train.drop("quality_label"), items)
    with pytest.raises(ConfigError, match="click head needs the column 'click_teacher'"):
        distill.fit(train.drop("click_teacher"), items)
    with pytest.raises(ConfigError, match="quality head needs 'quality_teacher'"):
        distill.fit(train.drop("quality_teacher"), items)
    with pytest.raises(DataFormatError, match="quality_label"):
        direct.fit(train.with_columns(quality_label=pl.lit(5.0)), items)
    with pytest.raises(DataFormatError, match="quality_teacher"):
        distill.fit(train.with_columns(quality_teacher=pl.lit(-1.0)), items)
    with pytest.raises(DataFormatError, match="click_count"):
        direct.fit(train.with_columns(click_count=pl.lit(-1)), items)
    with pytest.raises(DataFormatError, match="numeric"):
        direct.fit(train.with_columns(quality_label=pl.lit("good")), items)
    with pytest.raises(DataFormatError, match="every value is null"):
        direct.fit(train.with_columns(quality_label=pl.lit(None, pl.Float64)), items)
    with pytest.raises(ConfigError, match="items frame needs"):
        direct.fit(train, items.rename({"text": "body"}))


# ------------------------------------------------------------------ a small model


@pytest.fixture(scope="module")
def small(data: dict[str, pl.DataFrame]) -> CrossEncoderRanker:
    """Heads only on 40 pairs: cheap, for the plumbing tests."""
    ce = CrossEncoderRanker(
        mode="distill", max_tokens=32, train_layers=0, epochs=1, threads=THREADS, progress=False
    )
    return ce.fit(data["train"].head(40), data["items"])


def test_predict_adds_the_two_head_scores(
    small: CrossEncoderRanker, data: dict[str, pl.DataFrame]
) -> None:
    test = data["test"].head(30)
    out = small.predict(test, data["items"])
    assert out.columns == [*test.columns, *CROSS_ENCODER_FEATURES]
    assert out.select(test.columns).equals(test)
    q = out["quality_score"].to_numpy()
    assert np.isfinite(out["click_score"].to_numpy()).all()
    assert ((q >= 0) & (q <= 4)).all()
    # the fast path gives the same numbers, in any batch composition, duplicates included
    trig = test["trigger_id"].to_list()[::-1] + test["trigger_id"].to_list()[:3]
    cand = test["item_id"].to_list()[::-1] + test["item_id"].to_list()[:3]
    small.eval_batch_size = 7
    try:
        click, quality = small.score_pairs(trig, cand, data["items"], progress=False)
    finally:
        small.eval_batch_size = 64
    np.testing.assert_allclose(click[:30][::-1], out["click_score"].to_numpy(), atol=1e-5)
    np.testing.assert_allclose(quality[:30][::-1], q, atol=1e-5)
    np.testing.assert_array_equal(click[30:], click[:30][::-1][:3])
    # unknown ids: an error by default, NaN scores on request
    odd = pl.DataFrame({"trigger_id": ["1", "nope"], "item_id": ["2", "3"]})
    with pytest.raises(UnknownIdError, match="nope"):
        small.predict(odd, data["items"])
    scored = small.predict(odd, data["items"], missing="nan")["click_score"].to_numpy()
    assert np.isfinite(scored[0]) and np.isnan(scored[1])
    with pytest.raises(ConfigError, match="already has"):
        small.predict(out, data["items"])
    assert small.score_pairs([], [], data["items"])[0].shape == (0,)


def test_save_load_gives_identical_scores(
    small: CrossEncoderRanker, data: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    test = data["test"].head(24)
    before = small.predict(test, data["items"])
    small.save(tmp_path / "ce")
    assert {p.name for p in (tmp_path / "ce").iterdir()} >= {
        "cross_encoder.json",
        "heads.pt",
        "body",
    }
    loaded = CrossEncoderRanker.load(tmp_path / "ce", threads=THREADS)
    assert loaded.get_params() == {**small.get_params(), "threads": THREADS}
    after = loaded.predict(test, data["items"])
    np.testing.assert_array_equal(before["click_score"], after["click_score"])
    np.testing.assert_array_equal(before["quality_score"], after["quality_score"])
    with pytest.raises(DataFormatError, match="not a saved cross-encoder"):
        CrossEncoderRanker.load(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="overridden"):
        CrossEncoderRanker.load(tmp_path / "ce", lr=1.0)


def test_same_seed_same_model(data: dict[str, pl.DataFrame]) -> None:
    params = {"max_tokens": 24, "train_layers": 1, "threads": THREADS, "progress": False}
    frame = data["train"].head(16)
    a = CrossEncoderRanker(**params).fit(frame, data["items"]).predict(frame, data["items"])
    b = CrossEncoderRanker(**params).fit(frame, data["items"]).predict(frame, data["items"])
    np.testing.assert_array_equal(a["click_score"], b["click_score"])
    np.testing.assert_array_equal(a["quality_score"], b["quality_score"])


def test_an_interrupted_fit_resumes_to_the_same_model(
    data: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    """A fit killed after a mid-epoch checkpoint (an error raised in the training loop)
    and fitted again with the same checkpoint directory ends exactly as a fit never
    interrupted: the top layer, dropout, the warm-up/decay schedule and the epoch order
    all resume."""
    params = {"mode": "direct", "max_tokens": 24, "train_layers": 1, "epochs": 2}
    params |= {"batch_size": 8, "checkpoint_every": 2, "threads": THREADS, "progress": False}
    frame, items = data["train"].head(24), data["items"]  # 3 batches an epoch

    class Killed(Exception):
        pass

    def kill(info: dict) -> None:
        if info["global_step"] == 4:  # epoch 2, step 1
            raise Killed

    whole = CrossEncoderRanker(**params).fit(frame, items)
    with pytest.raises(Killed):
        CrossEncoderRanker(**params).fit(frame, items, checkpoint_dir=tmp_path, on_checkpoint=kill)
    seen: list[int] = []
    resumed = CrossEncoderRanker(**params).fit(
        frame, items, checkpoint_dir=tmp_path, on_checkpoint=lambda i: seen.append(i["global_step"])
    )
    assert seen == [6, 6]  # went on from step 4: the last epoch end, then the finish
    assert len(resumed.history) == 6 and resumed.history == whole.history
    assert whole.net is not None and resumed.net is not None
    a, b = whole.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="cannot resume with different head_lr"):
        CrossEncoderRanker(**params, head_lr=0.1).fit(frame, items, checkpoint_dir=tmp_path)


def test_stage_2b_lightgbm_uses_the_head_scores(
    small: CrossEncoderRanker, data: dict[str, pl.DataFrame]
) -> None:
    test = data["test"].filter(
        pl.col("trigger_id").is_in(data["test"]["trigger_id"].unique().sort()[:5].to_list())
    )
    frame, names = build_features(
        test.with_columns(clicked=(pl.col("click_count") > 0).cast(pl.Int8)),
        [CrossEncoderFeatures(small, data["items"])],
    )
    assert names == list(CROSS_ENCODER_FEATURES)
    features = ["click_teacher", *names]
    ranker = LGBMRanker(features, n_estimators=20, min_child_samples=2, num_leaves=4)
    ranker.fit(frame, label="clicked", group="trigger_id")
    scores = ranker.predict(frame)
    assert scores.shape == (frame.height,) and np.isfinite(scores).all()
    assert set(ranker.feature_importance()) == set(features)
    final = final_score(scores, frame["quality_score"].to_numpy(), 0.32)
    assert np.isfinite(final).all()


# ------------------------------------------------------------------ learning


def _check_learning(ce: CrossEncoderRanker, data: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Held-out triggers: the click head orders their clicked candidates above the others,
    the quality head's score follows the labels, both beyond chance at p < 0.01."""
    out = ce.predict(data["test"], data["items"])
    auc, floor = _within_trigger_auc(out, "click_score"), _auc_threshold(out)
    assert auc > floor, f"click head AUC {auc:.3f} not above chance (99th pct {floor:.3f})"
    rho = spearmanr(out["quality_score"], out["quality_label"])[0]
    floor = _spearman_threshold(out.height)
    assert rho > floor, f"quality Spearman {rho:.3f} not above chance ({floor:.3f})"
    return out


def _check_losses_fall(ce: CrossEncoderRanker, keys: tuple[str, ...]) -> None:
    assert {*keys} <= set(ce.history[0])
    for key in ("loss", *keys):
        early, late = _early_late(ce.history, key)
        assert late < early, f"{key}: {early:.3f} → {late:.3f}"


def test_direct_fine_tuning_learns_clicks_and_quality(data: dict[str, pl.DataFrame]) -> None:
    ce = CrossEncoderRanker(mode="direct", threads=THREADS, progress=False, **HEADS_ONLY)
    ce.fit(data["train"], data["items"])
    batches = math.ceil(data["train"].height / HEADS_ONLY["batch_size"])
    assert len(ce.history) == HEADS_ONLY["epochs"] * batches
    _check_losses_fall(ce, ("click_pair", "quality_label"))
    assert "click_mse" not in ce.history[0] and "quality_mse" not in ce.history[0]
    _check_learning(ce, data)


def test_distillation_learns_the_teachers(data: dict[str, pl.DataFrame]) -> None:
    ce = CrossEncoderRanker(mode="distill", threads=THREADS, progress=False, **HEADS_ONLY)
    ce.fit(data["train"], data["items"])
    _check_losses_fall(ce, ("click_mse", "quality_mse"))
    assert "click_pair" not in ce.history[0] and "quality_label" not in ce.history[0]
    out = _check_learning(ce, data)
    rho = spearmanr(out["quality_score"], out["quality_teacher"])[0]
    assert rho > _spearman_threshold(out.height)
    # with label_weight the label losses join the teachers' MSE
    mixed = CrossEncoderRanker(
        mode="distill", label_weight=0.5, threads=THREADS, progress=False, **HEADS_ONLY
    ).set_params(epochs=1)
    mixed.fit(data["train"].head(48), data["items"])
    assert {"click_mse", "quality_mse", "click_pair", "quality_label"} <= {
        k for h in mixed.history for k in h
    }


@pytest.mark.slow
def test_fine_tuning_the_top_layers(data: dict[str, pl.DataFrame]) -> None:
    ce = CrossEncoderRanker(mode="direct", threads=THREADS, progress=False, **FINE_TUNE)
    from transformers import AutoModel

    from knowrec.encoders import resolve_model_path

    ce.fit(data["train"], data["items"])
    _check_losses_fall(ce, ("click_pair", "quality_label"))
    assert ce.net is not None
    base = AutoModel.from_pretrained(str(resolve_model_path("all-MiniLM-L6-v2"))).state_dict()
    tuned = ce.net.body.state_dict()
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed and all(k.startswith(("encoder.layer.4.", "encoder.layer.5.")) for k in changed)
    _check_learning(ce, data)
