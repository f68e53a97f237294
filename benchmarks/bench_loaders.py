"""Loading ML-1M (users 1–2999) + movies + users + the TML1M plots join into canonical tables,
against a plain ``pandas.read_csv`` of the same files, side by side in one run.

    .venv/bin/python benchmarks/bench_loaders.py [--data ../shared/data] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd

from common import SHARED_DATA, write_result
from knowrec.data.movielens import load_movielens
from knowrec.data.text import join_item_text

TML1M_COLUMNS = ["Plot", "Genre", "Director", "Cast", "Runtime", "Languages", "Certificate"]


def knowrec_load(data: Path) -> int:
    ds = load_movielens(data / "ml-1m")
    ds, _ = join_item_text(
        ds,
        data / "tml1m-movie-plots" / "movies.csv",
        on="title_year",
        text_columns=TML1M_COLUMNS,
        title_column="Title",
        year_column="Year",
    )
    return ds.interactions.height


def pandas_load(data: Path) -> int:
    ml = data / "ml-1m"
    opts = {"sep": "::", "engine": "python", "header": None}
    ratings = pd.read_csv(ml / "ratings.users-1-2999.dat.gz", **opts)
    pd.read_csv(ml / "movies.dat", encoding="latin-1", **opts)
    pd.read_csv(ml / "users.dat", **opts)
    pd.read_csv(data / "tml1m-movie-plots" / "movies.csv")
    return len(ratings)


def timed(fn, data: Path, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    assert knowrec_load(args.data) == pandas_load(args.data) == 487_650
    rows = {}
    # Interleave the two so that machine noise hits both alike.
    kr, pdt = [], []
    for _ in range(args.repeats):
        kr += timed(knowrec_load, args.data, 1)
        pdt += timed(pandas_load, args.data, 1)
    rows["knowrec load_movielens + title/year plot join (s)"] = statistics.median(kr)
    rows["pandas.read_csv of the same 4 files, sep='::' (s)"] = statistics.median(pdt)
    ratio = statistics.median(kr) / statistics.median(pdt)
    for name, value in rows.items():
        print(f"{name:55s} {value:7.3f}")
    print(f"{'ratio knowrec / pandas':55s} {ratio:7.3f}")
    write_result(
        "loaders",
        {
            "repeats": args.repeats,
            "median_s": rows,
            "ratio": ratio,
            "all_knowrec_s": kr,
            "all_pandas_s": pdt,
        },
    )


if __name__ == "__main__":
    main()
