"""Attach item text (plots, articles, metadata) from a CSV to a data set's items.

Two ways to match rows to items: by item id, or by normalised title + year, which copes
with MovieLens conventions such as "Matrix, The (1999)", alternative titles in brackets
("Seven (Se7en)"), accents, punctuation, and a release year that is off by one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from knowrec.data.generic import Table, _unique_ids
from knowrec.data.tables import Dataset, conform
from knowrec.errors import ConfigError, DataFormatError

ARTICLES = (
    "the", "a", "an", "les", "la", "le", "l'", "il", "el", "los", "las", "die", "der", "das",
    "den", "det", "de", "het", "lo", "i", "gli", "o", "os", "as", "um", "una", "un", "une",
)  # fmt: skip
_TRAILING_ARTICLE = re.compile(r"^(.*),\s*(" + "|".join(map(re.escape, ARTICLES)) + r")$")
_BRACKETS = re.compile(r"[\(\[]([^\)\]]*)[\)\]]")
_NON_WORD = re.compile(r"[^\w]+")


def _clean(title: str) -> str:
    m = _TRAILING_ARTICLE.match(title.strip())
    if m:
        title = f"{m.group(2)} {m.group(1)}"
    title = title.replace("&", " and ")
    return _NON_WORD.sub(" ", title).strip()


def title_keys(title: str | None) -> list[str]:
    """Normalised keys of a title: the main title first, then bracketed alternatives.

    >>> title_keys("City of Lost Children, The (Cité des enfants perdus, La)")
    ['the city of lost children', 'la cite des enfants perdus']
    """
    if not title:
        return []
    text = unicodedata.normalize("NFKD", title)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"\s*\(\d{4}\)\s*$", "", text)  # a trailing "(1999)" is the year, not a title
    alternatives = [a for a in _BRACKETS.findall(text) if not a.strip().startswith("a.k.a")]
    alternatives += [a.split("a.k.a.", 1)[1] for a in _BRACKETS.findall(text) if "a.k.a." in a]
    main = _BRACKETS.sub(" ", text)
    keys = [_clean(main)] + [_clean(a) for a in alternatives]
    return list(dict.fromkeys(k for k in keys if k))


@dataclass
class JoinReport:
    """How the rows of a separate file (item texts, an items table) met the data set's
    items: how many items found a row, by which rule, examples of those that did not, and
    the file's rows that matched no item."""

    source: str = ""
    what: Literal["texts", "items"] = "texts"  # item texts, or an items table
    items: int = 0
    matched: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    unmatched_examples: list[str] = field(default_factory=list)
    unused_rows: int = 0
    unused_examples: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return self.matched / self.items if self.items else 0.0

    def __str__(self) -> str:
        """One line: coverage, examples of items without a row, rows that matched none."""
        items = "logged items" if self.what == "items" else "items"
        rules = "".join(f"; {n:,} by {r}" for r, n in self.by_rule.items() if r != "id")
        text = (
            f"{Path(self.source).name}: {'rows' if self.what == 'items' else 'texts'} for "
            f"{self.matched:,} of {self.items:,} {items} ({self.coverage:.1%}{rules})"
        )
        if self.unmatched_examples:
            text += f"; none for {', '.join(self.unmatched_examples[:5])}"
            text += " …" if self.items - self.matched > 5 else ""
        if self.unused_rows:
            examples = ", ".join(self.unused_examples[:5])
            text += f"; {self.unused_rows:,} row(s) match no {items[:-1]} (e.g. {examples})"
        return text

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"coverage": self.coverage}


EXAMPLES = 10  # unmatched / unused ids kept in a report


def item_coverage(
    interactions: pl.DataFrame, items: pl.DataFrame, source: str | Path
) -> JoinReport:
    """The report of an items table read from ``source``: the logged items it describes."""
    logged = interactions["item_id"].unique().sort()
    known = items["item_id"]
    found = logged.is_in(known.implode())
    unused = known.filter(~known.is_in(logged.implode()))
    return JoinReport(
        source=str(source),
        what="items",
        items=logged.len(),
        matched=int(found.sum()),
        by_rule={"id": int(found.sum())} if found.any() else {},
        unmatched_examples=logged.filter(~found).head(EXAMPLES).to_list(),
        unused_rows=unused.len(),
        unused_examples=unused.head(EXAMPLES).to_list(),
    )


def compose_text(df: pl.DataFrame, columns: list[str], *, path: str | Path) -> pl.Series:
    """One text per row: the first column as is, the others as ``"Column: value."`` lines."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"text column(s) {missing} not found; columns are {df.columns}",
            path=path,
            column=missing[0],
        )
    parts = [pl.col(columns[0]).str.strip_chars()]
    parts += [
        pl.when(pl.col(c).str.strip_chars().str.len_chars() > 0).then(
            pl.lit(f"{c}: ") + pl.col(c).str.strip_chars() + pl.lit(".")
        )
        for c in columns[1:]
    ]
    text = df.select(pl.concat_str(parts, separator="\n", ignore_nulls=True).alias("text"))
    return text["text"].str.strip_chars().replace("", None)


def join_item_text(
    data: Dataset,
    path: str | Path,
    *,
    text_columns: list[str],
    on: Literal["id", "title_year"] = "id",
    id_column: str = "item_id",
    title_column: str = "title",
    year_column: str | None = "year",
    year_tolerance: int = 1,
) -> tuple[Dataset, JoinReport]:
    """Return ``data`` with ``items.text`` filled from the table at ``path``, and a report.

    A data set without an items table (a bare interaction log) gets one: the logged item
    ids. Title matching tries, in order: exact year, year ± 1..``year_tolerance``,
    bracketed alternative titles, then a title that is unique on both sides whatever its
    year.
    """
    source = Table.read(path)
    table = source.df.with_columns(pl.col(c).cast(pl.String) for c in source.df.columns)
    texts = compose_text(table, text_columns, path=path).to_list()
    items = data.items
    if items.is_empty():
        items = data.interactions.select(pl.col("item_id").unique(maintain_order=True))
    if on == "id":
        if id_column not in table.columns:
            raise DataFormatError(
                f"missing id column {id_column!r} (set the id column: --id-column / "
                f"text_id_column); available columns: {table.columns}",
                path=path,
                line=None if source.text is None else 1,
                column=id_column,
            )
        ids = table[id_column].str.strip_chars()
        _unique_ids(source, ids, id_column)
        row_of = {i: r for r, i in enumerate(ids.to_list())}
        hits = [row_of.get(i) for i in items["item_id"].to_list()]
        hits = [h if h is not None and texts[h] is not None else None for h in hits]
        rules = ["id" if h is not None else None for h in hits]
    elif on == "title_year":
        if "title" not in items.columns:
            raise ConfigError(
                "a title_year join needs item titles and these items have none; join by id "
                '(--text-on id / text_on = "id") or read an items table with titles'
            )
        hits, rules = _match_titles(items, table, title_column, year_column, year_tolerance, path)
    else:
        raise ConfigError(f"unknown join {on!r}: use 'id' or 'title_year'")

    report = JoinReport(source=str(path), what="texts", items=items.height)
    for rule in rules:
        if rule is not None:
            report.matched += 1
            report.by_rule[rule] = report.by_rule.get(rule, 0) + 1
    names = items["title"].to_list() if "title" in items.columns else [None] * items.height
    report.unmatched_examples = [
        f"{i} ({t})" if t else str(i)
        for i, t, r in zip(items["item_id"], names, rules, strict=True)
        if r is None
    ][:EXAMPLES]
    used = set(hits)
    unused = [r for r in range(table.height) if r not in used]
    label = table[id_column] if id_column in table.columns else table[table.columns[0]]
    report.unused_rows = len(unused)
    report.unused_examples = [str(label[r]) for r in unused[:EXAMPLES]]
    joined = [None if h is None else texts[h] for h in hits]
    items = items.with_columns(pl.Series("text", joined, dtype=pl.String))
    meta = {**data.meta, "text_source": str(path), "text_coverage": report.coverage}
    out = Dataset(data.interactions, conform(items, "items"), data.users, meta)
    return out, report


def _match_titles(
    items: pl.DataFrame,
    table: pl.DataFrame,
    title_column: str,
    year_column: str | None,
    tolerance: int,
    path: str | Path,
) -> tuple[list[int | None], list[str | None]]:
    """Per item, the matching row of ``table`` (or None) and the rule that matched."""
    for col in (title_column, year_column):
        if col is not None and col not in table.columns:
            raise DataFormatError(
                f"column not found; columns are {table.columns}", path=path, column=col
            )
    src_titles = table[title_column].to_list()
    src_years = _years(table[year_column]) if year_column else [None] * table.height
    src_keys = [title_keys(t) for t in src_titles]
    index: dict[tuple[str, int | None], int] = {}
    # Main titles first, so they win over another row's bracketed alternative; then the
    # alternatives. Within a pass the first row wins.
    for main_pass in (True, False):
        for row, (keys, year) in enumerate(zip(src_keys, src_years, strict=True)):
            for key in keys[:1] if main_pass else keys[1:]:
                index.setdefault((key, year), row)

    # Last resort: a main title that occurs once on each side matches whatever the years.
    unique_src: dict[str, int] = {}
    for row, keys in enumerate(src_keys):
        if keys:
            unique_src[keys[0]] = -1 if keys[0] in unique_src else row
    item_keys = [title_keys(t) for t in items["title"].to_list()]
    item_counts: dict[str, int] = {}
    for keys in item_keys:
        if keys:
            item_counts[keys[0]] = item_counts.get(keys[0], 0) + 1

    item_years = items["year"].to_list() if "year" in items.columns else [None] * items.height
    hits: list[int | None] = []
    rules: list[str | None] = []
    for keys, year in zip(item_keys, item_years, strict=True):
        hit, rule = None, None
        offsets = [0] + [d for k in range(1, tolerance + 1) for d in (-k, k)]
        for offset in offsets if year is not None else [None]:
            y = None if offset is None else year + offset
            for rank, key in enumerate(keys):
                if (key, y) in index:
                    hit = index[(key, y)]
                    rule = ("title" if rank == 0 else "alt_title") + (
                        "" if not offset else f"_year{offset:+d}"
                    )
                    break
            if hit is not None:
                break
        if hit is None and keys and unique_src.get(keys[0], -1) >= 0 and item_counts[keys[0]] == 1:
            hit, rule = unique_src[keys[0]], "unique_title_any_year"
        hits.append(hit)
        rules.append(rule)
    return hits, rules


def _years(col: pl.Series) -> list[int | None]:
    """Years from strings such as ``"1995"`` or ``"1995.0"``; unparsable → None."""
    return col.str.strip_chars().cast(pl.Float64, strict=False).cast(pl.Int32).to_list()
