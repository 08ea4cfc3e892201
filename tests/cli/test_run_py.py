"""``run.py`` as a new user meets it: a fresh clone, a fresh ZenML store, no prompts."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, Workspace, copy_project


def test_train_on_a_fresh_clone_sets_up_everything(fresh_workspace: Workspace):
    ws = fresh_workspace
    config = ws.training_config(model_name="fresh-clone-model")
    result = ws.run("train", "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "stack university-local: registered" in out and "stack industry-local: registered" in out
    assert "active stack: university-local" in out
    assert "training as partner 'university' on stack 'university-local'" in out
    assert re.search(r"model version: fresh-clone-model version 1 \(stage: staging\)", out)
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    assert (ws.root / ".zen").is_dir()

    stacks = ws.zenml("stack", "list")
    assert "university-local" in stacks.stdout and "industry-local" in stacks.stdout

    again = ws.run("stacks")
    assert again.returncode == 0
    assert "stack university-local: up to date" in again.stdout
    assert "stack industry-local: up to date" in again.stdout
    assert "registered" not in again.stdout and "initialised" not in again.stdout

    switch = ws.run("stacks", "--partner", "industry")
    assert switch.returncode == 0 and "active stack: industry-local" in switch.stdout
    described = ws.zenml("stack", "describe")
    assert "'industry-local' stack (ACTIVE)" in described.stdout + described.stderr
    unknown = ws.run("stacks", "--stack", "nope")
    assert unknown.returncode == 1 and "unknown stack 'nope'" in unknown.stderr


def test_main_job_without_arguments(fresh_workspace: Workspace):
    """The README's promise: `python run.py` on a fresh clone trains the default model on the default data."""
    result = fresh_workspace.run()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training as partner 'university' on stack 'university-local' with data from the example generator" in result.stdout
    assert "model version: parking-occupancy version 1 (stage: staging)" in result.stdout
    mae = float(re.search(r"test period:\s+MAE ([0-9.]+)", result.stdout).group(1))
    baseline = float(re.search(r"baseline MAE ([0-9.]+)", result.stdout).group(1))
    assert mae < 0.85 * baseline


def test_active_stack_set_by_hand_is_respected(fresh_workspace: Workspace):
    ws = fresh_workspace
    assert ws.run("stacks").returncode == 0
    switched = ws.zenml("stack", "set", "industry-local")
    assert switched.returncode == 0, switched.stderr
    config = ws.training_config(model_name="industry-side-model")
    result = ws.run("train", "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training as partner 'industry' on stack 'industry-local'" in result.stdout
    # --partner picks the partner's stack for this run only; the active stack stays.
    result = ws.run("train", "--config", str(config), "--partner", "university")
    assert "on stack 'university-local'" in result.stdout
    described = ws.zenml("stack", "describe")
    assert "'industry-local' stack (ACTIVE)" in described.stdout + described.stderr


def test_each_partner_has_its_own_artifact_store_and_mlflow(fresh_workspace: Workspace):
    ws = fresh_workspace
    config = ws.training_config(model_name="two-partner-model")
    uni = ws.run("train", "--config", str(config), "--partner", "university")
    ind = ws.run("train", "--config", str(config), "--partner", "industry")
    assert uni.returncode == 0 and ind.returncode == 0, ind.stderr[-2000:]
    uri = [re.search(r"--backend-store-uri (\S+)", r.stdout).group(1) for r in (uni, ind)]
    assert uri[0] != uri[1]


def test_stack_files_import_by_hand(fresh_workspace: Workspace):
    ws = fresh_workspace
    result = ws.zenml("stack", "import", "stacks/university-local.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "university-local" in ws.zenml("stack", "list").stdout
    # run.py then finds the components in place and adds the other partner's stack.
    setup = ws.run("stacks")
    assert setup.returncode == 0, setup.stderr
    assert "stack university-local: up to date" in setup.stdout
    assert "stack industry-local: registered" in setup.stdout


def test_stack_files_reference_no_credentials_or_paths():
    for path in (ROOT / "stacks").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        for entries in data["components"].values():
            for entry in entries:
                assert entry["configuration"] == {}, f"{path.name}: {entry['name']} carries configuration"


@pytest.mark.parametrize("command", ["train", "stacks", "generate-data"])
def test_every_command_has_help(command):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "run.py", command, "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert "usage: run.py " + command in result.stdout
    if command == "train":
        for flag in ("--data", "--partner", "--stack", "--config", "--no-cache"):
            assert flag in result.stdout


def test_generate_data_is_deterministic_and_never_overwrites(workspace: Workspace, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.csv"
    for out in (a, b):
        result = workspace.run("generate-data", "--out", str(out), "--months", "1", "--car-parks", "3", "--seed", "4")
        assert result.returncode == 0, result.stderr
        assert "wrote" in result.stdout
    frame_a, frame_b = pd.read_parquet(a), pd.read_csv(b, parse_dates=["timestamp"])
    assert frame_a["occupancy_rate"].tolist() == frame_b["occupancy_rate"].tolist()
    before = a.read_bytes()
    again = workspace.run("generate-data", "--out", str(a), "--months", "2")
    assert again.returncode == 1 and "already exists (use --force to overwrite)" in again.stderr
    assert a.read_bytes() == before
    bad = workspace.run("generate-data", "--out", str(tmp_path / "c.csv"), "--start", "yesterday")
    assert bad.returncode == 1 and "--start 'yesterday' is not a date" in bad.stderr


def test_train_on_a_generated_drift_file(workspace: Workspace, tmp_path):
    data = tmp_path / "drift.csv"
    assert workspace.run("generate-data", "--out", str(data), "--months", "2", "--car-parks", "6", "--drift").returncode == 0
    config = workspace.training_config()
    result = workspace.run("train", "--config", str(config), "--data", str(data), "--partner", "university")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"with data from {data}" in result.stdout
    assert "version 1 (stage: staging)" in result.stdout


def test_keys_init_keeps_the_private_key_out_of_the_repository(tmp_path):
    ws = Workspace(copy_project(tmp_path / "clone"), tmp_path / "zenml", {"XDG_CONFIG_HOME": str(tmp_path / "home")})
    inside = ws.run("keys", "init", "--partner", "university", "--private-key", str(ws.root / "university.key"))
    assert inside.returncode == 1 and "must live outside the repository" in inside.stderr
    assert not (ws.root / "university.key").exists() and not (ws.root / "keys" / "university.pub").exists()
    unknown = ws.run("keys", "init", "--partner", "hospital")
    assert unknown.returncode == 1 and "unknown partner 'hospital'" in unknown.stderr
    made = ws.run("keys", "init", "--partner", "university")
    assert made.returncode == 0, made.stderr
    private = tmp_path / "home" / "collabops" / "keys" / "university.key"
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    assert (ws.root / "keys" / "university.pub").read_text().startswith("ed25519 ")
    again = ws.run("keys", "init", "--partner", "university")
    assert again.returncode == 1 and "already exists (use --force" in again.stderr



def test_exchange_commands_refuse_missing_bundles_and_existing_outputs(workspace: Workspace, tmp_path):
    missing = workspace.run("import-model", str(tmp_path / "model-nope"))
    assert missing.returncode == 1 and "model-nope: bundle not found" in missing.stderr
    data = tmp_path / "in.csv"
    data.write_text("x\n1\n")
    out = tmp_path / "scored.csv"
    out.write_text("precious")
    existing = workspace.run("infer", "--data", str(data), "--out", str(out))
    assert existing.returncode == 1 and "scored.csv: already exists" in existing.stderr
    assert out.read_text() == "precious"
    unknown = workspace.run("infer", "--data", str(data), "--out", str(tmp_path / "s.csv"), "--version", "99")
    assert unknown.returncode == 1 and "has no version '99'" in unknown.stderr
