"""The ``[data]`` section shared by every pipeline's config, and :func:`load_data`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from knowrec.config import Section
from knowrec.data import load_dataset
from knowrec.data.tables import Dataset


class DataConfig(Section):
    source: str = "synthetic"  # "synthetic" or a path load_dataset understands
    format: str | None = None
    size: str = "small"  # synthetic world size
    seed: int = 0
    text_table: str | None = None  # item text joined by id or title + year
    text_on: Literal["id", "title_year"] = "id"
    text_columns: list[str] = Field(default_factory=lambda: ["text"])
    text_id_column: str = "item_id"
    title_column: str = "title"
    year_column: str = "year"


def load_data(cfg: DataConfig) -> Dataset:
    """The data set named by the config, with item text joined when asked."""
    if cfg.source == "synthetic":
        from knowrec.data.synth import generate_world

        return generate_world(seed=cfg.seed, size=cfg.size).movies
    data = load_dataset(cfg.source, format=cfg.format)
    if cfg.text_table:
        from knowrec.data.text import join_item_text

        data, _ = join_item_text(
            data,
            cfg.text_table,
            on=cfg.text_on,
            text_columns=cfg.text_columns,
            id_column=cfg.text_id_column,
            title_column=cfg.title_column,
            year_column=cfg.year_column,
        )
    return data
