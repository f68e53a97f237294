"""The ``transformers`` backend: batched generation with Hugging Face transformers on a GPU.

For bulk jobs (knowledge tables, judge labels) on a machine with an accelerator and no
server: the same GGUF model as the local backend (dequantised by transformers, which
needs the ``gguf`` and ``accelerate`` packages) or any local Hugging Face model folder.
:meth:`LLM.map` runs the requests in batches of ``batch_size`` prompts of similar length;
answers that fail to parse are re-asked together in the next round, as the other
backends re-ask them one by one. JSON schemas are not enforced while decoding (answers
are parsed, repaired and validated as everywhere else), so the cache key carries the
backend name and answers never mix with the llama.cpp backend's.

    llm = make_llm("transformers", device="cuda", batch_size=64, cache="llm.sqlite")
    llm.map(requests)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from knowrec.errors import ConfigError, KnowrecError, LLMOutputError
from knowrec.llm.base import LLM, Completion, Message, Pending, Request, Result, Validator
from knowrec.llm.cache import ResultCache
from knowrec.llm.models import DEFAULT_MODEL, MODELS, resolve_model_path

log = logging.getLogger(__name__)


class TransformersLLM(LLM):
    """A causal LM through ``transformers``, batched (see the module docstring).

    ``model`` is a known GGUF name, a ``.gguf`` path or a Hugging Face model folder;
    ``device`` defaults to CUDA when available; ``dtype`` to bfloat16 on CUDA and float32
    on the CPU. Weights load on the first call, not in the constructor.
    """

    backend = "transformers"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 32,
        model_dir: str | Path | None = None,
        cache: str | Path | ResultCache | None = None,
        retries: int = 1,
        progress: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        path = Path(model).expanduser()
        self.path = path if path.is_dir() else resolve_model_path(model, model_dir)
        super().__init__(model, cache=cache, retries=retries, progress=progress)
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def model_id(self) -> str:
        if self.model in MODELS:
            return self.model
        return (
            self.path.name if self.path.is_dir() else f"{self.path.name}:{self.path.stat().st_size}"
        )

    # -- loading ------------------------------------------------------------------------------

    def _source(self) -> tuple[str, dict[str, Any]]:
        if self.path.is_dir():
            return str(self.path), {}
        return str(self.path.parent), {"gguf_file": self.path.name}

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            try:
                from transformers import AutoTokenizer
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ConfigError(f"the transformers backend needs transformers: {exc}") from None
            where, extra = self._source()
            tok = AutoTokenizer.from_pretrained(where, **extra)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            if not getattr(tok, "chat_template", None):
                raise ConfigError(f"{self.path} has no chat template; use an instruct model")
            self._tokenizer = tok
        return self._tokenizer

    @property
    def lm(self) -> Any:
        """The loaded model (loaded on first use)."""
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            name = self.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
            where, extra = self._source()
            started = time.perf_counter()
            model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, name), **extra)
            self._model = model.to(device).eval()
            self.device = device
            self.context_tokens = int(getattr(model.config, "max_position_embeddings", 0)) or None
            log.info(
                "%s loaded on %s in %.0f s", self.path.name, device, time.perf_counter() - started
            )
        return self._model

    # -- tokens -------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0

    def truncate_tokens(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])

    def count_message_tokens(self, messages: list[Message]) -> int:
        return len(self._render([messages])[0])

    def _render(self, batch: Sequence[list[Message]]) -> list[list[int]]:
        texts = [
            self.tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
            for m in batch
        ]
        return [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]

    # -- generation ---------------------------------------------------------------------------

    def _inputs(self, batch: Sequence[list[Message]]) -> tuple[Any, Any, list[int]]:
        """Left-padded ids and attention mask of a batch of chat prompts, and their lengths."""
        import torch

        rows = self._render(batch)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        return ids.to(self.device), mask.to(self.device), [len(r) for r in rows]

    def _generate(
        self,
        batch: Sequence[list[Message]],
        max_tokens: Sequence[int],
        temperature: float,
        seed: int,
    ) -> list[Completion]:
        import torch

        model = self.lm
        ids, mask, lengths = self._inputs(batch)
        stops = set(_as_list(model.generation_config.eos_token_id))
        stops.add(self.tokenizer.eos_token_id)
        options: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            torch.manual_seed(seed)
            options = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max(max_tokens),
                pad_token_id=self.tokenizer.pad_token_id,
                **options,
            )
        share = (time.perf_counter() - started) * 1000 / len(batch)
        completions = []
        for row, n_prompt, limit in zip(
            out[:, ids.shape[1] :].tolist(), lengths, max_tokens, strict=True
        ):
            end = next((i for i, t in enumerate(row) if t in stops), None)
            cut = row[: limit if end is None else min(end, limit)]
            reason = "stop" if end is not None and end <= limit else "length"
            text = self.tokenizer.decode(cut, skip_special_tokens=True)
            completions.append(Completion(text, n_prompt, len(cut), n_prompt, None, share, reason))
        return completions

    def _complete(
        self,
        messages: list[Message],
        *,
        schema: Mapping[str, Any] | None,
        max_tokens: int,
        temperature: float,
        seed: int,
    ) -> Completion:
        return self._generate([messages], [max_tokens], temperature, seed)[0]

    def _label_ids(self, labels: Sequence[str]) -> list[int]:
        ids = []
        for label in labels:
            tokens = self.tokenizer.encode(label, add_special_tokens=False)
            if len(tokens) != 1:
                raise ConfigError(f"label {label!r} is not one token for {self.model_id}")
            ids.append(tokens[0])
        return ids

    def _label_batch(
        self, batch: Sequence[list[Message]], labels: Sequence[str]
    ) -> list[tuple[dict[str, float], Completion]]:
        import torch

        label_ids = self._label_ids(labels)
        ids, mask, lengths = self._inputs(batch)
        started = time.perf_counter()
        with torch.inference_mode():
            logits = self.lm(input_ids=ids, attention_mask=mask).logits[:, -1, :].float()
        logprobs = torch.log_softmax(logits, dim=-1)[:, label_ids].tolist()
        share = (time.perf_counter() - started) * 1000 / len(batch)
        return [
            (dict(zip(labels, row, strict=True)), Completion("", n, 0, n, share, 0.0, "stop"))
            for row, n in zip(logprobs, lengths, strict=True)
        ]

    def _label_logprobs(
        self, messages: list[Message], labels: Sequence[str], *, seed: int
    ) -> tuple[dict[str, float], Completion]:
        return self._label_batch([messages], labels)[0]

    # -- batches ------------------------------------------------------------------------------

    def _compute(
        self, work: list[tuple[str, Request]], validate: Validator | None
    ) -> Iterator[tuple[str, Result, bool]]:
        """Batches of similar prompt length; each answer is yielded when its item is done."""
        items: list[Pending] = []
        for key, request in work:
            item = self._prepare(key, request)
            if isinstance(item, tuple):
                yield key, *item
            else:
                items.append(item)
        items.sort(key=lambda it: (it.request.kind, sum(len(m["content"]) for m in it.messages)))
        started = time.perf_counter()
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            log.info(
                "batch at %d of %d items, %.0f s", start, len(items), time.perf_counter() - started
            )
            try:
                self._run_batch(chunk, validate)
            except KnowrecError:
                raise
            except Exception as exc:  # e.g. out of memory: the items are not stored
                log.warning("a batch of %d failed: %s: %s", len(chunk), type(exc).__name__, exc)
                for it in chunk:
                    it.result.ok, it.result.error = False, f"{type(exc).__name__}: {exc}"
                    yield it.key, it.finish(), False
                continue
            for it in chunk:
                yield it.key, it.finish(), True

    def _prepare(self, key: str, request: Request) -> Pending | tuple[Result, bool]:
        self.lm  # noqa: B018 - loads the model, which sets the context window
        return super()._prepare(key, request)

    def _run_batch(self, chunk: list[Pending], validate: Validator | None) -> None:
        labelled = [it for it in chunk if it.request.labels]
        for labels in {it.request.labels for it in labelled}:
            group = [it for it in labelled if it.request.labels == labels]
            assert labels is not None
            for it, (logprobs, completion) in zip(
                group, self._label_batch([it.messages for it in group], labels), strict=True
            ):
                self._count_call()
                it.result.attempts = 1
                try:
                    self._accept_labels(it.result, logprobs, completion, it.request, validate)
                except LLMOutputError as exc:
                    it.result.error = str(exc)
        pending = [it for it in chunk if not it.request.labels]
        for attempt in range(1, self.retries + 2):
            for (temperature, seed), group in _groups(pending).items():
                answers = self._generate(
                    [it.messages for it in group],
                    [it.request.max_tokens for it in group],
                    temperature,
                    seed,
                )
                for it, completion in zip(group, answers, strict=True):
                    self._count_call()
                    it.result.attempts = attempt
                    self._accept(it.result, completion, it.request, validate)
            pending = [it for it in pending if not it.result.ok]
            if attempt <= self.retries:
                for it in pending:
                    it.messages = self._retry_messages(it.messages, it.result, it.request)


def _groups(items: list[Pending]) -> dict[tuple[float, int], list[Pending]]:
    out: dict[tuple[float, int], list[Pending]] = {}
    for it in items:
        out.setdefault((it.request.temperature, it.request.seed), []).append(it)
    return out


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [int(value)]
