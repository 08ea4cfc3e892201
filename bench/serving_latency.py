"""Serving latency and throughput: collabops' prediction service against ``mlflow models serve``.

Why: the project serves its model with its own small ASGI service
(``collabops.serving``: bundle verification, contract validation, inference
log, metrics). The obvious alternative is MLflow's scoring server. This script
measures both on the SAME fitted model (calendar features + one-hot +
HistGradientBoostingRegressor, fitted on ``generate(GeneratorSettings(months=3,
car_parks=20))``) in one run, on 127.0.0.1 only, so the numbers are comparable:

* single-row latency, p50/p99 over ``--requests`` sequential requests;
* throughput with ``--clients`` concurrent keep-alive clients for ``--seconds``,
  counting failed requests (non-200 or connection errors);
* 1,000-row request latency, p50/p99 over ``--big-requests`` sequential requests.

Both servers get the same rows (timestamps as ISO strings in JSON). Before any
timing the script checks that both return the same predictions (within 1e-6)
for a few rows. Both servers are started as subprocesses in a temporary
directory and stopped by PID (MLflow by process group) in ``finally``.

MLflow is run with its defaults (``--env-manager local``; mlflow 3.17 runs
``uvicorn --workers 1`` unless ``MLFLOW_MODELS_WORKERS`` is set; the command it
runs is printed); collabops is run with
its defaults (one uvicorn worker, no inference log unless ``--log-dir`` is
given with ``--with-log``). The load generator runs in this process (threads +
``http.client``), so on a small machine it competes with the server for CPU:
compare the ratio, not the absolute numbers. There are no timing assertions.

Run it by hand from the repository root::

    python bench/serving_latency.py --seconds 15

It takes about 2-3 minutes with the defaults (two throughput phases of
``--seconds`` each, model fitting, server start-up).
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
sys.path.insert(0, str(ROOT))

from collabops.bundle import Producer  # noqa: E402
from collabops.contract import load_contract  # noqa: E402
from collabops.features import build_model  # noqa: E402
from collabops.generator import GeneratorSettings, generate  # noqa: E402
from collabops.model_bundle import write_model_bundle  # noqa: E402
from collabops.profile import profile  # noqa: E402
from collabops.signing import generate_key_pair, load_signer  # noqa: E402
from collabops.tasks import get_task  # noqa: E402
from collabops.trusted_types import TRUSTED_TYPES  # noqa: E402

PARAMS = {"max_iter": 200, "max_leaf_nodes": 31, "random_state": 0}


# ----------------------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server under test: how to call it and how its bodies look."""

    def __init__(self, name: str, process: subprocess.Popen, port: int, path: str, wrap_key: str,
                 answer_key: str, group: bool) -> None:
        self.name, self.process, self.port, self.path = name, process, port, path
        self.wrap_key, self.answer_key, self.group = wrap_key, answer_key, group

    def body(self, records: list[dict]) -> bytes:
        return json.dumps({self.wrap_key: records}).encode()

    def predictions(self, answer: dict) -> list[float]:
        return [float(v) for v in answer[self.answer_key]]

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            if self.group:
                os.killpg(self.process.pid, signal.SIGTERM)
            else:
                os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                if self.group:
                    os.killpg(self.process.pid, signal.SIGKILL)
                else:
                    os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)


def wait_healthy(process: subprocess.Popen, port: int, path: str, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server on port {port} did not become healthy:\n{log.read_text()[-3000:]}")


def start_collabops(base: Path, model, contract, frame, log_dir: Path | None) -> Server:
    keys = base / "keys"
    private = base / "private" / "university.key"
    generate_key_pair(private, keys / "university.pub", "university")
    bundle, _ = write_model_bundle(
        model, contract, {"bench": {}}, profile(frame, contract), frame.head(100), "# bench\n",
        Producer(partner="university"), load_signer("university", private), base / "exchange",
        extra={"model": {"version": "bench"}})
    port = free_port()
    log = base / "collabops.log"
    command = [sys.executable, "-m", "collabops.serving", "--bundle", str(bundle), "--keys-dir", str(keys),
               "--port", str(port)]
    if log_dir is not None:
        command += ["--log-dir", str(log_dir)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = Server("collabops", process, port, "/predict", "records", "predictions", group=False)
    try:
        wait_healthy(process, port, "/health", log)
    except Exception:
        server.stop()
        raise
    return server


def start_mlflow(base: Path, model, X) -> Server:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    path = base / "mlflow-model"
    mlflow.sklearn.save_model(model, str(path), serialization_format="skops", skops_trusted_types=TRUSTED_TYPES,
                              signature=infer_signature(X, model.predict(X)))
    port = free_port()
    log = base / "mlflow.log"
    binary = str(Path(sys.executable).with_name("mlflow"))
    # mlflow execs ``uvicorn`` from PATH: put this interpreter's bin directory first. The model holds
    # collabops.features.CalendarFeatures, so the repository must be importable in MLflow's server too.
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"file://{base / 'mlruns'}",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)}
    with open(log, "wb") as out:
        process = subprocess.Popen([binary, "models", "serve", "-m", str(path), "--env-manager", "local",
                                    "-p", str(port), "-h", "127.0.0.1"], cwd=base, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Server("mlflow serve", process, port, "/invocations", "dataframe_records", "predictions", group=True)
    try:
        wait_healthy(process, port, "/ping", log)
    except Exception:
        server.stop()
        raise
    return server


# ----------------------------------------------------------------------------- client

def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def sequential(server: Server, bodies: list[bytes], count: int) -> tuple[np.ndarray, int]:
    """Latencies in ms of ``count`` sequential requests on one keep-alive connection, and failures."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    times, failed = [], 0
    for i in range(count):
        body = bodies[i % len(bodies)]
        started = time.perf_counter()
        try:
            status, _ = post(conn, server.path, body)
        except (OSError, http.client.HTTPException):
            status = -1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        failed += status != 200
    conn.close()
    return np.array(times), failed


def throughput(server: Server, bodies: list[bytes], clients: int, seconds: float) -> tuple[int, int, np.ndarray]:
    """Requests completed (200) and failed by ``clients`` keep-alive clients in ``seconds``, with latencies."""
    stop_at = time.perf_counter() + seconds
    ok, failed, latencies = [0] * clients, [0] * clients, [[] for _ in range(clients)]
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        barrier.wait()
        i = index
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                status, _ = post(conn, server.path, bodies[i % len(bodies)])
            except (OSError, http.client.HTTPException):
                status = -1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            latencies[index].append((time.perf_counter() - started) * 1000)
            if status == 200:
                ok[index] += 1
            else:
                failed[index] += 1
            i += clients
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(ok), sum(failed), np.concatenate([np.array(x) for x in latencies]) if any(latencies) else np.array([])


def in_process_breakdown(model, contract, records: list[dict], repeats: int = 200) -> dict[str, float]:
    """Median ms per single-row request spent in collabops' parse+validate and predict, without HTTP."""
    import pandas as pd

    from collabops.serving import PredictionService

    service = PredictionService(model, contract, "bench", "bench", {})
    body = json.dumps({"records": [records[0]]}).encode()
    frame = pd.DataFrame.from_records([records[0]], columns=contract.feature_columns)
    timings: dict[str, list[float]] = {"json.loads": [], "parse + contract validation": [],
                                       "service.predict (model + log frame)": [], "model.predict alone": []}
    valid, _ = service.parse(body)
    for _ in range(repeats):
        for name, call in (("json.loads", lambda: json.loads(body)),
                           ("parse + contract validation", lambda: service.parse(body)),
                           ("service.predict (model + log frame)", lambda: service.predict(valid)),
                           ("model.predict alone", lambda: model.predict(valid))):
            started = time.perf_counter()
            call()
            timings[name].append((time.perf_counter() - started) * 1000)
    del frame
    return {name: float(np.median(values)) for name, values in timings.items()}


# ----------------------------------------------------------------------------- report

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
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu})\n"
            f"python {platform.python_version()}, scikit-learn {sklearn.__version__}, mlflow {mlflow.__version__}, "
            f"uvicorn {uvicorn.__version__}, starlette {starlette.__version__}\n"
            f"load average before: {', '.join(f'{x:.2f}' for x in load)}; "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
            f"MLFLOW_MODELS_WORKERS={os.environ.get('MLFLOW_MODELS_WORKERS', 'unset')}")


def print_table(rows: list[tuple[str, float, float, str]]) -> None:
    print()
    print("| metric | collabops | mlflow serve | ratio (collabops / mlflow) |")
    print("|---|---|---|---|")
    for name, a, b, fmt in rows:
        ratio = a / b if b else float("nan")
        print(f"| {name} | {a:{fmt}} | {b:{fmt}} | {ratio:.2f}x |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="throughput phase length per server")
    parser.add_argument("--requests", type=int, default=500, help="sequential single-row requests per server")
    parser.add_argument("--big-requests", type=int, default=30, help="sequential 1,000-row requests per server")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients in the throughput phase")
    parser.add_argument("--with-log", action="store_true", help="run collabops with its inference log on")
    args = parser.parse_args(argv)
    # SIGTERM (e.g. from `timeout`) must still run the finally blocks that stop both servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(machine_info())
    contract = load_contract(ROOT / "configs" / "contract.yaml")
    started = time.perf_counter()
    frame = generate(GeneratorSettings(months=3, car_parks=20))
    features = contract.feature_columns
    X = frame[features]
    model = build_model(contract, get_task("regression").make_estimator(PARAMS))
    model.fit(X, frame[contract.target])
    print(f"model fitted on {len(frame):,} rows in {time.perf_counter() - started:.1f} s")

    # The same request rows for both servers; timestamps as ISO strings.
    rng = np.random.default_rng(0)
    records = json.loads(X.to_json(orient="records", date_format="iso"))
    single_rows = [[records[i]] for i in rng.choice(len(records), size=256, replace=False)]
    big_rows = [[records[i] for i in rng.choice(len(records), size=1000, replace=False)] for _ in range(4)]

    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="collabops-serving-bench-") as tmp:
        base = Path(tmp)
        try:
            started = time.perf_counter()
            servers.append(start_collabops(base, model, contract, frame,
                                           base / "inference-log" if args.with_log else None))
            servers.append(start_mlflow(base, model, X))
            command = [line for line in (base / "mlflow.log").read_text().splitlines() if "Running command" in line]
            print(f"mlflow: {command[0].split('INFO ', 1)[-1] if command else '?'}")
            print(f"both servers up in {time.perf_counter() - started:.1f} s "
                  f"(collabops pid {servers[0].process.pid}, mlflow pid {servers[1].process.pid})")

            # Same predictions from both before any timing.
            check = [records[i] for i in range(0, 400, 37)]
            expected = model.predict(X.iloc[list(range(0, 400, 37))])
            answers = {}
            for server in servers:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                status, text = post(conn, server.path, server.body(check))
                conn.close()
                if status != 200:
                    raise RuntimeError(f"{server.name} answered {status}: {text[:500]!r}")
                answers[server.name] = np.array(server.predictions(json.loads(text)))
            difference = float(np.max(np.abs(answers["collabops"] - answers["mlflow serve"])))
            if difference > 1e-6:
                raise RuntimeError(f"the servers disagree by up to {difference}: {answers}")
            print(f"predictions agree on {len(check)} rows (max |diff| {difference:.2e}, "
                  f"max |diff| to in-process model {float(np.max(np.abs(answers['collabops'] - expected))):.2e})")

            results: dict[str, dict[str, float]] = {}
            for server in servers:
                single = [server.body(r) for r in single_rows]
                big = [server.body(r) for r in big_rows]
                sequential(server, single, 30)  # warm-up, not counted
                sequential(server, big, 2)
                lat, failed_single = sequential(server, single, args.requests)
                ok, failed_tp, tp_lat = throughput(server, single, args.clients, args.seconds)
                big_lat, failed_big = sequential(server, big, args.big_requests)
                results[server.name] = {
                    "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                    "rps": ok / args.seconds, "ok": ok,
                    "tp_p50": float(np.percentile(tp_lat, 50)) if len(tp_lat) else float("nan"),
                    "tp_p99": float(np.percentile(tp_lat, 99)) if len(tp_lat) else float("nan"),
                    "big_p50": float(np.percentile(big_lat, 50)), "big_p99": float(np.percentile(big_lat, 99)),
                    "failed_single": failed_single, "failed_tp": failed_tp, "failed_big": failed_big,
                }
                print(f"{server.name}: done ({ok} ok / {failed_tp} failed in the throughput phase)")
        finally:
            for server in servers:
                server.stop()

    breakdown = in_process_breakdown(model, contract, records)
    c, m = results["collabops"], results["mlflow serve"]
    print_table([
        ("single-row p50 ms", c["p50"], m["p50"], ".2f"),
        ("single-row p99 ms", c["p99"], m["p99"], ".2f"),
        (f"throughput req/s, {args.clients} clients", c["rps"], m["rps"], ".1f"),
        (f"latency p50 ms under {args.clients} clients", c["tp_p50"], m["tp_p50"], ".1f"),
        (f"latency p99 ms under {args.clients} clients", c["tp_p99"], m["tp_p99"], ".1f"),
        ("1,000-row p50 ms", c["big_p50"], m["big_p50"], ".1f"),
        ("1,000-row p99 ms", c["big_p99"], m["big_p99"], ".1f"),
    ])
    print()
    print("failed requests (single-row / throughput / 1,000-row):")
    for name, r in results.items():
        print(f"  {name}: {r['failed_single']} / {r['failed_tp']} / {r['failed_big']}")
    print("\nin-process, one row, median ms (no HTTP; where collabops' time goes):")
    for name, value in breakdown.items():
        print(f"  {name}: {value:.2f}")
    print(f"\nsettings: {args.requests} single-row requests, {args.clients} clients x {args.seconds:g} s, "
          f"{args.big_requests} 1,000-row requests per server; load average after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"goals: collabops throughput >= 3x mlflow: {'met' if c['rps'] >= 3 * m['rps'] else 'NOT met'} "
          f"({c['rps'] / m['rps']:.2f}x); single-row p50 <= 0.5x mlflow: "
          f"{'met' if c['p50'] <= 0.5 * m['p50'] else 'NOT met'} ({c['p50'] / m['p50']:.2f}x)")


if __name__ == "__main__":
    main()
