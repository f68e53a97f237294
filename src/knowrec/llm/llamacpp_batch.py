"""Continuous batching over llama.cpp's low-level API: many prompts decoded together.

One llama.cpp context holds ``n_seq`` sequences (slots). A job (a prompt's tokens and
what to do with them) takes a free slot. Its KV cache starts as a copy of the longest
prefix already evaluated in any slot (the fixed instructions every prompt of a template
shares, evaluated once; the trigger and candidate a judge's personas share; the first
conversation a retry repeats), so only the rest of the prompt is evaluated. Jobs admitted
together are prefilled in order, each able to start from the ones before it. Then every
step decodes one token of every generating slot in one ``llama_decode``, and a finished
slot takes the next job at once.

Greedy decoding with a grammar (a JSON schema) checks the unconstrained argmax against the
grammar first and constrains the whole vocabulary only when it is rejected: the same token
as constraining first, without scanning ~150k tokens against the grammar at every step.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from knowrec.errors import ConfigError, LLMError

_CANDIDATE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


@dataclass(eq=False)
class Job:
    """One prompt for :class:`BatchDecoder`.

    ``max_tokens`` > 0 generates up to that many tokens (constrained by the GBNF
    ``grammar`` when given); ``labels`` (token ids) instead reads the log-probabilities of
    those tokens as the next token, with no generation. ``tag`` is the caller's.
    Filled in by the decoder: ``out`` (generated token ids), ``logprobs``,
    ``finish_reason`` (``stop`` or ``length``), ``prompt_eval_tokens`` (tokens actually
    evaluated) and the job's share of the decoding time in ``prompt_ms`` / ``gen_ms``.
    """

    tokens: Sequence[int]
    max_tokens: int = 0
    grammar: str | None = None
    labels: Sequence[int] | None = None
    temperature: float = 0.0
    seed: int = 0
    tag: Any = None
    out: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    finish_reason: str | None = None
    prompt_eval_tokens: int = 0
    prompt_ms: float = 0.0
    gen_ms: float = 0.0
    _sampler: Any = None  # grammar sampler (fast greedy) or a whole chain
    _chain: bool = False


PENALTY_LAST_N = 64  # generated tokens the repetition penalty looks back on


def penalize(logits: np.ndarray, recent: Sequence[int], penalty: float) -> np.ndarray:
    """llama.cpp's repetition penalty: each token seen in ``recent`` has its logit divided
    by ``penalty`` when positive, multiplied when not (a copy; ``logits`` is left as is)."""
    out = logits.copy()
    seen = np.unique(np.asarray(recent, dtype=np.int64))
    values = out[seen]
    out[seen] = np.where(values <= 0, values * np.float32(penalty), values / np.float32(penalty))
    return out


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class BatchDecoder:
    """``n_seq`` sequences of up to ``n_ctx_seq`` tokens each in one llama.cpp context.

    ``model`` is a loaded ``llama_cpp.Llama`` (its weights are shared, not copied).
    ``kv_unified`` puts all sequences in one KV buffer (a shared prefix is then stored
    once, but every token attends over the whole buffer); the default gives every
    sequence its own (a shared prefix is copied).
    """

    def __init__(
        self,
        model: Any,
        *,
        n_seq: int,
        n_ctx_seq: int,
        n_threads: int,
        n_batch: int = 512,
        kv_unified: bool = False,
        repeat_penalty: float = 1.0,
    ) -> None:
        import llama_cpp

        if n_seq < 1:
            raise ConfigError(f"parallel must be >= 1, got {n_seq}")
        self._lib = lib = llama_cpp
        self.n_seq = n_seq
        self.repeat_penalty = repeat_penalty
        params = lib.llama_context_default_params()
        params.n_seq_max = n_seq
        params.n_ctx = n_ctx_seq * n_seq
        params.n_batch = params.n_ubatch = max(n_batch, n_seq)
        params.n_threads = params.n_threads_batch = n_threads
        params.kv_unified = kv_unified
        self.n_batch = int(params.n_batch)
        self.capacity = n_ctx_seq  # tokens of one sequence
        self.ctx = lib.llama_init_from_model(model._model.model, params)
        if not self.ctx:
            raise LLMError(
                f"llama.cpp could not create a context for {n_seq} sequences of "
                f"{n_ctx_seq} tokens (memory?): lower parallel or n_ctx"
            )
        self.mem = lib.llama_get_memory(self.ctx)
        self.vocab = model._model.vocab
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        self.batch = lib.llama_batch_init(self.n_batch, 0, 1)
        self.seqs: list[list[int]] = [[] for _ in range(n_seq)]  # tokens in each sequence's KV
        self._candidates = np.zeros(self.n_vocab, dtype=_CANDIDATE)
        self._candidates["id"] = np.arange(self.n_vocab)
        self._one = (lib.llama_token_data * 1)()

    def close(self) -> None:
        """Free the context and the batch."""
        if getattr(self, "ctx", None):
            self._lib.llama_batch_free(self.batch)
            self._lib.llama_free(self.ctx)
            self.ctx = None

    # -- the loop ---------------------------------------------------------------------------

    def run(self, queue: deque[Job]) -> Iterator[Job]:
        """Run the jobs of ``queue`` (the caller may append more while iterating), yielding
        each job when it is finished."""
        active: dict[int, Job] = {}  # slot -> job whose next token is to be decoded
        step_token: dict[int, int] = {}
        try:
            while queue or active:
                free = [s for s in range(self.n_seq) if s not in active]
                new: list[tuple[int, Job]] = []
                while free and queue:
                    job = queue.popleft()
                    self._check(job)
                    slot = max(free, key=lambda s: common_prefix(self.seqs[s], job.tokens))
                    free.remove(slot)
                    new.append((slot, job))
                if new:
                    self._admit(new)
                    for slot, job in new:
                        active[slot], step_token[slot] = job, job.tokens[-1]
                slots = sorted(active)
                started = time.perf_counter()
                self._decode([(s, [step_token[s]], len(self.seqs[s])) for s in slots], logits=True)
                share = (time.perf_counter() - started) * 1000 / len(slots)
                for i, slot in enumerate(slots):
                    job = active[slot]
                    if job.out:
                        job.gen_ms += share
                    else:
                        job.prompt_ms += share  # the step that decoded the prompt's last token
                    if self._next(job, slot, i, step_token):
                        del active[slot]
                        self._release(job)
                        yield job
        finally:  # a stopped run (an error, the caller gave up): free the samplers
            for job in active.values():
                self._release(job)

    def _check(self, job: Job) -> None:
        if not job.tokens:
            raise ConfigError("empty prompt")
        if len(job.tokens) + max(job.max_tokens, 1) > self.capacity:
            raise ConfigError(
                f"prompt of {len(job.tokens)} tokens + {job.max_tokens} answer tokens "
                f"exceeds the context of {self.capacity}"
            )
        job.out, job.logprobs, job.finish_reason = [], None, None
        job.prompt_eval_tokens, job.prompt_ms, job.gen_ms = 0, 0.0, 0.0
        if job.max_tokens > 0:
            job._sampler, job._chain = self._sampler(job)

    def _next(self, job: Job, slot: int, index: int, step_token: dict[int, int]) -> bool:
        """Read the job's logits at batch ``index``; True when the job is finished."""
        lib = self._lib
        if job.labels is not None:
            logits = self._logits(index).astype(np.float64)
            top = logits.max()
            log_z = top + math.log(float(np.exp(logits - top).sum()))
            job.logprobs = [float(logits[t] - log_z) for t in job.labels]
            job.finish_reason = "stop"
            return True
        if job._chain:
            token = int(lib.llama_sampler_sample(job._sampler, self.ctx, index))
        else:
            token = self._greedy(job, index)
        if lib.llama_vocab_is_eog(self.vocab, token):
            job.finish_reason = "stop"
            return True
        job.out.append(token)
        if len(job.out) >= job.max_tokens or len(self.seqs[slot]) + 1 >= self.capacity:
            job.finish_reason = "length"
            return True
        step_token[slot] = token
        return False

    # -- KV cache ---------------------------------------------------------------------------

    def _admit(self, new: list[tuple[int, Job]]) -> None:
        """Start the KV cache of each new job from the longest evaluated prefix and
        evaluate the rest of its prompt but the last token (decoded in the next step)."""
        lib, mem = self._lib, self.mem
        for slot, job in new:  # in order: a job may start from one admitted before it
            shared = {s: common_prefix(self.seqs[s], job.tokens) for s in range(self.n_seq)}
            source = max(shared, key=lambda s: (shared[s], s == slot))
            keep = min(shared[source], len(job.tokens) - 1)
            if source != slot and keep > 0:
                lib.llama_memory_seq_rm(mem, slot, -1, -1)
                lib.llama_memory_seq_cp(mem, source, slot, -1, -1)
            lib.llama_memory_seq_rm(mem, slot, keep, -1)
            self.seqs[slot] = list(job.tokens[:keep])
            job.prompt_eval_tokens += len(job.tokens) - keep
            if len(job.tokens) - 1 > keep:
                started = time.perf_counter()
                self._decode([(slot, list(job.tokens[keep:-1]), keep)], logits=False)
                job.prompt_ms += (time.perf_counter() - started) * 1000

    def _decode(self, parts: list[tuple[int, list[int], int]], *, logits: bool) -> None:
        """Evaluate ``(seq, tokens, first position)`` parts in batches of ``n_batch``
        tokens; with ``logits`` every token's logits are kept (batch index = part order)."""
        lib, b = self._lib, self.batch
        flat = [(seq, tok, start + i) for seq, toks, start in parts for i, tok in enumerate(toks)]
        if logits and len(flat) > self.n_batch:
            raise LLMError("more sequences than the batch holds")
        for begin in range(0, len(flat), self.n_batch):
            chunk = flat[begin : begin + self.n_batch]
            for i, (seq, tok, pos) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i] = tok, pos, 1
                b.seq_id[i][0] = seq
                b.logits[i] = logits
            b.n_tokens = len(chunk)
            code = lib.llama_decode(self.ctx, b)
            if code != 0:  # the KV cache no longer matches `seqs`: drop these sequences
                for seq, _, _ in parts:
                    lib.llama_memory_seq_rm(self.mem, seq, -1, -1)
                    self.seqs[seq] = []
                raise LLMError(f"llama_decode failed (code {code}) on {len(chunk)} tokens")
        for seq, toks, _ in parts:
            self.seqs[seq].extend(toks)

    # -- sampling ---------------------------------------------------------------------------

    def _logits(self, index: int) -> np.ndarray:
        pointer = self._lib.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,)
        )

    def _sampler(self, job: Job) -> tuple[Any, bool]:
        """The grammar sampler alone (greedy fast path, which applies any repetition
        penalty itself) or, with a temperature, a whole chain as llama-cpp-python builds it."""
        lib = self._lib
        grammar = None
        if job.grammar is not None:
            grammar = lib.llama_sampler_init_grammar(self.vocab, job.grammar.encode(), b"root")
            if not grammar:
                raise ConfigError("llama.cpp rejected the grammar of the JSON schema")
        if job.temperature == 0:
            return grammar, False
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if self.repeat_penalty != 1.0:
            penalties = lib.llama_sampler_init_penalties(
                self.n_vocab, PENALTY_LAST_N, self.repeat_penalty, 0.0, 0.0
            )  # this llama.cpp's signature starts with the vocabulary size
            lib.llama_sampler_chain_add(chain, penalties)
        if grammar is not None:
            lib.llama_sampler_chain_add(chain, grammar)
        for sampler in (
            lib.llama_sampler_init_top_k(40),
            lib.llama_sampler_init_top_p(0.95, 1),
            lib.llama_sampler_init_min_p(0.05, 1),
            lib.llama_sampler_init_temp(job.temperature),
            lib.llama_sampler_init_dist(job.seed),
        ):
            lib.llama_sampler_chain_add(chain, sampler)
        return chain, True

    def _greedy(self, job: Job, index: int) -> int:
        """The argmax token after the repetition penalty, constrained by the job's grammar
        sampler (None: unconstrained)."""
        lib, grammar = self._lib, job._sampler
        logits = self._logits(index)
        if self.repeat_penalty != 1.0 and job.out:
            logits = penalize(logits, job.out[-PENALTY_LAST_N:], self.repeat_penalty)
        token = int(logits.argmax())
        if grammar is None:
            return token
        one = self._one
        one[0].id, one[0].logit, one[0].p = token, logits[token], 0.0
        array = lib.llama_token_data_array(one, 1, -1, False)
        lib.llama_sampler_apply(grammar, ctypes.byref(array))
        if not math.isfinite(one[0].logit):  # rejected: constrain the whole vocabulary
            cand = self._candidates
            cand["logit"] = logits
            cand["p"] = 0.0
            data = cand.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
            array = lib.llama_token_data_array(data, self.n_vocab, -1, False)
            lib.llama_sampler_apply(grammar, ctypes.byref(array))
            best = int(cand["logit"].argmax())
            if not math.isfinite(cand["logit"][best]):
                return int(lib.llama_vocab_eos(self.vocab))  # the grammar allows nothing
            token = int(cand["id"][best])
        lib.llama_sampler_accept(grammar, token)
        return token

    def _release(self, job: Job) -> None:
        if job._sampler is not None:
            self._lib.llama_sampler_free(job._sampler)
            job._sampler = None
