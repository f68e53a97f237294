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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from knowrec.data.movielens import OCCUPATIONS
from knowrec.data.tables import Dataset, conform
from knowrec.errors import ConfigError, DataFormatError

GENERATOR_VERSION = "1"
MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
MS_PER_MIN = 60_000
EPOCH = datetime(1970, 1, 1)
N_ARCHETYPES = 10  # taste archetypes mixed into each movie user's taste
CLICK_OFFSET = 4.0  # news: logit offset of a click on a shown article

# ------------------------------------------------------------------------------------
# Sizes


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

# ------------------------------------------------------------------------------------
# Movie vocabulary. Hidden sub-genres map to the MovieLens surface genres they usually
# carry; each latent value has several paraphrases so the text never uses one keyword.

HIDDEN_GENRES: list[tuple[str, list[str], list[str]]] = [
    ("space opera", ["Sci-Fi", "Adventure"],
     ["space opera", "sprawling space opera saga", "interstellar space adventure",
      "starship epic among distant galaxies"]),
    ("cyberpunk", ["Sci-Fi", "Thriller"],
     ["cyberpunk story", "neon cyberpunk thriller about hackers", "cyberpunk dystopia",
      "story of hackers, implants and megacorporations"]),
    ("heist", ["Crime", "Thriller"],
     ["heist picture", "heist caper about an elaborate robbery", "vault heist thriller",
      "caper about one last big score"]),
    ("detective mystery", ["Mystery", "Crime"],
     ["detective mystery", "whodunit with a dogged detective", "murder mystery",
      "clue-driven detective puzzle"]),
    ("slasher", ["Horror"],
     ["slasher", "masked-killer slasher", "slasher horror film",
      "blood-soaked stalk-and-slash story"]),
    ("supernatural horror", ["Horror"],
     ["supernatural horror film", "ghost story", "haunted-house ghost chiller",
      "supernatural tale of demonic possession"]),
    ("romantic comedy", ["Romance", "Comedy"],
     ["romantic comedy", "rom-com full of banter", "romantic comedy of reluctant lovers",
      "comedy about falling in love"]),
    ("period romance", ["Romance", "Drama"],
     ["period romance", "costume drama about a forbidden courtship",
      "period romance among the gentry", "corset-and-candlelight period piece"]),
    ("war epic", ["War", "Drama", "Action"],
     ["war epic", "battlefield war saga", "war story of soldiers in the trenches",
      "sweeping combat drama"]),
    ("western", ["Western"],
     ["western", "frontier western about gunslingers", "dusty western of cattle drives",
      "tale of outlaws on the open range"]),
    ("martial arts", ["Action"],
     ["martial arts film", "kung fu martial arts showcase", "martial arts tournament picture",
      "story built around hand-to-hand fight choreography"]),
    ("musical", ["Musical"],
     ["musical", "song-and-dance musical", "backstage musical", "story told through show tunes"]),
    ("animated adventure", ["Animation", "Children's", "Adventure"],
     ["animated adventure", "hand-drawn animated quest", "computer-animated romp",
      "cartoon journey with talking animals"]),
    ("high fantasy", ["Fantasy", "Adventure"],
     ["high fantasy", "sword-and-sorcery fantasy quest", "fantasy epic of wizards and dragons",
      "tale of enchanted realms"]),
    ("courtroom drama", ["Drama"],
     ["courtroom drama", "legal courtroom drama", "courtroom story of a trial",
      "tense jury-room drama"]),
    ("political satire", ["Comedy"],
     ["political satire", "satire of politicians and spin doctors", "political comedy",
      "biting satire about election campaigns"]),
    ("nature documentary", ["Documentary"],
     ["nature documentary", "wildlife documentary", "documentary about animals in the wild",
      "nonfiction portrait of fragile ecosystems"]),
    ("film noir", ["Film-Noir", "Crime"],
     ["film noir", "shadowy noir about a doomed private eye", "hard-boiled noir",
      "tale of femmes fatales and smoky offices"]),
    ("family comedy", ["Comedy", "Children's"],
     ["family comedy", "slapstick family comedy", "goofy comedy for the whole family",
      "romp about a chaotic household"]),
    ("disaster", ["Action", "Thriller"],
     ["disaster movie", "disaster thriller about an earthquake", "catastrophe thriller",
      "tale of survivors fleeing a tidal wave"]),
]  # fmt: skip
SURFACE_GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]  # fmt: skip
THEMES: list[tuple[str, list[str]]] = [
    ("revenge", ["revenge", "a quest for revenge", "vengeance", "revenge and retribution"]),
    ("friendship", ["friendship", "an unlikely friendship", "loyalty between friends",
                    "the bonds of friendship"]),
    ("coming of age", ["coming of age", "a coming-of-age journey", "growing up",
                       "the passage from childhood to adulthood"]),
    ("family bonds", ["family bonds", "ties between parents and children",
                      "a family pulling together", "family loyalty"]),
    ("survival", ["survival", "survival against the odds", "endurance in the wilderness",
                  "the will to survive"]),
    ("betrayal", ["betrayal", "a trusted ally's betrayal", "treachery",
                  "betrayal and broken trust"]),
    ("redemption", ["redemption", "a shot at redemption", "atonement for past mistakes",
                    "a flawed hero seeking redemption"]),
    ("identity", ["identity", "the search for identity", "who we really are",
                  "a double life and a hidden identity"]),
    ("power and corruption", ["power and corruption", "corruption at the top",
                              "the corrupting pull of power", "greed and abuse of power"]),
    ("forbidden love", ["forbidden love", "star-crossed lovers", "a secret, forbidden romance",
                        "love across a forbidden divide"]),
    ("grief", ["grief", "loss and grief", "mourning a death in the family",
               "healing after grief and tragedy"]),
    ("freedom", ["freedom", "escape from oppression", "the fight for freedom",
                 "breaking free of confinement"]),
]  # fmt: skip
AUDIENCES: list[tuple[str, float, list[str]]] = [
    # name, the age-bucket index (0..6) it suits best, paraphrases
    ("children", 0.0, ["young children", "families with young children", "kids",
                       "children and their parents"]),
    ("teens", 1.0, ["teenagers", "a teen crowd", "high-school teenagers", "teen viewers"]),
    ("young adults", 2.0, ["young adults", "viewers in their twenties", "a young adult crowd",
                           "college-age young adults"]),
    ("adults", 3.5, ["adult viewers", "grown-up audiences", "a thirty-something adult audience",
                     "working adults"]),
    ("older adults", 5.5, ["older viewers", "audiences over fifty", "older, seasoned viewers",
                           "viewers who grew up decades ago"]),
]  # fmt: skip
MOODS: list[tuple[str, list[str]]] = [
    ("dark", ["dark", "dark and bleak", "grim", "brooding and dark"]),
    ("uplifting", ["uplifting", "hopeful and uplifting", "heartwarming", "inspiring"]),
    ("tense", ["tense", "suspenseful", "tense and nerve-racking", "gripping and tense"]),
    ("whimsical", ["whimsical", "playful and whimsical", "quirky", "whimsical and fanciful"]),
    ("melancholic", ["melancholic", "wistful", "bittersweet and melancholic", "mournful"]),
    ("light-hearted", ["light-hearted", "breezy", "cheerful and light-hearted", "easygoing"]),
]
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

FIRST_NAMES = [
    "Ada", "Bram", "Celia", "Dario", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonah",
    "Kira", "Lucas", "Mira", "Nico", "Olive", "Pavel", "Quinn", "Rosa", "Silas", "Tessa",
    "Umar", "Vera", "Wes", "Xenia", "Yusuf", "Zara", "Amos", "Beatrix", "Cyrus", "Delia",
    "Emeric", "Flora", "Gideon", "Hazel", "Ivo", "Juno", "Kai", "Lena", "Marek", "Nadia",
    "Otto", "Priya", "Rafael", "Selma", "Tobias", "Uma", "Viktor", "Wren", "Yara", "Zeno",
    "Anouk", "Bastian", "Clio", "Dorian", "Esme", "Fabian", "Gwen", "Henrik", "Isla", "Jasper",
]  # fmt: skip
LAST_NAMES = [
    "Ashdown", "Brennan", "Castell", "Dunmore", "Ellery", "Faraday", "Garrow", "Holloway",
    "Ivers", "Jessop", "Kettering", "Lindqvist", "Marlow", "Nakamura", "Okafor", "Pemberton",
    "Quintero", "Rasmussen", "Sorensen", "Thackeray", "Underhill", "Valcourt", "Whitlock",
    "Yardley", "Zielinski", "Abernathy", "Blackwood", "Carrow", "Delacroix", "Eastwick",
    "Fennimore", "Galloway", "Harrowgate", "Ishikawa", "Jankowski", "Kowalczyk", "Larkspur",
    "Moreau", "Northcott", "Oyelaran", "Prescott", "Rydell", "Stavros", "Tamura", "Vasquez",
    "Wexford", "Albright", "Bellamy", "Crane", "Drummond", "Esposito", "Fairbanks", "Grimaldi",
    "Hartigan", "Iverson", "Kaplan", "Lockhart", "Mancini", "Novak", "Ortega",
]  # fmt: skip
TITLE_ADJ = [
    "Glass", "Silent", "Crimson", "Hollow", "Broken", "Golden", "Midnight", "Northern",
    "Forgotten", "Burning", "Quiet", "Iron", "Paper", "Silver", "Distant", "Wild", "Electric",
    "Frozen", "Hidden", "Endless", "Velvet", "Scarlet", "Lonely", "Restless", "Bitter",
    "Bright", "Falling", "Second", "Lost", "Painted", "Copper", "Salt", "Amber", "Sleeping",
    "Winter", "Last", "Secret", "Open", "Narrow", "Shattered",
]  # fmt: skip
TITLE_NOUN = [
    "Harbor", "Orchard", "Signal", "Crown", "River", "Garden", "Lantern", "Mirror", "Highway",
    "Promise", "Horizon", "Echo", "Frontier", "Kingdom", "Station", "Tide", "Cathedral",
    "Circus", "Compass", "Letter", "Summer", "Season", "Island", "Bridge", "Canyon", "Archive",
    "Empire", "Voyage", "Witness", "Stranger", "Daughter", "Machine", "Meridian", "Lighthouse",
    "Parade", "Reckoning", "Sparrow", "Verdict", "Anthem", "Threshold", "Quarry", "Pilgrim",
    "Carousel", "Monsoon", "Citadel", "Ember", "Labyrinth", "Wager",
]  # fmt: skip
PLACES = [
    "Vancouver", "Prague", "Budapest", "Lisbon", "Atlanta", "Glasgow", "Montreal", "Cape Town",
    "Auckland", "Seville", "Toronto", "New Orleans", "Albuquerque", "Belfast", "Malta",
    "Reykjavik", "Marrakesh", "Tbilisi", "Dublin", "Sofia", "Bucharest", "Queensland",
    "Valletta", "Naples", "Krakow", "Tallinn", "Vilnius", "Porto", "Bilbao", "Hokkaido",
]  # fmt: skip
STUDIOS = [
    "Northlight Pictures", "Bluewater Films", "Copperline Studios", "Meridian Entertainment",
    "Halcyon Media", "Red Kite Productions", "Stonebridge Pictures", "Aurora Road Films",
    "Lanternfish Studios", "Greyhaven Pictures", "Tall Pine Entertainment", "Driftwood Films",
]  # fmt: skip
FESTIVALS = [
    "Berlin International Film Festival", "Toronto International Film Festival",
    "Sundance Film Festival", "Venice Film Festival", "Tribeca Festival",
    "Locarno Film Festival", "Busan International Film Festival", "Telluride Film Festival",
]  # fmt: skip
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip
ROLES = [
    "the lead", "a local official", "the narrator", "a mysterious neighbour", "an old mentor",
    "the younger sibling", "a shopkeeper", "a journalist", "a doctor", "the landlord",
]  # fmt: skip
TRIVIA = [
    "a storm destroyed part of the main set",
    "one of the leads broke a wrist and filming paused for a month",
    "the crew relocated twice because of permit problems",
    "two weeks of footage had to be reshot after a camera fault",
    "the original composer left the project",
    "the catering truck famously caught fire",
    "the director rewrote the final act on set",
    "a local family lent their house for several scenes",
]  # fmt: skip

# A plot sentence per item: a protagonist, a goal and a setting typical of the primary
# sub-genre (a Wikipedia plot section carries the genre in its content words).
PLOTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "space opera": (["starship captain", "smuggler pilot", "rebel navigator", "exiled princess"],
                    ["must outrun an imperial fleet", "races to reach a distant colony",
                     "is drawn into a war between planets"],
                    ["a remote star system", "a crumbling orbital station", "the outer rim"]),
    "cyberpunk": (["hacker", "cybernetic mercenary", "rogue programmer", "street courier"],
                  ["breaks into a corporate network", "hunts a rogue artificial intelligence",
                   "steals a prototype neural implant"],
                  ["a neon megacity", "a surveillance state", "the data slums"]),
    "heist": (["safecracker", "retired thief", "con artist", "getaway driver"],
              ["plans to rob a casino vault", "assembles a crew for a diamond robbery",
               "tries to steal a priceless painting"],
              ["a heavily guarded bank", "a glittering casino", "an auction house"]),
    "detective mystery": (["detective", "police inspector", "amateur sleuth", "private eye"],
                          ["investigates a poisoning", "must find the killer before dawn",
                           "follows clues left at a murder scene"],
                          ["a snowbound manor", "a seaside village", "a locked library"]),
    "slasher": (["camp counselor", "babysitter", "college student", "lone survivor"],
                ["is stalked by a masked killer", "must escape a killer with a machete",
                 "watches friends vanish one by one"],
                ["an isolated summer camp", "a cabin in the woods", "a deserted campus"]),
    "supernatural horror": (["priest", "paranormal investigator", "widowed mother", "medium"],
                            ["confronts a vengeful spirit", "tries to banish a demon",
                             "hears whispers from the attic"],
                            ["a haunted mansion", "a cursed farmhouse", "an abandoned asylum"]),
    "romantic comedy": (["wedding planner", "struggling baker", "clumsy journalist", "florist"],
                        ["falls for a rival", "fakes an engagement",
                         "keeps bumping into a stranger"],
                        ["a busy city", "a holiday resort", "a small bookshop"]),
    "period romance": (["governess", "young heiress", "impoverished nobleman", "duchess"],
                       ["falls for a man below her station", "must choose between duty and love",
                        "exchanges secret letters with a suitor"],
                       ["a country estate", "a Victorian ballroom", "a Regency town house"]),
    "war epic": (["infantry sergeant", "young conscript", "field medic", "bomber pilot"],
                 ["leads a platoon behind enemy lines", "survives a brutal offensive",
                  "must hold a bridge against an enemy advance"],
                 ["the trenches", "a bombed-out city", "a beachhead under fire"]),
    "western": (["sheriff", "bounty hunter", "rancher", "gunslinger"],
                ["tracks an outlaw gang", "defends a frontier town",
                 "drives cattle across the plains"],
                ["a dusty frontier town", "the open prairie", "a desert canyon"]),
    "martial arts": (["kung fu student", "disgraced fighter", "temple monk", "street brawler"],
                     ["trains for a deadly tournament", "avenges a master", "fights a rival dojo"],
                     ["a mountain temple", "an underground fight club", "a crowded harbor town"]),
    "musical": (["chorus girl", "aspiring singer", "piano player", "dance troupe leader"],
                ["dreams of a Broadway stage", "puts on a show to save a theater",
                 "sings through heartbreak"],
                ["a backstage dressing room", "a vaudeville theater", "a jazz club"]),
    "animated adventure": (["young fox", "talking toy", "brave little robot", "runaway puppy"],
                           ["sets out to find a way home", "joins a band of animal friends",
                            "saves an enchanted forest"],
                           ["a magical forest", "a toy shop", "a cartoon kingdom"]),
    "high fantasy": (["young wizard", "dwarf warrior", "elf archer", "squire"],
                     ["must destroy a cursed sword", "battles a dragon", "seeks a lost crown"],
                     ["an enchanted kingdom", "a dark fortress", "misty elven woods"]),
    "courtroom drama": (["defense attorney", "public defender", "prosecutor", "juror"],
                        ["defends a man accused of murder", "exposes a lying witness",
                         "fights for a verdict"],
                        ["a crowded courtroom", "the jury room", "a small-town courthouse"]),
    "political satire": (["hapless senator", "spin doctor", "press secretary", "campaign manager"],
                         ["tries to cover up a scandal", "invents a fake war", "rigs an election"],
                         ["the capital", "a campaign bus", "a chaotic press office"]),
    "nature documentary": (["wildlife filmmaker", "marine biologist", "field researcher"],
                           ["follows a pride of lions", "tracks whales on their migration",
                            "films penguins through a winter"],
                           ["the savanna", "a coral reef", "the arctic tundra"]),
    "film noir": (["private eye", "femme fatale", "washed-up cop", "nightclub singer"],
                  ["is framed for a murder", "chases a double-crossing client",
                   "is lured into an insurance scam"],
                  ["rain-slicked streets", "a smoky nightclub", "a seedy hotel"]),
    "family comedy": (["frazzled dad", "mischievous twins", "babysitting grandma", "family dog"],
                      ["wrecks a family holiday", "causes chaos at a birthday party",
                       "must survive a road trip with the kids"],
                      ["a suburban home", "a crowded minivan", "a chaotic theme park"]),
    "disaster": (["seismologist", "firefighter", "airline pilot", "volcano expert"],
                 ["warns a city of an earthquake", "leads survivors from a flood",
                  "races ahead of a tidal wave"],
                 ["a coastal city", "a collapsing skyscraper", "a town below a volcano"]),
}  # fmt: skip

GENRE_TEMPLATES = [
    "At its core, the film is {a}.",
    "Critics have described it as {a} first and foremost.",
    "Most reviewers classified the picture as {a}.",
    "Underneath the marketing, this is unmistakably {a}.",
    "The studio pitched the project as {a}.",
    "{T} works as {a}, and it never pretends to be anything else.",
]
THEME_TEMPLATES = [
    "The story deals with {x}.",
    "Its central theme is {x}.",
    "Much of the screenplay revolves around {x}.",
    "The director has said the film is really about {x}.",
    "Beneath the plot lies a meditation on {x}.",
    "Viewers will notice how often the narrative returns to {x}.",
]
AUDIENCE_TEMPLATES = [
    "The film was made with {x} in mind.",
    "Marketing targeted {x}.",
    "It is squarely aimed at {x}.",
    "Test screenings showed it played best with {x}.",
    "The filmmakers said they wrote it for {x}.",
]
MOOD_TEMPLATES = [
    "The overall tone is {x}.",
    "Audiences tend to remember how {x} it feels.",
    "The mood throughout is {x}, from the opening scene to the credits.",
    "Critics called it {a} experience.",
    "Its atmosphere stays {x} almost all the way through.",
]

ACCLAIM_GOOD = [
    "It won the audience award at the {f}.",
    "Critics praised it widely, and it collected several award nominations.",
    "It is often listed among the best films of its year.",
]
ACCLAIM_BAD = [
    "Critical reception was largely negative.",
    "Reviews were poor, with many critics calling it forgettable.",
    "It was widely panned and quickly left theaters.",
]


def _article(phrase: str) -> str:
    """``phrase`` with "a" or "an" in front."""
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


# ------------------------------------------------------------------------------------
# The world


@dataclass
class World:
    """The synthetic world: two data sets, the hidden truth, and a small manifest."""

    movies: Dataset
    news: Dataset
    truth: dict[str, pl.DataFrame]
    info: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``movies/``, ``news/``, ``truth/*.parquet`` and ``world.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.movies.save(out / "movies")
        self.news.save(out / "news")
        tdir = out / "truth"
        tdir.mkdir(exist_ok=True)
        for name in sorted(self.truth):
            self.truth[name].write_parquet(
                tdir / f"{name}.parquet", compression="zstd", compression_level=3, statistics=True
            )
        (out / "world.json").write_text(json.dumps(self.info, indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> World:
        """Read a directory written by :meth:`save`."""
        src = Path(directory)
        manifest = src / "world.json"
        if not manifest.exists():
            raise DataFormatError("not a synthetic world directory (no world.json)", path=src)
        info = json.loads(manifest.read_text())
        truth = {p.stem: pl.read_parquet(p) for p in sorted((src / "truth").glob("*.parquet"))}
        return cls(
            movies=Dataset.load(src / "movies"),
            news=Dataset.load(src / "news"),
            truth=truth,
            info=info,
        )


def generate_world(seed: int = 0, size: str = "small") -> World:
    """Generate the synthetic world for ``seed`` and ``size`` ("small", "demo", "large")."""
    if size not in SIZES:
        raise ConfigError(f"unknown world size {size!r}; known sizes are {', '.join(SIZES)}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    spec = SIZES[size]
    movie_ss, news_ss = np.random.SeedSequence([int(seed), 20240611]).spawn(2)
    movies, movie_truth, movie_info = _movie_world(spec, np.random.default_rng(movie_ss))
    news, news_truth, news_info = _news_world(spec, np.random.default_rng(news_ss))
    for ds, kind in ((movies, "movies"), (news, "news")):
        ds.meta.update({"seed": int(seed), "size": size, "generator_version": GENERATOR_VERSION})
        ds.meta["source"] = f"synthetic:{kind}"
    info = {
        "generator": "knowrec.data.synth",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": size,
        "movies": movie_info,
        "news": news_info,
    }
    return World(movies=movies, news=news, truth={**movie_truth, **news_truth}, info=info)


# ------------------------------------------------------------------------------------
# Helpers


def _ms_to_datetime(ms: np.ndarray, name: str) -> pl.Series:
    return pl.Series(name, ms.astype(np.int64)).cast(pl.Datetime("ms"))


def _epoch_ms(dt: datetime) -> int:
    return int((dt - EPOCH) / timedelta(milliseconds=1))


def _iso(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=int(ms))).isoformat()


def _choice(rng: np.random.Generator, seq: list[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _sample_categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) probability matrix (rows need not be normalised)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def _ranked_topk(keys: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the ``k[r]`` largest keys of each row ``r``, best first."""
    kmax = int(k.max(initial=0))
    if kmax == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if kmax < keys.shape[1]:
        part = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
    else:
        part = np.broadcast_to(np.arange(keys.shape[1]), keys.shape)
    vals = np.take_along_axis(keys, part, axis=1)
    order = np.take_along_axis(part, np.argsort(-vals, axis=1, kind="stable"), axis=1)
    take = np.arange(order.shape[1])[None, :] < k[:, None]
    rows, ranks = np.nonzero(take)
    return rows, order[rows, ranks]


def _gumbel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard Gumbel noise in float32 (fast; used for sampling without replacement)."""
    u = rng.random(shape, dtype=np.float32)
    with np.errstate(divide="ignore"):
        return -np.log(-np.log(u))


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a row starts a new run of equal ``keys`` (rows sorted)."""
    start = np.ones(keys.shape[0], dtype=bool)
    start[1:] = keys[1:] != keys[:-1]
    return start


# ------------------------------------------------------------------------------------
# Movies


def _movie_world(
    spec: SizeSpec, rng: np.random.Generator
) -> tuple[Dataset, dict[str, pl.DataFrame], dict[str, Any]]:
    n_users, n_items = spec.movie_users, spec.movies
    start = _epoch_ms(datetime(2021, 1, 1))
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
    audience = _sample_categorical(rng, np.exp(aud_bias[primary]))
    mood = _sample_categorical(rng, np.exp(mood_bias[primary]))

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
            keep.add(_choice(rng, SURFACE_GENRES))
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
    occupation = _sample_categorical(rng, occ_w[age_idx])

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
        keys = boost[None, :] + np.float32(0.6) * aff + _gumbel(rng, aff.shape)
        keys[~avail] = -np.inf
        k = np.minimum(n_rate[lo:hi], np.floor(spec.max_rating_share * avail.sum(1))).astype(int)
        r, c = _ranked_topk(keys, k)
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
    grp_start = _group_starts(uu * n_g + group)
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
    s_num[s_rank] = s_pos - np.maximum.accumulate(np.where(_group_starts(s_user[s_rank]), s_pos, 0))
    final = np.lexsort((ii, ts, uu))
    uu, ii, ts, rating, sess = uu[final], ii[final], ts[final], rating[final], sess[final]

    user_ids = pl.Series("user_id", np.arange(1, n_users + 1)).cast(pl.String)
    item_ids = pl.Series("item_id", np.arange(1, n_items + 1)).cast(pl.String)
    interactions = pl.DataFrame(
        {
            "user_id": user_ids.gather(uu),
            "item_id": item_ids.gather(ii),
            "timestamp": _ms_to_datetime(ts, "timestamp"),
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
        "window_start": _iso(start),
        "train_cutoff": _iso(cutoff),
        "window_end": _iso(end),
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
                "release": _ms_to_datetime(release, "release"),
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
                "active_from": _ms_to_datetime(u_start, "active_from"),
                "active_to": _ms_to_datetime(u_end, "active_to"),
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
        pat = _choice(rng, patterns)
        title = pat.format(
            A=_choice(rng, TITLE_ADJ),
            N=_choice(rng, TITLE_NOUN),
            N2=_choice(rng, TITLE_NOUN),
            P=_choice(rng, PLACES),
            F=_choice(rng, FIRST_NAMES),
        )
        if title in seen:
            title = f"{title} {_choice(rng, ['II', 'III', 'Returns', 'Redux'])}"
        if title in seen:
            continue
        seen.add(title)
        titles.append(title)
    return titles


SURNAME_HEADS = [
    "Ash", "Black", "Brook", "Cald", "Dun", "East", "Fair", "Gold", "Hale", "Hart", "Kings",
    "Lang", "Mar", "North", "Oak", "Pen", "Ravens", "Sel", "Thorn", "Wald", "West", "Wyn",
]  # fmt: skip
SURNAME_TAILS = [
    "wood", "ley", "ford", "well", "more", "ton", "field", "croft", "by", "wick", "stone",
    "bury", "dale", "holt", "mere", "worth", "hurst", "combe",
]  # fmt: skip


def _person(rng: np.random.Generator) -> str:
    """An invented name (the surname from a pool of ~400, or a fixed list)."""
    if rng.random() < 0.5:
        last = _choice(rng, SURNAME_HEADS) + _choice(rng, SURNAME_TAILS)
    else:
        last = _choice(rng, LAST_NAMES)
    return f"{_choice(rng, FIRST_NAMES)} {last}"


def _noise_sentence(rng: np.random.Generator, kind: int, title: str, year: int) -> str:
    p = _person
    if kind == 0:
        return f"The cast includes {p(rng)}, {p(rng)}, {p(rng)} and {p(rng)}."
    if kind == 1:
        return f"{p(rng)} plays {_choice(rng, ROLES)}, while {p(rng)} appears in a supporting role."
    if kind == 2:
        return (
            f"Principal photography began in {_choice(rng, MONTHS)} {year - 1} in "
            f"{_choice(rng, PLACES)} and wrapped after {rng.integers(5, 19)} weeks."
        )
    if kind == 3:
        return (
            f"Additional scenes were shot in {_choice(rng, PLACES)} and on sound stages "
            f"in {_choice(rng, PLACES)}."
        )
    if kind == 4:
        return (
            f"The film was produced by {_choice(rng, STUDIOS)} on a budget of about "
            f"${rng.integers(2, 120)} million."
        )
    if kind == 5:
        return f"It grossed ${rng.integers(1, 400)}.{rng.integers(10)} million worldwide."
    if kind == 6:
        return (
            f"The picture premiered at the {_choice(rng, FESTIVALS)} in "
            f"{_choice(rng, MONTHS)} {year} before a wide release."
        )
    if kind == 7:
        return f"The score was composed by {p(rng)}, and {p(rng)} served as cinematographer."
    if kind == 8:
        return f"The theatrical cut runs {rng.integers(82, 171)} minutes."
    if kind == 9:
        return f"It reached home video {rng.integers(3, 13)} months after its theatrical debut."
    if kind == 10:
        return f"During production, {_choice(rng, TRIVIA)}."
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
            f"{_choice(rng, STUDIOS)} handled distribution in North America, while "
            f"{_choice(rng, STUDIOS)} released {title} overseas."
        )
    if kind == 16:
        return (
            f"The poster was designed by {p(rng)}, and the first trailer went online in "
            f"{_choice(rng, MONTHS)}."
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
        f"{title} is a {year} feature film directed by {_person(rng)}. "
        f"It stars {_person(rng)}, {_person(rng)} and {_person(rng)}."
    )

    def state(templates: list[str], phrases: list[str]) -> list[str]:
        # Each fact once, sometimes twice (a different template and paraphrase).
        times = 2 if rng.random() < 0.35 else 1
        t_idx = rng.choice(len(templates), size=times, replace=False)
        p_idx = rng.choice(len(phrases), size=times, replace=False)
        return [
            templates[t].format(x=phrases[q], a=_article(phrases[q]), T=title)
            for t, q in zip(t_idx, p_idx, strict=True)
        ]

    roles, goals, settings = PLOTS[HIDDEN_GENRES[genres[0]][0]]
    signal: list[str] = [
        f"The plot follows {_person(rng)}, {_article(_choice(rng, roles))} who "
        f"{_choice(rng, goals)} in {_choice(rng, settings)}."
    ]
    for g in genres:
        signal += state(GENRE_TEMPLATES, HIDDEN_GENRES[g][2])
    for t in themes:
        signal += state(THEME_TEMPLATES, THEMES[t][1])
    signal += state(AUDIENCE_TEMPLATES, AUDIENCES[audience][2])
    signal += state(MOOD_TEMPLATES, MOODS[mood][1])
    if rng.random() < 0.6:  # acclaim: tied to the hidden quality
        if quality > 0.25:
            signal.append(_choice(rng, ACCLAIM_GOOD).format(f=_choice(rng, FESTIVALS)))
        elif quality < -0.25:
            signal.append(_choice(rng, ACCLAIM_BAD))
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


# ------------------------------------------------------------------------------------
# News

NEWS_TOPICS: list[tuple[str, str, str, list[str], list[str]]] = [
    # name, category, entity kind, headline phrases, body clauses
    ("football", "sports", "team",
     ["late winning goal", "league title race", "penalty shootout drama",
      "transfer window gamble", "derby defeat"],
     ["the striker scored twice before halftime", "the goalkeeper saved a late penalty",
      "the midfield struggled to keep possession", "supporters sang until the final whistle",
      "the manager blamed the referee for the defeat", "the club is chasing a new defender"]),
    ("basketball", "sports", "team",
     ["buzzer-beater", "playoff push", "triple-double night", "draft lottery surprise"],
     ["the point guard finished with a triple-double", "a buzzer-beater sealed the game",
      "the bench outscored the starters in the fourth quarter", "rebounds decided the contest",
      "the rookie forward dunked over two defenders",
      "the coach called a timeout to stop the run"]),
    ("elections", "news", "politician",
     ["tight polling race", "televised debate clash", "campaign trail stop", "ballot count delay"],
     ["voters head to the polls next month", "the campaign released a new attack ad",
      "polling shows the race within the margin of error", "turnout among young voters rose",
      "the candidates clashed over taxes in the debate",
      "election officials began counting ballots"]),
    ("climate", "news", "climate",
     ["record heat wave", "new emissions target", "rising sea levels", "wildfire season outlook"],
     ["scientists warned that emissions are still climbing",
      "the heat wave broke temperature records", "coastal towns are preparing for flooding",
      "the carbon reduction plan drew criticism", "glaciers are melting faster than predicted",
      "solar and wind capacity grew again this year"]),
    ("crime", "news", "police",
     ["police manhunt", "fraud trial verdict", "bank robbery arrest", "cold case breakthrough"],
     ["detectives arrested two suspects", "the jury returned a guilty verdict",
      "prosecutors filed fraud charges", "police asked witnesses to come forward",
      "the suspect was held without bail", "investigators reopened the decades-old case"]),
    ("technology", "news", "tech",
     ["smartphone launch", "data breach fallout", "artificial intelligence push",
      "chip shortage warning"],
     ["the new phone ships with a faster chip", "hackers exposed millions of passwords",
      "the software update adds machine learning features", "engineers unveiled a prototype",
      "the startup raised money for its chatbot", "semiconductor supplies remain tight"]),
    ("markets", "finance", "fund",
     ["stock market rally", "interest rate jitters", "quarterly earnings beat", "bond yield spike"],
     ["shares jumped after earnings beat forecasts", "investors fear another rate hike",
      "the index closed at a record high", "analysts cut their price targets",
      "the central bank held interest rates steady", "traders sold off bank stocks"]),
    ("personal finance", "finance", "person",
     ["retirement savings tips", "mortgage rates climb", "credit card debt trap",
      "tax refund checklist"],
     ["experts suggest saving a fixed share of each paycheck",
      "mortgage rates rose for a third week", "paying down high-interest debt first helps",
      "households can claim several overlooked deductions",
      "a simple budget can cut monthly spending", "retirement accounts offer tax advantages"]),
    ("celebrity", "lifestyle", "person",
     ["red carpet moment", "surprise engagement", "celebrity feud", "star's new look"],
     ["the actress wore a custom gown on the red carpet",
      "fans flooded social media after the engagement news",
      "the singer addressed the rumours in an interview", "paparazzi photographed the couple",
      "the reality star unveiled a dramatic new hairstyle",
      "the famous pair were seen on a yacht"]),
    ("movies", "movies", "studio",
     ["box office opening", "blockbuster sequel", "awards season contender", "trailer reveal"],
     ["the sequel topped the weekend box office", "critics praised the director's latest film",
      "the studio released a first trailer", "the cast reunited for the premiere",
      "the superhero film broke opening records", "the festival jury awarded its top prize"]),
    ("music", "music", "band",
     ["new album drop", "world tour dates", "chart-topping single", "festival lineup"],
     ["the band announced a world tour", "the single debuted at number one",
      "the album features several surprise collaborations", "tickets sold out within minutes",
      "the rapper released a surprise mixtape", "the guitarist left the group after a decade"]),
    ("health", "health", "medical",
     ["clinical trial results", "flu season warning", "breakthrough treatment", "vaccine update"],
     ["researchers reported promising trial results", "doctors urged patients to get vaccinated",
      "the new therapy reduced symptoms in most patients", "hospitals saw a rise in admissions",
      "the study linked poor diet to heart disease", "regulators approved a new cancer drug"]),
    ("fitness", "health", "coach",
     ["home workout routine", "marathon training plan", "sleep and recovery", "strength habits"],
     ["trainers recommend short daily workouts", "runners should build mileage slowly",
      "stretching after exercise reduces soreness", "a consistent sleep schedule aids recovery",
      "squats and lunges build leg strength", "yoga improves balance and flexibility"]),
    ("travel", "travel", "place",
     ["hidden beach towns", "cheap flight deals", "national park guide", "weekend city break"],
     ["the coastal village is quiet outside the summer season",
      "airfares dropped for winter departures", "hiking trails reopened after repairs",
      "the old town is best explored on foot", "the island ferry runs twice a day",
      "budget hotels fill quickly during festivals"]),
    ("food", "foodanddrink", "chef",
     ["easy weeknight recipe", "holiday baking guide", "new restaurant opening", "comfort food"],
     ["the recipe takes thirty minutes and one pan", "bakers should chill the dough overnight",
      "the chef opened a second restaurant downtown", "roasted vegetables add depth to the dish",
      "the soup freezes well for busy weeks", "the bakery sells out of croissants by noon"]),
    ("autos", "autos", "carmaker",
     ["electric pickup debut", "vehicle recall", "fuel economy ratings", "sports car review"],
     ["the electric truck offers a longer driving range", "the recall affects older models",
      "the sedan earned top fuel economy marks", "dealers report long waiting lists",
      "the sports car reaches sixty in under four seconds",
      "the carmaker will build a new battery plant"]),
]  # fmt: skip
HEADLINE_TEMPLATES = [
    "{E} reacts to {h}", "{E} faces questions after {h}", "Inside {E}'s {h}",
    "What {E}'s {h} means for you", "{E} and the {h}: what we know", "{h}: {E} speaks out",
]  # fmt: skip
NEWS_FILLER = [
    "The announcement came late on {day}.", "More details are expected in the coming days.",
    "A spokesperson declined to comment further.", "This story has been updated.",
    "Readers shared the report widely on {day}.", "The full statement was posted online.",
    "Local reporters followed the story from {city}.",
    "It was not immediately clear what comes next.",
]  # fmt: skip
NEWS_BODY_TEMPLATES = [
    "Reports say {b}.", "According to people familiar with the matter, {b}.",
    "On {day}, {b}.", "{B}, officials in {city} confirmed.", "Observers noted that {b}.",
]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ENTITY_SUFFIX = {
    "team": ["FC", "Hawks", "Rovers", "Comets", "Titans", "United", "Wolves", "Mariners"],
    "tech": ["Labs", "Systems", "Software", "Robotics", "Networks"],
    "fund": ["Capital", "Holdings", "Partners", "Bancorp", "Securities"],
    "carmaker": ["Motors", "Automotive", "Cars", "Autoworks"],
    "climate": ["Climate Institute", "Environmental Agency", "Ocean Council"],
    "police": ["Police Department", "Sheriff's Office", "District Court"],
    "medical": ["Medical Center", "Health Institute", "University Hospital"],
    "studio": ["Studios", "Pictures", "Films"],
    "band": ["Collective", "Brothers", "Orchestra", "Sound"],
    "place": ["Bay", "Valley", "Springs", "Island", "Heights"],
}
PERSON_TITLES = {"politician": "Senator", "chef": "Chef", "coach": "Coach", "person": ""}


def _entity(rng: np.random.Generator, kind: str) -> str:
    """An invented entity name of a kind (team, company, politician, ...)."""
    town = _choice(rng, SURNAME_HEADS) + _choice(rng, SURNAME_TAILS)
    if kind == "team":
        return f"{town} {_choice(rng, ENTITY_SUFFIX[kind])}"
    if kind in ENTITY_SUFFIX:
        base = town if rng.random() < 0.5 else _choice(rng, LAST_NAMES)
        return f"{base} {_choice(rng, ENTITY_SUFFIX[kind])}"
    return f"{PERSON_TITLES[kind]} {_person(rng)}".strip()


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
        ents.append(_choice(rng, pools[int(rng.integers(len(pools)))]))
    ents = list(dict.fromkeys(ents))
    head = _choice(rng, HEADLINE_TEMPLATES).format(E=ents[0], h=_choice(rng, heads))
    title = head[0].upper() + head[1:]
    sents: list[str] = []
    for b in rng.choice(len(bodies), size=int(rng.integers(1, 3)), replace=False):
        clause = bodies[int(b)]
        sents.append(
            _choice(rng, NEWS_BODY_TEMPLATES).format(
                b=clause,
                B=clause[0].upper() + clause[1:],
                day=_choice(rng, WEEKDAYS),
                city=_choice(rng, PLACES),
            )
        )
    sents += [f"{e} was also mentioned in the report." for e in ents[1:]]
    for f in rng.choice(len(NEWS_FILLER), size=int(rng.integers(2, 5)), replace=False):
        sents.append(
            NEWS_FILLER[int(f)].format(day=_choice(rng, WEEKDAYS), city=_choice(rng, PLACES))
        )
    sents = [sents[j] for j in rng.permutation(len(sents))]
    text = f"{ents[0]} is at the centre of this story. " + " ".join(sents)
    topics = [name] if rng.random() < 0.85 else []
    if rng.random() < 0.25:
        topics.append(NEWS_TOPICS[int(rng.integers(len(NEWS_TOPICS)))][0])
    category = category if rng.random() < 0.92 else "news"
    return title, text, ents, list(dict.fromkeys(topics)), category


def _news_world(
    spec: SizeSpec, rng: np.random.Generator
) -> tuple[Dataset, dict[str, pl.DataFrame], dict[str, Any]]:
    n_users, n_items = spec.news_users, spec.articles
    n_topics = len(NEWS_TOPICS)
    names = [t[0] for t in NEWS_TOPICS]
    start = _epoch_ms(datetime(2019, 11, 1))
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
        keys = np.where(valid, expose + _gumbel(rng, idx.shape), -np.inf)
        r, c = _ranked_topk(keys, n_pick[a:b])
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
    first = _group_starts(ev)
    starts = np.flatnonzero(first)
    no_click = np.add.reduceat(label.astype(np.int64), starts) == 0
    label |= first & np.repeat(no_click, np.diff(np.append(starts, n_rows)))
    dwell = np.exp(rng.normal(np.log(40.0) + 0.25 * util, 0.7)).astype(np.float32)
    # Shown order within an impression (and reading order in a session) is random.
    o = np.lexsort((rng.random(n_rows), ev))
    ev, item, imp_row, label, dwell = ev[o], item[o], imp_row[o], label[o], dwell[o]
    pos = np.arange(n_rows)
    pos_in_ev = pos - np.maximum.accumulate(np.where(_group_starts(ev), pos, 0))
    gap = rng.integers(MS_PER_MIN, 6 * MS_PER_MIN, n_ev)  # reading pace per session
    ts = ev_time[ev] + np.where(imp_row, 0, pos_in_ev * gap[ev])
    imp_num = np.cumsum(is_imp)  # 1-based impression numbers (valid where is_imp)

    user_ids = pl.Series("user_id", [f"U{k + 1}" for k in range(n_users)])
    item_ids = pl.Series("item_id", [f"N{k + 1}" for k in range(n_items)])
    interactions = pl.DataFrame(
        {
            "user_id": user_ids.gather(ev_user[ev]),
            "item_id": item_ids.gather(item),
            "timestamp": _ms_to_datetime(ts, "timestamp"),
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
            "published": _ms_to_datetime(published, "published"),
        }
    )
    meta = {
        "source": "synthetic:news",
        "kind": "news",
        "history_start": _iso(start),
        "impression_start": _iso(hist_end),
        "window_end": _iso(end),
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
                "published": _ms_to_datetime(published, "published"),
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
        "trend_first_day": _iso(start - lead_days * MS_PER_DAY),
    }
    return ds, truth, info
