"""World sizes: how many users, items and events each size draws."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SizeSpec:
    """Counts for one world size."""

    movie_users: int
    movies: int
    news_users: int
    articles: int
    ratings_median: float  # median extra ratings per user above the minimum of 20
    max_rating_share: float  # a user rates at most this share of the items available
    news_history_sessions: float  # mean history reading sessions per user
    news_impressions: float  # mean impressions per user
    text_words: tuple[int, int] = (150, 250)  # movie article length: signal + noise


SIZES: dict[str, SizeSpec] = {
    # tiny: the TRAWL demo, few items with short articles, so the real LLM reads all of them.
    "tiny": SizeSpec(1_000, 32, 200, 60, 10.0, 0.6, 3.0, 2.0, text_words=(70, 100)),
    "small": SizeSpec(300, 200, 300, 250, 22.0, 0.5, 4.0, 3.0),
    "demo": SizeSpec(1_500, 600, 1_500, 600, 30.0, 0.4, 5.0, 4.0),
    "large": SizeSpec(20_000, 5_000, 20_000, 5_000, 45.0, 0.3, 6.0, 5.0),
}
