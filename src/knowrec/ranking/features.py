"""(trigger, candidate) features for the ranking stages (docs/explore.md).

A *feature group* appends columns to a pairs frame (``trigger_id``, ``item_id``, …) and
names them in ``columns``; :func:`build_features` applies several. Stage 1 uses the
cheap groups here; later stages append more (cross-encoder click/quality head scores,
judge scores) by adding a group — or simply a column plus :class:`ColumnFeatures` —
and listing the new names in the ranker's ``features``::

    co = CoEngagementFeatures(rule="rating >= 4", windows_days=(7, 30, 180)).fit(history, now=cut)
    frame, names = build_features(pairs, [co, ColumnFeatures(path_columns(pairs))])
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import polars as pl

from knowrec.errors import ConfigError, DataFormatError
from knowrec.similarity.coclick import coclick_counts, satisfied

_DAY_MS = 86_400_000


@runtime_checkable
class FeatureGroup(Protocol):
    """Appends ``columns`` to a pairs frame, keeping its rows and their order."""

    name: str

    @property
    def columns(self) -> list[str]: ...

    def transform(self, pairs: pl.DataFrame) -> pl.DataFrame: ...


def _check_pairs(pairs: pl.DataFrame, what: str) -> None:
    missing = [c for c in ("trigger_id", "item_id") if c not in pairs.columns]
    if missing:
        raise ConfigError(f"{what}: the pairs frame needs {missing}; have {pairs.columns}")


class ColumnFeatures:
    """Columns already on the pairs frame used as features as they are (path scores,
    fusion score and rank, precomputed cross-encoder or judge scores)."""

    def __init__(self, columns: Sequence[str], name: str = "columns") -> None:
        self.name = name
        self._columns = list(columns)

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def transform(self, pairs: pl.DataFrame) -> pl.DataFrame:
        missing = [c for c in self._columns if c not in pairs.columns]
        if missing:
            raise ConfigError(
                f"feature group {self.name!r}: column(s) {missing} not in the pairs frame "
                f"(have {pairs.columns})"
            )
        return pairs


def path_columns(pairs: pl.DataFrame, prefix: str = "path_") -> list[str]:
    """The recall-provenance columns of a :func:`~knowrec.retrieval.merge.candidate_frame`:
    per-path scores plus ``score`` (fusion), ``rank`` and ``n_paths`` when present."""
    names = [c for c in pairs.columns if c.startswith(prefix)]
    return names + [c for c in ("score", "rank", "n_paths") if c in pairs.columns]


def _read_table(path: Path) -> pl.DataFrame:
    """A Parquet file, or a directory of part files as Spark writes them."""
    return pl.read_parquet(path / "*.parquet" if path.is_dir() else path)


class CoEngagementFeatures:
    """Cheap co-engagement features of (trigger, candidate) from history sessions.

    Counts come from :func:`~knowrec.similarity.coclick.coclick_counts` over sessions
    before ``now``: ``cc_sat`` (satisfied co-clicks, ``rule``) and ``cc_sat_<d>d`` over
    each window, ``cc_all`` (co-engagements of any kind, the impression-like count),
    ``cc_sat_rate`` = cc_sat / cc_all (a CTR-like ratio), ``cc_cond`` = cc_sat /
    satisfied sessions of the trigger, ``cc_cos`` = cc_sat / √(sat_pop_t · sat_pop_c);
    item side: ``pop_t``, ``pop_c`` (sessions engaging), ``sat_pop_t``, ``sat_pop_c``,
    ``sat_rate_c``, ``pop_c_<d>d`` (satisfied sessions in the window); recency:
    ``days_since_cc`` (last co-click), ``days_since_c`` (last engagement) and ``age_c``
    (first engagement), in days before ``now``. Missing counts are 0, missing ratios and
    recencies null (LightGBM treats them as missing).
    """

    name = "coengagement"

    def __init__(
        self,
        *,
        rule: str | None = None,
        windows_days: Sequence[int] = (7, 30, 180),
        session_col: str = "session_id",
        max_session_items: int = 50,
    ) -> None:
        self.rule, self.windows_days = rule, tuple(int(d) for d in windows_days)
        self.session_col, self.max_session_items = session_col, max_session_items
        self.now: datetime | None = None
        self._pairs: pl.DataFrame | None = None
        self._items: pl.DataFrame | None = None

    @property
    def columns(self) -> list[str]:
        w = self.windows_days
        return [
            "cc_sat",
            *(f"cc_sat_{d}d" for d in w),
            "cc_all",
            "cc_sat_rate",
            "cc_cond",
            "cc_cos",
            "pop_t",
            "sat_pop_t",
            "pop_c",
            "sat_pop_c",
            "sat_rate_c",
            *(f"pop_c_{d}d" for d in w),
            "days_since_cc",
            "days_since_c",
            "age_c",
        ]

    def fit(self, history: pl.DataFrame, now: datetime | None = None) -> Self:
        """Count over ``history`` (sessions with ``timestamp``); ``now`` defaults to its
        latest timestamp and should be the start of the period being ranked."""
        for col in (self.session_col, "item_id", "timestamp"):
            if col not in history.columns:
                raise ConfigError(f"co-engagement features need {col!r}; have {history.columns}")
        rows = history.filter(pl.col(self.session_col).is_not_null())
        if rows.is_empty():
            raise ConfigError("co-engagement features: the history has no session rows")
        self.now = now or rows["timestamp"].max()
        if rows["timestamp"].max() >= self.now and now is not None:
            rows = rows.filter(pl.col("timestamp") < pl.lit(now, dtype=rows.schema["timestamp"]))
        opts = {"session_col": self.session_col, "max_session_items": self.max_session_items}
        sat = coclick_counts(
            rows, rule=self.rule, windows_days=self.windows_days, now=self.now, **opts
        )
        sat = sat.rename(
            {"count": "cc_sat", **{f"count_{d}d": f"cc_sat_{d}d" for d in self.windows_days}}
        )
        if self.rule is None:
            pairs = sat.with_columns(cc_all=pl.col("cc_sat"))
        else:
            every = coclick_counts(rows, rule=None, **opts).select(
                "item_a", "item_b", cc_all="count"
            )
            pairs = every.join(sat, on=["item_a", "item_b"], how="left")
        self._pairs = pairs.rename({"item_a": "trigger_id", "item_b": "item_id"})
        self._items = self._item_stats(rows)
        return self

    def _item_stats(self, rows: pl.DataFrame) -> pl.DataFrame:
        s = self.session_col
        now = pl.lit(self.now, dtype=rows.schema["timestamp"])
        good = satisfied(rows, self.rule)
        base = rows.group_by("item_id").agg(
            pop=pl.col(s).n_unique(),
            first=pl.col("timestamp").min(),
            last=pl.col("timestamp").max(),
        )
        windows = [
            pl.col(s)
            .filter(pl.col("timestamp") >= now - pl.duration(days=d))
            .n_unique()
            .alias(f"pop_{d}d")
            for d in self.windows_days
        ]
        sat = good.group_by("item_id").agg(pl.col(s).n_unique().alias("sat_pop"), *windows)
        return base.join(sat, on="item_id", how="left").with_columns(
            pl.col("item_id").cast(pl.String),
            pl.col("sat_pop").fill_null(0),
            *(pl.col(f"pop_{d}d").fill_null(0) for d in self.windows_days),
        )

    def save(self, directory: str | Path) -> Path:
        """``pairs.parquet``, ``items.parquet`` (the count tables) and ``features.json``."""
        if self._pairs is None or self._items is None or self.now is None:
            raise ConfigError("co-engagement features are not fitted: nothing to save")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name, table in (("pairs", self._pairs), ("items", self._items)):
            path = out / f"{name}.parquet"
            if path.is_dir():  # a table Spark saved here before
                shutil.rmtree(path)
            table.write_parquet(path)
        (out / "features.json").write_text(json.dumps(self.settings(), indent=2))
        return out

    def settings(self) -> dict[str, Any]:
        """What ``features.json`` holds: the constructor's arguments and ``now``."""
        if self.now is None:
            raise ConfigError("co-engagement features are not fitted: no settings to save")
        return {
            "rule": self.rule,
            "windows_days": list(self.windows_days),
            "session_col": self.session_col,
            "max_session_items": self.max_session_items,
            "now": self.now.isoformat(),
        }

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Features saved by :meth:`save` or by Spark
        (:func:`knowrec.spark.coengagement.fit_coengagement_features_spark`, whose tables
        are directories of Parquet part files, read here as one table each)."""
        src = Path(directory)
        try:
            meta = json.loads((src / "features.json").read_text())
            pairs, items = (_read_table(src / f"{name}.parquet") for name in ("pairs", "items"))
            now = datetime.fromisoformat(meta.pop("now"))
            feats = cls(**meta)
        except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as exc:
            raise DataFormatError(
                f"saved co-engagement features unreadable: {exc}", path=src
            ) from None
        feats.now, feats._pairs, feats._items = now, pairs, items
        return feats

    def transform(self, pairs: pl.DataFrame) -> pl.DataFrame:
        if self._pairs is None or self._items is None:
            raise ConfigError("co-engagement features are not fitted: call fit() first")
        _check_pairs(pairs, "co-engagement features")
        clash = [c for c in self.columns if c in pairs.columns]
        if clash:
            raise ConfigError(f"co-engagement features: the pairs frame already has {clash}")
        items = self._items
        trig = items.select(trigger_id="item_id", pop_t="pop", sat_pop_t="sat_pop")
        cand = items.select(
            "item_id",
            pop_c="pop",
            sat_pop_c="sat_pop",
            __first_c="first",
            __last_c="last",
            **{f"pop_c_{d}d": f"pop_{d}d" for d in self.windows_days},
        )
        keys = pairs.select(pl.col("trigger_id").cast(pl.String), pl.col("item_id").cast(pl.String))
        f = (
            keys.join(self._pairs, on=["trigger_id", "item_id"], how="left", maintain_order="left")
            .join(trig, on="trigger_id", how="left", maintain_order="left")
            .join(cand, on="item_id", how="left", maintain_order="left")
        )
        now = pl.lit(self.now, dtype=f.schema["__last_c"])
        counts = ["cc_sat", *(f"cc_sat_{d}d" for d in self.windows_days), "cc_all"]
        counts += ["pop_t", "sat_pop_t", "pop_c", "sat_pop_c"]
        counts += [f"pop_c_{d}d" for d in self.windows_days]
        f = f.with_columns(pl.col(c).fill_null(0).cast(pl.Float64) for c in counts)

        def ratio(a: str, b: pl.Expr) -> pl.Expr:
            return pl.when(b > 0).then(pl.col(a) / b).otherwise(None)

        def days(col: str) -> pl.Expr:
            return (now - pl.col(col)).dt.total_milliseconds() / _DAY_MS

        f = f.with_columns(
            cc_sat_rate=ratio("cc_sat", pl.col("cc_all")),
            cc_cond=ratio("cc_sat", pl.col("sat_pop_t")),
            cc_cos=ratio("cc_sat", (pl.col("sat_pop_t") * pl.col("sat_pop_c")).sqrt()),
            sat_rate_c=ratio("sat_pop_c", pl.col("pop_c")),
            days_since_cc=days("last_time"),
            days_since_c=days("__last_c"),
            age_c=days("__first_c"),
        )
        return pairs.with_columns(
            f.select(self.columns).to_series(i) for i in range(len(self.columns))
        )


def build_features(
    pairs: pl.DataFrame, groups: Sequence[FeatureGroup]
) -> tuple[pl.DataFrame, list[str]]:
    """Apply feature groups in order; returns the frame and all feature names (unique)."""
    names: list[str] = []
    for g in groups:
        before = pairs.height
        pairs = g.transform(pairs)
        if pairs.height != before:
            raise ConfigError(f"feature group {g.name!r} changed the number of rows")
        for c in g.columns:
            if c in names:
                raise ConfigError(f"feature {c!r} is produced by two feature groups")
            names.append(c)
    return pairs, names
