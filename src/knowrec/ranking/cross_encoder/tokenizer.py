"""Pair inputs: item texts by id, tokenized once, assembled into padded pair batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import torch

from knowrec.errors import ConfigError


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
