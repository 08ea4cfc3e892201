"""A data profile: per-column statistics a partner can read without the data.

The university reads it before training; the model bundle carries the
training data's profile as the reference for drift monitoring. It says
which clock its times are on (``time_zone``, the contract's); the first and
last times are ISO 8601 with their offset.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from collabops.data.contract import DataContract

TOP_CATEGORIES = 20


def profile(frame: pd.DataFrame, contract: DataContract) -> dict[str, Any]:
    """Counts, nulls and the distribution summary of every contract column, and the clock of the times.

    Returns ``{"rows", "contract", "contract_digest", "time_zone", "columns"}``;
    a datetime column's ``min``/``max`` are ISO 8601 text with the offset
    (``2024-10-27T02:00:00+01:00``; None for a column of nulls only).
    """
    columns: dict[str, Any] = {}
    for spec in contract.columns:
        series = frame[spec.name]
        entry: dict[str, Any] = {"type": spec.type, "count": int(series.notna().sum()),
                                 "nulls": int(series.isna().sum()), "personal": spec.personal}
        if spec.type in ("int", "float"):
            values = series.dropna().astype(float)
            if len(values):
                quantiles = values.quantile([0.01, 0.25, 0.5, 0.75, 0.99]).tolist()
                entry.update(mean=float(values.mean()), std=float(values.std()), min=float(values.min()),
                             max=float(values.max()),
                             quantiles=dict(zip(["p01", "p25", "p50", "p75", "p99"], quantiles, strict=True)))
        elif spec.type == "datetime":
            entry.update(min=_iso(series.min()), max=_iso(series.max()), time_zone=contract.time_zone)
        elif spec.type == "bool":
            entry.update(true_share=float(series.astype(float).mean()))
        elif not spec.personal:
            counts = series.value_counts().head(TOP_CATEGORIES)
            entry.update(distinct=int(series.nunique()), top={str(k): int(v) for k, v in counts.items()})
        else:
            entry.update(distinct=int(series.nunique()))
        columns[spec.name] = entry
    return {"rows": len(frame), "contract": contract.name, "contract_digest": contract.digest(),
            "time_zone": contract.time_zone, "columns": columns}


def clock(contract: DataContract) -> dict[str, Any]:
    """What a bundle's manifest says about its times: ``{"time_zone": <IANA name>}`` (the contract's clock).

    For ``exchange.data_bundle.write_data_bundle`` to add to the manifest's
    extra fields, so a reader learns the zone without opening the data.
    """
    return {"time_zone": contract.time_zone}


def _iso(moment: Any) -> str | None:
    """A time as ISO 8601 text (an aware time with its offset), None for a missing one."""
    if moment is None or pd.isna(moment):
        return None
    return pd.Timestamp(moment).isoformat()
