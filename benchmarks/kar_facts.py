"""How often the KAR item knowledge states the facts right (issue 13's knowledge quality).

KAR asks the LLM about a movie's title alone; TRAWL extracts from the movie's TML1M text.
This checks KAR's answers against TML1M: is the named director the movie's director, and
how many of the named actors are in its cast? Reads the committed table, no LLM call.

    .venv/bin/python benchmarks/kar_facts.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHARED_DATA, write_result
from knowrec.data.movielens import load_ml1m

# "directed by Steven Spielberg", "starring Tom Hanks, Tim Allen and Don Rickles"
NAME = r"(?:[A-Z]\.|[A-Z][\w'-]+)(?: (?:[A-Z]\.|[A-Z][\w'-]+))*"  # "Samuel L. Jackson"
DIRECTED = re.compile(rf"directed by ({NAME})")
STARRING = re.compile(rf"starring ((?:{NAME})(?:,? (?:and )?{NAME})*)")


COUNTS = ("director_named", "director_right", "actors_named", "actors_right")


def surname(name: str) -> str:
    return name.split()[-1].lower()


def check(text: str, director: str, cast: str) -> dict[str, int]:
    """Counts for one answer: director named / right, actors named / in the cast."""
    directors = {surname(d) for d in director.split(",") if d.strip()}
    actors = {surname(a) for a in cast.split(",") if a.strip()}
    out = dict.fromkeys(COUNTS, 0)
    if m := DIRECTED.search(text):
        out["director_named"] = 1
        out["director_right"] = int(surname(m.group(1)) in directors)
    if m := STARRING.search(text):
        named = [n for n in re.split(r",? and |, ", m.group(1)) if n.strip()]
        out["actors_named"] = len(named)
        out["actors_right"] = sum(surname(n) in actors for n in named)
    return out


BANDS = [(0, 100), (100, 500), (500, 1500), (1500, None)]  # popularity ranks


def main() -> None:
    table = pl.read_parquet(ROOT / "benchmarks" / "data" / "ml1m_knowledge_item_kar.parquet")
    answers = dict(table.filter(pl.col("status") == "ok").select("id", "text").iter_rows())
    tml = pl.read_csv(SHARED_DATA / "tml1m-movie-plots" / "movies.csv", infer_schema=False)
    data = load_ml1m(SHARED_DATA / "ml-1m")
    ids = data.items["item_id"].to_list()
    # TML1M's MovieID k is the k-th movie of movies.dat (see knowledge_ml1m.py)
    facts = {ids[int(r["MovieID"]) - 1]: r for r in tml.iter_rows(named=True)}
    counts = data.interactions.group_by("item_id").len().sort("len", "item_id", descending=True)
    ranked = counts["item_id"].to_list()
    bands = []
    for lo, hi in BANDS:
        totals = dict.fromkeys(("movies", *COUNTS), 0)
        for item in ranked[lo:hi]:
            fact = facts.get(item)
            if item not in answers or not fact or not fact["Director"] or not fact["Cast"]:
                continue
            totals["movies"] += 1
            for key, n in check(answers[item], fact["Director"], fact["Cast"]).items():
                totals[key] += n
        band = f"{lo + 1}-{hi or len(ranked)}"
        director = totals["director_right"] / max(totals["director_named"], 1)
        actors = totals["actors_right"] / max(totals["actors_named"], 1)
        print(f"most rated {band:>10}: {totals['movies']:5} movies, director right "
              f"{director:.3f} of {totals['director_named']} named, actors in the cast "
              f"{actors:.3f} of {totals['actors_named']} named")  # fmt: skip
        bands.append({"popularity_rank": band, **totals, "director_right_share": director,
                      "actors_right_share": actors})  # fmt: skip
    write_result("kar_facts", {"bands": bands})


if __name__ == "__main__":
    main()
