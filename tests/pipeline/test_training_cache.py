"""The training steps' cache key includes the library's code: an edited feature function retrains.

Two trainings of one model name on the session's store with nothing changed
reuse the trained model from ZenML's cache; after an edit to the library
(here a copy of the ``collabops`` package whose ``features.py`` changed
hours, with the running code changed the same way), the model is trained
again and predicts differently.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from collabops.exchange import environment
from collabops.training.features import CalendarFeatures
from orchestration import names
from tests.conftest import ROOT, model_version, run_cli, unique, write_project

pytestmark = pytest.mark.slow

RUN = re.compile(r"Training run '(training-[^']+)' finished")


def _train(project) -> tuple[str, object]:
    from zenml.client import Client

    result = run_cli("train", "--project", project, "--partner", "university")
    assert result.code == 0, result
    run = Client().get_pipeline_run(RUN.search(result.out).group(1))
    return run, run.steps["train_model"].outputs[names.TRAINED_MODEL][0].load()


def test_an_edit_to_the_library_is_never_answered_from_the_cache(tmp_path, monkeypatch):
    from collabops.data.contract import load_contract
    from collabops.data.generator import GeneratorSettings, generate

    project = write_project(tmp_path, model_name=unique("cache-test"))
    _first_run, first = _train(project)  # trained, or from the cache of another test's identical training
    again_run, again = _train(project)
    assert str(again_run.steps["train_model"].status) == "cached"  # nothing changed: the cache answers

    library = shutil.copytree(ROOT / "collabops", tmp_path / "collabops",
                              ignore=shutil.ignore_patterns("__pycache__"))
    features = library / "training" / "features.py"  # the edit on disk (what the digest reads) ...
    features.write_text(features.read_text(encoding="utf-8") + "\n# hours moved by 3 (CalendarFeatures)\n",
                        encoding="utf-8")
    monkeypatch.setattr(environment, "LIBRARY_ROOT", library)
    environment.library_digest.cache_clear()
    monkeypatch.setattr(CalendarFeatures, "transform", _hours_moved(CalendarFeatures.transform, 3))  # ... as it runs
    try:
        edited_run, edited = _train(project)
    finally:
        environment.library_digest.cache_clear()
    assert str(edited_run.steps["train_model"].status) == "completed"
    monkeypatch.undo()
    contract = load_contract(ROOT / "configs" / "contract.yaml")
    rows = generate(GeneratorSettings(months=1, car_parks=2, seed=3))[contract.feature_columns]
    assert np.array_equal(first.predict(rows), again.predict(rows))
    assert not np.allclose(first.predict(rows), edited.predict(rows))
    assert model_version(project_name(project), 3).run_metadata["promotion"]  # the new model has its own version


def project_name(project) -> str:
    import yaml

    return yaml.safe_load(project.read_text(encoding="utf-8"))["model_name"]


def _hours_moved(original, hours: int):
    def transform(self, X):
        out = original(self, X)
        out["hour"] = (out["hour"] + hours) % 24
        return out

    return transform
