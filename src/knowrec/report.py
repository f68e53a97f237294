"""Results presentation: tables for the terminal, ``results.md`` and a self-contained
``report.html`` with plots (PNG embedded, no external files)."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def fmt_value(value: object) -> str:
    """Floats to 4 significant digits, integers with thousands separators."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``"0.7812 ± 0.0010"`` (sample std; a single value has no ``±``)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return "—"
    if arr.size == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


@dataclass
class Section:
    """One part of a report: a heading, a table (list of row dicts), notes and figures
    (matplotlib figures, embedded as PNG)."""

    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""
    figures: list[Any] = field(default_factory=list)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table over the union of the rows' keys."""
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt_value(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt_value(r.get(c, '')))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _png(figure: Any) -> str:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
    "pre{white-space:pre-wrap;background:#fafafa;padding:8px}"
)


def write_report(out_dir: str | Path, title: str, sections: Sequence[Section]) -> dict[str, Path]:
    """Write ``results.md`` and ``report.html`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", ""]
    page = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    page += [f"<style>{_STYLE}</style><h1>{html.escape(title)}</h1>"]
    for sec in sections:
        md += [f"## {sec.title}", ""]
        page.append(f"<h2>{html.escape(sec.title)}</h2>")
        if sec.notes:
            md += [sec.notes, ""]
            page.append(f"<pre>{html.escape(sec.notes)}</pre>")
        if sec.rows:
            md += [markdown_table(sec.rows), ""]
            page.append(_html_table(sec.rows))
        for fig in sec.figures:
            page.append(
                f"<img alt='{html.escape(sec.title)}' src='data:image/png;base64,{_png(fig)}'>"
            )
    paths = {"results.md": out / "results.md", "report.html": out / "report.html"}
    for name, text in (("results.md", "\n".join(md)), ("report.html", "\n".join(page))):
        tmp = paths[name].with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, paths[name])
    return paths
