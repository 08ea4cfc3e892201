"""Project files and training configs: every mistake is refused before ZenML, naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import FAST_CONFIG, assert_refused, example_data, write_project


def _edit(path: Path, change) -> Path:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(raw)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _with_training(tmp_path: Path, text: str) -> Path:
    """A project whose training config is ``text``."""
    config = tmp_path / "training.yaml"
    config.write_text(text, encoding="utf-8")
    return write_project(tmp_path, training=config)


def _every_command(tmp_path: Path) -> dict[str, list[str]]:
    data, out = str(tmp_path / "data.csv"), str(tmp_path / "out")
    return {
        "main job": [], "train": ["train"], "stacks": ["stacks"],
        "keys init": ["keys", "init", "--partner", "industry"],
        "verify": ["verify", out], "export-data": ["export-data", "--data", data, "--out", out],
        "handover": ["handover", "--out", out], "import-model": ["import-model", out],
        "infer": ["infer", "--data", data, "--out", f"{out}.csv"], "deploy": ["deploy"],
        "approve": ["approve", "1", "--by", "Ops"], "rollback": ["rollback"], "undeploy": ["undeploy"],
        "status": ["status"],
    }


COMMAND_NAMES = list(_every_command(Path("/")))


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_every_command_refuses_an_unknown_key_in_the_project_file(cli, tmp_path, command):
    """The project file is read first by every command: a typo is named with its file, never defaulted in silence."""
    project = _edit(write_project(tmp_path), lambda raw: raw.update(modle_name="typo"))
    result = cli("--project", project, *_every_command(tmp_path)[command])
    assert_refused(result, f"{project}: modle_name: unknown setting")


@pytest.mark.parametrize("position", ["before", "after"])
def test_project_option_is_read_before_or_after_the_command(cli, tmp_path, position):
    """``--project PATH`` works on either side of the command name (the command's default never hides it)."""
    project = _edit(write_project(tmp_path), lambda raw: raw["deployment"]["serving"].update(prot=8001))
    argv = ["--project", project, "status"] if position == "before" else ["status", "--project", project]
    assert_refused(cli(*argv), f"{project}: deployment.serving.prot: unknown setting")


def test_two_different_project_files_are_refused_not_one_silently_chosen(cli, tmp_path):
    first, second = write_project(tmp_path / "a"), write_project(tmp_path / "b")
    assert_refused(cli("--project", first, "status", "--project", second),
                   f"--project is given twice, {first} before the command and {second} after it")


def test_the_same_project_file_on_both_sides_is_one_choice(cli, tmp_path):
    project = _edit(write_project(tmp_path), lambda raw: raw["deployment"]["serving"].update(prot=8001))
    assert_refused(cli("--project", project, "status", "--project", project),
                   f"{project}: deployment.serving.prot: unknown setting")


PROJECT_MISTAKES = {
    "nested unknown key": (lambda raw: raw["partners"]["industry"].update(stak="x"),
                           ["partners.industry.stak: unknown setting"]),
    "string for a number": (lambda raw: raw["deployment"]["serving"].update(port="8000"),
                            ["deployment.serving.port: Input should be a valid integer (got '8000')"]),
    "missing model name": (lambda raw: raw.pop("model_name"), ["model_name: required setting is missing"]),
    "fraction out of range": (lambda raw: raw["exchange"].update(holdout_fraction=1.5),
                              ["exchange.holdout_fraction: Input should be less than 1 (got 1.5)"]),
    "default partner unknown": (lambda raw: raw.update(default_partner="hospital"),
                                ["default_partner 'hospital' is not one of the partners (industry, university)"]),
    "two mistakes at once": (lambda raw: raw.update(modle_name="x", tsak="regression"),
                             ["2 problems", "modle_name: unknown setting", "tsak: unknown setting"]),
}


@pytest.mark.parametrize("case", list(PROJECT_MISTAKES))
def test_a_wrong_project_setting_is_refused_naming_the_key(cli, tmp_path, case):
    change, fragments = PROJECT_MISTAKES[case]
    project = _edit(write_project(tmp_path), change)
    assert_refused(cli("train", "--project", project), str(project), *fragments)


@pytest.mark.parametrize("content, fragment", [
    (None, "project file not found"),
    ("name: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "a project file must be a mapping of settings"),
])
def test_an_unreadable_project_file_is_refused(cli, tmp_path, content, fragment):
    project = tmp_path / "project.yaml"
    if content is not None:
        project.write_text(content, encoding="utf-8")
    assert_refused(cli("status", "--project", project), f"{project}: {fragment}")


TRAINING_MISTAKES = {
    "model_name": ("parameters:\n  model_name: other\n",
                   "parameters.model_name belongs in the project file, as 'model_name'"),
    "task": ("parameters:\n  task: regression\n", "parameters.task belongs in the project file, as 'task'"),
    "contract_path": ("parameters:\n  contract_path: configs/contract.yaml\n",
                      "parameters.contract_path belongs in the project file, as 'contract'"),
    "unknown parameter": ("parameters:\n  spilt: {}\n",
                          "parameters.spilt: unknown setting (known: generator, split, search)"),
    "no parameters": ("enable_cache: false\n", "needs a 'parameters' mapping"),
    "unknown split key": ("parameters:\n  split: {test_fractoin: 0.1}\n", "split: unknown setting(s) test_fractoin"),
    "split out of range": ("parameters:\n  split: {test_fraction: 2}\n",
                           "split.test_fraction must be between 0 and 1, got 2"),
    "unknown search key": ("parameters:\n  search: {bsae: {}}\n", "search: unknown setting(s) bsae"),
    "empty grid": ("parameters:\n  search: {grid: {learning_rate: 0.1}}\n",
                   "search.grid.learning_rate must be a non-empty list of values"),
    "unknown generator key": ("parameters:\n  generator: {monthz: 2}\n", "monthz"),
    "not YAML": ("parameters: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", list(TRAINING_MISTAKES))
def test_a_wrong_training_config_is_refused_naming_the_file_and_key(cli, tmp_path, case):
    """The training config is checked before a run exists; model name, task and contract belong in the project."""
    text, fragment = TRAINING_MISTAKES[case]
    project = _with_training(tmp_path, text)
    assert_refused(cli("train", "--project", project), str(tmp_path / "training.yaml"), fragment)


def test_the_main_job_checks_the_training_config_too(cli, tmp_path):
    """``python run.py`` with no command reads the project's training config the same way."""
    project = _with_training(tmp_path, "parameters:\n  model_name: parking-occupancy\n")
    assert_refused(cli("--project", project), "parameters.model_name belongs in the project file")


def test_train_config_overrides_the_projects_training_config(cli, tmp_path):
    """``--config`` is read instead of the project's file: its mistake is reported, the project's never read."""
    project = _with_training(tmp_path, "parameters:\n  model_name: refused-if-read\n")
    override = tmp_path / "override.yaml"
    override.write_text("parameters:\n  split: {validation_fraction: -1}\n", encoding="utf-8")
    result = cli("train", "--project", project, "--config", override)
    assert_refused(result, f"{override}: split.validation_fraction must be between 0 and 1")
    assert "refused-if-read" not in result.err


def test_a_valid_override_gets_past_a_broken_project_training_config(cli, tmp_path):
    """With a good ``--config``, the broken project training file is never read: the next check answers."""
    project = _with_training(tmp_path, "parameters:\n  model_name: refused-if-read\n")
    missing = tmp_path / "missing.csv"
    result = cli("train", "--project", project, "--config", FAST_CONFIG, "--data", missing)
    assert_refused(result, f"{missing}: file not found")


def test_a_missing_training_config_is_refused(cli, tmp_path):
    missing = tmp_path / "nowhere.yaml"
    assert_refused(cli("train", "--project", write_project(tmp_path), "--config", missing),
                   f"{missing}: training config not found")


@pytest.mark.parametrize("argv", [
    ["train"], ["export-data", "--data", "{data}", "--out", "{out}"], ["deploy"], ["status"], ["import-model", "{out}"],
    ["handover", "--out", "{out}"], ["infer", "--data", "{data}", "--out", "{out}.csv"], ["undeploy"],
])
def test_an_unknown_partner_is_refused_before_the_store(cli, tmp_path, argv):
    """``--partner`` is checked against the project's partners before any stack is set up."""
    data, out = tmp_path / "data.csv", tmp_path / "out"
    example_data(months=1, car_parks=3).to_csv(data, index=False)  # export-data checks its data first
    out.mkdir()  # import-model checks that its bundle exists first
    project = write_project(tmp_path)
    filled = [a.format(data=data, out=out) for a in argv]
    result = cli(*filled, "--project", project, "--partner", "hospital")
    assert_refused(result, f"unknown partner 'hospital' (partners in {project}: industry, university)")
