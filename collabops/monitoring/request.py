"""The retraining request a ``drift`` verdict sends to the model developer inside a signed data bundle."""

from __future__ import annotations

import datetime as dt
from typing import Any


def retraining_request(verdict: str, reasons: list[str], drifted_features: list[str], period: dict[str, str],
                       production_version: str, production_bundle_id: str | None, live_error: dict[str, Any] | None,
                       monitoring_run: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The request as the data manifest's ``retraining_request`` holds it (``collabops.exchange.bundle``).

    ``period``: ``{"start", "end"}`` ISO 8601 with offsets; ``live_error``:
    a :meth:`LiveError.summary` or None. ``reason`` is the first (most
    severe) reason.
    """
    moment = now or dt.datetime.now(dt.UTC)
    error = None
    if live_error:
        error = {"metric": str(live_error["metric"]), "value": float(live_error["value"]),
                 "promised": None if live_error.get("promised") is None else float(live_error["promised"]),
                 "holdout": None if live_error.get("holdout") is None else float(live_error["holdout"]),
                 "rows": int(live_error["rows"])}
    return {"reason": reasons[0] if reasons else verdict, "verdict": verdict,
            "drifted_features": list(drifted_features), "period": dict(period),
            "production_version": str(production_version), "production_bundle_id": production_bundle_id,
            "live_error": error, "monitoring_run": monitoring_run, "requested_at": moment.isoformat()}
