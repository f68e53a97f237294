"""Report writing: Markdown and a self-contained HTML page with an embedded plot."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from knowrec.report import Section, markdown_table, mean_std, write_report


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
