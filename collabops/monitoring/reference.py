"""What the production model's bundle brought for monitoring: its reference rows and its promise.

The model bundle's ``reference/monitoring.parquet`` holds the rows the model
was developed on (training, validation and test periods; personal columns
never), with the producer's ``prediction`` for each: the reference for data
drift, prediction drift and quality. Its ``metrics.json`` holds the error the
producer measured on its test period: the promise the live error is held to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from collabops.data.contract import DataContract
from collabops.errors import MonitoringError
from collabops.monitoring.current import PREDICTION

REFERENCE_FILE = "reference/monitoring.parquet"


def read_reference(bundle_root: Path, bundle_id: str, contract: DataContract) -> pd.DataFrame:
    """The bundle's reference rows, times on the contract's clock; ``MonitoringError`` when it has none.

    Needs the contract's time column, its feature columns and ``prediction``.
    """
    path = Path(bundle_root) / REFERENCE_FILE
    if not path.is_file():
        raise MonitoringError(f"model bundle {bundle_id} has no monitoring reference ({REFERENCE_FILE}): it was "
                              "handed over before bundles carried one, so there is nothing to compare with; ask the "
                              "model's developer for a new handover of this version (`python run.py handover`)")
    frame = pd.read_parquet(path)
    needed = [c for c in [*contract.feature_columns, PREDICTION] if c not in frame.columns]
    if needed:
        raise MonitoringError(f"model bundle {bundle_id}: {REFERENCE_FILE} lacks column(s) {', '.join(needed)}")
    if not len(frame):
        raise MonitoringError(f"model bundle {bundle_id}: {REFERENCE_FILE} has no rows")
    times = frame[contract.time_column]
    if getattr(times.dt, "tz", None) is None:
        raise MonitoringError(f"model bundle {bundle_id}: {REFERENCE_FILE} has times without a time zone")
    frame[contract.time_column] = times.dt.tz_convert(contract.time_zone)
    return frame


def promise(metrics: dict[str, Any], acceptance: dict[str, Any] | None, metric: str) -> dict[str, Any]:
    """The promised error: the bundle's test figure overall and per segment, and the gate's holdout figure.

    ``metrics``: the bundle's ``metrics.json`` (``{"test": {"overall": {...},
    "by_segment": {...}}}``); ``acceptance``: the version's ``acceptance``
    metadata (the gate's record, ``{"candidate": {"overall": {...}}}``) or None.
    """
    test = metrics.get("test") or {}
    overall = (test.get("overall") or {}).get(metric)
    segments = {str(k): float(v) for k, v in (test.get("by_segment") or {}).items() if isinstance(v, int | float)}
    holdout = (((acceptance or {}).get("candidate") or {}).get("overall") or {}).get(metric)
    return {"metric": metric, "overall": None if overall is None else float(overall), "by_segment": segments,
            "holdout": None if holdout is None else float(holdout)}
