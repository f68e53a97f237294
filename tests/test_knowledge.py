"""Knowledge generation (docs/trawl.md, knowledge methods): key-factor sets, prompt templates, the
leakage guard, every method's table, and — with the real 1.5B model and MiniLM — failure
records, output diversity and the synthetic-world quality test."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
import numpy as np
import polars as pl
import pytest

from knowrec.data.synth import World
from knowrec.data.tables import Dataset, conform
from knowrec.errors import ConfigError
from knowrec.knowledge import (
    KNOWLEDGE_SCHEMA,
    METHODS,
    KnowledgeConfig,
    KnowledgeGenerator,
    PromptTemplate,
    builtin_domains,
    builtin_template,
    load_domain,
    user_histories,
)
from knowrec.metrics import auc
from knowrec.pipelines.demo import demo_config

# --------------------------------------------------------------------------- key factors


def test_schema_is_built_from_the_key_factor_set() -> None:
    domain = load_domain("movies")
    schema = domain.json_schema("item")
    props = schema["properties"]
    assert list(props) == [f.name for f in domain.for_side("item")]
    assert schema["required"] == list(props) and schema["additionalProperties"] is False
    genres = next(f for f in domain.factors if f.name == "genres")
    assert genres.max_items == 3 and props["genres"]["maxItems"] == 3  # ≤ 3 values
    assert props["genres"]["items"]["enum"] == list(genres.values)
    assert props["audience"]["enum"] == ["children", "families", "teens", "young adults",
                                         "adults", "older adults"]  # fmt: skip
    assert props["keywords"]["items"]["maxLength"] == 30  # open vocabulary, bounded phrases
    user = domain.json_schema("user")["properties"]
    assert "keywords" not in user and "acclaim" not in user
    assert user["avoid"]["items"]["enum"][:2] == ["none", "action"]

    good = {
        "genres": ["war", "drama"],
        "themes": ["survival"],
        "mood": ["dark"],
        "audience": "adults",
        "acclaim": "classic",
        "style": "1990s",
        "keywords": ["beach landing", "Normandy"],
    }
    jsonschema.validate(good, schema)
    for bad in (
        {**good, "genres": ["war", "drama", "epic", "historical"]},  # more than max_items
        {**good, "genres": ["war", "sunny"]},  # a value outside the closed vocabulary
        {**good, "genres": "war, drama"},  # a list is an array
        {**good, "audience": "everyone"},
        {**good, "keywords": ["x" * 31]},  # a phrase over the length bound
        {**good, "keywords": ["a", "b", "c"]},  # more phrases than max_items
        {k: v for k, v in good.items() if k != "mood"},  # a factor missing
        {**good, "extra": "x"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    user_answer = {k: v for k, v in good.items() if k not in ("keywords", "acclaim")}
    user_answer["avoid"] = ["none"]
    jsonschema.validate(user_answer, domain.json_schema("user"))
    assert domain.clean(user_answer, "user")["avoid"] == []  # "none" means no dislikes
    cleaned = domain.clean({**good, "keywords": "war, Normandy, Normandy"}, "item")
    assert cleaned["genres"] == ["war", "drama"] and cleaned["keywords"] == ["Normandy"]
    assert domain.render(cleaned, "item") == (
        "Genres: war, drama. Themes: survival. Mood: dark. Audience: adults. "
        "Acclaim: classic. Era/style: 1990s. Keywords: Normandy."
    )
    with pytest.raises(ValueError, match="not an allowed value"):
        domain.clean({**good, "mood": "sunny"}, "item")


def test_builtin_and_user_defined_domains(tmp_path: Path) -> None:
    assert {"movies", "news", "generic"} <= set(builtin_domains())
    for name in builtin_domains():
        for side in ("item", "user"):
            jsonschema.Draft202012Validator.check_schema(load_domain(name).json_schema(side))
    path = tmp_path / "books.toml"
    path.write_text(
        'name = "books"\nnoun = "book"\n'
        '[[factors]]\nname = "genres"\ndescription = "kind of book"\n'
        'values = ["poetry", "thriller"]\nmax_items = 2\n'
        '[[factors]]\nname = "avoid"\ndescription = "disliked kinds"\nvalues_from = "genres"\n'
        'sides = ["user"]\nmin_items = 0\n'
    )
    gen = KnowledgeGenerator({"domain": str(path)})
    assert gen.domain.name == "books" and gen.domain.factors[1].values == ("poetry", "thriller")
    assert "avoid" not in gen.domain.json_schema("item")["properties"]
    path.write_text('name = "x"\n[[factors]]\nname = "Bad Name"\ndescription = "d"\n')
    with pytest.raises(ConfigError, match="lower_snake_case"):
        load_domain(path)
    with pytest.raises(ConfigError, match="built-in domains are"):
        load_domain("no-such-domain")
    with pytest.raises(ConfigError, match="knowledge config: k"):
        KnowledgeConfig.from_mapping({"k": 0})
    with pytest.raises(ConfigError, match="kk: Extra inputs"):
        KnowledgeConfig.from_mapping({"kk": 5})


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize("side", ["item", "user"])
@pytest.mark.parametrize("method", ["trawl", "kar", "summary", "topic_summary"])
def test_templates_keep_the_fixed_prefix(side: str, method: str) -> None:
    template = builtin_template(side, method)  # type: ignore[arg-type]
    domain = load_domain("movies")
    system = template.render_system(domain, side, 5)  # type: ignore[arg-type]
    assert "$" not in system and system == template.render_system(domain, side, 5)  # type: ignore[arg-type]
    if method == "trawl":
        for factor in domain.for_side(side):  # type: ignore[arg-type]
            assert f"- {factor.name} (" in system
    a = template.render_user(text="AAA", title="AAA", profile="AAA", history="AAA")
    b = template.render_user(text="BBB", title="BBB", profile="BBB", history="BBB")
    # The whole prompt of two items differs only after the fixed instructions.
    full_a, full_b = system + "\n" + a, system + "\n" + b
    common = next(i for i, (x, y) in enumerate(zip(full_a, full_b, strict=False)) if x != y)
    assert common >= len(system) + 1
    assert a.startswith("AAA") or a.splitlines()[0] == "AAA"


def test_template_rejects_item_text_in_the_fixed_part(tmp_path: Path) -> None:
    bad = "=== system ===\nRead $text and answer.\n=== user ===\n$title\n"
    with pytest.raises(ConfigError, match="system part may not use"):
        PromptTemplate.parse(bad)
    with pytest.raises(ConfigError, match="system"):
        PromptTemplate.parse("just some text $text")
    with pytest.raises(ConfigError, match="the user part must use one of"):
        PromptTemplate.parse("=== system ===\nDescribe it.\n=== user ===\nno item here\n")
    path = tmp_path / "mine.txt"
    path.write_text("# mine\n=== system ===\nDescribe the $noun.\n=== user ===\n$text\n")
    gen = KnowledgeGenerator({"templates": {"item_trawl": str(path)}})
    assert gen.template("item", "trawl").system == "Describe the $noun."
    assert gen.prompt_hash("trawl", "item") != KnowledgeGenerator().prompt_hash("trawl", "item")


# --------------------------------------------------------------------------- leakage guard


def _t(minutes: int) -> datetime:
    return datetime(2001, 1, 1) + timedelta(minutes=minutes)


def _leak_data() -> Dataset:
    """Two users; item ``i<N>`` is user u's N-th interaction; text names the item."""
    rows = []
    for user, n in (("u1", 9), ("u2", 4)):
        for j in range(n):
            rows.append((user, f"{user}-i{j}", _t(10 * j), float(1 + j % 5)))
    rows.append(("u1", "u1-tie", _t(60), 3.0))  # same time as u1-i6
    inter = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp", "rating"], orient="row")
    items = inter.select(
        "item_id", title=pl.col("item_id"), text=pl.lit("Marker ") + pl.col("item_id") + "."
    )
    users = pl.DataFrame({"user_id": ["u1", "u2"], "age": [25, 1], "gender": ["F", "M"]})
    return Dataset(
        conform(inter.with_columns(pl.col("timestamp").cast(pl.Datetime("ms"))), "interactions"),
        conform(items, "items"),
        conform(users, "users"),
    )


def test_user_history_is_strictly_before_the_cut() -> None:
    data = _leak_data()
    cuts = pl.DataFrame({"user_id": ["u1", "u2"], "cut": [_t(60), _t(25)]})
    hist = user_histories(data.interactions, k=3, cut=cuts)
    got = {u: g["item_id"].to_list() for (u,), g in hist.group_by("user_id")}
    # u1: the 3 most recent strictly before minute 60 (u1-i6 and the tie at 60 excluded).
    assert got == {"u1": ["u1-i3", "u1-i4", "u1-i5"], "u2": ["u2-i0", "u2-i1", "u2-i2"]}
    joined = hist.join(cuts, on="user_id")
    assert (joined["timestamp"] < joined["cut"].cast(pl.Datetime("ms"))).all()
    assert hist["position"].to_list() == [0, 1, 2, 0, 1, 2]  # oldest first
    glob = user_histories(data.interactions, k=2, cut=_t(30))
    assert glob.filter(pl.col("user_id") == "u1")["item_id"].to_list() == ["u1-i1", "u1-i2"]
    only_u1 = user_histories(data.interactions, k=2, cut=cuts.head(1))
    assert only_u1["user_id"].unique().to_list() == ["u1"]  # no cut → no history
    with pytest.raises(ConfigError, match="duplicate"):
        user_histories(data.interactions, cut=pl.concat([cuts, cuts]))


def test_prompts_are_cut_with_the_current_llm_tokenizer() -> None:
    """A generator whose LLM is replaced (a job with other decoding settings) cuts the
    prompts with the new LLM's tokenizer, never with a closed one."""
    from knowrec.knowledge.tokens import VocabTokenizer

    gen = KnowledgeGenerator(KnowledgeConfig(domain="movies"))
    vocab = gen.tokenizer
    assert isinstance(vocab, VocabTokenizer) and gen.tokenizer is vocab
    first, second = VocabTokenizer(), VocabTokenizer()  # a tokenizer is what the LLMs lend
    gen.llm = first  # type: ignore[assignment]
    assert gen.tokenizer is first
    gen.llm = second  # type: ignore[assignment]
    assert gen.tokenizer is second


# --------------------------------------------------------------------------- the real LLM

# The LLM tests read the tiny synthetic world (32 items with ~100-word articles; the
# real LLM's TRAWL answers for all of them come once per session from conftest.py). On
# this 2-core machine the 1.5B model reads ~18 prompt tokens/s and writes ~7 tokens/s.
LLM_TIMEOUT = 3000


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from knowrec.encoders import Encoder

    return Encoder(cache=tmp_path_factory.mktemp("enc") / "vectors.sqlite")


@pytest.fixture(scope="module")
def gen(session_llm, encoder) -> KnowledgeGenerator:  # type: ignore[no-untyped-def]
    # The demo's key factors: a short fixed prefix, and the trawl item prompts are the
    # ones demo_trawl_items asks (cache hits).
    settings = demo_config().knowledge.settings
    return KnowledgeGenerator(settings, llm=session_llm, encoder=encoder, progress=False)


@pytest.mark.slow
def test_user_prompt_never_reads_items_at_or_after_the_cut(gen: KnowledgeGenerator) -> None:
    data = _leak_data()
    cuts = pl.DataFrame({"user_id": ["u1", "u2"], "cut": [_t(60), _t(25)]})
    inputs = gen.user_inputs(data, cut=cuts)
    u1 = inputs.filter(pl.col("user_id") == "u1")["history"][0]
    assert "(rated 1/5) Marker u1-i5." in u1 and "(rated 2/5) Marker u1-i1." in u1
    for late in ("u1-i6", "u1-tie", "u1-i7", "u1-i8", "u1-i0"):  # at/after the cut, or > k
        assert late not in u1
    assert "u2-i3" not in inputs.filter(pl.col("user_id") == "u2")["history"][0]
    # Default: each user's first k interactions (the reserved history), nothing later.
    default = gen.user_inputs(data)["history"][0]
    assert "u1-i4" in default and "u1-i5" not in default
    req = gen.requests("trawl", "user", [{"profile": "p", "history": u1}], ["u1"])[0]
    assert "u1-i6" not in req.prompt and req.system.startswith("You describe a person's taste")


@pytest.mark.slow
@pytest.mark.timeout(LLM_TIMEOUT)
def test_every_method_returns_the_same_table(gen: KnowledgeGenerator, tiny_world: World) -> None:
    data = tiny_world.movies
    items = data.items["item_id"].to_list()[:1]
    users = data.interactions["user_id"].unique(maintain_order=True).to_list()[:1]
    for method in METHODS:
        for side, ids in (("item", items), ("user", users)):
            table = gen.generate(data, method, side, ids=ids)  # type: ignore[arg-type]
            assert table.schema == pl.Schema(KNOWLEDGE_SCHEMA), (method, side)
            assert table["id"].to_list() == ids
            assert set(table["side"]) == {side} and set(table["method"]) == {method}
            assert table["status"].to_list() == ["ok"], table["error"].to_list()
            if method == "none":
                assert table["text"].null_count() == 1
                continue
            assert all(len(t) > 10 for t in table["text"]), (method, side, table["text"])
            if method == "trawl":
                for fields in table["fields"]:
                    assert set(json.loads(fields)) == {
                        f.name
                        for f in gen.domain.for_side(side)  # type: ignore[arg-type]
                    }
            else:
                assert table["fields"].null_count() == 1
    assert gen.stats.items == 1


@pytest.mark.slow
@pytest.mark.timeout(LLM_TIMEOUT)
def test_a_broken_answer_is_recorded_not_raised(session_llm, tiny_world: World) -> None:  # type: ignore[no-untyped-def]
    # 16 tokens cannot hold the JSON object: every attempt is cut → a recorded failure.
    gen = KnowledgeGenerator({"trawl_max_tokens": 16}, llm=session_llm, progress=False)
    ids = tiny_world.movies.items["item_id"].to_list()[:1]
    table = gen.generate(tiny_world.movies, "trawl", "item", ids=ids)
    assert table["status"].to_list() == ["failed"]
    assert table["text"].null_count() == 1
    assert all("max_tokens=16" in e for e in table["error"])
    assert gen.stats.failed == 1


@pytest.mark.slow
@pytest.mark.timeout(LLM_TIMEOUT)
def test_trawl_outputs_are_diverse(demo_trawl_items: pl.DataFrame) -> None:
    """The small model tends to copy phrases from the instructions (BENCHMARKS.md, ML-1M
    knowledge prompts); check it does not."""
    ok = demo_trawl_items.filter(pl.col("status") == "ok")
    assert ok.height >= 0.9 * demo_trawl_items.height, demo_trawl_items["error"].to_list()
    fields = [json.loads(f) for f in ok["fields"]]
    n = len(fields)
    for name in ("genres", "mood", "audience"):
        values = [v for f in fields for v in ([f[name]] if isinstance(f[name], str) else f[name])]
        distinct = set(values)
        assert len(distinct) > 1, (name, distinct)
        top = max(values.count(v) for v in distinct)
        assert top < 0.9 * n, (name, top, n)  # no value stamped on (almost) every item
    assert len({f["genres"][0] for f in fields}) >= 6  # many hidden genres among the items


def _pair_auc(vectors: np.ndarray, labels: list[str]) -> float:
    """AUC of cosine similarity separating same-label pairs from different-label pairs."""
    sim = vectors @ vectors.T
    iu = np.triu_indices(len(labels), k=1)
    lab = np.asarray(labels)
    same = (lab[:, None] == lab[None, :])[iu]
    return auc(same.astype(int), sim[iu])


def _label_mrr(
    vectors: np.ndarray, labels: list[str], names: list[str], query: np.ndarray
) -> float:
    """Mean reciprocal rank of each item's true label among all label names (cosine)."""
    sim = vectors @ query.T
    truth = np.array([names.index(label) for label in labels])
    ranks = 1 + (sim > sim[np.arange(len(labels)), truth][:, None]).sum(axis=1)
    return float(np.mean(1.0 / ranks))


def knowledge_quality(
    texts: list[str | None],
    world: World,
    ids: list[str],
    encoder,  # type: ignore[no-untyped-def]
) -> dict[str, float]:
    """How well knowledge texts carry the hidden attributes of synthetic items.

    ``genre_pair_auc``: label-free — the AUC of the MiniLM cosine similarity separating
    pairs of items that share their hidden primary sub-genre from pairs that do not (what
    a recommender using the embeddings needs). ``mrr_<attr>``: zero-shot — rank the
    attribute's label names ("genre: space opera", "mood: dark", "audience: teens")
    by similarity to the item's knowledge; the reciprocal rank of the true one.
    ``mrr`` averages genre (20 labels), mood (6) and audience (5).
    """
    truth = world.truth["movie_items"].with_columns(genre=pl.col("hidden_genres").list.first())
    by_id = {r["item_id"]: r for r in truth.iter_rows(named=True)}
    vectors = encoder.encode(texts, progress=False)
    out = {"genre_pair_auc": _pair_auc(vectors, [by_id[i]["genre"] for i in ids])}
    for attr in ("genre", "mood", "audience"):
        names = sorted(set(truth[attr].to_list()))
        query = encoder.encode([f"{attr}: {n}" for n in names], progress=False)
        out[f"mrr_{attr}"] = _label_mrr(vectors, [by_id[i][attr] for i in ids], names, query)
    out["mrr"] = float(np.mean([out[f"mrr_{a}"] for a in ("genre", "mood", "audience")]))
    return out


@pytest.mark.slow
@pytest.mark.timeout(LLM_TIMEOUT)
def test_trawl_recovers_hidden_attributes_better_than_raw_text(
    gen: KnowledgeGenerator,
    tiny_world: World,
    demo_trawl_items: pl.DataFrame,
    encoder,  # type: ignore[no-untyped-def]
) -> None:
    """The issue's quality test. Each synthetic item's text states its hidden sub-genre,
    mood and audience once or twice, in paraphrases, among noise sentences (cast,
    budget, filming). ``raw`` (the same text, truncated by tokens) is diluted by the
    noise; ``trawl`` must carry the attributes measurably better on both measures of
    :func:`knowledge_quality` (the thresholds are justified below the test)."""
    ids = demo_trawl_items["id"].to_list()
    raw = gen.generate(tiny_world.movies, "raw", "item", ids=ids)
    texts = {"raw": raw["text"].to_list(), "trawl": demo_trawl_items["text"].to_list()}
    scores = {m: knowledge_quality(t, tiny_world, ids, encoder) for m, t in texts.items()}
    print("knowledge quality:", json.dumps(scores, indent=1))
    gap_auc = scores["trawl"]["genre_pair_auc"] - scores["raw"]["genre_pair_auc"]
    gap_mrr = scores["trawl"]["mrr"] - scores["raw"]["mrr"]
    assert gap_auc >= PAIR_AUC_MARGIN, scores
    assert gap_mrr >= MRR_MARGIN, scores


# Measured with the 1.5B model on the tiny world's 32 items (demo settings: genres, mood,
# audience): genre pair AUC raw 0.615, trawl 0.820 (+0.205); label MRR raw 0.505, trawl
# 0.635 (+0.129: better on mood and audience, worse on genre, where the closed genre
# vocabulary names the hidden sub-genres differently); 1 and 2 threads alike. With 4 of
# the 32 answers replaced by another item's (60 draws) the median gaps are +0.138 / +0.093
# (MRR at least +0.071). The pair AUC (what a recommender uses) must beat raw by a clear
# margin; the zero-shot label ranking must not be worse.
PAIR_AUC_MARGIN = 0.05
MRR_MARGIN = 0.0
