"""Feature encoding, backbones, the TRAWL adapter and InfoNCE, on small worlds where the
right answer is known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from knowrec.errors import ConfigError, DataFormatError, RegistryError
from knowrec.metrics import auc
from knowrec.models import (
    BACKBONES,
    DIN,
    CTRModel,
    JointLoss,
    ModelOutput,
    MoEAdapter,
    build_backbone,
    info_nce,
    register_backbone,
)
from knowrec.models.adapter import EntityEmbedding
from knowrec.models.features import (
    OOV,
    PAD,
    FeatureMap,
    FeatureSpec,
    KnowledgeTable,
    movielens_spec,
)
from knowrec.models.floors import ItemRate, LogisticFloor
from knowrec.models.layers import AUGRU, FMInteraction, activation, masked_mean
from knowrec.train import CTRTrainer, TrainConfig, seed_everything
from tests.toy_ctr import SPEC, toy_data, toy_frame

torch.set_num_threads(1)
FAST = {"dim": 16, "l2": 1e-6}


def _fit(model: CTRModel, data: dict, epochs: int = 3, lr: float = 3e-3) -> CTRTrainer:
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=128, patience=0, progress=False)
    trainer = CTRTrainer(model, config)
    trainer.fit(data["train"], data["valid"])
    return trainer


# --------------------------------------------------------------------------- features


def test_encoder_pads_truncates_and_maps_unknowns_to_oov() -> None:
    frame, _, _ = toy_frame(200)
    fmap = FeatureMap.fit(SPEC, frame)
    new = pl.DataFrame(
        {
            "user_id": ["u0", "nobody"],
            "item_id": ["i1", "new-item"],
            "label": [1, 0],
            "gender": ["F", None],
            "genres": [["Drama", "Sci-Fi"], []],
            "hist_item_ids": [[f"i{k}" for k in range(8)], ["i2", "unseen"]],
            "hist_ratings": [[1.0, 2, 3, 4, 5, 4, 3, 2], [5.0, float("nan")]],
        },
        schema_overrides={"hist_ratings": pl.List(pl.Float32)},
    )
    t = fmap.encode(new).tensors
    assert t["user"][1] == OOV and t["item"][1] == OOV and t["cat:gender"][1] == OOV
    assert t["user"][0] >= 2 and t["item"][0] >= 2
    drama, scifi = t["multi:genres"][0, :2].tolist()
    assert drama >= 2 and scifi == OOV and t["multi:genres"][1].tolist() == [PAD] * 3
    # the last 6 history items are kept, oldest first, right-padded
    vocab = fmap.items.vocab
    assert t["hist"][0].tolist() == [vocab[f"i{k}"] for k in range(2, 8)]
    assert t["hist"][1].tolist() == [vocab["i2"], OOV, PAD, PAD, PAD, PAD]
    assert t["hist_len"].tolist() == [6, 2]
    r = fmap.ratings
    assert r is not None
    assert t["hist_rating"][0].tolist() == [r[x] for x in ("3", "4", "5", "4", "3", "2")]
    assert t["hist_rating"][1, :3].tolist() == [r["5"], OOV, PAD]
    assert t["label"].dtype == torch.float32
    # unknowns predict without error
    model = build_backbone("din", fmap, embedding=FAST)
    assert torch.isfinite(model(fmap.encode(new).batch(slice(None))).logit).all()


def test_entities_cover_knowledge_ids_without_training_them() -> None:
    frame, items, users = toy_frame(300, n_users=150)
    train = frame.filter(pl.col("user_id") != "u7")
    fmap = FeatureMap.fit(SPEC, train, knowledge={"item": items, "user": users})
    e = fmap.users.vocab["u7"]
    assert e >= fmap.users.n_rows  # known through its knowledge, not trained
    assert fmap.users.id_row[e] == OOV
    np.testing.assert_array_equal(fmap.users.knowledge[e], users.vectors[7])
    np.testing.assert_array_equal(fmap.users.knowledge[OOV], 0.0)


def test_missing_columns_and_tables() -> None:
    frame, _, _ = toy_frame(100)
    with pytest.raises(ConfigError, match="gender"):
        FeatureMap.fit(SPEC, frame.drop("gender"))
    users = pl.DataFrame({"user_id": [f"u{k}" for k in range(150)], "gender": ["F", "M"] * 75})
    fmap = FeatureMap.fit(SPEC, frame.drop("gender"), users=users)  # joined from the table
    assert len(fmap.categorical["gender"]) == 4
    with pytest.raises(DataFormatError, match="no label"):
        fmap.encode(frame.with_columns(label=pl.lit(None, dtype=pl.Int8)), users=users)
    with pytest.raises(ConfigError, match="side"):
        FeatureMap.fit(SPEC, frame, knowledge={"movie": KnowledgeTable(["i1"], np.ones((1, 2)))})
    assert isinstance(movielens_spec(), FeatureSpec)


def test_feature_map_save_load_round_trip(tmp_path) -> None:
    frame, items, users = toy_frame(300)
    fmap = FeatureMap.fit(SPEC, frame, knowledge={"item": items, "user": users})
    again = FeatureMap.load(fmap.save(tmp_path))
    a, b = fmap.encode(frame).tensors, again.encode(frame).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(again.items.knowledge, fmap.items.knowledge)
    assert again.describe() == fmap.describe()
    with pytest.raises(ConfigError, match="no feature map"):
        FeatureMap.load(tmp_path / "elsewhere")


def test_partner_index() -> None:
    frame, _, users = toy_frame(300)
    fmap = FeatureMap.fit(SPEC, frame, knowledge={"user": users})
    p = fmap.partner_index("user", {"u1": "u2", "u3": "nobody", "ghost": "u1"})
    v = fmap.users.vocab
    assert p[v["u1"]] == v["u2"] and p[v["u3"]] == -1 and (p >= 0).sum() == 1
    frame_form = pl.DataFrame({"id": ["u1", "u4"], "positive_id": ["u2", None]})
    np.testing.assert_array_equal(fmap.partner_index("user", frame_form), p)


# ----------------------------------------------------------------------------- layers


def test_fm_interaction_and_masked_mean_match_brute_force() -> None:
    x = torch.randn(3, 4, 5)
    brute = sum((x[:, i] * x[:, j]).sum(-1) for i in range(4) for j in range(i + 1, 4))
    torch.testing.assert_close(FMInteraction()(x), brute)
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    m = masked_mean(x, mask)
    torch.testing.assert_close(m[0], x[0, :2].mean(0))
    torch.testing.assert_close(m[1], torch.zeros(5))
    with pytest.raises(ConfigError, match="known names"):
        activation("swish", 3)
    y = torch.randn(2, 3, 7)
    assert activation("prelu", 7)(y).shape == y.shape and activation("dice", 7)(y).shape == y.shape


def test_augru_ignores_padded_steps() -> None:
    torch.manual_seed(0)
    gru = AUGRU(4, 6)
    x, att = torch.randn(2, 5, 4), torch.rand(2, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    full = gru(x, att, mask)
    short = gru(x[:1, :3], att[:1, :3], mask[:1, :3])
    torch.testing.assert_close(full[:1], short)
    x2 = x.clone()
    x2[0, 3:] = 100.0
    torch.testing.assert_close(gru(x2, att, mask), full)
    assert torch.equal(gru(x, att, torch.zeros_like(mask)), torch.zeros(2, 6))


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_parameters() -> None:
    fmap, _ = toy_data(n=400)
    with pytest.raises(RegistryError, match="known backbones are deepfm, dien, din"):
        build_backbone("transformer", fmap)
    with pytest.raises(ConfigError, match=r"mlp_unit.*known parameters are embedding"):
        build_backbone("din", fmap, mlp_unit=(10,))
    with pytest.raises(ConfigError, match="embedding: dimm"):
        build_backbone("din", fmap, embedding={"dimm": 3})
    with pytest.raises(ConfigError, match="knowledge: Input should be 'none', 'raw'"):
        build_backbone("din", fmap, embedding={"knowledge": "magic"})
    model = build_backbone("DIN", fmap, embedding=FAST, mlp_units=(32,))
    params = model.get_params()
    assert params["mlp_units"] == (32,) and params["embedding"]["dim"] == 16

    class Mean(CTRModel):
        name = "mean"

        def __init__(self, feature_map, embedding=None, *, scale: float = 1.0) -> None:
            super().__init__(feature_map, embedding)
            self.scale = scale
            self._set_params(locals())

        def forward(self, batch):
            return ModelOutput(self.scale * self.embedding(batch).item.mean(-1))

    class Other(Mean):
        pass

    register_backbone("mean", Mean)
    try:
        assert build_backbone("mean", fmap, scale=2.0).get_params()["scale"] == 2.0
        register_backbone("mean", Mean)  # the same class again is fine
        with pytest.raises(RegistryError, match="already registered"):
            register_backbone("mean", Other)
    finally:
        BACKBONES.pop("mean")


def test_sequence_backbones_need_a_sequence() -> None:
    frame, _, _ = toy_frame(200)
    fmap = FeatureMap.fit(SPEC.model_copy(update={"sequence": None}), frame)
    with pytest.raises(ConfigError, match="behaviour sequence"):
        build_backbone("dien", fmap)
    assert build_backbone("deepfm", fmap, embedding=FAST)(
        fmap.encode(frame).batch(slice(4))
    ).logit.shape == (4,)


# ----------------------------------------------------------------------------- backbones


@pytest.mark.parametrize("name", ["deepfm", "din", "dien"])
def test_backbone_learns_the_history_rating_signal(name: str) -> None:
    """Labels follow the user's mean history rating; validation users' rows are unseen."""
    fmap, data = toy_data()
    seed_everything(0)
    model = build_backbone(name, fmap, embedding=FAST)
    trainer = _fit(model, data)
    score = trainer.evaluate(data["valid"])["auc"]
    assert score > 0.75, (name, score)


@pytest.mark.parametrize("name", ["din", "dien"])
def test_a_saved_backbone_reloads_from_its_folder(name: str, tmp_path: Path) -> None:
    fmap, data = toy_data(n=400)
    seed_everything(0)
    embedding = {**FAST, "knowledge": "adapter"}
    model = build_backbone(name, fmap, embedding=embedding, mlp_units=(16, 8))
    _fit(model, data, epochs=1)
    model.save(tmp_path / "model", fmap)

    again, fmap_again = CTRModel.load(tmp_path / "model")
    assert type(again) is type(model) and again.get_params() == model.get_params()
    assert fmap_again.describe() == fmap.describe()
    batch = data["valid"].batch(slice(0, 64))
    with torch.no_grad():
        np.testing.assert_allclose(again(batch).logit, model.eval()(batch).logit, rtol=1e-6)
    with pytest.raises(ConfigError, match="not a saved CTR model"):
        CTRModel.load(tmp_path)


def test_din_attention_ignores_padding() -> None:
    fmap, data = toy_data(n=400)
    seed_everything(0)
    model = build_backbone("din", fmap, embedding=FAST).eval()
    batch = data["valid"].batch(slice(0, 64))
    assert isinstance(model, DIN)
    lengths = batch["hist_len"]
    pad = torch.arange(6).unsqueeze(0) >= lengths.unsqueeze(1)
    assert pad.any()
    poked = dict(batch)
    poked["hist"] = torch.where(pad, torch.randint(2, 50, pad.shape), batch["hist"])
    poked["hist_rating"] = torch.where(
        pad, torch.full_like(pad, 2, dtype=torch.long), batch["hist_rating"]
    )
    with torch.no_grad():
        weights = model.attend(batch)
        assert torch.equal(weights[pad], torch.zeros(int(pad.sum())))
        torch.testing.assert_close(model(poked).logit, model(batch).logit, rtol=0, atol=0)


def test_dien_aux_loss_is_finite_and_decreases() -> None:
    """Histories walk through items in order (i → i+1), so the next click is predictable."""
    rng = np.random.default_rng(0)
    n = 1500
    start = rng.integers(0, 40, n)
    hist = [[f"i{(s + k) % 40}" for k in range(6)] for s in start]
    frame = pl.DataFrame(
        {
            "user_id": [f"u{k % 50}" for k in range(n)],
            "item_id": [f"i{(s + 6) % 40}" for s in start],
            "label": rng.integers(0, 2, n).astype(np.int8),
            "gender": ["F"] * n,
            "genres": [["Drama"]] * n,
            "hist_item_ids": hist,
            "hist_ratings": [[4.0] * 6] * n,
        },
        schema_overrides={"hist_ratings": pl.List(pl.Float32)},
    )
    fmap = FeatureMap.fit(SPEC, frame)
    data = fmap.encode(frame)
    seed_everything(0)
    model = build_backbone("dien", fmap, embedding=FAST, aux_weight=1.0).train()

    def aux() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            out = model(data.batch(slice(0, 512)))
        assert out.aux_loss is not None and torch.isfinite(out.aux_loss)
        return float(out.aux_loss)

    before = aux()
    CTRTrainer(model, TrainConfig(epochs=4, lr=5e-3, batch_size=50, progress=False)).fit(data)
    model.train()
    after = aux()
    assert after < 0.6 * before, (before, after)
    model.eval()
    assert model(data.batch(slice(0, 8))).aux_loss is None  # no aux in evaluation


# ------------------------------------------------------------------------------ adapter


def test_moe_adapter_matches_its_formula() -> None:
    torch.manual_seed(0)
    adapter = MoEAdapter(12, 5, n_experts=3, hidden=7)
    x = torch.randn(4, 2, 12)
    out = adapter(x)
    assert out.shape == (4, 2, 5)
    g = torch.softmax(x @ adapter.gate.weight.T, dim=-1)
    w1 = adapter.hidden.weight.view(3, 7, 12)
    b1 = adapter.hidden.bias.view(3, 7)
    brute = sum(
        g[..., e : e + 1] * (torch.relu(x @ w1[e].T + b1[e]) @ adapter.w_out[e] + adapter.b_out[e])
        for e in range(3)
    )
    torch.testing.assert_close(out, brute)
    torch.testing.assert_close(adapter.gates(x).sum(-1), torch.ones(4, 2))


def test_injection_reaches_user_target_and_history_items() -> None:
    fmap, data = toy_data(n=400)
    batch = data["valid"].batch(slice(0, 32))
    for mode, extra in (("adapter", 8), ("raw", 16)):
        seed_everything(0)
        model = build_backbone(
            "din", fmap, embedding={**FAST, "knowledge": mode, "adapter_dim": 8}
        ).eval()
        emb = model.embedding
        assert emb.user_dim == emb.item_dim == 16 + extra
        e = emb(batch)
        assert e.hist is not None and e.hist.shape == (32, 6, 16 + extra)
        if mode == "raw":  # the semantic vector itself, concatenated
            torch.testing.assert_close(e.item[:, 16:], emb.item.knowledge[batch["item"]])
        fm = build_backbone("deepfm", fmap, embedding={**FAST, "knowledge": mode})
        assert fm(batch).logit.shape == (32,)  # the FM projects the knowledge part
        base = model(batch).logit
        for side, key in (("user", "user"), ("item", "item"), ("item", "hist")):
            table = emb.entity(side).knowledge
            saved = table.clone()
            idx = batch[key][0] if key != "hist" else batch["hist"][batch["hist_len"] > 0][0, 0]
            table[idx] += 5.0
            try:
                changed = model(batch).logit
            finally:
                table.copy_(saved)
            assert not torch.allclose(changed, base), (mode, key)


def test_knowledge_helps_cold_items() -> None:
    """Validation targets are items never seen in training; the label follows their
    knowledge vector: only a model with knowledge can rank them."""
    train, items, users = toy_frame(2400, items=np.arange(0, 70), signal="knowledge", seed=1)
    valid, _, _ = toy_frame(800, items=np.arange(70, 100), signal="knowledge", seed=2)
    fmap = FeatureMap.fit(SPEC, train, knowledge={"item": items, "user": users})
    data = {"train": fmap.encode(train), "valid": fmap.encode(valid)}
    assert (data["valid"].tensors["item"] >= fmap.items.n_rows).all()  # cold
    scores = {}
    for mode in ("none", "adapter"):
        seed_everything(0)
        model = build_backbone("din", fmap, embedding={**FAST, "knowledge": mode})
        scores[mode] = _fit(model, data, epochs=4).evaluate(data["valid"])["auc"]
    assert scores["adapter"] > 0.75 and scores["none"] < 0.6, scores


def test_id_dropout_uses_the_oov_row_in_training_only() -> None:
    emb = EntityEmbedding(5, 3, np.arange(5), id_dropout=1.0)
    with torch.no_grad():
        emb.ids.weight[1] = 7.0
    idx = torch.tensor([2, 3, 0])
    assert torch.equal(emb.train()(idx)[:2], torch.full((2, 3), 7.0))
    assert torch.equal(emb(idx)[2], torch.zeros(3))  # padding stays padding
    assert torch.equal(emb.eval()(idx), emb.ids.weight[idx])


# ----------------------------------------------------------------------------- InfoNCE


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_info_nce_matches_brute_force(reduction: str) -> None:
    rng = np.random.default_rng(0)
    u, p = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    tau = 0.15
    un = u / np.linalg.norm(u, axis=1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=1, keepdims=True)
    terms = []
    for j in range(7):
        num = math.exp(un[j] @ pn[j] / tau)
        den = sum(math.exp(un[k] @ pn[j] / tau) for k in range(7))
        terms.append(-math.log(num / den))
    expected = sum(terms) if reduction == "sum" else sum(terms) / 7
    got = info_nce(torch.tensor(u), torch.tensor(p), tau, reduction=reduction)  # type: ignore[arg-type]
    assert float(got) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ConfigError):
        info_nce(torch.tensor(u), torch.tensor(p[:3]))


def test_joint_loss_adds_weighted_contrastive_terms() -> None:
    fmap, data = toy_data(n=400)
    n_users, n_items = len(fmap.users.vocab), len(fmap.items.vocab)
    partners_u = fmap.partner_index("user", {f"u{k}": f"u{k + 1}" for k in range(100)})
    partners_i = fmap.partner_index("item", {f"i{k}": f"i{(k + 3) % 100}" for k in range(100)})
    assert len(partners_u) == n_users and len(partners_i) == n_items
    seed_everything(0)
    model = build_backbone("deepfm", fmap, embedding={**FAST, "knowledge": "adapter"})
    batch = data["train"].batch(slice(0, 64))
    out = model(batch)
    plain, _ = JointLoss()(model, batch, out)
    loss = JointLoss(w_uu=0.5, w_ii=0.25, user_partners=partners_u, item_partners=partners_i)
    total, parts = loss(model, batch, out)
    # by hand: distinct batch users with a partner vs their partners' adapted vectors
    users = torch.unique(batch["user"])
    users = users[torch.as_tensor(partners_u)[users] >= 0]
    emb = model.embedding.user
    uu = info_nce(emb.adapted(users), emb.adapted(torch.as_tensor(partners_u)[users]), 0.15)
    torch.testing.assert_close(parts["uu"], uu.detach())
    torch.testing.assert_close(total, plain + 0.5 * parts["uu"] + 0.25 * parts["ii"])
    with pytest.raises(ConfigError, match="user_partners"):
        JointLoss(w_uu=0.1)
    raw = build_backbone("din", fmap, embedding={**FAST, "knowledge": "raw"})
    with pytest.raises(ConfigError, match="needs knowledge mode 'adapter'"):
        CTRTrainer(raw, loss=loss)


# ------------------------------------------------------------------------------ floors


def test_floors() -> None:
    train = pl.DataFrame({"item_id": ["a"] * 10 + ["b"], "label": [1] * 10 + [0]})
    g = 10 / 11
    p = ItemRate(prior_strength=10).fit(train).predict(pl.DataFrame({"item_id": ["a", "b", "z"]}))
    np.testing.assert_allclose(p, [(10 + 10 * g) / 20, 10 * g / 11, g])
    fit, _, _ = toy_frame(3000, seed=3)
    test, _, _ = toy_frame(1000, seed=4)
    rate = auc(test["label"], ItemRate().fit(fit).predict(test))
    lr = LogisticFloor(categorical=["item_id", "gender", "age"]).fit(fit)  # no age column
    assert rate < 0.6 < auc(test["label"], lr.predict(test))  # the history-rating signal
    with pytest.raises(ConfigError, match="gender"):
        lr.predict(test.drop("gender"))
