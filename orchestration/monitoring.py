"""Monitoring as the CLI sees it: the last verdict, the inference log's folder, and what can run on a schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestration import names


def last_verdict(model_name: str) -> dict[str, Any] | None:
    """The last monitoring recorded on the version in production (``verdict``, ``reasons``, ``at``, ``run``,
    ``run_id``, ``period``, ``rows``, ``live_error``, ``retraining_bundle``, ``watermark``, ``report``), or None."""
    from orchestration.models import production

    version = production(model_name)
    record = (version.metadata.get(names.MONITORING_METADATA) if version else None) or None
    if record is None:
        return None
    record = dict(record)
    record.setdefault("report", f"artifact '{names.DRIFT_REPORT}' of run {record.get('run')}")
    return record


def inference_log_dir(model_name: str) -> str | None:
    """The active stack's inference-log folder of ``model_name`` (None when the stack has no collabops deployer)."""
    from components.model_deployer import active_deployer

    deployer = active_deployer(required=False)
    return deployer.inference_log_dir(model_name) if hasattr(deployer, "inference_log_dir") else None


@dataclass(frozen=True)
class Orchestrator:
    name: str
    flavor: str
    schedulable: bool


def orchestrator() -> Orchestrator:
    """The active stack's orchestrator and whether it runs schedules (ZenML's ``is_schedulable``)."""
    from zenml.client import Client

    component = Client().active_stack.orchestrator
    return Orchestrator(name=component.name, flavor=component.flavor, schedulable=bool(component.config.is_schedulable))
