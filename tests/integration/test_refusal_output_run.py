"""What a real ``python run.py`` prints when a run refuses: one line on stderr, exit 1, no traceback anywhere.

ZenML's console handler writes to the process's real stdout, which the
in-process ``cli`` fixture and ``run_cli`` cannot see, so these two run
``run.py`` as a subprocess against the session's store: ``infer`` on a file
with a header and no rows (refused inside the batch-inference run), and
``deploy`` refused by the acceptance gate. Before, each printed 30 to 40
lines of ZenML's traceback of the failed step first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, CliResult, example_data, key_pair, model_bundle, run_cli, write_project

pytestmark = pytest.mark.slow

PSEUDONYMISATION = {"COLLABOPS_PSEUDONYMISATION_KEY": "industry-only-secret-0123456789"}


def run_py(*args: object) -> CliResult:
    """``python run.py ARGS`` in a new process, on the session's store (its ZenML settings are in os.environ)."""
    env = {k: v for k, v in os.environ.items() if k != "ZENML_ACTIVE_STACK_ID"}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    return CliResult(done.returncode, done.stdout, done.stderr)


def assert_one_line_refusal(result: CliResult, *fragments: str) -> None:
    assert result.code == 1, result
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result
    for fragment in fragments:
        assert fragment in result.err, result
    assert "Traceback" not in result.out + result.err, result


@dataclass(frozen=True)
class Industry:
    project: Path
    base: Path


@pytest.fixture(scope="module")
def industry(tmp_path_factory) -> Industry:
    """An export and an imported version (version 1) of a model of its own; the gate's ceiling is 0 (refuses)."""
    base = tmp_path_factory.mktemp("refusal-output")
    keys = base / "keys"
    industry_key = key_pair(keys, base / "industry-home", "industry")
    university_key = key_pair(keys, base / "university-home", "university")
    project = write_project(base / "industry", keys_dir=keys, deployment={"acceptance": {"max_error": 0.0}})
    raw = base / "raw.parquet"
    example_data(months=2, car_parks=4, seed=21, start="2024-04-01").to_parquet(raw, index=False)
    exported = run_cli("export-data", "--project", project, "--data", raw, "--out", base / "exchange",
                       "--private-key", industry_key, env=PSEUDONYMISATION)
    assert exported.code == 0, exported
    bundle = model_bundle(next((base / "exchange").glob("data-*")), university_key, base / "to-industry",
                          max_iter=20)
    imported = run_cli("import-model", bundle, "--project", project)
    assert imported.code == 0, imported
    return Industry(project, base)


def test_infer_on_a_header_only_file_is_one_line_on_stderr(industry):
    header_only = industry.base / "header-only.csv"
    example_data(months=1, car_parks=1).drop(columns=["occupancy_rate"]).head(0).to_csv(header_only, index=False)
    out = industry.base / "scored.csv"
    result = run_py("infer", "--data", header_only, "--out", out, "--version", "1", "--project", industry.project)
    assert_one_line_refusal(result, f"{header_only}: has a header but no data rows")
    assert not out.exists()


def test_a_gate_refusal_is_one_line_on_stderr_and_the_report_on_stdout(industry):
    result = run_py("deploy", "--project", industry.project)
    assert_one_line_refusal(result, "acceptance gate refused model version 1: mae ", "above the ceiling 0.0000",
                            "Production is unchanged.")
    assert "# Acceptance gate: FAILED" in result.out and "gate refused: mae on our holdout: candidate" in result.out
