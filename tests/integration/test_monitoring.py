"""``run.py monitor`` on the industry stack: a normal month is ``ok``, a drifted month is ``drift`` and sends data back.

The industry exports three months of 2024 (keeping its holdout), imports a model bundle
fitted on the exported rows (the format ``run.py handover`` writes, with its
monitoring reference) and the version is put in production directly (the
gate and the service are tested in test_deployment.py; monitoring a period
given as a file needs neither). Then:

- a later normal month (January, not drifted) is ``ok``;
- the generator's drifted month (February, ``drift=True``) is ``drift``,
  names the drifted features, and writes a signed data bundle with a
  retraining request into the project's exchange folder, which verifies and
  on which the university trains;
- the production version, its stage and the other versions are untouched;
- the Evidently report is the run's ``drift_report`` artifact with an HTML
  visualization (what the dashboard shows), and ``status`` shows the verdict.

Sizes: 8 car parks, a month each (about 5,900 rows): the drifted features'
distances (temperature about 1.0, price about 0.8) are many times their
sampling error at that size, and the normal month's largest (rain, about
0.16 against a threshold of 0.3) is well below it; see
tests/unit/test_monitoring_drift.py for the same decisions over several seeds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    CONTRACT,
    assert_refused,
    data_bundle,
    example_data,
    key_pair,
    model_bundle,
    run_cli,
    run_names,
    unique,
    version_numbers,
    write_project,
)

pytestmark = pytest.mark.slow

PSEUDONYMISATION = {"COLLABOPS_PSEUDONYMISATION_KEY": "industry-only-secret-0123456789"}


@dataclass(frozen=True)
class World:
    base: Path
    project: Path
    model_name: str
    industry_key: Path
    normal: Path
    drifted: Path
    exchange: Path


def _to_production(model_name: str, number: int) -> None:
    from zenml.client import Client

    Client().update_model_version(model_name_or_id=model_name, version_name_or_id=str(number), stage="production",
                                  force=True)


def _import(project: Path, bundle: Path) -> int:
    done = run_cli("import-model", "--project", project, bundle, "--partner", "industry")
    assert done.code == 0, done
    return int(done.out.split("as ")[-1].split(" version ")[1].split()[0])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    base = tmp_path_factory.mktemp("monitoring")
    keys = base / "keys"
    industry_key = key_pair(keys, base / "industry-home", "industry")
    university_key = key_pair(keys, base / "university-home", "university")
    model_name = unique("monitored")
    exchange = base / "exchange-out"
    project = write_project(base / "industry", model_name=model_name, keys_dir=keys,
                            monitoring={"exchange_dir": str(exchange)})
    year = example_data(months=3, car_parks=8, seed=7, start="2024-01-01")  # covers the season of Jan and Feb
    raw = base / "year.parquet"
    year.to_parquet(raw, index=False)
    done = run_cli("export-data", "--project", project, "--data", raw, "--out", base / "exchange", "--private-key",
                   industry_key, env=PSEUDONYMISATION)
    assert done.code == 0, done
    exported = next((base / "exchange").glob("data-*"))
    bundle = model_bundle(exported, university_key, base / "models", model_name=model_name, promised_mae=0.04)
    _to_production(model_name, _import(project, bundle))
    normal, drifted = base / "january.csv", base / "february.parquet"
    example_data(months=1, car_parks=8, seed=7, start="2025-01-01").to_csv(normal, index=False)
    example_data(months=1, car_parks=8, seed=7, start="2025-02-01", drift=True).to_parquet(drifted, index=False)
    return World(base, project, model_name, industry_key, normal, drifted, exchange)


def _production(model_name: str) -> tuple[str, str]:
    from zenml.client import Client
    from zenml.enums import ModelStages

    version = Client().get_model_version(model_name, ModelStages.PRODUCTION)
    return str(version.name), str(version.id)


def test_a_normal_month_is_ok_and_changes_nothing(world):
    before = (_production(world.model_name), version_numbers(world.model_name))
    bundles = set(world.exchange.glob("data-*"))
    done = run_cli("monitor", "--project", world.project, "--data", world.normal, "--partner", "industry",
                   "--private-key", world.industry_key, env=PSEUDONYMISATION)
    assert done.code == 0, done
    assert "verdict: ok" in done.out
    assert "no column drifted" in done.out and "live MAE" in done.out and "within the promise" in done.out
    assert (_production(world.model_name), version_numbers(world.model_name)) == before
    assert set(world.exchange.glob("data-*")) == bundles  # no retraining bundle on ok


def test_a_drifted_month_is_drift_and_sends_a_signed_retraining_request(world):
    from zenml.client import Client

    before = (_production(world.model_name), version_numbers(world.model_name))
    earlier = set(world.exchange.glob("data-*"))
    done = run_cli("monitor", "--project", world.project, "--data", world.drifted, "--partner", "industry",
                   "--private-key", world.industry_key, env=PSEUDONYMISATION)
    assert done.code == 0, done
    assert "verdict: drift" in done.out
    assert "drift in temperature_c" in done.out and "drift in price_per_hour" in done.out
    assert (_production(world.model_name), version_numbers(world.model_name)) == before  # monitoring changes nothing
    bundles = sorted(set(world.exchange.glob("data-*")) - earlier)
    assert len(bundles) == 1 and f"retraining bundle: {bundles[0]}" in done.out
    manifest = json.loads((bundles[0] / "manifest.json").read_text())
    request = manifest["retraining_request"]
    assert request["verdict"] == "drift" and {"temperature_c", "price_per_hour"} <= set(request["drifted_features"])
    assert request["production_version"] == before[0][0]
    assert request["period"]["start"].startswith("2025-02-01T00:00:00+01:00")
    assert request["live_error"]["value"] > request["live_error"]["promised"]

    # The Evidently report is the run's artifact, with the HTML visualization the dashboard shows.
    run = sorted(run_names("monitoring"))[-1]
    step = Client().get_pipeline_run(run).steps["monitor_period"]
    report = step.outputs["drift_report"][0]
    assert any(v.type.value == "html" for v in report.visualizations)
    html = str(report.load())
    assert html.lstrip().lower().startswith("<!doctype html>") and "price_per_hour" in html

    # The bundle verifies, with the request shown, and the university trains on it.
    verified = run_cli("verify", bundles[0], "--project", world.project, "--partner", "university")
    assert verified.code == 0, verified
    assert "retraining request from 'industry'" in verified.out
    university = write_project(world.base / "university", model_name=unique("retrained"),
                               keys_dir=world.project.parent.parent / "keys")
    trained = run_cli("train", "--project", university, "--data-bundle", bundles[0], "--partner", "university")
    assert trained.code == 0, trained
    assert "retraining request from 'industry'" in trained.out and "Training run" in trained.out

    status = run_cli("status", "--project", world.project, "--partner", "industry")
    assert "last monitoring: drift" in status.out and "retraining bundle:" in status.out


def test_a_bundle_without_a_reference_is_refused_in_one_line(world, tmp_path):
    model_name = unique("no-reference")
    project = write_project(tmp_path / "industry", model_name=model_name, keys_dir=world.project.parent.parent / "keys")
    university_key = world.base / "university-home" / "university.key"
    frame = example_data(months=2, car_parks=4, seed=5, start="2024-03-01")
    exported = data_bundle(frame, world.industry_key, tmp_path / "exchange")
    bundle = model_bundle(exported, university_key, tmp_path / "models", model_name=model_name, with_reference=False)
    _to_production(model_name, _import(project, bundle))
    done = run_cli("monitor", "--project", project, "--data", world.normal, "--partner", "industry", "--no-export")
    assert_refused(done, "has no monitoring reference (reference/monitoring.parquet)")
    assert _production(model_name)[0] == "1"


def test_no_inference_log_yet_is_a_clear_error_before_any_run(world, tmp_path):
    model_name = unique("never-served")
    project = write_project(tmp_path / "industry", model_name=model_name, keys_dir=world.project.parent.parent / "keys")
    exported = data_bundle(example_data(months=2, car_parks=4, seed=5, start="2024-01-01"), world.industry_key,
                           tmp_path / "exchange")
    bundle = model_bundle(exported, world.base / "university-home" / "university.key", tmp_path / "models",
                          model_name=model_name)
    _to_production(model_name, _import(project, bundle))
    before = run_names("monitoring")
    done = run_cli("monitor", "--project", project, "--since", "2025-01-01", "--partner", "industry", "--no-export")
    assert_refused(done, "no inference log at", "--data FILE")
    assert run_names("monitoring") == before


def test_a_schedule_on_the_local_orchestrator_prints_the_crontab_line_and_registers_nothing(world):
    before = run_names("monitoring")
    done = run_cli("monitor", "--project", world.project, "--schedule", "0 6 * * *", "--partner", "industry",
                   "--no-export")
    assert done.code == 0, done
    assert "(flavor local) of this stack does not run schedules, so nothing was registered" in done.out
    line = done.out.strip().splitlines()[-1]
    assert line.startswith("0 6 * * * cd ") and " monitor --partner industry" in line and str(world.project) in line
    assert run_names("monitoring") == before


def _served(world: World, frame, model_version: str) -> Path:
    """Rows as the service logs them, in the stack's inference-log folder of the world's model."""
    import numpy as np
    import pandas as pd
    from zenml.client import Client

    from collabops.data.contract import load_contract
    from orchestration.monitoring import inference_log_dir
    from orchestration.workspace import activate

    contract = load_contract(CONTRACT)
    previous = Client().active_stack_model.name
    activate("industry-local")  # the industry stack's deployer knows the folder; the session's stack is restored
    try:
        folder = Path(inference_log_dir(world.model_name))
    finally:
        activate(previous)
    folder.mkdir(parents=True, exist_ok=True)
    logged = contract.validate(frame, "served", columns=contract.feature_columns).assign(
        prediction=frame[contract.target].to_numpy(), model_version=model_version, bundle_id="b",
        served_at=pd.Timestamp.now(tz="UTC") + pd.to_timedelta(np.arange(len(frame)), unit="us"))
    path = folder / f"inference-20250201T000000-1-{len(list(folder.glob('*.parquet'))):06d}.parquet"
    logged.to_parquet(path, index=False)
    return path


def test_dates_and_files_never_move_the_point_the_next_default_run_starts_from(world):
    """A newcomer's finding: a one-day --since/--until run used to hide the rest of what was served."""
    import pandas as pd

    version = _production(world.model_name)[0]
    month = pd.read_csv(world.normal)
    _served(world, month, version)
    first = run_cli("monitor", "--project", world.project, "--partner", "industry", "--no-export",
                    "--since", "2025-01-01", "--until", "2025-01-02")
    assert first.code == 0, first
    assert re.search(r"Monitoring run '\S+': 384 rows", first.out)  # 2 days x 24 h x 8 car parks
    everything = run_cli("monitor", "--project", world.project, "--partner", "industry", "--no-export")
    assert everything.code == 0, everything
    assert f"{len(month):,} rows from 2025-01-01" in everything.out
    again = run_cli("monitor", "--project", world.project, "--partner", "industry", "--no-export")
    assert_refused(again, f"no rows of model version {version} to monitor", "served after")


def test_a_drift_whose_rows_file_misses_the_period_keeps_its_verdict_and_says_why_nothing_was_exported(world):
    """A second newcomer's finding: outcomes from another month made the export fail and hid the verdict."""
    earlier = set(world.exchange.glob("data-*"))
    done = run_cli("monitor", "--project", world.project, "--data", world.drifted, "--outcomes", world.normal,
                   "--partner", "industry", "--private-key", world.industry_key, env=PSEUDONYMISATION)
    assert done.code == 0, done
    assert "verdict: drift" in done.out
    assert f"outcomes file {world.normal}: none of its" in done.out
    assert f"no retraining bundle: {world.normal} has no rows with every contract column in the period" in done.out
    assert set(world.exchange.glob("data-*")) == earlier
    status = run_cli("status", "--project", world.project, "--partner", "industry")
    assert "last monitoring: drift" in status.out


def test_a_file_without_predictions_and_a_feature_is_refused_before_any_run(world, tmp_path):
    import pandas as pd

    partial = tmp_path / "no-price.csv"
    pd.read_csv(world.normal).drop(columns=["price_per_hour"]).to_csv(partial, index=False)
    before = run_names("monitoring")
    done = run_cli("monitor", "--project", world.project, "--data", partial, "--partner", "industry", "--no-export")
    assert_refused(done, f"{partial}: has no 'prediction' column and lacks feature(s) price_per_hour")
    assert run_names("monitoring") == before
