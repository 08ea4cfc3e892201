"""Serving latency and throughput: collabops' prediction service against ``mlflow models serve``.

Why: the project serves its model with its own small ASGI service
(``collabops.production.serving``: bundle verification, contract validation, inference
log, metrics). The obvious alternative is MLflow's scoring server. This script
measures both on the SAME fitted model (calendar features + one-hot +
HistGradientBoostingRegressor, 200 trees of up to 31 leaves, fitted on
``generate(GeneratorSettings(months=3, car_parks=20))``) in one run, on
127.0.0.1 only, with the same load generator, so the numbers are comparable:

* single-row latency, p50/p99 over ``--requests`` sequential requests on one
  keep-alive connection;
* throughput with ``--clients`` concurrent keep-alive clients for ``--seconds``
  (requests completed inside the window), their latency p50/p99 (also per
  third of the window, to show whether p99 drifts under sustained load) and
  failed requests (non-200, connection errors, timeouts);
* 1,000-row request latency, p50/p99 over ``--big-requests`` sequential requests.

Servers (all started as subprocesses in a temporary directory, stopped by
process group in ``finally``):

* ``collabops``: ``python -m collabops.production.serving`` with its defaults (2 uvicorn
  workers, one OpenMP thread each, compiled inference path; no inference log
  unless ``--with-log``);
* ``mlflow``: ``mlflow models serve -m MODEL --env-manager local -p PORT`` as a
  user runs it, with its defaults (one uvicorn worker; OpenMP uses every core);
* ``mlflow-tuned``: the same with ``--workers 2`` and ``OMP_NUM_THREADS=1``, the
  stronger baseline (what collabops does, applied to MLflow).

Before any timing the script checks that every server returns the model's
predictions (max |diff| <= 1e-9) for a few rows. Each measurement is repeated
``--runs`` times, rotating the server order, and the table shows the median
per metric with the ratio collabops / MLflow next to it. The load generator
(threads + ``http.client``) runs in this process and is the same code for
every server; on a 2-core machine it competes with the servers for CPU, so
absolute numbers are pessimistic for all of them alike. There are no timing
assertions anywhere.

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
benchmarks (below); print the load average at the start, after each
measurement and at the end; give every request a timeout and every
sequential phase a time budget (``--phase-budget``), reporting how many
requests it finished, so a contended run ends with numbers and a warning
instead of hanging; and settle each server (a probe request answered within
2 s) before each phase.

Run it from the repository root, serialised with other benchmarks on the machine::

    flock /tmp/collabops-bench.lock python bench/serving_latency.py --seconds 15 --runs 3

About 7 minutes with the defaults on 2 cores (three servers, three runs of
~15-30 s per server, start-up ~1 minute). ``--quick`` runs a short smoke
version in about 2 minutes.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
sys.path.insert(0, str(ROOT))

from collabops.exchange.bundle import Producer  # noqa: E402
from collabops.data.contract import load_contract  # noqa: E402
from collabops.training.features import build_model  # noqa: E402
from collabops.data.generator import GeneratorSettings, generate  # noqa: E402
from collabops.exchange.model_bundle import write_model_bundle  # noqa: E402
from collabops.data.profile import profile  # noqa: E402
from collabops.exchange.signing import generate_key_pair, load_signer  # noqa: E402
from collabops.training.tasks import get_task  # noqa: E402
from collabops.exchange.trusted_types import TRUSTED_TYPES  # noqa: E402

PARAMS = {"max_iter": 200, "max_leaf_nodes": 31, "random_state": 0}
AGREEMENT = 1e-9


# ----------------------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One server under test: its process group, how to call it and how its bodies look."""

    name: str
    process: subprocess.Popen
    port: int
    path: str
    wrap_key: str
    answer_key: str
    log: Path
    note: str = ""

    def body(self, records: list[dict]) -> bytes:
        return json.dumps({self.wrap_key: records}).encode()

    def predictions(self, answer: dict) -> list[float]:
        return [float(v) for v in answer[self.answer_key]]

    def stop(self) -> None:
        """SIGTERM to the whole process group (server, its workers), SIGKILL if it does not go within 20 s."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def wait_healthy(server: Server, health: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n"
                               f"{server.log.read_text()[-3000:]}")
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
    raise RuntimeError(f"{server.name} on port {server.port} did not become healthy:\n"
                       f"{server.log.read_text()[-3000:]}")


def _launch(name: str, command: list[str], env: dict[str, str], cwd: Path, base: Path, path: str, wrap_key: str,
            answer_key: str, health: str, note: str) -> Server:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    log = base / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # own process group: stopped as a whole
    server = Server(name, process, port, path, wrap_key, answer_key, log, note)
    try:
        wait_healthy(server, health)
    except Exception:
        server.stop()
        raise
    return server


def start_collabops(base: Path, model, contract, frame, log_dir: Optional[Path], workers: int) -> Server:
    keys = base / "keys"
    private = base / "private" / "university.key"
    generate_key_pair(private, keys / "university.pub", "university")
    sample = frame.drop(columns=contract.personal_columns).sample(n=min(5000, len(frame)), random_state=0)
    bundle, _ = write_model_bundle(
        model, contract, {"bench": {}}, profile(frame, contract), sample, "# bench\n",
        Producer(partner="university"), load_signer("university", private), base / "exchange",
        extra={"model": {"version": "bench"}})
    command = [sys.executable, "-m", "collabops.production.serving", "--bundle", str(bundle), "--keys-dir", str(keys),
               "--host", "127.0.0.1", "--port", "{port}", "--workers", str(workers)]
    if log_dir is not None:
        command += ["--log-dir", str(log_dir)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the service's own default
    return _launch("collabops", command, env, ROOT, base, "/predict", "records", "predictions", "/health",
                   f"python -m collabops.production.serving --workers {workers}" + (" --log-dir ..." if log_dir else ""))


def save_mlflow_model(base: Path, model, X) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    path = base / "mlflow-model"
    mlflow.sklearn.save_model(model, str(path), serialization_format="skops", skops_trusted_types=TRUSTED_TYPES,
                              signature=infer_signature(X, model.predict(X)))
    return path


def start_mlflow(base: Path, path: Path, name: str, workers: Optional[int], omp_threads: Optional[str]) -> Server:
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
               budget: Optional[float] = None) -> tuple[np.ndarray, int]:
    """Latencies in ms of up to ``count`` sequential requests on one keep-alive connection, and failures.

    With ``budget`` (seconds) it stops early when the budget is spent: a
    contended server then yields fewer samples instead of an endless phase.
    """
    client = Client(server, timeout)
    times, failed = [], 0
    ends = time.perf_counter() + budget if budget else float("inf")
    for i in range(count):
        if time.perf_counter() > ends:
            break
        started = time.perf_counter()
        status = client.call(bodies[i % len(bodies)])
        times.append((time.perf_counter() - started) * 1000)
        failed += status != 200
    client.close()
    return np.array(times), failed


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
        latency, failed = sequential(server, [body], 1, timeout)
        if not failed and time.perf_counter() - one < 2.0:
            return time.perf_counter() - started
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} did not settle within {limit:.0f} s")


# ----------------------------------------------------------------------------- measurements

def percentile(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def measure(server: Server, single: list[bytes], big: list[bytes], args: argparse.Namespace) -> dict[str, float]:
    settle(server, single[0], args.timeout)
    sequential(server, single, 30, args.timeout)  # warm-up, not counted
    sequential(server, big, 2, args.timeout)
    lat, failed_single = sequential(server, single, args.requests, args.timeout, args.phase_budget)
    settle(server, single[0], args.timeout)
    load = throughput(server, single, args.clients, args.seconds, args.timeout)
    settle(server, single[0], args.timeout)
    big_lat, failed_big = sequential(server, big, args.big_requests, args.timeout, args.phase_budget)
    thirds = [[lat_ for lat_, t in zip(load.latencies, load.finished_at) if k * args.seconds / 3 <= t <
               (k + 1) * args.seconds / 3] for k in range(3)]
    return {
        "p50": percentile(lat, 50), "p99": percentile(lat, 99),
        "rps": load.ok / args.seconds, "ok": load.ok,
        "tp_p50": percentile(load.latencies, 50), "tp_p99": percentile(load.latencies, 99),
        **{f"tp_p99_{k + 1}": percentile(third, 99) for k, third in enumerate(thirds)},
        "big_p50": percentile(big_lat, 50), "big_p99": percentile(big_lat, 99),
        "failed_single": failed_single, "failed_tp": load.failed, "failed_big": failed_big,
        "cut_short": int(len(lat) < args.requests) + int(len(big_lat) < args.big_requests),
    }


def in_process_breakdown(model, contract, frame, records: list[dict], repeats: int = 300) -> dict[str, float]:
    """Median ms per single-row request in collabops' request handling, without HTTP: where the time goes."""
    import pandas as pd

    from collabops.production.serving import PredictionService

    service = PredictionService(model, contract, "bench", "bench", {}, reference=frame.head(500))
    assert service.compiled is not None and service.compiled.pipeline.trees is not None, service.inference_note
    body = json.dumps({"records": [records[0]]}).encode()
    parsed = service.parse(body)
    rows = parsed.rows
    assert rows is not None
    matrix = service.compiled.pipeline.matrix(rows)
    frame_one = pd.DataFrame.from_records([records[0]], columns=contract.feature_columns)
    valid = contract.validate(frame_one, source="request", columns=contract.feature_columns)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("json.loads", lambda: json.loads(body)),
        ("compiled: fast validation", lambda: service.compiled.validator.rows([records[0]])),
        ("compiled: feature matrix", lambda: service.compiled.pipeline.matrix(rows)),
        ("compiled: numpy tree walk on the matrix (<= 16 rows)", lambda: service.compiled.pipeline.trees.predict(matrix)),
        ("compiled: estimator.predict on the matrix (> 16 rows)",
         lambda: service.compiled.pipeline.estimator.predict(matrix)),
        ("compiled: whole request (service.answer)", lambda: service.answer(body)),
        ("before: frame + pandera validation", lambda: contract.validate(
            pd.DataFrame.from_records([records[0]], columns=contract.feature_columns), source="request",
            columns=contract.feature_columns)),
        ("before: pipeline.predict on the frame", lambda: model.predict(valid)),
    ]
    from threadpoolctl import threadpool_limits

    timings: dict[str, list[float]] = {name: [] for name, _ in steps}
    with threadpool_limits(limits=1, user_api="openmp"):  # as in the service's workers
        for _ in range(repeats):
            for name, call in steps:
                started = time.perf_counter()
                call()
                timings[name].append((time.perf_counter() - started) * 1000)
    return {name: float(np.median(values)) for name, values in timings.items()}


# ----------------------------------------------------------------------------- report

def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def machine_info() -> str:
    import mlflow
    import sklearn
    import starlette
    import uvicorn

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
            f"uvicorn {uvicorn.__version__}, starlette {starlette.__version__}\n"
            f"load average at start: {load_average()}")


ROWS = [
    ("single-row p50 ms (sequential)", "p50", ".2f"),
    ("single-row p99 ms (sequential)", "p99", ".2f"),
    ("throughput req/s, {clients} clients x {seconds:g} s", "rps", ".1f"),
    ("latency p50 ms under {clients} clients", "tp_p50", ".1f"),
    ("latency p99 ms under {clients} clients", "tp_p99", ".1f"),
    ("  p99 ms, 1st / 2nd / 3rd third of the window", None, ""),
    ("1,000-row p50 ms (sequential)", "big_p50", ".1f"),
    ("1,000-row p99 ms (sequential)", "big_p99", ".1f"),
    ("failed requests (all phases, all runs)", "failed", "d"),
]


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def print_table(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    names = list(results)
    ours, others = names[0], names[1:]
    head = f"| metric (median of {args.runs} runs) | {ours} |" + "".join(f" {o} | ratio {ours}/{o} |" for o in others)
    print()
    print(head)
    print("|---" * (2 + 2 * len(others)) + "|")
    for label, key, fmt in ROWS:
        label = label.format(clients=args.clients, seconds=args.seconds)
        if key is None:
            def thirds(name: str) -> str:
                return " / ".join(f"{median_of(results[name], f'tp_p99_{k}'):.1f}" for k in (1, 2, 3))
            print(f"| {label} | {thirds(ours)} |" + "".join(f" {thirds(o)} | |" for o in others))
            continue
        if key == "failed":
            def total(name: str) -> int:
                return int(sum(r["failed_single"] + r["failed_tp"] + r["failed_big"] for r in results[name]))
            print(f"| {label} | {total(ours)} |" + "".join(f" {total(o)} | |" for o in others))
            continue
        a = median_of(results[ours], key)
        cells = ""
        for other in others:
            b = median_of(results[other], key)
            cells += f" {b:{fmt}} | {a / b if b else float('nan'):.2f}x |"
        print(f"| {label} | {a:{fmt}} |{cells}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="throughput window per server and run")
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the table shows medians")
    parser.add_argument("--requests", type=int, default=500, help="sequential single-row requests per server and run")
    parser.add_argument("--big-requests", type=int, default=30, help="sequential 1,000-row requests per server and run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients in the throughput phase")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout per request, seconds")
    parser.add_argument("--phase-budget", type=float, default=120.0,
                        help="seconds a sequential phase may take before it stops with the samples it has")
    parser.add_argument("--workers", type=int, default=2, help="collabops worker processes")
    parser.add_argument("--with-log", action="store_true", help="run collabops with its inference log on")
    parser.add_argument("--no-tuned-mlflow", action="store_true", help="skip MLflow with 2 workers, 1 OpenMP thread")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run, 3 s windows, fewer requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.requests, args.big_requests = 1, 3.0, 100, 5
    # SIGTERM (e.g. from `timeout`) must still run the finally blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(machine_info())
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    contract = load_contract(ROOT / "configs" / "contract.yaml")
    started = time.perf_counter()
    frame = generate(GeneratorSettings(months=3, car_parks=20))
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
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="collabops-serving-bench-") as tmp:
        base = Path(tmp)
        try:
            started = time.perf_counter()
            servers.append(start_collabops(base, model, contract, frame,
                                           base / "inference-log" if args.with_log else None, args.workers))
            path = save_mlflow_model(base, model, X)
            servers.append(start_mlflow(base, path, "mlflow", None, None))
            if not args.no_tuned_mlflow:
                servers.append(start_mlflow(base, path, "mlflow-tuned", 2, "1"))
            print(f"servers up in {time.perf_counter() - started:.1f} s:")
            for server in servers:
                print(f"  {server.name} (pid {server.process.pid}): {server.note}")
            ran = [line.split("INFO ", 1)[-1] for line in servers[1].log.read_text().splitlines()
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

            bodies = {s.name: ([s.body(r) for r in single_rows], [s.body(r) for r in big_rows]) for s in servers}
            results = {s.name: [] for s in servers}
            for run in range(args.runs):
                order = servers[run % len(servers):] + servers[:run % len(servers)]
                for server in order:
                    single, big = bodies[server.name]
                    result = measure(server, single, big, args)
                    results[server.name].append(result)
                    cut = " (a phase hit --phase-budget: fewer samples)" if result["cut_short"] else ""
                    print(f"run {run + 1}/{args.runs} {server.name}{cut}: {result['p50']:.2f} ms p50, "
                          f"{result['rps']:.1f} req/s, {result['tp_p99']:.1f} ms p99 under load, "
                          f"1,000 rows {result['big_p50']:.1f} ms, failed "
                          f"{result['failed_single']}/{result['failed_tp']}/{result['failed_big']}; "
                          f"load average {load_average()}")
        finally:
            for server in servers:
                server.stop()

    breakdown = in_process_breakdown(model, contract, frame, records)
    print_table(results, args)
    print()
    print("in-process, one row, median ms (no HTTP; one OpenMP thread, as in a collabops worker):")
    for name, value in breakdown.items():
        print(f"  {name}: {value:.3f}")
    print(f"\nsettings: {args.runs} runs; per server and run {args.requests} single-row requests, {args.clients} "
          f"clients x {args.seconds:g} s, {args.big_requests} 1,000-row requests; timeout {args.timeout:g} s")
    print(f"load average at end: {load_average()}")
    ours = results["collabops"]
    for other in [n for n in results if n != "collabops"]:
        rps = median_of(ours, "rps") / median_of(results[other], "rps")
        p50 = median_of(ours, "p50") / median_of(results[other], "p50")
        failed = sum(r["failed_single"] + r["failed_tp"] + r["failed_big"] for r in ours)
        print(f"goals vs {other}: throughput >= 3x: {'met' if rps >= 3 else 'NOT met'} ({rps:.2f}x); "
              f"single-row p50 <= 0.5x: {'met' if p50 <= 0.5 else 'NOT met'} ({p50:.2f}x); "
              f"collabops failed requests: {failed}")


if __name__ == "__main__":
    main()
