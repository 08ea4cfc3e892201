"""The smoke test a new service must pass, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collabops.production.deployment import DeploymentError, smoke_test


class _Fake(BaseHTTPRequestHandler):
    """A stand-in prediction service whose answers the test sets."""

    answers: typing.ClassVar[dict] = {}

    def _send(self, path: str) -> None:
        status, body = self.answers[path]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(self.path)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send(self.path)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Fake.answers = {"/health": (200, {"status": "ok"}),
                     "/metadata": (200, {"model_version": "3", "bundle_id": "b-1"}),
                     "/predict": (200, {"predictions": [0.5, 0.25]})}
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


RECORDS = [{"capacity": 1}, {"capacity": 2}]


def test_a_service_serving_the_right_model_passes(fake_service):
    checked = smoke_test(fake_service, RECORDS, [0.5, 0.25], "3", "b-1")
    assert checked[0] == "GET /health: 200" and "max difference 0" in checked[-1]


def test_a_service_serving_another_version_fails(fake_service):
    with pytest.raises(DeploymentError, match="serves version 3 of bundle b-1, not version 4 of bundle b-1"):
        smoke_test(fake_service, RECORDS, [0.5, 0.25], "4", "b-1")


def test_different_predictions_fail(fake_service):
    with pytest.raises(DeploymentError, match=r"differ from the model's by up to 0.1 \(tolerance 1e-06\)"):
        smoke_test(fake_service, RECORDS, [0.5, 0.35], "3", "b-1")


def test_a_refused_prediction_fails_with_the_status(fake_service):
    _Fake.answers["/predict"] = (422, {"error": "record 0: missing field(s) timestamp"})
    with pytest.raises(DeploymentError, match=r"answered 422: .*missing field"):
        smoke_test(fake_service, RECORDS, [0.5, 0.25], "3", "b-1")


def test_no_service_at_all_fails():
    with pytest.raises(DeploymentError, match="did not answer"):
        smoke_test("http://127.0.0.1:9", RECORDS, [0.5, 0.25], "3", "b-1", timeout=2)


def test_only_imported_and_when_required_approved_versions_are_deployable():
    from collabops.production.deployment import check_deployable

    with pytest.raises(DeploymentError, match="model version 4 was not imported from a verified model bundle"):
        check_deployable({}, "4", require_approval=False)
    with pytest.raises(DeploymentError, match=r"run `python run.py approve 4 --by YOUR_NAME`"):
        check_deployable({"imported_bundle_id": "b-1"}, "4", require_approval=True)
    approval = {"by": "Ops Lead", "note": "", "at": "2026-11-27T00:00:00+00:00"}
    assert check_deployable({"imported_bundle_id": "b-1", "approval": approval}, "4", True) == approval
    assert check_deployable({"imported_bundle_id": "b-1"}, "4", False) is None
