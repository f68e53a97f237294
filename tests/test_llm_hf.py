"""The batched ``transformers`` backend with the real 1.5B GGUF (on the CPU here), and
running exported requests elsewhere (:mod:`knowrec.llm.batch`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowrec.errors import ConfigError, DataFormatError
from knowrec.llm import LLM, Request, TransformersLLM, make_llm
from knowrec.llm.batch import export_requests, read_requests, run_requests

pytestmark = pytest.mark.slow

GENRES = {
    "type": "object",
    "properties": {"genres": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
    "required": ["genres"],
}


def requests() -> list[Request]:
    return [
        Request(
            "Name two film genres.",
            system="Answer with JSON only.",
            schema=GENRES,
            max_tokens=40,
            id="json",
        ),
        Request("Translate 'thank you' to French. Answer with the words only.", max_tokens=8),
        Request(
            "Is 'Toy Story' a film for children? 0 = not at all, 4 = perfectly. One digit.",
            labels=("0", "1", "2", "3", "4"),
            id="labels",
        ),
    ]


@pytest.fixture(scope="module")
def hf_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersLLM]:
    cache = tmp_path_factory.mktemp("hf") / "llm.sqlite"
    llm = make_llm("transformers", device="cpu", batch_size=4, cache=cache, progress=False)
    assert isinstance(llm, TransformersLLM)
    with llm:
        yield llm


def test_batched_answers_parse_and_cache(hf_llm: TransformersLLM) -> None:
    results = hf_llm.map(requests())
    assert [r.ok for r in results] == [True, True, True], [r.error for r in results]
    as_json, text, labels = (r.value for r in results)
    assert as_json["genres"] and all(isinstance(g, str) and g for g in as_json["genres"])
    assert "merci" in text.lower()
    assert set(labels) == {"0", "1", "2", "3", "4"}
    assert sum(labels.values()) == pytest.approx(1.0)
    # Toy Story is a children's film: measured 0.73 (3: 0.26, 4: 0.47); drift is hundredths.
    assert labels["3"] + labels["4"] > 0.5
    assert all(r.prompt_tokens and r.prompt_tokens > 5 for r in results)
    calls = hf_llm.calls
    again = hf_llm.map(requests())
    assert all(r.cached for r in again) and hf_llm.calls == calls
    assert [r.value for r in again] == [r.value for r in results]


def test_bad_settings_are_clear_errors(hf_llm: TransformersLLM) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        TransformersLLM(batch_size=0)
    with pytest.raises(ConfigError, match="not one token"):  # a setting: stops the batch
        hf_llm.run(Request("Rate it.", labels=("10", "no way")))


def test_exported_requests_run_elsewhere(
    hf_llm: TransformersLLM, session_llm: LLM, tmp_path: Path
) -> None:
    path = tmp_path / "requests.jsonl"
    assert export_requests(hf_llm, requests(), path) == 3
    keys = [key for key, _ in read_requests(path)]
    assert keys == [hf_llm.key(r) for r in requests()]
    summary = run_requests(hf_llm, path)  # answered above: all from the cache
    assert summary["requests"] == 3 and summary["computed"] == 0 and summary["failed"] == 0
    # answers for one backend are never filed under another's keys
    with pytest.raises(DataFormatError, match="another cache key"):
        run_requests(session_llm, path)


def test_broken_request_file(hf_llm: TransformersLLM, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"key": "k", "messages": []}) + "\n")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:1"):
        read_requests(path)
