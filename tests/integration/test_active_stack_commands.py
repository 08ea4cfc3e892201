"""Industry commands follow the active stack set with ``zenml stack set``, by the rule every command follows.

The issue's example: ``status``, ``infer``, ``deploy``, ... always ran on the
industry's stack from the project, whatever the user had made active. Here
(the session's store, in this process) a third stack ``ops-...`` with the
industry's components is registered and made active by hand, as
``zenml stack set`` does; ``status`` stands for the industry commands (they
all choose through ``workspace.use_stack``). The active stack is restored and
the extra stack removed at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import assert_refused, run_cli, unique, write_project

pytestmark = pytest.mark.slow


@pytest.fixture
def ops_stack(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A registered stack no partner of the parking project owns, made active by hand; (its name, its id)."""
    from zenml.client import Client

    assert run_cli("stacks", "--project", write_project(tmp_path / "setup")).code == 0
    client = Client()
    before = client.active_stack_model.name
    industry = client.get_stack("industry-local")
    name = unique("ops")
    stack = client.create_stack(name=name, components={kind: [c[0].id] for kind, c in industry.components.items()
                                                       if c})
    client.activate_stack(name)
    try:
        yield name, str(stack.id)
    finally:
        client.activate_stack(before)
        client.delete_stack(name)


def test_an_industry_command_uses_the_stack_set_by_hand_and_says_so(ops_stack, tmp_path):
    name, _ = ops_stack
    project = write_project(tmp_path, partners={"university": {"stack": "university-local"},
                                                "industry": {"stack": name}})
    status = run_cli("status", "--project", project)
    assert status.code == 0, status
    assert f"stack '{name}' (the active stack, chosen with `zenml stack set`)" in status.out
    assert f"on stack '{name}': production version none" in status.out


def test_an_active_stack_of_no_partner_is_refused_instead_of_silently_replaced(ops_stack, tmp_path):
    name, _ = ops_stack
    project = write_project(tmp_path)
    refused = run_cli("status", "--project", project)
    assert_refused(refused, f"stack '{name}' belongs to no partner; say which with --partner (`--stack {name} "
                            "--partner industry` runs on it as the industry partner; stack from the active stack, "
                            "chosen with `zenml stack set`")
    explicit = run_cli("status", "--project", project, "--stack", name, "--partner", "industry")
    assert explicit.code == 0, explicit
    assert f"stack '{name}' (--stack, as partner industry)" in explicit.out
    by_partner = run_cli("status", "--project", project, "--partner", "industry")
    assert "stack 'industry-local' (--partner industry: its stack in project.yaml)" in by_partner.out


def test_the_active_stack_from_the_environment_is_a_choice_too(tmp_path):
    from zenml.client import Client

    project = write_project(tmp_path)
    assert run_cli("stacks", "--project", project).code == 0
    university = str(Client().get_stack("university-local").id)
    refused = run_cli("status", "--project", project, env={"ZENML_ACTIVE_STACK_ID": university})
    assert_refused(refused, "this command is the industry partner's, but stack 'university-local' (the active "
                            "stack, from ZENML_ACTIVE_STACK_ID) is the university partner's in project.yaml")


def test_without_a_choice_an_industry_command_runs_on_the_industrys_stack_and_says_why(tmp_path):
    from zenml.client import Client

    project = write_project(tmp_path)
    assert run_cli("stacks", "--project", project).code == 0
    client = Client()
    before = client.active_stack_model.name
    client.activate_stack("university-local")  # what a fresh clone makes active: not a choice
    try:
        status = run_cli("status", "--project", project)
    finally:
        client.activate_stack(before)
    assert status.code == 0, status
    assert ("stack 'industry-local' (the industry partner's stack in project.yaml: no --stack or --partner; the "
            "active stack 'university-local' is the one a fresh clone starts with, not a choice)") in status.out
