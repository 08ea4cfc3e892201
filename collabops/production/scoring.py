"""Batch scoring of a file, in chunks, with an output that is never half-written.

Memory stays bounded by the chunk size whatever the input size; every chunk
is validated against the contract's feature columns before it is scored, and
the output appears under its name only when every row has been scored.

How it is fast (``bench/batch_scoring.py`` measures it against one bare
``model.predict`` call on the whole file):

* only the contract's feature columns are read (personal columns and the
  target are never needed to score);
* the file is read by ``dataset.iter_table`` with the contract (the same
  reader, spellings and file errors as training);
* every chunk is checked by the contract's column rules, vectorised
  (:func:`fast_validate`, :meth:`ContractRules.check_frame`), without
  pandera; a chunk the rules refuse goes through the contract's pandera
  schema (:meth:`DataContract.validate`, the same rules), which words the
  error, so messages are exactly the contract's: file, column and rows
  counted from 1 over the whole file;
* the model is called on blocks of ``predict_rows`` rows, small enough for
  the encoded block to stay in the CPU cache (one call on millions of rows is
  memory-bound and slower per row);
* one prediction thread per CPU each predicts its own block, the model's
  OpenMP loops limited to that thread (the trees release the GIL, and
  independent threads do not wait for each other the way an OpenMP team on a
  busy machine does), while a background thread reads and validates the next
  chunks. Rows keep their order; every chunk is written as soon as all its
  blocks are predicted.

Memory in flight: at most ~5 chunks (one being read, two waiting, two being
predicted) and one encoded block per prediction thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collabops.data.contract import DataContract
from collabops.data.dataset import SUFFIXES, iter_table
from collabops.errors import DataError

logger = logging.getLogger(__name__)
DEFAULT_CHUNK_ROWS = 200_000
"""Rows read, validated and written at a time: bounds the memory."""
DEFAULT_PREDICT_ROWS = 50_000
"""Rows per ``model.predict`` call: the encoded block (~15 MB) stays in the CPU cache."""
_PREFETCH_CHUNKS = 2
"""Validated chunks waiting for the model at most (so at most ~4 chunks are in memory)."""


def score_file(model: Any, contract: DataContract, source: Path, out: Path, model_version: str, bundle_id: str,
               chunk_rows: int = DEFAULT_CHUNK_ROWS, overwrite: bool = False,
               predict_rows: int = DEFAULT_PREDICT_ROWS, threads: int | None = None) -> int:
    """Score every row of ``source`` into ``out`` (CSV or Parquet by extension); return the row count.

    ``threads`` prediction threads (default: one per CPU this process may
    use) each call ``model.predict`` on their own block, with the model's own
    OpenMP parallelism limited to one thread, while a background thread reads
    and validates the next chunk. ``threads=0`` does everything in the calling
    thread, the model using its own parallelism. The output is the same.
    """
    if chunk_rows < 1 or predict_rows < 1:
        raise ValueError(f"chunk_rows and predict_rows must be at least 1, got {chunk_rows} and {predict_rows}")
    threads = default_threads() if threads is None else threads
    source, out = Path(source), Path(out)
    out_kind = SUFFIXES.get(out.suffix.lower())
    if out_kind is None:
        raise DataError(f"{out}: unsupported output type '{out.suffix}' (use .csv or .parquet)")
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists (choose another path or allow overwriting)")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    keys = list(dict.fromkeys(c for c in (contract.time_column, contract.entity_column, contract.segment_column) if c))
    features = contract.feature_columns
    total = _row_count(source)
    writer = _Writer(partial, out_kind)
    chunks: Any = _validated_chunks(contract, source, features, chunk_rows)
    pool: ThreadPoolExecutor | None = None
    # Chunk k's blocks are queued for the pool before chunk k-1 is awaited and written: the pool never idles.
    pending: deque = deque()
    rows = 0
    started = time.perf_counter()
    try:
        if threads > 0:
            pool = ThreadPoolExecutor(threads, thread_name_prefix="scoring-predict",
                                      initializer=_one_openmp_thread)
            chunks = _Prefetched(chunks)
        for valid in chunks:
            pending.append((valid[keys], _predict_later(pool, model, valid[features], predict_rows)))
            while len(pending) > (1 if pool is not None else 0):
                rows += _write_scored(writer, pending.popleft(), model_version, bundle_id)
                _log_progress(rows, total, started)
        while pending:
            rows += _write_scored(writer, pending.popleft(), model_version, bundle_id)
            _log_progress(rows, total, started)
        if rows == 0:
            raise DataError(f"{source}: has a header but no data rows")
        writer.close()
        partial.replace(out)
    finally:
        chunks.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        partial.unlink(missing_ok=True)
    return rows


def default_threads() -> int:
    """Prediction threads by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _write_scored(writer: _Writer, entry: tuple[pd.DataFrame, Callable[[], np.ndarray]], model_version: str,
                  bundle_id: str) -> int:
    keys, prediction = entry
    writer.write(keys, prediction(), model_version, bundle_id)
    return len(keys)


def _log_progress(rows: int, total: int | None, started: float) -> None:
    elapsed = time.perf_counter() - started
    logger.info("scored %s%s rows (%s rows/s, %.1f s)", f"{rows:,}", f" of {total:,}" if total else "",
                f"{rows / elapsed:,.0f}" if elapsed > 0 else "-", elapsed)


def fast_validate(contract: DataContract, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame | None:
    """``frame[columns]`` validated and converted by the contract's rules, vectorised, or None if they refuse it.

    The chunk validator of batch scoring: the checks of
    :meth:`ContractRules.check_frame` (types, nulls, min/max, categories,
    text length, unique (entity, time) keys), the same rules and conversions
    as :meth:`DataContract.validate` without pandera's overhead. Returns a
    frame indexed from 0, equal to what the contract returns for ``frame``
    (tests/unit/test_scoring_chunks.py, tests/unit/test_rules_agree.py), or
    None for an empty frame, a missing or repeated column or any value
    refused: the caller then runs :meth:`DataContract.validate`, which words
    the error.
    """
    if len(frame) == 0 or frame.columns.has_duplicates or not set(columns) <= set(frame.columns):
        return None
    checked = contract.rules.check_frame(frame[columns].reset_index(drop=True), columns)
    return checked.values if checked.ok else None


def _validated_chunks(contract: DataContract, source: Path, features: list[str],
                      chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file's chunks, each validated (rows in messages counted over the whole file)."""
    offset = 0
    for chunk in iter_table(source, contract, columns=features, chunk_rows=chunk_rows):
        if len(chunk) == 0:
            continue
        valid = fast_validate(contract, chunk, features)
        if valid is None:
            valid = contract.validate(chunk, source=str(source), columns=features, row_offset=offset)
        offset += len(chunk)
        yield valid


def _row_count(path: Path) -> int | None:
    """Rows in a Parquet file from its footer (for progress lines); None for CSV or an unreadable file."""
    if SUFFIXES.get(path.suffix.lower()) != "parquet" or not path.is_file():
        return None
    try:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # noqa: BLE001 - reading it properly reports the problem
        return None


_DONE = object()


class _Prefetched:
    """Runs an iterator in a background thread, ``_PREFETCH_CHUNKS`` items ahead; its errors re-raise here."""

    def __init__(self, items: Iterator[Any]) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=_PREFETCH_CHUNKS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="scoring-reader", daemon=True)
        self._thread.start()

    def _run(self, items: Iterator[Any]) -> None:
        try:
            for item in items:
                if not self._put((True, item)):
                    return
            self._put((True, _DONE))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _put(self, entry: tuple[bool, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> _Prefetched:
        return self

    def __next__(self) -> Any:
        ok, item = self._queue.get()
        if not ok:
            raise item
        if item is _DONE:
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the reader and wait for it (it stops within ~0.1 s, or after the chunk it is reading)."""
        self._stop.set()
        self._thread.join()


def _one_openmp_thread() -> None:
    """In a prediction thread: the model's OpenMP loops use this thread only (OpenMP's limit is per thread)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="openmp")


def _predict_later(pool: ThreadPoolExecutor | None, model: Any, features: pd.DataFrame,
                   block_rows: int) -> Callable[[], np.ndarray]:
    """``model.predict`` over blocks of ``block_rows`` rows (a row's prediction does not depend on the others).

    With a pool the blocks are submitted now and the returned function waits
    for them; without one they are predicted now.
    """
    blocks = [features.iloc[start:start + block_rows] for start in range(0, len(features), block_rows)]
    if pool is None:
        done = np.concatenate([np.asarray(model.predict(block)) for block in blocks])
        return lambda: done
    futures = [pool.submit(model.predict, block) for block in blocks]
    return lambda: np.concatenate([np.asarray(future.result()) for future in futures])


class _Writer:
    """Appends scored chunks to the ``.partial`` file: Parquet with pyarrow, CSV with pandas."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        self._parquet: Any = None
        self._written = False

    def write(self, keys: pd.DataFrame, prediction: np.ndarray, model_version: str, bundle_id: str) -> None:
        if self.kind == "csv":
            scored = keys.copy()
            scored["prediction"] = prediction
            scored["model_version"] = model_version
            scored["bundle_id"] = bundle_id
            scored.to_csv(self.path, index=False, mode="a" if self._written else "w", header=not self._written)
            self._written = True
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = len(keys)
        table = pa.Table.from_pandas(keys, preserve_index=False)
        table = (table.append_column("prediction", pa.array(prediction, type=pa.float64()))
                 .append_column("model_version", pa.repeat(pa.scalar(str(model_version), pa.string()), n))
                 .append_column("bundle_id", pa.repeat(pa.scalar(str(bundle_id), pa.string()), n)))
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        self._parquet.write_table(table)
        self._written = True

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
