"""The current period's rows: the service's inference log or a file, with the outcomes that have arrived.

One clock: every time is read on the contract's time zone. ``--since`` and
``--until`` are dates (local midnight in the zone) or ISO 8601 times; a time
with an offset (``2025-01-01T00:00:00+00:00``) is converted into the zone, a
time without one is wall time there. The period runs from ``since``
(inclusive) to the end of ``until`` (a date: the whole day; a time: that
instant, inclusive). It selects rows by the contract's time column, the hour
the row describes. Without dates, the log's rows are those served after the
last monitoring of the same model version (its ``served_at`` watermark).

The inference log (``collabops.production.serving.inference_log``) is read
file by file: files still being written (hidden ``.partial``) are left out,
and a file that cannot be read (cut off mid-write, damaged) is left out with
a note that makes the verdict at least a warning. Text columns are read as
categories (no Python string per row), so millions of rows fit in memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from collabops.data.contract import DataContract
from collabops.errors import ConfigError, DataError, MonitoringError

PREDICTION = "prediction"
"""The inference log's prediction column (and a current file's, when it brings its own predictions)."""
LOG_PATTERN = "inference-*.parquet"


@dataclass(frozen=True)
class Period:
    """``[start, end]`` on the contract's clock (aware), either end open (None)."""

    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    @property
    def given(self) -> bool:
        return self.start is not None or self.end is not None

    def mask(self, times: pd.Series) -> pd.Series:
        keep = pd.Series(True, index=times.index)
        if self.start is not None:
            keep &= times >= self.start
        if self.end is not None:
            keep &= times <= self.end
        return keep

    def describe(self) -> str:
        return (f"{self.start.isoformat() if self.start is not None else 'the beginning'} to "
                f"{self.end.isoformat() if self.end is not None else 'now'}")


def parse_moment(text: str, time_zone: str, option: str, end: bool = False) -> pd.Timestamp:
    """``--since``/``--until`` text as an aware time in ``time_zone``; ``ConfigError`` naming ``option``.

    ``YYYY-MM-DD``: that day's local midnight (``end``: the last nanosecond of
    the day). An ISO 8601 time with an offset is converted into the zone; one
    without is wall time in the zone (a wall time the zone skips is refused).
    """
    text = str(text).strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            moment = pd.Timestamp(day).tz_localize(time_zone)
            if end:
                moment = (pd.Timestamp(day + dt.timedelta(days=1)).tz_localize(time_zone)
                          - pd.Timedelta(1, "ns"))
            return moment
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} '{text}' is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    except Exception as exc:  # noqa: BLE001 - pandas' errors for a wall time the zone skips
        raise ConfigError(f"{option} '{text}': {exc}") from None
    stamp = pd.Timestamp(parsed)
    if stamp.tzinfo is not None:
        return stamp.tz_convert(time_zone)
    try:
        return stamp.tz_localize(time_zone, nonexistent="raise", ambiguous="raise")
    except Exception:  # noqa: BLE001 - NonExistentTimeError / AmbiguousTimeError
        raise ConfigError(f"{option} '{text}' is not one instant in {time_zone} (a skipped or repeated wall "
                          "time); give it with its offset") from None


def parse_period(since: str | None, until: str | None, time_zone: str) -> Period:
    """The period the options name; ``ConfigError`` when ``--since`` is after ``--until``."""
    period = Period(parse_moment(since, time_zone, "--since") if since else None,
                    parse_moment(until, time_zone, "--until", end=True) if until else None)
    if period.start is not None and period.end is not None and period.start > period.end:
        raise ConfigError(f"--since {since} is after --until {until}")
    return period


@dataclass
class CurrentData:
    """The period's rows (contract columns it has, ``prediction``, the target where known) and where they came from."""

    frame: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)
    """Parts of the input left out (unreadable log files): each makes the verdict at least a warning."""
    watermark: str | None = None
    """The latest ``served_at`` read from the log (ISO 8601, UTC): the next run starts after it."""
    outcomes: int = 0
    """Rows whose outcome is known."""

    def period(self, time_column: str) -> dict[str, str | None]:
        times = self.frame[time_column]
        return {"start": times.min().isoformat() if len(times) else None,
                "end": times.max().isoformat() if len(times) else None}


def _on_clock(series: pd.Series, time_zone: str) -> pd.Series:
    if getattr(series.dt, "tz", None) is None:
        raise DataError(f"times without a time zone in the inference log ({series.name})")
    return series.dt.tz_convert(time_zone)


def read_inference_log(folder: Path, contract: DataContract, model_version: str, after: str | None = None,
                       period: Period | None = None) -> CurrentData:
    """The log rows of ``model_version`` served after ``after`` (ISO 8601) and, with ``period``, inside it.

    Raises ``MonitoringError`` when the folder does not exist. Returns the
    rows with the contract's feature columns the files hold, ``prediction``,
    ``served_at``; possibly no rows (the caller says what to do).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not folder.is_dir():
        raise MonitoringError(f"no inference log at {folder}: the service has not served this model here "
                              "(deploy it, or give the period's rows with --data FILE)")
    notes: list[str] = []
    partial = list(folder.glob(".inference-*.partial"))
    if partial:
        notes.append(f"{len(partial)} inference-log file(s) still being written were left out")
    wanted = [*contract.feature_columns, PREDICTION, "model_version", "served_at"]
    threshold = pd.Timestamp(after) if after else None
    tables = []
    for path in sorted(folder.glob(LOG_PATTERN)):
        try:
            file = pq.ParquetFile(path)
            columns = [c for c in wanted if c in file.schema_arrow.names]
            table = file.read(columns=columns)
        except Exception as exc:  # noqa: BLE001 - a file cut off mid-write or damaged: left out, said so
            notes.append(f"inference-log file {path.name} cannot be read ({str(exc).splitlines()[0][:120]}); "
                         "left out")
            continue
        if "model_version" in table.column_names:
            table = table.filter(pc.equal(pc.cast(table["model_version"], pa.string()), str(model_version)))
        if threshold is not None and "served_at" in table.column_names:
            table = table.filter(pc.greater(table["served_at"].cast(pa.int64()), threshold.value))  # UTC ns
        if table.num_rows:
            tables.append(table)
    if not tables:
        return CurrentData(frame=pd.DataFrame(columns=wanted), source=str(folder), notes=notes)
    table = pa.concat_tables(tables, promote_options="default")
    frame = table.to_pandas(strings_to_categorical=True)
    frame[contract.time_column] = _on_clock(frame[contract.time_column], contract.time_zone)
    watermark = frame["served_at"].max().isoformat() if "served_at" in frame.columns else None
    if period is not None and period.given:
        frame = frame.loc[period.mask(frame[contract.time_column])].reset_index(drop=True)
    return CurrentData(frame=frame, source=f"inference log {folder}", notes=notes, watermark=watermark)


def count_log_rows(folder: Path, contract: DataContract, model_version: str, after: str | None = None,
                   period: Period | None = None) -> int:
    """How many rows :func:`read_inference_log` would return, reading only the time, version and ``served_at``
    columns (for a refusal before any run); 0 when the folder does not exist."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not folder.is_dir():
        return 0
    threshold = pd.Timestamp(after) if after else None
    count = 0
    for path in sorted(folder.glob(LOG_PATTERN)):
        try:
            file = pq.ParquetFile(path)
            wanted = [c for c in (contract.time_column, "model_version", "served_at") if c in file.schema_arrow.names]
            table = file.read(columns=wanted)
        except Exception:  # noqa: BLE001 - unreadable files are the run's to report
            continue
        if "model_version" in table.column_names:
            table = table.filter(pc.equal(pc.cast(table["model_version"], pa.string()), str(model_version)))
        if threshold is not None and "served_at" in table.column_names:
            table = table.filter(pc.greater(table["served_at"].cast(pa.int64()), threshold.value))
        if period is not None and period.given and contract.time_column in table.column_names:
            times = table[contract.time_column].to_pandas()
            if getattr(times.dt, "tz", None) is not None:
                count += int(period.mask(times.dt.tz_convert(contract.time_zone)).sum())
            continue
        count += table.num_rows
    return count


def read_current_file(path: Path, contract: DataContract, period: Period | None = None) -> CurrentData:
    """The rows of a CSV/Parquet file, checked by the contract (its one rule set), inside ``period``.

    The file needs the contract's time column (and entity column); features
    it lacks are reported by the quality check, not refused here. A
    ``prediction`` column is kept as the model's predictions (the caller
    predicts when there is none); the target is kept as outcomes. Raises
    ``DataError`` naming the file, column and row for values the contract
    refuses.
    """
    from collabops.data.dataset import read_table

    frame = read_table(path, contract)
    present = [c for c in contract.column_names if c in frame.columns]
    needed = [c for c in contract.key_columns if c not in present]
    if needed:
        raise DataError(f"{path}: missing required column(s) {', '.join(repr(c) for c in needed)} (monitoring "
                        f"needs the time and entity of every row; the file has: {', '.join(map(str, frame.columns))})")
    checked = contract.validate(frame, source=str(path), columns=present)
    if PREDICTION in frame.columns:
        predictions = pd.to_numeric(frame[PREDICTION], errors="coerce")
        bad = predictions.isna() & frame[PREDICTION].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0]) + 1
            raise DataError(f"{path}: column 'prediction': {frame[PREDICTION].iloc[row - 1]!r} is not a number "
                            f"(row {row})")
        checked[PREDICTION] = predictions.astype("float64").to_numpy()
    if period is not None and period.given:
        checked = checked.loc[period.mask(checked[contract.time_column])].reset_index(drop=True)
    outcomes = int(checked[contract.target].notna().sum()) if contract.target in checked.columns else 0
    return CurrentData(frame=checked, source=str(path), outcomes=outcomes)


def join_outcomes(current: CurrentData, path: Path, contract: DataContract) -> CurrentData:
    """Add the target from an outcomes file by the (entity, time) key, compared as instants on the contract's clock.

    The file needs the key columns and the target, checked by the contract;
    a key it holds twice is refused by the contract's rules. Rows without an
    arrived outcome keep a missing target. Where the current rows already
    have an outcome, the file's is used only where theirs is missing.
    """
    from collabops.data.dataset import read_table

    frame = read_table(path, contract)
    columns = [*contract.key_columns, contract.target]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing required column(s) {', '.join(repr(c) for c in missing)} (outcomes "
                        "need the key and the target)")
    outcomes = contract.validate(frame, source=str(path), columns=columns)
    keys = contract.key_columns
    rows = current.frame
    if not len(rows):
        return current
    joinable = rows[keys].copy()
    for key in keys:
        if isinstance(joinable[key].dtype, pd.CategoricalDtype):
            joinable[key] = joinable[key].astype(str)
    for key in keys:
        if key != contract.time_column:
            outcomes[key] = outcomes[key].astype(str)
    merged = joinable.merge(outcomes, on=keys, how="left", validate="many_to_one")
    arrived = merged[contract.target].to_numpy()
    if len(outcomes) and not pd.notna(arrived).any():
        current.notes.append(f"outcomes file {path}: none of its {len(outcomes):,} rows match a row of the period by "
                             f"({', '.join(keys)}); is it the right file?")
    if contract.target in rows.columns:
        rows[contract.target] = rows[contract.target].where(rows[contract.target].notna(), arrived)
    else:
        rows[contract.target] = arrived
    current.outcomes = int(rows[contract.target].notna().sum())
    current.source += f", outcomes from {path}"
    return current


def full_rows(path: Path, contract: DataContract, start: str, end: str) -> pd.DataFrame | None:
    """The rows of ``path`` with every contract column (what an export needs) from ``start`` to ``end`` (ISO 8601,
    inclusive), checked by the contract; None when the file lacks a contract column."""
    from collabops.data.dataset import read_table

    frame = read_table(path, contract)
    if any(c not in frame.columns for c in contract.column_names):
        return None
    frame = contract.validate(frame, source=str(path))
    times = frame[contract.time_column]
    inside = (times >= pd.Timestamp(start)) & (times <= pd.Timestamp(end))
    return frame.loc[inside].reset_index(drop=True)
