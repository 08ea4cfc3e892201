"""A refusal inside a run is one line on stderr: ZenML's console keeps the traceback of a refusal out, not of a crash.

ZenML's local orchestrator logs every failed step with ``logger.exception``
on its console handler (stdout), so a step that refuses its input printed
30 to 40 lines of traceback before the command's one-line error. While a run
runs, :func:`orchestration.runs.refusals_off_the_console` filters records
that carry a ``CollabopsError`` off ZenML's console handlers only (the stored
logs keep them); every other exception keeps its traceback. A service that
refuses to start is reported by the deploy step in one line, taken from the
service's log (:func:`steps.deployment.start_failure`): its own one-line
refusal, or the last line of a crash's traceback. What a real ``run.py``
process prints is checked in tests/integration/test_refusal_output_run.py.
"""

from __future__ import annotations

import io
import logging

import pytest

from collabops.errors import ConfigError, DataError
from orchestration.runs import RefusalTracebackFilter, refusals_off_the_console


def _record(exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("zenml.orchestrators.local.local_orchestrator", logging.ERROR, __file__, 1,
                             "Step %s failed.", ("score_batch",), exc_info)


@pytest.mark.parametrize("exc, shown", [(DataError("data.csv: has a header but no data rows"), False),
                                        (ConfigError("bad setting"), False),
                                        (ValueError("a bug"), True), (KeyError("column"), True), (None, True)])
def test_only_records_carrying_a_refusal_are_filtered(exc, shown):
    assert RefusalTracebackFilter().filter(_record(exc)) is shown


def _log_failures(logger: logging.Logger) -> None:
    for exc in (DataError("data.csv: has a header but no data rows"), ValueError("a real crash")):
        try:
            raise exc
        except Exception:  # as ZenML's orchestrator logs a failed step
            logger.exception("Step %s failed.", "score_batch")


def test_while_a_run_runs_zenml_s_console_shows_crashes_with_their_traceback_but_not_refusals():
    from zenml.logger import ZenMLConsoleHandler

    console, other = io.StringIO(), io.StringIO()
    handler, plain = ZenMLConsoleHandler(console), logging.StreamHandler(other)
    root = logging.getLogger()
    root.addHandler(handler)
    root.addHandler(plain)
    logger = logging.getLogger("zenml.orchestrators.local.local_orchestrator")
    try:
        with refusals_off_the_console():
            _log_failures(logger)
        during = console.getvalue()
        assert "ValueError: a real crash" in during and "Traceback (most recent call last)" in during
        assert "has a header but no data rows" not in during
        assert "DataError: data.csv: has a header but no data rows" in other.getvalue()  # other handlers keep it
        assert not any(isinstance(f, RefusalTracebackFilter) for f in handler.filters)  # removed when the run ends
        _log_failures(logger)
        assert "DataError: data.csv: has a header but no data rows" in console.getvalue()[len(during):]
    finally:
        root.removeHandler(handler)
        root.removeHandler(plain)


SERVICE_LOG = """\x1b[32m2026-11-29 12:00:01 collabops.production.serving INFO: starting\x1b[0m
Traceback (most recent call last):
  File "/x/collabops/production/serving/process.py", line 320, in main
    serve(config)
  File "/x/collabops/production/serving/runtime.py", line 140, in load_verified_model
    check_reference_predictions(verified, model, config.prediction_tolerance)
collabops.exchange.bundle.BundleError: /b/model-1: bundle refused, check 'reference predictions' failed: this \
checkout predicts the reference sample differently from the producer: 97 of 100 rows differ by more than 1e-09
"""


def test_a_service_that_refused_to_start_is_reported_by_its_one_line_refusal_or_last_error():
    from steps.deployment import start_failure

    refusal = ("2026-11-29 12:00:01 collabops.production.serving INFO: starting\n"
               "error: /b/model-1: bundle refused, check 'signature' failed: not signed by a trusted key\n")
    assert start_failure(refusal) == "/b/model-1: bundle refused, check 'signature' failed: not signed by a trusted key"
    assert start_failure(SERVICE_LOG) == (
        "BundleError: /b/model-1: bundle refused, check 'reference predictions' failed: this checkout predicts the "
        "reference sample differently from the producer: 97 of 100 rows differ by more than 1e-09")
    assert start_failure("\x1b[31mport 8000 in use\x1b[0m\n\n") == "its log ends with: port 8000 in use"
    assert start_failure("") == "its log is empty"
