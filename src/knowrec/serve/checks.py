"""Cheap checks that the files a run serves from are whole, before a server loads them.

Every file a run recorded when it was written (``files`` in ``manifest.json``:
:meth:`~knowrec.runs.Run.record_files`) must be there with its size. Every file or folder
that serving reads must exist, and each file, by its format, must not be cut short or
garbled where a glance can tell: JSON parses, a Parquet file has its header and footer, a
zip (NumPy's ``.npz``, torch's ``.pt``) its central directory, a ``.npy`` file the bytes
its header promises, a LightGBM text model the end of its trees (LightGBM crashes on one
cut before), a SQLite file the pages its header counts, an LMDB ``data.mdb`` the pages its
meta page counts. A look costs milliseconds; damage that keeps a file's size and format (a
garbled FAISS index, a garbled value in a store) is for the load, or the request that
reads it, to find.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from knowrec.errors import DataFormatError
from knowrec.runs import part_files

SQLITE_MAGIC = b"SQLite format 3\x00"
PARQUET_MAGIC = b"PAR1"


def check_sizes(root: Path, sizes: Mapping[str, int]) -> None:
    """Every file the run recorded (``files`` in its manifest: relative path → size) is
    there with its size; a :class:`DataFormatError` naming the first that is not."""
    for name, size in sizes.items():
        path = root / name
        if not path.is_file():
            raise DataFormatError("missing (the run serves from it)", path=path)
        if (actual := path.stat().st_size) != size:
            how = "cut short" if actual < size else "changed"
            raise DataFormatError(f"damaged ({how}: {actual:,} bytes, {size:,} written)", path=path)


def check_parts(root: Path, parts: Iterable[Path]) -> None:
    """Check each of ``parts`` (relative to ``root``): a file, or a folder whose files are
    all checked; a :class:`DataFormatError` naming the first missing or damaged one."""
    for file in part_files(root, parts):
        check_file(file)


def check_file(path: Path) -> None:
    """Check one file by its name's suffix (other suffixes: that it exists)."""
    check = CHECKS.get(path.name) or CHECKS.get(path.suffix)
    if check is None:
        return
    try:
        check(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataFormatError(f"damaged ({exc})", path=path) from None


def _json(path: Path) -> None:
    json.loads(path.read_bytes())


def _parquet(path: Path) -> None:
    import pyarrow.parquet as pq

    with path.open("rb") as f:
        if f.read(len(PARQUET_MAGIC)) != PARQUET_MAGIC:
            raise ValueError("not a Parquet file")
    pq.read_metadata(path)  # the footer: a cut file has none


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path):  # the central directory sits at the end
        pass


def _text(path: Path) -> None:
    from knowrec.ranking.lgbm import MODEL_START, model_text

    with path.open("rb") as f:
        if f.read(len(MODEL_START)) != MODEL_START:  # not a LightGBM model
            return
    try:
        model_text(path)
    except DataFormatError as exc:
        raise ValueError(exc.reason) from None


def _npy(path: Path) -> None:
    np.load(path, mmap_mode="r")  # maps header and data: a short file cannot be mapped


def _sqlite(path: Path) -> None:
    with path.open("rb") as f:
        header = f.read(100)
    if not header.startswith(SQLITE_MAGIC) or len(header) < 100:
        raise ValueError("not a SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    # The page count at offset 28 is valid when its "valid for" counter matches the file's
    # change counter (the SQLite file format, section 1.3).
    if header[24:28] == header[92:96]:
        _at_least(path, page_size * int.from_bytes(header[28:32], "big"))


def _lmdb(path: Path) -> None:
    import lmdb

    try:
        env = lmdb.open(str(path.parent), readonly=True, lock=False)
    except lmdb.Error as exc:
        raise ValueError(str(exc)) from None
    with env:
        pages = env.info()["last_pgno"] + 1
        _at_least(path, pages * env.stat()["psize"])


def _at_least(path: Path, size: int) -> None:
    if (actual := path.stat().st_size) < size:
        raise ValueError(f"cut short: {actual:,} bytes of {size:,}")


#: File name or suffix → its check.
CHECKS: dict[str, Callable[[Path], None]] = {
    ".json": _json,
    ".parquet": _parquet,
    ".npz": _zip,
    ".pt": _zip,
    ".npy": _npy,
    ".txt": _text,
    ".sqlite": _sqlite,
    "data.mdb": _lmdb,
}
