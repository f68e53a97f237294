"""Knowledge generation: every method of docs/trawl.md → one table shape.

``generate_knowledge(data, method, side)`` returns one row per item or user:

====================  ============================================================
``id``                item_id or user_id (string)
``side``              ``"item"`` or ``"user"``
``method``            ``none | raw | summary | topic_summary | kar | trawl``
``text``              the knowledge text to embed (null for ``none`` and failures)
``fields``            JSON of the structured fields (``trawl``), else null
``model``             the LLM (or encoder, for extractive summaries) that produced it
``prompt_hash``       hash of template + key factors + schema + input budget
``status``            ``ok`` or ``failed`` (the error is in ``error``)
``error``             why an item failed; a batch never dies on one bad answer
====================  ============================================================

Methods:

- ``none``: no external knowledge (null text).
- ``raw``: the raw text itself, truncated by LLM tokens (items: ``item_tokens``; users:
  profile + the raw knowledge of the k most recent items, ``history_item_tokens`` each).
- ``summary`` / ``topic_summary``: extractive by default (the sentence encoder picks the
  most central sentences / the sentences nearest the key-factor descriptions; no LLM,
  no inference), or LLM summaries with ``summarizer="llm"``.
- ``kar``: the LLM writes from its own memory given only the title (items) or the
  profile and the titles + ratings of the k recent items (users) — KAR (Xi et al.).
- ``trawl``: key-factor extraction + common-sense inference into the domain's JSON
  schema, rendered as ``"Genres: drama, war. Mood: dark. ..."``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError, DataFormatError
from knowrec.knowledge.factors import SIDES, Domain, Side, load_domain
from knowrec.knowledge.inputs import (
    item_raw_texts,
    rating_phrase,
    render_profile,
    user_histories,
)
from knowrec.knowledge.templates import PromptTemplate, builtin_template, placeholders
from knowrec.knowledge.tokens import Tokenizer, VocabTokenizer

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("none", "raw", "summary", "topic_summary", "kar", "trawl")
KNOWLEDGE_VERSION = "1"
KNOWLEDGE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "side": pl.String(),
    "method": pl.String(),
    "text": pl.String(),
    "fields": pl.String(),
    "model": pl.String(),
    "prompt_hash": pl.String(),
    "status": pl.String(),
    "error": pl.String(),
}


class KnowledgeConfig(BaseModel):
    """Settings of knowledge generation (all have defaults; unknown keys are rejected).

    ``domain``: a built-in key-factor set (``movies``, ``news``, ``generic``) or the path
    of a user-defined TOML set. ``templates`` maps ``"<side>_<method>"`` to a template
    file that replaces the built-in one.
    """

    model_config = ConfigDict(extra="forbid")

    domain: str = "movies"
    factors: list[str] | None = None  # ask only these factors of the domain (default: all)
    k: int = Field(default=5, ge=1, le=50)
    item_tokens: int = Field(default=384, ge=8)
    history_item_tokens: int = Field(default=48, ge=8)
    summarizer: Literal["extractive", "llm"] = "extractive"
    summary_sentences: int = Field(default=3, ge=1)
    trawl_max_tokens: int = Field(default=160, ge=16)
    text_max_tokens: int = Field(default=80, ge=16)
    seed: int = 0
    templates: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> KnowledgeConfig:
        """Validate a mapping (e.g. a TOML ``[knowledge]`` table) with a one-line error."""
        try:
            return cls(**(values or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"knowledge config: {where}: {first['msg']}") from None


@dataclass
class GenerationStats:
    """What the last LLM batch cost: counts and the prompt/generation time split."""

    items: int = 0
    computed: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    prompt_eval_tokens: int = 0
    completion_tokens: int = 0
    prompt_ms: float = 0.0
    gen_ms: float = 0.0
    total_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _check_method(method: str, side: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown knowledge method {method!r}; known methods are {METHODS}")
    if side not in SIDES:
        raise ConfigError(f"unknown side {side!r}; use 'item' or 'user'")


def empty_knowledge() -> pl.DataFrame:
    """An empty table with the knowledge schema."""
    return pl.DataFrame(schema=KNOWLEDGE_SCHEMA)


def read_knowledge_texts(path: str | Path) -> pl.DataFrame:
    """``id`` and ``text`` of a knowledge table (as :class:`KnowledgeGenerator` writes it):
    rows with a text, and only the answered ones (``status = ok``) when it has a status."""
    path = Path(path)
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.ComputeError) as exc:
        raise DataFormatError(f"not a Parquet table ({exc})", path=path) from None
    missing = {"id", "text"} - set(frame.columns)
    if missing:
        raise DataFormatError(f"a knowledge table needs the columns {sorted(missing)}", path=path)
    if "status" in frame.columns:
        frame = frame.filter(pl.col("status") == "ok")
    return frame.select(pl.col("id").cast(pl.String), "text").drop_nulls()


def knowledge_texts(path: str | Path) -> dict[str, str]:
    """:func:`read_knowledge_texts` as an id → text mapping (what the judge reads)."""
    table = read_knowledge_texts(path)
    return dict(zip(table["id"], table["text"], strict=True))


class KnowledgeGenerator:
    """Generates knowledge tables for one domain with one LLM and one encoder.

    ``llm`` (a :class:`knowrec.llm.base.LLM`) is needed by ``kar``, ``trawl`` and the
    LLM summaries; ``encoder`` (a :class:`knowrec.encoders.Encoder`) by the extractive
    summaries (created on first use); ``tokenizer`` truncates text when no LLM is given
    (default: the vocabulary of ``tokenizer_model``).
    """

    def __init__(
        self,
        config: KnowledgeConfig | dict[str, Any] | None = None,
        *,
        llm: Any = None,
        encoder: Any = None,
        tokenizer: Tokenizer | None = None,
        tokenizer_model: str = "qwen2.5-coder-1.5b",
        progress: bool = True,
    ) -> None:
        if not isinstance(config, KnowledgeConfig):
            config = KnowledgeConfig.from_mapping(config)
        self.config = config
        self.domain: Domain = load_domain(config.domain)
        if config.factors is not None:
            self.domain = self.domain.subset(config.factors)
        self.llm = llm
        self._encoder = encoder
        self._tokenizer = tokenizer
        self._vocab: Tokenizer | None = None
        self.tokenizer_model = tokenizer_model
        self.progress = progress
        self.stats = GenerationStats()

    # -- resources ------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        """The given tokenizer, else the LLM's (the current one: ``llm`` may be replaced),
        else the vocabulary of ``tokenizer_model``."""
        if self._tokenizer is not None:
            return self._tokenizer
        if self.llm is not None:
            return self.llm
        if self._vocab is None:
            self._vocab = VocabTokenizer(self.tokenizer_model)
        return self._vocab

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from knowrec.encoders import Encoder

            self._encoder = Encoder()
        return self._encoder

    def template(self, side: Side, method: str) -> PromptTemplate:
        """The prompt template of ``side`` and ``method`` (config override or built-in)."""
        key = f"{side}_{method}"
        if key in self.config.templates:
            return PromptTemplate.load(Path(self.config.templates[key]))
        return builtin_template(side, method)

    def uses_llm(self, method: str) -> bool:
        """Whether ``method`` calls the LLM with this configuration."""
        return method in ("kar", "trawl") or (
            method in ("summary", "topic_summary") and self.config.summarizer == "llm"
        )

    # -- inputs ---------------------------------------------------------------------------

    def item_inputs(self, items: pl.DataFrame) -> pl.DataFrame:
        """``item_id, title, raw, input``: the raw text and its token-truncated version."""
        raw = item_raw_texts(items)
        budget = self.config.item_tokens
        cut = [self.tokenizer.truncate_tokens(t, budget) for t in raw["raw"].to_list()]
        return raw.with_columns(pl.Series("input", cut, dtype=pl.String))

    def user_inputs(
        self,
        data: Dataset,
        *,
        history: pl.DataFrame | None = None,
        cut: datetime | pl.DataFrame | None = None,
        ids: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """``user_id, profile, history, titles``: what the user prompts read.

        The history holds the k most recent interactions strictly before ``cut`` among
        ``history`` (default: each user's first k interactions, the KAR protocol's
        reserved history — never later rows). ``history`` renders each item as its
        rating plus its raw knowledge cut to ``history_item_tokens``; ``titles`` as its
        title plus rating (the KAR input).
        """
        k = self.config.k
        if history is None and cut is None:
            from knowrec.data.protocol import reserve_history

            history = reserve_history(data.interactions, k)["history"]
        source = history if history is not None else data.interactions
        if ids is None:
            ids = user_ids(data)
        source = source.filter(pl.col("user_id").is_in(list(ids)))
        rows = user_histories(source, k=k, cut=cut)
        raw = item_raw_texts(data.items.filter(pl.col("item_id").is_in(rows["item_id"].to_list())))
        titles = dict(zip(raw["item_id"].to_list(), raw["title"].to_list(), strict=True))
        texts = dict(zip(raw["item_id"].to_list(), raw["raw"].to_list(), strict=True))
        budget = self.config.history_item_tokens
        short: dict[str, str] = {}
        by_user: dict[str, list[tuple[str, str]]] = {}
        for row in rows.iter_rows(named=True):
            item = row["item_id"]
            if item not in short:
                text = " ".join((texts.get(item) or titles.get(item) or item).split())
                short[item] = self.tokenizer.truncate_tokens(text, budget)
            rating = rating_phrase(row)
            by_user.setdefault(row["user_id"], []).append((item, rating))

        profiles = (
            {str(u["user_id"]): u for u in data.users.to_dicts()} if data.users.height else {}
        )
        out_hist, out_titles, out_profile = [], [], []
        for uid in ids:
            seen = by_user.get(uid, [])
            out_profile.append(render_profile(profiles.get(uid)))
            if not seen:
                out_hist.append("History: none.")
                out_titles.append("History: none.")
                continue
            lines = ["History, oldest first:"]
            tlines = ["History, oldest first:"]
            disliked = []
            for n, (item, rating) in enumerate(seen, 1):
                tag = f" ({rating})" if rating else ""
                lines.append(f"{n}.{tag} {short[item]}")
                title = titles.get(item) or item
                tlines.append(f"{n}. {title}" + (f", {rating}" if rating else ""))
                if rating in ("rated 1/5", "rated 2/5", "not liked"):
                    disliked.append(title)
            if any(rating for _, rating in seen):  # stated, so that a small model need not infer it
                lines.append(f"Disliked: {', '.join(disliked) or 'none'}.")
                tlines.append(lines[-1])
            out_hist.append("\n".join(lines))
            out_titles.append("\n".join(tlines))
        return pl.DataFrame(
            {
                "user_id": list(ids),
                "profile": out_profile,
                "history": out_hist,
                "titles": out_titles,
            },
            schema={c: pl.String for c in ("user_id", "profile", "history", "titles")},
        )

    # -- the methods ------------------------------------------------------------------------

    def prompt_hash(self, method: str, side: Side) -> str | None:
        """Identifies everything that shapes the answers of ``method`` on ``side``."""
        if method == "none":
            return None
        cfg = self.config
        parts: dict[str, Any] = {
            "v": KNOWLEDGE_VERSION,
            "method": method,
            "side": side,
            "item_tokens": cfg.item_tokens,
            "history_item_tokens": cfg.history_item_tokens,
            "k": cfg.k,
        }
        if self.uses_llm(method):
            template = self.template(side, method)
            parts["template"] = template.digest()
            parts["domain"] = self.domain.fingerprint()
            parts["max_tokens"] = self.max_tokens(method)
            if method == "trawl":
                parts["schema"] = self.domain.json_schema(side)
        elif method in ("summary", "topic_summary"):
            parts["summary_sentences"] = cfg.summary_sentences
            if method == "topic_summary":
                parts["domain"] = self.domain.fingerprint()
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def max_tokens(self, method: str) -> int:
        return self.config.trawl_max_tokens if method == "trawl" else self.config.text_max_tokens

    def generate(
        self,
        data: Dataset,
        method: str,
        side: Side,
        *,
        ids: Sequence[str] | None = None,
        history: pl.DataFrame | None = None,
        cut: datetime | pl.DataFrame | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """The knowledge table of ``method`` for ``side`` (see the module docstring).

        ``ids`` restricts (and orders) the items/users; ``limit`` keeps the first n.
        User-side ``history`` / ``cut``: see :meth:`user_inputs`.
        """
        _check_method(method, side)
        if self.uses_llm(method) and self.llm is None:
            raise ConfigError(f"method {method!r} needs an LLM (pass llm=...)")
        if ids is None:
            ids = item_ids(data) if side == "item" else user_ids(data)
        ids = [str(i) for i in ids]
        if limit is not None:
            ids = ids[: max(limit, 0)]
        self.stats = GenerationStats(items=len(ids))
        phash = self.prompt_hash(method, side)  # type: ignore[arg-type]
        if not ids:
            return empty_knowledge()
        if method == "none":
            return _table(ids, side, method, [None] * len(ids), None, None, phash)

        doc, values = self._inputs(data, method, side, ids, history, cut)
        if method == "raw":
            model = getattr(self.tokenizer, "model_id", None) or getattr(
                self.tokenizer, "model", None
            )
            return _table(ids, side, method, doc, None, model, phash)
        if not self.uses_llm(method):  # extractive summaries
            from knowrec.knowledge.extractive import select_sentences

            queries = None
            if method == "topic_summary":
                queries = [f"{f.label}: {f.describe(side)}" for f in self.domain.for_side(side)]
            texts = select_sentences(
                doc,
                self.encoder,
                n_sentences=self.config.summary_sentences,
                queries=queries,
                progress=self.progress,
            )
            model = getattr(self.encoder, "model_name", None)
            return _table(ids, side, method, texts, None, model, phash)
        return self._generate_llm(ids, side, method, values, phash)

    def _inputs(
        self,
        data: Dataset,
        method: str,
        side: Side,
        ids: list[str],
        history: pl.DataFrame | None,
        cut: datetime | pl.DataFrame | None,
    ) -> tuple[list[str], list[dict[str, str]]]:
        """Each id's raw knowledge (``doc``) and the values its prompt template fills."""
        if side == "item":
            known = set(data.items["item_id"].to_list())
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise ConfigError(
                    f"{len(unknown)} item id(s) not in the items table, e.g. {unknown[:3]}"
                )
            items = data.items.filter(pl.col("item_id").is_in(ids))
            inputs = self.item_inputs(items)
            by_id = {r["item_id"]: r for r in inputs.iter_rows(named=True)}
            doc = [by_id[i]["input"] for i in ids]
            title = [by_id[i]["title"] or i for i in ids]
            values = [{"text": d, "title": t} for d, t in zip(doc, title, strict=True)]
        else:
            inputs = self.user_inputs(data, history=history, cut=cut, ids=ids)
            doc = [f"{p}\n{h}" for p, h in zip(inputs["profile"], inputs["history"], strict=True)]
            values = [
                {"profile": p, "history": t if method == "kar" else h}
                for p, h, t in zip(
                    inputs["profile"], inputs["history"], inputs["titles"], strict=True
                )
            ]

        return doc, values

    def llm_requests(
        self,
        data: Dataset,
        method: str,
        side: Side,
        *,
        ids: Sequence[str],
        history: pl.DataFrame | None = None,
        cut: datetime | pl.DataFrame | None = None,
    ) -> list[Any]:
        """The LLM requests :meth:`generate` would send for ``ids`` (to run them elsewhere,
        see :mod:`knowrec.llm.batch`)."""
        _check_method(method, side)
        if not self.uses_llm(method):
            raise ConfigError(f"method {method!r} does not use the LLM")
        ids = [str(i) for i in ids]
        _, values = self._inputs(data, method, side, ids, history, cut)
        return self.requests(method, side, values, ids)

    def requests(
        self, method: str, side: Side, values: list[dict[str, str]], ids: list[str]
    ) -> list[Any]:
        """The LLM requests of ``method`` (one per id), fixed system prompt first."""
        from knowrec.llm.base import Request

        template = self.template(side, method)
        system = template.render_system(self.domain, side, self.config.k)
        schema = self.domain.json_schema(side) if method == "trawl" else None
        names = placeholders(template.user)
        out = []
        for i, v in zip(ids, values, strict=True):
            prompt = template.render_user(**{k: v.get(k, "") for k in names})
            out.append(
                Request(
                    prompt=prompt,
                    system=system,
                    schema=schema,
                    max_tokens=self.max_tokens(method),
                    temperature=0.0,
                    seed=self.config.seed,
                    id=i,
                )
            )
        return out

    def validator(self, method: str, side: Side) -> Callable[[Any], Any]:
        """What :meth:`generate` accepts as an LLM answer of ``method`` (a picklable
        callable, so that it can run on Spark executors too)."""
        if method == "trawl":
            return partial(_clean_fields, self.domain, side)
        return _answer_text

    def _generate_llm(
        self,
        ids: list[str],
        side: Side,
        method: str,
        values: list[dict[str, str]],
        phash: str | None,
    ) -> pl.DataFrame:
        requests = self.requests(method, side, values, ids)
        results = self.llm.map(
            requests,
            validate=self.validator(method, side),
            progress=self.progress,
            desc=f"{method} {side}s",
        )
        return self.results_table(ids, side, method, results, phash)

    def results_table(
        self,
        ids: list[str],
        side: Side,
        method: str,
        results: Sequence[Any],
        phash: str | None,
    ) -> pl.DataFrame:
        """The knowledge table of ``method`` from the LLM results of ``ids`` (one each, in
        order); adds their counts and times to :attr:`stats`."""
        texts: list[str | None] = []
        fields: list[str | None] = []
        status: list[str] = []
        errors: list[str | None] = []
        stats = self.stats
        for result in results:
            stats.cached += int(result.cached)
            stats.computed += int(not result.cached)
            if not result.cached:
                stats.prompt_tokens += result.prompt_tokens or 0
                stats.prompt_eval_tokens += result.prompt_eval_tokens or 0
                stats.completion_tokens += result.completion_tokens or 0
                stats.prompt_ms += result.prompt_ms or 0.0
                stats.gen_ms += result.gen_ms or 0.0
                stats.total_ms += result.total_ms or 0.0
            if result.ok:
                if method == "trawl":
                    text = self.domain.render(result.value, side)
                    fields.append(json.dumps(result.value, ensure_ascii=False))
                else:
                    text = result.value
                    fields.append(None)
                texts.append(text)
                status.append("ok")
                errors.append(None)
            else:
                stats.failed += 1
                texts.append(None)
                fields.append(None)
                status.append("failed")
                errors.append(result.error or "no answer")
        model = getattr(self.llm, "model_id", None) or getattr(self.llm, "model", None)
        return _table(ids, side, method, texts, fields, model, phash, status, errors)


def _clean_fields(domain: Domain, side: Side, value: Any) -> dict[str, Any]:
    return domain.clean(value, side)


def _answer_text(value: Any) -> str:
    text = _whole_sentences(" ".join(str(value).split()))
    if len(text) < 3:
        raise ValueError("empty answer")
    return text


def _whole_sentences(text: str) -> str:
    """Drop a trailing sentence fragment (an answer cut at ``max_tokens``), if any is left."""
    if not text or text[-1] in ".!?\"')":
        return text
    end = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    return text[: end + 1] if end > 0 else text


def _table(
    ids: list[str],
    side: str,
    method: str,
    texts: Sequence[str | None],
    fields: Sequence[str | None] | None,
    model: str | None,
    phash: str | None,
    status: Sequence[str] | None = None,
    errors: Sequence[str | None] | None = None,
) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame(
        {
            "id": ids,
            "side": [side] * n,
            "method": [method] * n,
            "text": list(texts),
            "fields": list(fields) if fields is not None else [None] * n,
            "model": [model] * n,
            "prompt_hash": [phash] * n,
            "status": list(status) if status is not None else ["ok"] * n,
            "error": list(errors) if errors is not None else [None] * n,
        },
        schema=KNOWLEDGE_SCHEMA,
    )


def item_ids(data: Dataset) -> list[str]:
    """All item ids in the items table (or, without one, in the interactions)."""
    if data.items.height:
        return data.items["item_id"].cast(pl.String).to_list()
    return data.interactions["item_id"].unique(maintain_order=True).to_list()


def user_ids(data: Dataset) -> list[str]:
    """Users with interactions, in the order of the users table (then first appearance)."""
    active = data.interactions["user_id"].unique(maintain_order=True).to_list()
    if not data.users.height:
        return active
    present = set(active)
    ordered = [u for u in data.users["user_id"].cast(pl.String).to_list() if u in present]
    listed = set(ordered)
    return ordered + [u for u in active if u not in listed]


def generate_knowledge(
    data: Dataset,
    method: str,
    side: Side,
    *,
    config: KnowledgeConfig | dict[str, Any] | None = None,
    llm: Any = None,
    encoder: Any = None,
    ids: Sequence[str] | None = None,
    history: pl.DataFrame | None = None,
    cut: datetime | pl.DataFrame | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> pl.DataFrame:
    """One-call form of :meth:`KnowledgeGenerator.generate`."""
    gen = KnowledgeGenerator(config, llm=llm, encoder=encoder, progress=progress)
    return gen.generate(data, method, side, ids=ids, history=history, cut=cut, limit=limit)
