"""NeMig loader: canonical tables, the KG files, format detection and every bad-input error.

All fixtures are written here, in ``tmp_path``, byte for byte in NeMig's layout (CSV-quoted
news fields, Python-literal entity lists, bzip2 N-Triples). The real data under
``../shared/data/nemig`` is only read, and that test skips when it is absent.
"""

from __future__ import annotations

import bz2
import logging
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from knowrec.data import detect_format, load_dataset
from knowrec.data.nemig import load_entity_graph, load_nemig
from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError, DataFormatError

NEMIG = Path(__file__).resolve().parents[2] / "shared" / "data" / "nemig"
WD = "https://www.wikidata.org/wiki/"


def ents(*pairs: tuple[str, str]) -> str:
    """A NeMig entity field: a Python-literal list of dicts (single quotes, as shipped)."""
    return repr([{"SurfaceForms": s, "WikidataId": WD + q} for s, q in pairs])


BEHAVIORS = [
    "0\tU1\tnews_1 news_2 news_1\tnews_3-1 news_4-0 news_5-0",
    "1\tU1\tnews_1 news_2 news_1\tnews_4-0 news_5-1",
    "2\tU2\t\tnews_1-0 news_3-1",
]
NEWS = [
    "\t".join(
        [
            "news_1",
            "Abbott tours the border",
            "Texas governor visits.",
            ents(("Texas", "Q1439"), ("Abbott", "Q5605224")),
            ents(("Texas", "Q1439"), ("U.S.", "Q30")),
            "border_said_biden_president",
            "Neutral",
            "right",
        ]
    ),
    # CSV quoting: "" escapes in the title, an empty abstract, a quoted entity field
    'news_2\t"The ""border crisis"" shows"\t\t'
    + "\"[{'SurfaceForms': \"\"Beto O'Rourke\"\", 'WikidataId': '"
    + WD
    + "Q4014532'}]\"\t\tmigrants_antonio_san antonio_truck\tNegative\tleft",
    "\t".join(["news_3", "Summit", "Leaders meet.", "", "", "eu_summit", "Positive", "center"]),
    "\t".join(["news_4", "Boats", "Rescue at sea.", "[]", ents(("EU", "Q458")), "", "", ""]),
    "\t".join(["news_5", "Asylum", "New rules.", "", "", "asylum_rules", "Neutral", "center"]),
]
DEMOGRAPHICS = ["uid\tGender\tAge\tIncome\tPOL1", "U1\t1\t28\t2\t6", "U2\t3\t61\t6\t11"]
METADATA = [
    f'<http://nemig_en.org/resource/news_{n}> <https://schema.org/{p}> "{v}" .'
    for n, p, v in [
        (1, "datePublished", "01.08.2021"),
        (1, "url", "https://x.org/caf\\u00e9"),  # an N-Triples escape
        (1, "dateModified", "02.08.2021"),
        (2, "datePublished", "29.10.2021"),
        (3, "datePublished", "31.12.2020"),
        (4, "datePublished", "01.01.2022"),
        (5, "datePublished", "15.06.2021"),
        (99, "datePublished", "15.06.2021"),  # a news the study never showed
    ]
]
GRAPH = [
    f"<{WD}Q1439> <{WD}Property:P17> <{WD}Q30> .",
    f"<{WD}Q30> <{WD}Property:P36> <{WD}Q61> .",
    f"<{WD}Q1439> <{WD}Property:P17> <{WD}Q30> .",  # duplicate
    f'<{WD}Q30> <http://www.w3.org/2000/01/rdf-schema#label> "United States"@en .',
    f"<{WD}Q458> <{WD}Property:P5137> <{WD}L252247-F2> .",
    "# a comment",
    "",
]
META_NAME = "nemig_en_base-instances_metadata_literals.nt.bz2"
GRAPH_NAME = "nemig_en_enriched_entities-wiki_resources_1_hop.nt.bz2"


def write_nemig(
    root: Path,
    behaviors: list[str] = BEHAVIORS,
    news: list[str] = NEWS,
    demographics: list[str] | None = DEMOGRAPHICS,
    metadata: list[str] | None = METADATA,
    graph: list[str] | None = GRAPH,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "behaviors.tsv").write_text("\n".join(behaviors) + "\n", encoding="utf-8")
    (root / "news.tsv").write_text("\n".join(news) + "\n", encoding="utf-8")
    if demographics is not None:
        (root / "demographics_politics.tsv").write_text("\n".join(demographics) + "\n")
    for name, lines in ((META_NAME, metadata), (GRAPH_NAME, graph)):
        if lines is not None:
            (root / "kg").mkdir(exist_ok=True)
            (root / "kg" / name).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    return root


def test_nemig_canonical_tables(tmp_path: Path) -> None:
    data = load_nemig(write_nemig(tmp_path / "en"))
    inter = data.interactions
    assert inter["timestamp"].null_count() == inter.height  # NeMig has no times
    hist = inter.filter(pl.col("impression_id").is_null())
    imp = inter.filter(pl.col("impression_id").is_not_null())
    # a user's history repeats in each of their impressions: kept once, in file order
    assert hist.select("user_id", "item_id").rows() == [("U1", "news_1"), ("U1", "news_2")]
    assert hist["label"].to_list() == [1, 1]
    assert imp.height == 7 and imp["impression_id"].n_unique() == 3
    assert imp.filter(pl.col("label") == 1)["item_id"].to_list() == ["news_3", "news_5", "news_3"]
    assert imp.filter(pl.col("impression_id") == "2")["item_id"].to_list() == ["news_1", "news_3"]

    items = {r["item_id"]: r for r in data.items.to_dicts()}
    one, two, four = items["news_1"], items["news_2"], items["news_4"]
    assert one["entities"] == ["Q1439", "Q5605224", "Q30"]  # title then abstract, deduplicated
    assert one["entity_labels"] == ["Texas", "Abbott", "U.S."]
    assert one["topics"] == ["border", "said", "biden", "president"]
    assert one["category"] == "border_said_biden_president"
    assert (one["sentiment"], one["political_leaning"]) == ("Neutral", "right")
    assert (one["published"], one["url"]) == (date(2021, 8, 1), "https://x.org/café")
    assert two["title"] == 'The "border crisis" shows'  # CSV "" escapes undone
    assert two["abstract"] is None and two["text"] == two["title"]  # empty abstract
    assert two["entities"] == ["Q4014532"] and two["entity_labels"] == ["Beto O'Rourke"]
    assert two["topics"] == ["migrants", "antonio", "san antonio", "truck"]
    assert one["text"] == "Abbott tours the border\n\nTexas governor visits."
    assert four["entities"] == ["Q458"] and four["category"] is None and four["topics"] == []
    assert items["news_3"]["entities"] == [] and items["news_3"]["published"] == date(2020, 12, 31)
    assert data.items.schema["published"] == pl.Date

    assert data.users.rows() == [("U1", "female", 28, 6), ("U2", None, 61, 11)]
    assert data.users.columns == ["user_id", "gender", "age", "political_scale"]
    meta = data.meta
    assert meta["format"] == "nemig" and "split by user" in meta["protocol"]
    assert (meta["history_rows"], meta["impression_rows"], meta["impressions"]) == (2, 7, 3)
    assert meta["unresolved"]["ids"] == 0 and meta["users_without_demographics"] == 0
    assert (meta["published_min"], meta["published_max"]) == ("2020-12-31", "2022-01-01")
    assert meta["entity_graph"].endswith(GRAPH_NAME)


def test_nemig_detect_dispatch_and_roundtrip(tmp_path: Path) -> None:
    root = write_nemig(tmp_path / "en")
    assert detect_format(root) == "nemig"
    mind = tmp_path / "mind"  # MIND (5 behaviour columns) is still detected as MIND
    mind.mkdir()
    (mind / "behaviors.tsv").write_text("1\tU1\t11/13/2019 8:36:57 AM\tN1\tN2-1\n")
    (mind / "news.tsv").write_text("N1\tnews\tnewsus\tT\tA\thttps://x\t[]\t[]\n")
    assert detect_format(mind) == "mind"
    data = load_dataset(root, kg=False)
    assert data.items["published"].null_count() == data.items.height
    back = Dataset.load(data.save(tmp_path / "out"))
    assert back.items.equals(data.items) and back.users.equals(data.users)
    assert back.interactions.equals(data.interactions)


def test_nemig_without_optional_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_nemig(tmp_path / "en", demographics=None, metadata=None, graph=None)
    with caplog.at_level(logging.WARNING, logger="knowrec.data.nemig"):
        data = load_nemig(root)
    assert data.users.height == 0 and data.items["published"].null_count() == 5
    assert data.meta["users_without_demographics"] == 2 and data.meta["entity_graph"] is None
    text = caplog.text
    assert "users table is empty" in text and "items.published is null" in text
    assert "2 users have no demographics row" in text


def test_nemig_unresolved_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        BEHAVIORS[0],
        "1\tU1\tnews_1 news_2 news_1\tnews_4-0 news_77-1",
        "2\tU2\tnews_88\tnews_1-1",
    ]
    root = write_nemig(tmp_path / "en", behaviors=rows)
    with pytest.raises(DataFormatError) as info:
        load_nemig(root)
    err = info.value
    assert err.path is not None and err.path.endswith("behaviors.tsv")
    assert (err.line, err.column) == (2, "Impressions")
    assert "news id 'news_77' is not in news.tsv" in str(err)
    assert "2 news ids not in news.tsv (1 history and 1 impression rows)" in str(err)
    assert "on_unresolved='drop'" in str(err) and "\n" not in str(err)

    with caplog.at_level(logging.WARNING, logger="knowrec.data.nemig"):
        data = load_nemig(root, on_unresolved="drop")
    assert "dropped 2 news ids not in news.tsv" in caplog.text
    assert data.meta["unresolved"] == {
        "ids": 2,
        "history_rows": 1,
        "impression_rows": 1,
        "impressions": 1,
    }
    assert not data.interactions["item_id"].is_in(["news_77", "news_88"]).any()
    with pytest.raises(ConfigError, match="on_unresolved"):
        load_nemig(root, on_unresolved="keep")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "pattern"),
    [
        ("[{'SurfaceForms': 'X', 'WikidataId': 'https://www.wiki", "malformed entity list"),
        ("__import__('os').system('true')", "malformed entity list"),  # literal_eval, not eval
        ("{'SurfaceForms': 'X'}", "expected a list of"),
        ("[{'SurfaceForms': 'X'}]", "expected a list of"),
        ("[{'SurfaceForms': 'X', 'WikidataId': 'Berlin'}]", "'Berlin' is not a Wikidata item"),
        ("[{'SurfaceForms': 'X', 'WikidataId': '" + WD + "P31'}]", "is not a Wikidata item"),
    ],
)
def test_nemig_malformed_entity_field(tmp_path: Path, field: str, pattern: str) -> None:
    news = [*NEWS[:2], "\t".join(["news_3", "Summit", "Meet.", "", field, "c", "Neutral", "left"])]
    root = write_nemig(tmp_path / "en", news=[*news, *NEWS[3:]])
    with pytest.raises(DataFormatError, match=pattern) as info:
        load_nemig(root)
    err = info.value
    assert err.path is not None and err.path.endswith("news.tsv")
    assert (err.line, err.column) == (3, "AbstractEntities"), str(err)


@pytest.mark.parametrize(
    ("news", "line", "column", "pattern"),
    [
        ([NEWS[0], NEWS[1], "news_3\tonly three"], 3, None, "expected 8 tab-separated fields"),
        ([NEWS[0], NEWS[1], NEWS[0]], 3, "NewsID", r"duplicate news id 'news_1' \(first on line 1"),
        ([NEWS[0], "\t" + NEWS[2].split("\t", 1)[1]], 2, "NewsID", "empty news id"),
        ([NEWS[0], NEWS[1], 'news_3\t"Open quote\tA\t\t\tc\tNeutral\tleft'], 3, None, "quoting"),
        ([NEWS[0], "", NEWS[2]], 2, None, "found 0"),
    ],
)
def test_nemig_bad_news(
    tmp_path: Path, news: list[str], line: int, column: str | None, pattern: str
) -> None:
    root = write_nemig(tmp_path / "en", news=news)
    with pytest.raises(DataFormatError, match=pattern) as info:
        load_nemig(root, on_unresolved="drop")
    err = info.value
    assert err.path is not None and err.path.endswith("news.tsv")
    assert (err.line, err.column) == (line, column), str(err)


def _error(root: Path, **options: object) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        load_nemig(root, **options)  # type: ignore[arg-type]
    return info.value


def test_nemig_bad_behaviors_demographics_and_kg(tmp_path: Path) -> None:
    mind_row = "0\tU1\t11/13/2019 8:36:57 AM\tnews_1\tnews_3-1"
    err = _error(write_nemig(tmp_path / "a", behaviors=[BEHAVIORS[0], mind_row]))
    assert err.line == 2 and "expected 4 tab-separated fields, found 5" in err.reason
    err = _error(write_nemig(tmp_path / "b", behaviors=["0\tU1\tnews_1\tnews_3-2"]))
    assert (err.line, err.column) == (1, "Impressions") and "'news_3-2'" in str(err)

    demo = write_nemig(tmp_path / "c", demographics=["uid\tGender\tPOL1", "U1\t1\t6"])
    err = _error(demo)
    assert (err.line, err.column) == (1, "Age") and "missing column" in str(err)
    for i, (row, column, pattern) in enumerate(
        [
            ("U2\t7\t61\t6\t11", "Gender", "gender code 0-3, found '7'"),
            ("U2\t1\told\t6\t11", "Age", "expected an integer, found 'old'"),
            ("U1\t1\t61\t6\t11", "uid", "duplicate user id 'U1'"),
            ("U2\t1\t61", None, "expected 5 tab-separated fields, found 3"),
        ]
    ):
        err = _error(write_nemig(tmp_path / f"d{i}", demographics=[*DEMOGRAPHICS[:2], row]))
        assert err.path is not None and err.path.endswith("demographics_politics.tsv")
        assert (err.line, err.column) == (3, column) and pattern in str(err), str(err)

    bad_date = [*METADATA[:3], METADATA[3].replace("29.10.2021", "2021-10-29")]
    err = _error(write_nemig(tmp_path / "e", metadata=bad_date))
    assert err.path is not None and err.path.endswith(META_NAME)
    assert (err.line, err.column) == (4, "datePublished") and "DD.MM.YYYY" in str(err)
    err = _error(write_nemig(tmp_path / "f", metadata=[METADATA[0], "<news_2> datePublished"]))
    assert err.line == 2 and "not an N-Triples statement" in str(err)
    assert load_nemig(write_nemig(tmp_path / "g", metadata=bad_date), kg=False).items.height == 5

    missing = write_nemig(tmp_path / "h")
    (missing / "news.tsv").unlink()
    assert str(_error(missing)).endswith("news.tsv: file not found")
    empty = write_nemig(tmp_path / "i")
    (empty / "behaviors.tsv").write_text("")
    assert str(_error(empty)).endswith("behaviors.tsv: file is empty")
    both = tmp_path / "nemig"
    write_nemig(both / "en")
    write_nemig(both / "de")
    assert "load one of de, en (separate data sets)" in str(_error(both))
    assert "expected a NeMig directory" in str(_error(both / "en" / "news.tsv"))


def test_entity_graph(tmp_path: Path) -> None:
    root = write_nemig(tmp_path / "en")
    graph = load_entity_graph(root)
    assert graph.columns == ["head", "relation", "tail"]
    assert graph.rows() == [
        ("Q1439", "P17", "Q30"),
        ("Q30", "P36", "Q61"),
        ("Q458", "P5137", "L252247-F2"),
    ]  # the duplicate and the literal are gone
    plain = tmp_path / "graph.nt"
    plain.write_text("\n".join(GRAPH) + "\n")
    assert load_entity_graph(plain).equals(graph)
    truncated = tmp_path / "cut.nt.bz2"
    truncated.write_bytes((root / "kg" / GRAPH_NAME).read_bytes()[:-20])
    with pytest.raises(DataFormatError, match="is the file truncated"):
        load_entity_graph(truncated)
    with pytest.raises(DataFormatError, match="enriched_entities"):
        load_entity_graph(tmp_path)


@pytest.mark.skipif(not NEMIG.exists(), reason="shared NeMig data not available")
@pytest.mark.parametrize(
    ("lang", "impressions", "users", "clicks", "news", "dates"),
    [
        ("en", 15_000, 3_000, 14_148, 4_596, ("2021-01-01", "2022-07-01")),
        ("de", 17_160, 3_432, 17_153, 4_934, ("2019-01-01", "2021-12-31")),
    ],
)
def test_nemig_real_counts(
    lang: str, impressions: int, users: int, clicks: int, news: int, dates: tuple[str, str]
) -> None:
    """The counts of ../shared/data/nemig/SOURCE.md (every id resolves; no KG graph read)."""
    data = load_nemig(NEMIG / lang)
    imp = data.interactions.filter(pl.col("impression_id").is_not_null())
    assert imp["impression_id"].n_unique() == impressions
    assert data.interactions["user_id"].n_unique() == users == data.users.height
    assert int(imp["label"].sum()) == clicks and data.items.height == news
    assert data.meta["unresolved"]["ids"] == 0 and data.meta["news_without_published"] == 0
    assert (data.meta["published_min"], data.meta["published_max"]) == dates
