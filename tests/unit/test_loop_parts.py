"""The main job's pure parts (cli/loop.py): demo paths, demo keys never replaced, stage lines, batches, resume rule."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cli.loop import (
    DEMO_MARKER,
    LoopState,
    demo_config_dir,
    demo_data_dir,
    demo_project_text,
    ensure_demo_keys,
    request_batches,
    stage_line,
    write_if_changed,
)
from collabops.errors import ConfigError
from collabops.settings import load_project
from tests.conftest import PROJECT


def test_demo_folders_follow_xdg_and_default_under_home(monkeypatch: pytest.MonkeyPatch) -> None:
    assert demo_config_dir({"XDG_CONFIG_HOME": "/c"}) == Path("/c/collabops/demo")
    assert demo_data_dir({"XDG_DATA_HOME": "/d"}) == Path("/d/collabops/demo")
    monkeypatch.setenv("HOME", "/home/someone")
    assert demo_config_dir({}) == Path("/home/someone/.config/collabops/demo")
    assert demo_data_dir({}) == Path("/home/someone/.local/share/collabops/demo")


def test_demo_keys_are_created_once_marked_and_private(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = ensure_demo_keys(folder)
    names = sorted(str(p.relative_to(folder)) for p in first.created)
    assert names == [DEMO_MARKER, "keys/industry.key", "keys/industry.pub", "keys/university.key",
                     "keys/university.pub", "pseudonymisation.key"]
    assert "DEMONSTRATION KEYS - NOT FOR REAL DATA" in (folder / DEMO_MARKER).read_text()
    for private in (first.private_key("industry"), first.private_key("university"), first.pseudonymisation_key):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = first.pseudonymisation_key.read_text().strip()
    assert len(bytes.fromhex(key)) == 32
    contents = {p: p.read_bytes() for p in first.created}
    again = ensure_demo_keys(folder)
    assert again.created == ()
    assert {p: p.read_bytes() for p in first.created} == contents


def test_existing_files_are_never_replaced(tmp_path: Path) -> None:
    """A user's own marker or pseudonymisation key stays as it is; only what is missing is made."""
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / DEMO_MARKER).write_text("mine\n")
    (folder / "pseudonymisation.key").write_text("my own key, longer than thirty-two bytes\n")
    made = ensure_demo_keys(folder)
    assert (folder / DEMO_MARKER).read_text() == "mine\n"
    assert (folder / "pseudonymisation.key").read_text() == "my own key, longer than thirty-two bytes\n"
    assert {p.name for p in made.created} == {"industry.key", "industry.pub", "university.key", "university.pub"}


def test_a_half_key_pair_is_refused_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    (folder / "keys").mkdir(parents=True)
    (folder / "keys" / "industry.pub").write_text("ed25519 AAAA industry\n")
    with pytest.raises(ConfigError, match=r"industry\.pub: the demonstration key pair of 'industry' is incomplete"):
        ensure_demo_keys(folder)
    assert (folder / "keys" / "industry.pub").read_text() == "ed25519 AAAA industry\n"
    assert not (folder / "keys" / "industry.key").exists()


def test_the_demo_project_points_at_the_checkout_and_the_demo_keys(tmp_path: Path) -> None:
    keys = ensure_demo_keys(tmp_path / "demo")
    path = tmp_path / "demo" / "parking.yaml"
    assert write_if_changed(path, demo_project_text(PROJECT, keys, tmp_path / "exchange"))
    assert not write_if_changed(path, demo_project_text(PROJECT, keys, tmp_path / "exchange"))
    project = load_project(path)
    assert project.contract_path == PROJECT.parent / "contract.yaml"
    assert project.training_path == PROJECT.parent / "training.yaml"
    assert project.keys_dir == keys.keys_dir
    assert project.pseudonymisation_key_path == keys.pseudonymisation_key
    if hasattr(project, "exchange_dir"):
        assert project.exchange_dir == tmp_path / "exchange"
    assert "DEMONSTRATION KEYS" in path.read_text().splitlines()[2]
    assert yaml.safe_load(path.read_text())["model_name"] == load_project(PROJECT).model_name


@pytest.mark.parametrize(("index", "total", "seconds", "expected"), [
    (3, 17, 41.23, "[ 3/17] university train         41.2 s  version 2 staged"),
    (17, 17, 0.04, "[17/17] university train          0.0 s  version 2 staged"),
    (2, 9, 1234.5, "[2/9] university train       1234.5 s  version 2 staged"),
])
def test_stage_lines_line_up(index: int, total: int, seconds: float, expected: str) -> None:
    assert stage_line(index, total, "university train", seconds, "version 2 staged") == expected


def test_a_failed_stage_line_says_so() -> None:
    line = stage_line(8, 17, "industry monitor", 2.0, "`monitor` failed: no production version", failed=True)
    assert line == "[ 8/17] industry monitor          2.0 s  FAILED: `monitor` failed: no production version"


def test_request_batches_are_json_records_with_iso_times_and_nulls() -> None:
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2025-01-01", periods=5, freq="h", tz="Europe/Stockholm"),
        "capacity": pd.Series([1, 2, 3, 4, 5], dtype="int64"),
        "rain_mm": [0.0, float("nan"), 1.5, 0.0, 2.0],
        "is_holiday": [True, False, False, False, True],
        "occupancy_rate": [0.1] * 5,
    })
    bodies = list(request_batches(frame, ["timestamp", "capacity", "rain_mm", "is_holiday"], size=2))
    assert len(bodies) == 3
    records = [r for body in bodies for r in json.loads(body)["records"]]
    assert len(records) == 5
    assert records[0] == {"timestamp": "2025-01-01T00:00:00+01:00", "capacity": 1, "rain_mm": 0.0,
                          "is_holiday": True}
    assert records[1]["rain_mm"] is None
    assert all("occupancy_rate" not in r for r in records)


def test_the_state_resumes_after_the_last_stage_done_in_the_same_store(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    order = ["a", "b", "c", "d"]
    state = LoopState("store-1", order=order)
    state.record("a", {"result": "A"})
    state.record("b", {"result": "B"})
    state.record("d", {"result": "D"})  # recorded, but after a gap: not done
    state.save(path)
    again = LoopState.load(path, "store-1", order)
    assert again.done("a") == {"result": "A"} and again.done("b") == {"result": "B"}
    assert again.done("c") is None and again.done("d") is None
    again.forget_from("b")
    assert set(again.stages) == {"a"}
    assert LoopState.load(path, "another-store", order).stages == {}
    (tmp_path / "broken.json").write_text("{not json")
    assert LoopState.load(tmp_path / "broken.json", "store-1", order).stages == {}
