"""A retraining request inside a data bundle: signed with the manifest, checked by its schema, shown to the user.

The industry's monitoring exports a data bundle whose manifest carries
``retraining_request``; the signature over ``manifest.json`` covers it, the
data manifest's schema checks its shape (a wrong one is refused naming the
field, at export and on receipt), and a bundle without one verifies exactly
as before.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from collabops.data.contract import load_contract
from collabops.data.profile import profile
from collabops.exchange.bundle import BundleError, Producer, archive, open_bundle, verify
from collabops.exchange.data_bundle import (
    RetrainingRequestError,
    describe_retraining_request,
    retraining_request,
    write_data_bundle,
)
from collabops.exchange.signing import load_signer, trusted_keys
from tests.cli.test_import_refusals import copy_of, reseal
from tests.conftest import CONTRACT, example_data, key_pair

SPEC = load_contract(CONTRACT)

REQUEST: dict[str, Any] = {
    "reason": "live MAE is 1.6 times what the model promised since March",
    "verdict": "drift",
    "drifted_features": ["price_per_hour", "temperature_c"],
    "period": {"start": "2025-03-01T00:00:00+01:00", "end": "2025-03-31T23:00:00+02:00"},
    "production_version": "3",
    "production_bundle_id": "6f1c2d3e-model",
    "live_error": {"metric": "mae", "value": 0.0612, "promised": 0.0377, "holdout": 0.0401, "rows": 1234},
    "monitoring_run": "monitoring-2025_04_01-06_00_00_000001",
    "requested_at": "2025-04-01T06:00:00+00:00",
}


def _write(frame: Any, private: Path, out: Path, request: dict[str, Any] | None = None) -> tuple[Path, dict]:
    """What the export writes (without its run): ``frame`` signed by the industry, with ``request`` if given."""
    return write_data_bundle(frame, SPEC, profile(frame, SPEC), Producer(partner="industry"),
                             load_signer("industry", private), out, retraining_request=request)


class World:
    def __init__(self, base: Path) -> None:
        self.keys = base / "keys"
        self.private = key_pair(self.keys, base / "industry-home", "industry")
        key_pair(self.keys, base / "university-home", "university")
        self.frame = example_data(months=1, car_parks=2)
        self.requested, self.manifest = _write(self.frame, self.private, base / "exchange", REQUEST)
        self.ordinary, _ = _write(self.frame, self.private, base / "exchange")

    def verify(self, root: Path) -> Any:
        return verify(root, trusted_keys(self.keys), kind="data", contract=SPEC, partner="university")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("retraining-request"))


# --- round trip ------------------------------------------------------------------------------------------------


def test_a_bundle_with_a_request_verifies_and_returns_the_same_request(world):
    verified = world.verify(world.requested)
    assert verified.signer == "industry"
    assert retraining_request(verified) == REQUEST
    on_disk = json.loads((world.requested / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["retraining_request"] == REQUEST  # in the signed bytes, not beside them
    assert world.manifest["retraining_request"] == REQUEST  # what write_data_bundle returns


def test_the_request_survives_an_archive(world, tmp_path):
    packed = archive(world.requested, tmp_path / "requested.tar.gz")
    with open_bundle(packed, trusted_keys(world.keys), kind="data", contract=SPEC, partner="university") as opened:
        assert retraining_request(opened) == REQUEST


def test_the_returned_request_is_a_copy(world):
    verified = world.verify(world.requested)
    request = retraining_request(verified)
    assert request is not None
    request["drifted_features"].append("occupancy")
    assert retraining_request(verified) == REQUEST


def test_optional_parts_are_written_as_none(world, tmp_path):
    minimal = {k: v for k, v in REQUEST.items() if k not in ("production_bundle_id", "live_error")}
    root, _ = _write(world.frame, world.private, tmp_path, minimal)
    assert retraining_request(world.verify(root)) == {**minimal, "production_bundle_id": None, "live_error": None}


def test_a_whole_number_error_is_written_as_a_float(world, tmp_path):
    request = copy.deepcopy(REQUEST)
    request["live_error"].update(value=1, promised=None, holdout=None)
    root, _ = _write(world.frame, world.private, tmp_path, request)
    live = retraining_request(world.verify(root))["live_error"]
    assert live == {"metric": "mae", "value": 1.0, "promised": None, "holdout": None, "rows": 1234}
    assert isinstance(live["value"], float)


# --- a bundle without a request: as before ---------------------------------------------------------------------


def test_a_bundle_without_a_request_verifies_as_before_and_has_none(world):
    verified = world.verify(world.ordinary)
    assert retraining_request(verified) is None
    assert "retraining_request" not in json.loads((world.ordinary / "manifest.json").read_text(encoding="utf-8"))
    assert set(verified.manifest) == set(world.manifest) - {"retraining_request"}


# --- the signature covers it -----------------------------------------------------------------------------------


TAMPERINGS = {
    "a softer reason": lambda r: r.update(reason="routine refresh"),
    "another production version": lambda r: r.update(production_version="4"),
    "a smaller live error": lambda r: r["live_error"].update(value=0.0377),
    "a feature dropped": lambda r: r["drifted_features"].pop(),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_a_request_changed_after_signing_is_refused_by_the_signature(world, tmp_path, name):
    root = copy_of(world.requested, tmp_path)
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    TAMPERINGS[name](manifest["retraining_request"])
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with pytest.raises(BundleError) as refused:
        world.verify(root)
    assert refused.value.check == "signature", refused.value
    assert "manifest.sig does not verify manifest.json with any trusted key" in refused.value.detail


def test_a_request_added_to_an_ordinary_bundle_after_signing_is_refused(world, tmp_path):
    root = copy_of(world.ordinary, tmp_path)
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    manifest["retraining_request"] = REQUEST
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with pytest.raises(BundleError) as refused:
        world.verify(root)
    assert refused.value.check == "signature", refused.value


# --- the schema: wrong shapes, validly signed, refused naming the field -----------------------------------------


def _without(key: str) -> Any:
    return lambda r: r.__delitem__(key)


WRONG_SHAPES: dict[str, tuple[Any, str]] = {
    "no reason": (_without("reason"), "retraining_request.reason: missing"),
    "an empty reason": (lambda r: r.update(reason="  "), "retraining_request.reason: must not be empty"),
    "a reason of two lines": (lambda r: r.update(reason="drift\nretrain now"),
                              "retraining_request.reason: must be one line of text"),
    "a period that starts after it ends": (
        lambda r: r.update(period={"start": "2025-04-01T00:00:00+00:00", "end": "2025-03-01T00:00:00+00:00"}),
        "retraining_request.period: starts (2025-04-01T00:00:00+00:00) after it ends (2025-03-01T00:00:00+00:00)"),
    "a period without an end": (lambda r: r["period"].__delitem__("end"), "retraining_request.period.end: missing"),
    "a period start that is no time": (lambda r: r["period"].update(start="March"),
                                       "retraining_request.period.start: not an ISO 8601 date and time (got 'March')"),
    "an unknown key": (lambda r: r.update(urgency="high"), "retraining_request.urgency: not a manifest field"),
    "an unknown key in the live error": (lambda r: r["live_error"].update(p_value=0.01),
                                         "retraining_request.live_error.p_value: not a manifest field"),
    "the error value as a string": (lambda r: r["live_error"].update(value="0.0612"),
                                    "retraining_request.live_error.value: Input should be a valid number "
                                    "(got '0.0612')"),
    "the promised error as a boolean": (lambda r: r["live_error"].update(promised=True),
                                        "retraining_request.live_error.promised: "),
    "negative rows": (lambda r: r["live_error"].update(rows=-1),
                      "retraining_request.live_error.rows: Input should be greater than or equal to 0"),
    "rows as a float": (lambda r: r["live_error"].update(rows=12.0),
                        "retraining_request.live_error.rows: Input should be a valid integer"),
    "an unknown verdict": (lambda r: r.update(verdict="fine"),
                           "retraining_request.verdict: Input should be 'drift' or 'warning' (got 'fine')"),
    "features as one string": (lambda r: r.update(drifted_features="price_per_hour"),
                               "retraining_request.drifted_features: Input should be a valid list"),
    "the version as a number": (lambda r: r.update(production_version=3),
                                "retraining_request.production_version: Input should be a valid string (got 3)"),
    "no monitoring run": (_without("monitoring_run"), "retraining_request.monitoring_run: missing"),
    "a request time that is no time": (lambda r: r.update(requested_at="today"),
                                       "retraining_request.requested_at: not an ISO 8601 date and time"),
    "a request that is a string": (lambda r: "please retrain",
                                   "retraining_request: Input should be a valid dictionary"),
}


def _changed(change: Any) -> dict[str, Any] | Any:
    """A copy of REQUEST edited in place by ``change``, or what ``change`` returns instead (not None)."""
    request = copy.deepcopy(REQUEST)
    replaced = change(request)
    return request if replaced is None else replaced


@pytest.mark.parametrize("name", sorted(WRONG_SHAPES))
def test_a_validly_signed_request_of_the_wrong_shape_is_refused_naming_the_field(world, tmp_path, name):
    change, fragment = WRONG_SHAPES[name]
    root = copy_of(world.requested, tmp_path)
    reseal(root, world.private, partner="industry",
           change=lambda manifest: manifest.update(retraining_request=_changed(change)))
    with pytest.raises(BundleError) as refused:
        world.verify(root)
    assert refused.value.check == "manifest", refused.value
    assert fragment in refused.value.detail, refused.value
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name", sorted(WRONG_SHAPES))
def test_the_export_refuses_a_request_of_the_wrong_shape_before_writing_anything(world, tmp_path, name):
    change, fragment = WRONG_SHAPES[name]
    out = tmp_path / "exchange"
    with pytest.raises(RetrainingRequestError) as refused:
        _write(world.frame, world.private, out, _changed(change))
    message = str(refused.value)
    if name == "a request that is a string":
        assert message == "retraining_request: must be a mapping, got a str"
    else:
        assert message.startswith("retraining request refused: ") and fragment in message, message
    assert not out.exists() or not any(out.iterdir())


def test_a_nan_error_is_refused_at_export(world, tmp_path):
    request = copy.deepcopy(REQUEST)
    request["live_error"]["value"] = float("nan")
    with pytest.raises(RetrainingRequestError, match=r"retraining_request\.live_error\.value: .*finite number"):
        _write(world.frame, world.private, tmp_path, request)


def test_an_older_manifest_without_the_field_still_verifies_after_resealing(world, tmp_path):
    """The schema change is additive: an old-style manifest (no retraining_request key) is accepted as it was."""
    root = copy_of(world.requested, tmp_path)
    reseal(root, world.private, partner="industry", change=lambda manifest: manifest.__delitem__("retraining_request"))
    assert retraining_request(world.verify(root)) is None


# --- what the user sees ----------------------------------------------------------------------------------------


def test_the_description_names_features_period_version_and_errors():
    lines = describe_retraining_request(REQUEST, requested_by="industry")
    text = "\n".join(lines)
    assert lines[0] == "retraining request from 'industry': drift in price_per_hour, temperature_c"
    assert f"why:        {REQUEST['reason']}" in text
    assert "period:     2025-03-01T00:00:00+01:00 to 2025-03-31T23:00:00+02:00" in text
    assert "production: version 3 (model bundle 6f1c2d3e-model)" in text
    assert "live error: mae 0.0612 on 1,234 rows (promised 0.0377, holdout 0.0401)" in text
    assert "monitoring: run 'monitoring-2025_04_01-06_00_00_000001', requested at 2025-04-01T06:00:00+00:00" in text
    assert all("\n" not in line for line in lines)


def test_the_description_of_a_warning_without_live_error_or_features():
    request = {**REQUEST, "verdict": "warning", "drifted_features": [], "live_error": None,
               "production_bundle_id": None}
    lines = describe_retraining_request(request)
    assert lines[0] == "retraining request: warning with no feature named"
    assert "  production: version 3" in lines
    assert "  live error: not measured" in lines


def test_the_description_of_a_live_error_without_a_promise():
    request = copy.deepcopy(REQUEST)
    request["live_error"].update(promised=None, holdout=0.05)
    assert "  live error: mae 0.0612 on 1,234 rows (holdout 0.05)" in describe_retraining_request(request)
    request["live_error"].update(holdout=None)
    assert "  live error: mae 0.0612 on 1,234 rows (no promised figure)" in describe_retraining_request(request)


def test_the_description_refuses_a_request_of_the_wrong_shape():
    with pytest.raises(RetrainingRequestError, match=r"retraining_request\.reason: missing"):
        describe_retraining_request({k: v for k, v in REQUEST.items() if k != "reason"})


# --- the training run records it -------------------------------------------------------------------------------


def test_the_training_runs_raw_data_provenance_carries_the_request(world, monkeypatch):
    """``load_data_bundle`` (the training pipeline's first step) logs the request with the bundle's provenance."""
    import steps.exchange as exchange_steps

    logged: list[dict[str, Any]] = []
    monkeypatch.setattr(exchange_steps, "log_metadata", lambda metadata, **_: logged.append(metadata))
    verified = world.verify(world.requested)
    frame = exchange_steps.load_data_bundle.entrypoint(str(verified.root), verified.manifest, verified.signer)
    assert len(frame) == world.manifest["rows"]
    assert logged and all(entry["retraining_request"] == REQUEST for entry in logged)
    assert all(entry["bundle_id"] == verified.bundle_id for entry in logged)

    logged.clear()
    ordinary = world.verify(world.ordinary)
    exchange_steps.load_data_bundle.entrypoint(str(ordinary.root), ordinary.manifest, ordinary.signer)
    assert logged and all("retraining_request" not in entry for entry in logged)
