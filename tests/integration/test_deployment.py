"""Taking imported models into production on the industry stack: gate, serve, replace, roll back, stop.

The industry side is the session's store, in this process. The module's
fixture builds the expensive shared part once: two exports (each keeps its
acceptance holdout, tagged with its data bundle) and model bundles signed
with a university key, fitted on the first export's data, exactly the format
``run.py handover`` writes (the handover itself is in test_handover.py).

Every test works on a model of its own (its own project file), imports the
versions it needs and deploys them, so it passes alone and in any order; a
finalizer stops its services. The refusal tests share one model in
production (``production``), since each of them asserts that production is
untouched. Prediction services are real processes on 127.0.0.1 (one worker
each; several workers are tested in tests/service); at the end of the module
every service a test started is stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import (
    CliResult,
    assert_refused,
    example_data,
    key_pair,
    model_bundle,
    model_version,
    run_cli,
    run_names,
    unique,
    version_numbers,
    write_project,
)

pytestmark = pytest.mark.slow

PSEUDONYMISATION = {"COLLABOPS_PSEUDONYMISATION_KEY": "industry-only-secret-0123456789"}
START = "2024-04-01"
RECORD = {"timestamp": "2024-05-01T08:00:00", "car_park_id": "CP001", "car_park_kind": "city_centre", "capacity": 500,
          "temperature_c": 12.0, "rain_mm": 0.0, "is_holiday": False, "event_nearby": False, "price_per_hour": 30.0}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


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


def _imported_version(result: CliResult) -> str:
    assert result.code == 0, result
    return re.search(r" version (\d+) on stack 'industry-local'", result.out).group(1)


def _running_services(project: Path) -> list[tuple[str, int]]:
    """(model version, PID) of every running service of the project's model, as ``status`` reports them."""
    status = run_cli("status", "--project", project).out
    found = re.findall(r"^  service \S+: running\n.*?model version: (\d+).*?pid:\s+(\d+)", status, re.M | re.S)
    return [(version, int(pid)) for version, pid in found]


@dataclass
class Exchange:
    """What the module shares: keys, two exports with their holdouts, and model bundles from the university."""

    base: Path
    keys: Path
    university_key: Path
    first_bundle: Path
    first_bundle_id: str
    first_holdout_rows: int
    second_bundle_id: str
    good: Path
    worse: Path
    good_again: Path
    """The same kind of model as ``good`` in a bundle of its own (importing one bundle twice makes no new version)."""
    projects: list[Path] = field(default_factory=list)

    def project(self, folder: Path, model_name: str | None = None, keys_dir: Path | None = None,
                **changes) -> Path:
        """A project of its own (a new model unless ``model_name``), serving on a free port with one worker."""
        deployment = changes.pop("deployment", {})
        serving = {"workers": 1, "port": _free_port(), "start_timeout": 90, **deployment.pop("serving", {})}
        path = write_project(folder, model_name=model_name or unique("deploy-model"), keys_dir=keys_dir or self.keys,
                             deployment={**deployment, "serving": serving}, **changes)
        self.projects.append(path)
        return path


def _export(project: Path, private_key: Path, frame, folder: Path) -> tuple[Path, int]:
    """``export-data`` of ``frame``: the data bundle it wrote, and how many rows it kept back as the holdout."""
    raw = folder / "raw.parquet"
    folder.mkdir(parents=True)
    frame.to_parquet(raw, index=False)
    exported = run_cli("export-data", "--project", project, "--data", raw, "--out", folder / "exchange",
                       "--private-key", private_key, env=PSEUDONYMISATION)
    assert exported.code == 0, exported
    rows = int(re.search(r"acceptance holdout kept on this side: ([\d,]+) rows", exported.out).group(1)
               .replace(",", ""))
    return next((folder / "exchange").glob("data-*")), rows


def _bundle_id(bundle: Path) -> str:
    return json.loads((bundle / "manifest.json").read_text())["bundle_id"]


def stop_services(project: Path) -> None:
    """``undeploy``, then SIGTERM to any service process of the project's model that still runs."""
    running = _running_services(project)
    run_cli("undeploy", "--project", project)
    for _version, pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory) -> Iterator[Exchange]:
    base = tmp_path_factory.mktemp("deployment")
    keys = base / "keys"
    industry_key = key_pair(keys, base / "industry-home", "industry")
    university_key = key_pair(keys, base / "university-home", "university")
    exporter = write_project(base / "exporter", keys_dir=keys)
    # April to July: no daylight-saving change in the contract's time zone inside the data.
    first, first_rows = _export(exporter, industry_key, example_data(months=4, car_parks=8, seed=7, start=START),
                                base / "first")
    second, second_rows = _export(exporter, industry_key, example_data(months=3, car_parks=8, seed=11, start=START),
                                  base / "second")
    assert first_rows != second_rows  # so the gate's report tells which holdout it scored
    # The university's side: models fitted on the first export's data bundle, as its handover would send them.
    good = model_bundle(first, university_key, base / "to-industry", max_iter=60)
    worse = model_bundle(first, university_key, base / "to-industry", max_iter=3)
    good_again = model_bundle(first, university_key, base / "to-industry", max_iter=60)
    shared = Exchange(base, keys, university_key, first, _bundle_id(first), first_rows, _bundle_id(second), good,
                      worse, good_again)
    yield shared
    for project in shared.projects:  # whatever a test or its finalizer left running
        stop_services(project)


@pytest.fixture
def own_project(exchange: Exchange, tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Make projects of the test's own models; their services are stopped when the test ends."""
    made: list[Path] = []

    def make(**changes) -> Path:
        project = exchange.project(tmp_path / f"project-{len(made)}", **changes)
        made.append(project)
        return project

    yield make
    for project in made:
        stop_services(project)


@dataclass(frozen=True)
class Production:
    project: Path
    model_name: str
    deployed: CliResult
    url: str


@pytest.fixture(scope="module")
def production(exchange: Exchange) -> Production:
    """A model whose imported version 1 passed the gate and serves in production (shared by the refusal tests)."""
    project = exchange.project(exchange.base / "production")
    assert _imported_version(run_cli("import-model", exchange.good, "--project", project)) == "1"
    deployed = run_cli("deploy", "--project", project)
    assert deployed.code == 0, deployed
    return Production(project, _model_name(project), deployed, _url(deployed.out))


def _model_name(project: Path) -> str:
    import yaml

    return yaml.safe_load(project.read_text())["model_name"]


def _assert_production_untouched(production: Production) -> None:
    assert model_version(production.model_name, 1).stage == "production"
    assert _get(f"{production.url}/health")["model_version"] == "1"
    assert [v for v, _ in _running_services(production.project)] == ["1"]


def test_an_imported_model_passes_the_gate_and_serves_in_production(production):
    out = production.deployed.out
    assert "# Acceptance gate: PASSED" in out
    acceptance = model_version(production.model_name, 1).run_metadata["acceptance"]
    candidate, baseline = acceptance["candidate"]["overall"]["mae"], acceptance["baseline"]["overall"]["mae"]
    assert candidate <= baseline * (1 - 0.05)  # the project's deployment.acceptance.min_gain_over_baseline
    assert (f"gate passed: mae on our holdout: candidate {candidate:.4f}, seasonal baseline {baseline:.4f}, "
            "production none") in out
    assert f"mae {candidate:.4f} beats the seasonal baseline's {baseline:.4f} on our holdout by" in out
    assert "smoke test: GET /health: 200" in out
    assert f"{production.model_name} version 1 is in production, serving at {production.url}" in out
    assert _get(f"{production.url}/health")["model_version"] == "1"
    version = model_version(production.model_name, 1)
    assert version.stage == "production" and version.run_metadata["acceptance"]["passed"] is True
    assert version.run_metadata["deployment"]["url"] == production.url
    status = run_cli("status", "--project", production.project)
    assert status.code == 0 and f"url:           {production.url}" in status.out, status
    assert "model version: 1 (production)" in status.out and "producer:      university" in status.out


REFUSED = [
    (["deploy", "--version", "abc"], "--version 'abc' is neither a version number nor latest-imported"),
    (["deploy", "--version", "99"], "has no version '99' on stack 'industry-local'"),
    (["deploy", "--partner", "university"], "stack 'university-local' has no model deployer"),
    (["rollback"], "production version 1 replaced no earlier production version; there is nothing to roll back to"),
]


@pytest.mark.parametrize("argv, message", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_bad_deployment_command_is_refused_and_production_is_untouched(production, argv, message):
    assert_refused(run_cli(*argv, "--project", production.project), message)
    _assert_production_untouched(production)


def test_the_gate_refuses_a_worse_model_and_shows_that_runs_report(production, exchange):
    from zenml.client import Client

    worse = _imported_version(run_cli("import-model", exchange.worse, "--project", production.project))
    refused = run_cli("deploy", "--version", worse, "--project", production.project)
    assert_refused(refused, f"acceptance gate refused model version {worse}", "Production is unchanged",
                   "is worse than production's", "does not beat the seasonal baseline's")
    assert refused.err.count("\n") == 1  # the one error line; the report is on stdout
    assert "# Acceptance gate: FAILED" in refused.out
    # The report shown is the one this deploy run stored (the newest deploy run in the store).
    newest = Client().list_pipeline_runs(pipeline_name="deploy", sort_by="desc:created", size=1).items[0]
    stored = str(newest.steps["acceptance_gate"].outputs["acceptance_report"][0].load())
    assert stored in refused.out
    assert f"Model version {worse} (bundle " in stored and "production: version 1" in stored
    metadata = model_version(production.model_name, worse).run_metadata
    assert metadata["acceptance"]["passed"] is False
    assert model_version(production.model_name, worse).stage != "production"
    _assert_production_untouched(production)


def test_a_failed_smoke_test_leaves_the_running_service_alone(production, exchange, tmp_path):
    """A new version that cannot serve never replaces the old: refused before any run when this checkout cannot
    verify its bundle (the university key withdrawn), and stopped when its service does not come up in time."""
    version = _imported_version(run_cli("import-model", exchange.good_again, "--project", production.project))
    assert version != "1"
    withdrawn = tmp_path / "keys-without-university"
    withdrawn.mkdir()
    shutil.copy(exchange.keys / "industry.pub", withdrawn)
    same_model_fewer_keys = exchange.project(tmp_path / "withdrawn", model_name=production.model_name,
                                             keys_dir=withdrawn)
    runs_before = run_names("deploy")
    refused = run_cli("deploy", "--version", version, "--project", same_model_fewer_keys)
    assert_refused(refused, f"bundle {model_version(production.model_name, version).run_metadata['imported_bundle_id']}"
                            f" of model version {version}: bundle refused, check 'signature' failed")
    assert "/tmp" not in refused.err and run_names("deploy") == runs_before  # named by bundle; no run
    _assert_production_untouched(production)

    too_slow = exchange.project(tmp_path / "slow", model_name=production.model_name,
                                deployment={"serving": {"start_timeout": 1}})
    failed = run_cli("deploy", "--version", version, "--project", too_slow)
    assert_refused(failed, f"the prediction service for version {version} did not start")
    assert failed.err.count("\n") == 1
    _assert_production_untouched(production)


def test_deploy_refuses_an_unapproved_version_until_it_is_approved(own_project, exchange):
    """With require_approval, the approval is the first check; once approved, the next check (the gate) answers."""
    project = own_project(deployment={"require_approval": True, "acceptance": {"max_error": 0.0}})
    version = _imported_version(run_cli("import-model", exchange.good, "--project", project))
    refused = run_cli("deploy", "--project", project)
    assert_refused(refused, f"python run.py approve {version} --by")
    approved = run_cli("approve", version, "--by", "Ops Lead", "--note", "holdout report read", "--project", project)
    assert approved.code == 0, approved
    assert f"approved {_model_name(project)} version {version} by Ops Lead" in approved.out
    assert model_version(_model_name(project), version).run_metadata["approval"]["by"] == "Ops Lead"
    gated = run_cli("deploy", "--project", project)
    assert_refused(gated, f"acceptance gate refused model version {version}")
    assert "# Acceptance gate: FAILED" in gated.out and "approve" not in gated.err


def test_the_gate_scores_the_holdout_of_the_export_the_model_was_trained_on(own_project, exchange):
    """Two exports on this stack; the model was trained on the first: the gate uses the first's holdout."""
    project = own_project(deployment={"acceptance": {"max_error": 0.0}})  # refused by the gate: no service needed
    version = _imported_version(run_cli("import-model", exchange.good, "--project", project))
    result = run_cli("deploy", "--project", project)
    assert (f"acceptance holdout: kept back by the export that wrote data bundle {exchange.first_bundle_id}, "
            "which the model was trained on") in result.out
    assert_refused(result, f"acceptance gate refused model version {version}")
    assert f"on {exchange.first_holdout_rows:,} holdout rows" in result.out
    assert (f"seasonal baseline: fitted on all the rows export-data put in data bundle {exchange.first_bundle_id}, "
            "the one the model was trained on\n") in result.out
    assert exchange.second_bundle_id not in result.out + result.err


def test_a_model_trained_on_data_no_export_wrote_is_refused_before_any_run(own_project, exchange, tmp_path):
    """Without the rows the model was trained on, the gate cannot fit the seasonal baseline: it says what is
    missing and how to get it, and does not skip the check."""
    project = own_project()
    elsewhere = model_bundle(exchange.first_bundle, exchange.university_key, tmp_path, max_iter=10,
                             trained_on="not-exported-here")
    assert _imported_version(run_cli("import-model", elsewhere, "--project", project)) == "1"
    before = run_names("deploy")
    result = run_cli("deploy", "--project", project)
    assert_refused(result, "model version 1 was trained on data bundle not-exported-here, which no export on stack "
                           "'industry-local' wrote; the acceptance gate fits the seasonal baseline on the rows the "
                           "model was trained on", "export the data on this stack")
    assert run_names("deploy") == before
    assert "acceptance" not in model_version(_model_name(project), 1).run_metadata


def test_a_new_version_replaces_the_old_service_and_rollback_restores_it(own_project, exchange):
    from zenml.client import Client

    secret = unique("serving-key")
    Client().create_secret(name=secret, values={"api_key": "key-for-tests-only"})
    try:
        project = own_project(deployment={"serving": {"api_key_secret": secret}})
        name = _model_name(project)
        first = _imported_version(run_cli("import-model", exchange.good, "--project", project))
        deployed = run_cli("deploy", "--project", project)
        assert deployed.code == 0, deployed
        old_url = _url(deployed.out)
        second = _imported_version(run_cli("import-model", exchange.good_again, "--project", project))
        assert second != first
        replaced = run_cli("deploy", "--project", project)
        assert replaced.code == 0, replaced
        new_url = _url(replaced.out)
        assert new_url != old_url and f"retired: version {first}" in replaced.out
        assert _get(f"{new_url}/metadata")["model_version"] == second
        assert _predict(new_url)[0] == 401
        status, answer = _predict(new_url, "key-for-tests-only")
        assert status == 200 and answer["model_version"] == second and 0 <= answer["predictions"][0] <= 1.2
        with pytest.raises(urllib.error.URLError):
            _get(f"{old_url}/health")
        assert model_version(name, second).stage == "production"
        assert model_version(name, second).run_metadata["deployment"]["replaced_version"] == first
        assert model_version(name, first).stage != "production"

        rolled = run_cli("rollback", "--project", project)
        assert rolled.code == 0, rolled
        assert f"rolling back {name} from version {second} to version {first}" in rolled.out
        back_url = _url(rolled.out)
        assert _get(f"{back_url}/metadata")["model_version"] == first
        assert _predict(back_url, "key-for-tests-only")[1]["model_version"] == first
        assert model_version(name, first).stage == "production"
        assert [v for v, _ in _running_services(project)] == [first]
        assert f"model version: {first} (production)" in run_cli("status", "--project", project).out
        assert model_version(name, first).run_metadata["deployment"]["rolled_back_from"] == second

        # The case: a second rollback re-served the version just rolled away from.
        again = run_cli("rollback", "--project", project)
        assert_refused(again, f"production version {first} is the oldest version left in the production history")
        assert again.err.count("\n") == 1
        assert model_version(name, first).stage == "production"
        assert _get(f"{back_url}/metadata")["model_version"] == first
    finally:
        Client().delete_secret(secret)


def test_a_killed_service_is_reported_and_a_redeploy_serves_the_same_model_again(own_project, exchange):
    project = own_project()
    version = _imported_version(run_cli("import-model", exchange.good, "--project", project))
    deployed = run_cli("deploy", "--project", project)
    assert deployed.code == 0, deployed
    before = _get(f"{_url(deployed.out)}/metadata")
    [(_, pid)] = _running_services(project)
    os.kill(pid, signal.SIGKILL)
    status = run_cli("status", "--project", project).out
    assert "not running" in status and f"restart:       python run.py deploy --version {version}" in status
    restarted = run_cli("deploy", "--version", version, "--project", project)
    assert restarted.code == 0, restarted
    after = _get(f"{_url(restarted.out)}/metadata")
    assert (after["model_version"], after["bundle_id"]) == (before["model_version"], before["bundle_id"])
    assert [v for v, _ in _running_services(project)] == [version]


def test_undeploy_stops_the_service_and_leaves_the_stage(own_project, exchange):
    project = own_project()
    version = _imported_version(run_cli("import-model", exchange.good, "--project", project))
    deployed = run_cli("deploy", "--project", project)
    assert deployed.code == 0, deployed
    url = _url(deployed.out)
    stopped = run_cli("undeploy", "--project", project)
    assert stopped.code == 0 and f"stopped the service of version {version}" in stopped.out, stopped
    with pytest.raises(urllib.error.URLError):
        _get(f"{url}/health")
    assert "no prediction service" in run_cli("status", "--project", project).out
    assert model_version(_model_name(project), version).stage == "production"
    assert version_numbers(_model_name(project)) == [int(version)]
