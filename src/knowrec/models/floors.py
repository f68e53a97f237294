"""The CTR floors every results table shows (docs/trawl.md): the per-item positive rate and a
logistic regression on simple features, so a reader sees what a model adds.

Both read CTR samples frames (:func:`knowrec.data.protocol.ctr_samples`): ``fit(train)``
then ``predict(frame) -> ndarray`` of probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.optimize import minimize

from knowrec.errors import ConfigError


def _require(frame: pl.DataFrame, *columns: str, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what}: the samples lack the column(s) {', '.join(missing)}")


class ItemRate:
    """p(i) = (positives_i + s·g) / (n_i + s): the item's positive rate in training,
    shrunk towards the global rate g with ``prior_strength`` s; unseen items get g."""

    def __init__(self, prior_strength: float = 1.0, *, item: str = "item_id", label: str = "label"):
        if prior_strength < 0:
            raise ConfigError(f"ItemRate: prior_strength must be >= 0, got {prior_strength}")
        self.prior_strength = prior_strength
        self.item = item
        self.label = label

    def fit(self, train: pl.DataFrame) -> ItemRate:
        _require(train, self.item, self.label, what="ItemRate.fit")
        y = train[self.label].cast(pl.Float64)
        self.global_rate = float(y.mean()) if len(y) else 0.5  # type: ignore[arg-type]
        self.stats = train.group_by(self.item).agg(
            __pos=pl.col(self.label).cast(pl.Float64).sum(), __n=pl.len().cast(pl.Float64)
        )
        return self

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """(n,) float64."""
        _require(frame, self.item, what="ItemRate.predict")
        joined = frame.select(self.item).join(
            self.stats, on=self.item, how="left", maintain_order="left"
        )
        pos = joined["__pos"].fill_null(0.0).to_numpy()
        n = joined["__n"].fill_null(0.0).to_numpy()
        s = self.prior_strength
        with np.errstate(invalid="ignore", divide="ignore"):
            p = (pos + s * self.global_rate) / (n + s)
        return np.where(n + s > 0, p, self.global_rate)


class LogisticFloor:
    """L2-regularised logistic regression on one-hot ``categorical`` columns, multi-hot
    ``multi_valued`` list columns, and the history's mean rating, share of ratings above
    ``like_above`` and length (from ``ratings``). Columns absent at ``fit`` are skipped;
    a column used at ``fit`` and absent at ``predict`` is a :class:`ConfigError`.
    Categories unseen in training contribute nothing."""

    def __init__(
        self,
        categorical: Sequence[str] = ("item_id", "gender", "age", "occupation"),
        multi_valued: Sequence[str] = ("genres",),
        *,
        ratings: str | None = "hist_ratings",
        like_above: float = 3.0,
        l2: float = 1e-5,
        label: str = "label",
    ) -> None:
        if l2 < 0:
            raise ConfigError(f"LogisticFloor: l2 must be >= 0, got {l2}")
        self.categorical = list(categorical)
        self.multi_valued = list(multi_valued)
        self.ratings = ratings
        self.like_above = like_above
        self.l2 = l2
        self.label = label

    def _history(self, frame: pl.DataFrame) -> np.ndarray:
        r = frame[self.ratings].cast(pl.List(pl.Float64))  # type: ignore[index]
        mean = r.list.mean().to_numpy().astype(np.float64)
        liked = r.list.eval((pl.element() > self.like_above).cast(pl.Float64)).list.mean()
        liked_np = liked.to_numpy().astype(np.float64)
        length = r.list.len().fill_null(0).to_numpy().astype(np.float64)
        mean = np.where(np.isnan(mean), self._mean_fill, mean)
        liked_np = np.where(np.isnan(liked_np), self._liked_fill, liked_np)
        return np.column_stack([mean, liked_np, np.log1p(length)])

    def _design(self, frame: pl.DataFrame) -> sp.csr_matrix:
        _require(frame, *self._cat, *self._multi, what="LogisticFloor.predict")
        n = frame.height
        blocks = []
        if self._use_ratings:
            _require(frame, self.ratings or "", what="LogisticFloor.predict")
            dense = (self._history(frame) - self._h_mean) / self._h_std
            blocks.append(sp.csr_matrix(dense))
        for c in self._cat:
            codes = self._lookup(frame[c].cast(pl.String), self._vocab[c])
            ok = codes >= 0
            rows = np.nonzero(ok)[0]
            blocks.append(
                sp.csr_matrix(
                    (np.ones(len(rows)), (rows, codes[ok])), shape=(n, len(self._vocab[c]))
                )
            )
        for c in self._multi:
            lists = frame[c].cast(pl.List(pl.String))
            lengths = lists.list.len().fill_null(0).to_numpy()
            values = lists.explode(empty_as_null=False, keep_nulls=False)
            codes = self._lookup(values, self._vocab[c])
            rows = np.repeat(np.arange(n), lengths)
            ok = codes >= 0
            m = sp.csr_matrix(
                (np.ones(int(ok.sum())), (rows[ok], codes[ok])), shape=(n, len(self._vocab[c]))
            )
            m.data[:] = 1.0
            blocks.append(m)
        blocks.append(sp.csr_matrix(np.ones((n, 1))))  # intercept
        return sp.hstack(blocks, format="csr")

    @staticmethod
    def _lookup(values: pl.Series, vocab: list[str]) -> np.ndarray:
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        out = values.replace_strict(
            vocab, list(range(len(vocab))), default=-1, return_dtype=pl.Int64
        )
        return out.fill_null(-1).to_numpy()

    def fit(self, train: pl.DataFrame) -> LogisticFloor:
        _require(train, self.label, what="LogisticFloor.fit")
        self._cat = [c for c in self.categorical if c in train.columns]
        self._multi = [c for c in self.multi_valued if c in train.columns]
        self._use_ratings = self.ratings is not None and self.ratings in train.columns
        self._vocab = {
            c: sorted(train[c].cast(pl.String).drop_nulls().unique().to_list()) for c in self._cat
        }
        for c in self._multi:
            values = train[c].cast(pl.List(pl.String)).explode(empty_as_null=False)
            self._vocab[c] = sorted(values.drop_nulls().unique().to_list())
        if self._use_ratings:
            self._mean_fill, self._liked_fill = 0.0, 0.0
            raw = self._history(train)
            self._mean_fill = float(np.nanmean(raw[:, 0])) if np.isfinite(raw[:, 0]).any() else 0
            self._liked_fill = float(np.nanmean(raw[:, 1])) if np.isfinite(raw[:, 1]).any() else 0
            raw = self._history(train)
            self._h_mean, self._h_std = raw.mean(axis=0), raw.std(axis=0)
            self._h_std[self._h_std == 0] = 1.0
        x = self._design(train)
        y = train[self.label].cast(pl.Float64).to_numpy()
        n, l2 = len(y), self.l2
        xt = x.T.tocsr()

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = x @ w
            loss = float((np.logaddexp(0, z) - y * z).mean() + 0.5 * l2 * (w[:-1] @ w[:-1]))
            grad = xt @ (1 / (1 + np.exp(-z)) - y) / n
            grad[:-1] += l2 * w[:-1]
            return loss, grad

        self.coef_ = minimize(objective, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
        return self

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """(n,) float64 probabilities."""
        return 1 / (1 + np.exp(-(self._design(frame) @ self.coef_)))
