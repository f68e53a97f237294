"""The ``[data]`` section shared by every pipeline's config (and, through
``knowrec.cli.DataOptions``, by every command that reads data), and :func:`load_data`.

A log of your own is a table file plus column mappings::

    [data]
    source = "clicks.csv"                 # CSV / TSV (optionally .gz) / Parquet
    mapping = {user_id = "user", item_id = "page", timestamp = "ts", session_id = "session"}
    items = "items.csv"                   # optional: one row per item
    item_mapping = {item_id = "id"}       # columns named title, text, … are taken as they are

or a directory written by ``knowrec data convert`` (``source = "data/"``, nothing else).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from knowrec.config import Section
from knowrec.data import detect_format, load_dataset
from knowrec.data.tables import Dataset
from knowrec.data.text import JoinReport
from knowrec.errors import ConfigError


class DataConfig(Section):
    source: str = "synthetic"  # "synthetic" or a path load_dataset understands
    format: str | None = None  # None: detected from the path
    size: str = "small"  # synthetic world size
    seed: int = 0
    mapping: dict[str, Any] | None = None  # table logs: canonical column = source column
    items: str | None = None  # table logs: an items table (CSV / TSV / Parquet)
    item_mapping: dict[str, Any] | None = None  # its columns, as mapping
    text_table: str | None = None  # item text joined by id or title + year
    text_on: Literal["id", "title_year"] = "id"
    text_columns: list[str] = Field(default_factory=lambda: ["text"])
    text_id_column: str = "item_id"
    title_column: str = "title"
    year_column: str | None = "year"


def read_data(cfg: DataConfig) -> tuple[Dataset, list[JoinReport]]:
    """The data set named by the config and a report of each separate file joined onto
    its items (the items table, the item texts); the reports also go to
    ``meta["joins"]``."""
    if cfg.source == "synthetic":
        from knowrec.data.synth import generate_world

        return generate_world(seed=cfg.seed, size=cfg.size).movies, []
    fmt = detect_format(cfg.source) if cfg.format in (None, "auto") else cfg.format
    table_only = {"mapping": cfg.mapping, "items": cfg.items, "item_mapping": cfg.item_mapping}
    given = [name for name, value in table_only.items() if value]
    if given and fmt != "table":
        raise ConfigError(
            f"{', '.join(given)} (--map, --items, --item-map) apply only to a log file read "
            f"as format 'table'; {cfg.source} is read as {fmt!r}"
        )
    if cfg.item_mapping and not cfg.items:
        raise ConfigError("an item mapping (--item-map) needs an items file (--items)")
    options: dict[str, Any] = {}
    if fmt == "table":
        options = {"mapping": cfg.mapping, "items": cfg.items, "item_mapping": cfg.item_mapping}
    data = load_dataset(cfg.source, fmt, **options)  # type: ignore[arg-type]
    reports = []
    if cfg.items:
        from knowrec.data.text import item_coverage

        reports.append(item_coverage(data.interactions, data.items, cfg.items))
    if cfg.text_table:
        from knowrec.data.text import join_item_text

        data, report = join_item_text(
            data,
            cfg.text_table,
            on=cfg.text_on,
            text_columns=cfg.text_columns,
            id_column=cfg.text_id_column,
            title_column=cfg.title_column,
            year_column=cfg.year_column,
        )
        reports.append(report)
    if reports:
        data.meta["joins"] = [r.to_dict() for r in reports]
    return data, reports


def load_data(cfg: DataConfig) -> Dataset:
    """The data set named by the config, with the items table and item text joined."""
    return read_data(cfg)[0]
