"""The prediction service as a real HTTP server on 127.0.0.1, started and stopped by PID.

Servers run with their default two worker processes unless a test says otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from collabops.exchange.bundle import Producer
from collabops.data.contract import load_contract
from collabops.training.features import build_model
from collabops.data.generator import GeneratorSettings, generate
from collabops.exchange.model_bundle import write_model_bundle
from collabops.data.profile import profile
from collabops.exchange.signing import generate_key_pair, load_signer
from collabops.training.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(ROOT / "configs" / "contract.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def _start(bundle: Path, keys: Path, log_dir: Path, extra: list[str] = (), env: dict | None = None):
    port = _free_port()
    output = log_dir.with_name(f"{log_dir.name}-server-{port}.txt")  # a file, so a full pipe never blocks it
    with open(output, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "collabops.production.serving", "--bundle", str(bundle), "--keys-dir",
                                    str(keys), "--port", str(port), "--log-dir", str(log_dir), "--max-body-bytes",
                                    "200000", *extra], cwd=ROOT, env={**os.environ, **(env or {})},
                                   stdout=out, stderr=subprocess.STDOUT)
    process.output = output
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(output.read_text())
        try:
            if _call(f"{url}/health")[0] == 200:
                return process, url
        except OSError:
            time.sleep(0.2)
    _stop(process)
    raise RuntimeError(f"service did not start:\n{output.read_text()[-3000:]}")


def _workers(process: subprocess.Popen) -> list[int]:
    """PIDs of the uvicorn worker processes of a server (its spawned children)."""
    import psutil

    return sorted(child.pid for child in psutil.Process(process.pid).children()
                  if "spawn_main" in " ".join(child.cmdline()))


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pids: list[int], timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    frame = generate(GeneratorSettings(months=1, car_parks=4, seed=8))
    model = build_model(CONTRACT, get_task("regression").make_estimator({"max_iter": 20, "random_state": 0}))
    model.fit(frame[CONTRACT.feature_columns], frame[CONTRACT.target])
    keys = base / "keys"
    generate_key_pair(base / "private" / "university.key", keys / "university.pub", "university")
    bundle, manifest = write_model_bundle(
        model, CONTRACT, {"test": {}}, profile(frame, CONTRACT), frame.head(100), "# card\n",
        Producer(partner="university"), load_signer("university", base / "private" / "university.key"),
        base / "exchange", extra={"model": {"version": "3"}})
    process, url = _start(bundle, keys, base / "log")
    yield {"url": url, "frame": frame, "model": model, "bundle_id": manifest["bundle_id"], "process": process,
           "log": base / "log", "bundle": bundle, "keys": keys, "base": base}
    if process.poll() is None:
        _stop(process)


def _records(frame, rows, drop_extra=True):
    part = frame.iloc[rows]
    if drop_extra:
        part = part[CONTRACT.feature_columns]
    records = json.loads(part.to_json(orient="records", date_format="iso"))
    return records


def test_predictions_match_the_model_and_carry_identity(served):
    rows = list(range(0, 300, 7))
    status, answer = _call(f"{served['url']}/predict", json.dumps({"records": _records(served["frame"], rows)}).encode())
    assert status == 200, answer
    expected = served["model"].predict(served["frame"].iloc[rows][CONTRACT.feature_columns])
    np.testing.assert_allclose(answer["predictions"], expected, atol=1e-9)
    assert answer["model_version"] == "3" and answer["bundle_id"] == served["bundle_id"]
    assert "warnings" not in answer


def test_a_raw_row_is_accepted_and_the_ignored_fields_are_named(served):
    status, answer = _call(f"{served['url']}/predict",
                           json.dumps({"records": _records(served["frame"], [5], drop_extra=False)}).encode())
    assert status == 200
    assert answer["warnings"] == ["ignored field(s) that are not model features: "
                                  "last_entry_customer_id, last_entry_plate, occupancy_rate"]


@pytest.mark.parametrize("change, status, fragment", [
    (lambda r: r.pop("capacity"), 422, "record 0: missing field(s) capacity"),
    (lambda r: r.update(capacity="lots"), 422, "column 'capacity': values are not of type int: 'lots' (record 1)"),
    (lambda r: r.update(price_per_hour=-3), 422, "column 'price_per_hour': 1 value(s) not in [0, 100]"),
    (lambda r: r.update(car_park_kind="moon_base"), 422, "column 'car_park_kind'"),
])
def test_invalid_records_get_422_naming_the_field(served, change, status, fragment):
    record = _records(served["frame"], [1])[0]
    change(record)
    code, answer = _call(f"{served['url']}/predict", json.dumps({"records": [record]}).encode())
    assert code == status and fragment in answer["error"]


@pytest.mark.parametrize("body, status, fragment", [
    (b"{not json", 400, "malformed JSON"),
    (b'{"rows": []}', 422, "body must be"),
    (b'{"records": []}', 422, "at least one record"),
    (b'{"records": [' + b'{"a": 1},' * 30000 + b'{"a": 1}]}', 413, "the limit is 200000"),
])
def test_malformed_requests(served, body, status, fragment):
    code, answer = _call(f"{served['url']}/predict", body)
    assert code == status and fragment in answer["error"]
    assert _call(f"{served['url']}/health")[0] == 200


def test_two_hundred_concurrent_requests_without_error(served):
    bodies = [json.dumps({"records": _records(served["frame"], [i])}).encode() for i in range(200)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda b: _call(f"{served['url']}/predict", b), bodies))
    assert [s for s, _ in results] == [200] * 200
    expected = served["model"].predict(served["frame"].iloc[:200][CONTRACT.feature_columns])
    np.testing.assert_allclose([a["predictions"][0] for _, a in results], expected, atol=1e-9)


def test_metadata_metrics_and_inference_log(served):
    status, meta = _call(f"{served['url']}/metadata")
    assert status == 200 and meta["bundle_id"] == served["bundle_id"] and meta["features"]["capacity"] == "int"
    assert meta["contract_digest"] == CONTRACT.digest()
    body = json.dumps({"records": _records(served["frame"], [0, 1, 2])}).encode()
    assert _call(f"{served['url']}/predict", body)[0] == 200
    _, text = _call(f"{served['url']}/metrics")
    assert 'collabops_requests_total{status="200"}' in text and "collabops_request_seconds_bucket" in text
    deadline = time.time() + 15
    while time.time() < deadline and not list(served["log"].glob("inference-*.parquet")):
        time.sleep(0.5)
    import pandas as pd

    logged = pd.concat(pd.read_parquet(p) for p in served["log"].glob("inference-*.parquet"))
    assert {"prediction", "model_version", "bundle_id", "served_at", "capacity"} <= set(logged.columns)
    assert (logged["bundle_id"] == served["bundle_id"]).all()


def test_restarted_after_a_kill_it_answers_with_the_same_model(served):
    body = json.dumps({"records": _records(served["frame"], [10])}).encode()
    first, first_url = _start(served["bundle"], served["keys"], served["base"] / "log-kill")
    before = _call(f"{first_url}/predict", body)[1]
    workers = _workers(first)
    assert len(workers) == 2
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    assert _gone(workers, timeout=20), "workers kept running after their parent was killed"
    process, url = _start(served["bundle"], served["keys"], served["base"] / "log-kill")
    try:
        after = _call(f"{url}/predict", body)[1]
        assert after["predictions"] == before["predictions"] and after["bundle_id"] == before["bundle_id"]
    finally:
        _stop(process)


def test_api_key_when_configured_with_one_worker(served):
    process, url = _start(served["bundle"], served["keys"], served["base"] / "log-key",
                          ["--api-key-env", "TEST_SERVICE_KEY", "--workers", "1"], {"TEST_SERVICE_KEY": "s3cret"})
    try:
        body = json.dumps({"records": _records(served["frame"], [0])}).encode()
        assert _call(f"{url}/predict", body)[0] == 401
        assert _call(f"{url}/predict", body, {"X-API-Key": "wrong"})[0] == 401
        assert _call(f"{url}/predict", body, {"X-API-Key": "s3cret"})[0] == 200
        meta = _call(f"{url}/metadata")[1]
        assert meta["workers"] == 1 and meta["worker_pid"] == process.pid and _workers(process) == []
    finally:
        _stop(process)


def test_two_workers_run_the_compiled_path_and_say_so(served):
    workers = _workers(served["process"])
    assert len(workers) == 2
    seen = {_call(f"{served['url']}/metadata")[1]["worker_pid"] for _ in range(20)}
    assert seen <= set(workers)
    meta = _call(f"{served['url']}/metadata")[1]
    assert meta["workers"] == 2 and meta["inference_path"] == "compiled"
    assert meta["inference_check"].startswith("compiled (checked on ")
    startup = served["process"].output.read_text()
    for pid in workers:  # each worker checked the compiled path itself and logged the outcome
        assert f"worker {pid}: bundle {served['bundle_id']}, model version 3, inference path compiled" in startup


def test_a_large_request_and_a_value_only_pandera_accepts(served):
    rows = list(range(400, 900))  # 500 records: a worker thread, the estimator's own predict
    status, answer = _call(f"{served['url']}/predict", json.dumps({"records": _records(served["frame"], rows)}).encode())
    assert status == 200
    expected = served["model"].predict(served["frame"].iloc[rows][CONTRACT.feature_columns])
    np.testing.assert_allclose(answer["predictions"], expected, atol=1e-9)
    record = _records(served["frame"], [3])[0]
    plain = _call(f"{served['url']}/predict", json.dumps({"records": [record]}).encode())[1]
    record["capacity"] = str(record["capacity"])  # "717": pandera coerces it, so it was accepted before
    status, coerced = _call(f"{served['url']}/predict", json.dumps({"records": [record]}).encode())
    assert status == 200 and coerced["predictions"] == plain["predictions"]


def test_the_inference_log_of_two_workers_is_complete(served):
    log_dir = served["base"] / "log-workers"
    process, url = _start(served["bundle"], served["keys"], log_dir)
    try:
        workers = _workers(process)
        bodies = [json.dumps({"records": _records(served["frame"], [i])}).encode() for i in range(120)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda b: _call(f"{url}/predict", b), bodies))
        assert [status for status, _ in results] == [200] * 120
    finally:
        _stop(process)  # a clean stop flushes what each worker still buffers
    import pandas as pd

    files = sorted(log_dir.glob("inference-*.parquet"))
    assert files and all(int(f.name.split("-")[2]) in workers for f in files)
    logged = pd.concat(pd.read_parquet(f) for f in files)
    assert len(logged) == 120 and logged["capacity"].dtype == "int64"
    served_values = sorted(answer["predictions"][0] for _, answer in results)
    np.testing.assert_allclose(sorted(logged["prediction"]), served_values, atol=0)


def test_a_model_the_compiled_path_does_not_know_is_served_by_sklearn(served):
    from collabops.training.tasks import get_task

    frame, base = served["frame"], served["base"]
    baseline = get_task("regression").make_baseline(CONTRACT).fit(frame[CONTRACT.feature_columns],
                                                                    frame[CONTRACT.target])
    bundle, _ = write_model_bundle(
        baseline, CONTRACT, {"test": {}}, profile(frame, CONTRACT), frame.head(100), "# card\n",
        Producer(partner="university"), load_signer("university", base / "private" / "university.key"),
        base / "exchange-baseline", extra={"model": {"version": "b1"}})
    process, url = _start(bundle, served["keys"], base / "log-baseline", ["--workers", "1"])
    try:
        meta = _call(f"{url}/metadata")[1]
        assert meta["inference_path"] == "sklearn" and "SeasonalProfileBaseline" in meta["inference_check"]
        rows = list(range(0, 60, 3))
        status, answer = _call(f"{url}/predict", json.dumps({"records": _records(frame, rows)}).encode())
        assert status == 200
        np.testing.assert_allclose(answer["predictions"], baseline.predict(frame.iloc[rows][CONTRACT.feature_columns]),
                                   atol=1e-12)
    finally:
        _stop(process)
