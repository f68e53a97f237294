"""SWING (docs/trawl.md) with the Spark DataFrame API: the formula, weights, caps and top-k
of :func:`knowrec.similarity.swing`, for logs that outgrow one machine.

With targets t (the side scored) and pivots p (the other side), as in the in-process
version, the job is three shuffles:

1. **pivot pairs**: the rows (t, a, b) of every target with two of its pivots a < b, grouped
   by (a, b) into ``c_ab = |T_a ∩ T_b|`` and the sorted list ``T_a ∩ T_b``; pairs with
   ``c_ab < 2`` are dropped (they pair no two targets). Rows: Σ_t |P_t|²/2.
2. **target pairs**: each pivot pair gives the weight ``2·w_a·w_b / (α + c_ab)`` to every pair
   t < x of its list (generated inside the row, not by a join); summed by (t, x) with
   map-side partial sums. Rows generated: Σ_ab c_ab²/2 — the work of the formula, which
   the caps bound.
3. **top-k**: both orders of each pair, ranked per target by score, then id.

Scores equal the in-process ones up to floating-point summation order (relative
differences ~1e-15), so top-k lists are the same except where two scores are tied to the
last bits (then either order is right). ``cap_order="random"`` draws NumPy's generator in
process order, which has no Spark counterpart: Spark supports ``"recent"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from knowrec.errors import ConfigError
from knowrec.similarity.swing import Side, check_swing_args

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def swing_spark(
    inter: DataFrame,
    *,
    side: Side = "item",
    alpha: float = 1.0,
    beta: float = 0.0,
    c: float = 5.0,
    top_k: int = 10,
    max_users_per_item: int | None = None,
    max_items_per_user: int | None = None,
    cap_order: str = "recent",
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
) -> DataFrame:
    """SWING top-k neighbours of every user (``side="user"``) or item with an interaction.

    ``inter``: a Spark DataFrame of interactions (``user_col``, ``item_col``, and
    ``time_col`` when a cap is set). Arguments as :func:`knowrec.similarity.swing`. Returns
    the long table of :meth:`SwingResult.to_frame`: ``id``, ``rank`` (0 = best),
    ``neighbour_id``, ``score``; entities without a neighbour have no row (see
    :func:`positives_spark`). Nothing is computed until the result is written or collected.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    check_swing_args(side, alpha, beta, c, top_k)
    if cap_order != "recent":
        raise ConfigError(
            f"cap_order={cap_order!r} has no Spark version (it draws NumPy's generator in "
            "process order): use cap_order='recent' with engine = 'spark'"
        )
    edges = graph_spark(
        inter,
        user_col=user_col,
        item_col=item_col,
        time_col=time_col,
        max_users_per_item=max_users_per_item,
        max_items_per_user=max_items_per_user,
    )
    t_col, p_col = ("i", "u") if side == "item" else ("u", "i")
    e = edges.select(F.col(t_col).alias("t"), F.col(p_col).alias("p"))
    weight = F.lit(1.0)
    if beta != 0:
        degree = e.groupBy("p").agg(F.count("*").alias("deg"))
        weight = F.pow(F.col("deg") + F.lit(float(c)), F.lit(-float(beta)))
        e = e.join(degree, "p")
    e = e.select("t", "p", weight.alias("w"))

    left = e.select("t", F.col("p").alias("a"), F.col("w").alias("wa"))
    right = e.select("t", F.col("p").alias("b"), F.col("w").alias("wb"))
    pivot_pairs = (
        left.join(right, "t")
        .where(F.col("a") < F.col("b"))
        .groupBy("a", "b")
        .agg(
            F.count("*").alias("c"),
            F.array_sort(F.collect_list("t")).alias("ts"),
            F.first("wa").alias("wa"),
            F.first("wb").alias("wb"),
        )
        .where(F.col("c") >= 2)
    )
    pair_weight = 2.0 * F.col("wa") * F.col("wb") / (F.lit(float(alpha)) + F.col("c"))
    # Every pair ts[i] < ts[j] of the sorted list, as structs, generated inside the row.
    pairs = F.flatten(
        F.transform(
            F.sequence(F.lit(0), F.size("ts") - 2),
            lambda i: F.transform(
                F.slice("ts", i + 2, F.size("ts") - i - 1),
                lambda x: F.struct(F.element_at("ts", i + 1).alias("t"), x.alias("x")),
            ),
        )
    )
    scores = (
        pivot_pairs.select(pair_weight.alias("s"), F.explode(pairs).alias("tx"))
        .groupBy(F.col("tx.t").alias("t"), F.col("tx.x").alias("x"))
        .agg(F.sum("s").alias("s"))
        .where(F.col("s") > 0)
    )
    both = scores.select("t", "x", "s").unionByName(
        scores.select(F.col("x").alias("t"), F.col("t").alias("x"), "s")
    )
    rank = F.row_number().over(Window.partitionBy("t").orderBy(F.desc("s"), F.asc("x"))) - 1
    return (
        both.select("t", "x", "s", rank.alias("rank"))
        .where(F.col("rank") < top_k)
        .select(
            F.col("t").alias("id"),
            F.col("rank").cast("int").alias("rank"),
            F.col("x").alias("neighbour_id"),
            F.col("s").alias("score"),
        )
    )


def graph_spark(
    inter: DataFrame,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    max_users_per_item: int | None = None,
    max_items_per_user: int | None = None,
) -> DataFrame:
    """The interaction graph of :func:`knowrec.similarity.build_bipartite` as edges ``u``,
    ``i``: one per distinct (user, item), at its latest time, with the caps applied in the
    same order and by the same rule (most recent first; ties: the smaller id of the other
    side)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    capped = max_users_per_item is not None or max_items_per_user is not None
    needed = [user_col, item_col] + ([time_col] if capped else [])
    missing = [col for col in needed if col not in inter.columns]
    if missing:
        raise ConfigError(f"SWING on Spark needs the columns {missing}; have {inter.columns}")
    if not capped:
        return inter.select(F.col(user_col).alias("u"), F.col(item_col).alias("i")).distinct()
    edges = inter.groupBy(F.col(user_col).alias("u"), F.col(item_col).alias("i")).agg(
        F.max(time_col).alias("ts")
    )
    for group, other, cap in (("u", "i", max_items_per_user), ("i", "u", max_users_per_item)):
        if cap is not None:
            order = Window.partitionBy(group).orderBy(F.desc("ts"), F.asc(other))
            kept = F.row_number().over(order) <= cap
            edges = edges.withColumn("keep", kept).where("keep").drop("keep")
    return edges.select("u", "i")


def positives_spark(
    neighbours: DataFrame,
    inter: DataFrame,
    *,
    side: Side = "item",
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> DataFrame:
    """:meth:`SwingResult.positives_frame` from :func:`swing_spark`'s output: ``id``,
    ``positive_id``, ``score`` for every user (item) of ``inter``, nulls without one."""
    from pyspark.sql import functions as F

    col = item_col if side == "item" else user_col
    ids = inter.select(F.col(col).alias("id")).distinct()
    best = neighbours.where(F.col("rank") == 0).select(
        "id", F.col("neighbour_id").alias("positive_id"), "score"
    )
    return ids.join(best, "id", "left")


def positives_via_spark(
    liked: pl.DataFrame,
    settings: Mapping[str, Any],
    workdir: Path,
    **options: Any,
) -> dict[str, pl.DataFrame]:
    """What :func:`knowrec.trawl.stages.swing_positives` computes, on Spark: ``liked`` is
    written to ``workdir/liked.parquet``, each side's positives to
    ``workdir/positives_<side>.parquet`` (Spark part files), and read back as polars frames
    with the ids in the input's dtype."""
    from knowrec.spark import spark_session, to_polars

    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "liked.parquet"
    liked.write_parquet(source)
    spark = spark_session(settings)
    inter = spark.read.parquet(str(source))
    out: dict[str, pl.DataFrame] = {}
    for side in ("user", "item"):
        neighbours = swing_spark(inter, side=side, top_k=1, **options)  # type: ignore[arg-type]
        path = workdir / f"positives_{side}.parquet"
        positives_spark(neighbours, inter, side=side).write.mode("overwrite").parquet(str(path))
        frame = to_polars(spark.read.parquet(str(path)))
        dtype = liked.schema["item_id" if side == "item" else "user_id"]
        out[side] = frame.select(
            pl.col("id").cast(dtype), pl.col("positive_id").cast(dtype), "score"
        ).sort("id")
    source.unlink()
    return out
