"""The service's processes: :func:`serve` runs it until stopped; :func:`main` is ``python -m ...serving``.

With ``serving.workers`` 1 the app runs in the calling process. With more,
the calling process verifies the bundle and loads the model once (a bad
bundle fails there, with its error and a non-zero exit), then uvicorn
supervises that many spawned worker processes. Each worker imports
:func:`app_from_environment`, reads the one :class:`ServiceConfig` that
``serve`` serialised into ``COLLABOPS_SERVING_CONFIG``, and loads and checks
the bundle itself; all of them count their metrics into one fresh
``PROMETHEUS_MULTIPROC_DIR`` (removed when ``serve`` returns, or by the next
``serve`` if this one was killed) and write
inference-log files named with their PID. Workers stop when the parent
process disappears, even after ``kill -9``.

Each process uses one OpenMP thread (``OMP_NUM_THREADS=1`` unless the user
set it): on a small machine several workers beat threads fighting over two
cores. The variable is set here, at process entry, so that OpenMP reads it
when it loads in the workers; threads of a process where it was loaded
before follow it through threadpoolctl (``runtime.limit_openmp_here``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

from pydantic import ValidationError
from starlette.applications import Starlette

from collabops.production.serving.app import create_app
from collabops.production.serving.config import ServiceConfig
from collabops.production.serving.runtime import load_verified_model, service_from_bundle
from collabops.settings import ServingSettings, describe_validation_error

CONFIG_ENV = "COLLABOPS_SERVING_CONFIG"
"""How ``serve`` hands its :class:`ServiceConfig` (JSON) to worker processes (spawned, so they share nothing else)."""
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_HEALTHCHECK_SECONDS = 30
"""How long uvicorn's supervisor waits for a worker's answer before it replaces the worker (its default, 5 s, is
shorter than loading and checking the model can take on a busy 2-core machine)."""
ORPHAN_CHECK_SECONDS = 1.0
METRICS_DIR_PREFIX = "collabops-metrics-"
"""Metrics folders are ``<tempdir>/collabops-metrics-<parent pid>-<random>``."""

logger = logging.getLogger("collabops.production.serving")


def one_openmp_thread() -> None:
    """``OMP_NUM_THREADS=1`` for this process and the workers it starts, unless the user set the variable."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def build_app(config: ServiceConfig) -> Starlette:
    """One worker's app: the bundle verified and loaded, the API key read, the parent watched if there is one."""
    service = service_from_bundle(config)
    on_start = [partial(_watch_parent, config.parent_pid)] if config.parent_pid is not None else []
    return create_app(service, config.api_key(), on_start=on_start)


def app_from_environment() -> Starlette:
    """uvicorn's app factory in each worker process: the config comes from ``serve`` through the environment."""
    _setup_logging()
    one_openmp_thread()
    return build_app(ServiceConfig.model_validate_json(os.environ[CONFIG_ENV]))


def serve(config: ServiceConfig) -> None:
    """Serve the bundle until stopped (SIGTERM or SIGINT); call it from the process's main thread.

    Raises the exchange layer's error when the bundle fails verification, and
    ``OSError`` when the port is taken (then uvicorn exits the process).
    """
    import uvicorn

    _setup_logging()
    one_openmp_thread()
    serving = config.serving
    if config.api_key_env and config.api_key() is None:
        logger.warning("environment variable %s is not set: serving WITHOUT an API key", config.api_key_env)
    options = {"host": serving.host, "port": serving.port, "log_level": "warning", "access_log": False}
    if serving.workers == 1:
        app = build_app(config)
        logger.info("serving on http://%s:%d with 1 worker (pid %d)", serving.host, serving.port, os.getpid())
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    load_verified_model(config)  # fail fast, once, with the real error
    worker_config = config.resolved().model_copy(update={"parent_pid": os.getpid()})
    _remove_stale_metrics_dirs()
    metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
    before = {name: os.environ.get(name) for name in (CONFIG_ENV, METRICS_ENV)}
    os.environ[CONFIG_ENV] = worker_config.model_dump_json()
    os.environ[METRICS_ENV] = metrics_dir
    logger.info("serving on http://%s:%d with %d workers (parent pid %d)", serving.host, serving.port,
                serving.workers, os.getpid())
    try:
        uvicorn.run("collabops.production.serving.process:app_from_environment", factory=True,
                    workers=serving.workers, timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
                    **options)  # type: ignore[arg-type]
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(metrics_dir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> ServiceConfig:
    """The command line as one :class:`ServiceConfig`; serving options left out keep ServingSettings' defaults."""
    defaults = ServingSettings()
    parser = argparse.ArgumentParser(prog="python -m collabops.production.serving",
                                     description="Serve a verified model bundle over HTTP.")
    parser.add_argument("--bundle", type=Path, required=True, help="the model bundle folder")
    parser.add_argument("--keys-dir", type=Path, required=True, help="folder of the trusted public keys")
    parser.add_argument("--log-dir", type=Path, help="inference-log folder (none: no inference log)")
    parser.add_argument("--model-version", help="version the answers carry (default: the bundle's)")
    parser.add_argument("--api-key-env", help="environment variable holding the API key (none: no key)")
    for option, kind, text in (
            ("--host", str, "address to listen on"),
            ("--port", int, "TCP port"),
            ("--workers", int, "worker processes, about one per core, each with one OpenMP thread"),
            ("--max-body-bytes", int, "larger request bodies get HTTP 413"),
            ("--max-records", int, "more records in one request get HTTP 413"),
            ("--log-flush-seconds", float, "how often the inference log writes what it buffered")):
        name = option[2:].replace("-", "_")
        parser.add_argument(option, dest=name, type=kind, help=f"{text} (default {getattr(defaults, name)})")
    args = vars(parser.parse_args(argv))
    chosen = {name: args.pop(name) for name in list(args) if name in ServingSettings.model_fields}
    try:
        serving = ServingSettings(**{name: value for name, value in chosen.items() if value is not None})
    except ValidationError as exc:
        parser.error(describe_validation_error(exc, "command line"))
    return ServiceConfig(bundle_dir=args["bundle"], keys_dir=args["keys_dir"], log_dir=args["log_dir"],
                         model_version=args["model_version"], api_key_env=args["api_key_env"], serving=serving)


def main(argv: list[str] | None = None) -> None:
    """``python -m collabops.production.serving --bundle DIR --keys-dir DIR [--port N] [--workers N] ...``."""
    serve(parse_args(argv))


def _watch_parent(parent_pid: int) -> None:
    """Start a thread that shuts this worker down gracefully (SIGTERM to itself) once ``parent_pid`` is gone."""

    def watch() -> None:
        while True:
            time.sleep(ORPHAN_CHECK_SECONDS)
            if os.getppid() != parent_pid:
                logger.warning("worker %d: parent %d is gone; shutting down", os.getpid(), parent_pid)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()


def _remove_stale_metrics_dirs() -> None:
    """Remove the metrics folders of services whose parent process is gone (killed before it could remove them)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{METRICS_DIR_PREFIX}*-*"):
        pid = folder.name[len(METRICS_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _setup_logging() -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s collabops.production.serving %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
