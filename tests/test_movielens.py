"""MovieLens loaders, the item-text join, and their bad-input errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from knowrec.data import detect_format, load_dataset
from knowrec.data.movielens import load_movielens
from knowrec.data.text import join_item_text, title_keys
from knowrec.errors import DataFormatError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

RATINGS = "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n2::30::1::978300275\n"
MOVIES = (
    "10::Matrix, The (1999)::Action|Sci-Fi\n"
    "20::Misérables, Les (1995)::Drama\n"
    "30::Seven (Se7en) (1995)::Crime|Thriller\n"
)
USERS = "1::F::1::10::48067\n2::M::56::16::70072\n"


def write_ml1m(
    root: Path, ratings: str = RATINGS, movies: str = MOVIES, users: str = USERS, gz: bool = True
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if gz:
        (root / "ratings.dat.gz").write_bytes(gzip.compress(ratings.encode()))
    else:
        (root / "ratings.dat").write_text(ratings)
    (root / "movies.dat").write_bytes(movies.encode("latin-1"))  # the original encoding
    (root / "users.dat").write_text(users)
    return root


def test_ml1m_canonical_tables(tmp_path: Path) -> None:
    data = load_movielens(write_ml1m(tmp_path / "ml"))
    inter = data.interactions
    assert inter.height == 4 and data.n_users == 2 and data.items.height == 3
    assert inter["rating"].to_list() == [5.0, 3.0, 4.0, 1.0]
    assert str(inter["timestamp"][0]) == "2000-12-31 22:12:40"
    items = {r["item_id"]: r for r in data.items.iter_rows(named=True)}
    assert items["20"]["title"] == "Misérables, Les" and items["20"]["year"] == 1995
    assert items["10"]["genres"] == ["Action", "Sci-Fi"]
    users = data.users.row(0, named=True)
    assert users == {
        "user_id": "1",
        "gender": "F",
        "age": 1,
        "occupation": "K-12 student",
        "zip": "48067",
    }
    assert detect_format(tmp_path / "ml") == "movielens"


def test_ml1m_plain_and_gzip_agree(tmp_path: Path) -> None:
    a = load_movielens(write_ml1m(tmp_path / "a", gz=True))
    b = load_movielens(write_ml1m(tmp_path / "b", gz=False))
    assert a.interactions.equals(b.interactions)


@pytest.mark.parametrize(
    ("ratings", "match"),
    [
        ("1::10::5::978300760\n1,20,3,978302109\n", r"ratings\.dat\.gz, line 2: expected 4"),
        (
            "1::10::5::978300760\nx::20::3::978302109\n",
            r"line 2, column 'user_id': expected an int",
        ),
        ("1::10::five::978300760\n", r"line 1, column 'rating': expected a number"),
        ("1::10::5::978300760\n1::10::4::978300761\n", r"line 2, column 'item_id': duplicate"),
        ("1::10::5::99999999999\n", r"column 'timestamp'.*outside 1970\.\.2100"),
        ("1::10::5::978300760\n\n2::10::4::978301968\n", r"line 2: expected 4"),
        ("1::10::5\n", r"line 1: expected 4 '::'-separated fields, found 3"),
        ("\n", r"file is empty"),
    ],
)
def test_ml1m_bad_ratings(tmp_path: Path, ratings: str, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        load_movielens(write_ml1m(tmp_path / "ml", ratings=ratings))


def test_truncated_gzip(tmp_path: Path) -> None:
    root = write_ml1m(tmp_path / "ml")
    blob = (root / "ratings.dat.gz").read_bytes()
    (root / "ratings.dat.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFormatError, match="truncated"):
        load_movielens(root)


def test_bad_movies_and_users(tmp_path: Path) -> None:
    dup = MOVIES + "10::Again (2000)::Drama\n"
    with pytest.raises(DataFormatError, match=r"duplicate item_id '10'"):
        load_movielens(write_ml1m(tmp_path / "a", movies=dup))
    with pytest.raises(DataFormatError, match=r"users\.dat, line 2, column 'occupation'"):
        load_movielens(write_ml1m(tmp_path / "b", users=USERS.replace("::16::", "::99::")))
    (tmp_path / "c").mkdir()
    with pytest.raises(DataFormatError, match="no ratings file"):
        load_movielens(tmp_path / "c")


def test_ml_latest_csv(tmp_path: Path) -> None:
    root = tmp_path / "mls"
    root.mkdir()
    (root / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,2.5,964981247\n"
    )
    (root / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
        '2,"American President, The (1995)",(no genres listed)\n'
    )
    (root / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,pixar,1\n2,1,fun,2\n")
    data = load_dataset(root)
    assert data.meta["format"] == "movielens-latest"
    assert data.interactions["rating"].to_list() == [4.0, 2.5]
    row = data.items.row(1, named=True)
    assert row["title"] == "American President, The" and row["genres"] == []
    assert data.items.row(0, named=True)["tags"] == ["pixar", "fun"]
    (root / "ratings.csv").write_text("userId;movieId;rating;timestamp\n1;1;4.0;964982703\n")
    with pytest.raises(DataFormatError, match=r"ratings\.csv, line 1, column 'userId': missing"):
        load_dataset(root)
    (root / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,x,3,1\n"
    )
    with pytest.raises(DataFormatError, match=r"line 3, column 'movieId'"):
        load_dataset(root)


def test_title_keys() -> None:
    assert title_keys("Matrix, The (1999)") == ["the matrix"]
    assert title_keys("The Matrix") == ["the matrix"]
    assert title_keys("Seven (Se7en)") == ["seven", "se7en"]
    assert title_keys("Misérables, Les") == ["les miserables"]
    assert title_keys("Last of the High Kings, The (a.k.a. Summer Fling)") == [
        "the last of the high kings",
        "summer fling",
    ]
    assert title_keys(None) == []


def test_join_text_by_title_year(tmp_path: Path) -> None:
    data = load_movielens(write_ml1m(tmp_path / "ml"))
    plots = tmp_path / "plots.csv"
    pl.DataFrame(
        {
            "Title": ["The Matrix", "Les Misérables", "Se7en", "Other"],
            "Year": ["1999.0", "1996.0", "1995", "1999"],
            "Plot": ["A hacker learns the truth.", "Valjean's story.", "Two detectives.", "x"],
            "Director": ["Wachowski", "", "Fincher", "y"],
        }
    ).write_csv(plots)
    joined, report = join_item_text(
        data,
        plots,
        on="title_year",
        text_columns=["Plot", "Director"],
        title_column="Title",
        year_column="Year",
    )
    texts = dict(zip(joined.items["item_id"], joined.items["text"], strict=True))
    assert texts["10"] == "A hacker learns the truth.\nDirector: Wachowski."
    assert texts["20"] == "Valjean's story."  # year off by one, empty director skipped
    assert texts["30"].startswith("Two detectives.")  # matched through the bracketed title
    assert report.matched == 3 and report.by_rule == {"title": 1, "title_year+1": 1, "alt_title": 1}


def test_join_text_by_id_and_errors(tmp_path: Path) -> None:
    data = load_movielens(write_ml1m(tmp_path / "ml"))
    table = tmp_path / "t.csv"
    table.write_text("item_id,text\n10,matrix text\n30,seven text\n")
    joined, report = join_item_text(data, table, text_columns=["text"])
    assert joined.items["text"].to_list() == ["matrix text", None, "seven text"]
    assert report.coverage == pytest.approx(2 / 3)
    table.write_text("item_id,text\n10,a\n10,b\n")
    with pytest.raises(DataFormatError, match=r"t\.csv, line 3, column 'item_id': duplicate"):
        join_item_text(data, table, text_columns=["text"])
    with pytest.raises(DataFormatError, match=r"column 'plot': text column"):
        join_item_text(data, table, text_columns=["plot"])


@pytest.mark.skipif(not (SHARED / "ml-1m").exists(), reason="shared ML-1M not present")
def test_real_ml1m_with_plots() -> None:
    data = load_movielens(SHARED / "ml-1m")
    assert data.interactions.height == 487_650
    assert data.n_users == 2_999 and data.items.height == 3_883
    joined, report = join_item_text(
        data,
        SHARED / "tml1m-movie-plots" / "movies.csv",
        on="title_year",
        text_columns=["Plot", "Genre", "Director"],
        title_column="Title",
        year_column="Year",
    )
    assert report.coverage > 0.99
    # TML1M's MovieID k is the k-th line of movies.dat, and its Url usually holds the ML id:
    # the title join must agree with that row order wherever it matched.
    plots = pl.read_csv(SHARED / "tml1m-movie-plots" / "movies.csv", infer_schema=False)
    by_row = dict(zip(data.items["item_id"], plots["Plot"].fill_null(""), strict=True))
    for item_id, text in zip(joined.items["item_id"], joined.items["text"], strict=True):
        if text is not None and by_row[item_id]:
            assert text.startswith(by_row[item_id].strip())
