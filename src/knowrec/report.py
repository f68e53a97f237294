"""Results presentation: tables for the terminal, ``results.md`` and a self-contained
``report.html`` with plots (PNG embedded, no external files).

A missing value (``None``, NaN) is shown as :data:`MISSING` everywhere, and a table that
has one says what it means under it. Terminal tables never cut a value: a table too wide
for the console is printed transposed or as one block per row (:func:`print_rows`).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import polars as pl
    from rich.console import Console

MISSING = "—"
DEFAULT_MISSING = "no value: not measured in this run"


def is_missing(value: object) -> bool:
    """None or a float NaN (numpy floats included)."""
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def fmt_value(value: object) -> str:
    """Floats to 4 significant digits, integers with thousands separators, a missing value
    (None, NaN) as ``—``."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    return str(value)


def mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``"0.7812 ± 0.0010"`` over the finite values (sample std; one value has no ``±``;
    none is ``—``)."""
    arr = np.asarray([v for v in values if not is_missing(v)], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return MISSING
    if arr.size == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


@dataclass
class Section:
    """One part of a report: a heading, a table (list of row dicts), notes and figures
    (matplotlib figures, embedded as PNG).

    ``missing`` says what a ``—`` cell of this table means (default: not measured);
    ``empty`` says why a section has nothing to show. A section without rows, notes,
    figures or ``empty`` is left out.
    """

    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""
    figures: list[Any] = field(default_factory=list)
    missing: str = ""
    empty: str = ""

    def legend(self) -> str:
        """``"— = …"`` when a cell of the table is missing, else ``""``."""
        if any(is_missing(v) or v == MISSING for row in self.rows for v in row.values()):
            return f"{MISSING} = {self.missing or DEFAULT_MISSING}"
        return ""

    def shown(self) -> bool:
        return bool(self.rows or self.notes or self.figures or self.empty)


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table over the union of the rows' keys (a key a row
    lacks is an empty cell)."""
    if not rows:
        return ""
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += [
        "| " + " | ".join(fmt_value(r[c]) if c in r else "" for c in cols) + " |" for r in rows
    ]
    return "\n".join(lines)


_NUMBER = re.compile(r"[-+−]?[\d,]*\.?\d+(e[-+]?\d+)?( ± [\d.]+)?")


def _html_table(rows: Sequence[dict[str, Any]]) -> str:
    """An HTML table; columns whose every value is a number (or missing) align right."""
    if not rows:
        return ""
    cols = _columns(rows)
    text = [[fmt_value(r[c]) if c in r else "" for c in cols] for r in rows]
    numeric = [
        all(t in ("", MISSING) or _NUMBER.fullmatch(t) for t in column)
        and any(t not in ("", MISSING) for t in column)
        for column in zip(*text, strict=True)
    ]
    attr = [" class='num'" if n else "" for n in numeric]
    head = "".join(f"<th{a}>{html.escape(str(c))}</th>" for c, a in zip(cols, attr, strict=True))
    body = "".join(
        "<tr>"
        + "".join(f"<td{a}>{html.escape(t)}</td>" for t, a in zip(row, attr, strict=True))
        + "</tr>"
        for row in text
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _png(figure: Any) -> str:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left}.num{text-align:right}th{background:#f3f3f3}"
    "pre{white-space:pre-wrap;background:#fafafa;padding:8px}"
    "p.legend,p.empty{color:#555;font-size:90%}img{max-width:100%;height:auto;margin:0 1em 1em 0}"
)


def write_report(out_dir: str | Path, title: str, sections: Sequence[Section]) -> dict[str, Path]:
    """Write ``results.md`` and ``report.html`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", ""]
    page = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    page += [f"<style>{_STYLE}</style><h1>{html.escape(title)}</h1>"]
    for sec in sections:
        if not sec.shown():
            continue
        md += [f"## {sec.title}", ""]
        page.append(f"<h2>{html.escape(sec.title)}</h2>")
        if sec.notes:
            md += [sec.notes, ""]
            page.append(f"<pre>{html.escape(sec.notes)}</pre>")
        if sec.rows:
            md += [markdown_table(sec.rows), ""]
            page.append(_html_table(sec.rows))
            if legend := sec.legend():
                md += [f"*{legend}*", ""]
                page.append(f"<p class='legend'>{html.escape(legend)}</p>")
        elif sec.empty and not sec.figures:
            md += [f"*{sec.empty}*", ""]
            page.append(f"<p class='empty'>{html.escape(sec.empty)}</p>")
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


# --------------------------------------------------------------------------- terminal


def print_rows(
    console: Console, title: str, rows: Sequence[Mapping[str, Any]], *, missing: str = ""
) -> None:
    """Print rows as a rich table that never cuts a value: as it is when it fits the
    console's width, else transposed (one column per row), else one block per row. A
    ``—`` cell gets a legend line (``missing``: what it means)."""
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    if not rows:
        return
    cols = _columns(rows)
    cells = [[Text(fmt_value(r[c]) if c in r else "") for c in cols] for r in rows]

    def fits(table: Table) -> bool:  # the narrowest it can be without cutting a word
        unbounded = console.options.update_width(10_000)
        return Measurement.get(console, unbounded, table).minimum <= console.width

    wide = Table(title=Text(title))
    for c in cols:
        wide.add_column(Text(str(c)), overflow="fold")
    for row in cells:
        wide.add_row(*row)
    layouts = [wide]
    if len(rows) <= 6:  # transposed: the first column's values head the columns
        tall = Table(title=Text(title))
        tall.add_column(Text(str(cols[0])), overflow="fold")
        for row in cells:
            tall.add_column(row[0], overflow="fold")
        for j, c in enumerate(cols[1:], start=1):
            tall.add_row(Text(str(c)), *(row[j] for row in cells))
        layouts.append(tall)
    chosen = next((t for t in layouts if fits(t)), None)
    if chosen is not None:
        console.print(chosen)
    else:  # one key/value block per row
        console.print(Text(title, style="italic"), justify="center")
        for row in cells:
            name = Text(f"{cols[0]}: ") + row[0]
            block = Table(title=name, show_header=False, title_justify="left")
            block.add_column(overflow="fold")
            block.add_column(overflow="fold")
            for c, cell in zip(cols[1:], row[1:], strict=True):
                block.add_row(Text(str(c)), cell)
            console.print(block)
    legend = Section(title, [dict(r) for r in rows], missing=missing).legend()
    if legend:
        console.print(legend, style="dim", markup=False)


# --------------------------------------------------------------------------- figures


def group_figure(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    errors: Mapping[str, Sequence[float]] | None = None,
    ylabel: str,
    title: str,
    points: bool = False,
    legend: bool | None = None,
) -> Any:
    """A small figure of one value per (group, series): side-by-side bars, or dots when
    ``points`` (for metrics such as AUC whose differences are small next to their size),
    with error bars from ``errors``; missing values are left out. ``legend``: name the
    series (default: when there are several)."""
    from matplotlib.figure import Figure  # not pyplot: nothing keeps the figure open

    per_group = 1.2 if points else 0.9 * max(1, len(series))  # dots sit close together
    fig = Figure(figsize=(max(3.2, per_group * len(groups)), 2.8))
    ax = fig.subplots()
    x = np.arange(len(groups), dtype=float)
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        pos = x - 0.4 + width * (k + 0.5)
        y = np.asarray([np.nan if is_missing(v) else v for v in values], dtype=float)
        err = None if errors is None or name not in errors else np.asarray(errors[name], float)
        ok = np.isfinite(y)
        e = None if err is None else np.nan_to_num(err[ok])
        if points:
            ax.errorbar(pos[ok], y[ok], yerr=e, fmt="o", capsize=3, ms=5, label=name)
        else:
            bars = ax.bar(pos[ok], y[ok], width * 0.9, yerr=e, capsize=3, label=name)
            ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
    ax.set_xticks(x, [str(g) for g in groups], fontsize=8, rotation=20 if len(groups) > 4 else 0)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1 if legend is None else legend:
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def summary_figure(
    frame: pl.DataFrame,
    x: str,
    value: str | Mapping[str, str],
    *,
    hue: str | None = None,
    ylabel: str,
    title: str,
    points: bool = True,
) -> Any | None:
    """:func:`group_figure` of the mean ± std (sample std; NaN and null left out) of
    ``value`` per ``x`` and ``hue``, in order of appearance. ``value`` may map series
    names to columns (e.g. ``{"warm": "test_warm_auc", "cold": "test_cold_auc"}``);
    absent columns are skipped. None when there is no value to plot."""
    import polars as pl

    columns = {value: value} if isinstance(value, str) else dict(value)
    columns = {name: c for name, c in columns.items() if c in frame.columns}
    if not columns:
        return None

    def series_name(name: str) -> pl.Expr:  # "<hue> · <column's name>", either alone
        parts = [pl.col(hue).cast(pl.String)] if hue else []
        parts += [pl.lit(name)] if len(columns) > 1 or not hue else []
        return pl.concat_str(parts, separator=" · ").alias("__series")

    long = pl.concat(
        frame.select(
            pl.col(x).cast(pl.String).alias("__x"),
            series_name(name),
            pl.col(c).cast(pl.Float64).alias("__value"),
        )
        for name, c in columns.items()
    )
    rows = long.filter(pl.col("__value").is_not_null() & pl.col("__value").is_not_nan())
    if rows.is_empty():
        return None
    stats = rows.group_by("__x", "__series", maintain_order=True).agg(
        mean=pl.col("__value").mean(), std=pl.col("__value").std().fill_null(0.0)
    )
    groups = stats["__x"].unique(maintain_order=True).to_list()
    series: dict[str, list[float]] = {}
    errors: dict[str, list[float]] = {}
    for name in stats["__series"].unique(maintain_order=True).to_list():
        sub = stats.filter(pl.col("__series") == name)
        lookup = {r["__x"]: (r["mean"], r["std"]) for r in sub.iter_rows(named=True)}
        series[name] = [lookup.get(g, (math.nan, 0.0))[0] for g in groups]
        errors[name] = [lookup.get(g, (math.nan, 0.0))[1] for g in groups]
    return group_figure(
        groups,
        series,
        errors=errors,
        ylabel=ylabel,
        title=title,
        points=points,
        legend=hue is not None or len(columns) > 1,
    )
