"""The prediction service: a small ASGI app over a verified model bundle.

``POST /predict`` takes ``{"records": [{field: value, ...}, ...]}``, validates
the records against the contract's feature columns, and answers with the
predictions, the model version and the bundle id. Fields that are not
features (the target, personal columns, anything else) are ignored and named
in ``warnings``, so a client can send a raw row as the industry stores it.
Bad requests get 400 (malformed JSON), 413 (body too large) or 422 (the field
named); no input crashes the service. Predictions run in a worker thread, so
a large request never blocks the event loop; served requests go to an
inference log that is flushed off the request path.

Run it with ``python -m collabops.serving --bundle DIR --keys-dir keys --port 8000``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from collabops.contract import DataContract
from collabops.errors import DataError

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PREDICTION_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class RequestError(Exception):
    """A request the service refuses, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Metrics:
    """Prometheus counters: requests by status, latency and prediction histograms."""

    requests: dict[int, int] = field(default_factory=dict)
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    predictions: list[int] = field(default_factory=lambda: [0] * (len(PREDICTION_BUCKETS) + 1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, status: int, seconds: float, values: Optional[Any] = None) -> None:
        import numpy as np

        with self.lock:
            self.requests[status] = self.requests.get(status, 0) + 1
            self.latency[int(np.searchsorted(LATENCY_BUCKETS, seconds))] += 1
            self.latency_sum += seconds
            if values is not None and len(values):
                counts = np.bincount(np.searchsorted(PREDICTION_BUCKETS, values), minlength=len(self.predictions))
                self.predictions = [a + int(b) for a, b in zip(self.predictions, counts)]

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


class InferenceLog:
    """Buffers served rows and writes them as Parquet files from a background thread."""

    def __init__(self, directory: Optional[Path], flush_seconds: float = 2.0) -> None:
        self.directory = directory
        self._buffer: list[pd.DataFrame] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sequence = 0
        self._thread: Optional[threading.Thread] = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, args=(flush_seconds,), daemon=True)
            self._thread.start()

    def append(self, frame: pd.DataFrame) -> None:
        if self.directory is not None:
            with self._lock:
                self._buffer.append(frame)

    def flush(self) -> None:
        with self._lock:
            pending, self._buffer = self._buffer, []
        if not pending or self.directory is None:
            return
        self._sequence += 1
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        final = self.directory / f"inference-{stamp}-{self._sequence:06d}.parquet"
        partial = final.with_name(f".{final.name}.partial")
        pd.concat(pending, ignore_index=True).to_parquet(partial, index=False)
        partial.replace(final)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self, flush_seconds: float) -> None:
        while not self._stop.wait(flush_seconds):
            self.flush()


class PredictionService:
    """The model, its contract and identity, and the request handling that does not depend on HTTP."""

    def __init__(self, model: Any, contract: DataContract, model_version: str, bundle_id: str,
                 producer: dict[str, Any], max_records: int = 10_000, log_dir: Optional[Path] = None) -> None:
        self.model, self.contract = model, contract
        self.model_version, self.bundle_id, self.producer = model_version, bundle_id, producer
        self.max_records = max_records
        self.features = contract.feature_columns
        self.started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.metrics = Metrics()
        self.log = InferenceLog(log_dir)

    def metadata(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "bundle_id": self.bundle_id, "producer": self.producer,
                "contract": self.contract.name, "contract_digest": self.contract.digest(),
                "features": {name: self.contract.column(name).type for name in self.features},
                "started_at": self.started_at}

    def parse(self, body: bytes) -> tuple[pd.DataFrame, list[str]]:
        """Records -> a validated feature frame, plus warnings about ignored fields."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"malformed JSON: {exc}") from None
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            raise RequestError(422, "body must be {\"records\": [{field: value, ...}, ...]} with at least one record")
        if len(records) > self.max_records:
            raise RequestError(413, f"{len(records)} records in one request; the limit is {self.max_records}")
        for i, record in enumerate(records):
            missing = [f for f in self.features if f not in record]
            if missing:
                raise RequestError(422, f"record {i}: missing field(s) {', '.join(missing)}")
        extra = sorted({k for r in records for k in r} - set(self.features))
        warnings = [f"ignored field(s) that are not model features: {', '.join(extra)}"] if extra else []
        frame = pd.DataFrame.from_records(records, columns=self.features)
        try:
            valid = self.contract.validate(frame, source="request", columns=self.features)
        except DataError as exc:
            raise RequestError(422, str(exc).replace("request: ", "", 1).replace("row ", "record ")) from None
        return valid, warnings

    def predict(self, frame: pd.DataFrame) -> list[float]:
        values = self.model.predict(frame)
        logged = frame.assign(prediction=values, model_version=self.model_version, bundle_id=self.bundle_id,
                              served_at=pd.Timestamp.now(tz="UTC"))
        self.log.append(logged)
        return [float(v) for v in values]


def create_app(service: PredictionService, max_body_bytes: int = 4 * 1024 * 1024,
               api_key: Optional[str] = None) -> Any:
    """The ASGI app (Starlette) serving ``service``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    def refuse(status: int, message: str, started: float) -> JSONResponse:
        service.metrics.observe(status, time.perf_counter() - started)
        return JSONResponse({"error": message}, status_code=status)

    async def predict(request: Request) -> JSONResponse:
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
            frame, warnings = await run_in_threadpool(service.parse, body)
            values = await run_in_threadpool(service.predict, frame)
        except RequestError as exc:
            return refuse(exc.status, str(exc), started)
        except Exception as exc:  # never crash on input: report, count, go on
            return refuse(500, f"prediction failed: {type(exc).__name__}: {exc}", started)
        service.metrics.observe(200, time.perf_counter() - started, values)
        answer: dict[str, Any] = {"predictions": values, "model_version": service.model_version,
                                  "bundle_id": service.bundle_id}
        if warnings:
            answer["warnings"] = warnings
        return JSONResponse(answer)

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
        yield
        service.log.close()  # flush what is still buffered

    return Starlette(routes=routes, lifespan=lifespan)


def service_from_bundle(bundle_dir: Path, keys_dir: Path, log_dir: Optional[Path] = None,
                        model_version: Optional[str] = None) -> PredictionService:
    """Verify the bundle again (it may have changed on disk), then load its model with trusted types only."""
    from collabops.bundle import verify
    from collabops.model_bundle import load_model
    from collabops.signing import trusted_keys

    verified = verify(bundle_dir, trusted_keys(keys_dir), kind="model")
    model_info = verified.manifest.get("model", {})
    return PredictionService(load_model(verified), verified.contract(),
                             model_version or str(model_info.get("version", "unknown")), verified.bundle_id,
                             verified.manifest.get("producer", {}), log_dir=log_dir)


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
    args = parser.parse_args(argv)
    import os

    import uvicorn

    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    service = service_from_bundle(args.bundle, args.keys_dir, args.log_dir, args.model_version)
    uvicorn.run(create_app(service, args.max_body_bytes, api_key), host=args.host, port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
