"""``handover`` refuses a version that this checkout's code no longer scores as it did when it was trained.

The bundle's reference predictions are made at handover, by the checkout's
code; they must be the training code's. A receiver whose code differs is
simulated by patching the library's calendar features in this process after
training (as an edit to ``collabops/training/features.py`` would).
"""

from __future__ import annotations

import pytest

from collabops.training.features import CalendarFeatures
from tests.conftest import assert_refused, key_pair, model_version, run_cli, unique, write_project

pytestmark = pytest.mark.slow


def test_a_version_the_code_scores_differently_from_its_training_is_not_handed_over(tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    private = key_pair(keys, tmp_path / "home", "university")
    name = unique("handover-code")
    project = write_project(tmp_path, model_name=name, keys_dir=keys)
    trained = run_cli("train", "--project", project, "--partner", "university")
    assert trained.code == 0, trained
    recorded = model_version(name, 1).run_metadata["test_metrics"]["overall"]["mae"]

    original = CalendarFeatures.transform

    def hours_moved(self, X):
        out = original(self, X)
        out["hour"] = (out["hour"] + 5) % 24
        return out

    with monkeypatch.context() as patched:
        patched.setattr(CalendarFeatures, "transform", hours_moved)
        refused = run_cli("handover", "--project", project, "--partner", "university", "--version", "1",
                          "--out", tmp_path / "out-edited", "--private-key", private)
    assert_refused(refused, "model version 1 scores test mae", f"but {recorded:.6g} when it was trained: the "
                   "library's code changed since")
    assert not (tmp_path / "out-edited").exists() or not any((tmp_path / "out-edited").iterdir())

    handed = run_cli("handover", "--project", project, "--partner", "university", "--version", "1",
                     "--out", tmp_path / "out", "--private-key", private)
    assert handed.code == 0, handed
    assert len(list((tmp_path / "out").glob("model-*"))) == 1
