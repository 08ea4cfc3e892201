"""Batch scoring of a file, in chunks, with an output that is never half-written.

Memory stays bounded by the chunk size whatever the input size; every chunk
is validated against the contract's feature columns before it is scored, and
the output appears under its name only when every row has been scored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from collabops.contract import DataContract
from collabops.dataset import SUFFIXES, check_readable
from collabops.errors import DataError

logger = logging.getLogger(__name__)
DEFAULT_CHUNK_ROWS = 200_000


def _chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    kind = check_readable(path)
    try:
        if kind == "csv":
            yield from pd.read_csv(path, chunksize=chunk_rows, low_memory=False)
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot be read as {kind}: {exc}") from None


def score_file(model: Any, contract: DataContract, source: Path, out: Path, model_version: str, bundle_id: str,
               chunk_rows: int = DEFAULT_CHUNK_ROWS, overwrite: bool = False) -> int:
    """Score every row of ``source`` into ``out`` (CSV or Parquet by extension); return the row count."""
    source, out = Path(source), Path(out)
    out_kind = SUFFIXES.get(out.suffix.lower())
    if out_kind is None:
        raise DataError(f"{out}: unsupported output type '{out.suffix}' (use .csv or .parquet)")
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists (choose another path or allow overwriting)")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    keys = [contract.time_column, contract.entity_column, contract.segment_column]
    features = contract.feature_columns
    rows = 0
    writer = None
    try:
        for chunk in _chunks(source, chunk_rows):
            if len(chunk) == 0:
                continue
            valid = contract.validate(chunk, source=str(source), columns=features, row_offset=rows)
            scored = valid[keys].copy()
            scored["prediction"] = model.predict(valid[features])
            scored["model_version"] = model_version
            scored["bundle_id"] = bundle_id
            writer = _write(scored, partial, out_kind, writer, first=rows == 0)
            rows += len(scored)
            logger.info("scored %d rows", rows)
        if rows == 0:
            raise DataError(f"{source}: has a header but no data rows")
        if writer is not None and out_kind == "parquet":
            writer.close()
            writer = None
        partial.replace(out)
    finally:
        if writer is not None and out_kind == "parquet":
            writer.close()
        partial.unlink(missing_ok=True)
    return rows


def _write(frame: pd.DataFrame, path: Path, kind: str, writer: Any, first: bool) -> Any:
    if kind == "csv":
        frame.to_csv(path, index=False, mode="w" if first else "a", header=first)
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    return writer
