"""The movie data set: users with ML-1M-style profiles rate invented movies through a
latent taste model, and each movie gets an article that states its hidden attributes
among noise sentences."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from knowrec.data.movielens import OCCUPATIONS
from knowrec.data.synth.sampling import (
    EPOCH,
    MS_PER_DAY,
    MS_PER_HOUR,
    MS_PER_MIN,
    epoch_ms,
    group_starts,
    gumbel,
    ms_to_datetime,
    ms_to_iso,
    pick,
    ranked_topk,
    sample_categorical,
)
from knowrec.data.synth.sizes import SizeSpec
from knowrec.data.synth.vocab import (
    ACCLAIM_BAD,
    ACCLAIM_GOOD,
    AUDIENCE_TEMPLATES,
    AUDIENCES,
    FESTIVALS,
    FIRST_NAMES,
    GENRE_TEMPLATES,
    HIDDEN_GENRES,
    MONTHS,
    MOOD_TEMPLATES,
    MOODS,
    PLACES,
    PLOTS,
    ROLES,
    STUDIOS,
    SURFACE_GENRES,
    THEME_TEMPLATES,
    THEMES,
    TITLE_ADJ,
    TITLE_NOUN,
    TRIVIA,
    article,
    person,
)
from knowrec.data.tables import Dataset, conform

N_ARCHETYPES = 10  # taste archetypes mixed into each movie user's taste

# How the primary sub-genre shifts the log-odds of an audience / a mood.
AUDIENCE_LEAN: list[tuple[str, str, float]] = [
    ("animated adventure", "children", 2.5), ("family comedy", "children", 2.0),
    ("slasher", "teens", 1.5), ("slasher", "children", -3.0), ("cyberpunk", "young adults", 1.0),
    ("film noir", "older adults", 1.2), ("western", "older adults", 1.0),
    ("courtroom drama", "adults", 1.0), ("supernatural horror", "children", -3.0),
    ("war epic", "children", -2.0),
]  # fmt: skip
MOOD_LEAN: list[tuple[str, str, float]] = [
    ("slasher", "dark", 1.5), ("supernatural horror", "tense", 1.2),
    ("animated adventure", "whimsical", 1.2), ("family comedy", "light-hearted", 1.5),
    ("romantic comedy", "light-hearted", 1.2), ("film noir", "dark", 1.2), ("heist", "tense", 1.0),
    ("war epic", "melancholic", 0.8),
]  # fmt: skip
# User profiles as in ML-1M: age codes, their shares, users per occupation code.
AGE_BUCKETS = [1, 18, 25, 35, 45, 50, 56]
AGE_PROBS = [0.037, 0.183, 0.347, 0.198, 0.091, 0.082, 0.062]
OCCUPATION_COUNTS = [
    711, 528, 267, 173, 759, 112, 236, 679, 17, 92, 195, 129, 388, 142, 302, 144, 241,
    502, 70, 72, 281,
]  # fmt: skip
# Hand-set profile effects on taste: (kind, key, dimension name, shift).
PROFILE_EFFECTS: list[tuple[str, Any, str, float]] = [
    ("age", 0, "animated adventure", 1.2), ("age", 0, "family comedy", 1.0),
    ("age", 0, "slasher", -1.2), ("age", 1, "slasher", 0.7), ("age", 1, "animated adventure", 0.4),
    ("age", 1, "coming of age", 0.6), ("age", 2, "cyberpunk", 0.4), ("age", 2, "heist", 0.3),
    ("age", 4, "courtroom drama", 0.4), ("age", 5, "film noir", 0.6), ("age", 5, "western", 0.5),
    ("age", 6, "film noir", 0.8), ("age", 6, "western", 0.7), ("age", 6, "war epic", 0.5),
    ("age", 6, "slasher", -0.8), ("gender", "F", "period romance", 0.35),
    ("gender", "F", "romantic comedy", 0.3), ("gender", "F", "war epic", -0.25),
    ("gender", "M", "martial arts", 0.3), ("gender", "M", "war epic", 0.2),
    ("occupation", "scientist", "nature documentary", 0.5),
    ("occupation", "scientist", "space opera", 0.3),
    ("occupation", "programmer", "cyberpunk", 0.5),
    ("occupation", "lawyer", "courtroom drama", 0.6),
    ("occupation", "artist", "musical", 0.4), ("occupation", "writer", "political satire", 0.4),
    ("occupation", "K-12 student", "animated adventure", 0.5),
    ("occupation", "retired", "western", 0.3),
]  # fmt: skip


def movie_world(
    spec: SizeSpec, rng: np.random.Generator
) -> tuple[Dataset, dict[str, pl.DataFrame], dict[str, Any]]:
    """The movie data set, its truth tables and its ``world.json`` entry."""
    n_users, n_items = spec.movie_users, spec.movies
    start = epoch_ms(datetime(2021, 1, 1))
    span = 730 * MS_PER_DAY
    cutoff = start + int(0.8 * 730) * MS_PER_DAY
    end = start + span

    g_names = [g[0] for g in HIDDEN_GENRES]
    t_names = [t[0] for t in THEMES]
    a_names = [a[0] for a in AUDIENCES]
    m_names = [m[0] for m in MOODS]
    n_g, n_t, n_a, n_m = len(g_names), len(t_names), len(a_names), len(m_names)
    dims = g_names + t_names + a_names + m_names
    blocks = ["genre"] * n_g + ["theme"] * n_t + ["audience"] * n_a + ["mood"] * n_m
    dim_index = {f"{b}:{d}": k for k, (b, d) in enumerate(zip(blocks, dims, strict=True))}
    n_dims = len(dims)

    # --- items: hidden attributes
    genre_pop = rng.dirichlet(np.full(n_g, 3.0))
    n_genres = 1 + (rng.random(n_items) < 0.45).astype(int)
    n_themes = 1 + (rng.random(n_items) < 0.5).astype(int)
    item_genres = [
        sorted(rng.choice(n_g, size=k, replace=False, p=genre_pop).tolist()) for k in n_genres
    ]
    item_themes = [sorted(rng.choice(n_t, size=k, replace=False).tolist()) for k in n_themes]
    # Audience and mood lean on the primary sub-genre (kids' cartoons, dark slashers...).
    aud_bias = np.zeros((n_g, n_a))
    mood_bias = np.zeros((n_g, n_m))
    for g, a, v in AUDIENCE_LEAN:
        aud_bias[g_names.index(g), a_names.index(a)] = v
    for g, m, v in MOOD_LEAN:
        mood_bias[g_names.index(g), m_names.index(m)] = v
    primary = np.array([gs[0] for gs in item_genres])
    audience = sample_categorical(rng, np.exp(aud_bias[primary]))
    mood = sample_categorical(rng, np.exp(mood_bias[primary]))

    x = np.zeros((n_items, n_dims), dtype=np.float64)
    for i in range(n_items):
        x[i, item_genres[i]] = 1.0 / len(item_genres[i])
        x[i, [n_g + t for t in item_themes[i]]] = 1.0 / len(item_themes[i])
    x[np.arange(n_items), n_g + n_t + audience] = 1.0
    x[np.arange(n_items), n_g + n_t + n_a + mood] = 1.0

    log_pop = rng.normal(0.0, 1.0, n_items)
    quality = 0.25 * log_pop + rng.normal(0.0, 0.3, n_items)

    # --- items: availability. Most warm items exist before the window; some are released
    # during the training period; cold items (~12%) are released after the cutoff.
    n_cold = max(1, round(0.12 * n_items))
    cold = np.zeros(n_items, dtype=bool)
    cold[rng.choice(n_items, size=n_cold, replace=False)] = True
    in_window = ~cold & (rng.random(n_items) < 0.2)
    release = np.full(n_items, start - 30 * MS_PER_DAY, dtype=np.int64)
    release[in_window] = start + rng.integers(0, cutoff - 30 * MS_PER_DAY - start, in_window.sum())
    release[cold] = cutoff + rng.integers(0, end - 60 * MS_PER_DAY - cutoff, n_cold)
    new_release = in_window | cold
    years = 2020 - np.minimum(rng.exponential(12.0, n_items).astype(int), 90)
    rel_years = np.array([(EPOCH + timedelta(milliseconds=int(r))).year for r in release])
    years = np.where(new_release, rel_years, years)

    surface = []
    for i in range(n_items):
        # The first surface genre of a sub-genre is usually listed, the others less often.
        keep = {
            s
            for g in item_genres[i]
            for j, s in enumerate(HIDDEN_GENRES[g][1])
            if rng.random() < (0.9 if j == 0 else 0.5)
        }
        if rng.random() < 0.25:
            keep.add(pick(rng, SURFACE_GENRES))
        if not keep:
            keep.add(HIDDEN_GENRES[item_genres[i][0]][1][0])
        surface.append(sorted(keep))

    titles = _movie_titles(rng, n_items)
    texts = [
        _movie_text(
            rng,
            titles[i],
            int(years[i]),
            item_genres[i],
            item_themes[i],
            int(audience[i]),
            int(mood[i]),
            float(quality[i]),
            spec.text_words,
        )
        for i in range(n_items)
    ]

    # --- users: profile and taste
    age_idx = rng.choice(len(AGE_BUCKETS), size=n_users, p=np.array(AGE_PROBS) / sum(AGE_PROBS))
    gender = np.where(rng.random(n_users) < 0.72, "M", "F")
    occ_w = np.tile(np.array(OCCUPATION_COUNTS, dtype=float), (len(AGE_BUCKETS), 1))
    k12 = OCCUPATIONS.index("K-12 student")
    college = OCCUPATIONS.index("college/grad student")
    retired = OCCUPATIONS.index("retired")
    occ_w[:, k12] *= [40, 2, 0, 0, 0, 0, 0]
    occ_w[:, college] *= [0.2, 4, 1.5, 0.2, 0.1, 0.1, 0.1]
    occ_w[:, retired] *= [0, 0, 0, 0.1, 1, 4, 15]
    occupation = sample_categorical(rng, occ_w[age_idx])

    # Taste archetypes ("space-opera and heist fans who like tense films"): each loves a
    # few sub-genres and themes and dislikes others. A user mixes a main archetype with a
    # weaker second one and adds an idiosyncratic part, so a user's taste is learnable
    # from a few dozen ratings and users resemble each other, as in real data.
    n_arch = N_ARCHETYPES
    basis = np.zeros((n_arch, n_dims))
    for k in range(n_arch):
        basis[k, :n_g] = rng.normal(0.0, 0.3, n_g)
        g_pick = rng.permutation(n_g)
        basis[k, g_pick[:3]] += 1.5
        basis[k, g_pick[3:6]] -= 1.0
        t_pick = n_g + rng.permutation(n_t)
        basis[k, t_pick[:2]] += 0.8
        basis[k, t_pick[2]] -= 0.6
        m_pick = n_g + n_t + n_a + rng.permutation(n_m)
        basis[k, m_pick[0]] += 0.8
        basis[k, m_pick[1]] -= 0.6
    main = rng.integers(0, n_arch, n_users)
    second = (main + rng.integers(1, n_arch, n_users)) % n_arch
    taste = basis[main] + rng.uniform(0.0, 0.6, n_users)[:, None] * basis[second]
    taste += rng.normal(0.0, 0.35, (n_users, n_dims))
    # The age bucket moves audience preferences strongly: peak at the matching audience.
    targets = np.array([a[1] for a in AUDIENCES])
    taste[:, n_g + n_t : n_g + n_t + n_a] = (
        1.2 - 0.7 * np.abs(age_idx[:, None] - targets[None, :])
    ) + rng.normal(0.0, 0.5, (n_users, n_a))
    occ_shift = rng.normal(0.0, 0.15, (len(OCCUPATIONS), n_dims))  # weak, random
    taste += occ_shift[occupation]
    for kind, key, dim, shift in PROFILE_EFFECTS:
        col = dim_index.get(f"genre:{dim}", dim_index.get(f"theme:{dim}"))
        assert col is not None, dim
        if kind == "age":
            mask = age_idx == key
        elif kind == "gender":
            mask = gender == key
        else:
            mask = occupation == OCCUPATIONS.index(key)
        taste[mask, col] += shift
    bias = rng.normal(0.0, 0.45, n_users)  # generous vs harsh raters

    # --- users: activity periods and how many items they rate
    u_start = start + (rng.random(n_users) * 0.92 * span).astype(np.int64)
    duration = np.exp(rng.normal(np.log(150.0), 0.9, n_users)) * MS_PER_DAY
    u_end = u_start + np.maximum(duration, MS_PER_DAY).astype(np.int64)
    u_end = np.minimum(u_end, end - MS_PER_DAY)
    n_rate = 20 + np.floor(np.exp(rng.normal(np.log(spec.ratings_median), 0.8, n_users)))

    # Affinity = taste · latent attributes, standardised on a fixed sample of users.
    ref = taste[: min(n_users, 256)] @ x.T
    aff_mean, aff_std = float(ref.mean()), float(ref.std())
    boost = (log_pop + np.where(new_release, 0.7, 0.0)).astype(np.float32)
    taste32, x32 = taste.astype(np.float32), x.T.astype(np.float32)
    rows_u, rows_i, rows_aff = [], [], []
    chunk = 2000
    for lo in range(0, n_users, chunk):
        hi = min(lo + chunk, n_users)
        aff = (taste32[lo:hi] @ x32 - np.float32(aff_mean)) / np.float32(aff_std)
        avail = release[None, :] <= (u_end[lo:hi, None] - MS_PER_HOUR)
        keys = boost[None, :] + np.float32(0.6) * aff + gumbel(rng, aff.shape)
        keys[~avail] = -np.inf
        k = np.minimum(n_rate[lo:hi], np.floor(spec.max_rating_share * avail.sum(1))).astype(int)
        r, c = ranked_topk(keys, k)
        rows_u.append(r + lo)
        rows_i.append(c)
        rows_aff.append(aff[r, c])
    uu = np.concatenate(rows_u)
    ii = np.concatenate(rows_i)
    aff_ui = np.concatenate(rows_aff).astype(np.float64)

    # --- ratings: bias + quality + taste + noise, centred so the mean is ~3.6
    raw = bias[uu] + quality[ii] + aff_ui + rng.normal(0.0, 0.5, uu.shape[0])
    raw += 3.6 - raw.mean()
    rating = np.clip(np.rint(raw), 1, 5).astype(np.float32)

    # --- sessions: a user's items grouped by (mostly) their primary sub-genre
    group = primary[ii].copy()
    mix = rng.random(uu.shape[0]) < 0.2
    group[mix] = rng.integers(0, n_g, mix.sum())
    order = np.lexsort((rng.random(uu.shape[0]), group, uu))
    uu, ii, group, rating, aff_ui = uu[order], ii[order], group[order], rating[order], aff_ui[order]
    n = uu.shape[0]
    pos = np.arange(n)
    grp_start = group_starts(uu * n_g + group)
    grp_first = np.maximum.accumulate(np.where(grp_start, pos, 0))
    max_len = rng.integers(2, 8, n_users)  # per-user session length cap
    new_sess = grp_start | ((pos - grp_first) % max_len[uu] == 0)
    sess = np.cumsum(new_sess) - 1
    s_first = np.flatnonzero(new_sess)
    s_user = uu[s_first]
    s_lo = np.maximum(u_start[s_user], np.maximum.reduceat(release[ii], s_first) + MS_PER_HOUR)
    s_time = s_lo + (rng.random(s_first.shape[0]) * (u_end[s_user] - s_lo)).astype(np.int64)
    gaps = rng.integers(20_000, 10 * MS_PER_MIN, n)
    cum = np.cumsum(gaps)
    offset = cum - cum[s_first][sess]
    ts = s_time[sess] + offset
    # Session ids numbered per user in time order.
    s_rank = np.lexsort((s_time, s_user))
    s_pos = np.arange(s_rank.shape[0])
    s_num = np.empty_like(s_rank)
    s_num[s_rank] = s_pos - np.maximum.accumulate(np.where(group_starts(s_user[s_rank]), s_pos, 0))
    final = np.lexsort((ii, ts, uu))
    uu, ii, ts, rating, sess = uu[final], ii[final], ts[final], rating[final], sess[final]

    user_ids = pl.Series("user_id", np.arange(1, n_users + 1)).cast(pl.String)
    item_ids = pl.Series("item_id", np.arange(1, n_items + 1)).cast(pl.String)
    interactions = pl.DataFrame(
        {
            "user_id": user_ids.gather(uu),
            "item_id": item_ids.gather(ii),
            "timestamp": ms_to_datetime(ts, "timestamp"),
            "rating": rating,
            "session_id": pl.Series(s_num[sess]).cast(pl.String),
        }
    ).with_columns(session_id=pl.col("user_id") + "-" + pl.col("session_id"))
    items = pl.DataFrame(
        {
            "item_id": item_ids,
            "title": titles,
            "year": years.astype(np.int32),
            "genres": pl.Series(surface, dtype=pl.List(pl.String)),
            "text": texts,
        }
    )
    users = pl.DataFrame(
        {
            "user_id": user_ids,
            "age": np.array(AGE_BUCKETS, dtype=np.int32)[age_idx],
            "gender": gender.tolist(),
            "occupation": [OCCUPATIONS[o] for o in occupation],
        }
    )
    meta = {
        "source": "synthetic:movies",
        "kind": "movies",
        "label_rule": "rating >= 4 is liked",
        "window_start": ms_to_iso(start),
        "train_cutoff": ms_to_iso(cutoff),
        "window_end": ms_to_iso(end),
    }
    ds = Dataset(
        interactions=conform(interactions, "interactions"),
        items=conform(items, "items"),
        users=conform(users, "users"),
        meta=meta,
    )
    truth = {
        "movie_items": pl.DataFrame(
            {
                "item_id": item_ids,
                "hidden_genres": pl.Series(
                    [[g_names[g] for g in gs] for gs in item_genres], dtype=pl.List(pl.String)
                ),
                "themes": pl.Series(
                    [[t_names[t] for t in ts_] for ts_ in item_themes], dtype=pl.List(pl.String)
                ),
                "audience": [a_names[a] for a in audience],
                "mood": [m_names[m] for m in mood],
                "quality": quality.astype(np.float32),
                "log_popularity": log_pop.astype(np.float32),
                "release": ms_to_datetime(release, "release"),
                "cold": cold,
                "latent": pl.Series(x.astype(np.float32)).cast(pl.List(pl.Float32)),
            }
        ),
        "movie_users": pl.DataFrame(
            {
                "user_id": user_ids,
                "taste": pl.Series(taste.astype(np.float32)).cast(pl.List(pl.Float32)),
                "rating_bias": bias.astype(np.float32),
                "archetype": main.astype(np.int32),
                "active_from": ms_to_datetime(u_start, "active_from"),
                "active_to": ms_to_datetime(u_end, "active_to"),
            }
        ),
        "movie_dims": pl.DataFrame(
            {"dim": np.arange(n_dims, dtype=np.int32), "block": blocks, "name": dims}
        ),
    }
    info = {
        "users": n_users,
        "items": n_items,
        "interactions": int(interactions.height),
        "cold_items": int(n_cold),
        "window_start": meta["window_start"],
        "train_cutoff": meta["train_cutoff"],
        "window_end": meta["window_end"],
    }
    return ds, truth, info


def _movie_titles(rng: np.random.Generator, n: int) -> list[str]:
    """Invented, plausible, unique titles."""
    patterns = [
        "The {A} {N}", "{N} of the {N2}", "The {N}", "{A} {N}", "A {N} in {P}",
        "{F}'s {N}", "Beyond the {A} {N}", "The {N} and the {N2}", "{N} Road", "After the {N}",
    ]  # fmt: skip
    seen: set[str] = set()
    titles: list[str] = []
    while len(titles) < n:
        pat = pick(rng, patterns)
        title = pat.format(
            A=pick(rng, TITLE_ADJ),
            N=pick(rng, TITLE_NOUN),
            N2=pick(rng, TITLE_NOUN),
            P=pick(rng, PLACES),
            F=pick(rng, FIRST_NAMES),
        )
        if title in seen:
            title = f"{title} {pick(rng, ['II', 'III', 'Returns', 'Redux'])}"
        if title in seen:
            continue
        seen.add(title)
        titles.append(title)
    return titles


def _noise_sentence(rng: np.random.Generator, kind: int, title: str, year: int) -> str:
    p = person
    if kind == 0:
        return f"The cast includes {p(rng)}, {p(rng)}, {p(rng)} and {p(rng)}."
    if kind == 1:
        return f"{p(rng)} plays {pick(rng, ROLES)}, while {p(rng)} appears in a supporting role."
    if kind == 2:
        return (
            f"Principal photography began in {pick(rng, MONTHS)} {year - 1} in "
            f"{pick(rng, PLACES)} and wrapped after {rng.integers(5, 19)} weeks."
        )
    if kind == 3:
        return (
            f"Additional scenes were shot in {pick(rng, PLACES)} and on sound stages "
            f"in {pick(rng, PLACES)}."
        )
    if kind == 4:
        return (
            f"The film was produced by {pick(rng, STUDIOS)} on a budget of about "
            f"${rng.integers(2, 120)} million."
        )
    if kind == 5:
        return f"It grossed ${rng.integers(1, 400)}.{rng.integers(10)} million worldwide."
    if kind == 6:
        return (
            f"The picture premiered at the {pick(rng, FESTIVALS)} in "
            f"{pick(rng, MONTHS)} {year} before a wide release."
        )
    if kind == 7:
        return f"The score was composed by {p(rng)}, and {p(rng)} served as cinematographer."
    if kind == 8:
        return f"The theatrical cut runs {rng.integers(82, 171)} minutes."
    if kind == 9:
        return f"It reached home video {rng.integers(3, 13)} months after its theatrical debut."
    if kind == 10:
        return f"During production, {pick(rng, TRIVIA)}."
    if kind == 11:
        return (
            f"The screenplay was written by {p(rng)} and {p(rng)}, from an original idea "
            f"by {p(rng)}."
        )
    if kind == 12:
        return f"A dubbed version was prepared for distribution in {rng.integers(8, 40)} countries."
    if kind == 13:
        return (
            f"Its opening weekend brought in ${rng.integers(1, 60)} million from "
            f"{rng.integers(400, 4000)} theaters."
        )
    if kind == 14:
        return f"Editing took nearly {rng.integers(3, 11)} months, according to production notes."
    if kind == 15:
        return (
            f"{pick(rng, STUDIOS)} handled distribution in North America, while "
            f"{pick(rng, STUDIOS)} released {title} overseas."
        )
    if kind == 16:
        return (
            f"The poster was designed by {p(rng)}, and the first trailer went online in "
            f"{pick(rng, MONTHS)}."
        )
    return f"Costumes were designed by {p(rng)}, who had worked with the director twice before."


N_NOISE_KINDS = 18


def _movie_text(
    rng: np.random.Generator,
    title: str,
    year: int,
    genres: list[int],
    themes: list[int],
    audience: int,
    mood: int,
    quality: float,
    length: tuple[int, int] = (150, 250),
) -> str:
    """An article: a neutral lead, then signal and noise sentences in random order."""
    lead = (
        f"{title} is a {year} feature film directed by {person(rng)}. "
        f"It stars {person(rng)}, {person(rng)} and {person(rng)}."
    )

    def state(templates: list[str], phrases: list[str]) -> list[str]:
        # Each fact once, sometimes twice (a different template and paraphrase).
        times = 2 if rng.random() < 0.35 else 1
        t_idx = rng.choice(len(templates), size=times, replace=False)
        p_idx = rng.choice(len(phrases), size=times, replace=False)
        return [
            templates[t].format(x=phrases[q], a=article(phrases[q]), T=title)
            for t, q in zip(t_idx, p_idx, strict=True)
        ]

    roles, goals, settings = PLOTS[HIDDEN_GENRES[genres[0]][0]]
    signal: list[str] = [
        f"The plot follows {person(rng)}, {article(pick(rng, roles))} who "
        f"{pick(rng, goals)} in {pick(rng, settings)}."
    ]
    for g in genres:
        signal += state(GENRE_TEMPLATES, HIDDEN_GENRES[g][2])
    for t in themes:
        signal += state(THEME_TEMPLATES, THEMES[t][1])
    signal += state(AUDIENCE_TEMPLATES, AUDIENCES[audience][2])
    signal += state(MOOD_TEMPLATES, MOODS[mood][1])
    if rng.random() < 0.6:  # acclaim: tied to the hidden quality
        if quality > 0.25:
            signal.append(pick(rng, ACCLAIM_GOOD).format(f=pick(rng, FESTIVALS)))
        elif quality < -0.25:
            signal.append(pick(rng, ACCLAIM_BAD))
        else:
            signal.append("Reviews were mixed.")

    target = int(rng.integers(*length))
    words = len(lead.split()) + sum(len(s.split()) for s in signal)
    noise: list[str] = []
    kinds = rng.permutation(N_NOISE_KINDS)
    k = 0
    while words < target:
        sent = _noise_sentence(rng, int(kinds[k % N_NOISE_KINDS]), title, year)
        noise.append(sent)
        words += len(sent.split())
        k += 1
    body = signal + noise
    body = [body[j] for j in rng.permutation(len(body))]
    return " ".join([lead, *body])
