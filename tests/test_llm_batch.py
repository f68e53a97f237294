"""Batched generation in the llamacpp backend (knowrec.llm.llamacpp_batch) with the real
1.5B model: the same answers as the sequential path where the answer is clear-cut, the
shared prefix evaluated once, one grammar per sequence, a bad answer failing alone, label
probabilities (a killed batch resuming from the cache: tests/test_llm.py)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator

import jsonschema
import numpy as np
import pytest

from knowrec.errors import ConfigError
from knowrec.llm import DIGITS, LlamaCppLLM, Request, expected_value
from knowrec.llm.llamacpp_batch import _CANDIDATE, PENALTY_LAST_N, common_prefix, penalize

THREADS = int(os.environ.get("KNOWREC_TEST_THREADS", "2"))

# A long fixed prefix shared by every prompt (as TRAWL's instructions are), short tails.
SYSTEM = (
    "You are a quiz assistant for a school. Every question has one short, well-known "
    "answer. Reply with that answer only: one word or one number, no punctuation, no "
    "explanation, no full sentence. If the answer is a number, write it with digits. "
    "Questions are about geography, arithmetic, nature and language. Be exact. "
) * 2
QUIZ = {  # question -> the word any sensible answer contains
    "What is the capital of France?": "paris",
    "What is 2 + 3? Answer with digits.": "5",
    "What colour is a clear daytime sky?": "blue",
    "What is the opposite of hot?": "cold",
    "How many legs does a spider have? Answer with digits.": "8",
    "What is the capital of Japan?": "tokyo",
}
MOVIE_SCHEMA = {
    "type": "object",
    "properties": {
        "genre": {"type": "string", "enum": ["comedy", "drama", "horror", "science fiction"]},
        "year": {"type": "integer"},
    },
    "required": ["genre", "year"],
}
MOVIES = [
    "The Matrix (1999): a hacker learns that reality is a simulation run by machines.",
    "Toy Story (1995): toys come to life when their owner leaves the room.",
    "The Shining (1980): a writer slowly goes mad in a snowed-in haunted hotel.",
    "Titanic (1997): a love story aboard the doomed ocean liner.",
]
JUDGE = (
    "You judge movie recommendations: rate with one digit how well the recommended movie "
    "fits the user's favourites, 0 = not at all, 4 = perfectly. Answer with the digit only."
)
FAVOURITES = "Favourite movies: Toy Story, Finding Nemo, Shrek (animated family comedies).\n"


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppLLM]:
    cache = tmp_path_factory.mktemp("batched") / "c.sqlite"
    model = LlamaCppLLM(n_ctx=512, n_threads=THREADS, parallel=4, cache=cache, progress=False)
    yield model
    model.close()


@pytest.fixture(scope="module")
def sequential() -> Iterator[LlamaCppLLM]:
    model = LlamaCppLLM(n_ctx=512, n_threads=THREADS, parallel=1, progress=False)
    yield model
    model.close()


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2 and common_prefix([], [1]) == 0


def test_parallel_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="parallel must be >= 1"):
        LlamaCppLLM(parallel=0)


@pytest.mark.slow
def test_batched_answers_equal_sequential_ones_and_share_the_prefix(
    batched: LlamaCppLLM, sequential: LlamaCppLLM
) -> None:
    # Clear-cut questions: the small numerical differences between batched and
    # single-sequence decoding (BENCHMARKS.md) cannot change the fact in the answer, so
    # both paths give it (6 prompts, 4 slots: refills too).
    requests = [Request(q, SYSTEM, max_tokens=6, id=q) for q in QUIZ]
    got = batched.map(requests)
    want = sequential.map(requests)
    assert all(r.ok for r in got), [r.error for r in got]
    for r, w in zip(got, want, strict=True):
        assert QUIZ[r.id] in r.value.lower() and QUIZ[r.id] in w.value.lower(), (r, w)
    # The instructions are evaluated once, not once per prompt.
    prefix = batched.count_tokens(SYSTEM)
    assert prefix > 100
    evaluated = sum(r.prompt_eval_tokens or 0 for r in got)
    assert evaluated <= sum(r.prompt_tokens or 0 for r in got) - (len(requests) - 1) * prefix
    assert all(r.gen_ms and r.prompt_ms for r in got)


@pytest.mark.slow
def test_every_batched_answer_follows_its_grammar_and_a_cut_one_fails_alone(
    batched: LlamaCppLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batched, "retries", 0)
    requests = [
        Request(text, "Extract the movie's facts as JSON.", MOVIE_SCHEMA, max_tokens=40)
        for text in MOVIES
    ]
    requests.append(Request("Describe a spider in detail.", max_tokens=8))  # plain text
    requests.insert(1, Request(MOVIES[1] + " (cut)", None, MOVIE_SCHEMA, max_tokens=3))
    results = batched.map(requests)
    assert [r.ok for r in results] == [True, False, True, True, True, True]
    assert "max_tokens=3" in str(results[1].error)
    for r in results[:1] + results[2:5]:
        jsonschema.validate(r.value, MOVIE_SCHEMA)
    assert [r.value["year"] for r in results[:1] + results[2:5]] == [1999, 1995, 1980, 1997]
    assert results[5].completion_tokens == 8 and results[5].value.strip()


@pytest.mark.slow
def test_batched_label_probabilities_match_the_sequential_ones(
    batched: LlamaCppLLM, sequential: LlamaCppLLM
) -> None:
    # The digit a small model gives is not clear-cut, so the two paths are compared with
    # a margin: batching changes the floating-point sums, measured < 0.2 on the expected
    # value (BENCHMARKS.md); a broken KV cache would give unrelated distributions.
    recommended = ["Monsters, Inc. (animated family comedy)", "Saw (violent horror, rated R)"]
    requests = [
        Request(FAVOURITES + "Recommended: " + movie, JUDGE, labels=DIGITS, max_tokens=1)
        for movie in recommended
    ]
    got = [expected_value(r.value) for r in batched.map(requests)]
    want = [expected_value(r.value) for r in sequential.map(requests)]
    assert got == pytest.approx(want, abs=0.5)
    assert got[0] > got[1] + 0.5


@pytest.mark.slow
def test_batched_repetition_penalty_keeps_the_answers() -> None:
    # The penalty builds a sampler chain per sequence (the path without it does not); the
    # clear-cut facts survive a mild penalty, as they do on the sequential path.
    requests = [Request(q, SYSTEM, max_tokens=6, id=q) for q in QUIZ]
    model = LlamaCppLLM(
        n_ctx=512, n_threads=THREADS, parallel=4, repeat_penalty=1.1, progress=False
    )
    try:
        got = model.map(requests)
    finally:
        model.close()
    assert all(r.ok and QUIZ[r.id] in r.value.lower() for r in got), got


def test_penalty_matches_llama_cpp_sampler() -> None:
    # The greedy fast path applies the repetition penalty in numpy; it must change the
    # logits exactly as llama.cpp's penalties sampler does (no model needed).
    import llama_cpp as lib

    n_vocab, rng = 500, np.random.default_rng(0)
    logits = rng.normal(0, 3, n_vocab).astype(np.float32)
    recent = [int(t) for t in rng.integers(0, n_vocab, 90)]  # repeats, and more than 64
    sampler = lib.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, 1.1, 0.0, 0.0)
    try:
        for token in recent:
            lib.llama_sampler_accept(sampler, token)
        cand = np.zeros(n_vocab, dtype=_CANDIDATE)
        cand["id"], cand["logit"] = np.arange(n_vocab), logits
        data = cand.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
        array = lib.llama_token_data_array(data, n_vocab, -1, False)
        lib.llama_sampler_apply(sampler, ctypes.byref(array))
    finally:
        lib.llama_sampler_free(sampler)
    got = penalize(logits, recent[-PENALTY_LAST_N:], 1.1)
    assert not np.array_equal(got, logits)
    np.testing.assert_array_equal(got, cand["logit"])
