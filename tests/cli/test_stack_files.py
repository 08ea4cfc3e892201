"""The stack files in stacks/: portable (no paths, no credentials) and in the format run.py registers."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT

STACK_FILES = sorted((ROOT / "stacks").glob("*.yaml"))


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_a_stack_file_references_no_credentials_or_paths(path):
    data = yaml.safe_load(path.read_text())
    for entries in data["components"].values():
        for entry in entries:
            assert entry["configuration"] == {}, f"{path.name}: {entry['name']} carries configuration"


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_a_stack_file_reads_as_a_stack_export(path):
    from orchestration.workspace import read_stack_file

    data = read_stack_file(path)
    assert data["stack_name"] == path.stem
    assert {"orchestrator", "artifact_store", "experiment_tracker"} <= set(data["components"])


def test_each_partner_of_the_project_has_a_stack_file():
    from collabops.settings import load_project

    project = load_project()
    assert {p.stack for p in project.partners.values()} == {p.stem for p in STACK_FILES}
    assert "model_deployer" in yaml.safe_load((ROOT / "stacks" / "industry-local.yaml").read_text())["components"]
