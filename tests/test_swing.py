"""knowrec.similarity SWING against a brute-force reading of the formula (docs/trawl.md),
caps against a plain re-implementation of the documented rule, and degenerate inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from knowrec.errors import ConfigError, DataFormatError
from knowrec.similarity import Bipartite, SwingResult, build_bipartite, swing

FAST = settings(max_examples=60, deadline=None)

# --------------------------------------------------------------------------- references


def brute_swing(
    matrix: sp.csr_array, side: str, alpha: float = 1.0, beta: float = 0.0, c: float = 5.0
) -> np.ndarray:
    """The paper's formula with Python sets over ordered pairs; weights on the summed entities."""
    dense = matrix.toarray() > 0
    users_of = [set(np.flatnonzero(dense[:, i]).tolist()) for i in range(dense.shape[1])]
    items_of = [set(np.flatnonzero(dense[u]).tolist()) for u in range(dense.shape[0])]
    if side == "item":  # s(i,j) = Σ_{u≠v ∈ U_i∩U_j} w_u w_v / (α + |I_u∩I_v|)
        mine, theirs = users_of, items_of
    else:  # s(u,v) = Σ_{i≠j ∈ I_u∩I_v} w_i w_j / (α + |U_i∩U_j|)
        mine, theirs = items_of, users_of
    w = [(len(s) + c) ** -beta for s in theirs]
    n = len(mine)
    out = np.zeros((n, n))
    for t, x in itertools.permutations(range(n), 2):
        common = mine[t] & mine[x]
        out[t, x] = sum(
            w[p] * w[q] / (alpha + len(theirs[p] & theirs[q]))
            for p in common
            for q in common
            if p != q
        )
    return out


def brute_caps(
    df: pl.DataFrame, max_items: int | None, max_users: int | None, order: str, seed: int
) -> set[tuple[int, int]]:
    """The documented cap rule, written out per user and per item with sorted lists."""
    user_ids = sorted(set(df["user_id"].to_list()))
    item_ids = sorted(set(df["item_id"].to_list()))
    latest: dict[tuple[int, int], float] = {}
    for u, i, t in df.select("user_id", "item_id", "timestamp").iter_rows():
        key = (user_ids.index(u), item_ids.index(i))
        latest[key] = max(latest.get(key, -math.inf), t)
    pairs = sorted(latest)
    if order == "recent":
        prio = {p: latest[p] for p in pairs}
    else:
        draws = np.random.default_rng(seed).random(len(pairs))
        prio = dict(zip(pairs, draws.tolist(), strict=True))
    kept = set(pairs)
    if max_items is not None:
        for u in range(len(user_ids)):
            mine = sorted((p for p in kept if p[0] == u), key=lambda p: (-prio[p], p[1]))
            kept -= set(mine[max_items:])
    if max_users is not None:
        for i in range(len(item_ids)):
            mine = sorted((p for p in kept if p[1] == i), key=lambda p: (-prio[p], p[0]))
            kept -= set(mine[max_users:])
    return kept


def full_scores(result: SwingResult) -> np.ndarray:
    """The n × n score matrix from a result whose top_k covers every neighbour."""
    n = len(result)
    out = np.zeros((n, n))
    rows, ranks = np.nonzero(result.neighbours >= 0)
    out[rows, result.neighbours[rows, ranks]] = result.scores[rows, ranks]
    return out


def check_against(result: SwingResult, expected: np.ndarray) -> None:
    """Scores equal the brute force; each list is the top-k by (score desc, id asc)."""
    k = result.top_k
    for t in range(len(result)):
        nb, sc = result.neighbours[t], result.scores[t]
        kept = nb >= 0
        assert not (nb[~kept] >= 0).any() and (sc[~kept] == 0).all()
        assert kept.tolist() == sorted(kept.tolist(), reverse=True), "padding only at the end"
        row = expected[t]
        positive = np.flatnonzero(row > 1e-12)
        assert kept.sum() == min(k, positive.size)
        np.testing.assert_allclose(sc[kept], row[nb[kept]], rtol=1e-10, atol=1e-12)
        order = sorted(zip(-sc[kept], nb[kept], strict=True))
        assert [x for _, x in order] == nb[kept].tolist()
        if positive.size > kept.sum():  # nothing left out beats the k-th kept one
            left_out = np.setdiff1d(positive, nb[kept])
            assert row[left_out].max() <= sc[kept][-1] * (1 + 1e-10)


# --------------------------------------------------------------------------- strategies


@st.composite
def interactions(draw: st.DrawFn, max_users: int = 7, max_items: int = 7) -> pl.DataFrame:
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    cells = st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1), st.integers(0, 5))
    rows = draw(st.lists(cells, min_size=1, max_size=n_users * n_items + 5))
    users, items, times = zip(*rows, strict=True)
    return pl.DataFrame(
        {
            "user_id": [f"u{u}" for u in users],
            "item_id": [10 * i + 3 for i in items],
            "timestamp": list(times),
        }
    )


# --------------------------------------------------------------------------- formula


@FAST
@given(
    df=interactions(),
    side=st.sampled_from(["user", "item"]),
    alpha=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    beta=st.sampled_from([0.0, 0.35, 1.0]),
    c=st.sampled_from([0.0, 5.0]),
    pass1=st.sampled_from(["auto", "bitset", "scatter", "table"]),
    narrow=st.sampled_from([0, 2**16 - 1]),
    n_jobs=st.sampled_from([1, 2]),
)
def test_matches_brute_force(
    df: pl.DataFrame,
    side: str,
    alpha: float,
    beta: float,
    c: float,
    pass1: str,
    narrow: int,
    n_jobs: int,
) -> None:
    graph = build_bipartite(df)
    n = graph.n_items if side == "item" else graph.n_users
    result = swing(
        df, side=side, alpha=alpha, beta=beta, c=c, top_k=max(n, 1), _pass1=pass1,
        _narrow_max=narrow, n_jobs=n_jobs,
    )  # fmt: skip
    assert result.side == side and len(result) == n
    check_against(result, brute_swing(graph.matrix, side, alpha, beta, c))


@FAST
@given(df=interactions(), side=st.sampled_from(["user", "item"]), k=st.integers(1, 3))
def test_top_k_is_a_prefix_of_the_ranking(df: pl.DataFrame, side: str, k: int) -> None:
    graph = build_bipartite(df)
    result = swing(graph, side=side, top_k=k)
    check_against(result, brute_swing(graph.matrix, side))
    everything = swing(graph, side=side, top_k=10)
    np.testing.assert_array_equal(result.neighbours, everything.neighbours[:, :k])


@FAST
@given(
    df=interactions(max_users=6, max_items=6),
    side=st.sampled_from(["user", "item"]),
    max_items=st.one_of(st.none(), st.integers(1, 4)),
    max_users=st.one_of(st.none(), st.integers(1, 4)),
    order=st.sampled_from(["recent", "random"]),
    seed=st.integers(0, 3),
)
def test_caps_match_the_documented_rule_and_brute_force(
    df: pl.DataFrame,
    side: str,
    max_items: int | None,
    max_users: int | None,
    order: str,
    seed: int,
) -> None:
    kw = {"max_items_per_user": max_items, "max_users_per_item": max_users}
    graph = build_bipartite(df, cap_order=order, seed=seed, **kw)  # type: ignore[arg-type]
    coo = graph.matrix.tocoo()
    assert set(zip(coo.row.tolist(), coo.col.tolist(), strict=True)) == brute_caps(
        df, max_items, max_users, order, seed
    )
    result = swing(df, side=side, top_k=8, cap_order=order, seed=seed, **kw)  # type: ignore[arg-type]
    check_against(result, brute_swing(graph.matrix, side))


def test_caps_bound_list_lengths_and_keep_the_most_recent() -> None:
    rng = np.random.default_rng(7)
    df = pl.DataFrame(
        {
            "user_id": rng.integers(0, 30, 600),
            "item_id": rng.integers(0, 40, 600),
            "timestamp": rng.permutation(600),
        }
    )
    graph = build_bipartite(df, max_items_per_user=5, max_users_per_item=3)
    assert np.diff(graph.user_items().indptr).max() <= 5
    assert np.diff(graph.item_users().indptr).max() <= 3
    only_users = build_bipartite(df, max_items_per_user=1)
    latest = df.sort("timestamp").group_by("user_id").agg(pl.col("item_id").last())
    got = dict(zip(only_users.user_ids.tolist(), only_users.matrix.indices.tolist(), strict=True))
    for u, i in latest.iter_rows():
        assert only_users.item_ids[got[u]] == i


def test_random_caps_are_seeded_and_independent_of_row_order() -> None:
    rng = np.random.default_rng(3)
    df = pl.DataFrame({"user_id": rng.integers(0, 20, 300), "item_id": rng.integers(0, 25, 300)})
    kw = {"max_users_per_item": 2, "cap_order": "random"}
    a = build_bipartite(df, seed=1, **kw).matrix  # type: ignore[arg-type]
    b = build_bipartite(df.reverse(), seed=1, **kw).matrix  # type: ignore[arg-type]
    c = build_bipartite(df, seed=2, **kw).matrix  # type: ignore[arg-type]
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0


# --------------------------------------------------------------------------- properties


def test_hand_computed_example() -> None:
    # u1, u2 rated {A, B}; u3 rated {A, B, C}. Every user pair shares 2 items, so
    # s(A,B) = 6 ordered pairs · 1/(1+2) = 2; C shares only u3 with A and B: no neighbour.
    # s(u1,u2) = s(u1,u3) = 2 ordered item pairs · 1/(1+|U_A∩U_B|=3) = 0.5: a tie.
    df = pl.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2", "u3", "u3", "u3"],
            "item_id": ["A", "B", "A", "B", "A", "B", "C"],
        }
    )
    items = swing(df, side="item", top_k=2)
    assert items.ids.tolist() == ["A", "B", "C"]
    assert items.positive_ids() == ["B", "A", None]
    assert items.scores[0].tolist() == [2.0, 0.0]
    assert items.neighbours[2].tolist() == [-1, -1]
    users = swing(df, side="user", top_k=2)
    assert users.positive_ids() == ["u2", "u1", "u1"]  # ties go to the smaller id
    np.testing.assert_allclose(users.scores, [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    frame = users.positives_frame()
    assert frame.columns == ["id", "positive_id", "score"]
    assert frame["positive_id"].to_list() == ["u2", "u1", "u1"]
    long = items.to_frame()
    assert long.rows() == [("A", 0, "B", 2.0), ("B", 0, "A", 2.0)]


def test_symmetric_and_alpha_shrinks_scores() -> None:
    rng = np.random.default_rng(11)
    m = sp.random_array((40, 30), density=0.3, rng=rng, format="csr")
    for side in ("user", "item"):
        by_alpha = [full_scores(swing(m, side=side, alpha=a, top_k=40)) for a in (0, 1, 10)]
        for s in by_alpha:
            np.testing.assert_array_equal(s, s.T)  # each pair is computed once
        assert (by_alpha[0] >= by_alpha[1]).all() and (by_alpha[1] >= by_alpha[2]).all()
        nz = by_alpha[1] > 0
        assert (by_alpha[0][nz] > by_alpha[1][nz]).all()
        # α → ∞: α·s(t,x) → the number of ordered pivot pairs, |common|·(|common|−1).
        dense = m.toarray() > 0
        common = dense.T.astype(int) @ dense if side == "item" else dense @ dense.T.astype(int)
        pairs = common * (common - 1)
        np.fill_diagonal(pairs, 0)
        big = full_scores(swing(m, side=side, alpha=1e9, top_k=40))
        np.testing.assert_allclose(big * 1e9, pairs, rtol=1e-6)


def test_weights_enter_each_term_as_a_product() -> None:
    # Item side, one pair of items rated by users of different activity: the only ordered
    # pairs are (u0,u1) and (u1,u0), so s = 2·w0·w1/(α + 2).
    df = pl.DataFrame({"user_id": [0, 0, 1, 1, 1, 1], "item_id": [0, 1, 0, 1, 2, 3]})
    r = swing(df, side="item", beta=0.5, c=1.0, top_k=1)
    w0, w1 = (2 + 1.0) ** -0.5, (4 + 1.0) ** -0.5
    assert r.scores[0, 0] == pytest.approx(2 * w0 * w1 / 3)
    plain = swing(df, side="item", top_k=1)
    assert plain.scores[0, 0] == pytest.approx(2 / 3)


def test_threads_and_matrix_input_give_identical_results() -> None:
    rng = np.random.default_rng(5)
    m = sp.random_array((120, 90), density=0.15, rng=rng, format="csr")
    coo = m.tocoo()
    df = pl.DataFrame({"user_id": coo.row, "item_id": coo.col})
    for side in ("user", "item"):
        one = swing(m, side=side, n_jobs=1, top_k=7)
        two = swing(m, side=side, n_jobs=2, top_k=7, progress=True)
        via_frame = swing(df, side=side, n_jobs=1, top_k=7)
        for other in (two, via_frame):
            np.testing.assert_array_equal(one.neighbours, other.neighbours)
            np.testing.assert_array_equal(one.scores, other.scores)


# --------------------------------------------------------------------------- degenerate


def test_single_user_and_single_user_items_have_no_neighbour() -> None:
    one_user = pl.DataFrame({"user_id": [1, 1, 1], "item_id": [1, 2, 3]})
    for side, n in (("item", 3), ("user", 1)):
        r = swing(one_user, side=side)
        assert len(r) == n and (r.positives == -1).all()
        assert r.positive_ids() == [None] * n
        assert r.to_frame().height == 0
        assert r.positives_frame()["score"].null_count() == n
    # Item 9 has a single user: it cannot share two users with anyone.
    df = pl.DataFrame({"user_id": [1, 1, 2, 2, 2], "item_id": [5, 6, 5, 6, 9]})
    r = swing(df, side="item")
    assert r.positive_ids() == [6, 5, None]


def test_empty_input_gives_an_empty_result() -> None:
    empty = pl.DataFrame(
        {"user_id": pl.Series([], dtype=pl.String), "item_id": pl.Series([], dtype=pl.String)}
    )
    for side in ("user", "item"):
        r = swing(empty, side=side, top_k=3)
        assert len(r) == 0 and r.neighbours.shape == (0, 3)
        assert r.to_frame().height == 0 and r.positives_frame().height == 0
    r = swing(sp.csr_array((4, 0)), side="user")
    assert len(r) == 4 and (r.positives == -1).all()


def test_errors_are_clear() -> None:
    df = pl.DataFrame({"user": [1, 2], "item_id": [1, 1], "timestamp": [0, 1]})
    with pytest.raises(ConfigError, match=r"no column\(s\) \['user_id'\].*columns are"):
        swing(df)
    assert len(swing(df, user_col="user")) == 1
    with pytest.raises(ConfigError, match=r"no column.*'ts'.*cap_order='random'"):
        swing(df, user_col="user", time_col="ts", max_users_per_item=1)
    nulls = pl.DataFrame({"user_id": [1, None], "item_id": [1, 2]})
    with pytest.raises(DataFormatError, match="column 'user_id': 1 null"):
        swing(nulls)
    m = sp.csr_array(np.ones((3, 3)))
    with pytest.raises(ConfigError, match="needs timestamps"):
        swing(m, max_items_per_user=2)
    assert len(swing(m, max_items_per_user=2, cap_order="random")) == 3
    bad = [
        {"side": "both"},
        {"alpha": -1},
        {"alpha": float("nan")},
        {"beta": -0.1},
        {"c": "5"},
        {"top_k": 0},
        {"max_users_per_item": 0},
        {"max_items_per_user": 2.5},
        {"cap_order": "oldest"},
        {"n_jobs": 0},
    ]
    for kw in bad:
        with pytest.raises(ConfigError):
            swing(m, **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="polars DataFrame or a scipy sparse"):
        swing([[1, 2]])  # type: ignore[arg-type]


def test_bipartite_is_reusable() -> None:
    df = pl.DataFrame({"user_id": ["a", "b", "a", "b"], "item_id": [1, 1, 2, 2]})
    graph = build_bipartite(df)
    assert isinstance(graph, Bipartite)
    assert (graph.n_users, graph.n_items, graph.nnz) == (2, 2, 4)
    assert swing(graph, side="user").positive_ids() == ["b", "a"]
