"""The golden set G of the Explore judge (docs/explore.md): human Good/Bad labels of
(trigger, candidate) pairs.

File format: a UTF-8 CSV with a header line::

    trigger_id,candidate_id,label,kind,note
    1,3114,Good,easy_good,direct sequel
    1,2858,Bad,hard_coengaged_bad,adult drama co-rated by the same blockbuster audience

Only ``trigger_id``, ``candidate_id`` and ``label`` are required::

    trigger_id,candidate_id,label
    1,3114,1
    1,2858,0

``trigger_id`` / ``candidate_id`` are item ids (strings, as everywhere in knowrec);
``label`` is ``Good`` or ``Bad`` (read case-insensitively, written capitalised) or ``1`` /
``0`` (Good / Bad); ``kind`` (optional; empty or absent: ``unspecified``) is a lowercase
tag of why the pair is in the set (:data:`KINDS` lists the usual ones; others are allowed
so a new set can add its own); ``note`` is optional free text. Other columns are kept as
strings. A pair is directed: (a, b) and (b, a) are different pairs.

:func:`load_golden` validates everything and names the file, line and column of the first
problem; :func:`load_pairs` reads the same layout without labels (the input of
``knowrec judge label``); :func:`save_golden` writes a set back; :class:`LabelFile` appends
one label at a time (a killed labelling session loses nothing) and :func:`label_pairs`
is the terminal labelling loop. :func:`pairwise_pairs` forms the (Good, Bad) pairs of
each trigger that pairwise accuracy counts, and :func:`golden_pairwise_accuracy` scores a
judge with :func:`knowrec.metrics.pairwise_accuracy`, grouped by trigger.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from knowrec.data.tables import Dataset
from knowrec.errors import ConfigError, DataFormatError, UnknownIdError

if TYPE_CHECKING:
    from rich.console import Console

COLUMNS = ("trigger_id", "candidate_id", "label", "kind", "note")
REQUIRED = ("trigger_id", "candidate_id", "label")
PAIR_COLUMNS = ("trigger_id", "candidate_id")
LABELS = ("Good", "Bad")
LABEL_CODES = {"1": "Good", "0": "Bad"}  # the 1 / 0 spelling of a label
DEFAULT_KIND = "unspecified"
KINDS: dict[str, str] = {
    "easy_good": "an obvious Good (sequel, same series, near-identical appeal)",
    "easy_bad": "an obvious Bad (unrelated audience, tone or subject; rarely co-engaged)",
    "coengaged_good": "strongly co-engaged and a Good recommendation",
    "hard_coengaged_bad": "strongly co-engaged but a Bad recommendation",
    "hard_rare_good": "rarely co-engaged but a Good recommendation",
    "hard_similar_bad": "looks similar (genre, director, cast, keywords) but a Bad one",
    "unspecified": "no kind given (the default of `knowrec judge label`)",
}
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")

ItemsLike = pl.DataFrame | Dataset | Iterable[str]


class UnknownGoldenIdError(DataFormatError, UnknownIdError):
    """A golden-set or pairs file names an item id that the items table does not have."""


# --------------------------------------------------------------------------- reading


@dataclass
class _Rows:
    """A parsed CSV: header, the line the header ends on, and each row's first line, last
    line (they differ only for quoted multi-line cells) and fields."""

    header: list[str]
    header_end: int
    rows: list[tuple[int, int, list[str]]]


def _read_rows(path: Path, required: Iterable[str]) -> _Rows:
    """Header and rows of a CSV with exact 1-based line numbers; blank lines skipped."""
    if not path.is_file():
        raise DataFormatError("file not found", path=path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = f"{exc.reason} at byte {exc.start}"
        raise DataFormatError(f"not UTF-8 text ({where})", path=path) from exc
    except OSError as exc:
        raise DataFormatError(f"cannot read ({exc})", path=path) from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, int, list[str]]] = []
    header: list[str] | None = None
    header_end = 1
    end = 0
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue  # blank lines are allowed anywhere
            if header is None:
                header, header_end = [f.strip() for f in fields], end
                continue
            rows.append((start, end, fields))
    except csv.Error as exc:
        raise DataFormatError(f"malformed CSV ({exc})", path=path, line=end + 1) from exc
    if header is None:
        raise DataFormatError("file is empty (expected a header line)", path=path)
    seen: set[str] = set()
    for name in header:
        if name in seen or not name:
            what = "an empty column name" if not name else f"the column {name!r} twice"
            raise DataFormatError(f"the header has {what}", path=path, line=header_end)
        seen.add(name)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(
            f"missing column(s) {missing}; the header has {header} (expected "
            f"{', '.join(REQUIRED)}; optional: kind, note)",
            path=path,
            line=header_end,
            column=missing[0],
        )
    for start, _, fields in rows:
        if len(fields) != len(header):
            raise DataFormatError(
                f"expected {len(header)} comma-separated fields, found {len(fields)}",
                path=path,
                line=start,
            )
    return _Rows(header, header_end, rows)


def _item_ids(items: ItemsLike | None) -> set[str] | None:
    if items is None:
        return None
    if isinstance(items, Dataset):
        items = items.items
    if isinstance(items, pl.DataFrame):
        if "item_id" not in items.columns:
            raise ConfigError(f"the items table has no item_id column (has {items.columns})")
        return set(items["item_id"].cast(pl.String).to_list())
    return {str(i) for i in items}


def _parse(path: str | Path, items: ItemsLike | None, *, labelled: bool) -> pl.DataFrame:
    """Rows of a golden/pairs file as a string DataFrame, validated."""
    p = Path(path)
    parsed = _read_rows(p, REQUIRED if labelled else PAIR_COLUMNS)
    header = parsed.header
    known = _item_ids(items)
    idx = {name: i for i, name in enumerate(header)}
    records: dict[str, list[str | None]] = {name: [] for name in header}
    first: dict[tuple[str, str], int] = {}
    for line, _, fields in parsed.rows:
        values = {name: fields[i].strip() for name, i in idx.items()}
        _check_pair(values["trigger_id"], values["candidate_id"], p, line, first, known)
        if labelled:
            values["label"] = _check_label(values["label"], p, line)
        if "kind" in values:
            values["kind"] = _check_kind(values["kind"], p, line, required=False)
        for name in header:
            value: str | None = values[name]
            records[name].append(value if value or name in REQUIRED else None)
    frame = pl.DataFrame(records, schema={name: pl.String for name in header})
    return frame


def _check_pair(
    trigger: str | None,
    candidate: str | None,
    path: Path | None,
    line: int,
    first: dict[tuple[str, str], int],
    known: set[str] | None = None,
) -> None:
    """Ids present (and known), not an item with itself, not seen before (``first`` maps
    each pair seen so far to its line and is updated)."""
    for col, value in (("trigger_id", trigger), ("candidate_id", candidate)):
        if not value:
            raise DataFormatError("empty item id", path=path, line=line, column=col)
        if known is not None and value not in known:
            raise UnknownGoldenIdError(
                f"unknown item id {value!r} (not in the items table)",
                path=path,
                line=line,
                column=col,
            )
    assert trigger and candidate
    pair = (trigger, candidate)
    if trigger == candidate:
        raise DataFormatError(
            f"a pair of an item with itself (trigger_id = candidate_id = {trigger!r})",
            path=path,
            line=line,
            column="candidate_id",
        )
    if pair in first:
        raise DataFormatError(
            f"duplicate pair (trigger_id={trigger!r}, candidate_id={candidate!r}); "
            f"first at line {first[pair]}",
            path=path,
            line=line,
        )
    first[pair] = line


def _check_label(value: str, path: Path | None, line: int | None) -> str:
    for label in LABELS:
        if value.lower() == label.lower():
            return label
    if value in LABEL_CODES:
        return LABEL_CODES[value]
    shown = "an empty label" if not value else f"unknown label {value!r}"
    raise DataFormatError(
        f"{shown}; expected Good or Bad (or 1 / 0)", path=path, line=line, column="label"
    )


def _check_kind(value: str, path: Path | None, line: int | None, *, required: bool) -> str:
    if not value and not required:
        return value
    if not _KIND.match(value):
        shown = "an empty kind" if not value else f"kind {value!r} is not a lowercase tag"
        raise DataFormatError(
            f"{shown} (use e.g. {', '.join(list(KINDS)[:4])})",
            path=path,
            line=line,
            column="kind",
        )
    return value


def _ordered(frame: pl.DataFrame, base: Iterable[str]) -> pl.DataFrame:
    base = [c for c in base if c in frame.columns]
    return frame.select(*base, *[c for c in frame.columns if c not in base])


def load_golden(path: str | Path, items: ItemsLike | None = None) -> pl.DataFrame:
    """Read and validate a golden-set CSV.

    Returns one row per pair in file order with the string columns ``trigger_id``,
    ``candidate_id``, ``label`` (``"Good"``/``"Bad"``), ``kind``, ``note`` (null when empty)
    and any extra columns. ``items`` (a :class:`Dataset`, an items table with ``item_id``,
    or ids) makes every id checked against it. Problems raise :class:`DataFormatError`
    (:class:`UnknownGoldenIdError` for unknown ids) naming the file, line and column.
    """
    return _ordered(_with_kind_and_note(_parse(path, items, labelled=True)), COLUMNS)


def load_pairs(path: str | Path, items: ItemsLike | None = None) -> pl.DataFrame:
    """Read pairs to label: the golden layout where only ``trigger_id`` and ``candidate_id``
    are required (a ``label`` column, if any, is kept unchecked). ``kind`` defaults to
    ``"unspecified"``; same validation as :func:`load_golden` otherwise."""
    frame = _with_kind_and_note(_parse(path, items, labelled=False))
    return _ordered(frame, (*PAIR_COLUMNS, "kind", "note"))


def _with_kind_and_note(frame: pl.DataFrame) -> pl.DataFrame:
    """``kind`` (:data:`DEFAULT_KIND` when absent or empty) and ``note`` (null when absent)."""
    kind = pl.col("kind") if "kind" in frame.columns else pl.lit(None, dtype=pl.String)
    note = pl.col("note") if "note" in frame.columns else pl.lit(None, dtype=pl.String)
    return frame.with_columns(
        kind=pl.when(kind.is_null() | (kind == "")).then(pl.lit(DEFAULT_KIND)).otherwise(kind),
        note=note,
    )


# --------------------------------------------------------------------------- writing


def validate_golden(golden: pl.DataFrame, *, source: str | Path | None = None) -> pl.DataFrame:
    """Check an in-memory golden set like :func:`load_golden` checks a file (lines are the
    lines it would have in a saved file); return it with labels normalised."""
    missing = [c for c in REQUIRED if c not in golden.columns]
    if missing:
        raise DataFormatError(
            f"missing column(s) {missing}; has {golden.columns}", path=source, column=missing[0]
        )
    path = None if source is None else Path(source)
    golden = _with_kind_and_note(golden) if "kind" not in golden.columns else golden
    golden = golden.with_columns(
        pl.col(c).cast(pl.String).str.strip_chars() for c in ("trigger_id", "candidate_id", "kind")
    )
    rows = golden.select(pl.col(c).cast(pl.String) for c in (*REQUIRED, "kind")).rows()
    first: dict[tuple[str, str], int] = {}
    labels: list[str] = []
    for i, (trigger, candidate, label, kind) in enumerate(rows):
        line = i + 2
        _check_pair(trigger, candidate, path, line, first)
        labels.append(_check_label((label or "").strip(), path, line))
        _check_kind(kind or "", path, line, required=True)
    return golden.with_columns(label=pl.Series(labels, dtype=pl.String))


def _clean_cell(value: Any) -> str:
    """One CSV cell on one line (notes may not span lines, so line numbers stay exact)."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def save_golden(golden: pl.DataFrame, path: str | Path) -> Path:
    """Validate and write a golden set (columns in :data:`COLUMNS` order, then extras);
    the file is replaced atomically. Notes are flattened to one line."""
    frame = validate_golden(golden, source=path)
    if "note" not in frame.columns:
        frame = frame.with_columns(note=pl.lit(None, dtype=pl.String))
    frame = _ordered(frame, COLUMNS)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(frame.columns)
        for row in frame.iter_rows():
            writer.writerow([_clean_cell(v) for v in row])
    tmp.replace(out)
    return out


class LabelFile:
    """A golden-set file written one label at a time.

    Every :meth:`append` writes, flushes and fsyncs one complete line, so a killed session
    loses nothing; :meth:`pop` removes the last row (undo). The header is written when the
    file is created; an existing file is validated with :func:`load_golden` first and its
    own columns are kept (a note typed for a file without a ``note`` column is dropped).
    """

    def __init__(self, path: str | Path, items: ItemsLike | None = None) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.stat().st_size > 0:
            self.columns = _read_rows(self.path, REQUIRED).header
            self.rows = load_golden(self.path, items).select(self.columns)
        else:
            self.columns = list(COLUMNS)
            self.rows = pl.DataFrame(schema={c: pl.String for c in COLUMNS})

    def labelled(self) -> list[tuple[str, str]]:
        """The (trigger_id, candidate_id) pairs in the file, in file order."""
        return list(self.rows.select(PAIR_COLUMNS).iter_rows())

    def append(
        self, trigger_id: str, candidate_id: str, label: str, kind: str, note: str | None = None
    ) -> None:
        """Append one labelled pair (validated like a file row) and sync it to disk."""
        row = {
            "trigger_id": _clean_cell(trigger_id),
            "candidate_id": _clean_cell(candidate_id),
            "label": _check_label(label.strip(), self.path, None),
            "kind": _check_kind(kind.strip(), self.path, None, required=True),
            "note": _clean_cell(note),
        }
        pair = (row["trigger_id"], row["candidate_id"])
        if not pair[0] or not pair[1] or pair[0] == pair[1]:
            raise DataFormatError(f"not a pair of two item ids: {pair}", path=self.path)
        if pair in set(self.labelled()):
            raise DataFormatError(f"pair {pair} is already labelled", path=self.path)
        values = [row.get(c, "") for c in self.columns]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer.writerow(self.columns)
        elif not self.path.read_bytes().endswith(b"\n"):
            buf.write("\n")  # a hand-edited file without a final newline
        writer.writerow(values)
        with self.path.open("a", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        cells = {
            c: [v or (v if c in REQUIRED else None)]
            for c, v in zip(self.columns, values, strict=True)
        }
        self.rows = pl.concat([self.rows, pl.DataFrame(cells, schema=self.rows.schema)])

    def pop(self) -> dict[str, Any] | None:
        """Remove the last row from the file and return it (None when there is none)."""
        if self.rows.height == 0:
            return None
        parsed = _read_rows(self.path, REQUIRED)
        keep = parsed.rows[-2][1] if len(parsed.rows) > 1 else parsed.header_end
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)[:keep]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        last = self.rows.row(-1, named=True)
        self.rows = self.rows.head(self.rows.height - 1)
        return last


# --------------------------------------------------------------------------- pairwise


def pairwise_pairs(golden: pl.DataFrame) -> pl.DataFrame:
    """Every (Good, Bad) pair of candidates of the same trigger: the pairs that pairwise
    accuracy on G counts (with binary labels these are all differently-labelled
    pairs). Columns ``trigger_id, good_id, bad_id, good_kind, bad_kind``, sorted by
    trigger, then by the golden set's row order. A trigger with only Good or only Bad
    candidates contributes nothing."""
    g = golden.with_row_index("__row").select(
        "__row", "trigger_id", "candidate_id", "label", "kind"
    )
    good = g.filter(pl.col("label") == "Good").rename(
        {"candidate_id": "good_id", "kind": "good_kind", "__row": "__good"}
    )
    bad = g.filter(pl.col("label") == "Bad").rename(
        {"candidate_id": "bad_id", "kind": "bad_kind", "__row": "__bad"}
    )
    pairs = good.drop("label").join(bad.drop("label"), on="trigger_id", how="inner")
    first = g.group_by("trigger_id").agg(pl.col("__row").min().alias("__first"))
    return (
        pairs.join(first, on="trigger_id")
        .sort("__first", "__good", "__bad")
        .select("trigger_id", "good_id", "bad_id", "good_kind", "bad_kind")
    )


def golden_scores(golden: pl.DataFrame, scores: pl.DataFrame | ArrayLike) -> np.ndarray:
    """A judge's scores aligned with the golden rows: either an array in row order, or a
    table ``(trigger_id, candidate_id, score)``; a golden pair without a score raises."""
    if not isinstance(scores, pl.DataFrame):
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim != 1 or arr.shape[0] != golden.height:
            raise ConfigError(
                f"scores must be 1-D with one value per golden pair ({golden.height}), "
                f"got shape {arr.shape}"
            )
        return arr
    for col in (*PAIR_COLUMNS, "score"):
        if col not in scores.columns:
            raise ConfigError(f"the score table has no column {col!r} (has {scores.columns})")
    table = scores.select(pl.col(c).cast(pl.String) for c in PAIR_COLUMNS).with_columns(
        score=scores["score"].cast(pl.Float64)
    )
    if table.select(pl.struct(PAIR_COLUMNS).is_duplicated().any()).item():
        raise ConfigError("the score table has a (trigger_id, candidate_id) pair twice")
    joined = golden.select(PAIR_COLUMNS).join(table, on=list(PAIR_COLUMNS), how="left")
    missing = joined.filter(pl.col("score").is_null())
    if missing.height:
        t, c = missing.row(0)[:2]
        raise UnknownIdError(
            f"{missing.height} golden pair(s) have no score, e.g. (trigger_id={t!r}, "
            f"candidate_id={c!r})"
        )
    return joined["score"].to_numpy()


def golden_pairwise_accuracy(golden: pl.DataFrame, scores: pl.DataFrame | ArrayLike) -> float:
    """Pairwise accuracy of a judge on G: the share of the :func:`pairwise_pairs` (Good, Bad)
    pairs whose Good candidate scores higher (ties count 1/2), computed by
    :func:`knowrec.metrics.pairwise_accuracy` grouped by trigger."""
    from knowrec.metrics import pairwise_accuracy

    y = (golden["label"] == "Good").cast(pl.Float64).to_numpy()
    return pairwise_accuracy(y, golden_scores(golden, scores), golden["trigger_id"].to_numpy())


def golden_report(
    golden: pl.DataFrame,
    scores: pl.DataFrame | ArrayLike,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """How well a judge's scores order the golden pairs (every golden pair needs a score).

    ``accuracy``: :func:`golden_pairwise_accuracy` (within each trigger), with a 95%
    bootstrap interval over triggers (``accuracy_low`` / ``accuracy_high``: triggers
    resampled with replacement ``bootstrap`` times); ``accuracy_hard`` / ``accuracy_easy``:
    the same on the (Good, Bad) pairs with / without a ``hard_*`` kind on either side;
    ``accuracy_across``: any Good candidate above any Bad one, whatever their triggers
    (AUC: absolute scores comparable across triggers, which a quality threshold needs);
    ``good_bad_pairs`` and ``hard_pairs``: how many pairs were counted.
    """
    from knowrec.metrics import auc

    s = golden_scores(golden, scores)
    scored = golden.select(*PAIR_COLUMNS, score=pl.Series(s, dtype=pl.Float64))
    pp = pairwise_pairs(golden)
    if pp.height == 0:
        nan = float("nan")
        keys = ("accuracy", "accuracy_low", "accuracy_high", "accuracy_hard", "accuracy_easy")
        return {
            **dict.fromkeys(keys, nan),
            "accuracy_across": nan,
            "good_bad_pairs": 0,
            "hard_pairs": 0,
        }
    side = {k: scored.rename({"candidate_id": f"{k}_id", "score": k}) for k in ("good", "bad")}
    joined = pp.join(side["good"], on=["trigger_id", "good_id"]).join(
        side["bad"], on=["trigger_id", "bad_id"]
    )
    good, bad = joined["good"].to_numpy(), joined["bad"].to_numpy()
    ordered = (good > bad) + 0.5 * (good == bad)
    hard = (
        joined["good_kind"].str.starts_with("hard_") | joined["bad_kind"].str.starts_with("hard_")
    ).to_numpy()
    codes = joined["trigger_id"].rank("dense").cast(pl.Int64).to_numpy() - 1
    n_triggers = int(codes.max()) + 1
    hits = np.bincount(codes, weights=ordered, minlength=n_triggers)
    counts = np.bincount(codes, minlength=n_triggers).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_triggers, size=(bootstrap, n_triggers))
    boot = hits[draws].sum(axis=1) / counts[draws].sum(axis=1)
    y = (golden["label"] == "Good").to_numpy()
    return {
        "accuracy": float(ordered.mean()),
        "accuracy_low": float(np.quantile(boot, 0.025)),
        "accuracy_high": float(np.quantile(boot, 0.975)),
        "accuracy_hard": float(ordered[hard].mean()) if hard.any() else float("nan"),
        "accuracy_easy": float(ordered[~hard].mean()) if (~hard).any() else float("nan"),
        "accuracy_across": auc(y, s) if 0 < y.sum() < y.size else float("nan"),
        "good_bad_pairs": int(pp.height),
        "hard_pairs": int(hard.sum()),
    }


# --------------------------------------------------------------------------- labelling

HELP = (
    "g = Good, b = Bad (text after the letter is kept as a note, e.g. 'b tone clash'), "
    "s = skip, u = undo the last label, q = quit"
)


def _item_view(item: Mapping[str, Any] | None, item_id: str, chars: int) -> str:
    from rich.markup import escape

    if item is None:
        return f"[bold]item {escape(item_id)}[/bold]\n(no details in the items table)"
    title = item.get("title") or f"item {item_id}"
    head = f"[bold]{escape(str(title))}[/bold]"
    if item.get("year") is not None:
        head += f" ({item['year']})"
    parts = [head, f"[dim]id {escape(item_id)}[/dim]"]
    for key in ("genres", "topics", "category"):
        value = item.get(key)
        if isinstance(value, list | tuple):
            value = ", ".join(map(str, value))
        if value:
            parts.append(f"[cyan]{escape(str(value))}[/cyan]")
    text = " ".join(str(item.get("text") or "").split())
    if text:
        cut = text if len(text) <= chars else text[:chars].rsplit(" ", 1)[0] + " …"
        parts.append("\n" + escape(cut))
    return "\n".join(parts)


def label_pairs(
    pairs: pl.DataFrame,
    items: pl.DataFrame,
    out: LabelFile,
    *,
    console: Console,
    read: Callable[[str], str] = input,
    chars: int = 400,
) -> dict[str, int]:
    """The terminal labelling loop of ``knowrec judge label``.

    Shows each pair of ``pairs`` not yet in ``out`` (trigger and candidate side by side),
    reads g/b/s/u/q answers with ``read`` and appends each label to ``out`` at once. The
    queue starts after the pair labelled last, so a re-run resumes where the previous
    session stopped; pairs skipped earlier come after the rest. End of input = quit.
    Returns counts: labelled (this session), skipped, undone, total, done, left.
    """
    from rich.panel import Panel
    from rich.table import Table

    keys = list(pairs.select(PAIR_COLUMNS).iter_rows())
    meta = {k: r for k, r in zip(keys, pairs.iter_rows(named=True), strict=True)}
    position = {k: i for i, k in enumerate(keys)}
    done = out.labelled()
    done_set = set(done)
    todo = [i for i, k in enumerate(keys) if k not in done_set]
    last = max((position[k] for k in done[-1:] if k in position), default=-1)
    queue = deque([i for i in todo if i > last] + [i for i in todo if i < last])
    wanted = {k for pair in keys for k in pair}
    lookup = {
        row["item_id"]: row
        for row in items.filter(pl.col("item_id").is_in(list(wanted))).iter_rows(named=True)
    }
    counts = {"labelled": 0, "skipped": 0, "undone": 0}
    session: set[tuple[str, str]] = set()  # labelled in this session and not undone
    say = partial(console.print, markup=False, highlight=False)
    say(f"{len(keys)} pairs, {len(keys) - len(todo)} already labelled in {out.path}")
    say(HELP)
    while queue:
        i = queue[0]
        trigger, candidate = keys[i]
        n_done = len(keys) - len(queue)
        console.rule(f"pair {n_done + 1} of {len(keys)} ({len(queue)} left)", style="dim")
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(ratio=1)
        grid.add_column(ratio=1)
        grid.add_row(
            Panel(_item_view(lookup.get(trigger), trigger, chars), title="just watched"),
            Panel(_item_view(lookup.get(candidate), candidate, chars), title="recommended next?"),
        )
        console.print(grid)
        try:
            answer = read("label g/b/s/u/q: ").strip()
        except EOFError:
            answer = "q"
        key, _, note = answer.partition(" ")
        key = key.lower()
        if key in ("g", "b"):
            row = meta[keys[i]]
            notes = [n for n in (row.get("note"), note.strip()) if n]
            out.append(
                trigger,
                candidate,
                "Good" if key == "g" else "Bad",
                row.get("kind") or DEFAULT_KIND,
                "; ".join(notes) or None,
            )
            queue.popleft()
            session.add((trigger, candidate))
        elif key == "s":
            queue.popleft()
            counts["skipped"] += 1
        elif key == "u":
            last_row = out.rows.row(-1, named=True) if out.rows.height else None
            pair = None if last_row is None else (last_row["trigger_id"], last_row["candidate_id"])
            if pair is None or pair not in position:
                say(
                    "nothing to undo"
                    if pair is None
                    else "the last label in the file is not one of these pairs; not undone"
                )
                continue
            out.pop()
            session.discard(pair)
            queue.appendleft(position[pair])
            counts["undone"] += 1
            say(f"undid the {last_row['label']} label of {pair[0]} → {pair[1]}")
        elif key == "q":
            break
        else:
            say(f"unknown answer {answer!r}: {HELP}")
    counts["labelled"] = len(session)
    labelled = set(out.labelled())
    done_now = sum(k in labelled for k in keys)
    result = {**counts, "total": len(keys), "done": done_now, "left": len(keys) - done_now}
    say(
        f"labelled {counts['labelled']} this session; {done_now} of {len(keys)} pairs are in "
        f"{out.path}"
        + (
            f"; {result['left']} left (run the same command again to go on)"
            if result["left"]
            else ""
        )
    )
    return result
