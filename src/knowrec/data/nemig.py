"""NeMig loader (news about migration, real clicks from user studies) → :class:`Dataset`.

NeMig (Iana et al., Zenodo 2022, doi:10.5281/zenodo.7442424) ships two independent data
sets, ``en/`` (US study) and ``de/`` (German study); load each directory on its own
(they share the id namespace ``news_<n>`` / ``U<n>``, so never mix them).

Source format (tab-separated, no header)

``behaviors.tsv``
    MIND's layout **without the time column**: ``ImpressionID, UserID, History
    (space-separated news ids, may be empty), Impressions (space-separated NewsID-label)``.
``news.tsv``
    ``NewsID, Title, Abstract, TitleEntities, AbstractEntities, Category, Sentiment,
    PoliticalLeaning``. Fields use standard CSV quoting (``"…"`` with ``""`` escapes), unlike
    MIND. The entity columns are Python-literal lists of ``{'SurfaceForms': …,
    'WikidataId': 'https://www.wikidata.org/wiki/Q…'}`` (parsed with ``ast.literal_eval``).
``demographics_politics.tsv`` (optional)
    one row per user with a header: ``uid, Gender (0 male, 1 female, 2 other, 3 no
    answer), Age, …, POL1 (political self-placement, 1 left … 6 centre … 11 right), …``.
``kg/*metadata_literals*.nt.bz2`` (optional)
    N-Triples ``<…/resource/news_<n>> <https://schema.org/datePublished> "DD.MM.YYYY"``
    (also ``url``, ``dateModified``).
``kg/*enriched_entities*.nt.bz2`` (optional)
    the 1-hop Wikidata graph of the linked entities; read it with :func:`load_entity_graph`.

Canonical mapping (the MIND convention, see :mod:`knowrec.data.mind`)
    * every shown candidate → one interaction row with ``impression_id`` and ``label`` 0/1;
    * every history click → one ``label = 1`` row with a null ``impression_id``, once per
      user (a user's history is the same in all five of their impressions), in file order;
    * ``timestamp`` is null everywhere: NeMig has no click or impression times. The time
      signal is the history order plus ``items.published`` (the article's publication date);
    * news → items: ``item_id, title, abstract, text`` (title + abstract, so an empty
      abstract still leaves text), ``category`` (the topic-model label, e.g.
      ``border_said_biden_president``), ``topics`` (its ``_``-separated keywords),
      ``entities`` (Wikidata Q-ids of title + abstract entities, first occurrence order,
      deduplicated), ``entity_labels`` (the surface form of each entity's first mention),
      ``sentiment``, ``political_leaning`` (of the outlet), ``url`` and ``published``
      (date, from the KG metadata; null when ``kg=False`` or the file is absent);
    * demographics → users: ``user_id, gender`` (``male``/``female``/``other``, null for
      "no answer"), ``age``, ``political_scale`` (POL1, 1–11); the questionnaire's other
      columns are not kept.

Every news id in ``behaviors.tsv`` must resolve in ``news.tsv``: with
``on_unresolved="error"`` the first unresolved one is reported with its line and column
and the total count; with ``"drop"`` those rows are dropped, counted in
``meta["unresolved"]`` and logged as a warning.
"""

from __future__ import annotations

import ast
import bz2
import csv
import gzip
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, TextIO

import polars as pl

from knowrec.data.io import decode_text, read_bytes, to_number
from knowrec.data.mind import read_behaviors, read_tsv
from knowrec.data.tables import Dataset, conform
from knowrec.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

BEHAVIOR_COLUMNS = ("ImpressionID", "UserID", "History", "Impressions")
NEWS_COLUMNS = (
    "NewsID", "Title", "Abstract", "TitleEntities", "AbstractEntities", "Category",
    "Sentiment", "PoliticalLeaning",
)  # fmt: skip
DEMOGRAPHICS = "demographics_politics.tsv"
GENDERS = {"0": "male", "1": "female", "2": "other", "3": None}  # 3 = "no answer"
METADATA_GLOB = "*metadata_literals*.nt*"
GRAPH_GLOB = "*enriched_entities*.nt*"
PROTOCOL = (
    "no click or impression times in NeMig: split by user; the time signal is each "
    "user's history order plus the articles' publication dates (items.published)"
)

# A Wikidata IRI (or a bare id) → its local id: Q42, P31 (also "Property:P31"), L1-F2.
_WIKIDATA = re.compile(
    r"^(?:https?://www\.wikidata\.org/(?:wiki/(?:Property:)?|entity/|prop/direct/))?"
    r"([QPL]\d+(?:-[FS]\d+)?)$"
)
# One N-Triples statement: subject, predicate, object (IRI, literal or blank node).
_TRIPLE = re.compile(
    r'^(<[^>]*>|_:\S+)\s+<([^>]*)>\s+(<[^>]*>|"(?:[^"\\]|\\.)*"(?:@[\w-]+|\^\^<[^>]*>)?|_:\S+)'
    r"\s*\.\s*$"
)

# N-Triples string escapes: \t \n \" … and \uXXXX / \UXXXXXXXX.
_ESCAPE = re.compile(r'\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[tbnrf"\'\\\\])')
_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}

OnUnresolved = Literal["error", "drop"]


def load_nemig(
    path: str | Path, *, kg: bool = True, on_unresolved: OnUnresolved = "error"
) -> Dataset:
    """Load one NeMig language directory (``en/`` or ``de/``) into canonical tables.

    ``kg``: read ``kg/*metadata_literals*`` for ``items.published`` and ``items.url``.
    ``on_unresolved``: ``"error"`` refuses behaviors news ids missing from ``news.tsv``;
    ``"drop"`` drops their rows with a warning (counted in ``meta["unresolved"]``).
    """
    if on_unresolved not in ("error", "drop"):
        raise ConfigError(f"on_unresolved must be 'error' or 'drop', not {on_unresolved!r}")
    root = Path(path)
    if not root.is_dir():
        raise DataFormatError(
            "expected a NeMig directory with behaviors.tsv and news.tsv (en/ or de/)", path=root
        )
    behaviors_path = root / "behaviors.tsv"
    if not behaviors_path.exists():
        subsets = sorted(d.name for d in root.iterdir() if (d / "behaviors.tsv").exists())
        hint = f"; load one of {', '.join(subsets)} (separate data sets)" if subsets else ""
        raise DataFormatError(f"no behaviors.tsv here{hint}", path=root)
    # history rows come deduplicated per user, in file order (mind.read_behaviors)
    history, impressions = read_behaviors(behaviors_path, BEHAVIOR_COLUMNS)
    items = read_news(root / "news.tsv")
    history, impressions, unresolved = _resolve(
        history, impressions, items["item_id"], behaviors_path, on_unresolved
    )

    meta_file = _kg_file(root, METADATA_GLOB) if kg else None
    if meta_file is not None:
        items = items.join(read_publication_dates(meta_file), on="item_id", how="left")
    else:
        if kg:
            log.warning("NeMig %s: no kg/%s; items.published is null", root, METADATA_GLOB)
        items = items.with_columns(url=pl.lit(None, pl.String), published=pl.lit(None, pl.Date))
    dated = items["published"].drop_nulls()
    if meta_file is not None and dated.len() < items.height:
        log.warning(
            "NeMig %s: %d of %d news have no datePublished in %s",
            root,
            items.height - dated.len(),
            items.height,
            meta_file.name,
        )

    users = read_demographics(root / DEMOGRAPHICS)
    behavior_users = pl.concat([history["user_id"], impressions["user_id"]]).unique()
    without_profile = int((~behavior_users.is_in(users["user_id"].implode())).sum())
    if without_profile:
        log.warning("NeMig %s: %d users have no demographics row", root, without_profile)

    graph = _kg_file(root, GRAPH_GLOB)
    meta = {
        "source": str(root),
        "format": "nemig",
        "protocol": PROTOCOL,
        "history_rows": history.height,
        "impression_rows": impressions.height,
        "impressions": impressions["impression_id"].n_unique(),
        "unresolved": unresolved,
        "users_without_demographics": without_profile,
        "published_min": None if dated.is_empty() else str(dated.min()),
        "published_max": None if dated.is_empty() else str(dated.max()),
        "news_without_published": items.height - dated.len(),
        "entity_graph": None if graph is None else str(graph),
    }
    return Dataset(
        interactions=conform(pl.concat([history, impressions]), "interactions"),
        items=conform(items, "items"),
        users=conform(users, "users"),
        meta=meta,
    )


def is_nemig(path: str | Path) -> bool:
    """True when the first ``behaviors.tsv`` under ``path`` has NeMig's 4 columns (MIND: 5)."""
    found = next(iter(sorted(Path(path).rglob("behaviors.tsv"))), None)
    if found is None:
        return False
    with found.open("rb") as f:
        first = f.readline().rstrip(b"\r\n")
    return first.count(b"\t") == len(BEHAVIOR_COLUMNS) - 1


# --------------------------------------------------------------------------- behaviors


def _resolve(
    history: pl.DataFrame,
    impressions: pl.DataFrame,
    known: pl.Series,
    path: Path,
    on_unresolved: OnUnresolved,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Count (and refuse or drop) behaviors rows whose news id is not in ``news.tsv``."""
    ok_hist = history["item_id"].is_in(known.implode())
    ok_imp = impressions["item_id"].is_in(known.implode())
    bad_ids = pl.concat([history.filter(~ok_hist), impressions.filter(~ok_imp)])["item_id"]
    counts = {
        "ids": bad_ids.n_unique(),
        "history_rows": int((~ok_hist).sum()),
        "impression_rows": int((~ok_imp).sum()),
        "impressions": impressions.filter(~ok_imp)["impression_id"].n_unique(),
    }
    if not counts["ids"]:
        return history, impressions, counts
    summary = (
        f"{counts['ids']} news ids not in news.tsv ({counts['history_rows']} history and "
        f"{counts['impression_rows']} impression rows)"
    )
    if on_unresolved == "error":
        line, column, item = _first_unresolved(path, set(known.to_list()))
        raise DataFormatError(
            f"news id {item!r} is not in news.tsv; {summary}; "
            "pass on_unresolved='drop' to drop them",
            path=path,
            line=line,
            column=column,
        )
    log.warning("NeMig %s: dropped %s", path, summary)
    return history.filter(ok_hist), impressions.filter(ok_imp), counts


def _first_unresolved(path: Path, known: set[str]) -> tuple[int, str, str]:
    """Error path only: the (line, column, id) of the first unresolved news id."""
    raw = read_tsv(path, BEHAVIOR_COLUMNS)
    for row, (hist, imp) in enumerate(zip(raw["History"], raw["Impressions"], strict=True)):
        for column, tokens in (("History", hist), ("Impressions", imp)):
            for token in (tokens or "").split():
                item = token.rsplit("-", 1)[0] if column == "Impressions" else token
                if item not in known:
                    return row + 1, column, item
    raise AssertionError("no unresolved id found on rescan")  # unreachable


# --------------------------------------------------------------------------- news


def read_news(path: Path) -> pl.DataFrame:
    """Parse NeMig's CSV-quoted ``news.tsv`` → items (see the module docstring)."""
    text = decode_text(read_bytes(path))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True)
    n = len(NEWS_COLUMNS)
    rows: list[list[str | None]] = []
    entities: list[list[str]] = []
    labels: list[list[str]] = []
    first_line: dict[str, int] = {}
    parsed: dict[str, list[tuple[str, str]]] = {}  # entity fields repeat (e.g. one outlet)
    line = 1
    try:
        for record in reader:
            if len(record) != n:
                raise DataFormatError(
                    f"expected {n} tab-separated fields, found {len(record)} "
                    "(wrong separator, truncated line or unbalanced quotes?)",
                    path=path,
                    line=line,
                )
            fields = [f if f.strip() else None for f in record]
            news_id = (fields[0] or "").strip()
            if not news_id:
                raise DataFormatError("empty news id", path=path, line=line, column="NewsID")
            if news_id in first_line:
                raise DataFormatError(
                    f"duplicate news id {news_id!r} (first on line {first_line[news_id]})",
                    path=path,
                    line=line,
                    column="NewsID",
                )
            first_line[news_id] = line
            seen: dict[str, str] = {}
            for column, value in zip(NEWS_COLUMNS[3:5], fields[3:5], strict=True):
                if value is None:
                    continue
                if value not in parsed:
                    parsed[value] = parse_entities(value, path, line, column)
                for qid, surface in parsed[value]:
                    seen.setdefault(qid, surface)
            rows.append([news_id, *fields[1:3], *fields[5:]])
            entities.append(list(seen))
            labels.append(list(seen.values()))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise DataFormatError(f"malformed CSV quoting ({exc})", path=path, line=line) from exc
    names = ("item_id", "title", "abstract", "category", "sentiment", "political_leaning")
    raw = pl.DataFrame(rows, schema=dict.fromkeys(names, pl.String), orient="row")
    return raw.select(
        "item_id",
        "title",
        "abstract",
        pl.concat_str(["title", "abstract"], separator="\n\n", ignore_nulls=True).alias("text"),
        "category",
        pl.col("category").str.split("_").list.unique(maintain_order=True).alias("topics"),
        pl.Series("entities", entities, dtype=pl.List(pl.String)),
        pl.Series("entity_labels", labels, dtype=pl.List(pl.String)),
        "sentiment",
        "political_leaning",
    ).with_columns(pl.col("topics").fill_null(pl.lit([], pl.List(pl.String))))


def parse_entities(value: str, path: Path, line: int, column: str) -> list[tuple[str, str]]:
    """A Python-literal entity list → ``[(Q-id, surface form)]``; malformed → one clear line."""
    shown = value if len(value) <= 60 else value[:57] + "..."
    try:
        parsed = ast.literal_eval(value)  # literals only: never eval()
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise DataFormatError(
            f"malformed entity list ({type(exc).__name__}): {shown!r}",
            path=path,
            line=line,
            column=column,
        ) from None
    if not isinstance(parsed, list | tuple) or not all(
        isinstance(e, dict) and isinstance(e.get("WikidataId"), str) for e in parsed
    ):
        raise DataFormatError(
            f"expected a list of {{'SurfaceForms': ..., 'WikidataId': ...}} dicts, found {shown!r}",
            path=path,
            line=line,
            column=column,
        )
    out = []
    for e in parsed:
        match = _WIKIDATA.match(e["WikidataId"].strip())
        if match is None or not match.group(1).startswith("Q"):
            raise DataFormatError(
                f"WikidataId {e['WikidataId']!r} is not a Wikidata item (…/wiki/Q<n>)",
                path=path,
                line=line,
                column=column,
            )
        surface = e.get("SurfaceForms")
        if isinstance(surface, list | tuple):
            surface = surface[0] if surface else None
        out.append((match.group(1), surface if isinstance(surface, str) else ""))
    return out


# --------------------------------------------------------------------------- users


def read_demographics(path: Path) -> pl.DataFrame:
    """``demographics_politics.tsv`` → users (``user_id, gender, age, political_scale``).

    The file is optional: without it the users table is empty (with a warning).
    """
    schema = {
        "user_id": pl.String,
        "gender": pl.String,
        "age": pl.Int32,
        "political_scale": pl.Int8,
    }
    if not path.exists():
        log.warning("NeMig: no %s; the users table is empty", path)
        return pl.DataFrame(schema=schema)
    with path.open("rb") as f:  # the header names the columns; read_tsv checks every line
        header = tuple(decode_text(f.readline()).rstrip("\r\n").split("\t"))
    raw = read_tsv(path, header)[1:]  # row i is line i + 2
    for column in ("uid", "Gender", "Age"):
        if column not in raw.columns:
            raise DataFormatError(
                f"missing column (the header has {', '.join(header[:6])}, ...)",
                path=path,
                line=1,
                column=column,
            )
    ids = raw["uid"].str.strip_chars()
    gender = raw["Gender"].str.strip_chars()
    for column, mask, message in (
        ("uid", ids.is_null() | (ids == ""), "empty user id"),
        ("uid", ids.is_duplicated() & ~ids.is_first_distinct(), "duplicate user id {value!r}"),
        ("Gender", ~gender.is_in(list(GENDERS)), "expected a gender code 0-3, found {value!r}"),
    ):
        if mask.any():
            row = int(mask.arg_max())  # type: ignore[arg-type]
            raise DataFormatError(
                message.format(value=raw[column][row]), path=path, line=row + 2, column=column
            )
    scale = (
        to_number(raw, "POL1", path, first_line=2)
        if "POL1" in raw.columns
        else pl.Series([None] * raw.height, dtype=pl.Int64)
    )
    return pl.DataFrame(
        {
            "user_id": ids,
            "gender": gender.replace_strict(GENDERS, return_dtype=pl.String),
            "age": to_number(raw, "Age", path, first_line=2),
            "political_scale": scale,
        }
    ).cast(schema)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- knowledge graph


def read_publication_dates(path: Path) -> pl.DataFrame:
    """KG metadata literals → ``(item_id, url, published)``; dates are ``"DD.MM.YYYY"``."""
    found: dict[str, list[tuple[str, str, int]]] = {"datePublished": [], "url": []}
    for line, subject, predicate, obj in _triples(path):
        key = predicate.rsplit("/", 1)[-1].rsplit("#", 1)[-1]
        if key in found and obj.startswith('"'):
            found[key].append((subject.rsplit("/", 1)[-1].rstrip(">"), _literal(obj), line))
    schema = {"item_id": pl.String, "value": pl.String, "line": pl.Int64}
    dates = pl.DataFrame(found["datePublished"], schema=schema, orient="row").unique(
        "item_id", keep="first", maintain_order=True
    )
    published = dates["value"].str.strip_chars().str.strptime(pl.Date, "%d.%m.%Y", strict=False)
    if published.is_null().any():
        row = int(published.is_null().arg_max())  # type: ignore[arg-type]
        raise DataFormatError(
            f"malformed date {dates['value'][row]!r}; expected DD.MM.YYYY",
            path=path,
            line=int(dates["line"][row]),
            column="datePublished",
        )
    urls = pl.DataFrame(found["url"], schema=schema, orient="row").unique(
        "item_id", keep="first", maintain_order=True
    )
    return (
        dates.select("item_id", published.alias("published"))
        .join(urls.select("item_id", pl.col("value").alias("url")), on="item_id", how="left")
        .select("item_id", "url", "published")
    )


def load_entity_graph(path: str | Path) -> pl.DataFrame:
    """The 1-hop Wikidata graph as ``(head, relation, tail)`` strings, duplicates removed.

    ``path`` is the ``.nt[.bz2|.gz]`` file or a NeMig directory holding
    ``kg/*enriched_entities*``. Wikidata IRIs become their ids (``Q30``, ``P17``,
    ``L485``) so heads and tails match ``items.entities``; literal and blank-node objects
    are dropped. The file is streamed (one regex per line; no rdflib needed).
    """
    p = Path(path)
    if p.is_dir():
        found = _kg_file(p, GRAPH_GLOB)
        if found is None:
            raise DataFormatError(f"no {GRAPH_GLOB} here or in kg/", path=p)
        p = found
    heads: list[str] = []
    relations: list[str] = []
    tails: list[str] = []
    names: dict[str, str] = {}  # IRI → id, computed once per node (and one string each)
    dropped = 0
    for _, subject, predicate, obj in _triples(p):
        if obj[0] != "<" or subject[0] != "<":
            dropped += 1
            continue
        for iri, out in ((subject[1:-1], heads), (predicate, relations), (obj[1:-1], tails)):
            name = names.get(iri)
            if name is None:
                name = names[iri] = _local(iri)
            out.append(name)
    if dropped:
        log.info("entity graph %s: %d literal or blank-node statements dropped", p, dropped)
    columns = {"head": heads, "relation": relations, "tail": tails}
    return pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String)).unique(
        maintain_order=True
    )


def _kg_file(root: Path, pattern: str) -> Path | None:
    found = sorted(root.glob(f"kg/{pattern}")) or sorted(root.glob(pattern))
    return found[0] if found else None


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _triples(path: Path) -> Iterator[tuple[int, str, str, str]]:
    """Stream an N-Triples file: ``(line, subject, predicate IRI, object)``; comments and
    blank lines are skipped; a line that is not a triple names its number."""
    if not path.is_file():
        raise DataFormatError("file not found", path=path)
    line = 0
    try:
        with _open_text(path) as f:
            for line, text in enumerate(f, start=1):
                stripped = text.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                match = _TRIPLE.match(stripped)
                if match is None:
                    shown = stripped if len(stripped) <= 60 else stripped[:57] + "..."
                    raise DataFormatError(
                        f"not an N-Triples statement: {shown!r}", path=path, line=line
                    )
                yield line, match.group(1), match.group(2), match.group(3)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataFormatError(
            f"cannot read ({exc}); is the file truncated?", path=path, line=line + 1
        ) from exc


def _literal(obj: str) -> str:
    """The lexical value of an N-Triples literal (language tag / datatype dropped)."""
    body = obj[1 : obj.rindex('"')]
    return _ESCAPE.sub(_unescape, body) if "\\" in body else body


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    return chr(int(code[1:], 16)) if code[0] in "uU" else _ESCAPES[code]


def _local(iri: str) -> str:
    match = _WIKIDATA.match(iri)
    return match.group(1) if match else iri
