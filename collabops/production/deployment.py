"""What a version must be to deploy, and the smoke test a new prediction service must pass.

The settings (the ``deployment`` block of the project file) are
:class:`collabops.settings.DeploymentSettings`. The smoke test talks to the
freshly started service over HTTP exactly as a client would, and compares
its answers with the model's own predictions, so a service that starts but
serves the wrong model (or wrong numbers) never replaces the running one.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any

from collabops.errors import CollabopsError


class DeploymentError(CollabopsError):
    """A deployment was refused or failed; what was running before still runs."""


def check_deployable(metadata: dict[str, Any], version: str, require_approval: bool) -> dict[str, Any] | None:
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


def _call(url: str, body: bytes | None, api_key: str | None, timeout: float) -> tuple[int, Any]:
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
               bundle_id: str, tolerance: float = 1e-6, api_key: str | None = None,
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
    worst = max((abs(float(a) - float(b)) for a, b in zip(predictions, expected, strict=True)), default=0.0)
    if math.isnan(worst) or worst > tolerance:
        raise DeploymentError(f"smoke test: served predictions differ from the model's by up to {worst:.3g} "
                              f"(tolerance {tolerance:g})")
    checked.append(f"POST /predict: {len(records)} holdout rows, max difference {worst:.2g} <= {tolerance:g}")
    return checked
