"""What the knowledge prompts read: raw item text, user profiles, and user histories.

The leakage guard lives here: :func:`user_histories` keeps, per user, the ``k`` most
recent interactions *strictly before* the user's cut (a global datetime or one per user),
or, without a cut, the rows it is given — pass the reserved history of the KAR protocol
(:func:`knowrec.data.protocol.reserve_history`), never the full log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import polars as pl

from knowrec.errors import ConfigError

# ML-1M age codes (README) → words; the synthetic world uses the same codes.
ML1M_AGES = {
    1: "under 18",
    18: "18-24",
    25: "25-34",
    35: "35-44",
    45: "45-49",
    50: "50-55",
    56: "56 or older",
}
GENDERS = {"M": "male", "F": "female"}
# Profile columns never shown to the LLM (identifiers and noise).
HIDDEN_PROFILE = frozenset({"user_id", "zip", "zip_code", "zipcode", "postcode"})
_ROW = "__row"
# "Matrix, The" → "The Matrix" (MovieLens titles put leading articles last).
_TRAILING_ARTICLE = re.compile(
    r"^(?P<main>.+?), (?P<art>The|A|An|Les|La|Le|L'|Il|El|Los|Las|Das|Der|Die)"
    r"(?P<rest>\s*\(.*\))?$"
)


def display_title(title: str) -> str:
    """A title as people write it: a trailing article moved to the front."""
    m = _TRAILING_ARTICLE.match(title.strip())
    if not m:
        return title.strip()
    sep = "" if m["art"].endswith("'") else " "
    return f"{m['art']}{sep}{m['main']}{m['rest'] or ''}"


def item_raw_texts(items: pl.DataFrame) -> pl.DataFrame:
    """``item_id``, ``title`` and ``raw``: the raw knowledge text of each item.

    ``raw`` is the item's ``text`` (prefixed with the title when the text does not start
    with it); items without text fall back to their title, year and genres/category, so
    every item has something to read.
    """
    if "item_id" not in items.columns:
        raise ConfigError("the items table has no item_id column")
    rows = items.to_dicts()
    raws, titles = [], []
    for row in rows:
        title = _title(row)
        text = (row.get("text") or "").strip()
        if text:
            name = str(row.get("title") or "").lower()
            raw = text if not title or name in text[:200].lower() else f"{title}\n{text}"
        else:
            extra = []
            for col in ("genres", "category", "topics"):
                value = row.get(col)
                if isinstance(value, list) and value:
                    extra.append(f"{col.capitalize()}: {', '.join(map(str, value))}.")
                elif isinstance(value, str) and value:
                    extra.append(f"{col.capitalize()}: {value}.")
            raw = " ".join([title, *extra]).strip()
        titles.append(title)
        raws.append(raw)
    return pl.DataFrame(
        {"item_id": items["item_id"].cast(pl.String), "title": titles, "raw": raws},
        schema={"item_id": pl.String, "title": pl.String, "raw": pl.String},
    )


def _title(row: Mapping[str, Any]) -> str:
    title = display_title(str(row.get("title") or ""))
    year = row.get("year")
    if title and year is not None and f"({year})" not in title:
        title = f"{title} ({year})"
    return title


def render_profile(user: Mapping[str, Any] | None) -> str:
    """A one-line profile: ``"Profile: a 25-34-year-old male programmer."``-like text.

    Known ML-1M fields (age code, gender, occupation) are worded; other fields are listed
    as ``name: value``. No profile → ``"Profile: unknown."``.
    """
    if not user:
        return "Profile: unknown."
    parts: list[str] = []
    age = user.get("age")
    if age is not None:
        parts.append(f"age {ML1M_AGES.get(int(age), age)}")
    gender = user.get("gender")
    if gender:
        parts.append(GENDERS.get(str(gender), str(gender)))
    occupation = user.get("occupation")
    if occupation:
        parts.append(f"occupation {occupation}")
    for key, value in user.items():
        if key in HIDDEN_PROFILE or key in ("age", "gender", "occupation") or value is None:
            continue
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        parts.append(f"{key.replace('_', ' ')} {value}")
    return "Profile: " + (", ".join(parts) if parts else "unknown") + "."


def user_histories(
    interactions: pl.DataFrame,
    *,
    k: int = 5,
    cut: datetime | pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per user, the ``k`` most recent interactions strictly before the cut, oldest first.

    ``cut``: a datetime for everybody, a table ``(user_id, cut)`` with one cut per user
    (users without a row get no history), or None to use every row given (pass the
    reserved history rows). Time order is ``(timestamp, input row order)``. Returns
    ``user_id, item_id, timestamp`` (+ ``rating`` / ``label`` when present) and
    ``position`` (0 = oldest of the kept rows).
    """
    if k < 1:
        raise ConfigError(f"k (history length) must be >= 1, got {k}")
    for col in ("user_id", "item_id", "timestamp"):
        if col not in interactions.columns:
            raise ConfigError(f"user histories need the column {col!r} in the interactions")
    keep = [c for c in ("user_id", "item_id", "timestamp", "rating", "label") if c in interactions]
    inter = interactions.select(keep).with_row_index(_ROW)
    if inter["timestamp"].null_count():
        raise ConfigError("user histories need a timestamp on every interaction")
    if isinstance(cut, datetime):
        inter = inter.filter(pl.col("timestamp") < pl.lit(cut, dtype=inter.schema["timestamp"]))
    elif isinstance(cut, pl.DataFrame):
        if not {"user_id", "cut"} <= set(cut.columns):
            raise ConfigError("a per-user cut table needs the columns user_id and cut")
        if cut["user_id"].is_duplicated().any():
            raise ConfigError("the per-user cut table has duplicate user_id rows")
        cuts = cut.select(
            pl.col("user_id").cast(pl.String), pl.col("cut").cast(inter.schema["timestamp"])
        )
        inter = inter.join(cuts, on="user_id", how="inner").filter(
            pl.col("timestamp") < pl.col("cut")
        )
        inter = inter.drop("cut")
    elif cut is not None:
        raise ConfigError(f"cut must be a datetime, a (user_id, cut) table or None, got {cut!r}")
    ordered = inter.sort(["user_id", "timestamp", _ROW])
    back = pl.int_range(pl.len(), 0, -1, dtype=pl.Int64).over("user_id")
    recent = ordered.with_columns(__back=back).filter(pl.col("__back") <= k)
    return (
        recent.with_columns(position=pl.int_range(pl.len(), dtype=pl.Int32).over("user_id"))
        .drop(_ROW, "__back")
        .sort(["user_id", "position"])
    )


def rating_phrase(row: Mapping[str, Any]) -> str:
    """``"rated 4/5"``, ``"liked"`` / ``"not liked"`` for labels, or ``""``."""
    rating = row.get("rating")
    if rating is not None:
        value = float(rating)
        return f"rated {int(value) if value.is_integer() else value:g}/5"
    label = row.get("label")
    if label is not None:
        return "liked" if int(label) > 0 else "not liked"
    return ""
