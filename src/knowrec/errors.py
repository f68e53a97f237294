"""Typed, user-facing errors. The CLI prints ``str(error)`` on one line and exits non-zero."""

from __future__ import annotations

from pathlib import Path


def shown_id(value: str, limit: int = 64) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters (an error that
    echoes its input never echoes a whole over-long id)."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


class KnowrecError(Exception):
    """Base class of every error caused by user input (data, config, ids, models)."""


class DataFormatError(KnowrecError):
    """A data file is malformed: names the file, the line or row, and the column."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.reason = message
        where = self.path or "<data>"
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")


class ConfigError(KnowrecError):
    """A configuration value is missing, unknown or out of range."""


class UnknownIdError(KnowrecError):
    """A user or item id that the data set does not contain."""


class UnavailableError(KnowrecError):
    """A server that a run reads from (a Redis candidate store) does not answer: retry later."""


class RegistryError(ConfigError):
    """A component name that its registry does not know (or a clash when registering)."""


class ModelError(KnowrecError):
    """A model file cannot be found, assembled or verified (missing chunk, wrong SHA-256)."""


class LLMError(KnowrecError):
    """An LLM backend failed: server unreachable or an HTTP error after bounded retries."""


class LLMOutputError(LLMError):
    """An answer could not be parsed or validated (recorded per item by batch runs)."""


class LLMRequestError(LLMError):
    """The server refused one request (HTTP 4xx such as an over-long prompt): recorded for
    that item, not cached, and the batch goes on."""
