"""Reading delimited text files fast (polars) while reporting bad lines exactly.

The fast path parses everything as strings with polars. Validation is vectorised; only
when it fails do we rescan the file in Python to name the exact 1-based line.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from knowrec.errors import DataFormatError

INT64 = pl.Int64()


def read_bytes(path: str | Path) -> bytes:
    """Read a file, transparently gunzipping ``*.gz``; empty or truncated files raise."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError("file not found", path=p)
    try:
        raw = p.read_bytes()
        data = gzip.decompress(raw) if p.suffix == ".gz" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataFormatError(f"cannot read ({exc}); is the file truncated?", path=p) from exc
    if not data.strip():
        raise DataFormatError("file is empty", path=p)
    return data


def decode_text(data: bytes) -> str:
    """UTF-8 if valid, else Latin-1 (the original MovieLens files are ISO-8859-1)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_utf8(data: bytes, path: str | Path) -> str:
    """UTF-8 text (a leading BOM dropped); anything else names the line and the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise DataFormatError(
            f"not UTF-8 text (byte 0x{byte}); save the file as UTF-8", path=path, line=line
        ) from None


def read_delimited(
    path: str | Path,
    columns: Sequence[str],
    *,
    separator: str,
    data: bytes | None = None,
) -> pl.DataFrame:
    """Read a header-less file with a (possibly multi-character) separator as string columns.

    Every line must have exactly ``len(columns)`` fields; blank lines are not allowed.
    """
    raw = read_bytes(path) if data is None else data
    text = decode_text(raw)
    if len(separator) > 1:
        if "\x1f" in text:
            raise DataFormatError("unexpected control character \\x1f", path=path)
        text = text.replace(separator, "\x1f")
        sep = "\x1f"
    else:
        sep = separator
    body = text.encode("utf-8")
    n = len(columns)
    try:
        df = pl.read_csv(
            io.BytesIO(body),
            separator=sep,
            has_header=False,
            new_columns=list(columns),
            schema={c: pl.String for c in columns},
            quote_char=None,
            raise_if_empty=True,
        )
    except pl.exceptions.PolarsError:
        df = None
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if df is None or df.height != lines or df[columns[-1]].is_null().any():
        _raise_first_bad_line(path, text, sep, n, separator)
    return df  # type: ignore[return-value]


def _raise_first_bad_line(path: str | Path, text: str, sep: str, n: int, shown: str) -> None:
    for i, line in enumerate(text.splitlines(), start=1):
        found = len(line.split(sep)) if line else 0
        if found != n:
            raise DataFormatError(
                f"expected {n} {shown!r}-separated fields, found {found} "
                "(wrong separator or truncated line?)",
                path=path,
                line=i,
            )
    raise DataFormatError("could not parse the file", path=path)


def to_number(
    df: pl.DataFrame,
    column: str,
    path: str | Path,
    *,
    dtype: pl.DataType = INT64,
    first_line: int = 1,
) -> pl.Series:
    """Cast a string column to ``dtype``; a missing or non-numeric value names its line.

    ``first_line`` is the file line of row 0 (2 for a file with a header).
    """
    s = df[column].str.strip_chars().cast(dtype, strict=False)
    bad = s.is_null()
    if dtype.is_float():
        bad = bad | ~s.is_finite()
    if bad.any():
        row = int(bad.arg_max())  # type: ignore[arg-type]
        kind = "an integer" if dtype.is_integer() else "a number"
        raise DataFormatError(
            f"expected {kind}, found {df[column][row]!r}",
            path=path,
            line=row + first_line,
            column=column,
        )
    return s


def unix_seconds(s: pl.Series) -> pl.Series:
    """Unix seconds (int) → canonical datetime[ms]."""
    return (s.cast(pl.Int64) * 1000).cast(pl.Datetime("ms"))
