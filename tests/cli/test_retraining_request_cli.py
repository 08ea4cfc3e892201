"""A data bundle with a retraining request: ``verify`` and ``train --data-bundle`` show it, in this process.

``verify`` touches no store. ``train --data-bundle`` is run with the stack
choice and the pipeline run replaced (the ``cli`` fixture's tripwires stay on
for everything else), so the test sees what it prints after verifying the
bundle and the parameters the training run would get.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collabops.data.contract import load_contract
from collabops.data.profile import profile
from collabops.exchange.bundle import Producer
from collabops.exchange.data_bundle import write_data_bundle
from collabops.exchange.signing import load_signer
from tests.cli.test_import_refusals import copy_of, reseal
from tests.conftest import CONTRACT, assert_refused, example_data, key_pair, write_project

REQUEST: dict[str, Any] = {
    "reason": "live MAE is 1.6 times what the model promised since March",
    "verdict": "drift",
    "drifted_features": ["price_per_hour", "temperature_c"],
    "period": {"start": "2025-03-01T00:00:00+01:00", "end": "2025-03-31T23:00:00+02:00"},
    "production_version": "3",
    "production_bundle_id": "6f1c2d3e-model",
    "live_error": {"metric": "mae", "value": 0.0612, "promised": 0.0377, "holdout": 0.0401, "rows": 1234},
    "monitoring_run": "monitoring-2025_04_01-06_00_00_000001",
    "requested_at": "2025-04-01T06:00:00+00:00",
}
SHOWN = [
    "retraining request from 'industry': drift in price_per_hour, temperature_c",
    f"  why:        {REQUEST['reason']}",
    "  period:     2025-03-01T00:00:00+01:00 to 2025-03-31T23:00:00+02:00",
    "  production: version 3 (model bundle 6f1c2d3e-model)",
    "  live error: mae 0.0612 on 1,234 rows (promised 0.0377, holdout 0.0401)",
    "  monitoring: run 'monitoring-2025_04_01-06_00_00_000001', requested at 2025-04-01T06:00:00+00:00",
]


@dataclass(frozen=True)
class Bundles:
    requested: Path
    ordinary: Path
    industry_key: Path
    project: Path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    base = tmp_path_factory.mktemp("retraining-request-cli")
    keys = base / "keys"
    industry_key = key_pair(keys, base / "industry-home", "industry")
    key_pair(keys, base / "university-home", "university")
    spec = load_contract(CONTRACT)
    frame = example_data(months=1, car_parks=2)
    signer = load_signer("industry", industry_key)
    written = [write_data_bundle(frame, spec, profile(frame, spec), Producer(partner="industry"), signer,
                                 base / "exchange", retraining_request=request)[0] for request in (REQUEST, None)]
    return Bundles(*written, industry_key, write_project(base / "university", keys_dir=keys))


def test_verify_shows_the_request_of_a_data_bundle(cli, bundles):
    result = cli("verify", bundles.requested, "--project", bundles.project)
    assert result.code == 0, result
    lines = result.out.splitlines()
    verified = next(i for i, line in enumerate(lines) if line.startswith("verified: data bundle"))
    assert lines[verified + 1:verified + 1 + len(SHOWN)] == SHOWN, result
    assert '"retraining_request": {' in result.out  # the printed manifest holds it too


def test_verify_shows_no_request_for_an_ordinary_data_bundle(cli, bundles):
    result = cli("verify", bundles.ordinary, "--project", bundles.project)
    assert result.code == 0, result
    assert "retraining request" not in result.out and "retraining_request" not in result.out


def test_verify_refuses_a_request_of_the_wrong_shape_naming_the_field(cli, bundles, tmp_path):
    root = copy_of(bundles.requested, tmp_path)
    broken = copy.deepcopy(REQUEST)
    broken["period"] = {"start": "2025-04-01T00:00:00+00:00", "end": "2025-03-01T00:00:00+00:00"}
    reseal(root, bundles.industry_key, partner="industry",
           change=lambda manifest: manifest.update(retraining_request=broken))
    assert_refused(cli("verify", root, "--project", bundles.project),
                   "check 'manifest' failed: retraining_request.period: starts (2025-04-01T00:00:00+00:00) after "
                   "it ends (2025-03-01T00:00:00+00:00)")


def test_verify_refuses_a_request_changed_after_signing(cli, bundles, tmp_path):
    root = copy_of(bundles.requested, tmp_path)
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    manifest["retraining_request"]["reason"] = "routine refresh"
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert_refused(cli("verify", root, "--project", bundles.project), "check 'signature' failed")


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``train``'s stack choice answers the university's stack; the run is not started, its parameters are kept."""
    import cli.training
    from orchestration import workspace

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(workspace, "use_stack", lambda project, partner, stack, **_: ("university-local", "university"))
    monkeypatch.setattr(workspace, "experiment_tracker_name", lambda: None)
    monkeypatch.setattr(workspace, "code_revision", lambda: None)
    monkeypatch.setattr(cli.training, "_train_and_report",
                        lambda project, config, stack, partner: started.append(config["parameters"]) or 0)
    return started


def test_train_on_a_data_bundle_shows_the_request_after_verifying_it(cli, bundles, no_run):
    result = cli("train", "--data-bundle", bundles.requested, "--project", bundles.project)
    assert result.code == 0, result
    lines = result.out.splitlines()
    manifest = json.loads((bundles.requested / "manifest.json").read_text(encoding="utf-8"))
    verified = lines.index(f"verified data bundle {manifest['bundle_id']} signed by 'industry'")
    assert lines[verified + 1:verified + 1 + len(SHOWN)] == SHOWN, result
    assert lines[verified + 1 + len(SHOWN)].startswith("training "), result
    assert len(no_run) == 1 and no_run[0]["data_bundle_manifest"]["retraining_request"] == REQUEST


def test_train_on_an_ordinary_data_bundle_shows_no_request(cli, bundles, no_run):
    result = cli("train", "--data-bundle", bundles.ordinary, "--project", bundles.project)
    assert result.code == 0, result
    assert "retraining request" not in result.out
    assert len(no_run) == 1 and "retraining_request" not in no_run[0]["data_bundle_manifest"]
