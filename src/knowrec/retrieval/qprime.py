"""The Q' recall path: LLM-written search queries run on a search engine (docs/explore.md,
"Recall paths").

For each trigger the LLM reads the item's text and writes search queries for related yet
complementary items, each with a relevance from 0 to 4, in the item's language; it stops
when it runs out of different aspects (the prompt names no count; ``max_queries`` is only
a safety cap). Its answer is constrained to :data:`ANSWER_SCHEMA`::

    {"language": "English", "queries": [{"query": "frontier outlaw stories", "relevance": 4}, …]}

Queries below ``min_relevance`` (on a 0–1 scale: relevance / 4) are dropped; each kept
query runs on a BM25 index of the corpus (`bm25s <https://github.com/xhluque/bm25s>`_:
title + text of every item with text), top ``per_query`` hits each. A hit's *match* is its
BM25 score divided by the query's best possible score (the sum over the query's words of
the highest score any item gets for that word), so matches compare across queries: a hit
on the query's rare, telling words scores near 1, a hit on "film" alone near 0. The hits
are merged per trigger: the trigger itself, hits with a match below ``min_match`` and
near-duplicate texts (word-shingle Jaccard ≥ ``near_duplicate`` with the trigger or with
a better candidate already kept) are dropped, and at most ``max_candidates`` are kept. A
candidate's score is the sum of ``relevance × match`` over the queries that found it
(items several good queries agree on come first)::

    path = make_recall_path("qprime", llm=make_llm("llamacpp"), noun="movie")
    path.fit(None, items)                 # builds the BM25 index
    path.recall(["i1"], k=30)             # {"i1": [Candidate("i7", 1.6, {"qprime": 1.6}), …]}
    path.provenance["i1"]["i7"]           # [("frontier outlaw stories", 1), …]: query, rank
    path.precompute(store)                # every trigger → the CandidateStore, offline

Every LLM call goes through the LLM's cache (a re-run is free) and the generated queries
are kept on the path (:attr:`QPrimePath.plans`, saved with it), so a loaded path answers
without a model. Queries written elsewhere (a fine-tuned small model, an offline batch
job) are given with :meth:`QPrimePath.add_answers`. An answer that holds no queries or no
usable score, a trigger without text and a trigger whose queries find nothing get ``[]``
and a reason in ``path.failures`` (the pipeline falls back to the other paths), never an
exception.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Self

import numpy as np
import polars as pl

from knowrec.errors import ConfigError, DataFormatError, LLMOutputError
from knowrec.llm.base import LLM, Request, parse_json
from knowrec.llm.prompts import PromptFile
from knowrec.retrieval.paths import RecallPath, _require_columns, register_recall_path
from knowrec.retrieval.store import Candidate, CandidateStore

log = logging.getLogger(__name__)

#: The relevance scale of the prompt: integers 0 … RELEVANCE_MAX.
RELEVANCE_MAX = 4
#: Hard cap on the queries the schema lets the model write (``max_queries`` ≤ this).
QUERY_CAP = 10
#: Longest query, in characters.
QUERY_CHARS = 80
PARTS: tuple[str, ...] = ("system", "item")
_FILE = PromptFile(
    "Q' template",
    PARTS,
    allowed={"system": frozenset({"noun"}), "item": frozenset({"noun", "item"})},
    required={"item": frozenset({"item"})},
)
_WORD = re.compile(r"\w+")


def answer_schema(max_queries: int = QUERY_CAP) -> dict[str, Any]:
    """The JSON schema of the model's answer (``language`` first, then the queries)."""
    return {
        "type": "object",
        "properties": {
            "language": {"type": "string", "minLength": 2, "maxLength": 30},
            "queries": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_queries,
                "items": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "minLength": 2, "maxLength": QUERY_CHARS},
                        # an enum, not minimum/maximum: llama.cpp grammars enforce enums
                        "relevance": {"type": "integer", "enum": list(range(RELEVANCE_MAX + 1))},
                    },
                    "required": ["query", "relevance"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["language", "queries"],
        "additionalProperties": False,
    }


ANSWER_SCHEMA = answer_schema()


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    """One generated search query and its relevance to the trigger, scaled to 0–1."""

    text: str
    relevance: float


@dataclass(frozen=True)
class QueryPlan:
    """The queries written for one trigger, in the model's order. ``source`` says where
    they came from: a prompt digest (see :meth:`QPrimePath.prompt_digest`) or ``given``."""

    language: str | None
    queries: tuple[Query, ...]
    source: str = "given"

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "queries": [{"query": q.text, "relevance": q.relevance} for q in self.queries],
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> QueryPlan:
        queries = tuple(Query(str(q["query"]), float(q["relevance"])) for q in row["queries"])
        return cls(row.get("language"), queries, str(row.get("source", "given")))


def parse_answer(
    answer: str | Mapping[str, Any] | Sequence[Any],
    *,
    scale: float = RELEVANCE_MAX,
    max_queries: int = QUERY_CAP,
) -> QueryPlan:
    """The queries of one answer: JSON text or the parsed object.

    Accepts ``{"language": …, "queries": [{"query": str, "relevance": number}, …]}`` (or
    the bare list). Relevance must be a number in ``[0, scale]`` and is divided by
    ``scale``. Queries are whitespace-normalised; repeats (case-insensitive) are dropped and
    at most ``max_queries`` kept. Raises :class:`LLMOutputError` when the answer is not
    JSON, holds no query, or a query has no text or no usable score.
    """
    value = parse_json(answer) if isinstance(answer, str) else answer
    language = None
    if isinstance(value, Mapping):
        lang = value.get("language")
        language = " ".join(lang.split()) or None if isinstance(lang, str) else None
        entries = value.get("queries")
    else:
        entries = value
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise LLMOutputError(f"the answer has no list of queries: {_snippet(value)}")
    seen: set[str] = set()
    queries: list[Query] = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise LLMOutputError(f"query {n} is not an object: {_snippet(entry)}")
        text = entry.get("query")
        if not isinstance(text, str) or not _WORD.search(text):
            raise LLMOutputError(f"query {n} has no text: {_snippet(entry)}")
        score = entry.get("relevance")
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
            or not 0 <= score <= scale
        ):
            raise LLMOutputError(
                f"query {n} has no relevance score between 0 and {scale:g}: {_snippet(entry)}"
            )
        text = " ".join(text.split())
        if text.casefold() in seen:
            continue
        seen.add(text.casefold())
        queries.append(Query(text, float(score) / scale))
    if not queries:
        raise LLMOutputError("the answer holds no query")
    return QueryPlan(language, tuple(queries[:max_queries]))


def _snippet(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)[:120]


# --------------------------------------------------------------------------- the prompt


@dataclass(frozen=True)
class QPrimeTemplate:
    """The two parts of the query-writing prompt (see the packaged ``prompts/qprime.txt``)."""

    name: str
    system: str
    item: str

    @classmethod
    def parse(cls, text: str, name: str = "<template>") -> QPrimeTemplate:
        """Parse ``=== system ===`` and ``=== item ===`` sections (``#`` comments before)."""
        return cls(name=name, **_FILE.parse(text, name))

    @classmethod
    def load(cls, path: str | Path) -> QPrimeTemplate:
        """Read a template file."""
        return cls.parse(*_FILE.read(path))

    @classmethod
    def builtin(cls) -> QPrimeTemplate:
        """The packaged ``prompts/qprime.txt``."""
        return cls.parse(*_FILE.read_builtin("knowrec.retrieval", "qprime.txt"))

    def messages(self, noun: str, item: str) -> list[dict[str, str]]:
        """The chat messages for one trigger text."""
        return [
            {"role": "system", "content": Template(self.system).substitute(noun=noun)},
            {"role": "user", "content": Template(self.item).substitute(noun=noun, item=item)},
        ]


# --------------------------------------------------------------------------- helpers


def shingles(text: str, size: int = 3) -> frozenset[str]:
    """The set of ``size``-word shingles of ``text`` (lower-cased words; the word set when
    the text is shorter than ``size`` words)."""
    words = _WORD.findall(text.casefold())
    if len(words) < size:
        return frozenset(words)
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b| (0 for two empty sets)."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _document_texts(
    items: pl.DataFrame, text_column: str, title_column: str | None
) -> tuple[dict[str, str], list[str]]:
    """``{id: title + text}`` of the items with text, and the ids of those without."""
    cols = ["item_id", text_column]
    items = _require_columns(items, cols, "Q' recall path")
    has_title = title_column is not None and title_column in items.columns
    frame = items.select(
        pl.col("item_id").cast(pl.String),
        pl.col(text_column).cast(pl.String).fill_null("").str.strip_chars().alias("text"),
        (pl.col(title_column).cast(pl.String) if has_title else pl.lit(None, pl.String))
        .fill_null("")
        .str.strip_chars()
        .alias("title"),
    ).unique("item_id", keep="first", maintain_order=True)
    docs: dict[str, str] = {}
    empty: list[str] = []
    for item, text, title in frame.iter_rows():
        if not text:
            empty.append(item)
            continue
        titled = not title or title.casefold() in text[:200].casefold()
        docs[item] = text if titled else f"{title}\n{text}"
    return docs, empty


def _load_stemmer(language: str | None) -> Any:
    """PyStemmer's ``stemWords`` for ``language`` (None: no stemming)."""
    if language is None:
        return None
    try:
        import Stemmer
    except ImportError:
        raise ConfigError(
            f"Q' path: stemmer={language!r} needs the PyStemmer package: pip install PyStemmer"
        ) from None
    try:
        return Stemmer.Stemmer(language).stemWords
    except KeyError:
        known = ", ".join(Stemmer.algorithms())
        raise ConfigError(f"Q' path: unknown stemmer {language!r}; known are {known}") from None


# --------------------------------------------------------------------------- the path


@register_recall_path("qprime")
class QPrimePath(RecallPath):
    """Q' recall: LLM-written complementary queries run on a BM25 index of the corpus.

    ``llm``: any :class:`~knowrec.llm.base.LLM` (None: only queries already on the path,
    loaded or given by :meth:`add_answers`, are used). ``noun``: what an item is, for the
    prompt. ``text_column`` / ``title_column``: what is indexed and shown to the LLM.
    ``min_relevance``: queries whose relevance / 4 is below it are dropped.
    ``max_queries``: hard cap on queries per trigger (≤ 10). ``per_query``: search hits per
    query. ``max_candidates``: cap on candidates per trigger (``recall``'s ``k`` may cut
    further). ``min_match``: hits whose match (BM25 score / the query's best possible
    score, see the module docstring) is below it are dropped. ``near_duplicate``:
    word-shingle Jaccard at which a text counts as a duplicate of the trigger or of a
    better candidate; ``shingle``: words per shingle.
    ``item_tokens``: the trigger text is cut to this many tokens for the prompt.
    ``max_tokens``: answer length limit. ``stopwords``: the bm25s stop-word list (a
    language such as ``"en"``, ``"de"``, ``"fr"``; None keeps every word). ``stemmer``: a
    Snowball language (``"english"``, ``"german"``…) to stem words with PyStemmer (an
    optional package: ``pip install PyStemmer``); None matches words as written. ``k1`` / ``b``:
    BM25 parameters. ``template``: a prompt file instead of the packaged one. ``seed``:
    the sampling seed (greedy decoding).
    """

    def __init__(
        self,
        *,
        llm: LLM | None = None,
        noun: str = "item",
        text_column: str = "text",
        title_column: str | None = "title",
        min_relevance: float = 0.5,
        max_queries: int = QUERY_CAP,
        per_query: int = 10,
        max_candidates: int = 30,
        min_match: float = 0.2,
        near_duplicate: float = 0.6,
        shingle: int = 3,
        item_tokens: int = 256,
        max_tokens: int = 384,
        stopwords: str | None = "en",
        stemmer: str | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        template: str | Path | QPrimeTemplate | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        noun = " ".join(str(noun).split())
        if not noun:
            raise ConfigError("Q' path: noun must name what an item is (e.g. 'movie')")
        if not 0.0 <= min_relevance <= 1.0:
            raise ConfigError(f"Q' path: min_relevance must be in [0, 1], got {min_relevance}")
        if not 1 <= max_queries <= QUERY_CAP:
            raise ConfigError(f"Q' path: max_queries must be in 1..{QUERY_CAP}, got {max_queries}")
        if per_query < 1 or max_candidates < 1 or shingle < 1:
            raise ConfigError("Q' path: per_query, max_candidates and shingle must be positive")
        if not 0.0 <= min_match <= 1.0 or not 0.0 < near_duplicate <= 1.0:
            raise ConfigError(
                f"Q' path: min_match must be in [0, 1] and near_duplicate in (0, 1], got "
                f"{min_match} and {near_duplicate}"
            )
        if item_tokens < 8 or max_tokens < 32:
            raise ConfigError("Q' path: item_tokens must be >= 8 and max_tokens >= 32")
        self.llm, self.noun = llm, noun
        self.text_column, self.title_column = text_column, title_column
        self.min_relevance, self.max_queries = float(min_relevance), int(max_queries)
        self.per_query, self.max_candidates = int(per_query), int(max_candidates)
        self.min_match, self.near_duplicate = float(min_match), float(near_duplicate)
        self.shingle, self.item_tokens, self.max_tokens = int(shingle), item_tokens, max_tokens
        self.stopwords, self.k1, self.b, self.seed = stopwords, k1, b, seed
        self.stemmer = stemmer
        self._stem = _load_stemmer(stemmer)
        self.template = template
        if isinstance(template, QPrimeTemplate):
            self._template = template
        elif template is None:
            self._template = QPrimeTemplate.builtin()
        else:
            self._template = QPrimeTemplate.load(template)
        self.schema = answer_schema(self.max_queries)
        #: The queries of each trigger (generated or given), reused by later calls.
        self.plans: dict[str, QueryPlan] = {}
        #: Of the last :meth:`recall`: trigger → candidate → [(query, rank of the hit)].
        self.provenance: dict[str, dict[str, list[tuple[str, int]]]] = {}
        self.index: Any = None
        self._ids: list[str] = []
        self._docs: dict[str, str] = {}
        self._no_text: set[str] = set()
        self._shingles: dict[str, frozenset[str]] = {}
        self._term_max = np.zeros(0)
        self._bad_answers: dict[str, str] = {}

    # ------------------------------------------------------------------ fitting
    def fit(
        self, interactions: pl.DataFrame | None = None, items: pl.DataFrame | None = None
    ) -> Self:
        """Build the BM25 index over the title + text of every item with text (the
        interactions are not used: Q' reads text only)."""
        docs, empty = _document_texts(
            _require_columns(items, ["item_id", self.text_column], "Q' recall path"),
            self.text_column,
            self.title_column,
        )
        if not docs:
            raise DataFormatError(f"Q' recall path: no item has text in {self.text_column!r}")
        self._docs, self._no_text = docs, set(empty) - set(docs)
        self._ids = list(docs)
        self._shingles = {}
        self.index = self._build_index(list(docs.values()))
        self._set_term_max()
        self.corpus = set(self._ids)
        return self

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(
            texts,
            stopwords=self.stopwords or [],
            stemmer=self._stem,
            return_ids=False,
            show_progress=False,
        )

    def _build_index(self, texts: list[str]) -> Any:
        import bm25s

        index = bm25s.BM25(k1=self.k1, b=self.b)
        index.index(self._tokenize(texts), show_progress=False)
        return index

    def reason_unknown(self, trigger: str) -> str:
        if trigger in self._no_text:
            return "no text to write queries from"
        return "unknown trigger"

    # ------------------------------------------------------------------ search
    def search(self, queries: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]:
        """BM25 hits of each query: ``[(item_id, score), …]`` best first, score > 0 only."""
        return [hits for hits, _ in self._search(queries, k)]

    def match_scores(self, queries: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]:
        """Like :meth:`search`, each score divided by the query's best possible score (the
        sum, over its words, of the highest score any item gets for that word): 1 = an item
        matching every word as well as the corpus allows, comparable across queries."""
        return [
            [(i, min(s / best, 1.0) if best > 0 else 0.0) for i, s in hits]
            for hits, best in self._search(queries, k)
        ]

    def _search(
        self, queries: Sequence[str], k: int
    ) -> list[tuple[list[tuple[str, float]], float]]:
        if self.index is None:
            raise ConfigError(f"recall path {self.name!r} is not fitted: call fit() first")
        if not queries:
            return []
        tokens = self._tokenize(list(queries))
        k = min(int(k), len(self._ids))
        rows, scores = self.index.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        vocab = self.index.vocab_dict
        out = []
        for words, row, srow in zip(tokens, rows, scores, strict=True):
            best = float(sum(self._term_max[vocab[w]] for w in words if w in vocab))
            hits = [(self._ids[int(r)], float(s)) for r, s in zip(row, srow, strict=True) if s > 0]
            out.append((hits, best))
        return out

    def _set_term_max(self) -> None:
        """The highest score of each vocabulary word over the items (0 for none)."""
        indptr = np.asarray(self.index.scores["indptr"])
        data = np.asarray(self.index.scores["data"], dtype=np.float64)
        top = np.zeros(len(indptr) - 1)
        filled = np.flatnonzero(np.diff(indptr) > 0)
        if filled.size:
            top[filled] = np.maximum.reduceat(data, indptr[filled])
        self._term_max = top

    # ------------------------------------------------------------------ queries
    def prompt_digest(self) -> str:
        """Identifies what shapes the queries (prompt, settings, model): generated plans
        with another digest are written again when an LLM is given."""
        parts = {
            "system": self._template.system,
            "item": self._template.item,
            "noun": self.noun,
            "item_tokens": self.item_tokens,
            "max_tokens": self.max_tokens,
            "max_queries": self.max_queries,
            "seed": self.seed,
            "model": getattr(self.llm, "model_id", None),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def prompt_messages(self, trigger: str) -> list[dict[str, str]]:
        """The chat messages that ask for ``trigger``'s queries (text cut to
        ``item_tokens`` tokens of the LLM when one is set)."""
        text = self._docs[trigger]
        if self.llm is not None:
            text = self.llm.truncate_tokens(text, self.item_tokens).strip()
        return self._template.messages(self.noun, text)

    def add_answers(self, answers: Mapping[str, str | Mapping[str, Any]]) -> dict[str, str]:
        """Use queries written elsewhere: ``{trigger: answer}`` (JSON text or the parsed
        object, as :func:`parse_answer` reads them). Answers that cannot be read are left
        out; returns their ``{trigger: reason}`` (also in ``self.failures``)."""
        bad: dict[str, str] = {}
        for trigger, answer in answers.items():
            t = str(trigger)
            try:
                self.plans[t] = parse_answer(answer, max_queries=self.max_queries)
                self._bad_answers.pop(t, None)
            except LLMOutputError as exc:
                self.plans.pop(t, None)
                bad[t] = self._bad_answers[t] = f"unusable query answer: {exc}"
        self.failures.update(bad)
        return bad

    def _plan_usable(self, plan: QueryPlan | None, digest: str) -> bool:
        if plan is None:
            return False
        return self.llm is None or plan.source in ("given", digest)

    def generate(self, triggers: Iterable[str]) -> dict[str, QueryPlan]:
        """The query plans of known triggers, writing the missing ones with the LLM.

        A trigger whose answer is unusable gets no plan and a reason in
        ``self.failures``."""
        triggers = [t for t in dict.fromkeys(str(t) for t in triggers) if t in self._docs]
        digest = self.prompt_digest()
        todo = [t for t in triggers if not self._plan_usable(self.plans.get(t), digest)]
        if todo and self.llm is None:
            for t in todo:
                reason = "no stored queries and no LLM to write them"
                self.failures[t] = self._bad_answers.get(t, reason)
        elif todo:
            assert self.llm is not None
            requests = [
                Request(
                    self.prompt_messages(t),
                    schema=self.schema,
                    max_tokens=self.max_tokens,
                    temperature=0.0,
                    seed=self.seed,
                    id=t,
                )
                for t in todo
            ]
            results = self.llm.map(
                requests,
                validate=lambda v: parse_answer(v, max_queries=self.max_queries),
                desc=f"Q' queries ({self.name})",
            )
            for t, result in zip(todo, results, strict=True):
                if result.ok:
                    plan = result.value
                    self.plans[t] = QueryPlan(plan.language, plan.queries, digest)
                else:
                    self.failures[t] = f"unusable LLM answer: {result.error or 'no answer'}"
        return {t: self.plans[t] for t in triggers if self._plan_usable(self.plans.get(t), digest)}

    # ------------------------------------------------------------------ recall
    def _recall_known(self, triggers: list[str], k: int) -> dict[str, list[Candidate]]:
        plans = self.generate(triggers)
        kept_queries: dict[str, list[Query]] = {}
        for t, plan in plans.items():
            good = [q for q in plan.queries if q.relevance >= self.min_relevance]
            if good:
                kept_queries[t] = good
            else:
                self.failures[t] = (
                    f"no query reaches the relevance threshold {self.min_relevance:g} "
                    f"({len(plan.queries)} written)"
                )
        flat = [(t, q) for t, qs in kept_queries.items() for q in qs]
        # one extra hit per query, as the trigger itself is usually its best match
        hits = self.match_scores([q.text for _, q in flat], self.per_query + 1)
        found: dict[str, list[tuple[Query, list[tuple[str, float]]]]] = {}
        for (t, q), row in zip(flat, hits, strict=True):
            found.setdefault(t, []).append((q, row))
        out: dict[str, list[Candidate]] = {}
        self.provenance = {}
        for t in triggers:
            if t not in kept_queries:
                out[t] = []
                continue
            out[t] = self._merge(t, found.get(t, []), min(k, self.max_candidates))
            if not out[t]:
                self.failures[t] = "the queries found no other item"
        return out

    def _merge(
        self, trigger: str, results: list[tuple[Query, list[tuple[str, float]]]], k: int
    ) -> list[Candidate]:
        """Fuse one trigger's query results: score, provenance, self/duplicate removal."""
        score: dict[str, float] = {}
        prov: dict[str, list[tuple[str, int]]] = {}
        for query, row in results:
            row = [(i, m) for i, m in row if i != trigger][: self.per_query]
            for rank, (item, match) in enumerate(row, start=1):
                if match < self.min_match:
                    break
                score[item] = score.get(item, 0.0) + query.relevance * match
                prov.setdefault(item, []).append((query.text, rank))
        ranked = sorted(score, key=lambda i: (-score[i], i))
        anchor = self._shingles_of(trigger)
        kept: list[Candidate] = []
        kept_shingles: list[frozenset[str]] = []
        for item in ranked:
            if len(kept) >= k:
                break
            sh = self._shingles_of(item)
            if jaccard(anchor, sh) >= self.near_duplicate or any(
                jaccard(other, sh) >= self.near_duplicate for other in kept_shingles
            ):
                continue
            kept.append(Candidate(item, score[item], {self.name: score[item]}))
            kept_shingles.append(sh)
        self.provenance[trigger] = {c.item_id: prov[c.item_id] for c in kept}
        return kept

    def _shingles_of(self, item: str) -> frozenset[str]:
        got = self._shingles.get(item)
        if got is None:
            got = self._shingles[item] = shingles(self._docs.get(item, ""), self.shingle)
        return got

    def provenance_frame(self) -> pl.DataFrame:
        """The last recall's provenance: ``trigger_id``, ``item_id``, ``query``, ``rank``
        (of the item in that query's hits) and ``relevance`` (of the query)."""
        rows = []
        for t, items in self.provenance.items():
            plan = self.plans.get(t)
            relevance = {q.text: q.relevance for q in plan.queries} if plan else {}
            for item, hits in items.items():
                rows.extend((t, item, q, r, relevance.get(q)) for q, r in hits)
        schema = {
            "trigger_id": pl.String,
            "item_id": pl.String,
            "query": pl.String,
            "rank": pl.Int32,
            "relevance": pl.Float64,
        }
        return pl.DataFrame(rows, schema=schema, orient="row")

    # ------------------------------------------------------------------ offline
    def precompute(
        self,
        store: CandidateStore | None = None,
        triggers: Iterable[str] | None = None,
        *,
        k: int = 30,
        batch_size: int = 256,
    ) -> dict[str, list[Candidate]]:
        """Recall every trigger (default: the whole corpus) in batches, writing each batch
        to ``store`` when given; ``self.failures`` collects every batch's failures."""
        if self.corpus is None:
            raise ConfigError(f"recall path {self.name!r} is not fitted: call fit() first")
        wanted = list(dict.fromkeys(str(t) for t in (self._ids if triggers is None else triggers)))
        out: dict[str, list[Candidate]] = {}
        failures: dict[str, str] = {}
        for start in range(0, len(wanted), batch_size):
            batch = self.recall(wanted[start : start + batch_size], k)
            failures.update(self.failures)
            if store is not None:
                store.put_many(batch)
            out.update(batch)
        self.failures = failures
        return out

    # ------------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        self.index.save(str(directory / "bm25"), show_progress=False)
        docs = {"ids": self._ids, "texts": [self._docs[i] for i in self._ids]}
        state = {
            "docs": docs,
            "no_text": sorted(self._no_text),
            "plans": {t: p.to_dict() for t, p in self.plans.items()},
            "bad_answers": self._bad_answers,
        }
        tmp = directory / "qprime.json.tmp"
        tmp.write_text(json.dumps(state, ensure_ascii=False))
        os.replace(tmp, directory / "qprime.json")

    def _load_state(self, directory: Path) -> None:
        import bm25s

        try:
            state = json.loads((directory / "qprime.json").read_text())
            self.index = bm25s.BM25.load(str(directory / "bm25"), show_progress=False)
            self._set_term_max()
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"Q' recall path: cannot read the saved state: {exc}") from None
        self._ids = list(state["docs"]["ids"])
        self._docs = dict(zip(self._ids, state["docs"]["texts"], strict=True))
        self._no_text = set(state["no_text"])
        self.plans = {t: QueryPlan.from_dict(p) for t, p in state["plans"].items()}
        self._bad_answers = dict(state.get("bad_answers", {}))
        self._shingles = {}
        self.corpus = set(self._ids)
