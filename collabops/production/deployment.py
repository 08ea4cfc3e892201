"""Deployment settings and the smoke test a new prediction service must pass.

The settings are the ``deployment`` block of ``configs/collaboration.yaml``:
the acceptance thresholds, whether a human approval is required, how the
service is run, and how many holdout rows the smoke test sends. The smoke
test talks to the freshly started service over HTTP exactly as a client
would, and compares its answers with the model's own predictions, so a
service that starts but serves the wrong model (or wrong numbers) never
replaces the running one.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Optional

from collabops.production.acceptance import AcceptanceThresholds
from collabops.errors import CollabopsError, ConfigError


class DeploymentError(CollabopsError):
    """A deployment was refused or failed; what was running before still runs."""


@dataclass(frozen=True)
class ServingSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    max_body_bytes: int = 4 * 1024 * 1024
    api_key_secret: Optional[str] = None


@dataclass(frozen=True)
class DeploymentSettings:
    thresholds: AcceptanceThresholds = field(default_factory=AcceptanceThresholds)
    metric: str = "mae"
    require_approval: bool = False
    serving: ServingSettings = field(default_factory=ServingSettings)
    smoke_rows: int = 20
    smoke_tolerance: float = 1e-6
    start_timeout: int = 120

    @classmethod
    def from_dict(cls, raw: Optional[dict[str, Any]], source: str = "deployment") -> "DeploymentSettings":
        raw = dict(raw or {})
        _refuse_unknown(raw, {"require_approval", "acceptance", "serving", "smoke_test", "start_timeout"}, source)
        acceptance = dict(raw.get("acceptance") or {})
        metric = str(acceptance.pop("metric", "mae"))
        serving_raw = dict(raw.get("serving") or {})
        _refuse_unknown(serving_raw, set(ServingSettings.__dataclass_fields__), f"{source}.serving")
        try:
            serving = ServingSettings(**serving_raw)
            port, workers, limit = int(serving.port), int(serving.workers), int(serving.max_body_bytes)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}.serving: {exc}") from None
        if not 0 < port < 65536 or workers < 1 or limit < 1024:
            raise ConfigError(f"{source}.serving: port must be 1-65535, workers >= 1, max_body_bytes >= 1024 "
                              f"(got port {port}, workers {workers}, max_body_bytes {limit})")
        smoke = dict(raw.get("smoke_test") or {})
        _refuse_unknown(smoke, {"rows", "tolerance"}, f"{source}.smoke_test")
        settings = cls(thresholds=AcceptanceThresholds.from_dict(acceptance), metric=metric,
                       require_approval=bool(raw.get("require_approval", False)),
                       serving=ServingSettings(host=str(serving.host), port=port, workers=workers,
                                               max_body_bytes=limit, api_key_secret=serving.api_key_secret or None),
                       smoke_rows=int(smoke.get("rows", 20)), smoke_tolerance=float(smoke.get("tolerance", 1e-6)),
                       start_timeout=int(raw.get("start_timeout", 120)))
        if settings.smoke_rows < 1:
            raise ConfigError(f"{source}.smoke_test.rows must be at least 1")
        return settings


def check_deployable(metadata: dict[str, Any], version: str, require_approval: bool) -> Optional[dict[str, Any]]:
    """Refuse a version that was not imported from a verified bundle, or lacks a required approval.

    Returns the recorded approval, if any. ``metadata`` is the model version's.
    """
    if "imported_bundle_id" not in metadata:
        raise DeploymentError(f"model version {version} was not imported from a verified model bundle; only imported "
                              "versions are deployed (run `python run.py import-model BUNDLE` first)")
    approval = metadata.get("approval") or None
    if require_approval and not approval:
        raise DeploymentError(f"model version {version} has no recorded approval and the collaboration config "
                              f"requires one: run `python run.py approve {version} --by YOUR_NAME`")
    return approval


def _refuse_unknown(raw: dict[str, Any], known: set[str], source: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _call(url: str, body: Optional[bytes], api_key: Optional[str], timeout: float) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")[:500]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DeploymentError(f"smoke test: {url} did not answer: {exc}") from None


def smoke_test(base_url: str, records: list[dict[str, Any]], expected: list[float], model_version: str,
               bundle_id: str, tolerance: float = 1e-6, api_key: Optional[str] = None,
               timeout: float = 30.0) -> list[str]:
    """Check a running service end to end; return what was checked, or raise ``DeploymentError``.

    ``records`` are raw rows as the industry stores them (the service must
    ignore the non-feature fields); ``expected`` are the model's own
    predictions for them, computed in this process.
    """
    base = base_url.rstrip("/")
    checked: list[str] = []
    status, health = _call(f"{base}/health", None, api_key, timeout)
    if status != 200:
        raise DeploymentError(f"smoke test: GET /health answered {status}: {health}")
    checked.append("GET /health: 200")
    status, meta = _call(f"{base}/metadata", None, api_key, timeout)
    if status != 200:
        raise DeploymentError(f"smoke test: GET /metadata answered {status}: {meta}")
    served = (str(meta.get("model_version")), str(meta.get("bundle_id")))
    if served != (str(model_version), str(bundle_id)):
        raise DeploymentError(f"smoke test: the service serves version {served[0]} of bundle {served[1]}, "
                              f"not version {model_version} of bundle {bundle_id}")
    checked.append(f"GET /metadata: version {model_version}, bundle {bundle_id}")
    body = json.dumps({"records": records}, default=str).encode("utf-8")
    status, answer = _call(f"{base}/predict", body, api_key, timeout)
    if status != 200:
        raise DeploymentError(f"smoke test: POST /predict with {len(records)} holdout rows answered {status}: {answer}")
    predictions = answer.get("predictions", [])
    if len(predictions) != len(expected):
        raise DeploymentError(f"smoke test: {len(predictions)} predictions for {len(expected)} rows")
    worst = max((abs(float(a) - float(b)) for a, b in zip(predictions, expected)), default=0.0)
    if math.isnan(worst) or worst > tolerance:
        raise DeploymentError(f"smoke test: served predictions differ from the model's by up to {worst:.3g} "
                              f"(tolerance {tolerance:g})")
    checked.append(f"POST /predict: {len(records)} holdout rows, max difference {worst:.2g} <= {tolerance:g}")
    return checked
