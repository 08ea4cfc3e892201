"""Reading a dataset file (CSV or Parquet) with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from collabops.errors import DataError

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a frame, refusing unreadable or empty files.

    Types are left to the data contract to coerce and check; this only makes
    sure there is a table with at least one data row.
    """
    path = Path(path)
    kind = check_readable(path)
    try:
        if kind == "csv":
            frame = pd.read_csv(path, low_memory=False)
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as {kind}: {exc}") from None
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return frame


def check_readable(path: Path) -> str:
    """The file's kind (``csv`` or ``parquet``), or a ``DataError`` if it is missing, empty or of another type."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type '{path.suffix}' (use .csv or .parquet)")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: is not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")
    return kind


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as CSV or Parquet (by extension), atomically.

    The file appears under its name only when complete, so an interrupted
    write never leaves a half-written dataset behind.
    """
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type '{path.suffix}' (use .csv or .parquet)")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if kind == "csv":
            frame.to_csv(partial, index=False)
        else:
            frame.to_parquet(partial, index=False)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path
