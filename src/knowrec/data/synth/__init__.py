"""The synthetic world: the project's built-in data, with a known ground truth.

Two data sets in the canonical tables plus the hidden truth that generated them:

``movies`` (MovieLens-like)
    Users with ML-1M-style profiles rate invented movies 1–5. Ratings come from a
    latent taste model: the user's taste over *hidden* attributes (sub-genres, themes,
    target audience, mood), shifted by the profile (the age bucket moves audience
    preferences; gender and occupation have weak effects), plus item quality, a per-user
    rating bias (generous vs harsh raters) and noise. Which items a user rates depends on
    popularity and taste. Each item has a long, article-like ``text`` in which the hidden
    attributes are stated once or twice, in varied paraphrases, at random positions among
    many noise sentences (cast, crew, filming, box office...), so a model that reads the
    text can learn what the ids alone cannot — notably for the *cold* items, released
    after ``meta["train_cutoff"]``, which have no rating before it. Ratings are grouped
    into sessions of related items (same hidden sub-genre, mostly), so co-engagement
    carries item–item relatedness.
``news`` (MIND-like)
    Articles with one latent topic, a coarse category, entity and topic annotations, a
    title and an abstract. Click histories (``label`` 1, ``impression_id`` null) cover the
    first three weeks; impression logs (one row per shown article, ``label`` 1/0, at
    least one click per impression, ``dwell_time`` for clicks) the last week. Topic
    popularity trends over time, user interests drift, and articles fade after
    publication.
``truth``
    Polars tables the models must never see: latent item attributes, user taste vectors,
    rating biases, topic trends.

Everything is drawn from one seeded :class:`numpy.random.Generator` tree (no set order,
no clock), so the same ``seed`` and ``size`` give byte-identical files with the same
library versions on the same platform (numpy's vectorised ``exp``/``log`` and BLAS may
differ in the last bit across CPUs, which can change a near-tie).

Modules: ``world`` (:class:`World`, :func:`generate_world`), ``movies`` and ``news`` (one
generator each), ``vocab`` (the word lists), ``sizes`` and ``sampling`` (shared draws).
"""

from knowrec.data.synth.movies import AGE_BUCKETS
from knowrec.data.synth.sizes import SIZES, SizeSpec
from knowrec.data.synth.vocab import (
    AUDIENCES,
    HIDDEN_GENRES,
    MOODS,
    NEWS_TOPICS,
    SURFACE_GENRES,
    THEMES,
)
from knowrec.data.synth.world import GENERATOR_VERSION, World, generate_world

__all__ = [
    "AGE_BUCKETS",
    "AUDIENCES",
    "GENERATOR_VERSION",
    "HIDDEN_GENRES",
    "MOODS",
    "NEWS_TOPICS",
    "SIZES",
    "SURFACE_GENRES",
    "THEMES",
    "SizeSpec",
    "World",
    "generate_world",
]
