"""The project file's monitoring section: refused when inconsistent or mistyped, and its exchange folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from collabops.errors import ConfigError
from collabops.settings import DEFAULT_PROJECT, MonitoringSettings, load_project


def _project(tmp_path: Path, **monitoring) -> Path:
    raw = yaml.safe_load(DEFAULT_PROJECT.read_text())
    raw["monitoring"].update(monitoring)
    for key in ("contract", "training"):
        raw[key] = str(DEFAULT_PROJECT.parent / raw[key])
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_project_file_as_written_loads():
    monitoring = load_project(DEFAULT_PROJECT).monitoring
    assert monitoring.warning_error_ratio <= monitoring.max_error_ratio
    assert monitoring.threshold("temperature_c") == 0.3 and monitoring.threshold("capacity") == 0.1


def test_a_warning_ratio_above_the_drift_ratio_is_refused(tmp_path):
    with pytest.raises(ConfigError) as refused:
        load_project(_project(tmp_path, warning_error_ratio=1.5, max_error_ratio=1.25))
    assert "monitoring" in str(refused.value) and "warning_error_ratio 1.5 is above max_error_ratio 1.25" in str(
        refused.value)
    assert MonitoringSettings(warning_error_ratio=1.25, max_error_ratio=1.25).max_error_ratio == 1.25


@pytest.mark.parametrize("value, shown", [(0, "0.0"), (-0.1, "-0.1")])
def test_a_non_positive_column_threshold_is_refused(tmp_path, value, shown):
    with pytest.raises(ConfigError, match=rf"monitoring: .*column_thresholds\.rain_mm: {shown} is not above 0"):
        load_project(_project(tmp_path, column_thresholds={"temperature_c": 0.3, "rain_mm": value}))


def test_an_unknown_monitoring_key_is_refused_naming_it_and_the_file(tmp_path):
    path = _project(tmp_path, drift_treshold=0.2)
    with pytest.raises(ConfigError) as refused:
        load_project(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert "monitoring.drift_treshold: unknown setting" in str(refused.value)


@pytest.mark.parametrize("change", [{"drift_threshold": 0}, {"drift_share": 1.5}, {"min_rows": "500"},
                                    {"sample_rows": 10}, {"max_error_ratio": 0.9}])
def test_out_of_range_or_mistyped_values_are_refused(tmp_path, change):
    with pytest.raises(ConfigError, match=f"monitoring.{next(iter(change))}"):
        load_project(_project(tmp_path, **change))
    with pytest.raises(ValidationError):
        MonitoringSettings(**change)


def test_the_exchange_folder_follows_xdg_data_home_when_not_named(tmp_path, monkeypatch):
    project = load_project(_project(tmp_path, exchange_dir=None))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    assert project.exchange_dir == tmp_path / "data-home" / "collabops" / "exchange"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert project.exchange_dir == Path.home() / ".local" / "share" / "collabops" / "exchange"
    monkeypatch.setenv("XDG_DATA_HOME", "")
    assert project.exchange_dir == Path.home() / ".local" / "share" / "collabops" / "exchange"


def test_a_named_exchange_folder_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    named = load_project(_project(tmp_path, exchange_dir=str(tmp_path / "out")))
    assert named.exchange_dir == tmp_path / "out"
    home = load_project(_project(tmp_path, exchange_dir="~/exchange-here"))
    assert home.exchange_dir == Path.home() / "exchange-here"
