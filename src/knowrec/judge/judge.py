"""The LLM quality judge of Explore Further (docs/explore.md, "The LLM judge"): the 0–4
pointwise prompt family.

:class:`Judge` scores (trigger, candidate) pairs of an items table with one LLM and three
prompt variants that build on each other:

- **A**: label definitions (0–4) and aspects in the instructions, several role-played
  judges (personas); the pair's score is the mean over the judges of the most likely
  label (the argmax of the label distribution, i.e. the greedy digit).
- **B**: the same calls as A; each judge's score is the probability-weighted expected
  label ``Σ l·p(l)`` over the next-token probabilities of ``"0"`` … ``"4"``
  (:meth:`knowrec.llm.base.LLM.label_probs`), averaged over the judges.
- **C**: B after aspect-wise reasoning: the model first writes one short line per aspect
  (relevance, complementarity, quality; at most ``reasoning_tokens`` tokens, once per
  pair), the notes are fed back as its own turn, then each judge's label distribution is
  read as in B.

Prompts come from a template file (``prompts/judge_pointwise.txt``: parts ``system``,
``pair``, ``score``, ``reason``, ``score_after_reasoning``) and a persona file
(``prompts/personas.txt``, one judge per line). Every prompt starts with the same fixed
instructions, then the pair; the per-judge line comes last. Pairs are scored grouped by
trigger and, on a one-context backend, pair by pair (the A/B judges, then the reasoning,
then the C judges), so llama.cpp evaluates the instructions once, each trigger once per
run of its candidates, each pair once, and only a short judge line per call.

Every call goes through the LLM's cache (a re-run is free, a killed run resumes). A
broken input (unknown id, no text, a prompt that does not fit the context) or answer
(no label probability, empty reasoning) becomes a recorded failure of that pair —
``status`` and ``error`` in the result — never an exception. :func:`evaluate_golden`
turns the scores into pairwise accuracy on a golden set (:mod:`knowrec.judge.golden`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import polars as pl

from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError
from knowrec.judge.golden import PAIR_COLUMNS, golden_report
from knowrec.knowledge.inputs import item_raw_texts
from knowrec.llm.base import DIGITS, LLM, Message, Request, Result
from knowrec.llm.prompts import PromptFile
from knowrec.progress import progress_bar

log = logging.getLogger(__name__)

VARIANTS: tuple[str, ...] = ("A", "B", "C")
#: What describes an item in the prompt: its raw text, its knowledge text, or both.
ITEM_TEXTS: tuple[str, ...] = ("raw", "knowledge", "both")
#: The fence around each item's text in the prompt; removed from the texts themselves.
_FENCE = re.compile(r"</?\s*item\s*>", re.IGNORECASE)
PARTS: tuple[str, ...] = ("system", "pair", "score", "reason", "score_after_reasoning")
#: The template file: its parts and the placeholders each may use and must use.
_FILE = PromptFile(
    "judge template",
    PARTS,
    allowed={
        "system": frozenset({"noun"}),
        "pair": frozenset({"noun", "trigger", "candidate"}),
        "score": frozenset({"noun", "persona"}),
        "reason": frozenset({"noun"}),
        "score_after_reasoning": frozenset({"noun", "persona"}),
    },
    required={
        "pair": frozenset({"trigger", "candidate"}),
        "score": frozenset({"persona"}),
        "score_after_reasoning": frozenset({"persona"}),
    },
)
#: Tokens the chat template adds around one message (room kept when checking the context).
_TURN_TOKENS = 8
#: Output columns of :meth:`Judge.score`.
SCORE_SCHEMA: dict[str, Any] = {
    "trigger_id": pl.String,
    "candidate_id": pl.String,
    "score_a": pl.Float64,
    "score_b": pl.Float64,
    "score_c": pl.Float64,
    "probs": pl.List(pl.List(pl.Float64)),
    "probs_c": pl.List(pl.List(pl.Float64)),
    "reasoning": pl.String,
    "status": pl.String,
    "error": pl.String,
    "calls": pl.Int64,
    "ms_ab": pl.Float64,
    "ms_c": pl.Float64,
}


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class JudgeTemplate:
    """The parts of a judge prompt (see the module docstring and the packaged file)."""

    name: str
    system: str
    pair: str
    score: str
    reason: str
    score_after_reasoning: str

    @classmethod
    def parse(cls, text: str, name: str = "<template>") -> JudgeTemplate:
        """Parse the file (all of :data:`PARTS`, in that order) and check each part's
        placeholders."""
        return cls(name=name, **_FILE.parse(text, name))

    @classmethod
    def load(cls, path: str | Path) -> JudgeTemplate:
        """Read a template file."""
        return cls.parse(*_FILE.read(path))

    @classmethod
    def builtin(cls) -> JudgeTemplate:
        """The packaged ``prompts/judge_pointwise.txt``."""
        return cls.parse(*_FILE.read_builtin("knowrec.judge", "judge_pointwise.txt"))

    def digest(self) -> str:
        """A short hash of the template text."""
        blob = "\x00".join(getattr(self, part) for part in PARTS)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _resource(name: str) -> str:
    return (resources.files("knowrec.judge") / "prompts" / name).read_text(encoding="utf-8")


def builtin_personas() -> list[str]:
    """The packaged role-played judges (``prompts/personas.txt``), in order."""
    return parse_personas(_resource("personas.txt"))


def parse_personas(text: str) -> list[str]:
    """One persona per non-blank line; lines starting with ``#`` are comments."""
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def parse_variants(variants: str | Iterable[str]) -> tuple[str, ...]:
    """``"A,B,C"`` or an iterable of names → the variants, upper-case, in A, B, C order."""
    names = variants.split(",") if isinstance(variants, str) else list(variants)
    wanted = {str(v).strip().upper() for v in names if str(v).strip()}
    unknown = sorted(wanted - set(VARIANTS))
    if unknown or not wanted:
        raise ConfigError(
            f"unknown judge variant(s) {unknown or '(none given)'}; known are {', '.join(VARIANTS)}"
        )
    return tuple(v for v in VARIANTS if v in wanted)


# --------------------------------------------------------------------------- aggregation


def label_vector(probs: Mapping[str, float], labels: Sequence[str] = DIGITS) -> list[float]:
    """A label distribution (``{"0": p0, …}``) as a list in label order."""
    return [float(probs.get(label, 0.0)) for label in labels]


def aggregate(distributions: Sequence[Sequence[float]]) -> tuple[float, float]:
    """The (A, B) scores of one pair from its judges' label distributions over 0…4.

    A = mean over judges of the most likely label (the lowest label on a tie); B = mean
    over judges of the expected label Σ l·p(l). NaN for no judge.
    """
    if not distributions:
        return math.nan, math.nan
    p = np.asarray(distributions, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"expected one distribution per judge, got shape {p.shape}")
    labels = np.arange(p.shape[1], dtype=np.float64)
    return float(labels[p.argmax(axis=1)].mean()), float((p @ labels).mean())


# --------------------------------------------------------------------------- the judge


@dataclass
class JudgeStats:
    """What one :meth:`Judge.score` call did (``seconds``: wall time)."""

    pairs: int = 0
    failed: int = 0
    calls: int = 0
    cached: int = 0
    seconds: float = 0.0


@dataclass
class _Pair:
    trigger: str
    candidate: str
    prompt: str = ""
    errors: list[str] = field(default_factory=list)
    ab: list[Result | None] = field(default_factory=list)
    reasoning: Result | None = None
    c: list[Result | None] = field(default_factory=list)


def _reasoning_text(value: Any) -> str | None:
    """Validator of all judge answers: the reasoning must be words; labels pass as they are."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if sum(ch.isalpha() for ch in text) < 8:
        raise ValueError(f"no reasoning in the answer {text[:80]!r}")
    return text


class Judge:
    """The 0–4 pointwise LLM judge (prompt variants A, B, C: see the module docstring).

    ``llm``: any :class:`knowrec.llm.base.LLM` (it also truncates item texts by its
    tokens). ``noun``: what an item is (``"movie"``, ``"web page"``). ``personas``: the
    number of packaged judges to use (1–5) or their own texts (``$noun`` allowed).
    ``variants``: the default of :meth:`score` (``"A,B,C"``; A and B share their calls).
    ``item_tokens``: each item's text (title first) is cut to this many tokens.
    ``reasoning_tokens``: the length limit of C's notes. ``template``: a judge template
    file instead of the packaged one. ``seed``: the sampling seed of every call (greedy
    decoding; it is part of the cache key). ``item_text``: ``"raw"`` (the item's text),
    ``"knowledge"`` (its title and its knowledge text from ``knowledge``, id → text, e.g.
    TRAWL's genres, themes, mood, audience) or ``"both"`` (title, knowledge, then raw text);
    an item without knowledge falls back to its raw text. ``both_directions``: judge each
    pair also with trigger and candidate swapped and average the two (twice the calls; on
    the ML-1M golden set the most accurate judge per second, BENCHMARKS.md).
    """

    def __init__(
        self,
        llm: LLM,
        *,
        noun: str = "item",
        personas: int | Sequence[str] = 5,
        variants: str | Sequence[str] = VARIANTS,
        item_tokens: int = 192,
        reasoning_tokens: int = 64,
        template: str | Path | JudgeTemplate | None = None,
        seed: int = 0,
        item_text: str = "raw",
        knowledge: Mapping[str, str] | None = None,
        both_directions: bool = False,
        progress: bool = True,
    ) -> None:
        noun = " ".join(str(noun).split())
        if item_text not in ITEM_TEXTS:
            raise ConfigError(
                f"item_text must be one of {', '.join(ITEM_TEXTS)}, got {item_text!r}"
            )
        if item_text != "raw" and not knowledge:
            raise ConfigError(f"item_text = {item_text!r} needs a knowledge table (id → text)")
        if not noun:
            raise ConfigError("the judge needs a noun for the items (e.g. 'movie')")
        if item_tokens < 8 or reasoning_tokens < 8:
            raise ConfigError(
                f"item_tokens and reasoning_tokens must be >= 8, got {item_tokens} and "
                f"{reasoning_tokens}"
            )
        if isinstance(template, JudgeTemplate):
            self.template = template
        else:
            self.template = (
                JudgeTemplate.builtin() if template is None else JudgeTemplate.load(template)
            )
        if isinstance(personas, int):
            known = builtin_personas()
            if not 1 <= personas <= len(known):
                raise ConfigError(f"personas must be between 1 and {len(known)}, got {personas}")
            texts = known[:personas]
        else:
            texts = [" ".join(str(p).split()) for p in personas]
            if not texts or not all(texts):
                raise ConfigError("personas must be a number or a list of non-empty texts")
        self.llm = llm
        self.noun = noun
        self.variants = parse_variants(variants)
        self.item_tokens = item_tokens
        self.reasoning_tokens = reasoning_tokens
        self.seed = seed
        self.item_text = item_text
        self.both_directions = both_directions
        self.knowledge = {str(k): " ".join(str(v).split()) for k, v in (knowledge or {}).items()}
        self.progress = progress
        self.personas = [self._fill(p, "persona") for p in texts]
        self.system = self._fill(self.template.system, "system")
        self.stats = JudgeStats()
        self._longest: tuple[str, str] | None = None

    def _fill(self, text: str, what: str, **values: str) -> str:
        try:
            return Template(text).substitute(noun=self.noun, **values)
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"judge {what} text: bad placeholder {exc} in {text[:60]!r}"
            ) from None

    def fingerprint(self) -> str:
        """Identifies everything that shapes the scores (template, judges, budgets, model)."""
        parts = {
            "template": self.template.digest(),
            "noun": self.noun,
            "personas": self.personas,
            "item_tokens": self.item_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "seed": self.seed,
            "item_text": self.item_text,
            "both_directions": self.both_directions,
            "model": getattr(self.llm, "model_id", None),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    # -- prompts ----------------------------------------------------------------------------

    def item_texts(self, items: pl.DataFrame | Dataset, ids: Iterable[str]) -> dict[str, str]:
        """Each known id's text for the prompt (``item_text``): title (and year) first, then
        its text, cut to ``item_tokens`` tokens, without the prompt's fence tags; empty when
        the item has nothing to read."""
        table = items.items if isinstance(items, Dataset) else items
        if "item_id" not in table.columns:
            raise ConfigError(f"the items table has no item_id column (has {table.columns})")
        wanted = sorted({str(i) for i in ids})
        table = table.with_columns(pl.col("item_id").cast(pl.String))
        raw = item_raw_texts(table.filter(pl.col("item_id").is_in(wanted)))
        out: dict[str, str] = {}
        for item_id, title, text in raw.select("item_id", "title", "raw").iter_rows():
            text = _FENCE.sub("", text or "").strip()
            known = _FENCE.sub("", self.knowledge.get(item_id, "")).strip()
            if known and self.item_text != "raw":
                rest = text.removeprefix(title).strip() if self.item_text == "both" else ""
                text = "\n".join(part for part in (title, known, rest) if part)
            out[item_id] = self.llm.truncate_tokens(text, self.item_tokens).strip() if text else ""
        return out

    def pair_prompt(self, trigger_text: str, candidate_text: str) -> str:
        """The ``pair`` part: the trigger's then the candidate's text."""
        return Template(self.template.pair).substitute(
            noun=self.noun, trigger=trigger_text, candidate=candidate_text
        )

    def score_messages(self, pair_prompt: str, persona: str) -> list[Message]:
        """A/B: instructions, then the pair followed by one judge's line."""
        tail = self._fill(self.template.score, "score", persona=persona)
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": f"{pair_prompt}\n\n{tail}"},
        ]

    def reason_messages(self, pair_prompt: str) -> list[Message]:
        """C, first call: instructions, then the pair followed by the request for notes."""
        ask = self._fill(self.template.reason, "reason")
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": f"{pair_prompt}\n\n{ask}"},
        ]

    def after_reasoning_messages(
        self, pair_prompt: str, reasoning: str, persona: str
    ) -> list[Message]:
        """C, per judge: the reasoning conversation, then the judge's line."""
        tail = self._fill(self.template.score_after_reasoning, "score", persona=persona)
        return [
            *self.reason_messages(pair_prompt),
            {"role": "assistant", "content": reasoning},
            {"role": "user", "content": tail},
        ]

    def _longest_tails(self) -> tuple[str, str]:
        """The persona with the most tokens in the A/B prompt and in C's last turn."""
        if self._longest is None:

            def tokens(part: str) -> Any:
                return lambda p: self.llm.count_tokens(self._fill(part, "score", persona=p))

            self._longest = (
                max(self.personas, key=tokens(self.template.score)),
                max(self.personas, key=tokens(self.template.score_after_reasoning)),
            )
        return self._longest

    def check_fit(self, pair_prompt: str, variants: Sequence[str]) -> str | None:
        """Why the prompts of this pair would not fit the LLM's context, or None."""
        limit = getattr(self.llm, "context_tokens", None)
        if limit is None:
            return None
        ab_persona, c_persona = self._longest_tails()
        if "A" in variants or "B" in variants:
            n = self.llm.count_message_tokens(self.score_messages(pair_prompt, ab_persona))
            if n + 1 > limit:
                return f"prompt of {n} tokens does not fit the context of {limit} tokens"
        if "C" in variants:
            n = self.llm.count_message_tokens(self.reason_messages(pair_prompt))
            tail = self._fill(self.template.score_after_reasoning, "score", persona=c_persona)
            need = n + self.reasoning_tokens + self.llm.count_tokens(tail) + 2 * _TURN_TOKENS
            if need > limit:
                return (
                    f"reasoning prompt of {n} tokens plus {self.reasoning_tokens} reasoning "
                    f"tokens and the judge's turn ({need}) does not fit the context of "
                    f"{limit} tokens"
                )
        return None

    # -- scoring ----------------------------------------------------------------------------

    def score(
        self,
        pairs: pl.DataFrame | Iterable[tuple[Any, Any]],
        items: pl.DataFrame | Dataset,
        *,
        variants: str | Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Judge each (trigger_id, candidate_id) pair; one result row per pair, in order.

        Columns (:data:`SCORE_SCHEMA`): ``score_a``, ``score_b``, ``score_c`` (null when
        the variant was not asked for or failed), ``probs`` / ``probs_c`` (per judge, the
        label distribution over 0…4 without / after reasoning), ``reasoning`` (C's notes),
        ``status`` (``ok``; ``partial``: some judge calls failed and the scores average
        the others; ``failed``: a requested variant has no score), ``error``, ``calls``
        (model calls made now, retries included; 0 when all came from the cache) and
        ``ms_ab`` / ``ms_c`` (milliseconds from asking to answering the pair's A/B and C
        calls, as measured when computed: model time on a sequential backend; on a batched
        or concurrent one, waiting for a slot included).
        """
        wanted = self.variants if variants is None else parse_variants(variants)
        pairs_asked = _pair_rows(pairs)
        rows = (
            pairs_asked + [(c, t) for t, c in pairs_asked] if self.both_directions else pairs_asked
        )
        started = time.perf_counter()
        calls_before = self.llm.calls
        self.stats = JudgeStats(pairs=len(pairs_asked))
        texts = self.item_texts(items, {i for pair in rows for i in pair}) if rows else {}
        states = [self._prepare(t, c, texts, wanted) for t, c in rows]
        first: dict[str, int] = {}
        for i, (t, _) in enumerate(rows):
            first.setdefault(t, i)
        order = sorted(range(len(rows)), key=lambda i: first[rows[i][0]])  # by trigger
        concurrency = max(int(getattr(self.llm, "concurrency", 1) or 1), 1)
        size = 1 if concurrency == 1 else 4 * concurrency
        show = self.progress and len(rows) > 1
        with progress_bar(f"judge {','.join(wanted)}", len(rows), enabled=show) as bar:
            for start in range(0, len(order), size):
                chunk = [states[i] for i in order[start : start + size]]
                self._run(chunk, wanted)
                bar.advance(len(chunk))
        records = [self._record(s, wanted) for s in states]
        frame = pl.DataFrame(records, schema=SCORE_SCHEMA, orient="row")
        if self.both_directions:
            n = len(pairs_asked)
            frame = _both_directions(frame.head(n), frame.slice(n))
        self.stats.failed = int((frame["status"] == "failed").sum()) if rows else 0
        self.stats.calls = self.llm.calls - calls_before
        self.stats.seconds = time.perf_counter() - started
        log.info(
            "judge %s: %d pairs, %d failed, %d model calls, %.1f s",
            ",".join(wanted),
            self.stats.pairs,
            self.stats.failed,
            self.stats.calls,
            self.stats.seconds,
        )
        return frame

    def _prepare(
        self, trigger: str, candidate: str, texts: Mapping[str, str], variants: Sequence[str]
    ) -> _Pair:
        state = _Pair(trigger, candidate)
        for role, item in (("trigger", trigger), ("candidate", candidate)):
            if item not in texts:
                state.errors.append(f"unknown {role} id {item!r} (not in the items table)")
            elif not texts[item]:
                state.errors.append(f"the {role} {item!r} has no title or text")
        if not state.errors:
            state.prompt = self.pair_prompt(texts[trigger], texts[candidate])
            problem = self.check_fit(state.prompt, variants)
            if problem:
                state.errors.append(problem)
        return state

    def _label_request(self, messages: list[Message], rid: str) -> Request:
        return Request(messages, labels=DIGITS, max_tokens=1, seed=self.seed, id=rid)

    def _run(self, chunk: list[_Pair], variants: Sequence[str]) -> None:
        """The calls of a chunk of pairs: A/B judges and C's reasoning, then C's judges."""
        live = [s for s in chunk if not s.errors]
        first: list[Request] = []
        slots: list[tuple[_Pair, str, int]] = []
        for s in live:
            rid = f"{s.trigger}>{s.candidate}"
            if "A" in variants or "B" in variants:
                for k, persona in enumerate(self.personas):
                    messages = self.score_messages(s.prompt, persona)
                    first.append(self._label_request(messages, f"{rid}#ab{k}"))
                    slots.append((s, "ab", k))
                s.ab = [None] * len(self.personas)
            if "C" in variants:
                first.append(
                    Request(
                        self.reason_messages(s.prompt),
                        max_tokens=self.reasoning_tokens,
                        temperature=0.0,
                        seed=self.seed,
                        id=f"{rid}#reason",
                    )
                )
                slots.append((s, "reason", 0))
        self._collect(first, slots)
        second: list[Request] = []
        slots = []
        for s in live:
            if s.reasoning is None or not s.reasoning.ok:
                continue
            s.c = [None] * len(self.personas)
            for k, persona in enumerate(self.personas):
                messages = self.after_reasoning_messages(s.prompt, s.reasoning.value, persona)
                second.append(self._label_request(messages, f"{s.trigger}>{s.candidate}#c{k}"))
                slots.append((s, "c", k))
        self._collect(second, slots)

    def _collect(self, requests: list[Request], slots: list[tuple[_Pair, str, int]]) -> None:
        if not requests:
            return
        results = self.llm.map(requests, validate=_reasoning_text, progress=False)
        for (state, kind, k), result in zip(slots, results, strict=True):
            self.stats.cached += int(result.cached)
            if kind == "reason":
                state.reasoning = result
            else:
                getattr(state, kind)[k] = result

    def _record(self, s: _Pair, variants: Sequence[str]) -> tuple[Any, ...]:
        errors = list(s.errors)
        results: list[Result] = []

        def distributions(found: list[Result | None], what: str) -> list[list[float]] | None:
            if not found:
                return None
            good = []
            for k, result in enumerate(found):
                if result is None:
                    continue
                results.append(result)
                if result.ok:
                    good.append(label_vector(result.value))
                else:
                    errors.append(f"{what} judge {k + 1}: {result.error or 'no answer'}")
            return good

        probs = distributions(s.ab, "A/B")
        ms_ab = _ms(results)
        if s.reasoning is not None:
            results.append(s.reasoning)
            if not s.reasoning.ok:
                errors.append(f"C reasoning: {s.reasoning.error or 'no answer'}")
        n_ab = len(results)
        probs_c = distributions(s.c, "C")
        ms_c = _ms(results[n_ab:] + ([s.reasoning] if s.reasoning is not None else []))
        score_a = score_b = score_c = None
        if probs:
            a, b = aggregate(probs)
            score_a = a if "A" in variants else None
            score_b = b if "B" in variants else None
        if probs_c:
            score_c = aggregate(probs_c)[1]
        scored = {"A": score_a, "B": score_b, "C": score_c}
        if any(scored[v] is None for v in variants):
            status = "failed"
        else:
            status = "partial" if errors else "ok"
        reasoning = s.reasoning.value if s.reasoning is not None and s.reasoning.ok else None
        return (
            s.trigger,
            s.candidate,
            score_a,
            score_b,
            score_c,
            probs if probs else None,
            probs_c if probs_c else None,
            reasoning,
            status,
            "; ".join(errors) or None,
            sum(r.attempts for r in results if not r.cached),
            ms_ab if s.ab else None,
            ms_c if s.reasoning is not None else None,
        )


def _both_directions(forward: pl.DataFrame, reverse: pl.DataFrame) -> pl.DataFrame:
    """One row per pair from its two directions: each score the mean of the directions
    that have it, the judges' distributions of both (forward first), the forward
    reasoning, ``partial`` when one direction failed, calls and milliseconds summed."""

    def mean(values: list[Any]) -> float | None:
        found = [v for v in values if v is not None and not math.isnan(v)]
        return sum(found) / len(found) if found else None

    def total(values: list[Any]) -> float | None:
        found = [v for v in values if v is not None]
        return sum(found) if found else None

    rows = []
    for f, r in zip(forward.iter_rows(named=True), reverse.iter_rows(named=True), strict=True):
        statuses = {f["status"], r["status"]}
        errors = [f"{d}: {x['error']}" for d, x in (("forward", f), ("reversed", r)) if x["error"]]
        rows.append(
            {
                **f,
                **{c: mean([f[c], r[c]]) for c in ("score_a", "score_b", "score_c")},
                **{c: (f[c] or []) + (r[c] or []) or None for c in ("probs", "probs_c")},
                "status": statuses.pop() if len(statuses) == 1 else "partial",
                "error": "; ".join(errors) or None,
                "calls": f["calls"] + r["calls"],
                **{c: total([f[c], r[c]]) for c in ("ms_ab", "ms_c")},
            }
        )
    return pl.DataFrame(rows, schema=SCORE_SCHEMA)


def _ms(results: Sequence[Result]) -> float:
    return float(sum(r.total_ms or 0.0 for r in results))


def _pair_rows(pairs: pl.DataFrame | Iterable[tuple[Any, Any]]) -> list[tuple[str, str]]:
    if isinstance(pairs, pl.DataFrame):
        missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
        if missing:
            raise ConfigError(f"the pairs table has no column(s) {missing} (has {pairs.columns})")
        table = pairs.select(pl.col(c).cast(pl.String) for c in PAIR_COLUMNS)
        return [(str(t), str(c)) for t, c in table.iter_rows()]
    rows = []
    for row in pairs:
        if len(row) != 2:
            raise ConfigError(f"a pair is (trigger_id, candidate_id), got {row!r}")
        rows.append((str(row[0]), str(row[1])))
    return rows


# --------------------------------------------------------------------------- evaluation


def evaluate_golden(
    golden: pl.DataFrame,
    scores: pl.DataFrame,
    variants: str | Sequence[str] = VARIANTS,
    *,
    seconds: float | None = None,
) -> pl.DataFrame:
    """Pairwise accuracy of each variant's scores on a golden set (one row per variant).

    ``scores`` is the table of :meth:`Judge.score` for (a superset of) the golden pairs.
    Failed pairs (no score) are left out of that variant's evaluation. Columns:
    ``variant``, the accuracies of :func:`~knowrec.judge.golden.golden_report` (within
    trigger with its bootstrap interval, hard, easy, across triggers) and its pair counts,
    ``scored``, ``failed`` and ``judgements_per_s``: golden pairs per second of
    ``seconds``, the wall time that computed the scores (NaN when not given, e.g. when
    they came from the cache; variants computed together share it).
    """
    rows = []
    for variant in parse_variants(variants):
        col = f"score_{variant.lower()}"
        table = scores.select(*PAIR_COLUMNS, score=pl.col(col)).filter(
            pl.col("score").is_not_null() & pl.col("score").is_not_nan()
        )
        table = table.unique(subset=list(PAIR_COLUMNS), keep="first", maintain_order=True)
        g = golden.join(table.select(PAIR_COLUMNS), on=list(PAIR_COLUMNS), how="semi")
        rows.append(
            {
                "variant": variant,
                **golden_report(g, table),
                "scored": g.height,
                "failed": golden.height - g.height,
                "judgements_per_s": golden.height / seconds if seconds else math.nan,
            }
        )
    return pl.DataFrame(rows)
