"""Local GGUF models through llama-cpp-python (the default backend).

One ``Llama`` instance lives as long as the object. :meth:`LLM.map` decodes up to
``parallel`` prompts together (:mod:`knowrec.llm.llamacpp_batch`: continuous batching, a
shared prompt prefix evaluated once, one JSON-schema grammar per sequence); on two CPU
cores 16 sequences generate ~2.5x the tokens/s of one (BENCHMARKS.md). ``parallel=1`` is
the sequential path through llama-cpp-python's chat completion: with ``prefix_reuse`` (the
default) its KV cache is never ``reset()`` between prompts, so consecutive prompts that
share a prefix (fixed instructions first, the item last) evaluate only their new tokens.
Calls are serialised by a lock per context. llama.cpp's own log lines go to the Python
logger ``knowrec.llm.native`` at DEBUG level (``verbose=True`` prints them).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowrec.errors import ConfigError, LLMOutputError
from knowrec.llm.base import LLM, Completion, Message, Pending, Request, Result, Validator
from knowrec.llm.cache import ResultCache
from knowrec.llm.llamacpp_batch import BatchDecoder, Job
from knowrec.llm.models import DEFAULT_MODEL, MODELS, resolve_model_path

#: Sequences decoded together by default (the sweep in BENCHMARKS.md).
DEFAULT_PARALLEL = 16
_native_log = logging.getLogger("knowrec.llm.native")
_log_callback: Any = None  # kept alive: llama.cpp holds a pointer to it


def _import_llama_cpp() -> Any:
    global _log_callback
    # Idle OpenMP threads sleep instead of spinning: on a busy machine spinning threads
    # steal the cores the others need (3.5x slower measured with 2 threads under load).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "the llamacpp backend needs llama-cpp-python: pip install llama-cpp-python==0.3.36"
        ) from exc
    if _log_callback is None:

        @llama_cpp.llama_log_callback
        def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            _native_log.debug("%s", text.decode("utf-8", errors="replace").rstrip("\n"))

        _log_callback = _callback
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
    return llama_cpp


class GGUFTokenizer:
    """Exact token counts and cuts with a GGUF model's tokenizer.

    ``source`` is a loaded ``llama_cpp.Llama`` or a model (known name or ``.gguf`` path),
    of which only the vocabulary is loaded (fast, a few MB).
    """

    def __init__(self, source: Any, model_dir: str | Path | None = None) -> None:
        if isinstance(source, str | Path):
            llama_cpp = _import_llama_cpp()
            path = resolve_model_path(str(source), model_dir)
            source = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        self.llama = source
        self._lock = threading.Lock()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of plain ``text`` (no BOS; special tokens are not parsed)."""
        with self._lock:
            return list(self.llama.tokenize(text.encode(), add_bos=False, special=False))

    def count(self, text: str) -> int:
        """Number of tokens of ``text``."""
        return len(self.tokenize(text)) if text else 0

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to its first ``max_tokens`` tokens."""
        if max_tokens <= 0:
            return ""
        tokens = self.tokenize(text)
        if len(tokens) <= max_tokens:
            return text
        with self._lock:
            return self.llama.detokenize(tokens[:max_tokens]).decode("utf-8", errors="ignore")


class LlamaCppLLM(LLM):
    """A GGUF model run in-process by llama.cpp.

    ``model`` is a known name (see ``knowrec llm list``; assembled on first use) or the
    path of a ``.gguf`` file. ``n_ctx`` is the context window (prompt + answer; longer
    prompts are truncated by tokens), ``n_threads`` defaults to all cores,
    ``repeat_penalty`` is llama.cpp's (1.0 = none, as an OpenAI server does by default),
    ``parallel`` is the number of prompts :meth:`map` decodes together (1: the sequential
    path), ``kv_unified`` stores them in one KV buffer instead of one each (see
    :class:`~knowrec.llm.llamacpp_batch.BatchDecoder`), ``prefix_reuse=False`` resets the
    sequential path's KV cache before every call. ``verbose`` prints llama.cpp's log.
    """

    backend = "llamacpp"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        repeat_penalty: float = 1.0,
        parallel: int = DEFAULT_PARALLEL,
        kv_unified: bool = False,
        prefix_reuse: bool = True,
        model_dir: str | Path | None = None,
        cache: str | Path | ResultCache | None = None,
        retries: int = 1,
        progress: bool = True,
        verbose: bool = False,
    ) -> None:
        llama_cpp = _import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if n_ctx < 64:
            raise ConfigError(f"n_ctx must be >= 64, got {n_ctx}")
        if parallel < 1:
            raise ConfigError(f"parallel must be >= 1, got {parallel}")
        if verbose:
            _native_log.setLevel(logging.DEBUG)
            if not logging.getLogger().handlers:
                logging.basicConfig()
        self.path = resolve_model_path(model, model_dir)
        super().__init__(model, cache=cache, retries=retries, progress=progress)
        self._lib = llama_cpp
        threads = self.threads = n_threads or os.cpu_count() or 1
        self._llm = llama_cpp.Llama(
            model_path=str(self.path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=n_batch,
            logits_all=False,
            verbose=verbose,
        )
        self.context_tokens = self._llm.n_ctx()
        self.repeat_penalty = repeat_penalty
        self.parallel, self.kv_unified = parallel, kv_unified
        self.concurrency = parallel  # callers that batch their requests size them by it
        self.prefix_reuse = prefix_reuse
        self._decoder: BatchDecoder | None = None
        self._grammars: dict[str, str] = {}
        self.tokenizer = GGUFTokenizer(self._llm)
        self._lock = threading.Lock()
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(f"{self.path} has no chat template; use an instruct GGUF model")
        # Generation and label_probs format prompts with the model's own template.
        self._llm.chat_format = "chat_template.default"
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(self._llm.token_eos()),
            bos_token=self._token_text(self._llm.token_bos()),
            stop_token_ids=[self._llm.token_eos()],
        )

    @property
    def model_id(self) -> str:
        """The registry name, or the file name and size of a local file."""
        if self.model in MODELS:
            return self.model
        return f"{self.path.name}:{self.path.stat().st_size}"

    def cache_params(self) -> dict[str, Any]:
        """The repetition penalty changes greedy answers, so it is part of the key."""
        return {"repeat_penalty": self.repeat_penalty}

    # -- tokens -----------------------------------------------------------------------------

    def _token_text(self, token: int) -> str:
        return "" if token < 0 else self._llm._model.token_get_text(token)

    def count_tokens(self, text: str) -> int:
        """Exact token count with the model's tokenizer."""
        return self.tokenizer.count(text)

    def truncate_tokens(self, text: str, max_tokens: int) -> str:
        """``text`` cut to its first ``max_tokens`` tokens."""
        return self.tokenizer.truncate(text, max_tokens)

    def prompt_tokens(self, messages: list[Message]) -> list[int]:
        """The token ids of the chat prompt, template and generation prompt included."""
        formatted = self._formatter(messages=messages)
        return list(
            self._llm.tokenize(
                formatted.prompt.encode(), add_bos=not formatted.added_special, special=True
            )
        )

    def count_message_tokens(self, messages: list[Message]) -> int:
        """Exact tokens of the chat prompt, template included."""
        return len(self.prompt_tokens(messages))

    # -- calls ------------------------------------------------------------------------------

    def _start_call(self) -> None:
        if not self.prefix_reuse:
            self._llm.reset()
        self._lib.llama_perf_context_reset(self._llm.ctx)

    def _perf(self) -> tuple[float, int, float, int]:
        p = self._lib.llama_perf_context(self._llm.ctx)
        return p.t_p_eval_ms, p.n_p_eval, p.t_eval_ms, p.n_eval

    def _complete(
        self,
        messages: list[Message],
        *,
        schema: Mapping[str, Any] | None,
        max_tokens: int,
        temperature: float,
        seed: int,
    ) -> Completion:
        response_format = None if schema is None else {"type": "json_object", "schema": schema}
        with self._lock:
            self._start_call()
            response: Any = self._llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                temperature=temperature,
                seed=seed,
                max_tokens=max_tokens,
                repeat_penalty=self.repeat_penalty,
                response_format=response_format,  # type: ignore[arg-type]
            )
            p_ms, p_n, g_ms, g_n = self._perf()
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens", g_n),
            prompt_eval_tokens=p_n,
            prompt_ms=p_ms,
            gen_ms=g_ms,
            finish_reason=choice.get("finish_reason"),
        )

    def _label_token_ids(self, labels: Sequence[str]) -> list[int]:
        ids = [self.tokenizer.tokenize(label) for label in labels]
        if any(len(t) != 1 for t in ids) or len({t[0] for t in ids}) != len(ids):
            raise ConfigError(
                f"labels {list(labels)} must each be one distinct token (e.g. digits)"
            )
        return [t[0] for t in ids]

    def _label_logprobs(
        self, messages: list[Message], labels: Sequence[str], *, seed: int
    ) -> tuple[dict[str, float], Completion]:
        """Evaluate the prompt and read the next-token logits of the labels' tokens.

        Only the tokens after the prefix shared with the previous prompt are evaluated
        (at least one, so that the logits are fresh); no token is sampled.
        """
        ids = self._label_token_ids(labels)
        tokens = self.prompt_tokens(messages)
        if len(tokens) >= self.context_tokens:
            raise LLMOutputError(f"prompt of {len(tokens)} tokens exceeds the context")
        llm = self._llm
        with self._lock:
            self._start_call()
            keep = 0
            for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), tokens, strict=False):
                if a != b:
                    break
                keep += 1
            llm.n_tokens = min(keep, len(tokens) - 1)  # eval() drops the KV cache after it
            llm.eval(tokens[llm.n_tokens :])
            pointer = self._lib.llama_get_logits_ith(llm.ctx, -1)
            logits = np.ctypeslib.as_array(
                ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(llm.n_vocab(),)
            ).astype(np.float64)
            p_ms, p_n, _, _ = self._perf()
        top = logits.max()
        log_z = top + np.log(np.exp(logits - top).sum())
        logprobs = {lab: float(logits[i] - log_z) for lab, i in zip(labels, ids, strict=True)}
        return logprobs, Completion(
            text="",
            prompt_tokens=len(tokens),
            completion_tokens=0,
            prompt_eval_tokens=p_n,
            prompt_ms=p_ms,
            gen_ms=0.0,
        )

    # -- batched calls (parallel > 1) ----------------------------------------------------

    def _compute(
        self, work: list[tuple[str, Request]], validate: Validator | None
    ) -> Iterator[tuple[str, Result, bool]]:
        """Up to ``parallel`` requests decoded together; a rejected answer is re-asked
        (the nudged conversation) in the next free slot, as the sequential path re-asks."""
        if self.parallel <= 1 or len(work) <= 1:  # one request: no batch context needed
            yield from super()._compute(work, validate)
            return
        queue: deque[Job] = deque()
        for key, request in work:
            item = self._prepare(key, request)
            if isinstance(item, tuple):
                yield key, *item
            else:
                queue.append(self._job(item))
        if not queue:
            return
        with self._lock:
            if self._decoder is None:
                self._decoder = BatchDecoder(
                    self._llm,
                    n_seq=self.parallel,
                    n_ctx_seq=self.context_tokens,
                    n_threads=self.threads,
                    kv_unified=self.kv_unified,
                    repeat_penalty=self.repeat_penalty,
                )
            for job in self._decoder.run(queue):
                item: Pending = job.tag
                request, result = item.request, item.result
                self._count_call()
                result.attempts += 1
                completion = Completion(
                    text=self._llm.detokenize(job.out).decode("utf-8", errors="ignore"),
                    prompt_tokens=len(job.tokens),
                    completion_tokens=len(job.out),
                    prompt_eval_tokens=job.prompt_eval_tokens,
                    prompt_ms=job.prompt_ms,
                    gen_ms=job.gen_ms,
                    finish_reason=job.finish_reason,
                )
                try:
                    if request.labels:
                        logprobs = dict(zip(request.labels, job.logprobs or [], strict=True))
                        self._accept_labels(result, logprobs, completion, request, validate)
                    elif (
                        not self._accept(result, completion, request, validate)
                        and result.attempts <= self.retries
                    ):
                        item.messages = self._retry_messages(item.messages, result, request)
                        queue.append(self._job(item))
                        continue
                except LLMOutputError as exc:
                    result.ok, result.error = False, str(exc)
                yield item.key, item.finish(), True

    def _job(self, item: Pending) -> Job:
        tokens = self.prompt_tokens(item.messages)
        request = item.request
        if request.labels:
            return Job(tokens, labels=self._label_token_ids(request.labels), tag=item)
        schema = request.schema
        return Job(
            tokens,
            max_tokens=request.max_tokens,
            grammar=None if schema is None else self._grammar(schema),
            temperature=request.temperature,
            seed=request.seed,
            tag=item,
        )

    def _grammar(self, schema: Mapping[str, Any]) -> str:
        """The GBNF grammar of a JSON schema, as the sequential path builds it."""
        from llama_cpp.llama_chat_format import _grammar_for_json_schema

        text = json.dumps(schema)
        if text not in self._grammars:
            self._grammars[text] = _grammar_for_json_schema(text)._grammar
        return self._grammars[text]

    def close(self) -> None:
        """Free the model and close the cache."""
        with self._lock:
            if getattr(self, "_decoder", None) is not None:
                self._decoder.close()
                self._decoder = None
            if getattr(self, "_llm", None) is not None:
                self._llm.close()
                self._llm = None  # type: ignore[assignment]
        super().close()
