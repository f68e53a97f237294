"""The multitask cross-encoder of Explore Further (SPEC §2.2 stage 2a, "MT RecoLM").

A MiniLM body (default: the packaged all-MiniLM-L6-v2) reads ``trigger text [SEP]
candidate text``, truncated longest-first to ``max_tokens``; the pooled pair (the mean
of all tokens plus ``û ⊙ v̂`` and ``|û − v̂|`` of the two sides' means, see
:class:`MultitaskCrossEncoder`) feeds two heads:

- **click head** — one logit. Trained on clicks with a pairwise softmax over the clicked
  and not-clicked candidates of the same group (trigger, or impression)::

      −log(e^{s+} / (e^{s+} + e^{s−})) = softplus(s− − s+),   weighted by log(1 + clicks+)

- **quality head** — five logits for the quality classes 0–4. Trained on (judge) labels
  with cross-entropy or symmetric cross-entropy (SCE = α·CE + β·RCE, Wang et al., ICCV
  2019); a fractional label ``2.3`` becomes the soft target ``p2 = 0.7, p3 = 0.3``
  (:func:`soft_labels`), and a full label distribution may be given instead.

Two training modes, so a pipeline can compare them (the paper: distillation wins):

- ``mode="distill"``: the student learns its teachers' outputs with MSE — the click logit
  learns the ``click_teacher`` column (any model's score, e.g. stage-1 LightGBM or log
  co-click counts) z-scored within each group (``teacher_norm="group"``: the head ranks
  the candidates of one trigger, so the trigger's overall traffic level is not its
  business; ``"global"`` z-scores over all rows); the quality head's five probabilities
  learn the teacher's label distribution — the ``quality_teacher`` score (the judge's
  expected score, 0–4) split between its two nearest classes, or the ``quality_probs_*``
  columns when there is no teacher score. (MSE on the probabilities rather than on the
  expected label: the latter's gradient vanishes as the softmax sharpens, and it learned
  several times slower in our runs.) ``label_weight > 0`` adds the label losses on top.
- ``mode="direct"``: the heads are fine-tuned on the labels only (clicks and quality
  labels), teachers ignored.

``head_weights`` weigh the two heads (default click 1.0, quality 0.5: the paper puts the
larger weight on the click head so click quality is kept). Input columns of the pairs
frame (``trigger_id`` and ``item_id`` name the pair; rows with a null target simply do
not enter that loss term):

=====================  ===============================================================
``click_count``        clicks of the pair (``clicked`` 0/1 is used when there is no
                       count); > 0 = clicked, 0 = shown and not clicked
``group_col``          optional (a parameter naming e.g. the ``group`` column of
                       :func:`~knowrec.explore.data.click_impressions`): pairs are
                       formed within an impression; default: within a trigger
``click_teacher``      the click teacher's score (distill)
``quality_label``      a label in [0, 4] (may be fractional)
``quality_probs_0..4`` a label distribution (takes precedence over ``quality_label``)
``quality_teacher``    the quality teacher's expected score in [0, 4] (distill; the
                       ``quality_probs_*`` distribution is the teacher when absent)
=====================  ===============================================================

Usage::

    ce = CrossEncoderRanker(mode="distill", epochs=1, threads=2).fit(train_pairs, items)
    scored = ce.predict(candidates, items)          # + click_score, quality_score
    click, quality = ce.score_pairs(triggers, cands, items)   # offline fast path
    ce.save("runs/x/cross_encoder"); CrossEncoderRanker.load("runs/x/cross_encoder")

CPU cost: ``train_layers`` limits fine-tuning to the top layers; with ``train_layers=0``
the body is frozen, each pair is encoded once and every epoch trains only the heads.

``click_score`` (the click logit) and ``quality_score`` (expected quality label, 0–4) are
the stage-2b LightGBM features (:data:`CROSS_ENCODER_FEATURES`,
:class:`CrossEncoderFeatures`) and ``quality_score`` is the quality term of the final
λ combination (:func:`knowrec.ranking.combine.final_score`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.nn import functional as F

from knowrec.encoders import DEFAULT_MODEL, resolve_model_path
from knowrec.errors import ConfigError, DataFormatError, KnowrecError, UnknownIdError
from knowrec.progress import progress_bar
from knowrec.ranking.lgbm import RANKERS
from knowrec.train.checkpoint import torch_threads

log = logging.getLogger(__name__)

N_CLASSES = 5
PROB_COLUMNS: tuple[str, ...] = tuple(f"quality_probs_{k}" for k in range(N_CLASSES))
CLICK_SCORE, QUALITY_SCORE = "click_score", "quality_score"
#: The two head scores :meth:`CrossEncoderRanker.predict` adds: stage-2b features.
CROSS_ENCODER_FEATURES: tuple[str, ...] = (CLICK_SCORE, QUALITY_SCORE)
MODES = ("distill", "direct")
QUALITY_LOSSES = ("ce", "sce")
HEADS = ("click", "quality")
POOLINGS = ("interaction", "mean")
TEACHER_NORMS = ("group", "global")
_MANIFEST = "cross_encoder.json"
_FORMAT = 1
_LOG_ZERO = -4.0  # SCE: the value of log 0 in the reverse cross-entropy


# ----------------------------------------------------------------------------- losses


def soft_labels(labels: ArrayLike) -> np.ndarray:
    """Labels in [0, 4] → (n, 5) targets with the mass split between the two nearest
    classes (2.3 → p2 = 0.7, p3 = 0.3; an integer label is one-hot). NaN → a NaN row."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    out = np.zeros((y.size, N_CLASSES))
    ok = np.isfinite(y)
    if ((y[ok] < 0) | (y[ok] > N_CLASSES - 1)).any():
        raise DataFormatError(f"quality labels must lie in [0, {N_CLASSES - 1}]")
    lo = np.floor(y[ok]).astype(np.int64)
    frac = y[ok] - lo
    hi = np.minimum(lo + 1, N_CLASSES - 1)
    rows = np.flatnonzero(ok)
    np.add.at(out, (rows, lo), 1.0 - frac)
    np.add.at(out, (rows, hi), frac)
    out[~ok] = np.nan
    return out


def pairwise_click_loss(
    scores: torch.Tensor, groups: torch.Tensor, clicks: torch.Tensor
) -> torch.Tensor | None:
    """Weighted mean of ``softplus(s− − s+)`` over (clicked, not-clicked) row pairs of the
    same group, each weighted by ``log(1 + clicks+)``; None when the batch has no pair.

    ``scores``: (B,) click logits; ``groups``: (B,) group codes; ``clicks``: (B,) click
    counts (0 = not clicked, NaN = no click information)."""
    pos = clicks > 0
    neg = clicks == 0
    pairs = (groups[:, None] == groups[None, :]) & pos[:, None] & neg[None, :]
    weight = torch.log1p(torch.nan_to_num(clicks, nan=0.0).clamp_min(0))[:, None] * pairs
    total = weight.sum()
    if total <= 0:
        return None
    return (weight * F.softplus(scores[None, :] - scores[:, None])).sum() / total


def quality_label_loss(
    logits: torch.Tensor, target: torch.Tensor, *, alpha: float = 1.0, beta: float = 0.0
) -> torch.Tensor:
    """Per-row ``α·CE(target, p) + β·RCE`` with ``RCE = −Σ p·log(target)`` where
    ``log 0`` is taken as −4 (symmetric cross-entropy, Wang et al. 2019; β = 0 is plain
    soft cross-entropy).

    ``logits``: (B, 5); ``target``: (B, 5) label distributions."""
    logp = F.log_softmax(logits, dim=-1)
    loss = -(target * logp).sum(-1) * alpha
    if beta:
        rce = -(logp.exp() * torch.log(target).clamp_min(_LOG_ZERO)).sum(-1)
        loss = loss + beta * rce
    return loss


def expected_label(logits: torch.Tensor) -> torch.Tensor:
    """(B, 5) quality logits → (B,) expected label ``Σ l·p(l)`` in [0, 4]."""
    labels = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return F.softmax(logits, dim=-1) @ labels


# ----------------------------------------------------------------------------- model


class MultitaskCrossEncoder(nn.Module):
    """A transformer body, pooling and two linear heads (click: 1 logit, quality: 5).

    ``pooling="mean"``: the masked mean of all pair tokens. ``"interaction"`` (default):
    that mean concatenated with ``û ⊙ v̂`` and ``|û − v̂|``, where û, v̂ are the means of
    the trigger's and the candidate's tokens (as read jointly by the cross-encoder),
    L2-normalised and scaled by √hidden so their elements are of unit size — the heads
    then start with a cosine of the two sides within reach (the sum of ``û ⊙ v̂``) and
    learn from far fewer pairs.

    ``forward(input_ids, attention_mask, token_type_ids, segments)`` with (B, T) tensors
    (``segments``: 1 = trigger token, 2 = candidate token, 0 = other) returns the (B,)
    click logits and the (B, 5) quality logits."""

    def __init__(self, body: nn.Module, dropout: float = 0.1, pooling: str = "interaction"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"cross-encoder pooling {pooling!r}: known are {POOLINGS}")
        self.body, self.pooling = body, pooling
        hidden = int(body.config.hidden_size)
        width = hidden * (3 if pooling == "interaction" else 1)
        self.dropout = nn.Dropout(dropout)
        self.click = nn.Linear(width, 1)
        self.quality = nn.Linear(width, N_CLASSES)

    @staticmethod
    def _mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T) inputs → (B, width) pooled pair representations."""
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        tokens = self.body(
            input_ids=input_ids, attention_mask=attention_mask, **kwargs
        ).last_hidden_state
        pooled = self._mean(tokens, attention_mask)
        if self.pooling == "interaction":
            if segments is None:
                raise ConfigError("cross-encoder: interaction pooling needs the segments")
            scale = math.sqrt(tokens.shape[-1])  # unit-size elements, like the token states
            u = F.normalize(self._mean(tokens, segments == 1), dim=-1) * scale
            v = F.normalize(self._mean(tokens, segments == 2), dim=-1) * scale
            pooled = torch.cat([pooled, u * v, (u - v).abs()], dim=-1)
        return pooled

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, width) → (B,) click logits and (B, 5) quality logits."""
        pooled = self.dropout(pooled)
        return self.click(pooled).squeeze(-1), self.quality(pooled)

    def forward(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.encode(**inputs))

    def heads_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("body.")}


# ----------------------------------------------------------------------------- inputs


def text_map(texts: Mapping[str, str] | pl.DataFrame, text_column: str = "text") -> dict[str, str]:
    """Item texts as ``{item_id: text}`` from a mapping or an items frame."""
    if isinstance(texts, pl.DataFrame):
        missing = [c for c in ("item_id", text_column) if c not in texts.columns]
        if missing:
            raise ConfigError(
                f"cross-encoder: the items frame needs {missing}; has {texts.columns}"
            )
        rows = texts.select(pl.col("item_id").cast(pl.String), pl.col(text_column).cast(pl.String))
        return dict(zip(rows["item_id"].to_list(), rows[text_column].to_list(), strict=True))
    if isinstance(texts, Mapping):
        return {str(k): v for k, v in texts.items()}
    raise ConfigError("cross-encoder: texts must be a mapping id → text or an items frame")


class PairTokenizer:
    """Tokenizes each distinct item text once and assembles pair inputs from the ids.

    A pair is the tokenizer's own pair template (``[CLS] a [SEP] b [SEP]`` for BERT) with
    the two texts truncated longest-first to ``max_tokens`` in all, as the Hugging Face
    tokenizers do: the shorter text keeps ``max(…)`` of its tokens, the longer the rest.
    """

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._template(tokenizer)
        self.budget = max_tokens - len(self.prefix) - len(self.middle) - len(self.suffix)
        if self.budget < 2:
            raise ConfigError(f"cross-encoder: max_tokens={max_tokens} leaves no room for text")
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self._ids: dict[str, tuple[np.ndarray, int]] = {}

    def _template(self, tok: Any) -> None:
        a = tok("a", add_special_tokens=False)["input_ids"]
        b = tok("b", add_special_tokens=False)["input_ids"]
        enc = tok("a", "b", return_token_type_ids=True)
        ids = list(enc["input_ids"])
        types = list(enc.get("token_type_ids") or [0] * len(ids))
        i = next(k for k in range(len(ids)) if ids[k : k + len(a)] == a)
        j = next(k for k in range(i + len(a), len(ids)) if ids[k : k + len(b)] == b)
        self.prefix, self.middle, self.suffix = ids[:i], ids[i + len(a) : j], ids[j + len(b) :]
        self.types = (
            types[:i],
            types[i] if a else 0,
            types[i + len(a) : j],
            types[j] if b else 0,
            types[j + len(b) :],
        )
        self.has_types = "token_type_ids" in enc

    def add(self, texts: Mapping[str, str], ids: Sequence[str]) -> None:
        """Tokenize the texts of ``ids`` not held yet (kept: the first ``budget`` token ids
        and the full length). :meth:`reset` drops them (each fit/scoring call does)."""
        todo = [i for i in dict.fromkeys(ids) if i not in self._ids]
        for start in range(0, len(todo), 1024):
            chunk = todo[start : start + 1024]
            enc = self.tokenizer([texts[i] for i in chunk], add_special_tokens=False)["input_ids"]
            for key, row in zip(chunk, enc, strict=True):
                self._ids[key] = (np.asarray(row[: self.budget], dtype=np.int64), len(row))

    def reset(self) -> None:
        self._ids.clear()

    def lengths(self, a: str, b: str) -> tuple[int, int]:
        """Kept token counts of the two texts (the Hugging Face longest-first rule)."""
        n1, n2 = self._ids[a][1], self._ids[b][1]
        if n1 + n2 <= self.budget:
            return n1, n2
        swap = n1 > n2
        if swap:
            n1, n2 = n2, n1
        n2 = n1 if n1 > self.budget else max(n1, self.budget - n1)
        if n1 + n2 > self.budget:
            n1 = self.budget // 2
            n2 = n1 + self.budget % 2
        return (n2, n1) if swap else (n1, n2)

    def pair_length(self, a: str, b: str) -> int:
        n1, n2 = self.lengths(a, b)
        return n1 + n2 + self.max_tokens - self.budget

    def batch(self, triggers: Sequence[str], candidates: Sequence[str]) -> dict[str, torch.Tensor]:
        """Padded ``input_ids``, ``attention_mask``, ``segments`` (1 = trigger token, 2 =
        candidate token, 0 = special or padding) and ``token_type_ids`` (when the
        tokenizer makes them) tensors, shape (B, T)."""
        t_pre, t_a, t_mid, t_b, t_suf = self.types
        pre, mid, suf = (
            np.asarray(x, dtype=np.int64) for x in (self.prefix, self.middle, self.suffix)
        )
        lengths = [self.lengths(a, b) for a, b in zip(triggers, candidates, strict=True)]
        width = max(n1 + n2 for n1, n2 in lengths) + len(pre) + len(mid) + len(suf)
        ids = np.full((len(lengths), width), self.pad_id, dtype=np.int64)
        types = np.zeros((len(lengths), width), dtype=np.int64)
        segments = np.zeros((len(lengths), width), dtype=np.int64)
        mask = np.zeros((len(lengths), width), dtype=np.int64)
        for k, (a, b, (n1, n2)) in enumerate(zip(triggers, candidates, lengths, strict=True)):
            row = np.concatenate([pre, self._ids[a][0][:n1], mid, self._ids[b][0][:n2], suf])
            ids[k, : len(row)] = row
            mask[k, : len(row)] = 1
            i, j = len(pre), len(pre) + n1 + len(mid)  # where the two texts start
            types[k, :i], types[k, i : i + n1] = t_pre, t_a
            types[k, i + n1 : j], types[k, j : j + n2] = t_mid, t_b
            types[k, j + n2 : len(row)] = t_suf
            segments[k, i : i + n1], segments[k, j : j + n2] = 1, 2
        out = {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "segments": torch.from_numpy(segments),
        }
        if self.has_types:
            out["token_type_ids"] = torch.from_numpy(types)
        return out


# ----------------------------------------------------------------------------- ranker


class CrossEncoderRanker:
    """The multitask (click + quality) MiniLM cross-encoder; see the module docstring.

    ``model``: a packaged encoder name or a local transformers/sentence-transformers
    folder. ``max_tokens``: pair length after truncation. ``lr`` (body) and ``head_lr``
    (heads): AdamW learning rates with linear warm-up over ``warmup`` of the steps and
    linear decay. ``train_layers``: how many of the top transformer layers are trained
    (None = all; the embedding tables always stay frozen — half the parameters, no gain on
    ranking-sized data); fewer layers train much faster on a CPU. ``head_weights``: loss
    weight per head (``click``, ``quality``; 0 leaves that head untrained). ``mode``:
    ``distill`` or ``direct``; ``label_weight``: weight of the label losses in distill mode.
    ``quality_loss``: ``sce`` (α·CE + β·RCE) or ``ce``. ``threads``: torch threads while
    training/scoring (None keeps torch's setting). ``device``: ``cpu``, ``cuda``, ….
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        max_tokens: int = 128,
        mode: str = "distill",
        head_weights: Mapping[str, float] | None = None,
        label_weight: float = 0.0,
        quality_loss: str = "sce",
        sce_alpha: float = 1.0,
        sce_beta: float = 1.0,
        lr: float = 5e-5,
        head_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup: float = 0.1,
        epochs: int = 1,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        train_layers: int | None = None,
        dropout: float = 0.1,
        pooling: str = "interaction",
        grad_clip: float | None = 1.0,
        trigger_col: str = "trigger_id",
        candidate_col: str = "item_id",
        click_col: str | None = None,
        group_col: str | None = None,
        teacher_norm: str = "group",
        text_column: str = "text",
        threads: int | None = None,
        device: str = "cpu",
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(f"cross-encoder pooling {pooling!r}: known are {', '.join(POOLINGS)}")
        if teacher_norm not in TEACHER_NORMS:
            known = ", ".join(TEACHER_NORMS)
            raise ConfigError(f"cross-encoder teacher_norm {teacher_norm!r}: known are {known}")
        if mode not in MODES:
            raise ConfigError(f"cross-encoder mode {mode!r}: known are {', '.join(MODES)}")
        if quality_loss not in QUALITY_LOSSES:
            known = ", ".join(QUALITY_LOSSES)
            raise ConfigError(f"cross-encoder quality_loss {quality_loss!r}: known are {known}")
        weights = {"click": 1.0, "quality": 0.5, **dict(head_weights or {})}
        unknown = sorted(set(weights) - set(HEADS))
        if unknown:
            raise ConfigError(
                f"cross-encoder head_weights: unknown head(s) {unknown}; known {HEADS}"
            )
        if any(not math.isfinite(w) or w < 0 for w in weights.values()) or not any(
            weights.values()
        ):
            raise ConfigError(f"cross-encoder head_weights must be ≥ 0, not all 0: {weights}")
        checks = {
            "max_tokens": max_tokens >= 8,
            "epochs": epochs >= 1,
            "batch_size": batch_size >= 2,
            "eval_batch_size": eval_batch_size >= 1,
            "lr": lr > 0,
            "head_lr": head_lr > 0,
            "warmup": 0 <= warmup < 1,
            "weight_decay": weight_decay >= 0,
            "label_weight": label_weight >= 0,
            "sce_alpha": sce_alpha >= 0,
            "sce_beta": sce_beta >= 0,
            "dropout": 0 <= dropout < 1,
            "train_layers": train_layers is None or train_layers >= 0,
            "grad_clip": grad_clip is None or grad_clip > 0,
            "threads": threads is None or threads >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"cross-encoder: invalid value for {', '.join(bad)}")
        try:
            torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(f"cross-encoder device {device!r}: {exc}") from None
        self.model, self.max_tokens, self.mode = model, max_tokens, mode
        self.head_weights = {h: float(weights[h]) for h in HEADS}
        self.label_weight, self.quality_loss = label_weight, quality_loss
        self.sce_alpha, self.sce_beta = sce_alpha, sce_beta
        self.lr, self.head_lr, self.weight_decay, self.warmup = lr, head_lr, weight_decay, warmup
        self.epochs, self.batch_size, self.eval_batch_size = epochs, batch_size, eval_batch_size
        self.train_layers, self.dropout, self.grad_clip = train_layers, dropout, grad_clip
        self.pooling = pooling
        self.trigger_col, self.candidate_col = trigger_col, candidate_col
        self.click_col, self.group_col, self.text_column = click_col, group_col, text_column
        self.teacher_norm = teacher_norm
        self.threads, self.device, self.seed, self.progress = threads, device, seed, progress
        self.net: MultitaskCrossEncoder | None = None
        self.tokenizer: PairTokenizer | None = None
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ introspection

    _PARAMS = (
        "model", "max_tokens", "mode", "head_weights", "label_weight", "quality_loss",
        "sce_alpha", "sce_beta", "lr", "head_lr", "weight_decay", "warmup", "epochs",
        "batch_size", "eval_batch_size", "train_layers", "dropout", "pooling", "grad_clip",
        "trigger_col", "candidate_col", "click_col", "group_col", "teacher_norm", "text_column",
        "threads",
        "device", "seed", "progress",
    )  # fmt: skip

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (``CrossEncoderRanker(**ranker.get_params())`` clones)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: Any) -> Self:
        """Change parameters (unknown names are an error); re-validated as in ``__init__``."""
        unknown = sorted(set(params) - set(self._PARAMS))
        if unknown:
            raise ConfigError(f"cross-encoder: unknown parameter(s) {unknown}")
        fresh = type(self)(**{**self.get_params(), **params})
        for name in self._PARAMS:
            setattr(self, name, getattr(fresh, name))
        return self

    # ------------------------------------------------------------------ building

    def _build(self, path: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import transformers

        transformers.logging.disable_progress_bar()
        transformers.logging.set_verbosity_error()
        src = path if path is not None else resolve_model_path(self.model)
        try:
            tok = transformers.AutoTokenizer.from_pretrained(str(src))
            body = transformers.AutoModel.from_pretrained(str(src))
        except (OSError, ValueError) as exc:
            raise KnowrecError(f"cross-encoder: cannot load the model at {src}: {exc}") from None
        limit = getattr(body.config, "max_position_embeddings", None)
        if limit is not None and self.max_tokens > limit:
            raise ConfigError(f"cross-encoder: max_tokens={self.max_tokens} > the model's {limit}")
        torch.manual_seed(self.seed)
        self.net = MultitaskCrossEncoder(body, self.dropout, self.pooling)
        self.tokenizer = PairTokenizer(tok, self.max_tokens)

    def _device(self) -> torch.device:
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("cross-encoder: device 'cuda' asked for but CUDA is not available")
        return dev

    def _freeze(self, net: MultitaskCrossEncoder) -> tuple[list[nn.Parameter], list[nn.Module]]:
        """Freeze the embeddings and the lower layers: the trained body parameters and the
        frozen modules (kept in eval mode while training)."""
        body = net.body
        body.requires_grad_(False)
        layers = _encoder_layers(body)
        n = len(layers) if self.train_layers is None else min(self.train_layers, len(layers))
        for layer in layers[len(layers) - n :] if n else []:
            layer.requires_grad_(True)
        frozen = [m for m in layers[: len(layers) - n]]
        embeddings = getattr(body, "embeddings", None)
        if isinstance(embeddings, nn.Module):
            frozen.append(embeddings)
        if n == 0:
            frozen = [body]
        return [p for p in body.parameters() if p.requires_grad], frozen

    # ------------------------------------------------------------------ data

    def _ids(self, frame: pl.DataFrame, what: str) -> tuple[list[str], list[str]]:
        missing = [c for c in (self.trigger_col, self.candidate_col) if c not in frame.columns]
        if missing:
            raise ConfigError(
                f"cross-encoder {what}: the pairs frame needs {missing}; has {frame.columns}"
            )
        trig = frame[self.trigger_col].cast(pl.String)
        cand = frame[self.candidate_col].cast(pl.String)
        if trig.null_count() or cand.null_count():
            raise DataFormatError(
                f"cross-encoder {what}: null id in {self.trigger_col!r}/{self.candidate_col!r}"
            )
        return trig.to_list(), cand.to_list()

    @staticmethod
    def _without_text(ids: Sequence[str], texts: dict[str, str], what: str | None) -> set[str]:
        """Ids without a (non-empty) text; an error naming some of them when ``what``."""
        bad = [
            i
            for i in dict.fromkeys(ids)
            if not isinstance(texts.get(i), str) or not texts[i].strip()
        ]
        if bad and what:
            raise UnknownIdError(
                f"cross-encoder {what}: {len(bad)} item id(s) without text, e.g. {bad[:5]}"
            )
        return set(bad)

    def _click_column(self, frame: pl.DataFrame) -> str | None:
        if self.click_col is not None:
            return self.click_col if self.click_col in frame.columns else None
        return next((c for c in ("click_count", "clicked") if c in frame.columns), None)

    def _targets(self, frame: pl.DataFrame, groups: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row target arrays (NaN = none) for the loss terms this mode trains."""

        def values(col: str) -> np.ndarray:
            try:
                x = frame[col].cast(pl.Float64).to_numpy().astype(np.float64)
            except pl.exceptions.PolarsError:
                raise DataFormatError("must be numeric", column=col) from None
            if np.isinf(x).any():
                raise DataFormatError("infinite value", column=col)
            return x

        def need(ok: bool, what: str, head: str) -> None:
            if not ok:
                raise ConfigError(
                    f"cross-encoder mode {self.mode!r}: the {head} head needs {what}; "
                    f"the frame has {frame.columns} (head_weights={{'{head}': 0}} skips the head)"
                )

        n = frame.height
        out: dict[str, np.ndarray] = {}
        distill = self.mode == "distill"
        use_labels = not distill or self.label_weight > 0
        if self.head_weights["click"] > 0:
            ccol = self._click_column(frame)
            if use_labels and ccol is not None:
                clicks = values(ccol)
                if (clicks[np.isfinite(clicks)] < 0).any():
                    raise DataFormatError("click counts must be ≥ 0", column=ccol)
                out["click"] = clicks
            elif not distill:
                need(False, "a click column ('click_count' or 'clicked')", "click")
            if distill:
                need("click_teacher" in frame.columns, "the column 'click_teacher'", "click")
                teacher = values("click_teacher")
                if not np.isfinite(teacher).any():
                    raise DataFormatError("no click teacher value", column="click_teacher")
                keys = groups if self.teacher_norm == "group" else np.zeros(n, dtype=np.int64)
                out["click_teacher"] = _zscore_within(teacher, keys)
        if self.head_weights["quality"] > 0:
            has_probs = all(c in frame.columns for c in PROB_COLUMNS)
            dist = None
            if has_probs:
                dist = np.stack([values(c) for c in PROB_COLUMNS], axis=1)
                rows = np.isfinite(dist).all(axis=1)
                if (dist[rows] < 0).any():
                    raise DataFormatError("negative probability", column=PROB_COLUMNS[0])
                sums = dist.sum(axis=1)
                if (sums[rows] <= 0).any():
                    raise DataFormatError("a label distribution sums to 0", column=PROB_COLUMNS[0])
                dist = np.where(rows[:, None], dist / np.where(rows, sums, 1.0)[:, None], np.nan)
            elif "quality_label" in frame.columns:
                labels = values("quality_label")
                try:
                    dist = soft_labels(labels)
                except DataFormatError:
                    raise DataFormatError(
                        f"labels must lie in [0, {N_CLASSES - 1}]", column="quality_label"
                    ) from None
            if use_labels and dist is not None:
                out["quality"] = dist
            elif not distill:
                need(False, "'quality_label' or the columns quality_probs_0..4", "quality")
            if distill:
                if "quality_teacher" in frame.columns:
                    teacher = values("quality_teacher")
                    bad = np.isfinite(teacher) & ((teacher < 0) | (teacher > N_CLASSES - 1))
                    if bad.any():
                        raise DataFormatError(
                            f"teacher scores must lie in [0, {N_CLASSES - 1}]",
                            column="quality_teacher",
                        )
                    out["quality_teacher"] = soft_labels(teacher)
                elif has_probs and dist is not None:
                    out["quality_teacher"] = dist
                else:
                    need(False, "'quality_teacher' (or quality_probs_0..4)", "quality")
        for key, arr in out.items():
            valid = np.isfinite(arr) if arr.ndim == 1 else np.isfinite(arr).all(axis=1)
            if not valid.any():
                raise DataFormatError(f"no usable {key} target: every value is null")
            if len(arr) != n:
                raise AssertionError(key)
        return out

    def _groups(self, frame: pl.DataFrame, triggers: list[str]) -> np.ndarray:
        if self.group_col is None:
            keys = pl.Series(triggers)
        elif self.group_col not in frame.columns:
            raise ConfigError(f"cross-encoder: group column {self.group_col!r} missing")
        else:
            keys = frame[self.group_col]
        return keys.cast(pl.String).rank("dense").to_numpy().astype(np.int64)

    # ------------------------------------------------------------------ training

    def fit(self, frame: pl.DataFrame, texts: Mapping[str, str] | pl.DataFrame) -> Self:
        """Train on the pairs ``frame`` (columns: see the module docstring) with the item
        ``texts`` (``{id: text}`` or an items frame with ``item_id`` and ``text_column``)."""
        if frame.is_empty():
            raise ConfigError("cross-encoder fit: the pairs frame is empty")
        tmap = text_map(texts, self.text_column)
        triggers, candidates = self._ids(frame, "fit")
        self._without_text(triggers + candidates, tmap, "fit")
        groups = self._groups(frame, triggers)
        targets = self._targets(frame, groups)
        device = self._device()
        with torch_threads(self.threads):
            self._build()
            assert self.net is not None and self.tokenizer is not None
            self.tokenizer.add(tmap, triggers + candidates)
            try:
                self._train(triggers, candidates, targets, groups, device)
            finally:
                self.tokenizer.reset()
        return self

    def _batches(self, groups: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """One epoch: groups in random order, rows shuffled within, cut into batches."""
        order = np.argsort(groups, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0])
        blocks = np.split(order, starts[1:])
        seq = np.concatenate([rng.permutation(blocks[g]) for g in rng.permutation(len(blocks))])
        return [seq[i : i + self.batch_size] for i in range(0, len(seq), self.batch_size)]

    def _train(
        self,
        triggers: list[str],
        candidates: list[str],
        targets: dict[str, np.ndarray],
        groups: np.ndarray,
        device: torch.device,
    ) -> None:
        assert self.net is not None and self.tokenizer is not None
        net = self.net.to(device)
        body_params, frozen = self._freeze(net)
        head_params = [p for n, p in net.named_parameters() if not n.startswith("body.")]
        param_groups = [{"params": head_params, "lr": self.head_lr}]
        if body_params:
            param_groups.append({"params": body_params, "lr": self.lr})
        opt = torch.optim.AdamW(
            param_groups, weight_decay=self.weight_decay, fused=device.type in ("cpu", "cuda")
        )
        n = len(triggers)
        steps = self.epochs * math.ceil(n / self.batch_size)
        warm = max(1, int(self.warmup * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
        )
        tensors = {k: torch.from_numpy(v.astype(np.float32)).to(device) for k, v in targets.items()}
        g_all = torch.from_numpy(groups).to(device)
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        # A frozen body gives each pair one fixed representation: compute it once.
        cached = None if body_params else self._encode_all(triggers, candidates, device)
        self.history = []
        net.train()
        for module in frozen:
            module.eval()  # no dropout where nothing learns (as in the cached path)
        with progress_bar(
            "cross-encoder training", total=steps, enabled=self.progress, unit="steps"
        ) as bar:
            for epoch in range(self.epochs):
                for idx in self._batches(groups, rng):
                    sel = torch.from_numpy(idx).to(device)
                    if cached is not None:
                        pooled = cached[sel]
                    else:
                        batch = self.tokenizer.batch(
                            [triggers[i] for i in idx], [candidates[i] for i in idx]
                        )
                        pooled = net.encode(**{k: v.to(device) for k, v in batch.items()})
                    click, quality = net.heads(pooled)
                    terms = self._loss_terms(
                        click, quality, {k: v[sel] for k, v in tensors.items()}, g_all[sel]
                    )
                    loss = self._total(terms)
                    if loss is None:
                        bar.advance()
                        continue
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(body_params + head_params, self.grad_clip)
                    opt.step()
                    sched.step()
                    record = {"epoch": float(epoch), "loss": float(loss.detach())}
                    record.update({k: float(v.detach()) for k, v in terms.items()})
                    self.history.append(record)
                    bar.advance()
        net.eval()
        if self.history:
            k = max(1, len(self.history) // 5)
            log.info(
                "cross-encoder (%s): %d pairs, %d steps, loss %.3f → %.3f",
                self.mode,
                n,
                len(self.history),
                np.mean([h["loss"] for h in self.history[:k]]),
                np.mean([h["loss"] for h in self.history[-k:]]),
            )

    def _encode_all(
        self, triggers: list[str], candidates: list[str], device: torch.device
    ) -> torch.Tensor:
        """Pooled representations of all pairs by the (frozen) body, in length order."""
        assert self.net is not None and self.tokenizer is not None
        net, tok = self.net.eval(), self.tokenizer
        order = sorted(
            range(len(triggers)), key=lambda i: tok.pair_length(triggers[i], candidates[i])
        )
        out: torch.Tensor | None = None
        bs = self.eval_batch_size
        with (
            torch.no_grad(),
            progress_bar(
                "cross-encoder pair encoding", total=len(order), enabled=self.progress
            ) as bar,
        ):
            for start in range(0, len(order), bs):
                rows = order[start : start + bs]
                batch = tok.batch([triggers[i] for i in rows], [candidates[i] for i in rows])
                pooled = net.encode(**{k: v.to(device) for k, v in batch.items()})
                if out is None:
                    out = torch.empty((len(order), pooled.shape[1]), device=device)
                out[torch.tensor(rows, device=device)] = pooled
                bar.advance(len(rows))
        assert out is not None
        return out

    def _loss_terms(
        self,
        click: torch.Tensor,
        quality: torch.Tensor,
        targets: dict[str, torch.Tensor],
        groups: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """The loss terms of one batch that have at least one target row."""
        terms: dict[str, torch.Tensor] = {}
        if "click" in targets:
            pair = pairwise_click_loss(click, groups, targets["click"])
            if pair is not None:
                terms["click_pair"] = pair
        if "click_teacher" in targets:
            t = targets["click_teacher"]
            ok = torch.isfinite(t)
            if ok.any():
                terms["click_mse"] = F.mse_loss(click[ok], t[ok])
        if "quality" in targets:
            t = targets["quality"]
            ok = torch.isfinite(t).all(dim=1)
            if ok.any():
                beta = self.sce_beta if self.quality_loss == "sce" else 0.0
                alpha = self.sce_alpha if self.quality_loss == "sce" else 1.0
                terms["quality_label"] = quality_label_loss(
                    quality[ok], t[ok], alpha=alpha, beta=beta
                ).mean()
        if "quality_teacher" in targets:
            t = targets["quality_teacher"]
            ok = torch.isfinite(t).all(dim=1)
            if ok.any():
                p = F.softmax(quality[ok], dim=-1)
                terms["quality_mse"] = ((p - t[ok]) ** 2).sum(-1).mean()
        return terms

    def _total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor | None:
        lw = self.label_weight if self.mode == "distill" else 1.0
        weights = {
            "click_pair": self.head_weights["click"] * lw,
            "click_mse": self.head_weights["click"],
            "quality_label": self.head_weights["quality"] * lw,
            "quality_mse": self.head_weights["quality"],
        }
        parts = [weights[k] * v for k, v in terms.items() if weights[k] > 0]
        return torch.stack(parts).sum() if parts else None

    # ------------------------------------------------------------------ scoring

    def _require_fitted(self) -> tuple[MultitaskCrossEncoder, PairTokenizer]:
        if self.net is None or self.tokenizer is None:
            raise ConfigError("cross-encoder is not fitted: call fit() or load() first")
        return self.net, self.tokenizer

    def score_pairs(
        self,
        triggers: Sequence[str],
        candidates: Sequence[str],
        texts: Mapping[str, str] | pl.DataFrame,
        *,
        missing: str = "error",
        progress: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(click_score, quality_score)`` arrays for the pairs ``triggers[i]``,
        ``candidates[i]`` — the fast path for precomputing stored candidates offline:
        each text is tokenized once, each distinct pair scored once, pairs sorted by
        length so batches carry little padding, ``torch.inference_mode``.

        ``missing="error"`` raises :class:`~knowrec.errors.UnknownIdError` for an id
        without text; ``"nan"`` gives those pairs NaN scores (missing for LightGBM)."""
        if missing not in ("error", "nan"):
            raise ConfigError(f"score_pairs: missing must be 'error' or 'nan', got {missing!r}")
        net, tok = self._require_fitted()
        trig = [str(t) for t in triggers]
        cand = [str(c) for c in candidates]
        if len(trig) != len(cand):
            raise ConfigError(f"score_pairs: {len(trig)} triggers but {len(cand)} candidates")
        click = np.full(len(trig), np.nan)
        quality = np.full(len(trig), np.nan)
        if not trig:
            return click, quality
        tmap = text_map(texts, self.text_column)
        bad = self._without_text(trig + cand, tmap, None if missing == "nan" else "scoring")
        keys = [(a, b) for a, b in zip(trig, cand, strict=True) if a not in bad and b not in bad]
        unique = list(dict.fromkeys(keys))
        tok.add(tmap, [a for a, _ in unique] + [b for _, b in unique])
        try:
            unique.sort(key=lambda p: tok.pair_length(*p))
            device = self._device()
            net.to(device).eval()
            scores: dict[tuple[str, str], tuple[float, float]] = {}
            show = self.progress if progress is None else progress
            bs = self.eval_batch_size
            with (
                torch_threads(self.threads),
                torch.inference_mode(),
                progress_bar("cross-encoder scoring", total=len(unique), enabled=show) as bar,
            ):
                for start in range(0, len(unique), bs):
                    chunk = unique[start : start + bs]
                    batch = tok.batch([a for a, _ in chunk], [b for _, b in chunk])
                    c, q = net(**{k: v.to(device) for k, v in batch.items()})
                    e = expected_label(q).float().cpu().numpy()
                    c = c.float().cpu().numpy()
                    scores.update(zip(chunk, zip(c.tolist(), e.tolist(), strict=True), strict=True))
                    bar.advance(len(chunk))
        finally:
            tok.reset()
        for i, key in enumerate(zip(trig, cand, strict=True)):
            if key in scores:
                click[i], quality[i] = scores[key]
        return click, quality

    def predict(
        self,
        frame: pl.DataFrame,
        texts: Mapping[str, str] | pl.DataFrame,
        *,
        missing: str = "error",
    ) -> pl.DataFrame:
        """``frame`` with ``click_score`` (click logit) and ``quality_score`` (expected
        quality label, 0–4) added, rows and order kept."""
        clash = [c for c in CROSS_ENCODER_FEATURES if c in frame.columns]
        if clash:
            raise ConfigError(f"cross-encoder predict: the pairs frame already has {clash}")
        self._require_fitted()
        tmap = text_map(texts, self.text_column)
        triggers, candidates = self._ids(frame, "predict")
        click, quality = self.score_pairs(triggers, candidates, tmap, missing=missing)
        return frame.with_columns(
            pl.Series(CLICK_SCORE, click, dtype=pl.Float64),
            pl.Series(QUALITY_SCORE, quality, dtype=pl.Float64),
        )

    # ------------------------------------------------------------------ persistence

    def save(self, directory: str | Path) -> Path:
        """``body/`` (transformers weights + tokenizer), ``heads.pt`` and
        ``cross_encoder.json`` (class, parameters, library versions)."""
        import transformers

        net, tok = self._require_fitted()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        net.body.save_pretrained(str(out / "body"))
        tok.tokenizer.save_pretrained(str(out / "body"))
        torch.save(net.heads_state(), out / "heads.pt")
        params = self.get_params()
        meta = {
            "class": "CrossEncoderRanker",
            "format": _FORMAT,
            "params": params,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        tmp = out / f"{_MANIFEST}.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, out / _MANIFEST)
        return out

    @classmethod
    def load(cls, directory: str | Path, **overrides: Any) -> CrossEncoderRanker:
        """A saved ranker; ``overrides`` change run-time settings (``device``,
        ``threads``, ``eval_batch_size``, ``progress``)."""
        import transformers

        src = Path(directory)
        try:
            meta = json.loads((src / _MANIFEST).read_text())
            params = dict(meta["params"])
        except (OSError, ValueError, KeyError) as exc:
            raise DataFormatError(f"not a saved cross-encoder: {exc}", path=src) from None
        allowed = {"device", "threads", "eval_batch_size", "progress"}
        if set(overrides) - allowed:
            raise ConfigError(f"cross-encoder load: only {sorted(allowed)} can be overridden")
        saved = meta.get("versions", {}).get("transformers")
        if saved != transformers.__version__:
            log.warning(
                "cross-encoder saved with transformers %s, loaded with %s",
                saved,
                transformers.__version__,
            )
        ranker = cls(**{**params, **overrides})
        ranker._build(src / "body")
        assert ranker.net is not None
        try:
            heads = torch.load(src / "heads.pt", map_location="cpu", weights_only=True)
            result = ranker.net.load_state_dict(heads, strict=False)
        except (OSError, RuntimeError) as exc:
            raise DataFormatError(f"cross-encoder heads: {exc}", path=src / "heads.pt") from None
        lacking = [k for k in result.missing_keys if not k.startswith("body.")]
        if lacking or result.unexpected_keys:
            raise DataFormatError(
                f"cross-encoder heads: missing {lacking}, unexpected {result.unexpected_keys}",
                path=src / "heads.pt",
            )
        ranker.net.eval()
        return ranker


def _zscore_within(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``values`` z-scored within each key over its finite values (NaN stays NaN; a key
    whose values are all equal gets 0)."""
    ok = np.isfinite(values)
    x = np.where(ok, values, 0.0)
    count = np.bincount(keys, weights=ok.astype(np.float64))
    mean = np.bincount(keys, weights=x) / np.maximum(count, 1)
    var = np.bincount(keys, weights=ok * (x - mean[keys]) ** 2) / np.maximum(count, 1)
    std = np.sqrt(var)[keys]
    z = np.where(std > 1e-12, (x - mean[keys]) / np.where(std > 1e-12, std, 1.0), 0.0)
    return np.where(ok, z, np.nan)


def _encoder_layers(body: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a BERT-like body (``encoder.layer``), bottom first."""
    encoder = getattr(body, "encoder", None)
    layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
    if layers is None:
        raise ConfigError(
            f"cross-encoder: cannot find the transformer layers of {type(body).__name__}"
        )
    return list(layers)


class CrossEncoderFeatures:
    """A feature group (:func:`knowrec.ranking.features.build_features`) adding the two
    head scores of a fitted :class:`CrossEncoderRanker` for stage 2b."""

    name = "cross_encoder"

    def __init__(
        self,
        ranker: CrossEncoderRanker,
        texts: Mapping[str, str] | pl.DataFrame,
        *,
        missing: str = "nan",
    ) -> None:
        self.ranker, self.texts, self.missing = ranker, texts, missing

    @property
    def columns(self) -> list[str]:
        return list(CROSS_ENCODER_FEATURES)

    def transform(self, pairs: pl.DataFrame) -> pl.DataFrame:
        return self.ranker.predict(pairs, self.texts, missing=self.missing)


def quality_targets(scores: pl.DataFrame, *, variant: str = "b") -> pl.DataFrame:
    """Judge output (:meth:`knowrec.judge.judge.Judge.score`) → cross-encoder targets:
    ``trigger_id``, ``item_id``, ``quality_probs_0..4`` (the judges' mean label
    distribution, from ``probs``, or ``probs_c`` for variant ``c``) and
    ``quality_teacher`` (the expected score ``score_b``/``score_c``); failed pairs get
    nulls. Join the result onto the training pairs."""
    variant = variant.lower()
    if variant not in ("b", "c"):
        raise ConfigError(f"quality_targets: variant must be 'b' or 'c', got {variant!r}")
    probs_col, score_col = ("probs", "score_b") if variant == "b" else ("probs_c", "score_c")
    need = ["trigger_id", "candidate_id", probs_col, score_col]
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise ConfigError(
            f"quality_targets: the judge scores need {missing}; have {scores.columns}"
        )
    dists = []
    for judges in scores[probs_col].to_list():
        p = np.asarray(judges if judges else [], dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != N_CLASSES or p.shape[0] == 0:
            dists.append([None] * N_CLASSES)
        else:
            mean = p.mean(axis=0)
            total = mean.sum()
            dists.append(list(mean / total) if total > 0 else [None] * N_CLASSES)
    cols = {c: [d[k] for d in dists] for k, c in enumerate(PROB_COLUMNS)}
    return pl.DataFrame(
        {
            "trigger_id": scores["trigger_id"].cast(pl.String),
            "item_id": scores["candidate_id"].cast(pl.String),
            **{c: pl.Series(c, v, dtype=pl.Float64) for c, v in cols.items()},
            "quality_teacher": scores[score_col].cast(pl.Float64),
        }
    )


RANKERS["cross_encoder"] = CrossEncoderRanker

__all__ = [
    "CLICK_SCORE",
    "CROSS_ENCODER_FEATURES",
    "PROB_COLUMNS",
    "QUALITY_SCORE",
    "CrossEncoderFeatures",
    "CrossEncoderRanker",
    "MultitaskCrossEncoder",
    "PairTokenizer",
    "expected_label",
    "pairwise_click_loss",
    "quality_label_loss",
    "quality_targets",
    "soft_labels",
    "text_map",
]
