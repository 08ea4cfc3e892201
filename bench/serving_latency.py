"""Serving latency, throughput and memory: collabops' prediction service as deployed, against ``mlflow models serve``.

Why: the project serves its model with its own small ASGI service
(``collabops.production.serving``: bundle verification, contract validation, inference
log, metrics). The obvious alternative is MLflow's scoring server. This script
measures both on the SAME fitted model (calendar features + one-hot +
HistGradientBoostingRegressor, 200 trees of up to 31 leaves, fitted on
``generate(GeneratorSettings(months=3, car_parks=20))``) in one run, on
127.0.0.1 only, with the same load generator, so the numbers are comparable:

* single-row latency, p50/p99 over ``--requests`` sequential requests on one
  keep-alive connection (the plain request, as ``DataFrame.to_json`` writes it);
* the same per kind of request (``--kind-requests`` each): valid records
  written other ways (``"capacity": 864.0``; the float columns as integers,
  ``"rain_mm": 0``; a timestamp ending in ``Z`` or ``+01:00``, converted into
  the contract's time zone) and an invalid one (``"is_holiday": "false"``),
  with the status each server answered; collabops must predict the valid ones
  at the plain request's speed and refuse the other (422) as fast;
* throughput with ``--clients`` concurrent keep-alive clients for ``--seconds``
  (requests completed inside the window), their latency p50/p99 (also per
  third of the window, to show whether p99 drifts under sustained load) and
  failed requests (non-200, connection errors, timeouts);
* 1,000-row request latency, p50/p99 over ``--big-requests`` sequential requests;
* memory: RSS and PSS (``/proc/PID/smaps_rollup``) of every process of each
  server (supervisor, workers, helpers), after start and after the runs.

Servers (stopped in ``finally``, whatever happens):

* ``collabops``: the service as ``run.py deploy`` runs it (``--launch zenml``,
  the default): ``components.prediction_server.PredictionServer`` started by
  ZenML's own local-daemon machinery (``LocalDaemonService.start``: the daemon
  entrypoint, double fork, pid and log files), without a ZenML store (a
  throw-away ``ZENML_CONFIG_PATH``), with the inference log on and
  ``configs/parking.yaml``'s serving block (2 workers, one OpenMP thread each,
  2 s log flush); its ``run()`` execs ``python -m collabops.production.serving``
  under the daemon's PID, as in deploy; stopped with ZenML's ``stop`` (SIGTERM
  to that PID). No API key (deploy's default). ``--launch module`` starts
  ``python -m collabops.production.serving --log-dir ... --workers 2`` directly
  instead (the same service and process layout, no ZenML at all);
* ``collabops-nolog`` (only with ``--extra-nolog``): the same without the
  inference log, an extra row that deploy never runs;
* ``mlflow``: ``mlflow models serve -m MODEL --env-manager local -p PORT`` as a
  user runs it, with its defaults (one uvicorn worker; OpenMP uses every core);
* ``mlflow-tuned``: the same with ``--workers 2`` and ``OMP_NUM_THREADS=1``, the
  stronger baseline (what collabops does, applied to MLflow).

Before any timing the script checks that every server returns the model's
predictions (max |diff| <= 1e-9) for a few rows. The measurements are
interleaved: each of ``--runs`` runs measures every server in turn (the order
rotates from run to run), so each run gives a collabops/MLflow ratio under the
same conditions; the table shows the median per metric over the runs and the
median of the per-run ratios (never a ratio against a figure from another
run). The load generator (threads + ``http.client``) runs in this process and
is the same code for every server; on a 2-core machine it competes with the
servers for CPU, so absolute numbers are pessimistic for all of them alike.
There are no timing assertions anywhere. The load average is printed at the
start, after each measurement and at the end; ``--max-start-load`` waits for a
quieter machine before starting.

Why the full run used to stall in its MLflow phase: MLflow's defaults give
the trees one OpenMP thread per core, and one prediction enters ~200 OpenMP
parallel regions (one per tree). When anything else keeps the two cores busy,
above all another OpenMP job such as ``bench/batch_scoring.py`` (whose
threads spin at their barriers), every region waits for a descheduled team
thread. Measured on this machine with a 2-thread ``predict`` loop running
beside the servers: MLflow's single-row p50 went from 25 ms to 3,500 ms
(500 sequential requests: about half an hour, which looked like a hang),
while MLflow with ``OMP_NUM_THREADS=1`` went from 15 to 30 ms and collabops
from 0.6 to 0.6 ms. The fixes: run the script under ``flock`` with the other
benchmarks (below); give every request a timeout and every sequential phase a
time budget (``--phase-budget``), reporting how many requests it finished, so
a contended run ends with numbers and a warning instead of hanging; and
settle each server (a probe request answered within 2 s) before each phase.

Run it from the repository root, serialised with other benchmarks on the machine::

    flock /tmp/collabops-bench.lock python bench/serving_latency.py --seconds 15 --runs 5

About 15 minutes with the defaults on a busy 2-core machine (three servers,
five runs of ~30-60 s per server, start-up ~1 minute; ~20 minutes with
``--extra-nolog``). ``--quick`` runs a short smoke version in about 3 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
sys.path.insert(0, str(ROOT))

from collabops.data.contract import load_contract  # noqa: E402
from collabops.data.generator import GeneratorSettings, generate  # noqa: E402
from collabops.data.profile import profile  # noqa: E402
from collabops.exchange.bundle import Producer  # noqa: E402
from collabops.exchange.model_bundle import write_model_bundle  # noqa: E402
from collabops.exchange.signing import generate_key_pair, load_signer  # noqa: E402
from collabops.exchange.trusted_types import TRUSTED_TYPES  # noqa: E402
from collabops.settings import ServingSettings, load_project  # noqa: E402
from collabops.training.features import build_model  # noqa: E402
from collabops.training.tasks import get_task  # noqa: E402

PARAMS = {"max_iter": 200, "max_leaf_nodes": 31, "random_state": 0}
AGREEMENT = 1e-9
PROJECT = ROOT / "configs" / "parking.yaml"

KINDS: list[tuple[str, str, int]] = [
    # (kind, what the record looks like, the status collabops must answer)
    ("plain", "as DataFrame.to_json writes it", 200),
    ("int-as-float", '"capacity": 864.0 (an integral float for the int column)', 200),
    ("floats-as-ints", 'the float columns as integers ("rain_mm": 0, "temperature_c": -3)', 200),
    ("zone-Z", 'timestamp "2024-01-01T08:00:00Z" (converted into the contract\'s time zone)', 200),
    ("zone-offset", 'timestamp "2024-01-01T08:00:00+01:00" (converted into the contract\'s time zone)', 200),
    ("bool-as-text", '"is_holiday": "false" (refused: text for a bool)', 422),
]
FLOAT_COLUMNS = ("temperature_c", "rain_mm", "price_per_hour")


def written_as(record: dict, kind: str) -> dict:
    """One record (as ``to_json`` writes it) written the ``kind`` way."""
    record = dict(record)
    stamp = record["timestamp"][:19]
    if kind == "int-as-float":
        record["capacity"] = float(record["capacity"])
    elif kind == "floats-as-ints":
        for name in FLOAT_COLUMNS:
            if record[name] is not None:
                record[name] = round(record[name])
    elif kind == "zone-Z":
        record["timestamp"] = stamp + "Z"
    elif kind == "zone-offset":
        record["timestamp"] = stamp + "+01:00"
    elif kind == "bool-as-text":
        record["is_holiday"] = "true" if record["is_holiday"] else "false"
    return record


# ----------------------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Server:
    """One server under test: its root process, how to call it, how its bodies look, how it is stopped."""

    name: str
    port: int
    path: str
    wrap_key: str
    answer_key: str
    log: Path
    note: str = ""
    process: subprocess.Popen | None = None  # a child of this script (None: a detached daemon, see ``pid``)
    daemon_pid: Callable[[], int | None] = lambda: None
    stopper: Callable[[], None] | None = None  # how it is stopped (then every process left gets SIGKILL)
    seen: set[int] = field(default_factory=set)  # every PID of its process tree seen so far

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else self.daemon_pid()

    def exited(self) -> str | None:
        """Why the server is gone (None while it runs, or while a daemon has not written its PID yet)."""
        if self.process is not None and self.process.poll() is not None:
            return f"exited with {self.process.returncode}"
        return None

    def processes(self) -> list[Any]:
        """psutil processes of the whole tree (root first), remembered for ``stop``."""
        import psutil

        pid = self.pid
        if pid is None:
            return []
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        self.seen |= {p.pid for p in tree}
        return tree

    def body(self, records: list[dict]) -> bytes:
        return json.dumps({self.wrap_key: records}).encode()

    def predictions(self, answer: dict) -> list[float]:
        return [float(v) for v in answer[self.answer_key]]

    def stop(self) -> None:
        """The server's own stop (ZenML's, or SIGTERM to the process group); SIGKILL to whatever is left after 20 s."""
        self.processes()
        try:
            if self.stopper is not None:
                self.stopper()
            elif self.process is not None and self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
        except (ProcessLookupError, OSError) as exc:
            print(f"  {self.name}: stop failed ({exc}); killing its processes")
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(pid) for pid in self.seen):
            time.sleep(0.2)
        for pid in self.seen:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)


def wait_healthy(server: Server, health: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        why = server.exited()
        if why is not None:
            raise RuntimeError(f"{server.name} {why}:\n{server.log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", health)
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    text = server.log.read_text()[-3000:] if server.log.exists() else "(no log)"
    raise RuntimeError(f"{server.name} on port {server.port} did not become healthy:\n{text}")


def wait_workers(server: Server, count: int, marker: str, timeout: float = 120) -> None:
    """Wait until ``count`` processes of the tree mapped ``marker`` (workers that loaded the model), for memory."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        loaded = 0
        for process in server.processes():
            with contextlib.suppress(OSError):
                loaded += marker in Path(f"/proc/{process.pid}/maps").read_text()
        if loaded >= count:
            return
        time.sleep(0.3)
    print(f"  warning: {server.name}: fewer than {count} processes loaded the model within {timeout:.0f} s")


def _launch(name: str, command: list[str], env: dict[str, str], cwd: Path, base: Path, path: str, wrap_key: str,
            answer_key: str, health: str, note: str, port: int | None = None) -> Server:
    port = port or free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    log = base / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # own process group: stopped as a whole
    server = Server(name, port, path, wrap_key, answer_key, log, note, process=process)
    try:
        wait_healthy(server, health)
    except Exception:
        server.stop()
        raise
    return server


def write_bundle(base: Path, model, contract, frame) -> tuple[Path, Path]:
    keys = base / "keys"
    private = base / "private" / "university.key"
    generate_key_pair(private, keys / "university.pub", "university")
    sample = frame.drop(columns=contract.personal_columns).sample(n=min(5000, len(frame)), random_state=0)
    bundle, _ = write_model_bundle(
        model, contract, {"bench": {}}, profile(frame, contract), sample, "# bench\n",
        Producer(partner="university"), load_signer("university", private), base / "exchange",
        extra={"model": {"version": "bench"}})
    return bundle, keys


def start_collabops_zenml(base: Path, bundle: Path, keys: Path, serving: ServingSettings, name: str) -> Server:
    """The service as deploy starts it: ZenML's local daemon running PredictionServer.run (which execs the service)."""
    import uuid

    from components.prediction_server import PredictionServer, PredictionServerConfig

    config = PredictionServerConfig(
        model_name="bench", model_version="bench", bundle_dir=str(bundle), keys_dir=str(keys), bundle_id="bench",
        log_dir=str(base / "inference-log"), serving=serving.model_copy(update={"port": free_port()}),
        root_runtime_path=str(base / "zenml-services"), service_name=name)
    service = PredictionServer(uuid=uuid.uuid4(), config=config)
    here = os.getcwd()
    os.chdir(ROOT)  # ZenML loads components.prediction_server from the daemon's working folder, as run.py does
    try:
        service.start(timeout=0)
    finally:
        os.chdir(here)
    log = Path(service.status.log_file) if service.status.log_file else base / f"{name}.log"
    server = Server(name, config.serving.port, "/predict", "records", "predictions", log,
                    f"run.py deploy's layout: ZenML LocalDaemonService -> PredictionServer.run -> exec python -m "
                    f"collabops.production.serving (--log-dir, {serving.workers} workers)",
                    daemon_pid=lambda: service.status.pid, stopper=lambda: service.stop(timeout=60))
    try:
        wait_healthy(server, "/health")
    except Exception:
        server.stop()
        raise
    return server


def start_collabops_module(base: Path, bundle: Path, keys: Path, serving: ServingSettings, name: str,
                           log_dir: Path | None) -> Server:
    command = [sys.executable, "-m", "collabops.production.serving", "--bundle", str(bundle), "--keys-dir", str(keys),
               "--host", "127.0.0.1", "--port", "{port}", "--workers", str(serving.workers),
               "--log-flush-seconds", str(serving.log_flush_seconds)]
    if log_dir is not None:
        command += ["--log-dir", str(log_dir)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the service's own default
    return _launch(name, command, env, ROOT, base, "/predict", "records", "predictions", "/health",
                   f"python -m collabops.production.serving --workers {serving.workers}"
                   + (" --log-dir ..." if log_dir else " (no inference log: NOT how deploy runs it)"))


def save_mlflow_model(base: Path, model, X) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    path = base / "mlflow-model"
    mlflow.sklearn.save_model(model, str(path), serialization_format="skops", skops_trusted_types=TRUSTED_TYPES,
                              signature=infer_signature(X, model.predict(X)))
    return path


def start_mlflow(base: Path, path: Path, name: str, workers: int | None, omp_threads: str | None) -> Server:
    binary = str(Path(sys.executable).with_name("mlflow"))
    # mlflow execs ``uvicorn`` from PATH: put this interpreter's bin directory first. The model holds
    # collabops.training.features.CalendarFeatures, so the repository must be importable in MLflow's server too.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MLFLOW_MODELS_WORKERS")}
    env.update({"MLFLOW_TRACKING_URI": f"file://{base / 'mlruns'}",
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
                "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)})
    command = [binary, "models", "serve", "-m", str(path), "--env-manager", "local", "-p", "{port}",
               "-h", "127.0.0.1"]
    note = "mlflow models serve -m MODEL --env-manager local -p PORT -h 127.0.0.1"
    if workers:
        command += ["--workers", str(workers)]
        note += f" --workers {workers}"
    if omp_threads:
        env["OMP_NUM_THREADS"] = omp_threads
        note = f"OMP_NUM_THREADS={omp_threads} " + note
    return _launch(name, command, env, base, base, "/invocations", "dataframe_records", "predictions", "/ping", note)


# ----------------------------------------------------------------------------- memory

def _rollup(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MiB from /proc/PID/smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in ("Rss:", "Pss:"):
            values[parts[0]] = int(parts[1]) / 1024
    return values.get("Rss:", float("nan")), values.get("Pss:", float("nan"))


def _role(process: Any, root: Any) -> str:
    command = " ".join(process.cmdline())
    if "resource_tracker" in command:
        return "mp resource tracker"
    if "spawn_main" in command:
        return "worker"
    if process.pid == root.pid:
        if "collabops.production.serving" in command:
            return "supervisor"
        if "models serve" in command or "mlflow" in Path(process.cmdline()[1] if len(process.cmdline()) > 1
                                                         else "").name:
            return "mlflow CLI"
    if "uvicorn" in command:
        one = "--workers" not in command or f"{command} ".count("--workers 1 ")
        return "uvicorn (serves: its one worker)" if one else "uvicorn supervisor"
    if command.startswith(("bash", "/bin/bash", "sh ")):
        return "shell"
    return Path(process.cmdline()[0]).name if process.cmdline() else "?"


def memory(server: Server) -> dict[str, Any]:
    """RSS/PSS of every process of the server: per process (role, pid, MiB) and the sums."""
    import psutil

    rows = []
    tree = server.processes()
    for process in tree:
        try:
            rss, pss = _rollup(process.pid)
            rows.append((_role(process, tree[0]), process.pid, rss, pss))
        except (OSError, psutil.Error):
            continue
    return {"processes": rows, "rss": sum(r[2] for r in rows), "pss": sum(r[3] for r in rows),
            "count": len(rows), "root_rss": rows[0][2] if rows else float("nan"),
            "root_pss": rows[0][3] if rows else float("nan")}


def show_memory(name: str, when: str, mem: dict[str, Any]) -> None:
    print(f"  memory {name} {when}: {mem['count']} processes, RSS {mem['rss']:.0f} MiB, PSS {mem['pss']:.0f} MiB "
          f"(load average {load_average()})")
    for role, pid, rss, pss in mem["processes"]:
        print(f"    {role:<40} pid {pid:>7}  RSS {rss:7.1f} MiB  PSS {pss:7.1f} MiB")


# ----------------------------------------------------------------------------- load generator (same for every server)

def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


class Client:
    """One keep-alive connection that reconnects after an error; every failure is counted."""

    def __init__(self, server: Server, timeout: float) -> None:
        self.server, self.timeout = server, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)

    def call(self, body: bytes) -> int:
        try:
            status, _ = post(self.conn, self.server.path, body)
            return status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=self.timeout)
            return -1

    def close(self) -> None:
        self.conn.close()


def sequential(server: Server, bodies: list[bytes], count: int, timeout: float,
               budget: float | None = None, expect: int = 200) -> tuple[np.ndarray, int, dict[int, int]]:
    """Latencies in ms of up to ``count`` sequential requests on one keep-alive connection, failures, statuses.

    A failure is an answer other than ``expect``. With ``budget`` (seconds) it
    stops early when the budget is spent: a contended server then yields
    fewer samples instead of an endless phase.
    """
    client = Client(server, timeout)
    times, failed, statuses = [], 0, {}
    ends = time.perf_counter() + budget if budget else float("inf")
    for i in range(count):
        if time.perf_counter() > ends:
            break
        started = time.perf_counter()
        status = client.call(bodies[i % len(bodies)])
        times.append((time.perf_counter() - started) * 1000)
        failed += status != expect
        statuses[status] = statuses.get(status, 0) + 1
    client.close()
    return np.array(times), failed, statuses


@dataclass
class Load:
    """What ``clients`` concurrent clients saw in one window."""

    seconds: float
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)  # ms, requests completed inside the window
    finished_at: list[float] = field(default_factory=list)  # seconds since the window opened


def throughput(server: Server, bodies: list[bytes], clients: int, seconds: float, timeout: float) -> Load:
    """Each client sends its next request as soon as the previous one is answered, for ``seconds``."""
    barrier = threading.Barrier(clients + 1)
    per_client: list[list[tuple[float, float, int]]] = [[] for _ in range(clients)]
    window: dict[str, float] = {}

    def run(index: int) -> None:
        client = Client(server, timeout)
        barrier.wait()
        opened, stop_at = window["opened"], window["stop_at"]
        i = index
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            status = client.call(bodies[i % len(bodies)])
            done = time.perf_counter()
            per_client[index].append((done - opened, (done - started) * 1000, status))
            i += clients
        client.close()

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    window["opened"] = time.perf_counter()
    window["stop_at"] = window["opened"] + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    load = Load(seconds)
    for finished, latency, status in sorted(x for xs in per_client for x in xs):
        if finished > seconds:  # answered after the window: neither counted nor timed
            if status != 200:
                load.failed += 1
            continue
        load.ok += status == 200
        load.failed += status != 200
        load.latencies.append(latency)
        load.finished_at.append(finished)
    return load


def settle(server: Server, body: bytes, timeout: float, limit: float = 120.0) -> float:
    """Wait until the server answers a request within 2 s again (no backlog from a previous phase); seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        one = time.perf_counter()
        _, failed, _ = sequential(server, [body], 1, timeout)
        if not failed and time.perf_counter() - one < 2.0:
            return time.perf_counter() - started
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} did not settle within {limit:.0f} s")


# ----------------------------------------------------------------------------- measurements

def percentile(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def measure(server: Server, single: list[bytes], big: list[bytes], kinds: dict[str, list[bytes]],
            args: argparse.Namespace, collabops: bool) -> dict[str, Any]:
    settle(server, single[0], args.timeout)
    sequential(server, single, 30, args.timeout)  # warm-up, not counted
    sequential(server, big, 2, args.timeout)
    lat, failed_single, _ = sequential(server, single, args.requests, args.timeout, args.phase_budget)
    by_kind: dict[str, Any] = {}
    for kind, _, expected in KINDS:
        kind_lat, kind_failed, statuses = sequential(server, kinds[kind], args.kind_requests, args.timeout,
                                                     args.phase_budget, expect=expected if collabops else 200)
        by_kind[kind] = {"p50": percentile(kind_lat, 50), "p99": percentile(kind_lat, 99), "statuses": statuses,
                         "failed": kind_failed if collabops else 0, "n": len(kind_lat)}
    settle(server, single[0], args.timeout)
    load = throughput(server, single, args.clients, args.seconds, args.timeout)
    settle(server, single[0], args.timeout)
    big_lat, failed_big, _ = sequential(server, big, args.big_requests, args.timeout, args.phase_budget)
    thirds = [[lat_ for lat_, t in zip(load.latencies, load.finished_at, strict=True) if k * args.seconds / 3 <= t <
               (k + 1) * args.seconds / 3] for k in range(3)]
    return {
        "p50": percentile(lat, 50), "p99": percentile(lat, 99),
        "rps": load.ok / args.seconds, "ok": load.ok,
        "tp_p50": percentile(load.latencies, 50), "tp_p99": percentile(load.latencies, 99),
        **{f"tp_p99_{k + 1}": percentile(third, 99) for k, third in enumerate(thirds)},
        "big_p50": percentile(big_lat, 50), "big_p99": percentile(big_lat, 99),
        **{f"kind_{kind}_p50": value["p50"] for kind, value in by_kind.items()},
        **{f"kind_{kind}_p99": value["p99"] for kind, value in by_kind.items()},
        "kinds": by_kind,
        "failed_single": failed_single, "failed_tp": load.failed, "failed_big": failed_big,
        "failed_kinds": sum(v["failed"] for v in by_kind.values()),
        "cut_short": int(len(lat) < args.requests) + int(len(big_lat) < args.big_requests)
        + sum(int(v["n"] < args.kind_requests) for v in by_kind.values()),
    }


def in_process_breakdown(model, contract, frame, records: list[dict], log_dir: Path,
                         repeats: int = 300) -> dict[str, float]:
    """Median ms per single-row request in collabops' request handling, without HTTP: where the time goes.

    The service is built as a deployed worker builds it (compiled path,
    inference log on, flushed every 2 s in its thread) and every kind of
    request goes through ``service.answer`` (decode, validate, predict, log)
    or, for the refused kinds, to the ``RequestError`` that becomes the 422.
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from collabops.production.serving import PredictionService, RequestError

    service = PredictionService(model, contract, "bench", "bench", {}, reference=frame.head(500), log_dir=log_dir)
    assert service.compiled is not None and service.compiled.pipeline.trees is not None, service.inference_note
    body = json.dumps({"records": [records[0]]}).encode()
    parsed = service.parse(body)
    rows = parsed.rows
    assert rows is not None
    matrix = service.compiled.pipeline.matrix(rows)
    frame_one = pd.DataFrame.from_records([records[0]], columns=contract.feature_columns)
    valid = contract.validate(frame_one, source="request", columns=contract.feature_columns)

    def answer_or_refusal(request: bytes) -> Callable[[], object]:
        def call() -> object:
            try:
                return service.answer(request)
            except RequestError as exc:
                return exc.status
        return call

    kind_bodies = {kind: [json.dumps({"records": [written_as(r, kind)]}).encode() for r in records[:64]]
                   for kind, _, _ in KINDS}
    steps: list[tuple[str, Callable[[], object]]] = [
        ("json.loads", lambda: json.loads(body)),
        ("compiled: rule validation (RecordValidator)", lambda: service.decoder.validate([records[0]])),
        ("compiled: feature matrix", lambda: service.compiled.pipeline.matrix(rows)),
        ("compiled: numpy tree walk on the matrix (<= 16 rows)",
         lambda: service.compiled.pipeline.trees.predict(matrix)),
        ("compiled: estimator.predict on the matrix (> 16 rows)",
         lambda: service.compiled.pipeline.estimator.predict(matrix)),
        ("before: frame + pandera validation", lambda: contract.validate(
            pd.DataFrame.from_records([records[0]], columns=contract.feature_columns), source="request",
            columns=contract.feature_columns)),
        ("before: pipeline.predict on the frame", lambda: model.predict(valid)),
    ]
    counter = {"i": 0}
    for kind, _, expected in KINDS:
        def one(kind: str = kind) -> object:
            counter["i"] += 1
            return answer_or_refusal(kind_bodies[kind][counter["i"] % 64])()
        label = f"whole request, {kind} ({'predicted + logged' if expected == 200 else 'refused: 422'})"
        steps.append((label, one))
    timings: dict[str, list[float]] = {name: [] for name, _ in steps}
    # The pandas/pandera steps ("before") in a loop of their own, so that they do not evict the caches of the
    # request steps; within each loop a new random order every repeat, so that no step always follows the same
    # one (a step right after estimator.predict, which touches much memory, pays for it).
    groups = [[step for step in steps if not step[0].startswith("before")],
              [step for step in steps if step[0].startswith("before")]]
    order = np.random.default_rng(0)
    try:
        with threadpool_limits(limits=1, user_api="openmp"):  # as in the service's workers
            for group in groups:
                for _ in range(repeats):
                    for index in order.permutation(len(group)):
                        name, call = group[index]
                        started = time.perf_counter()
                        call()
                        timings[name].append((time.perf_counter() - started) * 1000)
    finally:
        service.close()
    return {name: float(np.median(values)) for name, values in timings.items()}


# ----------------------------------------------------------------------------- report

def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def wait_for_quiet(limit: float, patience: float) -> None:
    """Wait (up to ``patience`` s) until the 1-minute load average is at most ``limit``."""
    if limit <= 0 or not hasattr(os, "getloadavg"):
        return
    started = time.time()
    while os.getloadavg()[0] > limit and time.time() - started < patience:
        time.sleep(10)
    if os.getloadavg()[0] > limit:
        print(f"warning: 1-min load average still {os.getloadavg()[0]:.2f} > {limit:g} after {patience:.0f} s; "
              "measuring anyway")


def machine_info() -> str:
    import mlflow
    import sklearn
    import starlette
    import uvicorn
    import zenml

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu})\n"
            f"python {platform.python_version()}, scikit-learn {sklearn.__version__}, mlflow {mlflow.__version__}, "
            f"uvicorn {uvicorn.__version__}, starlette {starlette.__version__}, zenml {zenml.__version__}\n"
            f"load average at start: {load_average()}")


ROWS = [
    ("single-row p50 ms (sequential, plain)", "p50", ".2f"),
    ("single-row p99 ms (sequential, plain)", "p99", ".2f"),
    ("throughput req/s, {clients} clients x {seconds:g} s", "rps", ".1f"),
    ("latency p50 ms under {clients} clients", "tp_p50", ".1f"),
    ("latency p99 ms under {clients} clients", "tp_p99", ".1f"),
    ("  p99 ms, 1st / 2nd / 3rd third of the window", None, ""),
    ("1,000-row p50 ms (sequential)", "big_p50", ".1f"),
    ("1,000-row p99 ms (sequential)", "big_p99", ".1f"),
    ("failed requests (all phases, all runs)", "failed", "d"),
]


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def ratio_of(ours: list[dict[str, Any]], other: list[dict[str, Any]], key: str) -> float:
    """The median over runs of the per-run ratio ours/other (both measured in the same run, one after the other)."""
    ratios = [a[key] / b[key] for a, b in zip(ours, other, strict=True) if b[key]]
    return float(np.median(ratios)) if ratios else float("nan")


def total_failed(runs: list[dict[str, Any]]) -> int:
    return int(sum(r["failed_single"] + r["failed_tp"] + r["failed_big"] + r["failed_kinds"] for r in runs))


def print_table(results: dict[str, list[dict[str, Any]]], memories: dict[str, dict[str, dict[str, Any]]],
                args: argparse.Namespace) -> None:
    names = list(results)
    ours, others = names[0], [n for n in names[1:] if n.startswith("mlflow")]
    extras = [n for n in names[1:] if not n.startswith("mlflow")]
    head = (f"| metric (median of {args.runs} runs; ratio: median of per-run ratios) | {ours} |"
            + "".join(f" {o} | ratio {ours}/{o} |" for o in others) + "".join(f" {e} (extra) |" for e in extras))
    print()
    print(head)
    print("|---" * (2 + 2 * len(others) + len(extras)) + "|")

    def line(label: str, ours_cell: str, other_cells: list[str], extra_cells: list[str]) -> None:
        print(f"| {label} | {ours_cell} |" + "".join(f" {c} |" for c in other_cells)
              + "".join(f" {c} |" for c in extra_cells))

    for label, key, fmt in ROWS:
        label = label.format(clients=args.clients, seconds=args.seconds)
        if key is None:
            def thirds(name: str) -> str:
                return " / ".join(f"{median_of(results[name], f'tp_p99_{k}'):.1f}" for k in (1, 2, 3))
            line(label, thirds(ours), [c for o in others for c in (thirds(o), "")], [thirds(e) for e in extras])
            continue
        if key == "failed":
            line(label, str(total_failed(results[ours])), [c for o in others for c in (str(total_failed(results[o])),
                                                                                      "")],
                 [str(total_failed(results[e])) for e in extras])
            continue
        cells = []
        for other in others:
            cells += [f"{median_of(results[other], key):{fmt}}", f"{ratio_of(results[ours], results[other], key):.2f}x"]
        line(label, f"{median_of(results[ours], key):{fmt}}", cells,
             [f"{median_of(results[e], key):{fmt}}" for e in extras])

    def statuses(name: str, kind: str) -> str:
        seen: dict[int, int] = {}
        for run in results[name]:
            for status, count in run["kinds"][kind]["statuses"].items():
                seen[status] = seen.get(status, 0) + count
        return "/".join(str(s) for s in sorted(seen))

    for kind, _, _ in KINDS:
        for q in ("p50", "p99"):
            key = f"kind_{kind}_{q}"
            cells = []
            for other in others:
                cells += [f"{median_of(results[other], key):.2f} ({statuses(other, kind)})",
                          f"{ratio_of(results[ours], results[other], key):.2f}x"]
            line(f"{kind} {q} ms (status)", f"{median_of(results[ours], key):.2f} ({statuses(ours, kind)})", cells,
                 [f"{median_of(results[e], key):.2f} ({statuses(e, kind)})" for e in extras])

    for when in ("after start", "after the runs"):
        def mem(name: str, key: str, when: str = when) -> str:
            value = memories.get(name, {}).get(when)
            return f"{value[key]:.0f}" if value else "?"

        for key, label in (("count", "processes"), ("rss", "RSS MiB, all processes"),
                           ("pss", "PSS MiB, all processes"), ("root_rss", "RSS MiB, root process"),
                           ("root_pss", "PSS MiB, root process")):
            cells = []
            for other in others:
                a, b = memories.get(ours, {}).get(when), memories.get(other, {}).get(when)
                cells += [mem(other, key), f"{a[key] / b[key]:.2f}x" if a and b and b[key] else ""]
            line(f"{label} ({when})", mem(ours, key), cells, [mem(e, key) for e in extras])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="throughput window per server and run")
    parser.add_argument("--runs", type=int, default=5, help="interleaved repetitions; the table shows medians")
    parser.add_argument("--requests", type=int, default=500, help="sequential single-row requests per server and run")
    parser.add_argument("--kind-requests", type=int, default=200,
                        help="sequential single-row requests per kind of request, server and run")
    parser.add_argument("--big-requests", type=int, default=30, help="sequential 1,000-row requests per server and run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients in the throughput phase")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout per request, seconds")
    parser.add_argument("--phase-budget", type=float, default=120.0,
                        help="seconds a sequential phase may take before it stops with the samples it has")
    parser.add_argument("--launch", choices=("zenml", "module"), default="zenml",
                        help="zenml: through ZenML's local daemon as run.py deploy does (default); module: "
                             "python -m collabops.production.serving with the same settings")
    parser.add_argument("--workers", type=int, help="collabops workers (default: configs/parking.yaml's, 2)")
    parser.add_argument("--extra-nolog", action="store_true",
                        help="also measure collabops WITHOUT its inference log (an extra row; deploy never runs it)")
    parser.add_argument("--no-tuned-mlflow", action="store_true", help="skip MLflow with 2 workers, 1 OpenMP thread")
    parser.add_argument("--max-start-load", type=float, default=0.0,
                        help="wait (up to --wait-seconds) until the 1-min load average is at most this (0: no wait)")
    parser.add_argument("--wait-seconds", type=float, default=900.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run, 3 s windows, fewer requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.requests, args.kind_requests, args.big_requests = 1, 3.0, 100, 50, 5
    # SIGTERM (e.g. from `timeout`) must still run the finally blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    serving = load_project(PROJECT).deployment.serving  # what deploy serves with
    if args.workers:
        serving = serving.model_copy(update={"workers": args.workers})

    wait_for_quiet(args.max_start_load, args.wait_seconds)
    print(machine_info())
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    contract = load_contract(ROOT / "configs" / "contract.yaml")
    started = time.perf_counter()
    frame = generate(GeneratorSettings(months=3, car_parks=20))
    # Requests carry naive local wall time, as a client of either server writes it (collabops reads it in the
    # contract's zone; MLflow's inferred signature refuses times with a zone). The calendar features are the same.
    frame[contract.time_column] = frame[contract.time_column].dt.tz_localize(None)
    features = contract.feature_columns
    X = frame[features]
    model = build_model(contract, get_task("regression").make_estimator(PARAMS))
    model.fit(X, frame[contract.target])
    print(f"model fitted on {len(frame):,} rows in {time.perf_counter() - started:.1f} s")

    # The same request rows for every server; timestamps as ISO strings.
    rng = np.random.default_rng(0)
    records = json.loads(X.to_json(orient="records", date_format="iso"))
    single_rows = [[records[i]] for i in rng.choice(len(records), size=256, replace=False)]
    big_rows = [[records[i] for i in rng.choice(len(records), size=1000, replace=False)] for _ in range(4)]

    servers: list[Server] = []
    results: dict[str, list[dict[str, Any]]] = {}
    memories: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="collabops-serving-bench-") as tmp:
        base = Path(tmp)
        # ZenML (for --launch zenml) never sees the user's configuration or store: it needs none here.
        os.environ["ZENML_CONFIG_PATH"] = str(base / "zenml-config")
        try:
            started = time.perf_counter()
            bundle, keys = write_bundle(base, model, contract, frame)
            if args.launch == "zenml":
                servers.append(start_collabops_zenml(base, bundle, keys, serving, "collabops"))
            else:
                servers.append(start_collabops_module(base, bundle, keys, serving, "collabops",
                                                      base / "inference-log"))
            if args.extra_nolog:
                servers.append(start_collabops_module(base, bundle, keys, serving, "collabops-nolog", None))
            path = save_mlflow_model(base, model, X)
            servers.append(start_mlflow(base, path, "mlflow", None, None))
            if not args.no_tuned_mlflow:
                servers.append(start_mlflow(base, path, "mlflow-tuned", 2, "1"))
            print(f"servers up in {time.perf_counter() - started:.1f} s (load average {load_average()}):")
            for server in servers:
                print(f"  {server.name} (pid {server.pid}): {server.note}")
            mlflow_server = next(s for s in servers if s.name == "mlflow")
            ran = [line.split("INFO ", 1)[-1] for line in mlflow_server.log.read_text().splitlines()
                   if "Running command" in line]
            print(f"  mlflow ran: {ran[0] if ran else '?'}")
            inference = [line.split("INFO: ", 1)[-1] for line in servers[0].log.read_text().splitlines()
                         if "inference path" in line]
            print(f"  collabops: {inference[0] if inference else '?'}")

            # The same predictions from every server before any timing.
            rows = list(range(0, 400, 37))
            check = [records[i] for i in rows]
            expected = model.predict(X.iloc[rows])
            for server in servers:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                status, text = post(conn, server.path, server.body(check))
                conn.close()
                if status != 200:
                    raise RuntimeError(f"{server.name} answered {status}: {text[:500]!r}")
                difference = float(np.max(np.abs(np.array(server.predictions(json.loads(text))) - expected)))
                if not difference <= AGREEMENT:
                    raise RuntimeError(f"{server.name} disagrees with the model by up to {difference}")
                print(f"  {server.name}: predictions agree with the in-process model on {len(check)} rows "
                      f"(max |diff| {difference:.1e})")
            for server in servers:  # every worker up and loaded (the first answers before the second is ready)
                wait_workers(server, serving.workers if server.name.startswith("collabops") else
                             (2 if server.name == "mlflow-tuned" else 1), "/sklearn/")
                memories[server.name] = {"after start": memory(server)}
                show_memory(server.name, "after start", memories[server.name]["after start"])

            bodies = {s.name: ([s.body(r) for r in single_rows], [s.body(r) for r in big_rows],
                               {kind: [s.body([written_as(r[0], kind)]) for r in single_rows] for kind, _, _ in KINDS})
                      for s in servers}
            results = {s.name: [] for s in servers}
            for run in range(args.runs):
                order = servers[run % len(servers):] + servers[:run % len(servers)]
                print(f"run {run + 1}/{args.runs}: order {', '.join(s.name for s in order)}; "
                      f"load average {load_average()}")
                for server in order:
                    single, big, kinds = bodies[server.name]
                    result = measure(server, single, big, kinds, args, server.name.startswith("collabops"))
                    results[server.name].append(result)
                    cut = " (a phase hit --phase-budget: fewer samples)" if result["cut_short"] else ""
                    kinds_text = ", ".join(f"{k} {result['kinds'][k]['p50']:.2f}" for k, _, _ in KINDS)
                    print(f"run {run + 1}/{args.runs} {server.name}{cut}: {result['p50']:.2f} ms p50, "
                          f"{result['rps']:.1f} req/s, {result['tp_p99']:.1f} ms p99 under load, "
                          f"1,000 rows {result['big_p50']:.1f} ms p50 {result['big_p99']:.1f} ms p99, failed "
                          f"{result['failed_single']}/{result['failed_tp']}/{result['failed_big']}/"
                          f"{result['failed_kinds']}; per kind p50 ms: {kinds_text}; load average {load_average()}")
            for server in servers:
                memories[server.name]["after the runs"] = memory(server)
                show_memory(server.name, "after the runs", memories[server.name]["after the runs"])
            logged = sorted((base / "inference-log").glob("inference-*.parquet"))
            print(f"  collabops inference log: {len(logged)} files, "
                  f"{sum(f.stat().st_size for f in logged) / 2**20:.1f} MiB")
        finally:
            for server in servers:
                server.stop()
        breakdown = in_process_breakdown(model, contract, frame, records, base / "in-process-log")

    print_table(results, memories, args)
    print()
    print(f"in-process, one row, median ms (no HTTP; one OpenMP thread, as in a collabops worker; inference log on); "
          f"load average {load_average()}:")
    for name, value in breakdown.items():
        print(f"  {name}: {value:.3f}")
    print(f"\nsettings: {args.runs} interleaved runs; per server and run {args.requests} single-row requests, "
          f"{args.kind_requests} per kind, {args.clients} clients x {args.seconds:g} s, {args.big_requests} "
          f"1,000-row requests; timeout {args.timeout:g} s; collabops launched with --launch {args.launch}, "
          f"{serving.workers} workers, inference log on, flush every {serving.log_flush_seconds:g} s")
    print(f"load average at end: {load_average()}")
    ours = results["collabops"]
    for other in [n for n in results if n.startswith("mlflow")]:
        rps = ratio_of(ours, results[other], "rps")
        p50 = ratio_of(ours, results[other], "p50")
        print(f"goals vs {other}: throughput >= 3x: {'met' if rps >= 3 else 'NOT met'} ({rps:.2f}x); "
              f"single-row p50 <= 0.5x: {'met' if p50 <= 0.5 else 'NOT met'} ({p50:.2f}x); "
              f"collabops failed requests: {total_failed(ours)}")
    plain = median_of(ours, "kind_plain_p50")
    for kind, _, expected in KINDS[1:]:
        value = median_of(ours, f"kind_{kind}_p50")
        print(f"collabops {kind} ({expected}): p50 {value:.2f} ms = {value / plain:.2f}x the plain request's "
              f"{plain:.2f} ms")


if __name__ == "__main__":
    main()
