"""Any OpenAI-compatible chat server over HTTP (vLLM, Ollama, llama.cpp servers, hosted APIs).

``POST {base_url}/chat/completions`` with httpx, from up to ``concurrency`` threads in
:meth:`~knowrec.llm.base.LLM.map`. Connection errors, timeouts, HTTP 408/409/429 and 5xx
are retried with exponential backoff (a ``Retry-After`` header is honoured), then become
one :class:`LLMError` that stops the batch. Other 4xx answers refuse only that request.

JSON-schema output is asked for with ``response_format``; servers spell it differently,
so ``schema_mode`` picks the form:

- ``"json_object"``: ``{"type": "json_object", "schema": S}`` (llama-cpp-python's
  server, which turns it into a grammar);
- ``"json_schema"``: ``{"type": "json_schema", "json_schema": {"name": ..., "schema": S}}``
  (OpenAI, vLLM, Ollama, llama.cpp's ``llama-server``);
- ``"none"``: nothing is sent; the prompt must ask for JSON (parsed and validated anyway).

Label probabilities come from the ``top_logprobs`` of a one-token completion: the server
must support ``logprobs`` (llama-cpp-python's server does only with ``logits_all``, its
default ``--logits_all true``; OpenAI caps ``top_logprobs`` at 20). Labels outside the top
candidates get probability 0.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx

from knowrec.errors import ConfigError, LLMError, LLMOutputError, LLMRequestError
from knowrec.llm.base import LLM, Completion, Message
from knowrec.llm.cache import ResultCache

log = logging.getLogger(__name__)

SchemaMode = Literal["json_object", "json_schema", "none"]
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class OpenAILLM(LLM):
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``model`` is the name the server knows. ``api_key_env`` names the environment variable
    holding the key (sent as a Bearer token when set; local servers usually need none).
    ``timeout`` bounds each read (seconds; a queued request on a busy CPU server waits its
    turn), ``connect_timeout`` the connection. ``http_retries`` extra attempts with waits
    of ``backoff``·2^n seconds (at most ``max_backoff``). ``extra_body`` is merged into
    every request (e.g. ``{"top_k": 1}``) and is part of the cache key.

    Token counts need a tokenizer: ``tokenizer`` is a known model name or a ``.gguf`` path
    whose vocabulary is loaded locally. Without one, counts are estimated at 3 characters
    per token. ``context_tokens``, when given, makes prompts longer than the server's
    context window be truncated (by tokens) before sending.
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        http_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        schema_mode: SchemaMode = "json_object",
        top_logprobs: int = 20,
        extra_body: Mapping[str, Any] | None = None,
        tokenizer: str | None = None,
        context_tokens: int | None = None,
        model_dir: str | Path | None = None,
        cache: str | Path | ResultCache | None = None,
        retries: int = 1,
        progress: bool = True,
    ) -> None:
        if not model:
            raise ConfigError("the openai backend needs a model name (the server's name)")
        if schema_mode not in ("json_object", "json_schema", "none"):
            raise ConfigError(
                f"unknown schema_mode {schema_mode!r}: known are json_object, json_schema, none"
            )
        if concurrency < 1 or http_retries < 0 or timeout <= 0 or top_logprobs < 1:
            raise ConfigError(
                "concurrency and top_logprobs must be >= 1, http_retries >= 0, timeout > 0"
            )
        super().__init__(model, cache=cache, retries=retries, progress=progress)
        self.base_url = base_url.rstrip("/")
        self.concurrency = concurrency
        self.http_retries = http_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.schema_mode = schema_mode
        self.top_logprobs = top_logprobs
        self.extra_body = dict(extra_body or {})
        self.context_tokens = context_tokens
        self.api_key_env = api_key_env
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=concurrency),
        )
        self.tokenizer = None
        if tokenizer is not None:
            from knowrec.llm.llamacpp import GGUFTokenizer

            self.tokenizer = GGUFTokenizer(tokenizer, model_dir)
        self._warned = threading.Event()

    def cache_params(self) -> dict[str, Any]:
        """The request extras, the schema form and the logprob depth change answers."""
        return {
            "extra_body": self.extra_body,
            "schema_mode": self.schema_mode,
            "top_logprobs": self.top_logprobs,
        }

    # -- tokens -----------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Exact with a ``tokenizer``, else an estimate of 3 characters per token."""
        if self.tokenizer is not None:
            return self.tokenizer.count(text)
        if not self._warned.is_set():
            self._warned.set()
            log.warning("openai backend without a tokenizer: token counts are estimated")
        return math.ceil(len(text) / 3)

    def truncate_tokens(self, text: str, max_tokens: int) -> str:
        """``text`` cut to ``max_tokens`` tokens (by the estimate without a tokenizer)."""
        if self.tokenizer is not None:
            return self.tokenizer.truncate(text, max_tokens)
        return text[: max(max_tokens, 0) * 3]

    # -- HTTP -------------------------------------------------------------------------------

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST a chat completion with bounded retries; the decoded JSON answer."""
        url = f"{self.base_url}/chat/completions"
        problem = ""
        for attempt in range(self.http_retries + 1):
            wait = self.backoff * 2**attempt
            try:
                response = self._client.post("chat/completions", json=payload)
            except httpx.TransportError as exc:  # refused, timed out, dropped connection
                problem = f"{type(exc).__name__}: {exc or 'no detail'}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return dict(response.json())
                    except ValueError:
                        raise LLMOutputError(
                            f"{url} answered non-JSON: {response.text[:200]!r}"
                        ) from None
                detail = _detail(response)
                if status in (401, 403):
                    raise LLMError(
                        f"{url}: HTTP {status} ({detail}); set the API key in "
                        f"${self.api_key_env or 'OPENAI_API_KEY'}"
                    )
                if status == 404:
                    raise LLMError(
                        f"{url}: HTTP 404 ({detail}); check base_url (usually ending in /v1) "
                        f"and the model name {self.model!r}"
                    )
                if status not in RETRY_STATUS:
                    raise LLMRequestError(f"{url} refused the request: HTTP {status}: {detail}")
                problem = f"HTTP {status}: {detail}"
                wait = max(wait, _retry_after(response))
            if attempt < self.http_retries:
                wait = min(wait, self.max_backoff)
                log.warning(
                    "%s: %s; retry %d/%d in %.1f s",
                    url,
                    problem,
                    attempt + 1,
                    self.http_retries,
                    wait,
                )
                time.sleep(wait)
        raise LLMError(
            f"LLM server {self.base_url} failed after {self.http_retries + 1} attempts: {problem}"
        )

    def _payload(
        self, messages: list[Message], max_tokens: int, temperature: float, seed: int
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
            **self.extra_body,
        }

    def _response_format(self, schema: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.schema_mode == "json_object":
            return {"type": "json_object", "schema": dict(schema)}
        if self.schema_mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        return None

    def _complete(
        self,
        messages: list[Message],
        *,
        schema: Mapping[str, Any] | None,
        max_tokens: int,
        temperature: float,
        seed: int,
    ) -> Completion:
        payload = self._payload(messages, max_tokens, temperature, seed)
        if schema is not None and (response_format := self._response_format(schema)):
            payload["response_format"] = response_format
        data = self._post(payload)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMOutputError(f"unexpected answer from the server: {str(data)[:200]}") from None
        usage = data.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
        )

    def _label_logprobs(
        self, messages: list[Message], labels: Sequence[str], *, seed: int
    ) -> tuple[dict[str, float], Completion]:
        """Top log-probabilities of a one-token answer, summed over tokens per label."""
        payload = self._payload(messages, 1, 0.0, seed)
        payload.update(logprobs=True, top_logprobs=self.top_logprobs)
        data = self._post(payload)
        try:
            top = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            candidates = [(str(t["token"]).strip(), float(t["logprob"])) for t in top]
        except (KeyError, IndexError, TypeError, ValueError):
            raise LLMOutputError(
                "the server returned no top_logprobs: it must support logprobs "
                "(llama-cpp-python's server needs --logits_all true, its default)"
            ) from None
        logprobs: dict[str, float] = {}
        for token, logprob in candidates:
            if token in labels:
                logprobs[token] = _logaddexp(logprobs.get(token, -math.inf), logprob)
        usage = data.get("usage") or {}
        return logprobs, Completion(
            text=str(data["choices"][0].get("message", {}).get("content") or ""),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )

    def close(self) -> None:
        """Close the connections and the cache."""
        self._client.close()
        super().close()


def _logaddexp(a: float, b: float) -> float:
    top = max(a, b)
    if top == -math.inf:
        return top
    return top + math.log(math.exp(a - top) + math.exp(b - top))


def _detail(response: httpx.Response) -> str:
    """The server's error message, short."""
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message", error) if isinstance(error, dict) else error
        text = str(message)
    except ValueError:
        text = response.text
    return " ".join(text.split())[:300] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers.get("Retry-After", 0)), 0.0)
    except ValueError:  # an HTTP date: fall back to the backoff
        return 0.0
