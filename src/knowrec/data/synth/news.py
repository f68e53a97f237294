"""The news data set: articles on latent topics, three weeks of click histories and a
week of impression logs, with trending topics, drifting interests and fading articles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from knowrec.data.synth.sampling import (
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
)
from knowrec.data.synth.sizes import SizeSpec
from knowrec.data.synth.vocab import (
    ENTITY_SUFFIX,
    HEADLINE_TEMPLATES,
    LAST_NAMES,
    NEWS_BODY_TEMPLATES,
    NEWS_FILLER,
    NEWS_TOPICS,
    PERSON_TITLES,
    PLACES,
    SURNAME_HEADS,
    SURNAME_TAILS,
    WEEKDAYS,
    person,
)
from knowrec.data.tables import Dataset, conform

CLICK_OFFSET = 4.0  # logit offset of a click on a shown article


def _entity(rng: np.random.Generator, kind: str) -> str:
    """An invented entity name of a kind (team, company, politician, ...)."""
    town = pick(rng, SURNAME_HEADS) + pick(rng, SURNAME_TAILS)
    if kind == "team":
        return f"{town} {pick(rng, ENTITY_SUFFIX[kind])}"
    if kind in ENTITY_SUFFIX:
        base = town if rng.random() < 0.5 else pick(rng, LAST_NAMES)
        return f"{base} {pick(rng, ENTITY_SUFFIX[kind])}"
    return f"{PERSON_TITLES[kind]} {person(rng)}".strip()


def _entity_pools(rng: np.random.Generator, size: int) -> list[list[str]]:
    """One pool of distinct entities per topic; no entity belongs to two topics."""
    used: set[str] = set()
    pools: list[list[str]] = []
    for topic in NEWS_TOPICS:
        pool: list[str] = []
        while len(pool) < size:
            name = _entity(rng, topic[2])
            if name not in used:
                used.add(name)
                pool.append(name)
        pools.append(pool)
    return pools


def _news_article(
    rng: np.random.Generator, topic: int, pools: list[list[str]]
) -> tuple[str, str, list[str], list[str], str]:
    """Title, text, entities, topic annotations and category of one article."""
    name, category, _, heads, bodies = NEWS_TOPICS[topic]
    pool = pools[topic]
    picks = rng.choice(len(pool), size=int(rng.integers(1, 4)), replace=False)
    ents = [pool[j] for j in picks]
    if rng.random() < 0.15:  # an off-topic entity: annotation noise
        ents.append(pick(rng, pools[int(rng.integers(len(pools)))]))
    ents = list(dict.fromkeys(ents))
    head = pick(rng, HEADLINE_TEMPLATES).format(E=ents[0], h=pick(rng, heads))
    title = head[0].upper() + head[1:]
    sents: list[str] = []
    for b in rng.choice(len(bodies), size=int(rng.integers(1, 3)), replace=False):
        clause = bodies[int(b)]
        sents.append(
            pick(rng, NEWS_BODY_TEMPLATES).format(
                b=clause,
                B=clause[0].upper() + clause[1:],
                day=pick(rng, WEEKDAYS),
                city=pick(rng, PLACES),
            )
        )
    sents += [f"{e} was also mentioned in the report." for e in ents[1:]]
    for f in rng.choice(len(NEWS_FILLER), size=int(rng.integers(2, 5)), replace=False):
        sents.append(NEWS_FILLER[int(f)].format(day=pick(rng, WEEKDAYS), city=pick(rng, PLACES)))
    sents = [sents[j] for j in rng.permutation(len(sents))]
    text = f"{ents[0]} is at the centre of this story. " + " ".join(sents)
    topics = [name] if rng.random() < 0.85 else []
    if rng.random() < 0.25:
        topics.append(NEWS_TOPICS[int(rng.integers(len(NEWS_TOPICS)))][0])
    category = category if rng.random() < 0.92 else "news"
    return title, text, ents, list(dict.fromkeys(topics)), category


def news_world(
    spec: SizeSpec, rng: np.random.Generator
) -> tuple[Dataset, dict[str, pl.DataFrame], dict[str, Any]]:
    """The news data set, its truth tables and its ``world.json`` entry."""
    n_users, n_items = spec.news_users, spec.articles
    n_topics = len(NEWS_TOPICS)
    names = [t[0] for t in NEWS_TOPICS]
    start = epoch_ms(datetime(2019, 11, 1))
    n_days = 28
    lead_days = 3  # articles published before the logs start are still fresh on day 1
    hist_end = start + 21 * MS_PER_DAY
    end = start + n_days * MS_PER_DAY
    lifetime = 72 * MS_PER_HOUR

    # --- articles: one latent topic each, published uniformly, sorted by time
    topic = rng.choice(n_topics, size=n_items, p=rng.dirichlet(np.full(n_topics, 4.0)))
    span = (n_days + lead_days) * MS_PER_DAY - MS_PER_HOUR
    published = start - lead_days * MS_PER_DAY + np.sort(rng.integers(0, span, n_items))
    appeal = rng.normal(0.0, 0.5, n_items)  # clickbait-ness, independent of the topic
    pools = _entity_pools(rng, max(8, n_items // 40))
    articles = [_news_article(rng, int(t), pools) for t in topic]

    # --- topic trends: a daily random walk plus bursts (trending topics)
    n_trend_days = n_days + lead_days + 1
    trend = np.cumsum(rng.normal(0.0, 0.3, (n_topics, n_trend_days)), axis=1)
    burst = (rng.random(n_topics) < 0.5) * 1.2
    centre = rng.uniform(0, n_trend_days, n_topics)
    days_axis = np.arange(n_trend_days)[None, :]
    trend += burst[:, None] * np.exp(-0.5 * ((days_axis - centre[:, None]) / 2.0) ** 2)
    trend -= trend.mean(axis=1, keepdims=True)

    # --- users: topic interests (two favourites each) and their drift over the four weeks
    theta = rng.normal(0.0, 0.8, (n_users, n_topics))
    favs = np.argsort(rng.random((n_users, n_topics)), axis=1)[:, :2]
    np.put_along_axis(theta, favs, np.take_along_axis(theta, favs, 1) + 1.8, axis=1)
    drift = rng.normal(0.0, 0.9, (n_users, n_topics))

    # --- events: reading sessions (weeks 1–3, clicks only) and impressions (week 4)
    n_hist = 1 + rng.poisson(spec.news_history_sessions - 1, n_users)
    n_imp = 1 + rng.poisson(spec.news_impressions - 1, n_users)
    ev_user = np.concatenate(
        [np.repeat(np.arange(n_users), n_hist), np.repeat(np.arange(n_users), n_imp)]
    )
    is_imp = np.repeat([False, True], [int(n_hist.sum()), int(n_imp.sum())])
    ev_time = np.where(
        is_imp,
        hist_end + rng.integers(0, end - hist_end - MS_PER_HOUR, ev_user.shape[0]),
        start + rng.integers(0, hist_end - start - MS_PER_HOUR, ev_user.shape[0]),
    )
    order = np.lexsort((ev_user, ev_time))
    ev_user, is_imp, ev_time = ev_user[order], is_imp[order], ev_time[order]
    n_ev = ev_user.shape[0]
    lo = np.searchsorted(published, ev_time - lifetime, side="left")
    hi = np.searchsorted(published, ev_time, side="right")
    n_alive = hi - lo
    n_pick = np.where(is_imp, rng.integers(5, 21, n_ev), rng.integers(1, 5, n_ev))
    n_pick = np.minimum(n_pick, n_alive)

    # Utility of an article for a user at a time: interest (drifting) + topic trend +
    # appeal − age. Reading sessions pick by utility; impressions show what the site
    # promotes (trending, fresh, lightly personalised) and the user clicks by utility.
    parts_ev, parts_item, parts_util = [], [], []
    width = max(int(n_alive.max()), 1)
    chunk = max(1, 2_000_000 // width)
    for a in range(0, n_ev, chunk):
        b = min(a + chunk, n_ev)
        idx = lo[a:b, None] + np.arange(width)[None, :]
        valid = idx < hi[a:b, None]
        idx = np.minimum(idx, n_items - 1)
        t = ev_time[a:b]
        frac = ((t - start) / (end - start))[:, None]
        interest = theta[ev_user[a:b]] + frac * drift[ev_user[a:b]]
        day = (t - start) // MS_PER_DAY + lead_days
        tops = topic[idx]
        aff = np.take_along_axis(interest, tops, axis=1)
        base = 0.8 * trend[tops, day[:, None]] + appeal[idx]
        base -= (t[:, None] - published[idx]) / (30.0 * MS_PER_HOUR)
        util = 1.4 * aff + base
        expose = np.where(is_imp[a:b, None], 0.3 * aff + base, util)
        keys = np.where(valid, expose + gumbel(rng, idx.shape), -np.inf)
        r, c = ranked_topk(keys, n_pick[a:b])
        parts_ev.append(r + a)
        parts_item.append(idx[r, c])
        parts_util.append(util[r, c])
    ev = np.concatenate(parts_ev)
    item = np.concatenate(parts_item)
    util = np.concatenate(parts_util)
    n_rows = ev.shape[0]
    imp_row = is_imp[ev]
    p_click = 1.0 / (1.0 + np.exp(-(util - CLICK_OFFSET)))
    label = np.where(imp_row, rng.random(n_rows) < p_click, True)
    # Every impression has at least one click, as in MIND: when the draw gave none, the
    # candidate with the highest noisy utility is clicked.
    o = np.lexsort((-(util + rng.gumbel(size=n_rows)), ev))
    ev, item, util, imp_row, label = ev[o], item[o], util[o], imp_row[o], label[o]
    first = group_starts(ev)
    starts = np.flatnonzero(first)
    no_click = np.add.reduceat(label.astype(np.int64), starts) == 0
    label |= first & np.repeat(no_click, np.diff(np.append(starts, n_rows)))
    dwell = np.exp(rng.normal(np.log(40.0) + 0.25 * util, 0.7)).astype(np.float32)
    # Shown order within an impression (and reading order in a session) is random.
    o = np.lexsort((rng.random(n_rows), ev))
    ev, item, imp_row, label, dwell = ev[o], item[o], imp_row[o], label[o], dwell[o]
    pos = np.arange(n_rows)
    pos_in_ev = pos - np.maximum.accumulate(np.where(group_starts(ev), pos, 0))
    gap = rng.integers(MS_PER_MIN, 6 * MS_PER_MIN, n_ev)  # reading pace per session
    ts = ev_time[ev] + np.where(imp_row, 0, pos_in_ev * gap[ev])
    imp_num = np.cumsum(is_imp)  # 1-based impression numbers (valid where is_imp)

    user_ids = pl.Series("user_id", [f"U{k + 1}" for k in range(n_users)])
    item_ids = pl.Series("item_id", [f"N{k + 1}" for k in range(n_items)])
    interactions = pl.DataFrame(
        {
            "user_id": user_ids.gather(ev_user[ev]),
            "item_id": item_ids.gather(item),
            "timestamp": ms_to_datetime(ts, "timestamp"),
            "label": label.astype(np.int8),
            "impression_id": pl.Series(imp_num[ev]).cast(pl.String),
            "session_id": pl.Series(ev + 1).cast(pl.String),
            "dwell_time": dwell,
            "is_imp": imp_row,
            "clicked": label,
        }
    ).select(
        "user_id",
        "item_id",
        "timestamp",
        "label",
        pl.when("is_imp").then(pl.col("impression_id")).alias("impression_id"),
        ("S" + pl.col("session_id")).alias("session_id"),
        pl.when("clicked").then(pl.col("dwell_time")).alias("dwell_time"),
    )
    title, text, ents, topics, category = (list(col) for col in zip(*articles, strict=True))
    items = pl.DataFrame(
        {
            "item_id": item_ids,
            "title": title,
            "text": text,
            "category": category,
            "entities": pl.Series(ents, dtype=pl.List(pl.String)),
            "topics": pl.Series(topics, dtype=pl.List(pl.String)),
            "published": ms_to_datetime(published, "published"),
        }
    )
    meta = {
        "source": "synthetic:news",
        "kind": "news",
        "history_start": ms_to_iso(start),
        "impression_start": ms_to_iso(hist_end),
        "window_end": ms_to_iso(end),
    }
    ds = Dataset(
        interactions=conform(interactions, "interactions"),
        items=conform(items, "items"),
        users=pl.DataFrame({"user_id": user_ids}),
        meta=meta,
    )
    truth = {
        "news_items": pl.DataFrame(
            {
                "item_id": item_ids,
                "topic": [names[t] for t in topic],
                "appeal": appeal.astype(np.float32),
                "published": ms_to_datetime(published, "published"),
            }
        ),
        "news_users": pl.DataFrame(
            {
                "user_id": user_ids,
                "interest": pl.Series(theta.astype(np.float32)).cast(pl.List(pl.Float32)),
                "drift": pl.Series(drift.astype(np.float32)).cast(pl.List(pl.Float32)),
            }
        ),
        "news_topics": pl.DataFrame(
            {
                "topic": names,
                "category": [t[1] for t in NEWS_TOPICS],
                "trend": pl.Series(trend.astype(np.float32)).cast(pl.List(pl.Float32)),
            }
        ),
    }
    info = {
        "users": n_users,
        "items": n_items,
        "interactions": int(interactions.height),
        "impressions": int(is_imp.sum()),
        "history_start": meta["history_start"],
        "impression_start": meta["impression_start"],
        "window_end": meta["window_end"],
        "trend_first_day": ms_to_iso(start - lead_days * MS_PER_DAY),
    }
    return ds, truth, info
