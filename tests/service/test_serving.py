"""The prediction service.

Fast tier: HTTP behaviour in-process through Starlette's ``TestClient``,
over the app a worker builds from the signed bundle (no server process).
Slow tier (``slow``): a real server on 127.0.0.1 with two worker processes,
started as a subprocess and stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from starlette.testclient import TestClient

from collabops.exchange.bundle import BundleError
from collabops.production.serving import PredictionService, ServiceConfig, build_app, create_app, parse_args
from collabops.production.serving.app import INLINE_BODY_BYTES, INLINE_RECORDS
from collabops.production.serving.metrics import LATENCY_BUCKETS, ServiceMetrics, prediction_buckets
from collabops.production.serving.process import one_openmp_thread
from collabops.settings import ServingSettings
from collabops.training.tasks import get_task
from tests.service.conftest import CONTRACT, FEATURES, ROOT, Bundle, records

PREDICTION_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # occupancy_rate in [0, 1]
LIMITS = ServingSettings(workers=1, max_body_bytes=200_000, max_records=500, log_flush_seconds=0.2)
LOG_COLUMNS = [*FEATURES, "prediction", "model_version", "bundle_id", "served_at"]


@pytest.fixture(scope="module")
def client(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app one worker builds from the bundle (verified, loaded, compiled path checked), with an inference log."""
    config = ServiceConfig(bundle_dir=bundle.path, keys_dir=bundle.keys, log_dir=tmp_path_factory.mktemp("log"),
                           serving=LIMITS)
    with TestClient(build_app(config)) as test_client:
        yield test_client


def _post(client: TestClient, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = client.post("/predict", content=content, headers=headers or {})
    return response.status_code, response.json()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by (sample name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# ----------------------------------------------------------------------------- answers

def test_predictions_match_the_model_and_carry_identity(client: TestClient, bundle: Bundle):
    rows = list(range(0, 300, 7))
    assert len(rows) <= INLINE_RECORDS  # answered on the event loop, on the compiled path
    status, answer = _post(client, {"records": records(bundle.frame, rows)})
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"], bundle.model.predict(bundle.frame.iloc[rows][FEATURES]),
                               atol=1e-9)
    assert answer["model_version"] == "3" and answer["bundle_id"] == bundle.bundle_id and "warnings" not in answer


@pytest.mark.parametrize("count", [100, 500])
def test_large_requests_get_the_same_predictions_off_the_event_loop(client: TestClient, bundle: Bundle, count: int):
    rows = list(range(1000, 1000 + count))
    body = json.dumps({"records": records(bundle.frame, rows)}).encode()
    assert count > INLINE_RECORDS and (len(body) > INLINE_BODY_BYTES) == (count == 500)  # both thread paths
    status, answer = _post(client, body)
    assert status == 200
    np.testing.assert_allclose(answer["predictions"], bundle.model.predict(bundle.frame.iloc[rows][FEATURES]),
                               atol=1e-9)


def test_a_raw_row_is_accepted_and_the_ignored_fields_are_named(client: TestClient, bundle: Bundle):
    status, answer = _post(client, {"records": records(bundle.frame, [5], features_only=False)})
    assert status == 200
    assert answer["warnings"] == ["ignored field(s) that are not model features: "
                                  "last_entry_customer_id, last_entry_plate, occupancy_rate"]


def test_a_model_the_compiled_path_does_not_know_is_served_by_sklearn(bundle: Bundle, tmp_path: Path):
    frame = bundle.frame
    baseline = get_task("regression").make_baseline(CONTRACT).fit(frame[FEATURES], frame[CONTRACT.target])
    service = PredictionService(baseline, CONTRACT, "b1", "baseline", {}, serving=LIMITS, log_dir=tmp_path,
                                reference=frame.head(100))
    served = []
    with TestClient(create_app(service)) as test_client:
        meta = test_client.get("/metadata").json()
        assert meta["inference_path"] == "sklearn" and "SeasonalProfileBaseline" in meta["inference_check"]
        for rows in (list(range(0, 60, 3)), list(range(200, 300))):  # on the event loop's thread hop, and not
            status, answer = _post(test_client, {"records": records(frame, rows)})
            assert status == 200
            np.testing.assert_allclose(answer["predictions"], baseline.predict(frame.iloc[rows][FEATURES]), atol=1e-12)
            served += answer["predictions"]
    logged = pd.concat(pd.read_parquet(f) for f in sorted(tmp_path.glob("inference-*.parquet")))  # flushed at exit
    assert list(logged.columns) == LOG_COLUMNS and sorted(logged["prediction"]) == sorted(served)
    assert (logged["model_version"] == "b1").all() and str(logged["served_at"].dtype) == "datetime64[ns, UTC]"


def test_start_up_objects_are_frozen_out_of_collections_while_serving(bundle: Bundle, tmp_path: Path):
    import gc

    service = PredictionService(bundle.model, CONTRACT, "b1", "v1", {}, serving=LIMITS, log_dir=tmp_path,
                                reference=bundle.frame.head(100))
    before = gc.get_freeze_count()  # another app of this test process may be serving: its objects are frozen
    with TestClient(create_app(service)) as test_client:
        assert gc.get_freeze_count() > before  # at least the service and its compiled trees, made since
        assert test_client.get("/health").status_code == 200
    assert gc.get_freeze_count() == 0


# ----------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("change, fragment", [
    (lambda rs: rs[2].pop("capacity"), "record 2: column 'capacity': missing"),
    (lambda rs: rs[1].update(capacity="lots"), "record 1: column 'capacity': 'lots' is not of type int"),
    (lambda rs: rs[0].update(price_per_hour=-3), "record 0: column 'price_per_hour': -3.0 is not in [0, 100]"),
    (lambda rs: rs[0].update(car_park_kind="moon_base"), "record 0: column 'car_park_kind': 'moon_base' is not one of"),
    (lambda rs: rs[1].update(timestamp={}), "record 1: column 'timestamp': a JSON object is not of type datetime"),
    (lambda rs: rs[2].update(timestamp=[]), "record 2: column 'timestamp': a JSON array is not of type datetime"),
    (lambda rs: rs[0].update(car_park_id={"id": "a"}),
     "record 0: column 'car_park_id': a JSON object is not of type string"),
    (lambda rs: rs[1].update(is_holiday="false"), "record 1: column 'is_holiday': 'false' is not of type bool"),
    (lambda rs: rs[0].update(capacity=500.9), "record 0: column 'capacity': 500.9 is not of type int"),
    (lambda rs: rs[0].update(capacity=True), "record 0: column 'capacity': True is not of type int"),
    (lambda rs: rs[1].update(timestamp="2024-03-31T02:30:00"),
     "record 1: column 'timestamp': '2024-03-31T02:30:00' does not exist in Europe/Stockholm"),
    (lambda rs: rs[2].update(timestamp="01/05/2024 08:00"), "record 2: column 'timestamp': '01/05/2024 08:00' is not "
                                                            "of type datetime (use ISO 8601"),
    (lambda rs: rs[0].update(timestamp=1714543200), "record 0: column 'timestamp': 1714543200 is not of type datetime"),
    (lambda rs: rs[2].update(car_park_id="CP\ud800"), "record 2: column 'car_park_id': 'CP\\ud800' is not valid text"),
    (lambda rs: rs[1].update(car_park_kind="\udc80"), "record 1: column 'car_park_kind': '\\udc80' is not valid text"),
])
def test_invalid_records_get_422_naming_the_record_and_field(client: TestClient, bundle: Bundle, change, fragment):
    batch = records(bundle.frame, [1, 2, 3])
    change(batch)
    status, answer = _post(client, {"records": batch})
    assert status == 422 and fragment in answer["error"], answer


@pytest.mark.parametrize("body, status, fragment", [
    (b"{not json", 400, "malformed JSON"),
    (b"[" * 10_000 + b"]" * 10_000, 400, "malformed JSON: nested too deeply"),
    (b'{"records": [{"capacity": ' + b"[" * 10_000 + b"]" * 10_000 + b"}]}", 400, "nested too deeply"),
    (b"\xff\xfe", 400, "malformed JSON"),
    (b'{"records": [{"capacity": 500, "capacity": 20000}]}', 400,
     "malformed JSON: key 'capacity' appears twice in one object"),
    (b'{"records": [{"temperature_c": NaN}]}', 400, "malformed JSON: 'NaN' is not a JSON number"),
    (b'{"records": [{"rain_mm": -Infinity}]}', 400, "malformed JSON: '-Infinity' is not a JSON number"),
    (b'{"rows": []}', 422, "body must be"),
    (b'{"records": []}', 422, "at least one record"),
    (b'{"records": [1, 2]}', 422, "body must be"),
    (b"[1]", 422, "body must be"),
    (b'{"records": [' + b'{"a": 1},' * 500 + b'{"a": 1}]}', 413, "501 records in one request; the limit is 500"),
    (b'{"records": [' + b'{"a": 1},' * 30_000 + b'{"a": 1}]}', 413, "the limit is 200000"),
])
def test_malformed_and_oversized_bodies(client: TestClient, body: bytes, status: int, fragment: str):
    code, answer = _post(client, body)
    assert code == status and fragment in answer["error"], answer
    assert client.get("/health").status_code == 200


def test_a_streamed_body_over_the_limit_gets_413_without_a_declared_length(client: TestClient):
    chunks = (b'{"records": [' if i == 0 else b'{"a": 1},' * 1000 for i in range(30))  # ~270 kB, chunked
    response = client.post("/predict", content=chunks)
    assert response.status_code == 413 and "the limit is 200000 bytes" in response.json()["error"]


def test_an_api_key_is_required_when_configured(bundle: Bundle, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_SERVICE_KEY", "s3cret")
    config = ServiceConfig(bundle_dir=bundle.path, keys_dir=bundle.keys, api_key_env="TEST_SERVICE_KEY",
                           serving=LIMITS)
    body = {"records": records(bundle.frame, [0])}
    with TestClient(build_app(config)) as test_client:
        assert _post(test_client, body)[0] == 401
        status, answer = _post(test_client, body, {"X-API-Key": "wrong"})
        assert status == 401 and "X-API-Key" in answer["error"]
        assert _post(test_client, body, {"X-API-Key": "s3cret"})[0] == 200
        assert test_client.get("/health").status_code == 200  # only /predict needs the key


def test_a_failing_model_gets_500_and_the_service_goes_on(bundle: Bundle):
    class Broken:
        def predict(self, frame: pd.DataFrame) -> None:
            raise RuntimeError("boom")

    service = PredictionService(Broken(), CONTRACT, "x", "broken", {}, serving=LIMITS, compile_model=False)
    with TestClient(create_app(service)) as test_client:
        status, answer = _post(test_client, {"records": records(bundle.frame, [0])})
        assert status == 500 and answer["error"] == "prediction failed: RuntimeError: boom"
        assert test_client.get("/health").status_code == 200
        assert _samples(test_client.get("/metrics").text)[("collabops_requests_total", (("status", "500"),))] == 1


@pytest.mark.parametrize("keys, problem", [("tampered", "model.skops"), ("empty", "no trusted partner keys")])
def test_a_bundle_that_fails_verification_is_refused_at_start(bundle: Bundle, tmp_path: Path, keys: str, problem: str):
    copy = Path(shutil.copytree(bundle.path, tmp_path / "bundle"))
    keys_dir = bundle.keys
    if keys == "tampered":
        (copy / "model" / "model.skops").write_bytes((copy / "model" / "model.skops").read_bytes() + b"\0")
    else:
        keys_dir = tmp_path / "no-keys"
        keys_dir.mkdir()
    with pytest.raises(BundleError, match=problem):
        build_app(ServiceConfig(bundle_dir=copy, keys_dir=keys_dir, serving=LIMITS))


# ----------------------------------------------------------------------------- health, metadata, metrics

def test_health_and_metadata(client: TestClient, bundle: Bundle):
    assert client.get("/health").json() == {"status": "ok", "model_version": "3"}
    meta = client.get("/metadata").json()
    assert meta["bundle_id"] == bundle.bundle_id and meta["model_version"] == "3"
    assert meta["contract"] == CONTRACT.name and meta["contract_digest"] == CONTRACT.digest()
    assert meta["features"] == {name: CONTRACT.column(name).type for name in FEATURES}
    assert meta["producer"]["partner"] == "university"
    assert meta["inference_path"] == "compiled" and meta["inference_check"].startswith("compiled (checked on ")
    assert meta["workers"] == 1 and meta["worker_pid"] == os.getpid()


def test_metrics_are_prometheus_text_and_count_each_answer(client: TestClient, bundle: Bundle):
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {name: f.type for name, f in families.items()} == {
        "collabops_requests": "counter", "collabops_request_seconds": "histogram", "collabops_prediction": "histogram"}
    for name, bounds in (("collabops_request_seconds", LATENCY_BUCKETS), ("collabops_prediction", PREDICTION_BUCKETS)):
        assert [float(s.labels["le"]) for s in families[name].samples if s.name.endswith("_bucket")] == \
            [*bounds, float("inf")]
    before = _samples(response.text)
    status, answer = _post(client, {"records": records(bundle.frame, [10, 11, 12])})
    assert status == 200 and _post(client, b'{"records": []}')[0] == 422
    assert client.get("/metadata").status_code == client.get("/health").status_code == 200  # not counted
    after = _samples(client.get("/metrics").text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert grew("collabops_requests_total", status="200") == 1 and grew("collabops_requests_total", status="422") == 1
    assert grew("collabops_request_seconds_count") == 2 and grew("collabops_prediction_count") == 3
    for bound in (*PREDICTION_BUCKETS, float("inf")):
        le = "+Inf" if bound == float("inf") else str(bound)
        assert grew("collabops_prediction_bucket", le=le) == sum(p <= bound for p in answer["predictions"])
    assert grew("collabops_prediction_sum") == pytest.approx(sum(answer["predictions"]))


_OBSERVE = """
import sys
from collabops.production.serving.metrics import ServiceMetrics
metrics = ServiceMetrics()
assert metrics.multiprocess == (sys.argv[1] != "plain")
for _ in range({"plain": 2, "observe": 1, "render": 0}[sys.argv[1]]):
    metrics.observe(200, 0.0625, [0.125, 0.375]); metrics.observe(422, 2.0); metrics.observe(413, 0.5)
    metrics.observe(200, 0.25, [k / 64 for k in range(70)])
if sys.argv[1] != "observe":
    sys.stdout.write(metrics.render().decode())
metrics.close()
"""


def test_metrics_of_several_processes_add_up_and_read_as_in_one_process(tmp_path: Path):
    """Two processes observe into one PROMETHEUS_MULTIPROC_DIR; a third renders: as one process observing twice."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}

    def run(mode: str, **extra: str) -> str:
        done = subprocess.run([sys.executable, "-c", _OBSERVE, mode], cwd=ROOT, env={**env, **extra},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    for _ in range(2):
        run("observe", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    merged, plain = run("render", PROMETHEUS_MULTIPROC_DIR=str(tmp_path)), run("plain")
    assert merged == plain
    assert _samples(merged)[("collabops_requests_total", (("status", "200"),))] == 4
    assert _samples(merged)[("collabops_prediction_count", ())] == 144


def test_many_predictions_are_counted_in_bulk_as_one_by_one():
    values = [k / 64 for k in range(200)]
    bulk, single = ServiceMetrics(), ServiceMetrics()
    bulk.observe(200, 0.5, values)
    for value in values:
        single.observe(200, 0.5, [value])

    def predictions(metrics: ServiceMetrics) -> dict:
        return {k: v for k, v in _samples(metrics.render().decode()).items() if k[0].startswith("collabops_prediction")}

    assert predictions(bulk) == predictions(single) and predictions(bulk)[("collabops_prediction_count", ())] == 200


# ----------------------------------------------------------------------------- inference log

def test_served_rows_go_to_the_inference_log_with_their_columns(client: TestClient, bundle: Bundle):
    directory = client.app.state.service.log.directory
    before = set(directory.glob("inference-*.parquet"))
    batch = records(bundle.frame, [600, 601, 602])
    served = _post(client, {"records": batch})[1]["predictions"]
    ids = {(r["car_park_id"], pd.Timestamp(r["timestamp"])) for r in batch}
    deadline, files, mine = time.time() + 15, [], pd.DataFrame()
    while time.time() < deadline and len(mine) < 3:  # the background flush writes every 0.2 s
        time.sleep(0.2)
        files = sorted(set(directory.glob("inference-*.parquet")) - before)
        logged = pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame(columns=LOG_COLUMNS)
        mine = logged[[key in ids for key in zip(logged["car_park_id"], logged["timestamp"], strict=True)]]
    assert list(mine.columns) == LOG_COLUMNS and len(mine) == 3
    assert all(f"-{os.getpid()}-" in f.name for f in files)
    assert mine["capacity"].dtype == "int64" and str(mine["served_at"].dtype) == "datetime64[ns, UTC]"
    assert (mine["model_version"] == "3").all() and (mine["bundle_id"] == bundle.bundle_id).all()
    assert sorted(mine["prediction"]) == sorted(served)


# ----------------------------------------------------------------------------- process entry and settings

def test_importing_the_package_changes_nothing_in_the_process():
    code = ("import json, os, sys, threading, collabops.production.serving, collabops.production.serving.__main__; "
            "print(json.dumps(['OMP_NUM_THREADS' in os.environ, threading.active_count(), "
            "[m for m in ('numpy', 'pandas', 'sklearn', 'prometheus_client') if m in sys.modules]]))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PROMETHEUS_MULTIPROC_DIR")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, 1, []]


def test_the_process_entry_sets_one_openmp_thread_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    one_openmp_thread()
    assert os.environ["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    one_openmp_thread()
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_the_command_line_builds_one_config_whose_defaults_are_the_settings():
    config = parse_args(["--bundle", "b", "--keys-dir", "k"])
    assert config.serving == ServingSettings() and config.bundle_dir == Path("b") and config.log_dir is None
    assert config.api_key_env is None and config.parent_pid is None and config.model_version is None
    config = parse_args(["--bundle", "b", "--keys-dir", "k", "--port", "9001", "--workers", "3", "--host", "0.0.0.0",
                         "--max-body-bytes", "5000", "--max-records", "7", "--log-flush-seconds", "0.5",
                         "--log-dir", "l", "--api-key-env", "KEY", "--model-version", "9"])
    assert config.serving == ServingSettings(host="0.0.0.0", port=9001, workers=3, max_body_bytes=5000,
                                             max_records=7, log_flush_seconds=0.5)
    assert (config.log_dir, config.api_key_env, config.model_version) == (Path("l"), "KEY", "9")
    assert ServiceConfig.model_validate_json(config.model_dump_json()) == config  # what a worker reads back
    with pytest.raises(ValidationError):
        config.serving.port = 1  # type: ignore[misc]  # frozen


@pytest.mark.parametrize("option", [["--workers", "0"], ["--port", "70000"], ["--max-body-bytes", "10"]])
def test_the_command_line_refuses_settings_out_of_range(option: list[str], capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit):
        parse_args(["--bundle", "b", "--keys-dir", "k", *option])
    assert option[0][2:].replace("-", "_") in capsys.readouterr().err


# ============================================================================= slow: a real server, several processes

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _call(url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Server:
    """``python -m collabops.production.serving`` as a subprocess, its output in a file (a full pipe never blocks)."""

    def __init__(self, bundle: Bundle, name: str, *extra: str) -> None:
        port = _free_port()
        self.log_dir, self.output = bundle.base / f"log-{name}", bundle.base / f"server-{name}-{port}.txt"
        self.url = f"http://127.0.0.1:{port}"
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "collabops.production.serving", "--bundle", str(bundle.path), "--keys-dir",
                 str(bundle.keys), "--port", str(port), "--log-dir", str(self.log_dir), "--log-flush-seconds", "0.2",
                 *extra], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"})  # the service's own default
        self.workers: list[int] = []
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.output.read_text())
            try:
                if _call(f"{self.url}/health")[0] == 200:
                    self.workers = self._children()
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"service did not start:\n{self.output.read_text()[-3000:]}")

    def all_workers_up(self, timeout: float = 60) -> bool:
        """Wait until every worker logged its start-up line (the server answers as soon as the first one is up)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(f"worker {pid}: bundle" in self.output.read_text() for pid in self.workers):
                return True
            time.sleep(0.2)
        return False

    def _children(self) -> list[int]:
        """PIDs of the uvicorn worker processes (spawned children)."""
        import psutil

        return sorted(child.pid for child in psutil.Process(self.process.pid).children()
                      if "spawn_main" in " ".join(child.cmdline()))

    def stop(self) -> None:
        """SIGTERM to the server, SIGKILL if it lingers; then SIGKILL any of its workers still alive."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid in self.workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        for folder in self.metrics_dirs():  # left behind when the server was killed
            shutil.rmtree(folder, ignore_errors=True)

    def metrics_dirs(self) -> list[Path]:
        return list(Path(tempfile.gettempdir()).glob(f"collabops-metrics-{self.process.pid}-*"))


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _log_pids(directory: Path) -> set[int]:
    return {int(f.name.split("-")[2]) for f in directory.glob("inference-*.parquet")}


@pytest.fixture(scope="module")
def two_workers(bundle: Bundle) -> Iterator[Server]:
    server = Server(bundle, "two-workers", "--workers", "2")
    yield server
    server.stop()


@pytest.mark.slow
def test_metrics_count_the_requests_answered_by_both_workers(two_workers: Server, bundle: Bundle):
    url, workers = two_workers.url, set(two_workers.workers)
    assert len(workers) == 2
    body = json.dumps({"records": records(bundle.frame, list(range(INLINE_RECORDS)))}).encode()  # on the event loop
    key = ("collabops_requests_total", (("status", "200"),))
    count, sent, seen = _samples(_call(f"{url}/metrics")[1]).get(key, 0.0), 0, set()
    for _ in range(20):  # bursts on new connections until both workers answered predictions and /metadata
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda i: _call(f"{url}/{'predict' if i % 4 else 'metadata'}",
                                                    body if i % 4 else None), range(200)))
        assert {status for status, _ in answers} == {200}
        sent += sum(1 for _, answer in answers if "predictions" in answer)
        seen |= {answer["worker_pid"] for _, answer in answers if "worker_pid" in answer}
        time.sleep(0.5)  # the inference log flushes every 0.2 s; its file names carry the worker's PID
        if seen == workers and _log_pids(two_workers.log_dir) == workers:
            break
    assert seen == workers and _log_pids(two_workers.log_dir) == workers
    [metrics_dir] = two_workers.metrics_dirs()  # one folder for the service, one file per worker and kind
    assert {path.name for path in metrics_dir.glob("counter_*.db")} == {f"counter_{pid}.db" for pid in workers}
    with ThreadPoolExecutor(max_workers=8) as pool:  # scrapes answered by either worker all see the total
        totals = {_samples(text)[key] for _, text in pool.map(lambda _: _call(f"{url}/metrics"), range(20))}
    assert totals == {count + sent}


@pytest.mark.slow
def test_each_worker_loads_and_checks_the_bundle_itself(two_workers: Server, bundle: Bundle):
    import psutil

    meta = _call(f"{two_workers.url}/metadata")[1]
    assert meta["workers"] == 2 and meta["inference_path"] == "compiled"
    assert two_workers.all_workers_up()
    startup = two_workers.output.read_text()
    for pid in two_workers.workers:
        assert f"worker {pid}: bundle {bundle.bundle_id}, model version 3, inference path compiled" in startup
        assert psutil.Process(pid).environ()["OMP_NUM_THREADS"] == "1"  # set before OpenMP loaded in the worker


@pytest.fixture
def killable(bundle: Bundle) -> Iterator[Server]:
    server = Server(bundle, f"killable-{time.monotonic_ns()}", "--workers", "2")
    yield server
    server.stop()


@pytest.mark.slow
def test_killing_the_parent_stops_the_workers(killable: Server):
    assert len(killable.workers) == 2 and killable.all_workers_up() and all(_alive(p) for p in killable.workers)
    killable.process.kill()
    killable.process.wait(timeout=10)
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(pid) for pid in killable.workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in killable.workers), "workers kept running after their parent was killed"


@pytest.mark.slow
def test_one_worker_serves_in_the_server_process(bundle: Bundle):
    server = Server(bundle, "one-worker", "--workers", "1")
    try:
        meta = _call(f"{server.url}/metadata")[1]
        assert meta["workers"] == 1 and meta["worker_pid"] == server.process.pid and server.workers == []
        assert server.metrics_dirs() == []  # in-process: counted in memory
        assert _call(f"{server.url}/predict", json.dumps({"records": records(bundle.frame, [0])}).encode())[0] == 200
        assert "collabops_requests_total{status=\"200\"} 1.0" in _call(f"{server.url}/metrics")[1]
    finally:
        server.stop()


def test_prediction_buckets_span_the_targets_range_in_the_contract():
    from collabops.data.contract import contract_from_dict
    from collabops.production.serving.metrics import DEFAULT_PREDICTION_BUCKETS

    assert prediction_buckets(CONTRACT) == PREDICTION_BUCKETS
    columns = [{"name": "t", "type": "datetime"}, {"name": "y", "type": "float", "min": -50, "max": 150}]
    bounded = contract_from_dict({"name": "c", "version": 1, "time_column": "t", "target": "y", "columns": columns})
    assert prediction_buckets(bounded) == (-30.0, -10.0, 10.0, 30.0, 50.0, 70.0, 90.0, 110.0, 130.0, 150.0)
    columns[1] = {"name": "y", "type": "float", "min": 0}
    open_ended = contract_from_dict({"name": "c", "version": 1, "time_column": "t", "target": "y", "columns": columns})
    assert prediction_buckets(open_ended) == DEFAULT_PREDICTION_BUCKETS
