"""The prediction service: a small ASGI app over a verified model bundle.

``POST /predict`` takes ``{"records": [{field: value, ...}, ...]}``, validates
the records against the contract's feature columns, and answers with the
predictions, the model version and the bundle id. Fields that are not
features (the target, personal columns, anything else) are ignored and named
in ``warnings``, so a client can send a raw row as the industry stores it.
Bad requests get 400 (malformed JSON), 413 (body or record count too large),
401 (API key, when one is configured) or 422 (the field and record named); no
input crashes the service. Served requests go to an inference log that is
flushed off the request path. ``/health``, ``/metadata`` and ``/metrics``
(Prometheus) complete it.

Speed (see ``bench/serving_latency.py``): the model runs on the compiled
inference path of :mod:`collabops.production.compiled` when the load-time check shows it
gives the pipeline's predictions (``/metadata`` and the start-up log say
``inference_path: compiled`` or ``sklearn`` and why); records the fast
validation does not accept as they are go through pandera and the pipeline
exactly as before. Each worker process uses one OpenMP thread
(``OMP_NUM_THREADS=1`` unless set by the user), since on a small machine
several workers beat threads fighting over two cores. Requests of up to
``INLINE_RECORDS`` records on the compiled path are answered on the event
loop (measured against a thread hop: sequential p50 0.57 vs 0.71 ms, the
same throughput within the noise); larger ones, and the pandera path, take
exactly one hop to a worker thread, so the loop is never blocked for long.

With ``--workers N`` (default 2) uvicorn runs N worker processes, each
loading and checking the bundle itself. Each worker keeps its own
``/metrics`` counters (a scrape sees the worker that answered it; sum over
``worker_pid`` from ``/metadata`` if you need totals) and writes its own
inference-log files, whose names carry its PID. Workers stop when the parent
process disappears, even after ``kill -9``.

Run it with ``python -m collabops.production.serving --bundle DIR --keys-dir keys --port 8000``,
or call :func:`serve` from Python.
"""

from __future__ import annotations

import os

# Before numpy or scikit-learn load OpenMP: one thread per worker process, unless the user chose.
OMP_SET_BY_USER = "OMP_NUM_THREADS" in os.environ
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import bisect  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any, Optional  # noqa: E402

from collabops.errors import DataError  # noqa: E402

if TYPE_CHECKING:  # pandas, scikit-learn and the model load in the app, not at import: see ``serve``
    import pandas as pd

    from collabops.production.compiled import CompiledModel
    from collabops.data.contract import DataContract

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PREDICTION_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
INLINE_RECORDS = 64
"""Compiled-path requests with at most this many records are answered on the event loop."""
INLINE_BODY_BYTES = 64 * 1024
"""Bodies up to this size are decoded on the event loop; larger ones go to a worker thread at once."""
WORKER_HEALTHCHECK_SECONDS = 30
"""How long uvicorn's supervisor waits for a worker's answer before it replaces the worker."""
SETTINGS_ENV = "COLLABOPS_SERVING_SETTINGS"
"""How ``serve`` hands its settings to worker processes (spawned, so they share nothing else)."""

logger = logging.getLogger("collabops.production.serving")


class RequestError(Exception):
    """A request the service refuses, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _dumps(content: Any) -> bytes:
    """JSON exactly as Starlette's JSONResponse writes it, without building a response object to get there."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


@dataclass
class Metrics:
    """Prometheus counters of one worker: requests by status, latency and prediction histograms."""

    requests: dict[int, int] = field(default_factory=dict)
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    predictions: list[int] = field(default_factory=lambda: [0] * (len(PREDICTION_BUCKETS) + 1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, status: int, seconds: float, values: Optional[Any] = None) -> None:
        slots = []
        if values is not None and len(values):
            if len(values) <= INLINE_RECORDS:
                slots = [bisect.bisect_left(PREDICTION_BUCKETS, v) for v in values]
            else:
                import numpy as np

                slots = np.searchsorted(PREDICTION_BUCKETS, values).tolist()
        with self.lock:
            self.requests[status] = self.requests.get(status, 0) + 1
            self.latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum += seconds
            for slot in slots:
                self.predictions[slot] += 1

    def render(self) -> str:
        lines = ["# TYPE collabops_requests_total counter"]
        with self.lock:
            lines += [f'collabops_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
            lines += _histogram("collabops_request_seconds", LATENCY_BUCKETS, self.latency, self.latency_sum)
            lines += _histogram("collabops_prediction", PREDICTION_BUCKETS, self.predictions, None)
        return "\n".join(lines) + "\n"


def _histogram(name: str, buckets: tuple[float, ...], counts: list[int], total: Optional[float]) -> list[str]:
    lines, running = [f"# TYPE {name} histogram"], 0
    for bound, count in zip(list(buckets) + ["+Inf"], counts):
        running += count
        lines.append(f'{name}_bucket{{le="{bound}"}} {running}')
    lines.append(f"{name}_count {running}")
    if total is not None:
        lines.append(f"{name}_sum {total:.6f}")
    return lines


@dataclass(frozen=True)
class _CompiledEntry:
    """Served rows of the compiled path, turned into a frame only when the log is flushed."""

    rows: list[tuple[Any, ...]]
    predictions: list[float]
    served_at: float


class InferenceLog:
    """Buffers served rows and writes them as Parquet files from a background thread.

    Compiled-path requests are buffered as plain rows and become a frame (the
    same columns and dtypes as the pandera path) in the flush thread, so the
    request itself does no pandas work. File names carry the process id, so
    several workers can share one directory.
    """

    def __init__(self, directory: Optional[Path], flush_seconds: float = 2.0,
                 contract: Optional[DataContract] = None, features: Optional[list[str]] = None,
                 identity: Optional[dict[str, str]] = None) -> None:
        self.directory = directory
        self.contract, self.features, self.identity = contract, features, identity or {}
        self._buffer: list[Any] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._sequence = 0
        self._thread: Optional[threading.Thread] = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, args=(flush_seconds,), daemon=True,
                                            name="inference-log")
            self._thread.start()

    def append(self, frame: pd.DataFrame) -> None:
        if self.directory is not None:
            with self._lock:
                self._buffer.append(frame)

    def append_rows(self, rows: list[tuple[Any, ...]], predictions: list[float]) -> None:
        if self.directory is not None:
            entry = _CompiledEntry(rows, predictions, time.time())
            with self._lock:
                self._buffer.append(entry)

    def flush(self) -> None:
        import pandas as pd

        with self._write_lock:
            with self._lock:
                pending, self._buffer = self._buffer, []
            if not pending or self.directory is None:
                return
            self._sequence += 1
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
            final = self.directory / f"inference-{stamp}-{os.getpid()}-{self._sequence:06d}.parquet"
            partial = final.with_name(f".{final.name}.partial")
            pd.concat(self._frames(pending), ignore_index=True).to_parquet(partial, index=False)
            partial.replace(final)

    def _frames(self, pending: list[Any]) -> list[pd.DataFrame]:
        """The buffer as frames, consecutive compiled-path entries joined into one."""
        frames: list[pd.DataFrame] = []
        run: list[_CompiledEntry] = []
        for entry in pending + [None]:
            if isinstance(entry, _CompiledEntry):
                run.append(entry)
                continue
            if run:
                frames.append(self._compiled_frame(run))
                run = []
            if entry is not None:
                frames.append(entry)
        return frames

    def _compiled_frame(self, entries: list[_CompiledEntry]) -> pd.DataFrame:
        import pandas as pd

        from collabops.production.compiled import frame_from_rows

        assert self.contract is not None and self.features is not None
        rows = [row for entry in entries for row in entry.rows]
        frame = frame_from_rows(rows, self.contract, self.features)
        served = [entry.served_at for entry in entries for _ in entry.rows]
        return frame.assign(prediction=[p for entry in entries for p in entry.predictions],
                            model_version=self.identity.get("model_version"),
                            bundle_id=self.identity.get("bundle_id"),
                            served_at=pd.to_datetime(served, unit="s", utc=True).as_unit("ns"))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self, flush_seconds: float) -> None:
        while not self._stop.wait(flush_seconds):
            try:
                self.flush()
            except Exception:  # keep logging later requests; say what went wrong
                logger.exception("inference log: flush failed")


@dataclass
class Parsed:
    """A decoded request: either rows for the compiled path or a pandera-validated frame."""

    records: list[dict[str, Any]]
    rows: Optional[list[tuple[Any, ...]]] = None
    frame: Optional[pd.DataFrame] = None
    warnings: list[str] = field(default_factory=list)


class PredictionService:
    """The model, its contract and identity, and the request handling that does not depend on HTTP."""

    def __init__(self, model: Any, contract: DataContract, model_version: str, bundle_id: str,
                 producer: dict[str, Any], max_records: int = 10_000, log_dir: Optional[Path] = None,
                 reference: Optional[pd.DataFrame] = None, compile_model: bool = True, workers: int = 1) -> None:
        self.model, self.contract = model, contract
        self.model_version, self.bundle_id, self.producer = model_version, bundle_id, producer
        self.max_records = max_records
        self.features = contract.feature_columns
        self._feature_set = frozenset(self.features)
        self.workers = workers
        self.started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.metrics = Metrics()
        from collabops.production.compiled import load_compiled

        self.compiled: Optional[CompiledModel] = None
        if compile_model:
            self.compiled, self.inference_note = load_compiled(model, contract, self.features, reference)
        else:
            self.inference_note = "sklearn (compiled path switched off)"
        self.inference_path = "compiled" if self.compiled is not None else "sklearn"
        self.log = InferenceLog(log_dir, contract=contract, features=self.features,
                                identity={"model_version": model_version, "bundle_id": bundle_id})

    def metadata(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "bundle_id": self.bundle_id, "producer": self.producer,
                "contract": self.contract.name, "contract_digest": self.contract.digest(),
                "features": {name: self.contract.column(name).type for name in self.features},
                "started_at": self.started_at, "inference_path": self.inference_path,
                "inference_check": self.inference_note, "workers": self.workers, "worker_pid": os.getpid()}

    # -- decoding and validation

    def records_of(self, body: bytes) -> list[dict[str, Any]]:
        """The request's records, or the 400/413/422 that refuses the body."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"malformed JSON: {exc}") from None
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            raise RequestError(422, "body must be {\"records\": [{field: value, ...}, ...]} with at least one record")
        if len(records) > self.max_records:
            raise RequestError(413, f"{len(records)} records in one request; the limit is {self.max_records}")
        return records

    def fast_rows(self, records: list[dict[str, Any]]) -> Optional[list[tuple[Any, ...]]]:
        """Rows for the compiled path, or None: then the pandera path decides, exactly as before."""
        from collabops.production.compiled import RecordRejected

        if self.compiled is None:
            return None
        try:
            return self.compiled.validator.rows(records)
        except RecordRejected:
            return None

    def warnings_for(self, records: list[dict[str, Any]]) -> list[str]:
        wanted, known = len(self.features), self._feature_set
        if all(len(r) == wanted for r in records):  # every feature present (checked before): nothing else
            return []
        extra = sorted({k for r in records for k in r} - known)
        return [f"ignored field(s) that are not model features: {', '.join(extra)}"] if extra else []

    def validate_frame(self, records: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
        """The pandera path: missing fields, ignored fields, then the contract's checks and coercions."""
        import pandas as pd

        for i, record in enumerate(records):
            missing = [f for f in self.features if f not in record]
            if missing:
                raise RequestError(422, f"record {i}: missing field(s) {', '.join(missing)}")
        warnings = self.warnings_for(records)
        frame = pd.DataFrame.from_records(records, columns=self.features)
        try:
            valid = self.contract.validate(frame, source="request", columns=self.features)
        except DataError as exc:
            raise RequestError(422, str(exc).replace("request: ", "", 1).replace("row ", "record ")) from None
        return valid, warnings

    def parse(self, body: bytes) -> Parsed:
        """Records -> rows for the compiled path or a validated feature frame, plus warnings about ignored fields."""
        return self.parse_records(self.records_of(body))

    def parse_records(self, records: list[dict[str, Any]]) -> Parsed:
        rows = self.fast_rows(records)
        if rows is not None:
            return Parsed(records, rows=rows, warnings=self.warnings_for(records))
        frame, warnings = self.validate_frame(records)
        return Parsed(records, frame=frame, warnings=warnings)

    # -- prediction

    def predict(self, parsed: Parsed) -> list[float]:
        if parsed.rows is not None:
            assert self.compiled is not None
            values = self.compiled.pipeline.predict(parsed.rows).tolist()
            self.log.append_rows(parsed.rows, values)
            return [float(v) for v in values]
        import pandas as pd

        assert parsed.frame is not None
        values = self.model.predict(parsed.frame)
        logged = parsed.frame.assign(prediction=values, model_version=self.model_version, bundle_id=self.bundle_id,
                                     served_at=pd.Timestamp.now(tz="UTC"))
        self.log.append(logged)
        return [float(v) for v in values]

    def answer(self, body: bytes) -> tuple[list[float], list[str]]:
        """Everything for one request body: what a worker thread runs for a large request."""
        parsed = self.parse(body)
        return self.predict(parsed), parsed.warnings

    def answer_records(self, records: list[dict[str, Any]]) -> tuple[list[float], list[str]]:
        parsed = self.parse_records(records)
        return self.predict(parsed), parsed.warnings


def _limit_openmp_here() -> None:
    """One OpenMP thread for predictions made on this thread, even if OpenMP was loaded before we set the variable.

    libgomp keeps the thread count per thread, so this runs on the event-loop
    thread and on each prediction thread; it does nothing if the user set
    ``OMP_NUM_THREADS``.
    """
    if OMP_SET_BY_USER:
        return
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="openmp")
    except Exception:  # threadpoolctl is scikit-learn's dependency; without it the environment variable must do
        logger.debug("could not limit OpenMP threads with threadpoolctl", exc_info=True)


def _stop_when_orphaned(parent_pid: int, interval: float = 1.0) -> None:
    """A worker whose parent died (even by SIGKILL) shuts down gracefully instead of serving on unsupervised."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            logger.warning("worker %d: parent %d is gone; shutting down", os.getpid(), parent_pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def create_app(service: PredictionService, max_body_bytes: int = 4 * 1024 * 1024,
               api_key: Optional[str] = None, supervisor_pid: Optional[int] = None) -> Any:
    """The ASGI app (Starlette) serving ``service``; ``supervisor_pid``: stop when that parent process is gone."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="predict", initializer=_limit_openmp_here)

    def refuse(status: int, message: str, started: float) -> JSONResponse:
        service.metrics.observe(status, time.perf_counter() - started)
        return JSONResponse({"error": message}, status_code=status)

    async def in_thread(function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)

    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        if api_key is not None and request.headers.get("x-api-key") != api_key:
            return refuse(401, "missing or wrong API key (header X-API-Key)", started)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return refuse(413, f"body of {declared} bytes; the limit is {max_body_bytes}", started)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                return refuse(413, f"body larger than the limit; the limit is {max_body_bytes} bytes", started)
        try:
            if len(body) > INLINE_BODY_BYTES:
                values, warnings = await in_thread(service.answer, body)
            else:
                records = service.records_of(body)
                rows = service.fast_rows(records) if len(records) <= INLINE_RECORDS else None
                if rows is None:  # large, or for the pandera path: one hop to a thread
                    values, warnings = await in_thread(service.answer_records, records)
                else:  # small, on the compiled path: cheaper here than a thread hop (measured)
                    parsed = Parsed(records, rows=rows, warnings=service.warnings_for(records))
                    values, warnings = service.predict(parsed), parsed.warnings
        except RequestError as exc:
            return refuse(exc.status, str(exc), started)
        except Exception as exc:  # never crash on input: report, count, go on
            return refuse(500, f"prediction failed: {type(exc).__name__}: {exc}", started)
        answer: dict[str, Any] = {"predictions": values, "model_version": service.model_version,
                                  "bundle_id": service.bundle_id}
        if warnings:
            answer["warnings"] = warnings
        content = _dumps(answer)
        service.metrics.observe(200, time.perf_counter() - started, values)
        return Response(content, media_type="application/json")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model_version": service.model_version})

    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse(service.metadata())

    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    routes = [Route("/predict", predict, methods=["POST"]), Route("/health", health),
              Route("/metadata", metadata), Route("/metrics", metrics)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        _limit_openmp_here()  # the event-loop thread answers small requests itself
        if supervisor_pid is not None:
            threading.Thread(target=_stop_when_orphaned, args=(supervisor_pid,), daemon=True,
                             name="orphan-watch").start()
        yield
        executor.shutdown(wait=True)
        service.log.close()  # flush what is still buffered

    return Starlette(routes=routes, lifespan=lifespan)


def _reference_sample(root: Path) -> Optional[pd.DataFrame]:
    import pandas as pd

    from collabops.exchange.model_bundle import SAMPLE_FILE

    path = root / SAMPLE_FILE
    return pd.read_parquet(path) if path.is_file() else None


def service_from_bundle(bundle_dir: Path, keys_dir: Path, log_dir: Optional[Path] = None,
                        model_version: Optional[str] = None, workers: int = 1) -> PredictionService:
    """Verify the bundle again (it may have changed on disk), then load its model with trusted types only."""
    from collabops.exchange.bundle import verify
    from collabops.exchange.model_bundle import load_model
    from collabops.exchange.signing import trusted_keys

    verified = verify(bundle_dir, trusted_keys(keys_dir), kind="model")
    model_info = verified.manifest.get("model", {})
    service = PredictionService(load_model(verified), verified.contract(),
                                model_version or str(model_info.get("version", "unknown")), verified.bundle_id,
                                verified.manifest.get("producer", {}), log_dir=log_dir,
                                reference=_reference_sample(verified.root), workers=workers)
    logger.info("worker %d: bundle %s, model version %s, inference path %s", os.getpid(), service.bundle_id,
                service.model_version, service.inference_note)
    return service


def _setup_logging() -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s collabops.production.serving %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def app_from_environment() -> Any:
    """uvicorn's app factory in each worker process; the settings come from ``serve`` through the environment."""
    _setup_logging()
    settings = json.loads(os.environ[SETTINGS_ENV])
    path = lambda key: Path(settings[key]) if settings.get(key) else None  # noqa: E731
    service = service_from_bundle(Path(settings["bundle_dir"]), Path(settings["keys_dir"]), path("log_dir"),
                                  settings.get("model_version"), workers=int(settings["workers"]))
    api_key_env = settings.get("api_key_env")
    api_key = os.environ.get(api_key_env) if api_key_env else None
    return create_app(service, int(settings["max_body_bytes"]), api_key, supervisor_pid=int(settings["parent_pid"]))


def serve(bundle_dir: Path, keys_dir: Path, host: str, port: int, log_dir: Optional[Path],
          model_version: Optional[str], max_body_bytes: int, api_key_env: Optional[str], workers: int) -> None:
    """Serve the bundle until stopped (SIGTERM or SIGINT); call it from the process's main thread.

    With one worker the app runs in this process. With more, this process
    verifies the bundle and loads the model once (so a bad bundle fails here,
    with its error and a non-zero exit, instead of in every worker), then
    uvicorn supervises ``workers`` spawned processes that each load it again.
    """
    import uvicorn

    _setup_logging()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if api_key_env and os.environ.get(api_key_env) is None:
        logger.warning("environment variable %s is not set: serving WITHOUT an API key", api_key_env)
    options = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    if workers == 1:
        api_key = os.environ.get(api_key_env) if api_key_env else None
        service = service_from_bundle(bundle_dir, keys_dir, log_dir, model_version)
        logger.info("serving on http://%s:%d with 1 worker (pid %d)", host, port, os.getpid())
        uvicorn.run(create_app(service, max_body_bytes, api_key), **options)
        return
    from collabops.exchange.bundle import verify
    from collabops.exchange.model_bundle import load_model
    from collabops.exchange.signing import trusted_keys

    load_model(verify(bundle_dir, trusted_keys(keys_dir), kind="model"))  # fail fast, once, with the real error
    os.environ[SETTINGS_ENV] = json.dumps({
        "bundle_dir": str(Path(bundle_dir).resolve()), "keys_dir": str(Path(keys_dir).resolve()),
        "log_dir": str(Path(log_dir).resolve()) if log_dir else None, "model_version": model_version,
        "max_body_bytes": max_body_bytes, "api_key_env": api_key_env, "workers": workers,
        "parent_pid": os.getpid()})
    logger.info("serving on http://%s:%d with %d workers (parent pid %d)", host, port, workers, os.getpid())
    import inspect

    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.run).parameters:
        # uvicorn replaces a worker that does not answer its supervisor's ping in time (5 s by default); a worker
        # loading and checking the model on a busy 2-core machine can take longer than that.
        options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_SECONDS
    uvicorn.run("collabops.production.serving:app_from_environment", factory=True, workers=workers, **options)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a verified model bundle over HTTP.")
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--keys-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-dir", type=Path)
    parser.add_argument("--model-version")
    parser.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--api-key-env", help="environment variable holding the API key (none: no key)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes (default 2; about one per core, each with one OpenMP thread)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, not {args.workers}")
    serve(args.bundle, args.keys_dir, args.host, args.port, args.log_dir, args.model_version, args.max_body_bytes,
          args.api_key_env, args.workers)


if __name__ == "__main__":
    main()
