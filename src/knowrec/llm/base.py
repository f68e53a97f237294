"""The one LLM interface every backend implements, and the batch runner on top of it.

A backend supplies three primitives (:meth:`LLM._complete`, :meth:`LLM._label_logprobs`
and token counting / truncation); this module adds what every backend shares: chat
messages with a system prompt, token-based truncation to the context window, JSON parsing
with repair and a nudged retry, JSON-schema validation, the label distribution of a
judge, the persistent cache, the progress bar and per-item failure records.

A batch (:meth:`LLM.map`) never dies on one bad answer: a malformed or rejected answer is
recorded as a failed item and the batch goes on. Only an error about the backend itself
(:class:`~knowrec.errors.LLMError`: an unreachable server; or a bad setting) stops it,
and by then every finished item is already in the cache.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from knowrec.errors import ConfigError, KnowrecError, LLMOutputError, LLMRequestError
from knowrec.llm.cache import ResultCache, request_key
from knowrec.progress import progress_bar

log = logging.getLogger(__name__)

DIGITS: tuple[str, ...] = ("0", "1", "2", "3", "4")
Message = dict[str, str]
Prompt = str | Sequence[Mapping[str, str]]
#: ``validate(value)`` returns a replacement value (or None to keep it) or raises
#: ValueError / TypeError / KeyError / LLMOutputError to reject the answer.
Validator = Callable[[Any], Any]
#: Per-message tokens of the chat template, for backends that count content tokens only.
TEMPLATE_OVERHEAD = 8
#: Timing and token counts a backend reports for each call.
STATS = ("prompt_tokens", "prompt_eval_tokens", "completion_tokens", "prompt_ms", "gen_ms")


@dataclass(frozen=True)
class Request:
    """One LLM call: a prompt (or a list of chat messages), a system prompt, parameters.

    ``schema`` asks for JSON matching that JSON schema (the value is the parsed object);
    ``labels`` asks for the probability of each label as the answer's first token instead
    of generated text (each label must be one token, e.g. ``"0"`` … ``"4"``). ``id`` is the
    caller's name for the item: echoed in the result, not part of the cache key.
    """

    prompt: Prompt
    system: str | None = None
    schema: Mapping[str, Any] | None = None
    labels: tuple[str, ...] | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    id: str | None = None

    @property
    def kind(self) -> str:
        """``labels``, ``json`` or ``text``."""
        return "labels" if self.labels else "json" if self.schema is not None else "text"


@dataclass
class Completion:
    """What a backend returns for one call, with the prompt/generation split of its time.

    ``prompt_eval_tokens`` counts the prompt tokens actually evaluated (fewer than
    ``prompt_tokens`` when a cached prefix was reused).
    """

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_eval_tokens: int | None = None
    prompt_ms: float | None = None
    gen_ms: float | None = None
    finish_reason: str | None = None


@dataclass
class Result:
    """The outcome of one request: ``value`` when ``ok``, else the recorded ``error``.

    ``raw`` is the parsed answer before the validator (a dict of label probabilities for
    a label request); ``value`` is what the validator made of it. Token counts and times
    (milliseconds) add up over the attempts; ``cached`` is True when no model call was
    made for this item in this run.
    """

    id: str | None
    key: str
    ok: bool
    value: Any = None
    raw: Any = None
    text: str | None = None
    error: str | None = None
    cached: bool = False
    attempts: int = 0
    truncated: bool = False
    prompt_tokens: int | None = None
    prompt_eval_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_ms: float | None = None
    gen_ms: float | None = None
    total_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)


@dataclass
class Pending:
    """A request on its way through a backend: its result so far and its conversation
    (the fitted prompt, then the retries)."""

    key: str
    request: Request
    result: Result
    messages: list[Message]
    started: float

    def finish(self) -> Result:
        """The result, with the time since the request was prepared."""
        self.result.total_ms = (time.perf_counter() - self.started) * 1000
        return self.result


# --------------------------------------------------------------------------- JSON answers


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def parse_json(text: str) -> Any:
    """Parse a JSON answer, repairing the usual damage (code fences, chatter around it).

    Tries the whole text, then the inside of a code fence, then the first decodable
    ``{...}`` or ``[...]`` block. Raises :class:`LLMOutputError` when nothing parses.
    """
    for candidate in [text.strip(), *(m.strip() for m in _FENCE.findall(text))]:
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            return decoder.raw_decode(text, match.start())[0]
        except ValueError:
            continue
    snippet = text.strip().replace("\n", " ")[:120]
    raise LLMOutputError(f"answer is not JSON: {snippet!r}")


def check_schema_valid(schema: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` when ``schema`` is not a valid JSON schema."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"invalid JSON schema: {exc.message}") from None


def check_schema(value: Any, schema: Mapping[str, Any]) -> None:
    """Raise :class:`LLMOutputError` when ``value`` does not satisfy the JSON ``schema``."""
    import jsonschema

    check_schema_valid(schema)
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
        message = f"answer does not match the schema at {where}: {exc.message}"
        raise LLMOutputError(message) from None


def normalise_logprobs(logprobs: Mapping[str, float], labels: Sequence[str]) -> dict[str, float]:
    """Softmax over the labels' log-probabilities (a label not given gets 0); sums to 1."""
    present = {lab: lp for lab, lp in logprobs.items() if lab in labels and math.isfinite(lp)}
    if not present:
        raise LLMOutputError(f"none of the labels {list(labels)} has a finite probability")
    top = max(present.values())
    weights = {lab: math.exp(present[lab] - top) if lab in present else 0.0 for lab in labels}
    total = sum(weights.values())
    return {lab: w / total for lab, w in weights.items()}


def expected_value(probs: Mapping[str, float]) -> float:
    """Probability-weighted mean of numeric labels (the judge's score, in [0, 4])."""
    return float(sum(float(label) * p for label, p in probs.items()))


def build_messages(prompt: Prompt, system: str | None = None) -> list[Message]:
    """Chat messages from a prompt (one user turn) or a list of messages, system first."""
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    if system is not None and not (messages and messages[0]["role"] == "system"):
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _nudge(error: str, schema: Mapping[str, Any] | None) -> str:
    if schema is None:
        return f"Your answer was rejected: {error}. Answer again, following the instructions."
    return (
        f"Your answer was rejected: {error}. Answer again with only one JSON object that "
        f"matches this JSON schema, nothing else: {json.dumps(schema, separators=(',', ':'))}"
    )


# --------------------------------------------------------------------------- the interface


class LLM(ABC):
    """A chat model behind one interface; subclasses are the backends.

    Settings shared by all backends: ``cache`` (a path or a :class:`ResultCache`; None
    keeps nothing), ``retries`` (nudged re-asks after a malformed or rejected answer) and
    ``progress`` (a progress bar in :meth:`map`).
    """

    backend: ClassVar[str] = ""
    #: Requests :meth:`map` runs at the same time (threads).
    concurrency: int = 1
    #: Context window in tokens (prompt + answer); None: the backend does not know it and
    #: prompts are sent as they are.
    context_tokens: int | None = None

    def __init__(
        self,
        model: str,
        *,
        cache: str | Path | ResultCache | None = None,
        retries: int = 1,
        progress: bool = True,
    ) -> None:
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries}")
        self.model = model
        self.cache = ResultCache(cache) if isinstance(cache, str | Path) else cache
        self.retries = retries
        self.progress = progress
        self.calls = 0  # model calls made by this object (cache hits excluded)
        self._calls_lock = threading.Lock()

    # -- what a backend implements --------------------------------------------------------

    @abstractmethod
    def _complete(
        self,
        messages: list[Message],
        *,
        schema: Mapping[str, Any] | None,
        max_tokens: int,
        temperature: float,
        seed: int,
    ) -> Completion:
        """Generate an answer to ``messages`` (constrained to ``schema`` when given)."""

    @abstractmethod
    def _label_logprobs(
        self, messages: list[Message], labels: Sequence[str], *, seed: int
    ) -> tuple[dict[str, float], Completion]:
        """Log-probabilities of the labels as the answer's first token (labels may be
        missing when the backend only sees the top candidates)."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` for this model."""

    @abstractmethod
    def truncate_tokens(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens, at a token boundary."""

    @property
    def model_id(self) -> str:
        """The model's name in cache keys."""
        return self.model

    def cache_params(self) -> dict[str, Any]:
        """Backend settings that change answers and so belong in the cache key."""
        return {}

    def count_message_tokens(self, messages: list[Message]) -> int:
        """Tokens of a whole chat prompt (here: contents plus a template allowance)."""
        return sum(self.count_tokens(m["content"]) + TEMPLATE_OVERHEAD for m in messages)

    def close(self) -> None:
        """Release the model or connections, and the cache."""
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API -----------------------------------------------------------------------

    def chat(
        self,
        prompt: Prompt,
        *,
        system: str | None = None,
        schema: Mapping[str, Any] | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        validate: Validator | None = None,
    ) -> Any:
        """One answer: the text, or the parsed JSON object when ``schema`` is given.

        Raises :class:`LLMOutputError` when the answer stays malformed after repair and
        retries, :class:`~knowrec.errors.LLMError` when the backend cannot be reached.
        """
        request = Request(prompt, system, schema, None, max_tokens, temperature, seed)
        result = self.run(request, validate=validate)
        if not result.ok:
            raise LLMOutputError(result.error or "no answer")
        return result.value

    def label_probs(
        self,
        prompt: Prompt,
        *,
        system: str | None = None,
        labels: Sequence[str] = DIGITS,
        seed: int = 0,
    ) -> dict[str, float]:
        """Probability of each label as the answer, renormalised over ``labels``."""
        result = self.run(Request(prompt, system, labels=tuple(labels), max_tokens=1, seed=seed))
        if not result.ok:
            raise LLMOutputError(result.error or "no answer")
        return dict(result.value)

    def run(self, request: Request | str, *, validate: Validator | None = None) -> Result:
        """One request through the cache; a bad answer comes back as a failed result."""
        return self.map([request], validate=validate, progress=False)[0]

    def key(self, request: Request) -> str:
        """The cache key of ``request``: backend, model, messages, schema and parameters."""
        self._check(request)
        return request_key(
            {
                "backend": self.backend,
                "model": self.model_id,
                "kind": request.kind,
                "messages": build_messages(request.prompt, request.system),
                "schema": request.schema,
                "labels": list(request.labels) if request.labels else None,
                "max_tokens": None if request.labels else request.max_tokens,
                "temperature": request.temperature,
                "seed": request.seed,
                **self.cache_params(),
            }
        )

    def map(
        self,
        requests: Iterable[Request | str],
        *,
        validate: Validator | None = None,
        progress: bool | None = None,
        desc: str | None = None,
        retry_failed: bool = False,
    ) -> list[Result]:
        """Run many requests, cached answers first; results come back in request order.

        Each finished item is committed to the cache at once, so a killed run resumes
        where it stopped. An answer still malformed after repair and ``retries`` nudged
        re-asks, or rejected by ``validate``, is recorded as a failed item and stored (a
        re-run skips it unless ``retry_failed``). A request the server refused or an
        unexpected error is recorded but not stored. ``validate`` is re-applied to cached
        answers; a cached answer it rejects is computed again. Identical requests are
        computed once.
        """
        items = [r if isinstance(r, Request) else Request(r) for r in requests]
        keys = [self.key(r) for r in items]
        results: list[Result | None] = [None] * len(items)
        stored = self.cache.get_many(keys) if self.cache is not None else {}
        todo: dict[str, list[int]] = {}
        for i, (request, key) in enumerate(zip(items, keys, strict=True)):
            row = stored.get(key)
            hit = None if row is None else self.from_row(row, request, validate, retry_failed)
            if hit is None:
                todo.setdefault(key, []).append(i)
            else:
                results[i] = hit
        n_cached = len(items) - sum(len(idx) for idx in todo.values())
        label = desc or f"{self.backend}:{self.model_id}"
        show = (self.progress if progress is None else progress) and len(items) > 1
        started = time.perf_counter()
        work = [(key, items[idx[0]]) for key, idx in todo.items()]
        with progress_bar(label, len(items), enabled=show) as bar:
            bar.advance(n_cached)
            for key, result, storable in self._compute(work, validate):
                if storable:
                    self._store(key, items[todo[key][0]].kind, result)
                for n, i in enumerate(todo[key]):
                    results[i] = replace(result, id=items[i].id, cached=n > 0)
                bar.advance(len(todo[key]))
        done = [r for r in results if r is not None]
        if len(items) > 1:
            elapsed = time.perf_counter() - started
            log.info(
                "%s: %d items, %d from cache, %d failed, %.1f s (%.2f computed items/s)",
                label,
                len(items),
                n_cached,
                sum(not r.ok for r in done),
                elapsed,
                len(work) / elapsed if work and elapsed > 0 else 0.0,
            )
        return done

    # -- internals ------------------------------------------------------------------------

    def _check(self, request: Request) -> None:
        if request.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {request.max_tokens}")
        if request.schema is not None:
            check_schema_valid(request.schema)
        if request.labels is not None and (
            len(request.labels) < 2
            or len(set(request.labels)) != len(request.labels)
            or not all(request.labels)
        ):
            raise ConfigError(f"labels must be >= 2 distinct non-empty strings: {request.labels}")

    def _compute(
        self, work: list[tuple[str, Request]], validate: Validator | None
    ) -> Iterator[tuple[str, Result, bool]]:
        """Solve ``work`` (at most ``concurrency`` at a time), yielding as items finish."""
        if self.concurrency <= 1 or len(work) <= 1:
            for key, request in work:
                yield key, *self._solve(key, request, validate)
            return
        pending = iter(work)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            running: dict[Future[tuple[Result, bool]], str] = {}
            while True:  # keep at most `concurrency` requests in flight, none queued
                for key, request in islice(pending, self.concurrency - len(running)):
                    running[pool.submit(self._solve, key, request, validate)] = key
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield running.pop(future), *future.result()

    def _prepare(self, key: str, request: Request) -> Pending | tuple[Result, bool]:
        """The request's messages, fitted to the context; or its failed result (and
        whether it may be cached) when it cannot be asked at all."""
        result = Result(request.id, key, ok=False)
        messages = build_messages(request.prompt, request.system)
        if not any(m["content"].strip() for m in messages if m["role"] == "user"):
            result.error = "empty prompt"
            return result, False
        started = time.perf_counter()
        try:
            answer_tokens = 1 if request.labels else request.max_tokens
            messages, result.truncated = self._fit(messages, answer_tokens)
        except LLMOutputError as exc:
            result.error = str(exc)
            return result, True
        return Pending(key, request, result, messages, started)

    def _solve(self, key: str, request: Request, validate: Validator | None) -> tuple[Result, bool]:
        """Compute one request; the flag says whether the outcome may be cached."""
        item = self._prepare(key, request)
        if isinstance(item, tuple):
            return item
        result, storable = item.result, True
        try:
            if request.labels:
                self._solve_labels(result, item.messages, request, validate)
            else:
                self._solve_text(result, item.messages, request, validate)
        except LLMOutputError as exc:
            result.ok, result.error = False, str(exc)
        except LLMRequestError as exc:
            log.warning("item %s refused: %s", request.id or key[:12], exc)
            result.ok, result.error, storable = False, str(exc), False
        except KnowrecError:  # an unreachable server, a bad setting: stop the batch
            raise
        except Exception as exc:  # the batch goes on; the item is not stored
            log.warning("item %s failed: %s: %s", request.id or key[:12], type(exc).__name__, exc)
            result.ok, result.error, storable = False, f"{type(exc).__name__}: {exc}", False
        return item.finish(), storable

    def _fit(self, messages: list[Message], answer_tokens: int) -> tuple[list[Message], bool]:
        """Cut the first user message by tokens (at its end) so that prompt + answer fit."""
        if self.context_tokens is None:
            return messages, False
        budget = self.context_tokens - answer_tokens
        if self.count_message_tokens(messages) <= budget:
            return messages, False
        i = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
        fitted = [dict(m) for m in messages]
        for _ in range(4):  # token counts of a cut text can shift by a token or two
            over = self.count_message_tokens(fitted) - budget
            if over <= 0:
                log.warning("prompt truncated to fit the context of %d tokens", budget)
                return fitted, True
            keep = -1 if i is None else self.count_tokens(fitted[i]["content"]) - over - 2
            if keep <= 0:
                break
            fitted[i]["content"] = self.truncate_tokens(fitted[i]["content"], keep)
        raise LLMOutputError(
            f"prompt does not fit the context of {self.context_tokens} tokens with "
            f"{answer_tokens} answer tokens, even with the user text truncated"
        )

    def _count_call(self) -> None:
        with self._calls_lock:
            self.calls += 1

    def _solve_labels(
        self, result: Result, messages: list[Message], request: Request, validate: Validator | None
    ) -> None:
        assert request.labels is not None
        self._count_call()
        result.attempts = 1
        logprobs, completion = self._label_logprobs(messages, request.labels, seed=request.seed)
        self._accept_labels(result, logprobs, completion, request, validate)

    def _accept_labels(
        self,
        result: Result,
        logprobs: Mapping[str, float],
        completion: Completion,
        request: Request,
        validate: Validator | None,
    ) -> None:
        """Record a label answer (log-probabilities) in ``result``."""
        assert request.labels is not None
        self._add_stats(result, completion)
        result.raw = normalise_logprobs(logprobs, request.labels)
        result.text = json.dumps(result.raw)
        result.value = self._validated(result.raw, validate)
        result.ok = True

    def _solve_text(
        self, result: Result, messages: list[Message], request: Request, validate: Validator | None
    ) -> None:
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                messages = self._retry_messages(messages, result, request)
            self._count_call()
            result.attempts = attempt
            completion = self._complete(
                messages,
                schema=request.schema,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                seed=request.seed,
            )
            if self._accept(result, completion, request, validate):
                return
        raise LLMOutputError(result.error or "no answer")

    def _retry_messages(
        self, messages: list[Message], result: Result, request: Request
    ) -> list[Message]:
        """The conversation re-asking after a rejected answer, showing it and why."""
        nudge = [
            {"role": "assistant", "content": result.text or ""},
            {"role": "user", "content": _nudge(str(result.error), request.schema)},
        ]
        return self._fit([*messages, *nudge], request.max_tokens)[0]

    def _accept(
        self, result: Result, completion: Completion, request: Request, validate: Validator | None
    ) -> bool:
        """Record one attempt's answer in ``result``; True when it parsed and validated."""
        self._add_stats(result, completion)
        result.text = completion.text
        try:
            result.raw = self._parse(completion.text, request.schema)
            result.value = self._validated(result.raw, validate)
        except LLMOutputError as exc:
            result.error = str(exc)
            if completion.finish_reason == "length":
                result.error += f" (answer cut at max_tokens={request.max_tokens})"
            log.debug("attempt %d rejected: %s", result.attempts, result.error)
            return False
        result.ok, result.error = True, None
        return True

    @staticmethod
    def _parse(text: str, schema: Mapping[str, Any] | None) -> Any:
        if schema is None:
            if not text.strip():
                raise LLMOutputError("empty answer")
            return text
        value = parse_json(text)
        check_schema(value, schema)
        return value

    @staticmethod
    def _validated(value: Any, validate: Validator | None) -> Any:
        if validate is None:
            return value
        try:
            out = validate(value)
        except LLMOutputError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise LLMOutputError(f"rejected by the validator: {exc}") from None
        return value if out is None else out

    @staticmethod
    def _add_stats(result: Result, completion: Completion) -> None:
        for name in STATS:
            got = getattr(completion, name)
            if got is not None:
                setattr(result, name, (getattr(result, name) or 0) + got)

    def _store(self, key: str, kind: str, result: Result) -> None:
        if self.cache is None:
            return
        self.cache.put(key, self.cache_row(kind, result))

    def cache_row(self, kind: str, result: Result) -> dict[str, Any]:
        """The row a result is stored as in a :class:`ResultCache` (``kind`` is the
        request's); :meth:`from_row` reads it back."""
        return {
            "backend": self.backend,
            "model": self.model_id,
            "kind": kind,
            "status": "ok" if result.ok else "failed",
            "text": result.text,
            "value": json.dumps(result.raw) if result.ok else None,
            "error": result.error,
            "attempts": result.attempts,
            "truncated": result.truncated,
            "total_ms": result.total_ms,
            **{name: getattr(result, name) for name in STATS},
        }

    def answer(
        self, work: Sequence[tuple[str, Request]], validate: Validator | None = None
    ) -> Iterator[tuple[str, Result, dict[str, Any] | None]]:
        """Compute (key, request) pairs without the cache (as :meth:`map` does), yielding
        as items finish: the key, the result and its :meth:`cache_row` — None for an
        outcome :meth:`map` would not store (a refused request, an unexpected error)."""
        kinds = {key: request.kind for key, request in work}
        for key, result, storable in self._compute(list(work), validate):
            yield key, result, self.cache_row(kinds[key], result) if storable else None

    def from_row(
        self,
        row: Mapping[str, Any],
        request: Request,
        validate: Validator | None,
        retry_failed: bool,
    ) -> Result | None:
        """A cached row as a result; None when it must be computed again."""
        result = Result(
            request.id,
            row["key"],
            ok=row["status"] == "ok",
            text=row["text"],
            error=row["error"],
            cached=True,
            attempts=row["attempts"] or 0,
            truncated=bool(row["truncated"]),
            total_ms=row["total_ms"],
            **{name: row[name] for name in STATS},
        )
        if not result.ok:
            return None if retry_failed else result
        result.raw = json.loads(row["value"])
        try:
            result.value = self._validated(result.raw, validate)
        except LLMOutputError:
            return None
        return result
