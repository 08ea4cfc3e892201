"""The prediction services of the active stack's model deployer, as plain records for the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceInfo:
    """One prediction service as ``status`` shows it."""

    id: str
    running: bool
    state: str
    url: str | None
    model_version: str
    bundle_id: str
    producer: dict[str, Any]
    pid: int | None
    log_file: str | None
    inference_log: str | None


def _info(service: Any) -> ServiceInfo:
    return ServiceInfo(id=str(service.uuid), running=bool(service.is_running), state=service.status.state.value,
                       url=service.base_url, model_version=str(service.config.model_version),
                       bundle_id=str(service.config.bundle_id), producer=dict(service.config.producer or {}),
                       pid=service.status.pid, log_file=service.status.log_file,
                       inference_log=service.config.log_dir)


def has_deployer() -> bool:
    from components.model_deployer import active_deployer

    return active_deployer(required=False) is not None


def require_deployer() -> None:
    """Refuse, naming the stack and what to add, when the active stack has no model deployer."""
    from components.model_deployer import active_deployer

    active_deployer()


def services(model_name: str) -> list[ServiceInfo]:
    """Every prediction service of ``model_name`` on the active stack, status refreshed (empty without a deployer)."""
    from components.model_deployer import active_deployer

    deployer = active_deployer(required=False)
    return [_info(s) for s in deployer.services_of(model_name)] if deployer is not None else []


def stop_all(model_name: str) -> list[ServiceInfo]:
    """Stop and forget every prediction service of ``model_name``; returns what was stopped."""
    from components.model_deployer import active_deployer

    deployer = active_deployer()
    stopped = []
    for service in deployer.services_of(model_name):
        stopped.append(_info(service))
        deployer.delete_model_server(service.uuid, force=False)
    return stopped
