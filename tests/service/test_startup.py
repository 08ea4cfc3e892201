"""How the service starts: the bundle check in a short-lived child, the small supervisor, the exec from ZenML's daemon.

Fast tier: the check's error comes back from the child unchanged; the
command line that ``exec_serve`` runs reads back as the same config; the PID
file of ``--pid-file``. Slow tier (``slow``): a real two-worker service whose
supervisor never maps scikit-learn or pandas, and the ZenML local daemon
(started and stopped by ZenML, without a store) that replaces itself with the
service under the same PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from collabops.exchange.bundle import BundleError
from collabops.production.serving import ServiceConfig, serve
from collabops.production.serving.process import _parse_command_line, _portable, _rebuild, command_line, main
from collabops.production.serving.runtime import load_verified_model
from collabops.settings import ServingSettings
from tests.service.conftest import ROOT, Bundle

MODEL_LIBRARIES = ("/sklearn/", "/pandas/", "/scipy/")
"""Paths whose shared objects only a process that loaded the model maps."""


def _tampered(bundle: Bundle, tmp_path: Path) -> Path:
    copy = Path(shutil.copytree(bundle.path, tmp_path / "bundle"))
    (copy / "model" / "model.skops").write_bytes((copy / "model" / "model.skops").read_bytes() + b"\0")
    return copy


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _mapped_libraries(pid: int) -> set[str]:
    return {part for part in MODEL_LIBRARIES if part in Path(f"/proc/{pid}/maps").read_text()}


# ----------------------------------------------------------------------------- the check in a child

def test_an_error_survives_the_trip_from_the_child_with_its_type_message_and_attributes(tmp_path: Path):
    error = BundleError(tmp_path, "files", "'model/model.skops' has 2 bytes, the manifest says 1")
    again = _rebuild(_portable(error))
    assert type(again) is BundleError and str(again) == str(error) and again.check == "files"
    missing = FileNotFoundError(2, "No such file or directory", "keys")
    again = _rebuild(_portable(missing))
    assert type(again) is FileNotFoundError and str(again) == str(missing) and again.filename == "keys"
    unknown = _rebuild({**_portable(error), "pickled": None, "module": "no_such_module_anywhere"})
    assert isinstance(unknown, RuntimeError) and str(error) in str(unknown)


def test_a_bad_bundle_fails_serve_with_the_error_of_the_check_in_this_process(bundle: Bundle, tmp_path: Path):
    config = ServiceConfig(bundle_dir=_tampered(bundle, tmp_path), keys_dir=bundle.keys,
                           serving=ServingSettings(workers=2, port=_free_port()))
    with pytest.raises(BundleError) as here:
        load_verified_model(config)  # what serve checked in its own process before
    with pytest.raises(BundleError) as served:
        serve(config)
    assert str(served.value) == str(here.value) and "model.skops" in str(served.value)
    assert served.value.check == here.value.check


def test_the_command_line_of_a_bad_bundle_ends_with_the_error_and_a_non_zero_exit(bundle: Bundle, tmp_path: Path):
    copy = _tampered(bundle, tmp_path)
    with pytest.raises(BundleError) as here:
        load_verified_model(ServiceConfig(bundle_dir=copy, keys_dir=bundle.keys))
    done = subprocess.run([sys.executable, "-m", "collabops.production.serving", "--bundle", str(copy), "--keys-dir",
                           str(bundle.keys), "--port", str(_free_port()), "--workers", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {here.value}"


# ----------------------------------------------------------------------------- the command line exec_serve runs

def test_the_exec_command_line_serves_exactly_the_config(tmp_path: Path):
    config = ServiceConfig(bundle_dir=Path("b"), keys_dir=tmp_path / "k", log_dir=Path("l"), model_version="7",
                           api_key_env="KEY", serving=ServingSettings(port=9100, workers=3, api_key_secret="s",
                                                                      log_flush_seconds=0.5))
    daemon = ["-m", "zenml.services.local.local_daemon_entrypoint", "--config-file", "c.json", "--pid-file", "p"]
    argv = command_line(config, tmp_path / "service.pid", daemon)
    assert argv[:3] == [sys.executable, "-m", "collabops.production.serving"]
    assert argv[-len(daemon):] == daemon  # ZenML recognises its daemon by these
    assert _parse_command_line(argv[3:]) == (config, tmp_path / "service.pid")
    assert _parse_command_line(["--bundle", "b", "--keys-dir", "k"])[1] is None


@pytest.mark.parametrize("argv", [["--keys-dir", "k"], ["--config-json", "{}", "--port", "1"],
                                  ["--config-json", "{\"bundle_dir\": 1}"]])
def test_the_command_line_refuses_a_config_it_cannot_serve(argv: list[str], capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit):
        _parse_command_line(argv)
    assert "error:" in capsys.readouterr().err


def test_the_pid_file_holds_the_pid_while_serving_and_is_removed_after(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    pid_file, seen = tmp_path / "service.pid", []
    monkeypatch.setattr("collabops.production.serving.process.serve", lambda config: seen.append(pid_file.read_text()))
    main(["--bundle", "b", "--keys-dir", "k", "--pid-file", str(pid_file)])
    assert seen == [f"{os.getpid()}\n"] and not pid_file.exists()


def test_a_taken_port_is_one_line_and_exit_1_before_any_work(bundle: Bundle, tmp_path: Path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pid_file = tmp_path / "service.pid"
        with pytest.raises(SystemExit) as exited:
            main(["--bundle", str(bundle.path), "--keys-dir", str(bundle.keys), "--port", str(port),
                  "--pid-file", str(pid_file)])
    err = capsys.readouterr().err
    assert exited.value.code == 1 and not pid_file.exists()
    assert err.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use (choose another " \
                          "--port, or stop what listens there)"


def test_a_refused_bundle_is_one_line_and_exit_1(bundle: Bundle, tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--bundle", str(_tampered(bundle, tmp_path)), "--keys-dir", str(bundle.keys), "--port",
              str(_free_port()), "--workers", "1"])
    err = capsys.readouterr().err
    assert exited.value.code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 'bundle'}: bundle refused, check 'files' failed")


# ============================================================================= slow: real processes

def _wait_healthy(url: str, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def _workers_up(pid: int, count: int, timeout: float = 60) -> list[int]:
    import psutil

    deadline = time.time() + timeout
    while time.time() < deadline:
        workers = [c.pid for c in psutil.Process(pid).children() if "spawn_main" in " ".join(c.cmdline())]
        if len(workers) == count and all("/sklearn/" in Path(f"/proc/{w}/maps").read_text() for w in workers):
            return workers
        time.sleep(0.3)
    raise AssertionError(f"{count} workers with the model did not come up under {pid}")


@pytest.mark.slow
def test_the_supervisor_of_several_workers_never_loads_the_model(bundle: Bundle, tmp_path: Path):
    port = _free_port()
    with open(tmp_path / "server.txt", "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "collabops.production.serving", "--bundle", str(bundle.path),
                                    "--keys-dir", str(bundle.keys), "--port", str(port), "--workers", "2",
                                    "--log-dir", str(tmp_path / "log")], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", process)
        _workers_up(process.pid, 2)
        assert _mapped_libraries(process.pid) == set()  # the check ran in a child that is gone
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_zenml_s_daemon_becomes_the_service_under_the_same_pid_and_zenml_still_stops_it(bundle: Bundle,
                                                                                       tmp_path: Path):
    import psutil

    from components.prediction_server import PredictionServer, PredictionServerConfig

    port = _free_port()
    config = PredictionServerConfig(
        model_name="startup-test", model_version="3", bundle_dir=str(bundle.path), keys_dir=str(bundle.keys),
        bundle_id=bundle.bundle_id, log_dir=str(tmp_path / "log"), serving=ServingSettings(port=port, workers=2),
        root_runtime_path=str(tmp_path / "rt"))
    server = PredictionServer(uuid=uuid.uuid4(), config=config)
    server.start(timeout=0)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}")
        pid = server.status.pid  # from ZenML's pid file: the daemon's PID, checked against its command line
        assert pid is not None and server.check_status()[0].value == "active"
        command = psutil.Process(pid).cmdline()
        assert command[1:3] == ["-m", "collabops.production.serving"]
        assert "zenml.services.local.local_daemon_entrypoint" in command and server.status.config_file in command
        workers = _workers_up(pid, 2)
        assert _mapped_libraries(pid) == set()  # a fresh image: no ZenML, and the check's child is gone
    finally:
        server.stop(timeout=60)  # SIGTERM to the PID in the pid file
    assert server.check_status()[0].value == "inactive" and not Path(server.status.pid_file).exists()
    deadline = time.time() + 30
    while time.time() < deadline and any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                         for p in [pid, *workers]):
        time.sleep(0.2)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in [pid, *workers])
    log = Path(server.status.log_file).read_text()
    assert f"with 2 workers (parent pid {pid})" in log
