"""Running a pipeline under an explicit run name, and reading what it produced by artifact name.

Every run gets its name before it starts (``<pipeline>-<UTC time>-<random>``),
so what the command reads afterwards, after success or failure, is that run
and no other, even when runs overlap or a ZenML server is shared.

A step that refuses its input raises a :class:`~collabops.errors.CollabopsError`,
which the command prints as its one-line error. ZenML's local orchestrator
also logs every failed step with its traceback on the console (stdout); for a
refusal that traceback is kept off the console (:class:`RefusalTracebackFilter`)
and stays in the run's stored logs and the step's recorded exception. A step
that crashes with anything else keeps its traceback on the console.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from collabops.errors import CollabopsError
from orchestration import names


class RunFailed(CollabopsError):
    """A pipeline run failed for a reason that is not the user's input; the message says which step and why."""


def new_run_name(pipeline_name: str) -> str:
    """``<pipeline>-YYYY_MM_DD-HH_MM_SS-<8 hex>``: unique, sortable, readable in the dashboard."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y_%m_%d-%H_%M_%S")
    return f"{pipeline_name}-{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class RunResult:
    """A finished run: its id and name, and its outputs by artifact name (loaded on first use)."""

    id: str
    name: str
    status: str
    _outputs: dict[str, Any] = field(default_factory=dict, repr=False)
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)
    _model_version: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, run_name: str) -> RunResult:
        from zenml.client import Client

        run = Client().get_pipeline_run(run_name, allow_name_prefix_match=False)
        outputs: dict[str, Any] = {}
        model_version = None
        for step in run.steps.values():
            for name, versions in step.outputs.items():
                if versions:
                    outputs[name] = versions[0]
            model_version = model_version or step.model_version
        return cls(id=str(run.id), name=run.name, status=run.status.value, _outputs=outputs,
                   _model_version=model_version)

    def has(self, artifact: str) -> bool:
        return artifact in self._outputs

    def output(self, artifact: str) -> Any:
        """The loaded value of the output named ``artifact``; KeyError if the run has none."""
        if artifact not in self._loaded:
            self._loaded[artifact] = self._outputs[artifact].load()
        return self._loaded[artifact]

    def artifact_id(self, artifact: str) -> str:
        return str(self._outputs[artifact].id)

    def artifact_uri(self, artifact: str) -> str:
        """Where the artifact store keeps the output named ``artifact`` (a folder)."""
        return str(self._outputs[artifact].uri)

    def metadata(self, artifact: str) -> dict[str, Any]:
        """Metadata logged on the output named ``artifact``."""
        return dict(self._outputs[artifact].run_metadata or {})

    @property
    def model_version(self) -> Any:
        """The model version the run's steps worked on (None if none did)."""
        return self._model_version


def _pipeline(name: str) -> Any:
    """The pipeline object named ``name`` (imported only when a command runs it)."""
    if name == names.TRAINING:
        from pipelines.training import training_pipeline as pipeline
    elif name == names.EXPORT_DATA:
        from pipelines.export_data import export_data_pipeline as pipeline
    elif name == names.HANDOVER:
        from pipelines.handover import handover_pipeline as pipeline
    elif name == names.IMPORT_MODEL:
        from pipelines.import_model import import_model_pipeline as pipeline
    elif name == names.BATCH_INFERENCE:
        from pipelines.batch_inference import batch_inference_pipeline as pipeline
    elif name == names.DEPLOY:
        from pipelines.deployment import deploy_pipeline as pipeline
    elif name == names.MONITORING:
        from pipelines.monitoring import monitoring_pipeline as pipeline
    else:
        raise ValueError(f"no pipeline named {name!r}")
    return pipeline


def run_pipeline(pipeline_name: str, config: dict[str, Any], partner: str | None) -> RunResult:
    """Run the pipeline ``pipeline_name`` with ``config`` (a ZenML run configuration) under a new run name.

    A failure caused by the user's input is re-raised as that error (its
    message names the file, column or setting), found either in the
    exception chain or in what ZenML recorded for the failed step of *this*
    run. Anything else becomes :class:`RunFailed` naming the run and step.
    """
    pipeline = _pipeline(pipeline_name)
    run_name = new_run_name(pipeline_name)
    config = {**config, "run_name": run_name,
              "tags": list(config.get("tags") or []) + ([names.PARTNER_TAG.format(partner=partner)] if partner else [])}
    with tempfile.TemporaryDirectory(prefix="collabops-run-") as tmp:
        merged = Path(tmp) / "run.yaml"
        merged.write_text(yaml.safe_dump(config), encoding="utf-8")
        try:
            with refusals_off_the_console():
                pipeline.with_options(config_path=str(merged))()
        except Exception as exc:  # noqa: BLE001 - a failed step, whatever it raised: ZenML has logged the details
            error = _collabops_cause(exc)
            if error is None:
                step, source, message = _failed_step(run_name)
                error = _recorded_error(source, message) if message is not None else RunFailed(
                    f"run '{run_name}' failed{f' in step {step}' if step else ''}: {type(exc).__name__}: {exc}")
            error.run_name = run_name  # type: ignore[attr-defined]  # so the caller can read what the run stored
            raise error from None
    return RunResult.of(run_name)


class RefusalTracebackFilter(logging.Filter):
    """Drops a log record that carries a :class:`CollabopsError` (a step's refusal, which the command reports as its
    one-line error); every other record, and every other exception's traceback, passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, CollabopsError)


@contextlib.contextmanager
def refusals_off_the_console() -> Iterator[None]:
    """While a run runs: ZenML's console handlers leave out the tracebacks of refusals (its stored logs keep them)."""
    from zenml.logger import ZenMLConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ZenMLConsoleHandler)]
    refusals = RefusalTracebackFilter()
    for handler in handlers:
        handler.addFilter(refusals)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(refusals)


def failed_run_output(run_name: str | None, artifact: str) -> Any:
    """An output that a failed run still stored (the acceptance report of a refused deploy), or None."""
    if not run_name:
        return None
    try:
        result = RunResult.of(run_name)
    except KeyError:
        return None
    return result.output(artifact) if result.has(artifact) else None


def _failed_step(run_name: str) -> tuple[str | None, str | None, str | None]:
    """(step name, error class source, message of a user-facing error) as ZenML recorded them for ``run_name``."""
    from zenml.client import Client

    try:
        run = Client().get_pipeline_run(run_name, allow_name_prefix_match=False)
    except KeyError:
        return None, None, None
    for step_name, step_run in run.steps.items():
        info = step_run.exception_info
        if info is None:
            continue
        if info.source and info.source.startswith("collabops.") and info.message:
            return step_name, info.source, info.message
        return step_name, None, None
    return None, None, None


def _recorded_error(source: str | None, message: str) -> CollabopsError:
    """The user-facing error a step raised, of its own class where that class takes just the message."""
    import importlib

    module, _, name = (source or "").rpartition(".")
    try:
        kind = getattr(importlib.import_module(module), name)
        if isinstance(kind, type) and issubclass(kind, CollabopsError):
            return kind(message)
    except (ImportError, AttributeError, TypeError, ValueError):
        pass
    return CollabopsError(message)


def _collabops_cause(exc: BaseException) -> CollabopsError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, CollabopsError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
