"""One progress bar for all long work: units done, units/s and ETA (rich, on stderr)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Bar:
    """Handle returned by :func:`progress_bar`; ``advance(n)`` marks n more units done."""

    def __init__(
        self, progress: Progress | None = None, task: TaskID | None = None, unit: str = "items"
    ) -> None:
        self._progress = progress
        self._task = task
        self._unit = unit

    def advance(self, n: int = 1) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.advance(self._task, n)
        speed = self._progress.tasks[self._task].speed
        self._progress.update(self._task, rate=f"{speed:.2f} {self._unit}/s" if speed else "")


@contextmanager
def progress_bar(
    description: str, total: int | None, *, enabled: bool = True, unit: str = "items"
) -> Iterator[Bar]:
    """A bar with ``done/total``, ``unit``/s (what ``total`` counts: items, batches,
    steps …), elapsed time and ETA; a no-op when disabled."""
    if not enabled:
        yield Bar()
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as progress:
        yield Bar(progress, progress.add_task(description, total=total, rate=""), unit)
