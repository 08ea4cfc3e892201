"""Reading a dataset file (CSV or Parquet) with errors that name the file, and writing one atomically.

One reader for every caller (training, the CLI's pre-check, batch scoring in
chunks), so a file is read, and refused, the same way everywhere:

* a header naming a column twice is refused, naming the column (pandas would
  silently rename the second to ``x.1``);
* a file that is not UTF-8 is refused naming the row (counted from 1, header
  excluded), the line and the column;
* given the data contract, its columns are read as the contract's rules
  (:mod:`collabops.data.rules`) say: string and category columns as text
  (``001`` stays ``001``, only an empty field is null), and a file's spellings
  are read (``true/false/1/0`` for bools, numbers written as text); whatever
  does not read is left as written, for the contract to refuse by row;
* a CSV file's times are read as text (its wall times and offsets are the
  contract's rules' to read, on the contract's clock), a Parquet file's as
  stored (naive or time-zone-aware timestamps).

:func:`write_table` keeps an aware time column's zone: Parquet stores it,
CSV writes each time with its offset.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from collabops.data.rules import FILE_NULLS, ContractRules
from collabops.errors import DataError

if TYPE_CHECKING:
    from collabops.data.contract import DataContract

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_table(path: str | Path, contract: DataContract | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file into a frame, refusing unreadable or empty files.

    With ``contract``, its columns are read by its rules (see the module
    docstring) and ``contract.validate`` then checks them; without it, pandas
    guesses the types (``001`` becomes 1, which a string column then refuses).
    Raises ``DataError`` naming the file for: a missing, empty or unsupported
    file, a column named twice in the header, text that is not UTF-8, a file
    that cannot be parsed, a header without data rows.
    """
    path = Path(path)
    frames = list(iter_table(path, contract))
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return frame


def iter_table(path: str | Path, contract: DataContract | None = None, columns: Sequence[str] | None = None,
               chunk_rows: int | None = None, text_as_categories: bool = False) -> Iterator[pd.DataFrame]:
    """The file as frames of at most ``chunk_rows`` rows (``None``: one frame), read as :func:`read_table` reads it.

    ``columns``: read only these if the file has them all (else every
    column, so that the contract can name the missing one with the file's
    columns). Chunks keep the file's row order; a header-only file yields no
    rows (the caller says so). Errors are ``DataError`` naming the file, as
    for :func:`read_table`, raised when the reading reaches them.
    ``text_as_categories`` (Parquet with a contract): the contract's string
    and category columns stored as text come as pandas Categoricals (read
    from the file's dictionary, no Python string per row; the same values,
    which the rules check once per category); CSV is read as always.
    """
    path = Path(path)
    kind = check_readable(path)
    rules = contract.rules if contract is not None else None
    try:
        if kind == "csv":
            yield from _csv(path, rules, columns, chunk_rows)
        else:
            yield from _parquet(path, rules, columns, chunk_rows, text_as_categories)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty (no header, no rows)") from None
    except UnicodeDecodeError:
        problem = _utf8_problem(path) if kind == "csv" else "not valid UTF-8 text"
        raise DataError(f"{path}: {problem}") from None
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as {kind}: {exc}") from None


def _csv(path: Path, rules: ContractRules | None, columns: Sequence[str] | None,
         chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    header = _csv_header(path)
    _refuse_twice(path, header)
    usecols = list(columns) if columns is not None and set(columns) <= set(header) else None
    options: dict[str, Any] = {"low_memory": False, "usecols": usecols}
    if rules is not None:
        options.update(_csv_options(rules, header))
    if chunk_rows is None:
        frame = pd.read_csv(path, **options)
        yield rules.from_file(frame) if rules is not None else frame
        return
    with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:
        for chunk in reader:
            yield rules.from_file(chunk) if rules is not None else chunk


def _csv_options(rules: ContractRules, header: list[str]) -> dict[str, Any]:
    """read_csv options for the contract's columns: text kinds as text; nulls: the empty field only for strings."""
    text = {rule.name for rule in rules.columns if rule.kind in ("string", "category")}
    as_text = {rule.name for rule in rules.columns if rule.kind in ("string", "category", "bool", "datetime")}
    return {
        "dtype": {name: str for name in header if name in as_text},
        "keep_default_na": False,
        "na_values": {name: [""] if name in text else list(FILE_NULLS) for name in header},
    }


def _csv_header(path: Path) -> list[str]:
    """The header's column names as written (a UTF-8 byte-order mark dropped); [] for a blank file."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.reader(handle):
            return row
    return []


def _parquet(path: Path, rules: ContractRules | None, columns: Sequence[str] | None,
             chunk_rows: int | None, text_as_categories: bool = False) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    dictionary: list[str] = []
    if text_as_categories and rules is not None:
        schema = pq.read_schema(path)
        _refuse_twice(path, schema.names)
        text = {rule.name for rule in rules.columns if rule.kind in ("string", "category")}
        dictionary = [f.name for f in schema if f.name in text and (pa.types.is_string(f.type) or
                                                                     pa.types.is_large_string(f.type))]
    with pq.ParquetFile(path, read_dictionary=dictionary or None) as parquet:
        names = parquet.schema_arrow.names
        _refuse_twice(path, names)
        wanted = list(columns) if columns is not None and set(columns) <= set(names) else None
        if chunk_rows is None:
            frames: Iterator[pd.DataFrame] = iter([parquet.read(columns=wanted).to_pandas()])
        else:
            frames = (batch.to_pandas() for batch in parquet.iter_batches(batch_size=chunk_rows, columns=wanted))
        for frame in frames:
            yield rules.from_file(frame) if rules is not None else frame


def _refuse_twice(path: Path, names: Sequence[str]) -> None:
    twice = [(name, count) for name, count in Counter(names).items() if count > 1 and name != ""]
    if twice:
        name, count = twice[0]
        raise DataError(f"{path}: column '{name}' appears {count} times in the header; each column must appear once")


def _utf8_problem(path: Path) -> str:
    """Where a CSV file stops being UTF-8: row (from 1, header excluded), line and column, and the byte."""
    with open(path, encoding="latin-1", newline="") as handle:  # latin-1 maps every byte to one character
        reader = csv.reader(handle)
        header: list[str] = []
        for number, fields in enumerate(reader):
            for position, text in enumerate(fields):
                raw = text.encode("latin-1")
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    where = "the header" if number == 0 else f"row {number}"
                    column = header[position] if position < len(header) else f"field {position + 1}"
                    return (f"{where} (line {reader.line_num}), column '{column}': not valid UTF-8 text "
                            f"(byte 0x{raw[exc.start]:02x}); save the file as UTF-8")
            if number == 0:
                header = [t.encode("latin-1").decode("utf-8", "replace").lstrip("\ufeff") for t in fields]
    return "not valid UTF-8 text; save the file as UTF-8"


def file_columns(path: str | Path) -> list[str]:
    """The column names of a CSV (its header) or Parquet file (its schema), without reading rows.

    Raises ``DataError`` as :func:`check_readable` does, or naming the file when it cannot be parsed.
    """
    path = Path(path)
    kind = check_readable(path)
    try:
        if kind == "csv":
            return _csv_header(path)
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception as exc:  # noqa: BLE001 - csv's and pyarrow's errors on a damaged file
        raise DataError(f"{path}: cannot be read as {kind}: {str(exc).splitlines()[0]}") from None


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
