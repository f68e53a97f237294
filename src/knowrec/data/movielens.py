"""MovieLens loaders: ML-1M ``.dat`` files (``::``-separated, gzip allowed) and the CSV
layout of ml-latest(-small). Both become a canonical :class:`Dataset`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from knowrec.data.io import read_delimited, to_number, unix_seconds
from knowrec.data.tables import Dataset, conform
from knowrec.errors import DataFormatError

# From the ML-1M README.
OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
]  # fmt: skip
TITLE_YEAR = r"^(.*?)\s*\((\d{4})\)\s*$"


def load_movielens(path: str | Path) -> Dataset:
    """Load a MovieLens directory: ML-1M (``ratings*.dat[.gz]``) or ml-latest (``ratings.csv``)."""
    root = Path(path)
    if not root.is_dir():
        raise DataFormatError("expected a MovieLens directory", path=root)
    if _find(root, "ratings*.dat*"):
        return load_ml1m(root)
    if (root / "ratings.csv").exists():
        return load_ml_latest(root)
    raise DataFormatError(
        "no ratings file: expected ratings.dat[.gz] (ML-1M) or ratings.csv (ml-latest)",
        path=root,
    )


def _find(root: Path, pattern: str) -> Path | None:
    hits = sorted(root.glob(pattern))
    return hits[0] if hits else None


def split_title_year(titles: pl.Expr) -> list[pl.Expr]:
    """``"Toy Story (1995)"`` → title ``"Toy Story"`` and year 1995 (null if absent)."""
    year = titles.str.extract(TITLE_YEAR, 2).cast(pl.Int32)
    title = pl.when(year.is_not_null()).then(titles.str.extract(TITLE_YEAR, 1)).otherwise(titles)
    return [title.str.strip_chars().alias("title"), year.alias("year")]


def load_ml1m(root: Path) -> Dataset:
    """ML-1M: ``ratings*.dat[.gz]``, ``movies.dat`` and (optional) ``users.dat``."""
    rpath = _find(root, "ratings*.dat*")
    assert rpath is not None
    raw = read_delimited(rpath, ["user_id", "item_id", "rating", "timestamp"], separator="::")
    to_number(raw, "user_id", rpath)
    to_number(raw, "item_id", rpath)
    ratings = to_number(raw, "rating", rpath, dtype=pl.Float32())
    seconds = to_number(raw, "timestamp", rpath)
    interactions = pl.DataFrame(
        {
            "user_id": raw["user_id"].str.strip_chars(),
            "item_id": raw["item_id"].str.strip_chars(),
            "timestamp": unix_seconds(seconds),
            "rating": ratings,
        }
    )
    _check_unique(interactions, ["user_id", "item_id"], rpath)

    mpath = root / "movies.dat"
    if not mpath.exists():
        raise DataFormatError("ML-1M directory has no movies.dat", path=root)
    movies = read_delimited(mpath, ["item_id", "title", "genres"], separator="::")
    to_number(movies, "item_id", mpath)
    items = movies.select(
        pl.col("item_id").str.strip_chars(),
        *split_title_year(pl.col("title")),
        pl.col("genres").str.split("|"),
    )

    users = pl.DataFrame(schema={"user_id": pl.String})
    upath = root / "users.dat"
    if upath.exists():
        raw_users = read_delimited(
            upath, ["user_id", "gender", "age", "occupation", "zip"], separator="::"
        )
        to_number(raw_users, "user_id", upath)
        age = to_number(raw_users, "age", upath, dtype=pl.Int32())
        occ = to_number(raw_users, "occupation", upath)
        if (occ < 0).any() or (occ >= len(OCCUPATIONS)).any():
            row = int(((occ < 0) | (occ >= len(OCCUPATIONS))).arg_max())  # type: ignore[arg-type]
            raise DataFormatError(
                f"occupation code {occ[row]} is not in 0..{len(OCCUPATIONS) - 1}",
                path=upath,
                line=row + 1,
                column="occupation",
            )
        users = pl.DataFrame(
            {
                "user_id": raw_users["user_id"].str.strip_chars(),
                "gender": raw_users["gender"],
                "age": age,
                "occupation": occ.replace_strict(range(len(OCCUPATIONS)), OCCUPATIONS),
                "zip": raw_users["zip"],
            }
        )
    return Dataset(
        interactions=conform(interactions, "interactions"),
        items=conform(items, "items"),
        users=conform(users, "users"),
        meta={"source": str(root), "format": "movielens-1m"},
    )


def _read_csv(path: Path, required: list[str]) -> pl.DataFrame:
    try:
        df = pl.read_csv(path, infer_schema=False, raise_if_empty=True)
    except pl.exceptions.NoDataError as exc:
        raise DataFormatError("file is empty", path=path) from exc
    except pl.exceptions.PolarsError as exc:
        raise DataFormatError(f"malformed CSV ({str(exc).splitlines()[0]})", path=path) from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"missing column(s) {missing}; found {df.columns} (wrong separator or header?)",
            path=path,
            line=1,
            column=missing[0],
        )
    return df


def load_ml_latest(root: Path) -> Dataset:
    """ml-latest / ml-latest-small CSVs: ratings.csv, movies.csv, optional tags.csv."""
    rpath = root / "ratings.csv"
    raw = _read_csv(rpath, ["userId", "movieId", "rating", "timestamp"])
    for col in ("userId", "movieId"):
        to_number(raw, col, rpath, first_line=2)
    interactions = pl.DataFrame(
        {
            "user_id": raw["userId"],
            "item_id": raw["movieId"],
            "timestamp": unix_seconds(to_number(raw, "timestamp", rpath, first_line=2)),
            "rating": to_number(raw, "rating", rpath, dtype=pl.Float32(), first_line=2),
        }
    )
    _check_unique(interactions, ["user_id", "item_id"], rpath, first_line=2)
    mpath = root / "movies.csv"
    if not mpath.exists():
        raise DataFormatError("ml-latest directory has no movies.csv", path=root)
    movies = _read_csv(mpath, ["movieId", "title", "genres"])
    to_number(movies, "movieId", mpath, first_line=2)
    items = movies.select(
        pl.col("movieId").alias("item_id"),
        *split_title_year(pl.col("title")),
        pl.when(pl.col("genres") == "(no genres listed)")
        .then(pl.lit([], dtype=pl.List(pl.String)))
        .otherwise(pl.col("genres").str.split("|"))
        .alias("genres"),
    )
    tpath = root / "tags.csv"
    if tpath.exists():
        tags = _read_csv(tpath, ["movieId", "tag"])
        per_item = tags.group_by("movieId").agg(pl.col("tag").unique(maintain_order=True))
        items = items.join(
            per_item.rename({"movieId": "item_id", "tag": "tags"}), on="item_id", how="left"
        )
    return Dataset(
        interactions=conform(interactions, "interactions"),
        items=conform(items, "items"),
        meta={"source": str(root), "format": "movielens-latest"},
    )


def _check_unique(df: pl.DataFrame, key: list[str], path: Path, first_line: int = 1) -> None:
    dup = df.select(~pl.struct(key).is_first_distinct()).to_series()
    if dup.any():
        row = int(dup.arg_max())  # type: ignore[arg-type]
        pair = ", ".join(f"{k}={df[k][row]}" for k in key)
        raise DataFormatError(
            f"duplicate rating for ({pair})", path=path, line=row + first_line, column=key[-1]
        )
