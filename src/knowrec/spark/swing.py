"""SWING (docs/trawl.md) with the Spark DataFrame API: the formula, weights, caps and top-k
of :func:`knowrec.similarity.swing`, for logs that outgrow one machine.

With targets t (the side scored) and pivots p (the other side), as in the in-process
version, the job is:

1. **the graph** (caps applied) and each id as a long key that keeps the id order (joins and
   sums on longs are several times faster than on strings); kept on the executors
   (``localCheckpoint``), since every later step reads it;
2. **pivot pairs**: the rows (t, a, b) of every target with two of its pivots a < b, grouped
   by (a, b) into ``c_ab = |T_a ∩ T_b|`` and the sorted list ``T_a ∩ T_b``; pairs with
   ``c_ab < 2`` are dropped (they pair no two targets). Rows: Σ_t |P_t|²/2;
3. **target pairs**: each pivot pair gives the weight ``2·w_a·w_b / (α + c_ab)`` to every pair
   t < x of its list (``posexplode`` and the list's tail, generated inside the row, not by
   a join); summed by (t, x) with map-side partial sums. Rows generated: Σ_ab c_ab²/2 —
   the work of the formula, which the caps bound;
4. **top-k**: both orders of each pair, ranked per target by score, then id.

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
    :func:`positives_spark`). The capped graph is computed when this is called (step 1
    above); the rest when the result is written or collected.
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
    ).localCheckpoint()  # computed once here, read four times below
    t_col, p_col = ("i", "u") if side == "item" else ("u", "i")
    # Ids become long keys that keep their order (ties are broken by the smaller id):
    # joins and sums on longs are several times faster than on strings.
    t_keys, p_keys = _ordered_keys(edges, t_col), _ordered_keys(edges, p_col)
    e = edges.join(t_keys.withColumnRenamed("key", "t"), t_col).join(
        p_keys.withColumnRenamed("key", "p"), p_col
    )
    weight = F.lit(1.0)
    if beta != 0:
        degree = e.groupBy("p").agg(F.count("*").alias("deg"))
        weight = F.pow(F.col("deg") + F.lit(float(c)), F.lit(-float(beta)))
        e = e.join(degree, "p")
    e = e.select("t", "p", weight.alias("w")).localCheckpoint()  # read twice

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
    # Every pair ts[i] < ts[j] of the sorted list: posexplode, then explode the tail.
    firsts = pivot_pairs.select("ts", pair_weight.alias("s"), F.posexplode("ts").alias("i", "t"))
    tail = F.slice("ts", F.col("i") + 2, F.size("ts") - F.col("i") - 1)
    scores = (
        firsts.select("t", "s", F.explode(tail).alias("x"))
        .groupBy("t", "x")
        .agg(F.sum("s").alias("s"))
        .where(F.col("s") > 0)
    )
    both = scores.select("t", "x", "s").unionByName(
        scores.select(F.col("x").alias("t"), F.col("t").alias("x"), "s")
    )
    rank = F.row_number().over(Window.partitionBy("t").orderBy(F.desc("s"), F.asc("x"))) - 1
    top = both.select("t", "x", "s", rank.alias("rank")).where(F.col("rank") < top_k)
    return (
        top.join(t_keys.select(F.col("key").alias("t"), F.col(t_col).alias("id")), "t")
        .join(t_keys.select(F.col("key").alias("x"), F.col(t_col).alias("neighbour_id")), "x")
        .select(
            "id", F.col("rank").cast("int").alias("rank"), "neighbour_id", F.col("s").alias("score")
        )
    )


def _ordered_keys(edges: DataFrame, col: str) -> DataFrame:
    """``col`` and ``key``: a long per distinct value, increasing with the value (a sorted
    frame's partitions come in order, and so do their monotonically increasing ids)."""
    from pyspark.sql import functions as F

    values = edges.select(col).distinct().orderBy(col)
    return values.select(col, F.monotonically_increasing_id().alias("key"))


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
