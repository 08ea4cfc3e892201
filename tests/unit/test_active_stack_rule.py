"""The one stack rule of every command: ``--stack``, ``--partner``, the chosen active stack, the command's partner.

The issue's example: industry commands (status, infer, deploy, ...) ignored
the active stack set with ``zenml stack set`` and always ran on the
industry's stack from the project. :func:`orchestration.workspace.choose_stack`
decides for every command, without a store; these tests give it the active
stack by name. (``ZenML's default`` and the default partner's stack, which a
fresh clone makes active, are not a choice.)
"""

from __future__ import annotations

import pytest

from collabops.errors import ConfigError
from collabops.settings import load_project
from orchestration.workspace import StackChoice, choose_stack
from tests.conftest import PROJECT

REGISTERED = ["default", "industry-local", "ops-local", "university-local"]


@pytest.fixture(scope="module")
def project():
    return load_project(PROJECT)


def test_an_explicit_stack_wins_over_everything(project):
    choice = choose_stack(project, None, "industry-local", "university-local", True, "industry", REGISTERED)
    assert choice == StackChoice("industry-local", "industry", "--stack")


def test_a_partner_comes_next_and_names_its_stack_in_the_project(project):
    choice = choose_stack(project, "industry", None, "ops-local", False, None, REGISTERED)
    assert choice == StackChoice("industry-local", "industry", "--partner industry: its stack in parking.yaml")


def test_a_stack_chosen_with_zenml_stack_set_is_used_by_every_command(project):
    for natural in (None, "industry"):
        choice = choose_stack(project, None, None, "industry-local", False, natural, REGISTERED)
        assert choice == StackChoice("industry-local", "industry", "the active stack, chosen with `zenml stack set`")


def test_the_active_stack_from_the_environment_is_always_a_choice(project):
    choice = choose_stack(project, None, None, "university-local", True, None, REGISTERED)
    assert choice == StackChoice("university-local", "university", "the active stack, from ZENML_ACTIVE_STACK_ID")


@pytest.mark.parametrize("active, said", [
    ("default", "the active stack 'default' is ZenML's default, not a choice"),
    ("university-local", "the active stack 'university-local' is the one a fresh clone starts with, not a choice"),
    (None, "no --stack or --partner"),
])
def test_without_a_choice_a_command_runs_on_its_partners_stack_and_says_why(project, active, said):
    industry = choose_stack(project, None, None, active, False, "industry", REGISTERED)
    assert (industry.stack, industry.partner) == ("industry-local", "industry")
    assert industry.why.startswith("the industry partner's stack in parking.yaml: no --stack or --partner")
    assert said in industry.why
    train = choose_stack(project, None, None, active, False, None, REGISTERED)  # train: the default partner
    assert (train.stack, train.partner) == ("university-local", "university")


def test_a_chosen_stack_of_no_partner_runs_train_but_a_partners_command_asks_which_partner(project):
    assert choose_stack(project, None, None, "ops-local", False, None, REGISTERED).partner is None
    with pytest.raises(ConfigError) as refused:
        choose_stack(project, None, None, "ops-local", False, "industry", REGISTERED)
    assert str(refused.value) == ("stack 'ops-local' belongs to no partner; say which with --partner (`--stack "
                                  "ops-local --partner industry` runs on it as the industry partner; stack from the "
                                  "active stack, chosen with `zenml stack set`; partners in parking.yaml: industry, "
                                  "university)")
    assert choose_stack(project, "industry", "ops-local", None, False, "industry", REGISTERED) == StackChoice(
        "ops-local", "industry", "--stack, as partner industry")


def test_a_chosen_stack_of_the_other_partner_is_refused_for_a_partners_command(project):
    with pytest.raises(ConfigError) as refused:
        choose_stack(project, None, None, "industry-local", False, "university", REGISTERED)
    assert str(refused.value) == (
        "this command is the university partner's, but stack 'industry-local' (the active stack, chosen with "
        "`zenml stack set`) is the industry partner's in parking.yaml; run it with --partner university (its stack "
        "'university-local'), or with --stack industry-local --partner university")
    explicit = choose_stack(project, "university", "industry-local", None, False, "university", REGISTERED)
    assert (explicit.stack, explicit.partner) == ("industry-local", "university")


def test_an_unknown_stack_is_refused_before_its_partner_is_looked_up(project):
    with pytest.raises(ConfigError, match=r"unknown stack 'nope' \(registered stacks: default, industry-local"):
        choose_stack(project, None, "nope", None, False, "industry", REGISTERED)
    for stack in (None, "industry-local"):
        with pytest.raises(ConfigError, match="unknown partner 'hospital'"):
            choose_stack(project, "hospital", stack, None, False, None, REGISTERED)
