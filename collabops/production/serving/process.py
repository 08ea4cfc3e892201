"""The service's processes: :func:`serve` runs it until stopped; :func:`main` is ``python -m ...serving``.

With ``serving.workers`` 1 the app runs in the calling process. With more,
a short-lived spawned child verifies the bundle and loads the model once
(:func:`check_in_child`: a bad bundle fails ``serve`` with the child's error,
same type and message, and a non-zero exit), so the calling process never
loads scikit-learn, pandas or the model and stays a small supervisor; then
uvicorn supervises that many spawned worker processes. Each worker imports
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

:func:`exec_serve` replaces the calling process with a fresh
``python -m collabops.production.serving`` serving the same config (passed
whole as JSON, same PID, same open stdout/stderr): the ZenML daemon uses it so
that the long-lived supervisor carries neither ZenML nor the model.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from starlette.applications import Starlette

from collabops.errors import CollabopsError
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
    :class:`PortInUse` when the port is taken, both before any worker starts.
    """
    import uvicorn

    _setup_logging()
    one_openmp_thread()
    serving = config.serving
    check_port_free(serving.host, serving.port)
    if config.api_key_env and config.api_key() is None:
        logger.warning("environment variable %s is not set: serving WITHOUT an API key", config.api_key_env)
    options = {"host": serving.host, "port": serving.port, "log_level": "warning", "access_log": False}
    if serving.workers == 1:
        app = build_app(config)
        logger.info("serving on http://%s:%d with 1 worker (pid %d)", serving.host, serving.port, os.getpid())
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    check_in_child(config)  # fail fast, once, with the real error; the model never loads in this process
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


def check_in_child(config: ServiceConfig) -> None:
    """Verify the bundle and load its model in a short-lived spawned process; raise its error here, unchanged.

    The start-up check of :func:`serve` with several workers: the error (a
    tampered, unsigned or untrusted bundle, unknown types, ...) is re-raised
    in the calling process with its type, message and attributes, as if the
    check had run here, while scikit-learn, pandas and the model only ever
    load in the child, which exits before the workers start.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_check_bundle, args=(config.model_dump_json(), send),
                            name="collabops-startup-check", daemon=True)
    child.start()
    send.close()
    try:
        failure = receive.recv()  # None: the bundle is good
    except EOFError:  # the child died without answering (killed, out of memory, ...)
        child.join()
        raise RuntimeError(f"the start-up check of bundle {config.bundle_dir} ended with exit code "
                           f"{child.exitcode} before it could report") from None
    finally:
        receive.close()
    child.join()
    if failure is not None:
        raise _rebuild(failure)


def _check_bundle(config_json: str, send: Any) -> None:
    """In the check's child: ``load_verified_model``, then None or the error (as :func:`_portable`) to the parent."""
    try:
        load_verified_model(ServiceConfig.model_validate_json(config_json))
        send.send(None)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent, which raises it
        send.send(_portable(exc))
    finally:
        send.close()


def _portable(exc: BaseException) -> dict[str, Any]:
    """An exception as data that survives the pipe: pickled when it unpickles as itself, else rebuilt from parts.

    Exceptions whose ``__init__`` takes other arguments than their ``args``
    (``BundleError``) pickle but do not unpickle; :func:`_rebuild` then makes
    them again from class, ``args`` and attributes.
    """
    def picklable(value: Any, fallback: Any) -> Any:
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - anything pickle refuses
            return fallback
        return value

    try:
        pickled: bytes | None = pickle.dumps(exc)
        again = pickle.loads(pickled)
        if type(again) is not type(exc) or str(again) != str(exc):
            pickled = None
    except Exception:  # noqa: BLE001 - not a round trip: rebuilt from its parts
        pickled = None
    return {"pickled": pickled, "module": type(exc).__module__, "name": type(exc).__qualname__,
            "args": picklable(exc.args, (str(exc),)), "state": picklable(dict(vars(exc)), {}),
            "text": str(exc), "traceback": "".join(traceback.format_exception(exc))}


def _rebuild(failure: dict[str, Any]) -> BaseException:
    """The child's exception again: same class and message (and attributes), as if it had been raised here.

    The child's traceback is logged when the error is not one the user is
    meant to act on (a :class:`~collabops.errors.CollabopsError` such as a
    refused bundle): a bug in loading keeps the frames where it happened.
    """
    exc: BaseException
    try:
        if failure["pickled"] is not None:
            exc = pickle.loads(failure["pickled"])
        else:
            kind = importlib.import_module(failure["module"])
            for part in failure["name"].split("."):
                kind = getattr(kind, part)
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise TypeError(failure["name"])
            exc = kind.__new__(kind)
            exc.args = tuple(failure["args"])
            exc.__dict__.update(failure["state"])
    except Exception:  # noqa: BLE001 - a class this process cannot rebuild: keep type name and message
        exc = RuntimeError(f"{failure['module']}.{failure['name']}: {failure['text']}")
    from collabops.errors import CollabopsError

    if not isinstance(exc, CollabopsError):
        logger.error("the start-up check failed in its child process:\n%s", failure["traceback"].rstrip())
    return exc


def command_line(config: ServiceConfig, pid_file: Path | None = None, daemon_argv: Sequence[str] = ()) -> list[str]:
    """The ``python -m collabops.production.serving`` command that serves exactly ``config`` (given whole, as JSON).

    ``pid_file``: the process writes its PID there and removes the file when
    it stops. ``daemon_argv`` is only carried along (ignored): the command
    line of a daemon this process replaces, so that a supervisor which
    recognises its daemon by its command line (ZenML does) still does.
    """
    argv = [sys.executable, "-m", "collabops.production.serving", "--config-json",
            config.model_dump_json()]
    if pid_file is not None:
        argv += ["--pid-file", str(pid_file)]
    if daemon_argv:
        argv += ["--daemon-argv", *daemon_argv]
    return argv


def exec_serve(config: ServiceConfig, pid_file: Path | None = None, daemon_argv: Sequence[str] = ()) -> NoReturn:
    """Replace this process by ``command_line(config, ...)``: same PID, environment, working folder, stdout/stderr.

    Whatever the calling process had imported (ZenML, in its daemon) is gone;
    the new image is only the service's supervisor. Raises ``OSError`` if the
    exec itself fails (then this process is unchanged).
    """
    for handler in logging.getLogger().handlers + logger.handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command_line(config, pid_file, daemon_argv), dict(os.environ))


def parse_args(argv: list[str] | None = None) -> ServiceConfig:
    """The command line as one :class:`ServiceConfig`; serving options left out keep ServingSettings' defaults."""
    return _parse_command_line(argv)[0]


def _parse_command_line(argv: list[str] | None = None) -> tuple[ServiceConfig, Path | None]:
    """The :class:`ServiceConfig` and the ``--pid-file`` (None if not given) of a command line."""
    defaults = ServingSettings()
    parser = argparse.ArgumentParser(prog="python -m collabops.production.serving",
                                     description="Serve a verified model bundle over HTTP.")
    parser.add_argument("--bundle", type=Path, help="the model bundle folder (required)")
    parser.add_argument("--keys-dir", type=Path, help="folder of the trusted public keys (required)")
    parser.add_argument("--log-dir", type=Path, help="inference-log folder (none: no inference log)")
    parser.add_argument("--model-version", help="version the answers carry (default: the bundle's)")
    parser.add_argument("--api-key-env", help="environment variable holding the API key (none: no key)")
    parser.add_argument("--prediction-tolerance", type=float,
                        help="largest difference from the producer's predictions on the bundle's reference sample "
                             f"(default {ServiceConfig.model_fields['prediction_tolerance'].default:g})")
    for option, kind, text in (
            ("--host", str, "address to listen on"),
            ("--port", int, "TCP port"),
            ("--workers", int, "worker processes, about one per core, each with one OpenMP thread"),
            ("--max-body-bytes", int, "larger request bodies get HTTP 413"),
            ("--max-records", int, "more records in one request get HTTP 413"),
            ("--log-flush-seconds", float, "how often the inference log writes what it buffered")):
        name = option[2:].replace("-", "_")
        parser.add_argument(option, dest=name, type=kind, help=f"{text} (default {getattr(defaults, name)})")
    # For exec_serve (the ZenML daemon), not for people: the whole config as JSON, a PID file, the replaced argv.
    parser.add_argument("--config-json", help=argparse.SUPPRESS)
    parser.add_argument("--pid-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--daemon-argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = vars(parser.parse_args(argv))
    pid_file, config_json = args.pop("pid_file"), args.pop("config_json")
    args.pop("daemon_argv")
    if config_json is not None:
        if any(value is not None for value in args.values()):
            parser.error("--config-json takes no other option")
        try:
            return ServiceConfig.model_validate_json(config_json), pid_file
        except ValidationError as exc:
            parser.error(describe_validation_error(exc, "--config-json"))
    missing = [option for option in ("--bundle", "--keys-dir") if args[option[2:].replace("-", "_")] is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    chosen = {name: args.pop(name) for name in list(args) if name in ServingSettings.model_fields}
    try:
        serving = ServingSettings(**{name: value for name, value in chosen.items() if value is not None})
    except ValidationError as exc:
        parser.error(describe_validation_error(exc, "command line"))
    tolerance = args["prediction_tolerance"]
    try:
        config = ServiceConfig(bundle_dir=args["bundle"], keys_dir=args["keys_dir"], log_dir=args["log_dir"],
                               model_version=args["model_version"], api_key_env=args["api_key_env"],
                               serving=serving, **({} if tolerance is None else {"prediction_tolerance": tolerance}))
    except ValidationError as exc:
        parser.error(describe_validation_error(exc, "command line"))
    return config, pid_file


class PortInUse(CollabopsError):
    """The service's address is taken: another service (or an older one of this model) is listening there."""


def check_port_free(host: str, port: int) -> None:
    """``PortInUse`` naming the address if nothing may listen on ``host:port`` now (checked before any work)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port, or stop what "
                            "listens there)") from None


def main(argv: list[str] | None = None) -> None:
    """``python -m collabops.production.serving --bundle DIR --keys-dir DIR [--port N] [--workers N] ...``.

    A refused start (the bundle fails a check, the port is taken) is one line
    on stderr and exit code 1; anything else is a crash and keeps its traceback.
    """
    config, pid_file = _parse_command_line(argv)
    if pid_file is not None:
        pid_file.write_text(f"{os.getpid()}\n")
    try:
        serve(config)
    except CollabopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        if pid_file is not None:
            with contextlib.suppress(OSError):
                if pid_file.read_text().strip() == str(os.getpid()):
                    pid_file.unlink()


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
