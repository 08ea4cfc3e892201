"""Bad input to ``run.py train``: a clear message, a non-zero exit, no model version."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from collabops.data.generator import GeneratorSettings, generate
from tests.conftest import Workspace, all_model_version_count


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return generate(GeneratorSettings(months=1, car_parks=4, seed=9))


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _set(frame: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


CASES = {
    "missing-file": (lambda d, g: d / "nope.csv", ["nope.csv: file not found"]),
    "empty-file": (lambda d, g: (d / "empty.csv").write_text("") or d / "empty.csv", ["empty.csv: file is empty"]),
    "header-only": (lambda d, g: _write(d / "header.csv", g.iloc[:0]), ["header.csv: has a header but no data rows"]),
    "missing-column": (lambda d, g: _write(d / "nocap.csv", g.drop(columns=["capacity"])),
                       ["nocap.csv: missing required column(s) 'capacity'"]),
    "wrong-type": (lambda d, g: _write(d / "type.csv", _set(g, "rain_mm", 6, "heavy")),
                   ["type.csv", "column 'rain_mm': values are not of type float", "'heavy' (row 7)"]),
    "out-of-range": (lambda d, g: _write(d / "range.csv", _set(g, "occupancy_rate", 11, 1.25)),
                     ["range.csv", "column 'occupancy_rate': 1 value(s) not in [0, 1]", "1.25 (row 12)"]),
    "null-in-non-null": (lambda d, g: _write(d / "null.csv", _set(g, "car_park_id", 3, None)),
                         ["null.csv", "column 'car_park_id'", "not nullable", "(row 4)"]),
    "constant-target": (lambda d, g: _write(d / "constant.csv", g.assign(occupancy_rate=0.4)),
                        ["constant.csv: column 'occupancy_rate' (the target) is constant"]),
    "too-few-rows": (lambda d, g: _write(d / "few.csv", g.head(300)),
                     ["few.csv: 300 rows are fewer than the time split needs", "at least 1334 rows"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_file_is_refused(workspace: Workspace, good, tmp_path, case):
    make, expected = CASES[case]
    path = make(tmp_path, good)
    before = all_model_version_count() if (workspace.root / ".zen").exists() else 0
    result = workspace.run("train", "--data", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    for fragment in expected:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    if (workspace.root / ".zen").exists():
        assert all_model_version_count() == before


@pytest.mark.parametrize("flag, value, expected", [
    ("--partner", "hospital", "unknown partner 'hospital' (known partners: industry, university"),
    ("--stack", "production-cluster", "unknown stack 'production-cluster' (registered stacks:"),
])
def test_unknown_partner_or_stack_is_refused(workspace: Workspace, flag, value, expected):
    config = workspace.training_config()
    result = workspace.run("train", "--config", str(config), flag, value)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "industry-local" in result.stderr or "industry" in result.stderr


def test_pipeline_itself_refuses_bad_data_without_a_model_version(workspace: Workspace, good, tmp_path):
    """Even run directly (without the CLI's pre-check), bad data creates no model version."""
    path = _write(tmp_path / "range.csv", _set(good, "occupancy_rate", 5, -0.3))
    assert workspace.run("stacks").returncode == 0
    before = all_model_version_count()
    script = textwrap.dedent(f"""
        from pipelines.training import training_pipeline
        training_pipeline(contract_path="configs/contract.yaml", task="regression",
                          model_name="direct-pipeline-model", split={{}}, search={{}},
                          data_path={str(path)!r}, experiment_tracker=None)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=workspace.root, env=workspace.env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "range.csv" in output and "column 'occupancy_rate'" in output and "(row 6)" in output
    assert all_model_version_count() == before


INFER_CASES = {name: CASES[name] for name in ("missing-file", "empty-file", "header-only", "missing-column",
                                              "wrong-type", "null-in-non-null")}
INFER_CASES["out-of-range"] = (lambda d, g: _write(d / "range.csv", _set(g, "capacity", 11, 0)),
                               ["range.csv", "column 'capacity': 1 value(s) not in [1, 20000]", "0 (row 12)"])


@pytest.fixture(scope="module")
def production_version(workspace: Workspace) -> str:
    """A version of the collaboration's model in the session store, for `run.py infer`."""
    import re

    trained = workspace.run("train", "--config", str(workspace.training_config(model_name="parking-occupancy")))
    assert trained.returncode == 0, trained.stderr[-3000:]
    return re.search(r"parking-occupancy version (\d+)", trained.stdout).group(1)


@pytest.mark.parametrize("case", list(INFER_CASES))
def test_bad_file_to_score_is_refused_and_no_output_appears(workspace: Workspace, good, tmp_path, production_version,
                                                            case):
    make, expected = INFER_CASES[case]
    path = make(tmp_path, good.drop(columns=["occupancy_rate"]))
    out = tmp_path / "scored" / "predictions.parquet"
    result = workspace.run("infer", "--data", str(path), "--out", str(out), "--version", production_version)
    assert result.returncode == 1, result.stdout + result.stderr
    for fragment in expected:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not list(out.parent.glob(".*partial*"))
