"""Champion/challenger in the training pipeline: training periods recorded, champion re-scored on unseen rows only.

Three trainings of one model on files whose periods overlap (the session's
store, in this process):

1. April to May: version 1, promoted (no champion); it records its training
   period (first time of its training rows to last time of its validation
   rows, computed here with the library's split).
2. April only: this run's test period lies inside version 1's training
   period; no row is left that version 1 did not train on, so the decision
   says the comparison is not fair and does not promote.
3. 24 April to 24 May: part of the test period lies inside version 1's
   training period and is left out; both models are scored on the rest, and
   version 1's score there is recomputed here from its model artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from collabops.data.contract import load_contract
from collabops.data.dataset import read_table
from collabops.data.split import SplitSettings, time_split
from tests.conftest import CONTRACT, FAST_CONFIG, CliResult, example_data, model_version, run_cli, write_project

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Trained:
    name: str
    files: dict[str, Path]
    results: dict[str, CliResult]


def _split(path: Path):
    """The train, validation and test parts of ``path`` as the pipeline cuts them (the library's reading and split)."""
    contract = load_contract(CONTRACT)
    frame = contract.validate(read_table(path, contract=contract), source=str(path))
    split = yaml.safe_load(FAST_CONFIG.read_text())["parameters"]["split"]
    return time_split(frame, contract.time_column, SplitSettings.from_dict(split), source=str(path))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    base = tmp_path_factory.mktemp("promotion-periods")
    project = write_project(base)
    name = yaml.safe_load(project.read_text())["model_name"]
    files = {"first": ("2024-04-01", 2), "inside": ("2024-04-01", 1), "straddling": ("2024-04-24", 1)}
    paths, results = {}, {}
    for key, (start, months) in files.items():
        paths[key] = base / f"{key}.csv"
        example_data(months=months, car_parks=4, seed=3, start=start).to_csv(paths[key], index=False)
        results[key] = run_cli("train", "--project", project, "--data", paths[key], "--partner", "university")
        assert results[key].code == 0, results[key]
    return Trained(name, paths, results)


def test_a_version_records_the_period_of_the_rows_it_was_trained_on(trained):
    parts = _split(trained.files["first"])
    metadata = model_version(trained.name, 1).run_metadata
    assert metadata["training_period"] == {"start": parts.train["timestamp"].min().isoformat(),
                                           "end": parts.validation["timestamp"].max().isoformat()}
    assert metadata["promotion"]["promote"] is True and model_version(trained.name, 1).stage == "staging"


def test_a_test_period_inside_the_champions_training_period_is_no_fair_comparison(trained):
    test = _split(trained.files["inside"]).test
    period = model_version(trained.name, 1).run_metadata["training_period"]
    promotion = model_version(trained.name, 2).run_metadata["promotion"]
    assert promotion["promote"] is False and promotion["fair"] is False
    assert promotion["reason"] == (
        f"not promoted: no fair comparison with staging version 1: all {len(test):,} rows of this run's test period "
        f"({test['timestamp'].min()} to {test['timestamp'].max()}) fall inside its training period "
        f"({period['start']} to {period['end']}), so no row is left that it did not train on; to promote version 2 "
        f"anyway: `zenml model version update {trained.name} 2 --stage staging --force`")
    assert promotion["excluded_rows"] == len(test) and "champion" not in promotion
    assert model_version(trained.name, 2).stage != "staging"
    assert "decision:      not promoted: no fair comparison with staging version 1" in trained.results["inside"].out


def test_the_champion_is_re_scored_only_on_test_rows_it_did_not_train_on(trained):
    test = _split(trained.files["straddling"]).test
    end = pd.Timestamp(model_version(trained.name, 1).run_metadata["training_period"]["end"])
    unseen = test[test["timestamp"] > end]
    assert 0 < len(unseen) < len(test)
    promotion = model_version(trained.name, 3).run_metadata["promotion"]
    assert promotion["fair"] is True and promotion["min_improvement"] == 0.01
    assert (promotion["comparison_rows"], promotion["excluded_rows"]) == (len(unseen), len(test) - len(unseen))
    contract = load_contract(CONTRACT)
    champion = model_version(trained.name, 1).get_model_artifact("trained_model").load()
    expected = float(np.mean(np.abs(champion.predict(unseen[contract.feature_columns]) - unseen[contract.target])))
    assert promotion["champion"] == pytest.approx(expected, rel=1e-9)
    challenger = model_version(trained.name, 3).get_model_artifact("trained_model").load()
    mine = float(np.mean(np.abs(challenger.predict(unseen[contract.feature_columns]) - unseen[contract.target])))
    assert promotion["candidate_on_comparison_rows"] == pytest.approx(mine, rel=1e-9)
    metadata = model_version(trained.name, 3).run_metadata
    beats_baseline = metadata["test_metrics"]["overall"]["mae"] < metadata["baseline_test_metrics"]["overall"]["mae"]
    promoted = beats_baseline and mine <= expected * (1 - 0.01)
    assert promotion["promote"] is promoted
    assert (model_version(trained.name, 3).stage == "staging") is promoted
    if beats_baseline:
        assert (f"on the {len(unseen):,} test rows it did not train on ({len(test) - len(unseen):,} inside its "
                "training period left out)") in promotion["reason"]
