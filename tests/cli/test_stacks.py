"""``run.py stacks`` and stack choice on the session's store, in this process."""

from __future__ import annotations

import re

import pytest

from tests.conftest import assert_refused, run_cli, write_project

pytestmark = pytest.mark.slow


def _active_stack() -> str:
    from zenml.client import Client

    return Client().active_stack_model.name


def test_setting_up_twice_changes_nothing(tmp_path):
    project = write_project(tmp_path)
    first = run_cli("stacks", "--project", project)
    assert first.code == 0, first
    again = run_cli("stacks", "--project", project)
    assert again.code == 0, again
    assert "stack university-local: up to date" in again.out and "stack industry-local: up to date" in again.out
    assert "registered" not in again.out and "initialised" not in again.out


def test_stacks_with_a_partner_makes_its_stack_the_active_one(tmp_path):
    project = write_project(tmp_path)
    assert run_cli("stacks", "--project", project).code == 0
    before = _active_stack()
    other = "industry" if before == "university-local" else "university"
    try:
        switched = run_cli("stacks", "--project", project, "--partner", other)
        assert switched.code == 0, switched
        assert f"active stack: {other}-local" in switched.out
        assert _active_stack() == f"{other}-local"
    finally:
        assert run_cli("stacks", "--project", project, "--stack", before).code == 0
    assert _active_stack() == before


@pytest.mark.parametrize("argv", [["stacks", "--stack", "nope"], ["train", "--stack", "nope"],
                                  ["status", "--stack", "nope"]])
def test_an_unknown_stack_is_refused_naming_the_registered_ones(tmp_path, argv):
    result = run_cli(*argv, "--project", write_project(tmp_path))
    assert_refused(result, "unknown stack 'nope' (registered stacks: ")
    assert "industry-local" in result.err and "university-local" in result.err


def test_a_stack_without_a_partner_is_refused_for_partner_commands(tmp_path):
    """export-data belongs to a partner: on a stack the project gives to nobody, it asks which partner."""
    project = write_project(tmp_path, partners={"university": {"stack": "university-local"},
                                                "industry": {"stack": "university-local"}})
    result = run_cli("status", "--project", project, "--stack", "industry-local")
    assert_refused(result, "stack 'industry-local' belongs to no partner; say which with --partner")


@pytest.fixture(scope="module")
def trained_on_both_stacks(tmp_path_factory):
    """With industry-local made the active stack by hand (as ``zenml stack set`` does), ``train`` once without a
    flag and once with ``--partner university``; the active stack before and after, restored at the end."""
    from zenml.client import Client

    project = write_project(tmp_path_factory.mktemp("both-stacks"))
    assert run_cli("stacks", "--project", project).code == 0
    before = _active_stack()
    Client().activate_stack("industry-local")
    try:
        industry = run_cli("train", "--project", project)
        university = run_cli("train", "--project", project, "--partner", "university")
        after = _active_stack()
    finally:
        Client().activate_stack(before)
    assert industry.code == 0, industry
    assert university.code == 0, university
    return industry, university, after


def test_the_active_stack_set_by_hand_is_respected_and_partner_picks_for_one_run(trained_on_both_stacks):
    """No flag: the active stack and its partner; ``--partner``: that partner's stack, for that run only."""
    industry, university, after = trained_on_both_stacks
    assert "as partner 'industry' on stack 'industry-local'" in industry.out
    assert "as partner 'university' on stack 'university-local'" in university.out
    assert after == "industry-local"


def test_each_partner_has_its_own_artifact_store_and_mlflow(trained_on_both_stacks):
    industry, university, _ = trained_on_both_stacks
    stores = [re.search(r"artifacts:\s+(\S+)", r.out).group(1) for r in (industry, university)]
    trackers = [re.search(r"--backend-store-uri (\S+)", r.out).group(1) for r in (industry, university)]
    assert stores[0] != stores[1] and trackers[0] != trackers[1]
    assert all(tracker.startswith("sqlite:///") for tracker in trackers)
