"""The Q' recall path (docs/explore.md): answer parsing, the prompt, the bm25s search, merging
and de-duplication, failure records, persistence and the candidate store — and, with the
real 1.5B model (5 LLM calls in all), query writing on the tiny world, its quality against
the hidden attributes, and a German item."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import polars as pl
import pytest

from knowrec.data.synth import World
from knowrec.errors import ConfigError, DataFormatError, LLMOutputError
from knowrec.retrieval.paths import available_recall_paths, load_recall_path, make_recall_path
from knowrec.retrieval.qprime import (
    ANSWER_SCHEMA,
    QPrimePath,
    QPrimeTemplate,
    QueryPlan,
    answer_schema,
    jaccard,
    parse_answer,
    shingles,
)
from knowrec.retrieval.store import CandidateStore

# --------------------------------------------------------------------------- a small corpus

TRAIL = (
    "Trail running in the Alps: how to pace a long mountain ultramarathon, with steep "
    "climbs, technical descents and aid stations every fifteen kilometres."
)
SHOES = (
    "Choosing trail running shoes for rocky alpine paths: grip, cushioning and a "
    "protective toe cap matter more than weight on steep mountain climbs."
)
DOCS = {
    "trail": ("Alpine ultramarathon pacing", TRAIL),
    # the same page under another id (a redirect / mirror of the trigger)
    "trail_copy": ("Alpine ultramarathon pacing", TRAIL + " Updated in May."),
    "shoes": ("Trail shoes", SHOES),
    # a near-duplicate of `shoes` (one sentence added): must not be kept beside it
    "shoes_dup": ("Trail shoes", SHOES + " Prices checked weekly."),
    "food": (
        "Race nutrition",
        "Ultramarathon nutrition: how many gels, salt tablets and litres of water a "
        "runner needs per hour on a hot race day.",
    ),
    "bread": (
        "Sourdough",
        "Baking sourdough bread at home: feed the starter, fold the dough and bake it "
        "in a hot cast-iron pot.",
    ),
    "notext": ("An empty page", ""),
}
GOOD_ANSWER = {
    "language": "English",
    "queries": [
        {"query": "trail running shoes", "relevance": 4},
        {"query": "ultramarathon nutrition gels", "relevance": 3},
        {"query": "sourdough bread", "relevance": 0},
    ],
}


def small_items() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "item_id": list(DOCS),
            "title": [t for t, _ in DOCS.values()],
            "text": [x for _, x in DOCS.values()],
        }
    )


@pytest.fixture
def small_path() -> QPrimePath:
    path = make_recall_path("qprime", noun="web page")
    assert isinstance(path, QPrimePath)
    return path.fit(None, small_items())


# --------------------------------------------------------------------------- parsing


def test_parse_answer_reads_queries_and_scales_relevance() -> None:
    plan = parse_answer(json.dumps(GOOD_ANSWER))
    assert plan.language == "English"
    assert [q.text for q in plan.queries] == [
        "trail running shoes",
        "ultramarathon nutrition gels",
        "sourdough bread",
    ]
    assert [q.relevance for q in plan.queries] == [1.0, 0.75, 0.0]
    # a parsed object, a bare list, a 0-1 scale, repeats and the cap
    rows = [{"query": f" q{i}  x ", "relevance": 1} for i in range(12)]
    rows.insert(1, {"query": "Q0 X", "relevance": 0.5})  # a repeat (case, spaces)
    plan = parse_answer(rows, scale=1.0, max_queries=10)
    assert len(plan.queries) == 10 and plan.language is None
    assert plan.queries[0].text == "q0 x" and plan.queries[1].text == "q1 x"
    # code fences and chatter around the JSON are repaired by the LLM layer's parser
    fenced = "Here you are:\n```json\n" + json.dumps(GOOD_ANSWER) + "\n```"
    assert parse_answer(fenced).queries == parse_answer(GOOD_ANSWER).queries


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("Sorry, I cannot write queries for this page.", "not JSON"),
        ('{"language": "English"}', "no list of queries"),
        ('{"queries": []}', "holds no query"),
        ('{"queries": ["trail shoes"]}', "not an object"),
        ('{"queries": [{"query": "  ", "relevance": 3}]}', "no text"),
        ('{"queries": [{"query": "trail shoes"}]}', "no relevance score"),
        ('{"queries": [{"query": "trail shoes", "relevance": "high"}]}', "no relevance"),
        ('{"queries": [{"query": "trail shoes", "relevance": 7}]}', "between 0 and 4"),
        ('{"queries": [{"query": "trail shoes", "relevance": true}]}', "no relevance"),
        ('{"queries": [{"query": "trail shoes", "relevance": -1}]}', "no relevance"),
    ],
)
def test_parse_answer_rejects_answers_without_queries_or_scores(answer: str, message: str) -> None:
    with pytest.raises(LLMOutputError, match=message):
        parse_answer(answer)


def test_schema_and_prompt() -> None:
    jsonschema.validators.validator_for(ANSWER_SCHEMA).check_schema(ANSWER_SCHEMA)
    jsonschema.validate(GOOD_ANSWER, ANSWER_SCHEMA)
    assert answer_schema(4)["properties"]["queries"]["maxItems"] == 4
    with pytest.raises(jsonschema.ValidationError):
        bad = {**GOOD_ANSWER, "queries": [{"query": "x y", "relevance": 5}]}
        jsonschema.validate(bad, ANSWER_SCHEMA)
    template = QPrimeTemplate.builtin()
    messages = template.messages("movie", "A western about outlaws.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "A western about outlaws." in messages[1]["content"]
    assert "movies" in messages[0]["content"] and "$" not in messages[0]["content"]
    # the model decides how many queries: the prompt names no count of queries
    assert not re.search(r"\b(\d+|five|six|ten)\s+(search\s+)?queries", messages[0]["content"])
    assert "language" in messages[0]["content"]
    with pytest.raises(ConfigError, match="needs the parts"):
        QPrimeTemplate.parse("=== system ===\nx\n")
    with pytest.raises(ConfigError, match="must use"):
        QPrimeTemplate.parse("=== system ===\nx\n=== item ===\nno placeholder\n")
    with pytest.raises(ConfigError, match=re.escape("the system part may not use ['item']")):
        QPrimeTemplate.parse("=== system ===\n$item\n=== item ===\n$item\n")


def test_shingle_jaccard() -> None:
    a, b = shingles(SHOES), shingles(SHOES + " Prices checked weekly.")
    assert jaccard(a, b) > 0.8 and jaccard(a, shingles(TRAIL)) < 0.1
    assert shingles("two words", 3) == frozenset({"two", "words"})
    assert jaccard(frozenset(), a) == 0.0


# --------------------------------------------------------------------------- the path


def test_registered_with_checked_parameters() -> None:
    assert "qprime" in available_recall_paths()
    with pytest.raises(ConfigError, match="unknown parameter"):
        make_recall_path("qprime", top_k=5)
    for bad in ({"min_relevance": 2.0}, {"max_queries": 11}, {"near_duplicate": 0.0}):
        with pytest.raises(ConfigError):
            make_recall_path("qprime", **bad)
    with pytest.raises(ConfigError, match="not fitted"):
        make_recall_path("qprime").recall(["a"])
    with pytest.raises(DataFormatError, match="no item has text"):
        make_recall_path("qprime").fit(None, small_items().filter(pl.col("item_id") == "notext"))


def test_bm25_search_finds_the_matching_document(small_path: QPrimePath) -> None:
    hits = small_path.search(["sourdough starter", "gels salt tablets", "zebra"], k=10)
    assert hits[0][0][0] == "bread" and hits[1][0][0] == "food"
    assert hits[2] == []  # no word of the query is in the corpus: no hit
    assert all(s > 0 for row in hits for _, s in row)
    assert [s for _, s in hits[0]] == sorted((s for _, s in hits[0]), reverse=True)
    match = small_path.match_scores(["sourdough starter", "running"], k=10)
    assert 0.0 < match[0][0][1] <= 1.0
    # "sourdough starter": the top hit has both words, each as strongly as any item can
    assert match[0][0][1] == pytest.approx(1.0)


def test_recall_merges_dedupes_and_keeps_provenance(small_path: QPrimePath) -> None:
    assert small_path.add_answers({"trail": GOOD_ANSWER}) == {}
    raw = {i for row in small_path.search(["trail running shoes"], k=10) for i, _ in row}
    assert {"trail", "trail_copy", "shoes", "shoes_dup"} <= raw  # the engine returns them all
    got = small_path.recall(["trail"], k=30)["trail"]
    ids = [c.item_id for c in got]
    # the trigger, its copy and the copy of a kept candidate are gone; the 0-relevance
    # query ("sourdough bread") was dropped, so its document is not recalled
    assert ids[0] == "shoes" and set(ids) == {"shoes", "food"}, ids
    assert small_path.failures == {}
    assert all(c.paths == {"qprime": c.score} for c in got)
    assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
    prov = small_path.provenance["trail"]
    assert [q for q, _ in prov["shoes"]] == ["trail running shoes"]
    assert [q for q, _ in prov["food"]] == ["ultramarathon nutrition gels"]
    frame = small_path.provenance_frame()
    assert frame.columns == ["trigger_id", "item_id", "query", "rank", "relevance"]
    assert frame.filter(pl.col("item_id") == "shoes")["relevance"].to_list() == [1.0]
    # recall's k cuts further; a looser duplicate threshold keeps both copies
    assert len(small_path.recall(["trail"], k=1)["trail"]) == 1
    loose = make_recall_path("qprime", near_duplicate=1.0).fit(None, small_items())
    loose.add_answers({"trail": GOOD_ANSWER})
    assert {"shoes_dup", "trail_copy"} <= {c.item_id for c in loose.recall(["trail"])["trail"]}


def test_weak_matches_are_dropped(small_path: QPrimePath) -> None:
    # "bread" shares only the word "hot" with the query: a match of about 0.18
    answer = {"queries": [{"query": "hot race day water", "relevance": 4}]}
    weak = dict(small_path.match_scores(["hot race day water"])[0])
    assert weak["food"] > 0.9 and 0.0 < weak["bread"] < small_path.min_match
    small_path.add_answers({"shoes": answer})
    assert [c.item_id for c in small_path.recall(["shoes"])["shoes"]] == ["food"]
    keep_all = make_recall_path("qprime", min_match=0.0).fit(None, small_items())
    keep_all.add_answers({"shoes": answer})
    assert [c.item_id for c in keep_all.recall(["shoes"])["shoes"]] == ["food", "bread"]


def test_failures_are_recorded_never_raised(small_path: QPrimePath) -> None:
    bad = small_path.add_answers(
        {
            "trail": "Sorry, I cannot help with that.",
            "shoes": {"queries": [{"query": "trail shoes", "relevance": "very"}]},
            "food": {"queries": [{"query": "sourdough bread", "relevance": 1}]},
            "bread": {"queries": [{"query": "quantum chromodynamics", "relevance": 4}]},
        }
    )
    assert set(bad) == {"trail", "shoes"} and "not JSON" in bad["trail"]
    out = small_path.recall(["trail", "shoes", "food", "bread", "notext", "nope", "shoes_dup"])
    assert out == {t: [] for t in out}
    f = small_path.failures
    assert "unusable query answer" in f["trail"] and "not JSON" in f["trail"]
    assert "no relevance score" in f["shoes"]
    assert "relevance threshold" in f["food"]  # 1/4 < min_relevance 0.5
    assert f["bread"] == "the queries found no other item"
    assert f["notext"] == "no text to write queries from"
    assert f["nope"] == "unknown trigger"
    assert f["shoes_dup"] == "no stored queries and no LLM to write them"
    # a later good answer replaces the bad one
    small_path.add_answers({"trail": GOOD_ANSWER})
    assert small_path.recall(["trail"])["trail"] and "trail" not in small_path.failures


def test_save_load_and_precompute(small_path: QPrimePath, tmp_path: Path) -> None:
    small_path.add_answers({"trail": GOOD_ANSWER, "food": "no json here"})
    before = small_path.recall(["trail", "food"])
    small_path.save(tmp_path / "qp")
    loaded = load_recall_path(tmp_path / "qp")
    assert isinstance(loaded, QPrimePath) and loaded.get_params() == small_path.get_params()
    assert loaded.plans == small_path.plans and loaded.corpus == small_path.corpus
    assert loaded.recall(["trail", "food", "notext"]) == {**before, "notext": []}
    assert "not JSON" in loaded.failures["food"]
    assert loaded.reason_unknown("notext") == "no text to write queries from"
    assert loaded.search(["sourdough starter"]) == small_path.search(["sourdough starter"])
    with CandidateStore.open(tmp_path / "c.sqlite") as store:
        out = loaded.precompute(store, batch_size=2)
        assert set(out) == set(loaded.corpus or ()) and len(store) == len(out)
        assert store.get("trail") == before["trail"] and store.get("food") == []
    assert set(loaded.failures) == set(loaded.corpus or ()) - {"trail"}
    (tmp_path / "qp" / "qprime.json").write_text("{broken")
    with pytest.raises(DataFormatError, match="saved state"):
        load_recall_path(tmp_path / "qp")


def test_stemmer_option(small_path: QPrimePath) -> None:
    try:
        import Stemmer  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="PyStemmer"):
            make_recall_path("qprime", stemmer="english")
        return
    path = make_recall_path("qprime", stemmer="english").fit(None, small_items())
    assert path.search(["baked breads"])[0][0][0] == "bread"
    assert small_path.search(["baked breads"]) == []  # words as written: no match


# --------------------------------------------------------------------------- the real LLM

# Triggers whose hidden sub-genre is shared by at least one other tiny-world movie (space
# opera, western, war epic, detective mystery), chosen before looking at any Q' output.
TRIGGERS = ["2", "15", "3", "6"]


@pytest.fixture(scope="module")
def world_recall(tiny_world: World, session_llm: object) -> tuple[QPrimePath, dict]:
    path = make_recall_path("qprime", llm=session_llm, noun="movie")
    assert isinstance(path, QPrimePath)
    path.fit(None, tiny_world.movies.items)
    calls = session_llm.calls  # type: ignore[attr-defined]
    out = path.recall(TRIGGERS, k=30)
    assert session_llm.calls - calls <= len(TRIGGERS) * 2  # type: ignore[attr-defined]
    return path, out


@pytest.mark.slow
def test_llm_writes_queries_and_recall_is_well_formed(
    world_recall: tuple[QPrimePath, dict], tiny_world: World, session_llm: object, tmp_path: Path
) -> None:
    path, out = world_recall
    assert path.failures == {}, path.failures
    for t in TRIGGERS:
        plan = path.plans[t]
        assert isinstance(plan, QueryPlan) and plan.source == path.prompt_digest()
        assert 1 <= len(plan.queries) <= 10 and plan.language
        assert all(q.text.strip() and 0.0 <= q.relevance <= 1.0 for q in plan.queries)
        assert len({q.text.casefold() for q in plan.queries}) == len(plan.queries)
        cands = out[t]
        ids = [c.item_id for c in cands]
        assert 0 < len(cands) <= 30 and t not in ids and len(set(ids)) == len(ids)
        assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
        texts = {q.text for q in plan.queries if q.relevance >= path.min_relevance}
        for c in cands:  # every candidate was found by at least one kept query
            assert c.paths == {"qprime": c.score}
            assert (
                path.provenance[t][c.item_id]
                and {q for q, _ in path.provenance[t][c.item_id]} <= texts
            )
    # a second recall is answered from the stored queries: no model call
    calls = session_llm.calls  # type: ignore[attr-defined]
    assert path.recall(TRIGGERS, k=30) == out
    assert session_llm.calls == calls  # type: ignore[attr-defined]
    # the loaded path (no LLM) answers the same
    loaded = load_recall_path(path.save(tmp_path / "qp"))
    assert loaded.recall(TRIGGERS, k=30) == out


@pytest.mark.slow
def test_candidates_share_hidden_attributes(
    world_recall: tuple[QPrimePath, dict], tiny_world: World
) -> None:
    """Q' candidates share more hidden attributes with the trigger than random items.

    Measure: for each trigger, the number of hidden attribute values (sub-genres, themes,
    audience, mood; ``tiny_world.truth``) a candidate shares with it, averaged over the
    top 10 candidates of the 4 triggers. Threshold: the 99th percentile of the same
    average for random lists of the same sizes (2,000 seeded draws from the other items),
    so a recall no better than random passes with probability 1%. Measured (1 and 2
    threads alike): Q' 1.225 (per trigger 1.3, 1.1, 1.0, 1.5; the best 10 items ≈ 1.65),
    random lists 0.745 on average, 99th percentile 1.0: one trigger's list no better
    than random (−0.12) still passes.
    """
    _, out = world_recall
    truth = {r["item_id"]: r for r in tiny_world.truth["movie_items"].to_dicts()}

    def attrs(i: str) -> set[tuple[str, str]]:
        r = truth[i]
        return (
            {("genre", g) for g in r["hidden_genres"]}
            | {("theme", x) for x in r["themes"]}
            | {("audience", r["audience"]), ("mood", r["mood"])}
        )

    shared = {t: {i: len(attrs(t) & attrs(i)) for i in truth if i != t} for t in TRIGGERS}
    top = {t: [c.item_id for c in out[t][:10]] for t in TRIGGERS}
    qprime = np.mean([shared[t][i] for t in TRIGGERS for i in top[t]])
    rng = np.random.default_rng(0)
    pools = {t: np.array(list(shared[t].values())) for t in TRIGGERS}
    draws = [
        np.mean(
            np.concatenate([rng.choice(pools[t], len(top[t]), replace=False) for t in TRIGGERS])
        )
        for _ in range(2000)
    ]
    assert qprime > np.quantile(draws, 0.99), (qprime, np.mean(draws), np.quantile(draws, 0.99))


@pytest.mark.slow
def test_llm_queries_in_the_items_language(session_llm: object) -> None:
    """A German page gets German queries; its mirror copy is found and dropped."""
    text = (
        "Der Schwarzwald bietet hunderte Kilometer markierter Wanderwege. Auf dem Westweg "
        "wandert man in zwölf Etappen von Pforzheim nach Basel, vorbei an Mooren, "
        "Wasserfällen und Aussichtstürmen. Die beste Zeit zum Wandern ist der Herbst."
    )
    items = pl.DataFrame(
        {
            "item_id": ["de1", "de1_kopie", "de2", "de3", "de4"],
            "title": [
                "Wandern im Schwarzwald",
                "Wandern im Schwarzwald",
                "Herbstwanderungen",
                "Almhütten in Bayern",
                "Sauerteigbrot backen",
            ],
            "text": [
                text,
                text + " Stand: Mai.",
                "Die schönsten Wanderungen im Herbst: bunte Wälder im Schwarzwald, am "
                "Bodensee und in der Pfalz, mit Etappen für jede Kondition.",
                "Nach einer langen Bergwanderung schmeckt der Kaiserschmarrn auf der "
                "Almhütte am besten. Zehn Almen in den bayerischen Alpen.",
                "Für ein gutes Sauerteigbrot braucht man Mehl, Wasser, Salz und Geduld.",
            ],
        }
    )
    path = make_recall_path("qprime", llm=session_llm, noun="web page", stopwords="de")
    path.fit(None, items)
    out = path.recall(["de1"])
    plan = path.plans["de1"]
    # The language's name in any spelling the model may choose: German, Deutsch, de(-DE).
    assert plan.language and re.search(r"german|deutsch|\bde\b", plan.language, re.I), plan
    german = {"im", "in", "der", "die", "das", "und", "für", "mit", "am", "zum", "schwarzwald"}
    words = [w for q in plan.queries for w in re.findall(r"\w+", q.text.casefold())]
    assert sum(w in german or re.search("[äöüß]", w) is not None for w in words) >= 2, plan
    raw = {i for row in path.search([q.text for q in plan.queries], k=10) for i, _ in row}
    assert "de1_kopie" in raw  # the engine finds the mirror ...
    ids = [c.item_id for c in out["de1"]]
    assert "de1_kopie" not in ids and "de1" not in ids  # ... and the merge drops it
    assert ids, path.failures
