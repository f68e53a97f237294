"""The golden-set format (knowrec.judge.golden): round trip, every validation error with
its file:line, the (Good, Bad) pairs of pairwise accuracy, the append-only label file,
and `knowrec judge label` driven through typer's CliRunner on a tiny data set."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from knowrec.cli import app
from knowrec.data.tables import TIME, Dataset, conform
from knowrec.errors import ConfigError, DataFormatError, UnknownIdError
from knowrec.judge import (
    LabelFile,
    UnknownGoldenIdError,
    golden_pairwise_accuracy,
    golden_scores,
    load_golden,
    load_pairs,
    pairwise_pairs,
    save_golden,
    validate_golden,
)
from knowrec.metrics import pairwise_accuracy

HEADER = "trigger_id,candidate_id,label,kind,note\n"


def write(tmp_path: Path, text: str, name: str = "golden.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def golden_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "trigger_id": ["1", "1", "1", "2", "2", "3"],
            "candidate_id": ["2", "3", "4", "1", "3", "1"],
            "label": ["Good", "Bad", "Good", "Bad", "Good", "Good"],
            "kind": [
                *("easy_good", "hard_coengaged_bad", "hard_rare_good"),
                *("easy_bad", "coengaged_good", "easy_good"),
            ],
            "note": ["direct sequel", None, "same, director", None, 'say "hi"', None],
        }
    )


# --------------------------------------------------------------------------- round trip


def test_save_load_round_trip(tmp_path: Path) -> None:
    g = golden_frame()
    path = save_golden(g, tmp_path / "sub" / "g.csv")
    assert path.read_text().splitlines()[0] == "trigger_id,candidate_id,label,kind,note"
    back = load_golden(path)
    assert back.columns == ["trigger_id", "candidate_id", "label", "kind", "note"]
    assert back.equals(g)
    assert all(dtype == pl.String for dtype in back.dtypes)
    assert load_golden(save_golden(back, tmp_path / "again.csv")).equals(g)


def test_ids_stay_strings_labels_normalised_extras_kept(tmp_path: Path) -> None:
    text = "kind,candidate_id,trigger_id,label,labeller\n"
    text += "easy_good, 007 ,01, good ,ann\n\n"  # padding, a blank line, lowercase label
    text += 'easy_bad,8,01,BAD,"bob, jr"\n'
    g = load_golden(write(tmp_path, text))
    assert g.columns == ["trigger_id", "candidate_id", "label", "kind", "note", "labeller"]
    assert g.row(0) == ("01", "007", "Good", "easy_good", None, "ann")
    assert g.row(1) == ("01", "8", "Bad", "easy_bad", None, "bob, jr")
    path = save_golden(g, tmp_path / "out.csv")
    assert load_golden(path).equals(g)


def test_three_columns_and_1_0_labels_are_enough(tmp_path: Path) -> None:
    g = load_golden(write(tmp_path, "trigger_id,candidate_id,label\n1,2,1\n1,3,0\n1,4,good\n"))
    assert g.columns == ["trigger_id", "candidate_id", "label", "kind", "note"]
    assert g["label"].to_list() == ["Good", "Bad", "Good"]
    assert g["kind"].to_list() == ["unspecified"] * 3 and g["note"].null_count() == 3
    g = load_golden(write(tmp_path, HEADER + "1,2,0,,\n"))  # an empty kind is unspecified
    assert g.row(0) == ("1", "2", "Bad", "unspecified", None)
    with pytest.raises(DataFormatError, match="unknown label '2'; expected Good or Bad"):
        load_golden(write(tmp_path, "trigger_id,candidate_id,label\n1,2,2\n"))


def test_notes_are_flattened_to_one_line(tmp_path: Path) -> None:
    g = golden_frame().with_columns(note=pl.lit("two\nlines"))
    text = save_golden(g, tmp_path / "g.csv").read_text()
    assert len(text.splitlines()) == 1 + g.height
    assert load_golden(tmp_path / "g.csv")["note"][0] == "two lines"


# --------------------------------------------------------------------------- bad input

BAD_FILES = [
    (
        "trigger_id,candidate_id,kind\n1,2,easy_good\n",
        "line 1, column 'label': missing column(s) ['label']",
    ),
    (HEADER + "1,2,Good,easy_good,\n1,3,Maybe,easy_bad,\n", "line 3, column 'label': unknown "),
    (HEADER + "1,2,,easy_good,\n", "line 2, column 'label': an empty label; expected Good or"),
    (
        HEADER + "1,2,Good,easy_good,\n1,3,Bad,easy_bad,\n1,2,Bad,easy_bad,\n",
        "line 4: duplicate pair (trigger_id='1', candidate_id='2'); first at line 2",
    ),
    (
        HEADER + "7,7,Good,easy_good,\n",
        "line 2, column 'candidate_id': a pair of an item with itself (trigger_id = "
        "candidate_id = '7')",
    ),
    (HEADER + " ,2,Good,easy_good,\n", "line 2, column 'trigger_id': empty item id"),
    (HEADER + "1,2,Good,Hard Pair,\n", "line 2, column 'kind': kind 'Hard Pair' is not a lowerc"),
    (HEADER + "1,2,Good,easy_good\n", "line 2: expected 5 comma-separated fields, found 4"),
    ("trigger_id,label,label\n", "line 1: the header has the column 'label' twice"),
    ("", "file is empty"),
    ("\n\n", "file is empty"),
    (HEADER + '1,2,Good,easy_good,"open quote\n', "malformed CSV"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_golden_files_name_file_line_and_column(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataFormatError) as info:
        load_golden(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"nope\.csv: file not found"):
        load_golden(tmp_path / "nope.csv")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes((HEADER + "1,2,Good,easy_good,caf\xe9\n").encode("latin-1"))
    with pytest.raises(DataFormatError, match="not UTF-8"):
        load_golden(path)


def test_line_numbers_count_blank_lines_and_multiline_notes(tmp_path: Path) -> None:
    text = HEADER + '\n1,2,Good,easy_good,"a note\nover two lines"\n\n1,3,Meh,easy_bad,\n'
    with pytest.raises(DataFormatError, match=r"line 6, column 'label': unknown label 'Meh'"):
        load_golden(write(tmp_path, text))


def test_unknown_ids_against_an_items_table(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "1,2,Good,easy_good,\n1,99,Bad,easy_bad,\n")
    items = pl.DataFrame({"item_id": ["1", "2", "3"], "title": ["a", "b", "c"]})
    no_inter = pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String, "timestamp": TIME})
    dataset = Dataset(no_inter, items=conform(items, "items"))
    for known in (items, dataset, ["1", "2"]):
        with pytest.raises(UnknownGoldenIdError) as info:
            load_golden(path, items=known)  # type: ignore[arg-type]
        assert isinstance(info.value, UnknownIdError) and isinstance(info.value, DataFormatError)
        assert "line 3, column 'candidate_id': unknown item id '99'" in str(info.value)
    assert load_golden(path, items=["1", "2", "99"]).height == 2


def test_validate_and_save_check_in_memory_sets(tmp_path: Path) -> None:
    g = golden_frame()
    assert validate_golden(g.with_columns(pl.col("label").str.to_lowercase())).equals(g)
    bad = pl.concat([g, g.head(1)])
    with pytest.raises(DataFormatError, match="line 8: duplicate pair"):
        save_golden(bad, tmp_path / "g.csv")
    assert not (tmp_path / "g.csv").exists()
    with pytest.raises(DataFormatError, match="line 3, column 'label': unknown label 'ok'"):
        validate_golden(g.with_columns(label=pl.Series(["Good", "ok", "Bad", "Bad", "Good", "G"])))
    assert validate_golden(g.drop("kind"))["kind"].unique().to_list() == ["unspecified"]


def test_load_pairs_needs_only_the_ids(tmp_path: Path) -> None:
    pairs = load_pairs(write(tmp_path, "trigger_id,candidate_id,stratum\n1,2,top\n1,3,rare\n"))
    assert pairs.columns == ["trigger_id", "candidate_id", "kind", "note", "stratum"]
    assert pairs["kind"].to_list() == ["unspecified", "unspecified"]
    with pytest.raises(DataFormatError, match="line 3: duplicate pair"):
        load_pairs(write(tmp_path, "trigger_id,candidate_id\n1,2\n1,2\n", "p.csv"))
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['candidate_id'\]"):
        load_pairs(write(tmp_path, "trigger_id,item\n1,2\n", "q.csv"))


# --------------------------------------------------------------------------- pairwise


def test_pairwise_pairs_are_good_bad_pairs_of_one_trigger() -> None:
    pairs = pairwise_pairs(golden_frame())
    assert pairs.columns == ["trigger_id", "good_id", "bad_id", "good_kind", "bad_kind"]
    assert pairs.select("trigger_id", "good_id", "bad_id").rows() == [
        ("1", "2", "3"),
        ("1", "4", "3"),
        ("2", "3", "1"),
    ]  # trigger 3 has only a Good candidate: no pair
    assert pairs["bad_kind"].to_list() == ["hard_coengaged_bad", "hard_coengaged_bad", "easy_bad"]
    assert pairwise_pairs(golden_frame().filter(pl.col("label") == "Good")).height == 0


def test_golden_pairwise_accuracy_agrees_with_explicit_pairs() -> None:
    rng = np.random.default_rng(3)
    n = 60
    g = pl.DataFrame(
        {
            "trigger_id": [f"t{k}" for k in rng.integers(0, 8, n)],
            "candidate_id": [f"c{k}" for k in range(n)],
            "label": rng.choice(["Good", "Bad"], n).tolist(),
            "kind": ["unspecified"] * n,
        }
    )
    scores = rng.integers(0, 5, n).astype(float)  # many ties
    by_id = dict(zip(g["candidate_id"], scores, strict=True))
    pairs = pairwise_pairs(g)
    diff = np.array(
        [by_id[a] - by_id[b] for a, b in zip(pairs["good_id"], pairs["bad_id"], strict=True)]
    )
    expected = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / len(diff)
    assert golden_pairwise_accuracy(g, scores) == pytest.approx(expected)
    y = (g["label"] == "Good").cast(pl.Int8).to_numpy()
    assert golden_pairwise_accuracy(g, scores) == pairwise_accuracy(y, scores, g["trigger_id"])
    table = g.select("trigger_id", "candidate_id").with_columns(score=pl.Series(scores))
    shuffled = table.sample(fraction=1.0, shuffle=True, seed=1)
    assert golden_pairwise_accuracy(g, shuffled) == pytest.approx(expected)


def test_golden_scores_errors() -> None:
    g = golden_frame()
    with pytest.raises(ConfigError, match="one value per golden pair"):
        golden_scores(g, [1.0, 2.0])
    table = g.select("trigger_id", "candidate_id").with_columns(score=pl.lit(1.0)).head(5)
    with pytest.raises(UnknownIdError, match=r"1 golden pair\(s\) have no score"):
        golden_scores(g, table)
    with pytest.raises(ConfigError, match="no column 'score'"):
        golden_scores(g, table.drop("score"))


# --------------------------------------------------------------------------- label file


def test_label_file_appends_and_pops(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    out = LabelFile(path)
    out.append("1", "2", "Good", "easy_good", "a\nnote")
    out.append("1", "3", "bad", "easy_bad")
    assert path.read_text() == HEADER + "1,2,Good,easy_good,a note\n1,3,Bad,easy_bad,\n"
    assert load_golden(path).equals(out.rows)
    with pytest.raises(DataFormatError, match="already labelled"):
        out.append("1", "2", "Bad", "easy_bad")
    with pytest.raises(DataFormatError, match="unknown label 'Maybe'"):
        out.append("1", "4", "Maybe", "easy_bad")
    assert out.pop() == {
        "trigger_id": "1",
        "candidate_id": "3",
        "label": "Bad",
        "kind": "easy_bad",
        "note": None,
    }
    assert path.read_text() == HEADER + "1,2,Good,easy_good,a note\n"
    assert LabelFile(path).labelled() == [("1", "2")]
    out.pop()
    assert out.pop() is None and path.read_text() == HEADER


def test_label_file_keeps_a_hand_edited_layout(tmp_path: Path) -> None:
    path = write(tmp_path, "trigger_id,candidate_id,label,kind\n1,2,Good,x")  # no final newline
    out = LabelFile(path)
    out.append("1", "3", "Bad", "easy_bad", "dropped: the file has no note column")
    assert path.read_text() == "trigger_id,candidate_id,label,kind\n1,2,Good,x\n1,3,Bad,easy_bad\n"
    multi = write(tmp_path, HEADER + '1,2,Good,x,"two\nlines"\n1,3,Bad,y,\n', "m.csv")
    LabelFile(multi).pop()
    assert multi.read_text() == HEADER + '1,2,Good,x,"two\nlines"\n'


# --------------------------------------------------------------------------- the command


def tiny_dataset(root: Path) -> Path:
    t = datetime(2020, 1, 1)
    inter = pl.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "item_id": ["10", "20", "30"],
            "timestamp": [t, t, t],
            "rating": [5.0, 4.0, 3.0],
        }
    )
    items = pl.DataFrame(
        {
            "item_id": ["10", "20", "30", "40", "50"],
            "title": ["Robot Pals", "Robot Pals 2", "Grim Night", "Sunny Farm", "Space Trip"],
            "year": [1995, 1999, 1990, 1995, 1977],
            "genres": [["Animation"], ["Animation"], ["Horror"], ["Children's"], ["Sci-Fi"]],
            "text": ["Toys come alive when nobody looks. " * 30, "More toys.", None, "A pig.", ""],
        }
    )
    Dataset(conform(inter, "interactions"), items=conform(items, "items")).save(root)
    return root


PAIRS = (
    "trigger_id,candidate_id,kind,note\n10,20,easy_good,\n10,30,easy_bad,\n10,40,,picked\n50,10,,\n"
)


def run_label(tmp_path: Path, answers: str, pairs: str = PAIRS) -> tuple[str, Path]:
    data = tiny_dataset(tmp_path / "data")
    (tmp_path / "pairs.csv").write_text(pairs)
    out = tmp_path / "labels.csv"
    args = ["judge", "label", "--pairs", str(tmp_path / "pairs.csv"), "--data", str(data)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--chars", "60"], input=answers)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output, out


def flat(output: str) -> str:
    """The output with runs of whitespace as one space (rich wraps long lines)."""
    return " ".join(output.split())


def shown_pairs(output: str) -> list[str]:
    """Trigger → candidate ids in the order the command showed them."""
    ids = re.findall(r"id (\d+)", output)
    return [f"{a}>{b}" for a, b in zip(ids[::2], ids[1::2], strict=True)]


def test_label_command_quit_resume_skip_undo(tmp_path: Path) -> None:
    output, out = run_label(tmp_path, "g\n[x\nb  tone clash \nq\n")
    assert shown_pairs(output) == ["10>20", "10>30", "10>30", "10>40"]  # '[x' asks again
    assert "Robot Pals" in output and "(1995)" in output and "Animation" in output
    assert "Toys come alive" in output and "easy_good" not in output  # kinds stay hidden
    assert "unknown answer '[x'" in output and "2 left (run the same command" in flat(output)
    assert out.read_text() == HEADER + "10,20,Good,easy_good,\n10,30,Bad,easy_bad,tone clash\n"

    output, _ = run_label(tmp_path, "s\ng\n")  # resumes after the last labelled pair
    assert shown_pairs(output) == ["10>40", "50>10"]
    assert "3 of 4 pairs are in" in flat(output)
    assert load_golden(out).select("candidate_id", "label", "kind").rows()[-1] == (
        "10",
        "Good",
        "unspecified",
    )

    output, _ = run_label(tmp_path, "u\ng\nb ok\n")  # skipped pair comes back; undo
    assert shown_pairs(output) == ["10>40", "50>10", "10>40"]
    assert "undid the Good label of 50 → 10" in flat(output)
    g = load_golden(out)
    assert g.select("trigger_id", "candidate_id", "label").rows() == [
        ("10", "20", "Good"),
        ("10", "30", "Bad"),
        ("50", "10", "Good"),
        ("10", "40", "Bad"),
    ]
    assert g["note"][-1] == "picked; ok"  # the pairs file's note, then the typed one

    output, _ = run_label(tmp_path, "")
    assert shown_pairs(output) == [] and "4 pairs, 4 already labelled" in flat(output)


def test_label_command_end_of_input_quits_and_undo_when_empty(tmp_path: Path) -> None:
    output, out = run_label(tmp_path, "u\n")
    assert "nothing to undo" in flat(output) and not out.exists()


def test_label_command_rejects_unknown_ids(tmp_path: Path) -> None:
    with pytest.raises(UnknownGoldenIdError, match=r"line 3, column 'candidate_id': unknown"):
        run_label(tmp_path, "", pairs="trigger_id,candidate_id\n10,20\n10,77\n")
