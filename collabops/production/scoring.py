"""Batch scoring of a file, in chunks, with an output that is never half-written.

Memory stays bounded by the chunk size, plus 8 bytes per row for the
duplicate-key check, whatever the input size; every chunk is validated
against the contract's feature columns before it is scored, every (entity,
time) key is checked against every earlier row of the file, and the output
appears under its name only when every row has been scored.

How it is fast (``bench/batch_scoring.py`` measures it against the chunked
predict loop a data scientist would write):

* only the contract's feature columns are read (personal columns and the
  target are never needed to score);
* the file is read by ``dataset.iter_table`` with the contract (the same
  reader, spellings and file errors as training); a Parquet file's text
  columns come as Categoricals, read from the file's dictionary;
* every chunk is checked by the contract's column rules, vectorised
  (:func:`fast_validate`, :meth:`ContractRules.check_frame`; a Categorical is
  checked once per category), without pandera; a chunk the rules refuse goes
  through the contract's pandera schema (:meth:`DataContract.validate`, the
  same rules), which words the error, so messages are exactly the
  contract's: file, column and rows counted from 1 over the whole file;
* keys are compared across chunks as 64-bit hashes of the instants
  (:class:`_SeenKeys`); a repeated hash is confirmed on the values by reading
  the key columns again, and the error names both rows;
* one clock per file: naive wall times of the repeated autumn hour are
  resolved by order of appearance per entity across chunks (one
  :class:`~collabops.data.rules.RepeatedHours` follows the file), so a chunk
  boundary between a car park's two 02:00 rows changes nothing; the output
  keeps the contract's time zone (Parquet: an aware column; CSV: the offset);
* the model is called on blocks of ``predict_rows`` rows, small enough for
  the encoded block to stay in the CPU cache (one call on millions of rows is
  memory-bound and slower per row);
* one prediction thread per CPU each predicts its own block, the model's
  OpenMP loops limited to that thread (the trees release the GIL, and
  independent threads do not wait for each other the way an OpenMP team on a
  busy machine does), while a background thread reads and validates the next
  chunks. Rows keep their order; every chunk is written as soon as all its
  blocks are predicted.

Memory in flight: at most ~4 chunks (one being read, one waiting, two being
predicted), one encoded block per prediction thread, and the key hashes.
While a file is scored, Arrow allocates from its jemalloc pool
(:class:`_ArrowPool`): Arrow's default mimalloc pool keeps freed pages, and
on 5 million rows that alone cost ~60 MiB of peak memory (bench/README.md).
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
from collabops.data.rules import FrameCheck, RepeatedHours, show
from collabops.errors import DataError

logger = logging.getLogger(__name__)
DEFAULT_CHUNK_ROWS = 65_536
"""Rows read, validated and written at a time (pyarrow's own batch size): bounds the memory."""
DEFAULT_PREDICT_ROWS = 20_000
"""Rows per ``model.predict`` call: the encoded block (~6 MB) stays in the CPU cache."""
_PREFETCH_CHUNKS = 1
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
    features = list(contract.feature_columns)
    total = _row_count(source)
    writer = _Writer(partial, out_kind)
    arrow_pool = _ArrowPool()
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
            inputs = valid if list(valid.columns) == features else valid[features]  # no copy in the usual case
            pending.append((valid, keys, _predict_later(pool, model, inputs, predict_rows)))
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
        arrow_pool.close()
    return rows


class _ArrowPool:
    """Arrow's default memory pool set to jemalloc until :meth:`close` (no-op where jemalloc is not built in).

    Arrow's default pool is mimalloc, which keeps pages it has freed; reading
    a large file in batches then grows the process by far more than a batch.
    Buffers remember the pool they came from, so switching back is safe.
    """

    def __init__(self) -> None:
        import pyarrow as pa

        self._pa, self._previous = pa, pa.default_memory_pool()
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        except NotImplementedError:  # a pyarrow build without jemalloc (Windows): keep the default pool
            self._previous = None

    def close(self) -> None:
        if self._previous is not None:
            self._pa.set_memory_pool(self._previous)
            self._previous = None


def default_threads() -> int:
    """Prediction threads by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _write_scored(writer: _Writer, entry: tuple[pd.DataFrame, list[str], Callable[[], np.ndarray]],
                  model_version: str, bundle_id: str) -> int:
    valid, keys, prediction = entry
    writer.write(valid, keys, prediction(), model_version, bundle_id)
    return len(valid)


def _log_progress(rows: int, total: int | None, started: float) -> None:
    elapsed = time.perf_counter() - started
    logger.info("scored %s%s rows (%s rows/s, %.1f s)", f"{rows:,}", f" of {total:,}" if total else "",
                f"{rows / elapsed:,.0f}" if elapsed > 0 else "-", elapsed)


def fast_validate(contract: DataContract, frame: pd.DataFrame, columns: list[str],
                  check_keys: bool = True, clock: RepeatedHours | None = None) -> pd.DataFrame | None:
    """``frame[columns]`` validated and converted by the contract's rules, vectorised, or None if they refuse it.

    The chunk validator of batch scoring: the checks of
    :meth:`ContractRules.check_frame` (types, nulls, wall times that do not
    exist, min/max, categories, text length, unique (entity, time) keys), the
    same rules and conversions as :meth:`DataContract.validate` without
    pandera's overhead. Returns a frame indexed from 0, equal to what the
    contract returns for ``frame`` (tests/unit/test_scoring_chunks.py,
    tests/unit/test_rules_agree.py), or None for an empty frame, a missing or
    repeated column or any value refused: the caller then runs
    :meth:`DataContract.validate`, which words the error. ``check_keys=False``
    leaves the keys to the caller (batch scoring checks them over the whole
    file). ``clock``: the repeated autumn hour counted from what it has seen
    (it is not changed; see :func:`_fast_check`).
    """
    checked = _fast_check(contract, frame, columns, check_keys, clock)
    return checked.values if checked is not None and checked.ok else None


def _fast_check(contract: DataContract, frame: pd.DataFrame, columns: list[str], check_keys: bool,
                clock: RepeatedHours | None) -> FrameCheck | None:
    """The rules' verdict on ``frame[columns]`` indexed from 0, or None for an empty frame or missing/repeated columns.

    ``clock`` is read, not changed: the caller adds ``FrameCheck.repeated``
    to it when it keeps the chunk.
    """
    if len(frame) == 0 or frame.columns.has_duplicates or not set(columns) <= set(frame.columns):
        return None
    as_is = list(frame.columns) == list(columns) and frame.index.equals(pd.RangeIndex(len(frame)))
    return contract.rules.check_frame(frame if as_is else frame[columns].reset_index(drop=True), columns,
                                      check_keys=check_keys, clock=clock)


def _validated_chunks(contract: DataContract, source: Path, features: list[str],
                      chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file's chunks, each validated, keys unique over the whole file (rows in messages counted over it).

    One :class:`RepeatedHours` follows the file, so a naive wall time of the
    repeated autumn hour is the earlier instant at its entity's first row and
    the later one after, whichever chunks the rows fall in.
    """
    seen = _SeenKeys(contract, source, chunk_rows) if set(contract.key_columns) <= set(features) else None
    clock = RepeatedHours()
    offset = 0
    for chunk in iter_table(source, contract, columns=features, chunk_rows=chunk_rows, text_as_categories=True):
        if len(chunk) == 0:
            continue
        checked = _fast_check(contract, chunk, features, seen is None, clock)
        if checked is not None and checked.ok and (seen is None or seen.add(checked.values, offset, chunk)):
            valid = checked.values
            clock.add(checked.repeated)
        else:
            # A value refused, or a key repeated within the chunk: the contract decides and words the error.
            valid = contract.validate(_as_text(chunk), source=str(source), columns=features, row_offset=offset,
                                      clock=clock)
            if seen is not None:
                seen.add(valid, offset, chunk, repeats_checked=True)
        offset += len(chunk)
        yield valid


def _as_text(chunk: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as the plain reader gives them (text objects, None for null), for the contract's words."""
    text = {name: np.where(chunk[name].isna().to_numpy(), None, np.asarray(chunk[name], dtype=object))
            for name in chunk.columns if isinstance(chunk[name].dtype, pd.CategoricalDtype)}
    return chunk.assign(**text) if text else chunk


_BUCKET_BITS = 6
"""Key hashes are kept in 2**6 = 64 sorted arrays, by their top 6 bits (fewer or more cost the same, measured)."""


class _SeenKeys:
    """The (entity, time) key of every row validated so far, as 64-bit hashes: 8 bytes per row.

    Hashes are kept sorted in 64 arrays (by their top bits), so adding a
    chunk costs a sort, a binary search per row and a merge of each array
    (~12 ms per 100,000 rows at first, ~25 ms after 5 million rows).
    A hash seen in an earlier chunk is confirmed on the values by reading the
    key columns again up to that chunk (a repeated hash of different keys
    passes). A hash repeated within one chunk sends that chunk to the
    contract, which words a repeated key as it does for any frame.
    """

    def __init__(self, contract: DataContract, source: Path, chunk_rows: int) -> None:
        self.contract, self.source, self.chunk_rows = contract, source, chunk_rows
        self.keys = list(contract.key_columns)
        self._text = {name for name in self.keys if contract.rules.rule(name).kind in ("string", "category")}
        self._buckets = [np.zeros(0, dtype=np.uint64) for _ in range(2 ** _BUCKET_BITS)]
        self._edges = np.arange(2 ** _BUCKET_BITS + 1, dtype=np.uint64)

    def add(self, valid: pd.DataFrame, offset: int, read: pd.DataFrame,
            repeats_checked: bool = False) -> bool:
        """Remember the keys of ``valid`` (rows ``offset`` on), or ``DataError`` naming a repeat and its first row.

        ``read`` is the chunk as read: a text key column read as a Categorical
        holds the accepted values themselves (text is not converted), and is
        hashed once per category. Returns False, remembering nothing, if a
        hash repeats within ``valid`` itself (unless ``repeats_checked``: the
        contract found no repeated key in it): the caller has the contract
        check and word it.
        """
        keys = valid[self.keys]
        categorical = {name: read[name].array for name in self._text
                       if isinstance(read[name].dtype, pd.CategoricalDtype) and len(read) == len(valid)}
        hashes = _key_hashes(keys.assign(**categorical) if categorical else keys)
        ordered = np.sort(hashes)
        if not repeats_checked and (ordered[1:] == ordered[:-1]).any():
            return False
        bounds = np.searchsorted(ordered >> np.uint64(64 - _BUCKET_BITS), self._edges)
        seen_before = []
        for bucket in np.flatnonzero(bounds[1:] > bounds[:-1]):
            low, high = bounds[bucket], bounds[bucket + 1]
            new, old = ordered[low:high], self._buckets[bucket]
            at = np.searchsorted(old, new)
            if len(old):
                repeated = old[np.minimum(at, len(old) - 1)] == new
                if repeated.any():
                    seen_before.append(new[repeated])
            merged = np.empty(len(old) + len(new), dtype=np.uint64)
            places = at + np.arange(len(new))
            keep = np.ones(len(merged), dtype=bool)
            keep[places] = False
            merged[places], merged[keep] = new, old
            self._buckets[bucket] = merged
        if seen_before:
            self._refuse(valid, offset, np.flatnonzero(np.isin(hashes, np.concatenate(seen_before))))
        return True

    def _refuse(self, valid: pd.DataFrame, offset: int, positions: np.ndarray) -> None:
        """Find the first row of each repeated key in the rows before ``offset``; raise naming both rows."""
        wanted = _key_hashes(valid[self.keys].iloc[positions])
        first: dict[tuple[Any, ...], int] = {}
        rules = self.contract.rules
        clock = RepeatedHours()  # the keys read again as validation read them: the repeated hour in file order
        done = 0
        for chunk in iter_table(self.source, self.contract, columns=self.keys, chunk_rows=self.chunk_rows):
            if done >= offset:
                break
            chunk = chunk.iloc[:offset - done].reset_index(drop=True)
            checked = rules.check_frame(chunk, self.keys, check_keys=False, clock=clock)
            clock.add(checked.repeated)
            keys = checked.values
            for i in np.flatnonzero(np.isin(_key_hashes(keys), wanted)):
                first.setdefault(tuple(keys.iloc[i]), done + int(i))
            done += len(chunk)
        repeats = [(tuple(valid[self.keys].iloc[p]), offset + int(p)) for p in positions]
        repeats = [(key, row) for key, row in repeats if key in first]  # else only the hashes were equal
        if not repeats:
            return
        names = ", ".join(self.keys)
        examples = [f"({', '.join(show(v) for v in key)}) (row {row + 1}, the same key as row {first[key] + 1})"
                    for key, row in repeats[:3]]
        more = f", ... ({len(repeats)} repeated keys in rows {offset + 1}-{offset + len(valid)})" \
            if len(repeats) > 3 else ""
        raise DataError(f"{self.source}: 1 problem(s) against the data contract '{self.contract.name}':\n"
                        f"  - duplicate rows for ({names}): {', '.join(examples)}{more}")


def _key_hashes(keys: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of the (converted) key columns: equal keys, equal hashes."""
    return pd.util.hash_pandas_object(keys, index=False).to_numpy()


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

    def write(self, valid: pd.DataFrame, keys: list[str], prediction: np.ndarray, model_version: str,
              bundle_id: str) -> None:
        if self.kind == "csv":
            scored = valid[keys].copy()
            scored["prediction"] = prediction
            scored["model_version"] = model_version
            scored["bundle_id"] = bundle_id
            scored.to_csv(self.path, index=False, mode="a" if self._written else "w", header=not self._written)
            self._written = True
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = len(valid)
        table = pa.Table.from_pandas(valid, columns=keys, preserve_index=False)
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
