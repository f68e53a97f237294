"""MIND, EB-NeRD and generic-table loaders: canonical tables and every bad-input error.

All fixtures are written here, in ``tmp_path``; the real MIND sample under
``../shared/data`` is only read (and the test skips when it is absent).
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from knowrec.data import detect_format, load_dataset
from knowrec.data.ebnerd import load_ebnerd
from knowrec.data.generic import ItemMapping, TableMapping, UserMapping, load_table
from knowrec.data.mind import load_mind
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError, DataFormatError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MIND_SAMPLE = SHARED / "mind-small-subset"


# --------------------------------------------------------------------------- MIND


def entity(label: str, qid: str, kind: str = "P") -> dict[str, Any]:
    return {
        "Label": label,
        "Type": kind,
        "WikidataId": qid,
        "Confidence": 1.0,
        "OccurrenceOffsets": [0],
        "SurfaceForms": [label],
    }


BEHAVIORS = [
    "1\tU1\t11/13/2019 8:36:57 AM\tN1 N2\tN3-1 N4-0 N9-0",
    "2\tU2\t11/14/2019 12:05:00 AM\t\tN1-0 N3-0 N4-1",
    "3\tU1\t11/14/2019 1:15:30 PM\tN1 N2 N1\tN2-0 N4-1",
]
NEWS = [
    [
        "N1", "sports", "football_nfl", "Bears win", "Chicago beat Detroit.", "https://x/1",
        json.dumps([entity("Chicago Bears", "Q205033", "O")]),
        json.dumps([entity("Chicago Bears", "Q205033", "O"), entity("Detroit", "Q12439", "G")]),
    ],
    ["N2", "news", "newsus", "Storm", "", "https://x/2", "[]", "[]"],
    ["N3", "finance", "markets", "Stocks up", "Rally.", "https://x/3", "[]",
     json.dumps([entity("Wall Street", "Q7450", "L")])],
    ["N4", "news", "newsworld", "Summit", "Leaders meet.", "https://x/4", "[]", "[]"],
]  # fmt: skip


def news_lines(rows: list[list[str]] = NEWS) -> list[str]:
    return ["\t".join(r) for r in rows]


def write_mind(
    root: Path, behaviors: list[str] | None = None, news: list[str] | None = None
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "behaviors.tsv").write_text("\n".join(behaviors or BEHAVIORS) + "\n")
    (root / "news.tsv").write_text("\n".join(news or news_lines()) + "\n")
    return root


def test_mind_canonical_tables(tmp_path: Path) -> None:
    data = load_mind(write_mind(tmp_path / "mind"))
    inter = data.interactions
    imp = inter.filter(pl.col("impression_id").is_not_null())
    hist = inter.filter(pl.col("impression_id").is_null())
    assert imp.height == 8 and imp["impression_id"].n_unique() == 3
    assert imp.filter(pl.col("impression_id") == "1").select("item_id", "label").rows() == [
        ("N3", 1),
        ("N4", 0),
        ("N9", 0),
    ]
    assert imp["label"].sum() == 3
    times = dict(zip(imp["impression_id"], imp["timestamp"], strict=True))
    assert times["1"] == datetime(2019, 11, 13, 8, 36, 57)
    assert times["2"] == datetime(2019, 11, 14, 0, 5)  # 12 AM is midnight
    assert times["3"] == datetime(2019, 11, 14, 13, 15, 30)
    # history: label 1, no time, deduplicated per user across impressions; U2 has none
    assert hist.select("user_id", "item_id").rows() == [("U1", "N1"), ("U1", "N2")]
    assert hist["label"].to_list() == [1, 1] and hist["timestamp"].null_count() == 2
    assert inter.schema["label"] == pl.Int8 and inter.schema["timestamp"] == pl.Datetime("ms")

    items = {r["item_id"]: r for r in data.items.iter_rows(named=True)}
    assert data.items.height == 4
    n1 = items["N1"]
    assert n1["entities"] == ["Q205033", "Q12439"]  # title + abstract, deduplicated
    assert n1["entity_labels"] == ["Chicago Bears", "Detroit"]
    assert n1["entity_types"] == ["O", "G"]
    assert n1["text"] == "Bears win\n\nChicago beat Detroit."
    assert (n1["category"], n1["subcategory"], n1["url"]) == (
        "sports",
        "football_nfl",
        "https://x/1",
    )
    assert items["N2"]["abstract"] is None and items["N2"]["text"] == "Storm"
    assert items["N2"]["entities"] == []
    # N9 is not in news.tsv: kept, and reported in the coverage
    assert data.meta["coverage"]["impression_items"] == pytest.approx(4 / 5)
    assert data.meta["coverage"]["history_items"] == 1.0


def test_mind_detect_and_roundtrip(tmp_path: Path) -> None:
    root = write_mind(tmp_path / "mind")
    assert detect_format(root) == "mind"
    data = load_dataset(root)
    back = Dataset.load(data.save(tmp_path / "out"))
    assert back.interactions.equals(data.interactions) and back.items.equals(data.items)


def test_mind_unlabelled_test_file(tmp_path: Path) -> None:
    rows = ["7\tU3\t11/15/2019 9:00:00 AM\tN1\tN2 N3 N4"]
    data = load_mind(write_mind(tmp_path / "m", rows))
    imp = data.interactions.filter(pl.col("impression_id").is_not_null())
    assert imp["item_id"].to_list() == ["N2", "N3", "N4"]
    assert imp["label"].null_count() == 3


def test_mind_split_folders(tmp_path: Path) -> None:
    write_mind(tmp_path / "mind" / "MINDsmall_train")
    dev = ["1\tU1\t11/15/2019 9:00:00 AM\tN1 N2 N3\tN4-1 N2-0"]
    write_mind(tmp_path / "mind" / "MINDsmall_dev", dev)
    data = load_mind(tmp_path / "mind")
    inter = data.interactions
    assert data.meta["splits"] == ["MINDsmall_train", "MINDsmall_dev"]
    assert set(inter["split"].unique()) == {"MINDsmall_dev", "MINDsmall_train"}
    ids = inter["impression_id"].drop_nulls().unique().to_list()
    assert "MINDsmall_dev/1" in ids and "MINDsmall_train/1" in ids  # ids restart per split
    hist = inter.filter(pl.col("impression_id").is_null())
    assert hist.filter(pl.col("user_id") == "U1")["item_id"].sort().to_list() == ["N1", "N2", "N3"]
    assert data.items.height == 4  # the same news in both folders, kept once


def _mind_error(tmp_path: Path, behaviors: list[str] | None = None, news: list[str] | None = None):
    root = write_mind(tmp_path / "bad", behaviors, news)
    with pytest.raises(DataFormatError) as info:
        load_mind(root)
    return info.value


@pytest.mark.parametrize(
    ("rows", "line", "column", "pattern"),
    [
        (
            [BEHAVIORS[0], BEHAVIORS[1].replace("\t", ",")],
            2,
            None,
            "expected 5 tab-separated fields, found 1",
        ),
        ([BEHAVIORS[0], BEHAVIORS[1], "3\tU1\t11/14/20"], 3, None, "found 3"),
        ([BEHAVIORS[0], "2\tU2\t11/14/2019 12:05:00 AM\t\tN1-0 N3-x"], 2, "Impressions", "N3-x"),
        ([BEHAVIORS[0], "2\tU2\t11/14/2019 12:05:00 AM\t\tN1-0 N3"], 2, "Impressions", "'N3'"),
        (["1\tU1\t2019-11-13 08:36:57\tN1\tN3-1"], 1, "Time", "malformed time"),
        (["1\tU1\t13/45/2019 8:36:57 AM\tN1\tN3-1"], 1, "Time", "malformed time"),
        (["1\tU1\t12/31/1969 8:36:57 PM\tN1\tN3-1"], 1, "Time", "outside 1970..2100"),
        ([BEHAVIORS[0], "x2\tU2\t11/14/2019 1:00:00 AM\t\tN1-0"], 2, "ImpressionID", "'x2'"),
        ([BEHAVIORS[0], BEHAVIORS[0]], 2, "ImpressionID", "duplicate impression id '1'"),
        ([BEHAVIORS[0], "2\t \t11/14/2019 1:00:00 AM\t\tN1-0"], 2, "UserID", "empty field"),
    ],
)
def test_mind_bad_behaviors(
    tmp_path: Path, rows: list[str], line: int, column: str | None, pattern: str
) -> None:
    err = _mind_error(tmp_path, behaviors=rows)
    assert err.path is not None and err.path.endswith("behaviors.tsv")
    assert (err.line, err.column) == (line, column)
    assert pattern in str(err)
    where = f"behaviors.tsv, line {line}" + (f", column '{column}'" if column else "")
    assert where in str(err)


def test_mind_bad_label_message(tmp_path: Path) -> None:
    root = write_mind(tmp_path / "m", [BEHAVIORS[0], "2\tU2\t11/14/2019 1:00:00 AM\t\tN1-x"])
    with pytest.raises(
        DataFormatError,
        match=r"behaviors\.tsv, line 2, column 'Impressions': expected NewsID-label with label "
        r"0 or 1, found 'N1-x'",
    ):
        load_mind(root)


def test_mind_bad_news(tmp_path: Path) -> None:
    good = news_lines()
    cases: list[tuple[list[str], int, str | None, str]] = [
        ([good[0], good[1].replace("\t", ",")], 2, None, "expected 8 tab-separated fields"),
        ([good[0], good[1], good[0]], 3, "NewsID", "duplicate news id 'N1' \\(first on line 1\\)"),
        (
            [good[0], good[1].replace("\t[]\t[]", '\t[{"Label": "X", "Wikid\t[]')],
            2,
            "TitleEntities",
            "malformed entity JSON",
        ),
        (
            [good[0], good[1], good[2].rsplit("\t", 1)[0] + '\t{"Label": "X"}'],
            3,
            "AbstractEntities",
            "expected a JSON list of objects",
        ),
        ([good[0], good[1], good[2].rsplit("\t", 1)[0] + "\t[1, 2]"], 3, "AbstractEntities", ""),
    ]
    for i, (rows, line, column, pattern) in enumerate(cases):
        root = write_mind(tmp_path / f"n{i}", news=rows)
        with pytest.raises(DataFormatError, match=pattern or None) as info:
            load_mind(root)
        err = info.value
        assert err.path is not None and err.path.endswith("news.tsv"), str(err)
        assert (err.line, err.column) == (line, column), str(err)


def test_mind_empty_truncated_and_missing_files(tmp_path: Path) -> None:
    root = write_mind(tmp_path / "m")
    (root / "behaviors.tsv").write_text("")
    with pytest.raises(DataFormatError, match=r"behaviors\.tsv: file is empty"):
        load_mind(root)
    root = write_mind(tmp_path / "m2")
    (root / "news.tsv").unlink()
    with pytest.raises(DataFormatError, match=r"news\.tsv: file not found"):
        load_mind(root)
    root = write_mind(tmp_path / "m3")
    data = (root / "news.tsv").read_bytes()
    (root / "news.tsv").write_bytes(data[: data.index(b"Stocks up") + 3])  # cut mid-line
    with pytest.raises(DataFormatError, match=r"news\.tsv, line 3: expected 8 .* found 4"):
        load_mind(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"no behaviors\.tsv"):
        load_mind(tmp_path / "empty")


@pytest.mark.skipif(not MIND_SAMPLE.exists(), reason="shared MIND sample not available")
def test_mind_real_sample() -> None:
    data = load_mind(MIND_SAMPLE)
    inter = data.interactions
    assert inter["impression_id"].drop_nulls().n_unique() == 5_000
    assert data.items.height == 2_000
    assert inter.filter(pl.col("impression_id").is_not_null())["user_id"].n_unique() == 4_637
    assert set(inter["label"].unique().to_list()) == {0, 1}
    # the sample's two files were cut separately: few ids resolve (see its SOURCE.md)
    assert data.meta["coverage"]["history_items"] == pytest.approx(588 / 16_000)
    assert data.meta["coverage"]["impression_items"] == pytest.approx(284 / 7_457)
    ts = inter["timestamp"].drop_nulls()
    assert ts.min() >= datetime(2019, 11, 9) and ts.max() < datetime(2019, 11, 15)
    assert data.items["entities"].list.len().sum() > 0


# --------------------------------------------------------------------------- EB-NeRD

US = pl.Datetime("us")
IDS = pl.List(pl.Int32)


def behaviors_frame(base: int = 0) -> pl.DataFrame:
    """Three impressions with the official columns and dtypes."""
    return pl.DataFrame(
        {
            "impression_id": pl.Series([base + 1, base + 2, base + 3], dtype=pl.UInt32),
            "article_id": pl.Series([None, 100, None], dtype=pl.Int32),
            "impression_time": pl.Series(
                [
                    datetime(2023, 5, 18, 7, 0, 3, 500_000),
                    datetime(2023, 5, 18, 9, 30),
                    datetime(2023, 5, 19, 12, 0),
                ],
                dtype=US,
            ),
            "read_time": pl.Series([12.0, 30.0, 5.0], dtype=pl.Float32),
            "scroll_percentage": pl.Series([None, 100.0, 20.0], dtype=pl.Float32),
            "device_type": pl.Series([1, 2, 2], dtype=pl.Int8),
            "article_ids_inview": pl.Series([[100, 101, 102], [101, 103], [100, 103]], dtype=IDS),
            "article_ids_clicked": pl.Series([[101], [103], [100]], dtype=IDS),
            "user_id": pl.Series([7, 8, 7], dtype=pl.UInt32),
            "is_sso_user": [False, True, True],
            "gender": pl.Series([None, 1, 0], dtype=pl.Int8),
            "postcode": pl.Series([None, 2, 3], dtype=pl.Int8),
            "age": pl.Series([None, 30, 50], dtype=pl.Int8),
            "is_subscriber": [False, True, True],
            "session_id": pl.Series([11, 12, 13], dtype=pl.UInt32),
            "next_read_time": pl.Series([45.0, 60.0, 8.0], dtype=pl.Float32),
            "next_scroll_percentage": pl.Series([80.0, 100.0, 10.0], dtype=pl.Float32),
        }
    )


def history_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": pl.Series([7, 8], dtype=pl.UInt32),
            "impression_time_fixed": pl.Series(
                [[datetime(2023, 4, 27, 8), datetime(2023, 4, 28, 9, 15)], [datetime(2023, 5, 1)]],
                dtype=pl.List(US),
            ),
            "scroll_percentage_fixed": pl.Series(
                [[50.0, None], [100.0]], dtype=pl.List(pl.Float32)
            ),
            "article_id_fixed": pl.Series([[100, 102], [103]], dtype=IDS),
            "read_time_fixed": pl.Series([[20.0, 3.0], [90.0]], dtype=pl.List(pl.Float32)),
        }
    )


def articles_frame() -> pl.DataFrame:
    n = 4
    return pl.DataFrame(
        {
            "article_id": pl.Series([100, 101, 102, 103], dtype=pl.Int32),
            "title": ["Hanks sued", "Storm warning", "Derby won", "Budget deal"],
            "subtitle": ["Actor accused", None, "", "Parties agree"],
            "last_modified_time": pl.Series([datetime(2023, 6, 1)] * n, dtype=US),
            "premium": [False, True, False, False],
            "body": ["Para one.\n\nPara two.", "Wind.", "Goal.", None],
            "published_time": pl.Series(
                [datetime(2023, 5, 17, 6), datetime(2023, 5, 18), None, datetime(2006, 9, 20)],
                dtype=US,
            ),
            "image_ids": pl.Series([[1], [], None, [2]], dtype=pl.List(pl.Int64)),
            "article_type": ["article_default"] * n,
            "url": [f"https://eb.dk/{i}" for i in range(n)],
            "ner_clusters": [["Tom Hanks"], [], ["FCK", "Brøndby"], ["Folketinget"]],
            "entity_groups": [["PER"], [], ["ORG", "ORG"], ["ORG"]],
            "topics": [["Kendt"], ["Vejr"], ["Sport", "Fodbold"], []],
            "category": pl.Series([414, 118, 142, 118], dtype=pl.Int16),
            "subcategory": pl.Series([[432], [], [196], [130]], dtype=pl.List(pl.Int16)),
            "category_str": ["underholdning", "nyheder", "sport", "nyheder"],
            "total_inviews": pl.Series([None, 10, 20, 30], dtype=pl.Int32),
            "total_pageviews": pl.Series([None, 1, 2, 3], dtype=pl.Int32),
            "total_read_time": pl.Series([None, 1.0, 2.0, 3.0], dtype=pl.Float32),
            "sentiment_score": pl.Series([0.99, 0.5, 0.8, 0.6], dtype=pl.Float32),
            "sentiment_label": ["Negative", "Neutral", "Positive", "Neutral"],
        }
    )


def write_ebnerd(
    root: Path,
    behaviors: pl.DataFrame | None = None,
    history: pl.DataFrame | None = None,
    articles: pl.DataFrame | None = None,
    split: str | None = None,
) -> Path:
    folder = root / split if split else root
    folder.mkdir(parents=True, exist_ok=True)
    (behaviors if behaviors is not None else behaviors_frame()).write_parquet(
        folder / "behaviors.parquet"
    )
    (history if history is not None else history_frame()).write_parquet(folder / "history.parquet")
    (articles if articles is not None else articles_frame()).write_parquet(
        root / "articles.parquet"
    )
    return root


def test_ebnerd_canonical_tables(tmp_path: Path) -> None:
    data = load_ebnerd(write_ebnerd(tmp_path / "eb"))
    inter = data.interactions
    imp = inter.filter(pl.col("impression_id").is_not_null())
    hist = inter.filter(pl.col("impression_id").is_null())
    assert imp.height == 7 and hist.height == 3
    first = imp.filter(pl.col("impression_id") == "1")
    assert first.select("item_id", "label").rows() == [("100", 0), ("101", 1), ("102", 0)]
    assert first["timestamp"].to_list() == [datetime(2023, 5, 18, 7, 0, 3, 500_000)] * 3
    assert first["session_id"].to_list() == ["11"] * 3 and first["device_type"].to_list() == [1] * 3
    # dwell time / scroll of the clicked article = next_read_time / next_scroll_percentage
    assert first["dwell_time"].to_list() == [None, 45.0, None]
    assert first["scroll_percentage"].to_list() == [None, 80.0, None]
    assert imp["label"].sum() == 3
    # history: label-1 rows with their own times and read times
    assert hist.select("user_id", "item_id", "timestamp", "dwell_time").rows() == [
        ("7", "100", datetime(2023, 4, 27, 8), 20.0),
        ("7", "102", datetime(2023, 4, 28, 9, 15), 3.0),
        ("8", "103", datetime(2023, 5, 1), 90.0),
    ]
    assert hist["label"].to_list() == [1, 1, 1] and hist["session_id"].null_count() == 3

    items = {r["item_id"]: r for r in data.items.iter_rows(named=True)}
    a = items["100"]
    assert a["text"] == "Hanks sued\n\nActor accused\n\nPara one.\n\nPara two."
    assert items["102"]["text"] == "Derby won\n\nGoal."  # empty subtitle skipped
    assert items["103"]["text"] == "Budget deal\n\nParties agree"  # null body skipped
    assert (a["category"], a["topics"], a["entities"], a["entity_types"]) == (
        "underholdning",
        ["Kendt"],
        ["Tom Hanks"],
        ["PER"],
    )
    assert a["published_time"] == datetime(2023, 5, 17, 6) and a["subcategory_ids"] == ["432"]
    assert "total_inviews" not in data.items.columns  # popularity counters leak the test window
    users = {r["user_id"]: r for r in data.users.iter_rows(named=True)}
    assert users["7"] == {
        "user_id": "7",
        "gender": "0",
        "age": 50,
        "postcode": 3,
        "is_subscriber": True,
        "is_sso_user": True,
    }
    assert users["8"]["age"] == 30
    assert data.meta["coverage"] == {"history_items": 1.0, "impression_items": 1.0}
    assert detect_format(tmp_path / "eb") == "ebnerd"


def test_ebnerd_splits_and_test_set(tmp_path: Path) -> None:
    root = tmp_path / "ebnerd_small"
    write_ebnerd(root, split="train")
    write_ebnerd(root, behaviors=behaviors_frame(base=100), split="validation")
    data = load_ebnerd(root)
    inter = data.interactions
    assert data.meta["splits"] == ["train", "validation"]
    assert inter.filter(pl.col("impression_id").is_not_null())["impression_id"].n_unique() == 6
    assert "validation/101" in inter["impression_id"].to_list()
    hist = inter.filter(pl.col("impression_id").is_null())
    assert hist.height == 3  # identical history rows in both splits are kept once
    assert set(inter["split"].unique()) == {"train", "validation"}
    only = load_ebnerd(root, splits=["validation"])
    assert only.meta["splits"] is None and "split" not in only.interactions.columns
    with pytest.raises(DataFormatError, match=r"no split folder\(s\) \['test'\]"):
        load_ebnerd(root, splits=["test"])
    # a split folder given directly finds articles.parquet in its parent
    assert load_ebnerd(root / "train").items.height == 4
    # the official test set has no article_ids_clicked: labels are null
    test = behaviors_frame().drop("article_ids_clicked", "next_read_time", "next_scroll_percentage")
    data = load_ebnerd(write_ebnerd(tmp_path / "testset", behaviors=test, split="test"))
    imp = data.interactions.filter(pl.col("impression_id").is_not_null())
    assert imp.height == 7 and imp["label"].null_count() == 7


def _eb_error(tmp_path: Path, **frames: pl.DataFrame) -> DataFormatError:
    root = write_ebnerd(tmp_path / "bad", **frames)
    with pytest.raises(DataFormatError) as info:
        load_ebnerd(root)
    return info.value


def test_ebnerd_schema_errors(tmp_path: Path) -> None:
    err = _eb_error(tmp_path, behaviors=behaviors_frame().drop("article_ids_inview"))
    assert err.path.endswith("behaviors.parquet") and err.column == "article_ids_inview"  # type: ignore[union-attr]
    assert "missing column(s) ['article_ids_inview']" in str(err) and "impression_id" in str(err)

    renamed = behaviors_frame().rename({"impression_time": "impression_timestamp"})
    with pytest.raises(DataFormatError, match=r"behaviors\.parquet, column 'impression_time'"):
        load_ebnerd(write_ebnerd(tmp_path / "r", behaviors=renamed))

    as_text = behaviors_frame().with_columns(pl.col("impression_time").dt.to_string())
    with pytest.raises(
        DataFormatError,
        match=r"behaviors\.parquet, column 'impression_time': column has dtype String, "
        "expected a datetime",
    ):
        load_ebnerd(write_ebnerd(tmp_path / "t", behaviors=as_text))

    flat = history_frame().with_columns(pl.col("article_id_fixed").list.first())
    with pytest.raises(DataFormatError, match=r"history\.parquet, column 'article_id_fixed'"):
        load_ebnerd(write_ebnerd(tmp_path / "h", history=flat))

    no_title = articles_frame().drop("title")
    with pytest.raises(DataFormatError, match=r"articles\.parquet, column 'title': missing"):
        load_ebnerd(write_ebnerd(tmp_path / "a", articles=no_title))


@pytest.mark.parametrize(
    ("frames", "file", "column", "pattern"),
    [
        (
            {
                "behaviors": behaviors_frame().with_columns(
                    pl.Series(
                        "impression_time",
                        [datetime(2023, 5, 18), datetime(2150, 1, 1), datetime(2023, 5, 19)],
                        dtype=US,
                    )
                )
            },
            "behaviors",
            "impression_time",
            r"row 2: timestamp 2150-01-01 00:00:00.000 is outside 1970\.\.2100",
        ),
        (
            {
                "behaviors": behaviors_frame().with_columns(
                    pl.Series("impression_id", [1, 2, 1], dtype=pl.UInt32)
                )
            },
            "behaviors",
            "impression_id",
            "row 3: duplicate impression_id '1'",
        ),
        (
            {
                "behaviors": behaviors_frame().with_columns(
                    pl.Series("user_id", [7, None, 7], dtype=pl.UInt32)
                )
            },
            "behaviors",
            "user_id",
            "row 2: missing value",
        ),
        (
            {
                "behaviors": behaviors_frame().with_columns(
                    pl.Series("article_ids_inview", [[100], [101], [None, 103]], dtype=IDS)
                )
            },
            "behaviors",
            "article_ids_inview",
            "row 3: null article id",
        ),
        (
            {
                "history": history_frame().with_columns(
                    pl.Series("read_time_fixed", [[1.0], [2.0]], dtype=pl.List(pl.Float32))
                )
            },
            "history",
            "read_time_fixed",
            "row 1: list length differs",
        ),
        (
            {
                "history": history_frame().with_columns(
                    pl.Series(
                        "impression_time_fixed",
                        [[datetime(2023, 4, 27), datetime(2023, 4, 28)], [datetime(1960, 1, 1)]],
                        dtype=pl.List(US),
                    )
                )
            },
            "history",
            "impression_time_fixed",
            r"row 2: timestamp 1960-01-01 .* is outside",
        ),
        (
            {"history": pl.concat([history_frame(), history_frame().head(1)])},
            "history",
            "user_id",
            "row 3: duplicate user_id '7'",
        ),
        (
            {
                "articles": articles_frame().with_columns(
                    pl.Series("article_id", [100, 101, 100, 103], dtype=pl.Int32)
                )
            },
            "articles",
            "article_id",
            r"row 3: duplicate article_id '100' \(first at row 1\)",
        ),
        (
            {
                "articles": articles_frame().with_columns(
                    pl.Series("published_time", [datetime(2300, 1, 1)] * 4, dtype=US)
                )
            },
            "articles",
            "published_time",
            "row 1: timestamp 2300",
        ),
    ],
)
def test_ebnerd_bad_rows(
    tmp_path: Path, frames: dict[str, pl.DataFrame], file: str, column: str, pattern: str
) -> None:
    root = write_ebnerd(tmp_path / "eb", **frames)
    with pytest.raises(DataFormatError, match=pattern) as info:
        load_ebnerd(root)
    err = info.value
    assert err.path is not None and err.path.endswith(f"{file}.parquet")
    assert err.column == column
    assert f"{file}.parquet, column '{column}': row " in str(err)


def test_ebnerd_broken_and_missing_files(tmp_path: Path) -> None:
    root = write_ebnerd(tmp_path / "eb")
    data = (root / "behaviors.parquet").read_bytes()
    (root / "behaviors.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"behaviors\.parquet: not a readable Parquet"):
        load_ebnerd(root)
    (root / "behaviors.parquet").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"behaviors\.parquet: not a readable Parquet"):
        load_ebnerd(root)
    (root / "behaviors.parquet").write_text("impression_id,user_id\n1,2\n")  # CSV in disguise
    with pytest.raises(DataFormatError, match=r"behaviors\.parquet: not a readable Parquet"):
        load_ebnerd(root)
    root = write_ebnerd(tmp_path / "eb2", behaviors=behaviors_frame().head(0))
    with pytest.raises(DataFormatError, match=r"behaviors\.parquet: file has no rows"):
        load_ebnerd(root)
    root = write_ebnerd(tmp_path / "eb3")
    (root / "history.parquet").unlink()
    with pytest.raises(DataFormatError, match=r"history\.parquet: file not found"):
        load_ebnerd(root)
    root = write_ebnerd(tmp_path / "eb4" / "inner")
    (root / "articles.parquet").unlink()
    with pytest.raises(DataFormatError, match=r"no articles\.parquet"):
        load_ebnerd(root)


# --------------------------------------------------------------------------- generic tables

LOGS = "uid,movie,ts,score,clicked,note\n1,10,978300760,5,1,a\n2,20,978302109,3.5,0,b\n"


def test_table_csv_gzip_tsv_agree(tmp_path: Path) -> None:
    mapping = TableMapping(
        user_id="uid",
        item_id="movie",
        timestamp="ts",
        rating="score",
        label="clicked",
        keep=("note",),
    )
    (tmp_path / "logs.csv").write_text(LOGS)
    (tmp_path / "logs.csv.gz").write_bytes(gzip.compress(LOGS.encode()))
    (tmp_path / "logs.tsv").write_text(LOGS.replace(",", "\t"))
    tables = [
        load_table(tmp_path / n, mapping).interactions
        for n in ("logs.csv", "logs.csv.gz", "logs.tsv")
    ]
    inter = tables[0]
    assert all(t.equals(inter) for t in tables)
    assert inter.columns == ["user_id", "item_id", "timestamp", "rating", "label", "note"]
    assert inter["timestamp"][0] == datetime(2000, 12, 31, 22, 12, 40)
    assert inter["rating"].to_list() == [5.0, 3.5] and inter["label"].dtype == pl.Int8
    # the CLI passes a plain dict; the mapping is recorded in meta
    data = load_dataset(
        tmp_path / "logs.csv", "table", mapping={"user_id": "uid", "item_id": "movie"}
    )
    assert data.interactions["timestamp"].null_count() == 2
    assert data.meta["mapping"]["user_id"] == "uid"


def test_table_parquet_iso_ms_items_users(tmp_path: Path) -> None:
    pl.DataFrame(
        {
            "u": pl.Series([1, 2], dtype=pl.Int64),
            "i": ["a", "b"],
            "when": pl.Series([datetime(2024, 1, 1, 12), datetime(2024, 1, 2)], dtype=US),
            "sess": [5, 6],
        }
    ).write_parquet(tmp_path / "logs.parquet")
    (tmp_path / "items.csv").write_text(
        'id,name,kind,tags,yr\na,"Alpha, the film",movie,x|y| ,1999\nb,Beta,show,,\n'
    )
    (tmp_path / "users.csv").write_text("who,age,sex,job\n1,25,F,artist\n2,40,M,\n")
    data = load_table(
        tmp_path / "logs.parquet",
        {"user_id": "u", "item_id": "i", "timestamp": "when", "session_id": "sess"},
        items=tmp_path / "items.csv",
        item_mapping=ItemMapping(
            item_id="id", title="name", category="kind", genres="tags", year="yr"
        ),
        users=tmp_path / "users.csv",
        user_mapping=UserMapping(user_id="who", age="age", gender="sex", occupation="job"),
    )
    assert data.interactions["user_id"].to_list() == ["1", "2"]
    assert data.interactions["session_id"].to_list() == ["5", "6"]
    assert data.interactions["timestamp"][0] == datetime(2024, 1, 1, 12)
    items = data.items.rows(named=True)
    assert items[0] == {
        "item_id": "a",
        "title": "Alpha, the film",
        "category": "movie",
        "year": 1999,
        "genres": ["x", "y"],
    }
    assert items[1]["genres"] == [] and items[1]["year"] is None
    assert data.users.row(0, named=True) == {
        "user_id": "1",
        "age": 25,
        "gender": "F",
        "occupation": "artist",
    }
    (tmp_path / "iso.csv").write_text(
        "u,i,t\n1,a,2024-01-01T12:00:00Z\n2,b,2024-01-01T12:00:00+02:00\n"
    )
    iso = load_table(
        tmp_path / "iso.csv",
        {"user_id": "u", "item_id": "i", "timestamp": "t", "timestamp_unit": "iso"},
    )
    assert iso.interactions["timestamp"].to_list() == [
        datetime(2024, 1, 1, 12),
        datetime(2024, 1, 1, 10),  # offsets converted to UTC
    ]
    (tmp_path / "ms.csv").write_text("u,i,t\n1,a,978300760123\n")
    ms = load_table(
        tmp_path / "ms.csv",
        {"user_id": "u", "item_id": "i", "timestamp": "t", "timestamp_unit": "ms"},
    )
    assert ms.interactions["timestamp"][0] == datetime(2000, 12, 31, 22, 12, 40, 123_000)
    (tmp_path / "fmt.csv").write_text("u,i,t\n1,a,31/12/2000 22:12\n")
    fmt = load_table(
        tmp_path / "fmt.csv",
        {"user_id": "u", "item_id": "i", "timestamp": "t", "timestamp_format": "%d/%m/%Y %H:%M"},
    )
    assert fmt.interactions["timestamp"][0] == datetime(2000, 12, 31, 22, 12)


def test_table_mapping_rejects_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "logs.csv").write_text(LOGS)
    with pytest.raises(ConfigError, match=r"timestmp: Extra inputs are not permitted.*known keys"):
        load_table(tmp_path / "logs.csv", {"user_id": "uid", "item_id": "movie", "timestmp": "ts"})
    with pytest.raises(ConfigError, match="timestamp_unit: Input should be 's', 'ms' or 'iso'"):
        load_table(tmp_path / "logs.csv", {**UIT, "timestamp_unit": "us"})
    (tmp_path / "clash.csv").write_text("uid,movie,rating\n1,2,3\n")
    with pytest.raises(ConfigError, match=r"keep lists canonical column\(s\) \['rating'\]"):
        load_table(tmp_path / "clash.csv", {"user_id": "uid", "item_id": "movie", "keep": "rating"})


def _table_error(tmp_path: Path, text: str | bytes, mapping: dict[str, Any], name: str = "t.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(DataFormatError) as info:
        load_table(path, mapping)
    err = info.value
    assert err.path == str(path)
    return err


UIT = {"user_id": "uid", "item_id": "movie", "timestamp": "ts"}


@pytest.mark.parametrize(
    ("text", "mapping", "line", "column", "pattern"),
    [
        (
            LOGS,
            {**UIT, "item_id": "film"},
            1,
            "film",
            "missing column 'film' \\(mapped to item_id\\); available columns: \\['uid', 'movie'",
        ),
        (LOGS.replace(",", ";"), UIT, 1, "uid", "wrong separator"),
        (
            "uid,movie,ts\n1,10,978300760\n2,20,97830x2109\n",
            UIT,
            3,
            "ts",
            "expected a Unix time in s, found '97830x2109'",
        ),
        (
            "uid,movie,ts\n1,10,978300760\n2,20,978302109000\n",
            UIT,
            3,
            "ts",
            "outside 1970..2100; is timestamp_unit='s' right",
        ),
        ("uid,movie,ts\n1,10,1\n2,20,2\n3,30,3,4\n", UIT, 4, None, "expected 3 fields .*found 4"),
        ("uid,movie,ts\n1,10,1\n2,,2\n", UIT, 3, "movie", "empty id"),
        ("uid,movie,ts\n1,10,1\n2,20\n", UIT, 3, "ts", "expected a Unix time"),
        (
            'uid,movie,ts\n1,"a\nb",2024-01-01\n2,20,2024-02-30\n',
            {**UIT, "timestamp_unit": "iso"},
            4,
            "ts",
            "malformed timestamp '2024-02-30'",
        ),
        (
            LOGS.replace("3.5", "good"),
            {**UIT, "rating": "score"},
            3,
            "score",
            "expected a number, found 'good'",
        ),
        (
            LOGS.replace(",0,b", ",2,b"),
            {**UIT, "label": "clicked"},
            3,
            "clicked",
            "expected a 0/1 label, found '2'",
        ),
    ],
)
def test_table_bad_input(
    tmp_path: Path, text: str, mapping: dict[str, Any], line: int, column: str | None, pattern: str
) -> None:
    err = _table_error(tmp_path, text, mapping)
    assert (err.line, err.column) == (line, column), str(err)
    assert re.search(pattern, str(err)), str(err)


def test_table_bad_files(tmp_path: Path) -> None:
    assert "file is empty" in str(_table_error(tmp_path, "", UIT))
    err = _table_error(tmp_path, "uid,movie,ts\n", UIT)
    assert "no data rows" in str(err)
    err = _table_error(tmp_path, gzip.compress(LOGS.encode())[:30], UIT, name="t.csv.gz")
    assert "truncated" in str(err)
    err = _table_error(tmp_path, LOGS, UIT, name="t.json")
    assert "unsupported file type" in str(err)
    err = _table_error(tmp_path, b"PAR1garbage", UIT, name="t.parquet")
    assert "not a readable Parquet file" in str(err)
    pl.DataFrame({"uid": ["1", None], "movie": ["a", "b"], "ts": [1, 2]}).write_parquet(
        tmp_path / "p.parquet"
    )
    with pytest.raises(DataFormatError, match=r"p\.parquet, column 'uid': row 2: empty id"):
        load_table(tmp_path / "p.parquet", UIT)
    pl.DataFrame({"uid": ["1"], "movie": ["a"], "ts": ["2024-01-01"]}).write_parquet(
        tmp_path / "q.parquet"
    )
    with pytest.raises(DataFormatError, match=r"q\.parquet, column 'ts': row 1: expected a Unix"):
        load_table(tmp_path / "q.parquet", UIT)
    (tmp_path / "logs.csv").write_text(LOGS)
    (tmp_path / "items.csv").write_text("id,name\na,A\nb,B\na,C\n")
    with pytest.raises(DataFormatError, match=r"items\.csv, line 4, column 'id': duplicate id 'a'"):
        load_table(
            tmp_path / "logs.csv",
            UIT,
            items=tmp_path / "items.csv",
            item_mapping={"item_id": "id", "title": "name"},
        )
