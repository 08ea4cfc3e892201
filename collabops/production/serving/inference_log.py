"""The inference log: every served row with its prediction and identity, as Parquet files written off the request path.

Files are ``inference-<UTC yyyymmddTHHMMSS>-<pid>-<sequence>.parquet`` with
the feature columns (as pandera would have typed them), then ``prediction``,
``model_version``, ``bundle_id`` and ``served_at`` (UTC, ns). Each is written
as a hidden ``.partial`` file first and renamed, so a reader never sees half
a file; the PID in the name lets several workers share one folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from collabops.data.contract import DataContract

logger = logging.getLogger("collabops.production.serving")


@dataclass(frozen=True)
class _CompiledEntry:
    """Served rows of the compiled path, turned into a frame only when the log is flushed."""

    rows: list[tuple[Any, ...]]
    predictions: list[float]
    served_at: float


class InferenceLog:
    """Buffers served rows and writes them as Parquet files from a background thread.

    Compiled-path requests are buffered as plain rows and become a frame (the
    same columns and dtypes as the pandera path) in the flush thread, so the
    request itself does no pandas work. File names carry the process id, so
    several workers can share one directory.
    """

    def __init__(self, directory: Path | None, flush_seconds: float,
                 contract: DataContract | None = None, features: list[str] | None = None,
                 identity: dict[str, str] | None = None) -> None:
        """``directory`` None: log nothing. ``flush_seconds``: how often the background thread writes."""
        self.directory = directory
        self.contract, self.features, self.identity = contract, features, identity or {}
        self._buffer: list[Any] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._sequence = 0
        self._thread: threading.Thread | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, args=(flush_seconds,), daemon=True,
                                            name="inference-log")
            self._thread.start()

    def append(self, frame: pd.DataFrame) -> None:
        """A pandera-path frame: the features plus ``prediction``, ``model_version``, ``bundle_id``, ``served_at``."""
        if self.directory is not None:
            with self._lock:
                self._buffer.append(frame)

    def append_rows(self, rows: list[tuple[Any, ...]], predictions: list[float]) -> None:
        """Compiled-path rows (feature order) and their predictions; made a frame only when flushed."""
        if self.directory is not None:
            entry = _CompiledEntry(rows, predictions, time.time())
            with self._lock:
                self._buffer.append(entry)

    def flush(self) -> None:
        """Write what is buffered as one file now (nothing when the buffer is empty)."""
        import pandas as pd

        with self._write_lock:
            with self._lock:
                pending, self._buffer = self._buffer, []
            if not pending or self.directory is None:
                return
            self._sequence += 1
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            final = self.directory / f"inference-{stamp}-{os.getpid()}-{self._sequence:06d}.parquet"
            partial = final.with_name(f".{final.name}.partial")
            pd.concat(self._frames(pending), ignore_index=True).to_parquet(partial, index=False)
            partial.replace(final)

    def _frames(self, pending: list[Any]) -> list[pd.DataFrame]:
        """The buffer as frames, consecutive compiled-path entries joined into one."""
        frames: list[pd.DataFrame] = []
        run: list[_CompiledEntry] = []
        for entry in [*pending, None]:
            if isinstance(entry, _CompiledEntry):
                run.append(entry)
                continue
            if run:
                frames.append(self._compiled_frame(run))
                run = []
            if entry is not None:
                frames.append(entry)
        return frames

    def _compiled_frame(self, entries: list[_CompiledEntry]) -> pd.DataFrame:
        import pandas as pd

        from collabops.production.compiled import frame_from_rows

        assert self.contract is not None and self.features is not None
        rows = [row for entry in entries for row in entry.rows]
        frame = frame_from_rows(rows, self.contract, self.features)
        served = [entry.served_at for entry in entries for _ in entry.rows]
        return frame.assign(prediction=[p for entry in entries for p in entry.predictions],
                            model_version=self.identity.get("model_version"),
                            bundle_id=self.identity.get("bundle_id"),
                            served_at=pd.to_datetime(served, unit="s", utc=True).as_unit("ns"))

    def close(self) -> None:
        """Stop the background thread and write what is still buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self, flush_seconds: float) -> None:
        while not self._stop.wait(flush_seconds):
            try:
                self.flush()
            except Exception:
                logger.exception("inference log: flush failed")
