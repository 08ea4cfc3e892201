"""The model bundle's proof that the receiver runs the model the producer tested.

A bundle carries the producer's predictions on its reference sample, with
the code revision, library digest and package versions that made them; the
receiver re-predicts the sample (import, deploy, every service start) and
refuses the model when a prediction moved beyond the tolerance. A receiver
whose feature code differs is simulated by patching the library's calendar
features in this process after the bundle is written.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from collabops.exchange import environment
from collabops.exchange.bundle import BundleError, verify
from collabops.exchange.model_bundle import PREDICTIONS_FILE, check_reference_predictions, load_model
from collabops.exchange.signing import trusted_keys
from collabops.production.serving import ServiceConfig
from collabops.production.serving.process import parse_args
from collabops.production.serving.runtime import load_verified_model
from collabops.training.features import CalendarFeatures
from tests.service.conftest import FEATURES, Bundle, write_bundle


def _shift_hours(monkeypatch: pytest.MonkeyPatch, hours: int) -> None:
    """This checkout's calendar features, changed: every hour moved by ``hours`` (as an edited feature function)."""
    original = CalendarFeatures.transform

    def transform(self, X):
        out = original(self, X)
        out["hour"] = (out["hour"] + hours) % 24
        return out

    monkeypatch.setattr(CalendarFeatures, "transform", transform)


def _moved(verified, model) -> np.ndarray:
    """|this checkout's predictions - the producer's| on the reference sample, row by row."""
    recorded = json.loads((verified.root / PREDICTIONS_FILE).read_text(encoding="utf-8"))["predictions"]
    sample = pd.read_parquet(verified.root / "reference" / "sample.parquet")
    return np.abs(model.predict(sample[FEATURES]) - np.asarray(recorded))


def _verified(path, keys):
    verified = verify(path, trusted_keys(keys), kind="model")
    return verified, load_model(verified)


def test_the_bundle_carries_the_producers_predictions_and_environment(bundle: Bundle):
    recorded = json.loads((bundle.path / PREDICTIONS_FILE).read_text(encoding="utf-8"))
    sample = bundle.frame.head(100)
    np.testing.assert_array_equal(recorded["predictions"], bundle.model.predict(sample[FEATURES]))
    producer = recorded["producer"]
    assert producer["library_digest"] == environment.library_digest()
    assert producer["packages"]["scikit-learn"] == environment.package_versions()["scikit-learn"]


def test_the_same_code_re_predicts_the_sample_exactly(bundle: Bundle):
    verified, model = _verified(bundle.path, bundle.keys)
    check = check_reference_predictions(verified, model, tolerance=0.0)
    assert check.rows == 100 and check.max_difference == 0.0


def test_changed_feature_code_is_refused_naming_the_largest_difference_and_both_revisions(
        bundle: Bundle, monkeypatch: pytest.MonkeyPatch):
    verified, model = _verified(bundle.path, bundle.keys)
    _shift_hours(monkeypatch, 5)
    moved = _moved(verified, model)
    with pytest.raises(BundleError) as refused:
        check_reference_predictions(verified, model, tolerance=1e-9)
    message = str(refused.value)
    assert refused.value.check == "reference predictions" and str(bundle.path) in message
    assert f"{int((moved > 1e-9).sum())} of 100 rows differ by more than 1e-09" in message
    assert f"the largest by {moved.max():.6g} (row {int(np.argmax(moved)) + 1}:" in message
    assert "producer code revision unknown" in message
    assert f"here library {environment.library_digest()[:12]}" in message
    assert "package versions are the same" in message


def test_the_tolerance_decides(bundle: Bundle, monkeypatch: pytest.MonkeyPatch):
    verified, model = _verified(bundle.path, bundle.keys)
    _shift_hours(monkeypatch, 1)
    largest = float(_moved(verified, model).max())
    assert largest > 0
    assert check_reference_predictions(verified, model, tolerance=largest).max_difference == largest
    with pytest.raises(BundleError, match="rows differ"):
        check_reference_predictions(verified, model, tolerance=largest * 0.999)


def test_package_versions_that_differ_are_named(bundle: Bundle, tmp_path, monkeypatch: pytest.MonkeyPatch):
    real = environment.producer_environment

    def older(code_revision):
        made = real("abc123")
        return {**made, "packages": {**made["packages"], "scikit-learn": "0.0.1"}}

    import collabops.exchange.model_bundle as model_bundle

    monkeypatch.setattr(model_bundle, "producer_environment", older)
    path, _ = write_bundle(bundle.model, bundle.frame, tmp_path, bundle.private_key, "out", "4")
    monkeypatch.undo()
    verified, model = _verified(path, bundle.keys)
    assert check_reference_predictions(verified, model, tolerance=0.0).max_difference == 0.0  # versions alone: fine
    _shift_hours(monkeypatch, 3)
    with pytest.raises(BundleError) as refused:
        check_reference_predictions(verified, model, tolerance=0.0)
    current = environment.package_versions()["scikit-learn"]
    assert "producer code revision abc123" in str(refused.value)
    assert f"package versions differ: scikit-learn 0.0.1 -> {current}" in str(refused.value)


def test_every_service_start_re_predicts_with_the_configured_tolerance(bundle: Bundle,
                                                                       monkeypatch: pytest.MonkeyPatch):
    config = ServiceConfig(bundle_dir=bundle.path, keys_dir=bundle.keys)
    load_verified_model(config)  # the same code: starts
    _shift_hours(monkeypatch, 6)
    with pytest.raises(BundleError, match="predicts the reference sample differently"):
        load_verified_model(config)
    load_verified_model(config.model_copy(update={"prediction_tolerance": 10.0}))  # a tolerance that allows it


def test_the_tolerance_is_a_service_option_and_refused_when_negative(capsys):
    assert parse_args(["--bundle", "b", "--keys-dir", "k"]).prediction_tolerance == 1e-9
    assert parse_args(["--bundle", "b", "--keys-dir", "k", "--prediction-tolerance", "0.5"]).prediction_tolerance == 0.5
    with pytest.raises(SystemExit) as exited:
        parse_args(["--bundle", "b", "--keys-dir", "k", "--prediction-tolerance", "-1"])
    assert exited.value.code == 2 and "prediction_tolerance" in capsys.readouterr().err
