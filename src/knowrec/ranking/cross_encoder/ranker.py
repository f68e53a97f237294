"""The ranker: :class:`CrossEncoderRanker` (fit on pairs, score pairs, save/load) and its
stage-2b feature group."""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Self

import numpy as np
import polars as pl
import torch
from pydantic import Field

from knowrec.config import checked_init
from knowrec.encoders import DEFAULT_MODEL, resolve_model_path
from knowrec.errors import ConfigError, DataFormatError, KnowrecError, UnknownIdError
from knowrec.progress import progress_bar
from knowrec.ranking.cross_encoder.losses import (
    HEADS,
    Mode,
    MultitaskLoss,
    QualityLoss,
    expected_label,
)
from knowrec.ranking.cross_encoder.module import MultitaskCrossEncoder, Pooling
from knowrec.ranking.cross_encoder.targets import TeacherNorm, pair_groups, training_targets
from knowrec.ranking.cross_encoder.tokenizer import PairTokenizer, text_map
from knowrec.train import Batches, TrainConfig, Trainer, torch_threads

log = logging.getLogger(__name__)

CLICK_SCORE, QUALITY_SCORE = "click_score", "quality_score"
#: The two head scores :meth:`CrossEncoderRanker.predict` adds: stage-2b features.
CROSS_ENCODER_FEATURES: tuple[str, ...] = (CLICK_SCORE, QUALITY_SCORE)
_MANIFEST = "cross_encoder.json"
_FORMAT = 1
# Parameters that do not change what a fit learns: a resume may change them.
_RUN_TIME = ("eval_batch_size", "checkpoint_every", "threads", "device", "progress")

PositiveInt = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(ge=0, lt=1)]


class CrossEncoderRanker:
    """The multitask (click + quality) MiniLM cross-encoder; see the package docstring.

    ``model``: a packaged encoder name or a local transformers/sentence-transformers
    folder. ``max_tokens``: pair length after truncation. ``lr`` (body) and ``head_lr``
    (heads): AdamW learning rates with linear warm-up over ``warmup`` of the steps and
    linear decay. ``train_layers``: how many of the top transformer layers are trained
    (None = all; the embedding tables always stay frozen — half the parameters, no gain on
    ranking-sized data); fewer layers train much faster on a CPU. ``head_weights``: loss
    weight per head (``click``, ``quality``; 0 leaves that head untrained). ``mode``:
    ``distill`` or ``direct``; ``label_weight``: weight of the label losses in distill mode.
    ``quality_loss``: ``sce`` (α·CE + β·RCE) or ``ce``. ``checkpoint_every``: with a
    ``checkpoint_dir`` given to :meth:`fit`, also checkpoint every N steps (0: at epoch
    ends). ``threads``: torch threads while training/scoring (None keeps torch's setting).
    ``device``: ``cpu``, ``cuda``, ….
    """

    @checked_init("cross-encoder")
    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        max_tokens: Annotated[int, Field(ge=8)] = 128,
        mode: Mode = "distill",
        head_weights: Mapping[str, float] | None = None,
        label_weight: NonNegative = 0.0,
        quality_loss: QualityLoss = "sce",
        sce_alpha: NonNegative = 1.0,
        sce_beta: NonNegative = 1.0,
        lr: Rate = 5e-5,
        head_lr: Rate = 1e-3,
        weight_decay: NonNegative = 0.01,
        warmup: Share = 0.1,
        epochs: PositiveInt = 1,
        batch_size: Annotated[int, Field(ge=2)] = 16,
        eval_batch_size: PositiveInt = 64,
        train_layers: Annotated[int, Field(ge=0)] | None = None,
        dropout: Share = 0.1,
        pooling: Pooling = "interaction",
        grad_clip: Rate | None = 1.0,
        trigger_col: str = "trigger_id",
        candidate_col: str = "item_id",
        click_col: str | None = None,
        group_col: str | None = None,
        teacher_norm: TeacherNorm = "group",
        text_column: str = "text",
        checkpoint_every: Annotated[int, Field(ge=0)] = 0,
        threads: PositiveInt | None = None,
        device: str = "cpu",
        seed: int = 0,
        progress: bool = True,
    ) -> None:
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
        self.teacher_norm, self.checkpoint_every = teacher_norm, checkpoint_every
        self.threads, self.device, self.seed, self.progress = threads, device, seed, progress
        self.net: MultitaskCrossEncoder | None = None
        self.tokenizer: PairTokenizer | None = None
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ introspection

    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor parameters, from its signature."""
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (``CrossEncoderRanker(**ranker.get_params())`` clones)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> Self:
        """Change parameters (unknown names are an error); re-validated as in ``__init__``."""
        names = self.param_names()
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ConfigError(
                f"cross-encoder: unknown parameter(s) {unknown}; known are {', '.join(names)}"
            )
        fresh = type(self)(**{**self.get_params(), **params})
        for name in names:
            setattr(self, name, getattr(fresh, name))
        return self

    # ------------------------------------------------------------------ building

    def _build(self, path: Path | None = None) -> tuple[MultitaskCrossEncoder, PairTokenizer]:
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
        return MultitaskCrossEncoder(body, self.dropout, self.pooling), PairTokenizer(
            tok, self.max_tokens
        )

    def _device(self) -> torch.device:
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("cross-encoder: device 'cuda' asked for but CUDA is not available")
        return dev

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

    # ------------------------------------------------------------------ training

    def fit(
        self,
        frame: pl.DataFrame,
        texts: Mapping[str, str] | pl.DataFrame,
        *,
        checkpoint_dir: str | Path | None = None,
        on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    ) -> Self:
        """Train on the pairs ``frame`` (columns: see the package docstring) with the item
        ``texts`` (``{id: text}`` or an items frame with ``item_id`` and ``text_column``).

        ``checkpoint_dir``: keep the training state there (each epoch end and every
        ``checkpoint_every`` steps); a fit with the same data, parameters and directory
        after an interruption continues from the last checkpoint and ends with the same
        model. ``on_checkpoint``: :meth:`knowrec.train.Trainer.fit`'s hook."""
        if frame.is_empty():
            raise ConfigError("cross-encoder fit: the pairs frame is empty")
        tmap = text_map(texts, self.text_column)
        triggers, candidates = self._ids(frame, "fit")
        self._without_text(triggers + candidates, tmap, "fit")
        groups = pair_groups(frame, triggers, self.group_col)
        targets = training_targets(
            frame,
            groups,
            mode=self.mode,
            head_weights=self.head_weights,
            label_weight=self.label_weight,
            click_col=self.click_col,
            teacher_norm=self.teacher_norm,
        )
        device = self._device()
        with torch_threads(self.threads):
            net, tok = self._build()
            tok.add(tmap, triggers + candidates)
            try:
                self.history = self._train(
                    net, tok, triggers, candidates, targets, groups, device,
                    checkpoint_dir, on_checkpoint,
                )  # fmt: skip
            finally:
                tok.reset()
        self.net, self.tokenizer = net, tok
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
        net: MultitaskCrossEncoder,
        tok: PairTokenizer,
        triggers: list[str],
        candidates: list[str],
        targets: dict[str, np.ndarray],
        groups: np.ndarray,
        device: torch.device,
        checkpoint_dir: str | Path | None,
        on_checkpoint: Callable[[dict[str, Any]], None] | None,
    ) -> list[dict[str, float]]:
        """Fit ``net`` with the Trainer; the per-step loss records."""
        net.to(device).freeze(self.train_layers)
        heads = [p for n, p in net.named_parameters() if not n.startswith("body.")]
        body = [p for p in net.body.parameters() if p.requires_grad]
        rng = np.random.default_rng(self.seed)
        plans = [self._batches(groups, rng) for _ in range(self.epochs)]
        # A frozen body gives each pair one fixed representation: compute it once.
        cached = None if body else self._encode_all(net, tok, triggers, candidates, device)
        loss = MultitaskLoss(
            mode=self.mode,
            head_weights=self.head_weights,
            label_weight=self.label_weight,
            quality_loss=self.quality_loss,
            sce_alpha=self.sce_alpha,
            sce_beta=self.sce_beta,
        )
        objective = _PairLoss(net, tok, triggers, candidates, targets, groups, loss, cached)
        config = TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer="adamw",
            weight_decay=self.weight_decay,
            schedule="linear",
            warmup=self.warmup,
            grad_clip=self.grad_clip,
            seed=self.seed,
            patience=0,
            restore_best=False,
            checkpoint_every=self.checkpoint_every,
            progress=self.progress,
        )
        trainer = Trainer(
            net,
            config,
            objective=objective,
            param_groups=[{"params": heads, "lr": self.head_lr}, {"params": body}],
            params={k: v for k, v in self.get_params().items() if k not in _RUN_TIME},
            checkpoint_dir=checkpoint_dir,
            name="cross-encoder training",
        )
        steps = trainer.fit(
            Batches(len(triggers), plans.__getitem__),
            resume=checkpoint_dir is not None,
            on_checkpoint=on_checkpoint,
        ).steps
        net.eval()
        if steps:
            k = max(1, len(steps) // 5)
            log.info(
                "cross-encoder (%s): %d pairs, %d steps, loss %.3f → %.3f",
                self.mode,
                len(triggers),
                len(steps),
                np.mean([h["loss"] for h in steps[:k]]),
                np.mean([h["loss"] for h in steps[-k:]]),
            )
        return steps

    def _encode_all(
        self,
        net: MultitaskCrossEncoder,
        tok: PairTokenizer,
        triggers: list[str],
        candidates: list[str],
        device: torch.device,
    ) -> torch.Tensor:
        """Pooled representations of all pairs by the (frozen) body, in length order."""
        net.eval()
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
        ranker.net, ranker.tokenizer = ranker._build(src / "body")
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


class _PairLoss:
    """The Trainable of a fit: the multitask loss of a batch of pair rows (index arrays).
    ``cached``: the pooled pair representations of a frozen body, or None (encode)."""

    def __init__(
        self,
        net: MultitaskCrossEncoder,
        tok: PairTokenizer,
        triggers: list[str],
        candidates: list[str],
        targets: dict[str, np.ndarray],
        groups: np.ndarray,
        loss: MultitaskLoss,
        cached: torch.Tensor | None,
    ) -> None:
        self.device = next(net.parameters()).device
        self.net, self.tok, self.multitask, self.cached = net, tok, loss, cached
        self.triggers, self.candidates = triggers, candidates
        self.targets = {
            k: torch.from_numpy(v.astype(np.float32)).to(self.device) for k, v in targets.items()
        }
        self.groups = torch.from_numpy(groups).to(self.device)

    def loss(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        sel = torch.from_numpy(index).to(self.device)
        if self.cached is not None:
            pooled = self.cached[sel]
        else:
            batch = self.tok.batch(
                [self.triggers[i] for i in index], [self.candidates[i] for i in index]
            )
            pooled = self.net.encode(**{k: v.to(self.device) for k, v in batch.items()})
        click, quality = self.net.heads(pooled)
        targets = {k: v[sel] for k, v in self.targets.items()}
        terms = self.multitask.terms(click, quality, targets, self.groups[sel])
        total = self.multitask.total(terms)
        if total is None:
            return {}  # no target in this batch: no step
        return {"loss": total, **{k: v.detach() for k, v in terms.items()}}


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
