"""The final score and its trade-off curve (docs/explore.md, §2.3).

``final = (1 − λ) · z(ranker) + λ · z(quality)``, each z-score with a mean and standard
deviation measured once on a sample of traffic (:class:`ZScore`), so λ = 0 keeps the
ranker's order and λ = 1 the quality order. :func:`lambda_sweep` evaluates two metrics
along λ (the paper: quality-filtered ClickNDCG@5 against RecoDCG@5), :func:`choose_lambda`
picks a point from the curve and :func:`tradeoff_figure` draws it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from knowrec.errors import ConfigError

log = logging.getLogger(__name__)

QUALITY = "quality"  # the quality score column of a frame given to Combination


@dataclass(frozen=True)
class ZScore:
    """``(x − mean) / std`` with statistics from a sample; NaN inputs map to 0 (the mean),
    so a candidate without a quality score is neutral rather than an error."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: ArrayLike, *, sample_size: int | None = 100_000, seed: int = 0) -> ZScore:
        """Statistics of (a random sample of at most ``sample_size`` of) the finite values.
        A constant sample gets ``std = 0``: every z-score is then 0 (logged)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        if x.size == 0:
            raise ConfigError("ZScore.fit: no finite value to measure")
        if sample_size is not None and x.size > sample_size:
            x = np.random.default_rng(seed).choice(x, size=sample_size, replace=False)
        std = float(x.std())
        if std == 0.0:
            log.warning("ZScore: constant sample (%.4g); z-scores will be 0", float(x[0]))
        return cls(float(x.mean()), std)

    def __call__(self, values: ArrayLike) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        if self.std == 0.0:
            return np.zeros_like(x)
        z = (x - self.mean) / self.std
        return np.where(np.isnan(z), 0.0, z)


def _check_lambda(lam: float) -> float:
    if not 0.0 <= float(lam) <= 1.0:
        raise ConfigError(f"λ must lie in [0, 1], got {lam}")
    return float(lam)


def final_score(
    ranker: ArrayLike,
    quality: ArrayLike,
    lam: float,
    *,
    ranker_z: ZScore | None = None,
    quality_z: ZScore | None = None,
) -> np.ndarray:
    """``(1 − λ)·z(ranker) + λ·z(quality)``; z-statistics are measured on the inputs
    themselves when not given (pass ones fitted on a traffic sample to serve)."""
    lam = _check_lambda(lam)
    r = np.asarray(ranker, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape:
        raise ConfigError(f"final_score: ranker {r.shape} and quality {q.shape} differ in shape")
    rz = (ranker_z or ZScore.fit(r))(r)
    if quality_z is None and not np.isfinite(q).any():
        log.warning("final_score: no quality score at all; the ranker's order is kept")
        return (1.0 - lam) * rz
    qz = (quality_z or ZScore.fit(q))(q)
    return (1.0 - lam) * rz + lam * qz


class SweepPoint(NamedTuple):
    """One point of the trade-off curve: ``(lam, metric_a, metric_b)``."""

    lam: float
    metric_a: float
    metric_b: float


def lambda_sweep(
    ranker: ArrayLike,
    quality: ArrayLike,
    metric_a: Callable[[np.ndarray], float],
    metric_b: Callable[[np.ndarray], float],
    *,
    lambdas: Sequence[float] | None = None,
    ranker_z: ZScore | None = None,
    quality_z: ZScore | None = None,
) -> list[SweepPoint]:
    """Evaluate ``metric_a(scores)`` and ``metric_b(scores)`` on the final scores for each
    λ (default 0, 0.05, …, 1). The metrics close over labels and groups, e.g.
    ``lambda s: quality_filtered_click_ndcg_at_k(clicked, s, judge, 5, groups)``."""
    grid = np.linspace(0.0, 1.0, 21) if lambdas is None else np.asarray(lambdas, dtype=float)
    if grid.size == 0:
        raise ConfigError("lambda_sweep: no λ values")
    r = np.asarray(ranker, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    rz = ranker_z or ZScore.fit(r)
    qz = quality_z or ZScore.fit(q)
    points = []
    for lam in grid:
        s = final_score(r, q, float(lam), ranker_z=rz, quality_z=qz)
        points.append(SweepPoint(float(lam), float(metric_a(s)), float(metric_b(s))))
    return points


def choose_lambda(points: Sequence[SweepPoint], *, max_drop_a: float = 0.02) -> SweepPoint:
    """The point with the best ``metric_b`` whose ``metric_a`` stays within a relative
    ``max_drop_a`` of the λ = 0 point (e.g. the largest RecoDCG gain that costs at most 2%
    of quality-filtered ClickNDCG). Ties go to the smaller λ."""
    if not points:
        raise ConfigError("choose_lambda: empty sweep")
    ordered = sorted(points, key=lambda p: p.lam)
    floor = ordered[0].metric_a * (1.0 - max_drop_a)
    ok = [p for p in ordered if p.metric_a >= floor - 1e-12] or [ordered[0]]
    return max(ok, key=lambda p: (p.metric_b, -p.lam))


def tradeoff_figure(
    points: Sequence[SweepPoint],
    *,
    label_a: str = "quality-filtered ClickNDCG@5",
    label_b: str = "RecoDCG@5",
    chosen: SweepPoint | None = None,
) -> Any:
    """A matplotlib figure of metric_a (x) against metric_b (y), points labelled by λ."""
    from matplotlib.figure import Figure  # not pyplot: nothing keeps the figure open

    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    xs = [p.metric_a for p in points]
    ys = [p.metric_b for p in points]
    ax.plot(xs, ys, "o-", color="#3465a4", ms=4)
    for p in points[:: max(1, len(points) // 6)]:
        ax.annotate(
            f"λ={p.lam:.2f}",
            (p.metric_a, p.metric_b),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    if chosen is not None:
        ax.plot(
            [chosen.metric_a],
            [chosen.metric_b],
            "*",
            color="#cc0000",
            ms=12,
            label=f"chosen λ={chosen.lam:.2f}",
        )
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(label_a)
    ax.set_ylabel(label_b)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


@dataclass
class Combination:
    """The final score's parameters: z-statistics of ranker and quality, and λ; called on a
    frame with ``ranker`` and ``quality`` columns (a missing quality is neutral)."""

    lam: float
    ranker_z: ZScore
    quality_z: ZScore | None
    sweep: list[SweepPoint] = field(default_factory=list)
    chosen_by: str = ""

    def __call__(self, frame: pl.DataFrame) -> np.ndarray:
        r = frame["ranker"].to_numpy()
        if self.quality_z is None:
            return self.ranker_z(r)
        q = frame[QUALITY].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        return final_score(r, q, self.lam, ranker_z=self.ranker_z, quality_z=self.quality_z)

    def refit_ranker(self, frame: pl.DataFrame) -> Combination:
        """The same λ and quality statistics with the ranker's z-statistics measured on
        ``frame`` (another candidate set's ranker)."""
        z = ZScore.fit(frame["ranker"].to_numpy())
        return Combination(self.lam, z, self.quality_z, self.sweep, self.chosen_by)

    def to_dict(self) -> dict[str, Any]:
        z = self.quality_z
        return {
            "lambda": self.lam,
            "ranker_z": [self.ranker_z.mean, self.ranker_z.std],
            "quality_z": None if z is None else [z.mean, z.std],
            "chosen_by": self.chosen_by,
            "sweep": [p._asdict() for p in self.sweep],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Combination:
        q = d.get("quality_z")
        return cls(
            lam=float(d["lambda"]),
            ranker_z=ZScore(*d["ranker_z"]),
            quality_z=None if q is None else ZScore(*q),
            chosen_by=d.get("chosen_by", ""),
        )
