"""Steps of the monitoring pipeline: the production model's reference, the period judged, the verdict recorded.

Thin adapters over :mod:`collabops.monitoring`. The period's rows are read
inside :func:`monitor_period` and never become an artifact (a day of log can
be millions of rows); what the step keeps is Evidently's report, shown by the
dashboard, and the summary with the verdict.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.types import HTMLString

from collabops.data.contract import contract_from_dict
from collabops.errors import MonitoringError
from collabops.monitoring import current as currents
from collabops.monitoring import quality as qualities
from collabops.monitoring.drift import detect_drift
from collabops.monitoring.live_error import measure_live_error
from collabops.monitoring.reference import promise, read_reference
from collabops.monitoring.request import retraining_request
from collabops.monitoring.season import select_season
from collabops.monitoring.verdict import decide
from collabops.settings import MonitoringSettings
from collabops.training.tasks import get_task
from orchestration import names


@step(enable_cache=False)
def load_monitoring_reference(model_name: str, contract: dict, task: str) -> tuple[
    Annotated[pd.DataFrame, names.MONITORING_REFERENCE], Annotated[dict, names.MONITORED_MODEL]
]:
    """The production version's reference rows and promise, from the bundle it was imported from."""
    spec = contract_from_dict(contract)
    version = get_step_context().model_version
    record = Client().get_model_version(model_name, version.id)
    metadata = dict(record.run_metadata or {})
    bundle_id = str(metadata.get(names.IMPORTED_BUNDLE_ID) or "")
    try:
        root = Path(record.get_artifact(names.VERIFIED_MODEL_BUNDLE).load())
    except (AttributeError, KeyError):
        raise MonitoringError(f"model version {record.name} of '{model_name}' was not imported from a model bundle, "
                              "so it has no monitoring reference") from None
    reference = read_reference(root, bundle_id, spec)
    metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    monitored = {"model_name": model_name, "version": str(record.name), "bundle_id": bundle_id,
                 "promise": promise(metrics, metadata.get("acceptance"), get_task(task).primary_metric)}
    return reference, monitored


def _predict(frame: pd.DataFrame, model_name: str, contract: Any) -> pd.DataFrame:
    """A current file without predictions is scored by the production version's model (the one it serves)."""
    missing = [c for c in contract.feature_columns if c not in frame.columns]
    if missing:
        raise MonitoringError(f"the current data has no '{currents.PREDICTION}' column and lacks feature(s) "
                              f"{', '.join(missing)}, so the production model cannot predict it")
    import warnings

    version = Client().get_model_version(model_name, get_step_context().model_version.id)
    model = version.get_model_artifact(names.TRAINED_MODEL).load()
    with warnings.catch_warnings():  # new categories are the quality check's to report, once, by name
        warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
        predicted = model.predict(frame[contract.feature_columns])
    return frame.assign(**{currents.PREDICTION: predicted})


@step(enable_cache=False)
def monitor_period(reference: pd.DataFrame, monitored: dict, contract: dict, task: str, settings: dict,
                   source: dict) -> tuple[Annotated[HTMLString, names.DRIFT_REPORT],
                                          Annotated[dict, names.MONITORING_SUMMARY]]:
    """Read the period, compare it with the reference's season, measure the live error, decide the verdict.

    ``source``: ``{"data": path | None, "log_dir": path | None, "after":
    iso | None, "since": text | None, "until": text | None, "outcomes":
    path | None}``. Raises ``MonitoringError`` for a period without rows.
    """
    spec = contract_from_dict(contract)
    options = MonitoringSettings.model_validate(settings)
    period = currents.parse_period(source.get("since"), source.get("until"), spec.time_zone)
    if source.get("data"):
        data = currents.read_current_file(Path(source["data"]), spec, period)
    else:
        data = currents.read_inference_log(Path(source["log_dir"]), spec, monitored["version"],
                                           None if period.given else source.get("after"), period)
    if not len(data.frame):
        where = f"in the period {period.describe()}" if period.given else (
            f"since the last monitoring (served after {source['after']})" if source.get("after") else "yet")
        raise MonitoringError(f"no rows of model version {monitored['version']} to monitor {where} in "
                              f"{data.source}" + (f" ({'; '.join(data.notes)})" if data.notes else "")
                              + "; send requests to the service, or give --data FILE or other dates")
    if source.get("outcomes"):
        data = currents.join_outcomes(data, Path(source["outcomes"]), spec)
    frame = data.frame
    if currents.PREDICTION not in frame.columns or frame[currents.PREDICTION].isna().all():
        frame = _predict(frame, monitored["model_name"], spec)
    monitored_features = [c for c in spec.feature_columns if c not in (spec.time_column, spec.entity_column)]
    unknown = sorted(set(options.column_thresholds) - set(monitored_features))
    if unknown:
        raise MonitoringError(f"monitoring.column_thresholds names {', '.join(unknown)}, not a monitored feature "
                              f"of contract '{spec.name}' ({', '.join(monitored_features)})")
    present = [c for c in monitored_features if c in frame.columns]
    kinds: dict[str, Any] = {c: "numerical" if spec.column(c).type in ("int", "float") else "categorical"
                             for c in present}
    kinds[currents.PREDICTION] = "numerical"
    season = select_season(reference, frame[spec.time_column], spec.time_column, options.season_window_days,
                           options.min_season_rows)
    strata = [c for c in (spec.segment_column,) if c and c in frame.columns]
    day = frame[spec.time_column].dt.floor("D", ambiguous=True, nonexistent="shift_forward")
    drift = detect_drift(season.rows, frame, kinds, {c: options.threshold(c) for c in kinds}, options.sample_rows,
                         [*strata, day], options.seed, options.sample_error_probability,
                         prediction_column=currents.PREDICTION)
    problems = qualities.check_quality(frame, reference, spec,
                                       [c for c in spec.feature_columns if c != spec.time_column],
                                       options.max_null_increase, prediction=currents.PREDICTION)
    live = measure_live_error(frame, spec, get_task(task), currents.PREDICTION, monitored["promise"])
    verdict = decide(len(frame), drift, season, problems, live, options, data.notes)
    context = get_step_context()
    summary = {"verdict": verdict.verdict, "reasons": verdict.ordered(),
               "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "run": context.pipeline_run.name,
               "run_id": str(context.pipeline_run.id), "model_version": monitored["version"],
               "bundle_id": monitored["bundle_id"], "source": data.source,
               "period": data.period(spec.time_column), "rows": len(frame), "outcome_rows": data.outcomes,
               "season": season.describe(), "drift": drift.summary(),
               "quality": qualities.summary(problems), "live_error": live.summary() if live else None,
               # only a run over what was served since the last one moves the point the next one starts from
               "watermark": (data.watermark or source.get("after")) if source.get("since_last") else
               source.get("previous_watermark"), "retraining_bundle": None}
    log_metadata(metadata={"verdict": verdict.verdict, "reasons": verdict.ordered(), "rows": len(frame)})
    return HTMLString(drift.html()), summary


@step(enable_cache=False)
def record_monitoring(summary: dict, retraining_bundle: str | None = None) -> Annotated[dict, "monitoring_record"]:
    """Put the verdict on the production version's metadata (what ``run.py status`` shows); nothing else changes.

    ``retraining_bundle``: the data bundle a drift exported, when it did: the
    pipeline records the verdict first and again with the bundle once it is
    written, so a failed export never loses the verdict.
    """
    record = {k: summary[k] for k in ("verdict", "reasons", "at", "run", "run_id", "period", "rows", "outcome_rows",
                                      "live_error", "watermark")}
    record["retraining_bundle"] = retraining_bundle
    record["drifted_features"] = summary["drift"]["drifted_features"]
    log_metadata(metadata={names.MONITORING_METADATA: record}, model_version_id=get_step_context().model_version.id)
    return record


@step(enable_cache=False)
def collect_retraining_rows(summary: dict, contract: dict, rows_path: str) -> tuple[
    Annotated[pd.DataFrame, names.RETRAINING_ROWS], Annotated[dict, "retraining_request"]
]:
    """The period's full rows (every contract column, outcomes included) from ``rows_path``, and the request."""
    spec = contract_from_dict(contract)
    rows = currents.full_rows(Path(rows_path), spec, summary["period"]["start"], summary["period"]["end"])
    if rows is None or not len(rows):  # nothing to export: the pipeline stops here, the verdict stands
        reason = (f"{rows_path} has no rows with every contract column in the period {summary['period']['start']} "
                  f"to {summary['period']['end']}")
        log_metadata(metadata={"not_exported": reason})
        return pd.DataFrame(columns=spec.column_names), {"not_exported": reason}
    request = retraining_request(summary["verdict"], summary["reasons"], summary["drift"]["drifted_features"],
                                 summary["period"], summary["model_version"], summary["bundle_id"],
                                 summary["live_error"], summary["run"])
    return rows, request
