"""The project file: typed, parsed once, every unknown or mistyped key refused naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from collabops.errors import ConfigError
from collabops.settings import DEFAULT_PROJECT, DeploymentSettings, ServingSettings, load_project, load_training_config


def _project(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(DEFAULT_PROJECT.read_text())
    change(raw)
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_default_project_resolves_its_files_next_to_it():
    project = load_project()
    assert project.model_name == "parking-occupancy" and project.task == "regression"
    assert project.contract_path == DEFAULT_PROJECT.parent / "contract.yaml"
    assert project.training_path.is_file() and project.keys_dir.name == "keys"
    assert project.stack_of("industry") == "industry-local"
    assert project.partner_of("university-local") == "university"


def test_defaults_are_written_once_in_the_settings_classes():
    # A project that leaves the deployment block out gets the same values as the classes' defaults.
    assert DeploymentSettings().serving == ServingSettings()
    assert ServingSettings().port == 8000 and ServingSettings().workers == 2
    assert DeploymentSettings().acceptance.metric is None  # the task's metric


@pytest.mark.parametrize("change, fragments", [
    (lambda r: r["deployment"]["serving"].update(prot=9000), ["deployment.serving.prot: unknown setting"]),
    (lambda r: r["deployment"]["serving"].update(port=70000), ["deployment.serving.port", "65535", "70000"]),
    (lambda r: r["deployment"]["serving"].update(port="8000"), ["deployment.serving.port", "'8000'"]),
    (lambda r: r["deployment"]["serving"].update(workers=1.5), ["deployment.serving.workers"]),
    (lambda r: r["deployment"]["acceptance"].update(max_eror=0.1), ["deployment.acceptance.max_eror: unknown"]),
    (lambda r: r["deployment"]["smoke_test"].update(rows=0), ["deployment.smoke_test.rows"]),
    (lambda r: r["exchange"].update(holdout_fraction=1.5), ["exchange.holdout_fraction"]),
    (lambda r: r.update(approval=True), ["approval: unknown setting"]),
    (lambda r: r.pop("model_name"), ["model_name: required setting is missing"]),
    (lambda r: r.update(model_name=""), ["model_name"]),
    (lambda r: r.update(model_name="  "), ["model_name"]),
    (lambda r: r.update(default_partner="hospital"), ["default_partner 'hospital' is not one of the partners"]),
])
def test_bad_project_files_are_refused_naming_file_and_key(tmp_path, change, fragments):
    path = _project(tmp_path, change)
    with pytest.raises(ConfigError) as refused:
        load_project(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_a_value_is_never_silently_converted(tmp_path):
    # Strict: a quoted number or a yes/no string is refused, never turned into a number or a bool.
    path = _project(tmp_path, lambda r: r["deployment"].update(require_approval="yes"))
    with pytest.raises(ConfigError, match="require_approval"):
        load_project(path)
    # An integer where a float is expected loses nothing and is accepted (pydantic's strict-mode rule).
    path = _project(tmp_path, lambda r: r["deployment"]["acceptance"].update(max_error=1))
    assert load_project(path).deployment.acceptance.max_error == 1.0


def test_an_unknown_partner_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown partner 'hospital' \(partners in .*: industry, university\)"):
        load_project().stack_of("hospital")


@pytest.mark.parametrize("parameters, fragment", [
    ({"model_name": "x"}, "parameters.model_name belongs in the project file, as 'model_name'"),
    ({"contract_path": "c.yaml"}, "parameters.contract_path belongs in the project file, as 'contract'"),
    ({"serach": {}}, "parameters.serach: unknown setting"),
    ({"split": {"test_fraction": 2}}, "split.test_fraction must be between 0 and 1"),
    ({"generator": {"monts": 2}}, "parameters.generator"),
    ({"generator": {"months": 0}}, "generator: months and car_parks must be at least 1"),
    ({"generator": {"months": 1.5}}, "generator.months must be a whole number"),
    ({"search": {"grid": 3}}, "parameters.search"),
    ({"search": {"grid": {"max_leaf_nodes": 3}}}, "search.grid.max_leaf_nodes must be a non-empty list"),
    ({"split": {"test_fraction": "0.1"}}, "parameters.split"),
    ({"split": 7}, "parameters.split must be a mapping of settings, not 7"),
])
def test_bad_training_configs_are_refused_naming_file_and_key(tmp_path, parameters, fragment):
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump({"parameters": parameters}))
    with pytest.raises(ConfigError) as refused:
        load_training_config(path)
    assert str(refused.value).startswith(f"{path}: ") and fragment in str(refused.value)


def test_missing_and_malformed_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="project file not found"):
        load_project(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_project(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_project(bad)


def test_a_wrong_section_is_named_without_echoing_the_whole_file(tmp_path):
    path = _project(tmp_path, lambda r: r.update(default_partner="hospital"))
    with pytest.raises(ConfigError) as refused:
        load_project(path)
    assert "default_partner 'hospital' is not one of the partners" in str(refused.value)
    assert "got {" not in str(refused.value) and "deployment" not in str(refused.value)


def test_a_project_outside_any_checkout_reads_relative_paths_next_to_itself(tmp_path: Path):
    folder = tmp_path / "proj"
    folder.mkdir()
    path = _project(folder, lambda raw: None)
    assert not any((parent / "run.py").is_file() for parent in [folder, *folder.parents])
    project = load_project(path)
    assert project.root == folder.resolve()
    assert project.keys_dir == folder.resolve() / "keys"  # not the parent folder's keys


def test_no_trusted_keys_names_the_folder_it_looked_in(tmp_path: Path):
    from collabops.exchange.bundle import BundleError, check_signature
    from collabops.exchange.signing import trusted_keys

    with pytest.raises(BundleError, match=f"no <partner>.pub in {tmp_path}"):
        check_signature(tmp_path / "bundle", b"{}", b"x" * 64, trusted_keys(tmp_path))


def test_a_key_written_twice_in_a_project_file_is_refused_naming_both_lines(tmp_path: Path):
    path = tmp_path / "project.yaml"
    text = DEFAULT_PROJECT.read_text(encoding="utf-8")
    path.write_text(text.replace("model_name: parking-occupancy", "model_name: parking-occupancy\nmodel_name: other",
                                 1), encoding="utf-8")
    line = next(i for i, row in enumerate(path.read_text().splitlines(), start=1) if row.startswith("model_name:"))
    with pytest.raises(ConfigError, match=rf"{path}: key 'model_name' is written twice \(lines {line} and "
                                          rf"{line + 1}\)"):
        load_project(path)


def test_the_pseudonymisation_key_file_follows_xdg_config_home_unless_the_project_names_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert load_project().pseudonymisation_key_path == tmp_path / "xdg" / "collabops" / "pseudonymisation.key"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert load_project().pseudonymisation_key_path == Path.home() / ".config" / "collabops" / "pseudonymisation.key"
    named = load_project(_project(tmp_path, lambda raw: raw["exchange"].update(pseudonymisation_key_file="~/k.key")))
    assert named.pseudonymisation_key_path == Path.home() / "k.key"
