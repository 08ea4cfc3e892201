"""Taking imported models into production on the industry stack, through ``python run.py``.

The industry world is a copy of the repository with its own ZenML store; the
university's side is played by this test: it fits models on the exported
data bundle and signs model bundles with a university key, exactly the
format `run.py handover` writes (the handover itself is tested in
test_handover.py). Prediction services are real processes on 127.0.0.1,
started by the deployment pipeline; the module stops them by PID at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import Workspace, copy_project

MODEL = "parking-occupancy"
STATE = """
import json
from zenml.client import Client
from zenml.enums import ModelStages
c = Client()
out = {}
for v in c.list_model_versions(model_name_or_id="parking-occupancy", size=100).items:
    v = c.get_model_version("parking-occupancy", v.id)
    md = v.run_metadata or {}
    out[str(v.name)] = {"stage": str(v.stage), "acceptance": md.get("acceptance"), "approval": md.get("approval"),
                        "deployment": md.get("deployment")}
print(json.dumps(out, default=str))
"""
PIDS = """
import json
from zenml.client import Client
print(json.dumps([s.status.get("runtime_path") for s in Client().list_services(size=100, hydrate=True).items]))
"""


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def _serving_url(ws: Workspace) -> str:
    """The URL `run.py status` reports for the running service."""
    found = re.search(r"url:\s+(http://\S+)", ws.run("status").stdout)
    assert found, "no running service"
    return found.group(1)


RECORD = {"timestamp": "2024-05-01T08:00:00", "car_park_id": "CP001", "car_park_kind": "city_centre", "capacity": 500,
          "temperature_c": 12.0, "rain_mm": 0.0, "is_holiday": False, "event_nearby": False, "price_per_hour": 30.0}


def _predict(url: str, api_key: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"X-API-Key": api_key} if api_key else {})}
    request = urllib.request.Request(f"{url}/predict", data=json.dumps({"records": [RECORD]}).encode(),
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _url(output: str) -> str:
    found = re.search(r"serving at (http://\S+)", output)
    assert found, output[-2000:]
    return found.group(1)


def _university_bundle(data_bundle: Path, keys: Path, private: Path, out: Path, max_iter: int,
                       trained_on: str) -> Path:
    """What `run.py handover` sends: a model fitted on the exported data, signed by the university."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    from collabops.exchange.bundle import Producer
    from collabops.data.contract import load_contract
    from collabops.training.features import build_model
    from collabops.exchange.model_bundle import write_model_bundle
    from collabops.data.profile import profile
    from collabops.exchange.signing import load_signer

    contract = load_contract(data_bundle / "contract.yaml")
    frame = pd.read_parquet(next((data_bundle / "data").glob("*.parquet")))
    model = build_model(contract, HistGradientBoostingRegressor(max_iter=max_iter, random_state=0))
    model.fit(frame[contract.feature_columns], frame[contract.target])
    reference = frame.drop(columns=contract.personal_columns)
    metrics = {"test": {"overall": {"mae": 0.03}, "by_segment": {}}}
    path, _ = write_model_bundle(model, contract, metrics, profile(frame, contract), reference.head(500),
                                 "# test model\n", Producer(partner="university", stack="university-local"),
                                 load_signer("university", private), out,
                                 extra={"model": {"name": MODEL, "version": str(max_iter),
                                                  "training_data_bundle_id": trained_on}})
    return path


@pytest.fixture(scope="module")
def industry(tmp_path_factory):
    from collabops.exchange.signing import generate_key_pair

    base = tmp_path_factory.mktemp("deployment")
    ws = Workspace(copy_project(base / "industry"), base / "industry-zenml",
                   {"XDG_CONFIG_HOME": str(base / "industry-home"),
                    "COLLABOPS_PSEUDONYMISATION_KEY": "industry-only-secret-0123456789"})
    shutil.rmtree(ws.root / "keys", ignore_errors=True)
    (ws.root / "keys").mkdir()
    config_path = ws.root / "configs" / "collaboration.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["deployment"]["serving"]["workers"] = 1  # several workers are tested in tests/service; here: start fast
    config_path.write_text(yaml.safe_dump(config))
    assert ws.run("keys", "init", "--partner", "industry").returncode == 0
    university_key = base / "university-home" / "university.key"
    generate_key_pair(university_key, ws.root / "keys" / "university.pub", "university")
    raw = base / "raw.parquet"
    assert ws.run("generate-data", "--out", str(raw), "--months", "4", "--car-parks", "8").returncode == 0
    exported = ws.run("export-data", "--data", str(raw), "--out", str(base / "exchange"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    data_bundle = next((base / "exchange").glob("data-*"))
    data_id = json.loads((data_bundle / "manifest.json").read_text())["bundle_id"]
    good = _university_bundle(data_bundle, ws.root / "keys", university_key, base / "exchange", 60, data_id)
    worse = _university_bundle(data_bundle, ws.root / "keys", university_key, base / "exchange", 3, data_id)
    imported = ws.run("import-model", str(good))
    assert imported.returncode == 0, imported.stderr[-3000:]
    yield ws, good, worse
    ws.run("undeploy")
    for runtime in ws.query(PIDS):  # whatever a failed test left behind
        pid_file = Path(runtime or "") / "service.pid"
        if pid_file.is_file():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


def test_an_imported_model_passes_the_gate_and_serves_in_production(industry):
    ws, _, _ = industry
    deployed = ws.run("deploy")
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    assert "# Acceptance gate: PASSED" in deployed.stdout
    assert "smoke test: GET /health: 200" in deployed.stdout
    url = _url(deployed.stdout)
    assert _get(f"{url}/health")["model_version"] == "1"
    state = ws.query(STATE)
    assert state["1"]["stage"] == "production" and state["1"]["acceptance"]["passed"] is True
    listed = ws.zenml("model", "version", "list", "--model", MODEL)
    assert listed.returncode == 0 and re.search(r"production", listed.stdout), listed.stdout + listed.stderr
    status = ws.run("status")
    assert status.returncode == 0 and f"url:           {url}" in status.stdout
    assert "model version: 1 (production)" in status.stdout and "producer:      university" in status.stdout


REFUSED = [
    (["deploy", "--version", "abc"], "--version 'abc' is neither a version number nor latest-imported"),
    (["deploy", "--version", "99"], "model 'parking-occupancy' has no version 99 on stack 'industry-local'"),
    (["deploy", "--partner", "university"], "stack 'university-local' has no model deployer"),
    (["approve", "1", "--by", " "], "--by must name who approves"),
    (["approve", "first", "--by", "Ops"], "VERSION 'first' is not a version number"),
    (["rollback"], "production version 1 replaced no earlier production version; there is nothing to roll back to"),
]


def test_bad_deployment_commands_are_refused_and_production_is_untouched(industry):
    ws, _, _ = industry
    url = _serving_url(ws)
    for args, message in REFUSED:
        result = ws.run(*args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, args
    assert ws.query(STATE)["1"]["stage"] == "production"
    assert _get(f"{url}/health")["model_version"] == "1"


def test_the_gate_refuses_a_worse_model_and_production_is_untouched(industry):
    ws, _, worse = industry
    url = _serving_url(ws)
    assert ws.run("import-model", str(worse)).returncode == 0
    refused = ws.run("deploy", "--version", "2")
    assert refused.returncode == 1
    assert "acceptance gate refused model version 2" in refused.stderr and "Production is unchanged" in refused.stderr
    assert "is worse than production's" in refused.stderr and "# Acceptance gate: FAILED" in refused.stderr
    state = ws.query(STATE)
    assert state["2"]["acceptance"]["passed"] is False and state["2"]["stage"] != "production"
    assert state["1"]["stage"] == "production"
    assert _get(f"{url}/health")["model_version"] == "1"


def test_deploy_refuses_an_unapproved_version_when_approval_is_required(industry):
    ws, good, _ = industry
    config_path = ws.root / "configs" / "collaboration.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["deployment"]["require_approval"] = True
    config_path.write_text(yaml.safe_dump(config))
    try:
        assert ws.run("import-model", str(good)).returncode == 0  # version 3: the good model again
        refused = ws.run("deploy", "--version", "3")
        assert refused.returncode == 1 and "python run.py approve 3 --by" in refused.stderr
        approved = ws.run("approve", "3", "--by", "Ops Lead", "--note", "holdout report read")
        assert approved.returncode == 0, approved.stderr[-2000:]
        assert ws.query(STATE)["3"]["approval"]["by"] == "Ops Lead"
    finally:
        config_path.write_text(original)


def test_a_failed_smoke_test_leaves_the_running_service_alone(industry):
    ws, _, _ = industry
    url = _serving_url(ws)
    key = ws.root / "keys" / "university.pub"
    revoked = key.read_bytes()
    key.unlink()  # the university's key is withdrawn: a new service refuses to load the bundle
    try:
        failed = ws.run("deploy", "--version", "3")
    finally:
        key.write_bytes(revoked)
    assert failed.returncode == 1
    assert "the prediction service for version 3 did not start" in failed.stderr
    assert "university" in failed.stderr  # the service's own refusal, from its log
    assert _get(f"{url}/health")["model_version"] == "1"
    assert ws.query(STATE)["1"]["stage"] == "production"
    assert len(re.findall(r"^  service \S+: running$", ws.run("status").stdout, re.M)) == 1


def test_a_new_version_replaces_the_old_service_and_rollback_restores_it(industry):
    ws, _, _ = industry
    old_url = _serving_url(ws)
    # From now on the service wants an API key, kept in the ZenML secret store.
    created = ws.zenml("secret", "create", "serving-key", "--api_key=key-for-tests-only")
    assert created.returncode == 0, created.stderr[-2000:]
    config_path = ws.root / "configs" / "collaboration.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["deployment"]["serving"]["api_key_secret"] = "serving-key"
    config_path.write_text(yaml.safe_dump(config))
    try:
        deployed = ws.run("deploy", "--version", "3")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        new_url = _url(deployed.stdout)
        assert new_url != old_url and "retired: version 1" in deployed.stdout
        assert _get(f"{new_url}/metadata")["model_version"] == "3"
        assert _predict(new_url)[0] == 401
        status, answer = _predict(new_url, "key-for-tests-only")
        assert status == 200 and answer["model_version"] == "3" and 0 <= answer["predictions"][0] <= 1.2
        with pytest.raises(urllib.error.URLError):
            _get(f"{old_url}/health")
        state = ws.query(STATE)
        assert state["3"]["stage"] == "production" and state["3"]["deployment"]["replaced_version"] == "1"
        assert state["1"]["stage"] != "production"

        rolled = ws.run("rollback")
        assert rolled.returncode == 0, rolled.stderr[-3000:]
        assert "rolling back parking-occupancy from version 3 to version 1" in rolled.stdout
        back_url = _url(rolled.stdout)
        assert _get(f"{back_url}/metadata")["model_version"] == "1"
        assert _predict(back_url, "key-for-tests-only")[1]["model_version"] == "1"
        assert ws.query(STATE)["1"]["stage"] == "production"
        assert "model version: 1 (production)" in ws.run("status").stdout
    finally:
        config_path.write_text(original)


def test_a_killed_service_is_reported_and_a_redeploy_serves_the_same_model_again(industry):
    ws, _, _ = industry
    url = _serving_url(ws)
    before = _get(f"{url}/metadata")
    pid = int(re.search(r"pid:\s+(\d+)", ws.run("status").stdout).group(1))
    os.kill(pid, signal.SIGKILL)
    status = ws.run("status").stdout
    assert "not running" in status and "restart:       python run.py deploy --version 1" in status
    restarted = ws.run("deploy", "--version", "1")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    after = _get(f"{_url(restarted.stdout)}/metadata")
    assert (after["model_version"], after["bundle_id"]) == (before["model_version"], before["bundle_id"])
    assert len(re.findall(r"^  service \S+: running$", ws.run("status").stdout, re.M)) == 1


def test_undeploy_stops_the_service(industry):
    ws, _, _ = industry
    url = _serving_url(ws)
    stopped = ws.run("undeploy")
    assert stopped.returncode == 0 and "stopped the service of version 1" in stopped.stdout
    with pytest.raises(urllib.error.URLError):
        _get(f"{url}/health")
    assert "no prediction service" in ws.run("status").stdout
    assert ws.query(STATE)["1"]["stage"] == "production"
