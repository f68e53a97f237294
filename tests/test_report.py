"""Report writing: Markdown and a self-contained HTML page with an embedded plot; terminal
tables that stay readable at 80 columns; a word for missing values; the summary plots."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import matplotlib
import polars as pl
import pytest
from rich.console import Console

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from knowrec.report import (
    Section,
    fmt_value,
    markdown_table,
    mean_std,
    print_rows,
    summary_figure,
    write_report,
)


def test_mean_std() -> None:
    assert mean_std([0.78, 0.79, 0.80]) == "0.7900 ± 0.0100"
    assert mean_std([0.5]) == "0.5000"
    assert mean_std([]) == "—"


def test_markdown_table_uses_the_union_of_keys() -> None:
    text = markdown_table([{"model": "din", "auc": 0.78123}, {"model": "dien", "logloss": 0.5}])
    assert text.splitlines()[0] == "| model | auc | logloss |"
    assert "| din | 0.7812 |  |" in text


def test_write_report(tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [0.7, 0.75, 0.78])
    paths = write_report(
        tmp_path,
        "TRAWL <demo>",
        [
            Section(
                "Table 1",
                [{"method": "trawl", "auc": 0.78}],
                notes="protocol: 8:1:1",
                figures=[fig],
            )
        ],
    )
    md = paths["results.md"].read_text()
    assert md.startswith("# TRAWL <demo>") and "| trawl | 0.78 |" in md
    page = paths["report.html"].read_text()
    assert "<title>TRAWL &lt;demo&gt;</title>" in page
    png = re.search(r"base64,([A-Za-z0-9+/=]+)'", page)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")


def test_html_numbers_align_right_and_words_left(tmp_path: Path) -> None:
    rows = [
        {"method": "kar", "AUC": "0.7659 ± 0.0011", "samples": 12345, "note": "0.004 (default)"},
        {"method": "trawl", "AUC": None, "samples": 7, "note": "—"},
    ]
    page = write_report(tmp_path, "t", [Section("T", rows)])["report.html"].read_text()
    head = "<th>method</th><th class='num'>AUC</th><th class='num'>samples</th><th>note</th>"
    assert head in page
    assert "<td>kar</td><td class='num'>0.7659 ± 0.0011</td><td class='num'>12,345</td>" in page


TABLE5 = [
    {
        "system": "baseline stack",
        "paths": "coclick, cf, two_tower, semantic",
        "λ": 0.0,
        "ClickNDCG@5": 0.63651,
        "QF ClickNDCG@5": float("nan"),
        "RecoDCG@1": float("nan"),
        "RecoDCG@5": None,
        "impressions": 819,
        "judged impressions": 0,
        "judged triggers": 0,
    },
    {
        "system": "+ quality-aware ranking + Q' recall",
        "paths": "coclick, cf, two_tower, semantic, qprime",
        "λ": 0.35,
        "ClickNDCG@5": 0.64122,
        "QF ClickNDCG@5": 0.7101,
        "RecoDCG@1": 0.6133,
        "RecoDCG@5": 0.6021,
        "impressions": 819,
        "judged impressions": 12,
        "judged triggers": 20,
    },
]


def render(rows: list[dict[str, object]], width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    print_rows(console, "Table 5", rows, missing="not measured: no judged trigger")
    return console.export_text()


@pytest.mark.parametrize("copies", [1, 4])  # 2 rows go transposed, 8 rows as blocks
def test_table5_is_readable_at_80_columns(copies: int) -> None:
    text = render(TABLE5 * copies, 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for row in TABLE5:  # every word of every name and value whole (wrapped at spaces only)
        for key, value in row.items():
            assert all(word in text for word in [*key.split(), *fmt_value(value).split()])
    assert "nan" not in text and "None" not in text
    assert text.rstrip().endswith("— = not measured: no judged trigger")


def test_a_wide_console_gets_the_table_as_it_is() -> None:
    text = render(TABLE5, 200)
    header = next(line for line in text.splitlines() if "ClickNDCG@5" in line)
    assert "system" in header and "judged triggers" in header  # one row of column names
    assert len([line for line in text.splitlines() if "│" in line]) == 2  # one line per row


def test_missing_values_have_a_word_and_empty_sections_say_why(tmp_path: Path) -> None:
    assert fmt_value(float("nan")) == fmt_value(None) == "—"
    assert mean_std([float("nan"), 0.5]) == "0.5000" and mean_std([float("nan")]) == "—"
    sections = [
        Section("Table 5", TABLE5, missing="not measured: no judged trigger"),
        Section("LLM judge", [], empty="not run: no pair to judge"),
        Section("Nothing", []),  # no rows, notes, figures or reason: left out
    ]
    paths = write_report(tmp_path, "report", sections)
    for name in ("results.md", "report.html"):
        text = paths[name].read_text()
        assert not re.search(r"\b(nan|None)\b", text)
        assert "— = not measured: no judged trigger" in text
        assert "not run: no pair to judge" in text and "Nothing" not in text


def test_summary_figure_means_and_error_bars() -> None:
    frame = pl.DataFrame(
        {
            "method": ["none", "none", "trawl", "trawl"],
            "backbone": ["din"] * 4,
            "test_auc": [0.70, 0.72, 0.75, float("nan")],
            "test_cold_auc": [None, 0.6, 0.65, 0.66],
        }
    )
    fig = summary_figure(frame, "method", "test_auc", hue="backbone", ylabel="AUC", title="t")
    (series,) = fig.axes[0].containers  # one series: dots with error bars
    assert series.lines[0].get_ydata().tolist() == pytest.approx([0.71, 0.75])
    both = {"warm": "test_auc", "cold": "test_cold_auc", "absent": "nope"}
    fig = summary_figure(frame, "method", both, ylabel="AUC", title="t")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["warm", "cold"]
    assert summary_figure(frame, "method", "nope", ylabel="AUC", title="t") is None
