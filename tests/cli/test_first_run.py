"""``run.py`` as a new user meets it: a fresh clone, a fresh ZenML store, no prompts (subprocesses, own stores).

The first command on a fresh clone sets everything up; here it is ``train``
as the default partner on the example generator's data. The main job
(``python run.py`` with no command, the whole collaboration loop) on a fresh
clone is tested in ``tests/cli/test_main_job.py``.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import FAST_CONFIG, Workspace, copy_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Workspace, object]:
    """``python run.py train`` (no options) in a fresh clone with a fresh store.

    The clone's training config is the small one from tests/configs (the
    full-size one trains for minutes; the path through the code is the same).
    """
    base = tmp_path_factory.mktemp("first-run")
    ws = Workspace(copy_project(base / "clone"), base / "zenml-config", {"XDG_CONFIG_HOME": str(base / "home")})
    shutil.copy(FAST_CONFIG, ws.root / "configs" / "training.yaml")
    result = ws.run("train")
    assert result.code == 0, result
    return ws, result


def test_the_first_command_on_a_fresh_clone_sets_everything_up_and_trains(first_run):
    """Stacks registered, repository initialised, the default partner's model trained and staged: no prompt."""
    ws, result = first_run
    out = result.out
    assert "stack university-local: registered" in out and "stack industry-local: registered" in out
    assert f"initialised the ZenML repository in {ws.root}; active stack: university-local" in out
    assert ("training parking-occupancy as partner 'university' on stack 'university-local' "
            "with data from the example generator") in out
    assert re.search(r"Training run 'training-[0-9_-]+-[0-9a-f]{8}' finished: completed "
                     r"\(stack 'university-local', partner 'university'\)", out)
    assert "model version: parking-occupancy version 1 (stage: staging)" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    mae = float(re.search(r"test period:\s+MAE ([0-9.]+)", out).group(1))
    baseline = float(re.search(r"baseline MAE ([0-9.]+)", out).group(1))
    assert mae < baseline
    assert (ws.root / ".zen").is_dir()
    assert "Traceback" not in result.err


def test_setting_up_again_changes_nothing(first_run):
    ws, _ = first_run
    again = ws.run("stacks")
    assert again.code == 0, again
    assert "stack university-local: up to date" in again.out and "stack industry-local: up to date" in again.out
    assert "registered" not in again.out and "initialised" not in again.out


def test_stack_files_import_by_hand(fresh_workspace: Workspace):
    """``zenml stack import`` works on the files; run.py then finds the components in place and adds the rest."""
    ws = fresh_workspace
    imported = ws.zenml("stack", "import", "stacks/university-local.yaml")
    assert imported.code == 0, imported
    setup = ws.run("stacks")
    assert setup.code == 0, setup
    assert "stack university-local: up to date" in setup.out
    assert "stack industry-local: registered" in setup.out
