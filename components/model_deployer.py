"""The ``collabops-local`` model deployer flavor: prediction servers as local daemon processes.

It is a ZenML stack component, so the stack decides where models are served:
the local stacks put this component in; a remote stack would put in a
deployer of the same interface for its infrastructure. Services and their
PID, log and inference-log files live under ZenML's local stores path.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from typing import ClassVar, cast
from uuid import UUID

from zenml.config.global_config import GlobalConfiguration
from zenml.model_deployers import BaseModelDeployer, BaseModelDeployerFlavor
from zenml.model_deployers.base_model_deployer import BaseModelDeployerConfig
from zenml.services.service import BaseService, ServiceConfig

from components.prediction_server import PredictionServer, PredictionServerConfig

FLAVOR_NAME = "collabops-local"


class CollabopsModelDeployerConfig(BaseModelDeployerConfig):
    """Where service files live (default: ZenML's local stores path, per component)."""

    service_path: str = ""


class CollabopsModelDeployer(BaseModelDeployer):
    """Starts, stops and forgets collabops prediction servers on this machine."""

    NAME: ClassVar[str] = "collabops"
    FLAVOR: ClassVar[type[BaseModelDeployerFlavor]]

    @property
    def config(self) -> CollabopsModelDeployerConfig:
        return cast(CollabopsModelDeployerConfig, self._config)

    @property
    def local_path(self) -> str:
        path = self.config.service_path or os.path.join(GlobalConfiguration().local_stores_path, str(self.id))
        os.makedirs(path, exist_ok=True)
        return path

    def inference_log_dir(self, model_name: str) -> str:
        """One inference log per model, kept across versions, for the monitoring pipeline."""
        return os.path.join(self.local_path, "inference-log", model_name)

    def services_of(self, model_name: str) -> list[PredictionServer]:
        """Every prediction server of ``model_name`` registered by this deployer, newest first, status refreshed.

        (``find_model_server(model_name=...)`` would narrow to the latest
        model version only.)
        """
        found = self.find_model_server(service_type=PredictionServer.SERVICE_TYPE)
        return [s for s in found if isinstance(s, PredictionServer) and s.config.model_name == model_name]

    def start_new_server(self, config: PredictionServerConfig) -> PredictionServer:
        """Always a new server beside whatever runs (ZenML's ``deploy_model`` may hand back a running one).

        The preferred port (``config.serving.port``) is taken if it is free;
        while an older server holds it, the next free port above it, which is
        written back into ``config.serving``. The server gets
        ``config.serving.start_timeout`` seconds to answer its health check.
        The caller decides when the old server goes.
        """
        from zenml.client import Client
        from zenml.model_deployers.base_model_deployer import get_model_version_id_if_exists

        config.serving = config.serving.model_copy(update={"port": free_port(config.serving.host,
                                                                            config.serving.port)})
        client = Client()
        registered = client.create_service(config=config, service_type=PredictionServer.SERVICE_TYPE,
                                           model_version_id=get_model_version_id_if_exists(config.model_name,
                                                                                           config.model_version))
        service = cast(PredictionServer, self.perform_deploy_model(registered.id, config))
        client.update_service(id=service.uuid, name=service.config.service_name,
                              service_source=service.model_dump().get("type"), admin_state=service.admin_state,
                              status=service.status.model_dump(), endpoint=service.endpoint.model_dump(),
                              prediction_url=service.get_prediction_url(),
                              health_check_url=service.get_healthcheck_url())
        return service

    @staticmethod
    def get_model_server_info(service_instance: BaseService) -> dict[str, str | None]:  # type: ignore[override]
        server = cast(PredictionServer, service_instance)
        return {"PREDICTION_URL": server.prediction_url, "MODEL_NAME": server.config.model_name,
                "MODEL_VERSION": server.config.model_version, "BUNDLE_ID": server.config.bundle_id,
                "SERVICE_PATH": server.status.runtime_path, "DAEMON_PID": str(server.status.pid),
                "LOG_FILE": server.status.log_file}

    def perform_deploy_model(self, id: UUID, config: ServiceConfig, timeout: int | None = None) -> BaseService:
        """Start the server and wait until it answers (``timeout`` None: its ``serving.start_timeout``)."""
        server_config = cast(PredictionServerConfig, config)
        server_config.root_runtime_path = self.local_path
        service = PredictionServer(uuid=id, config=server_config)
        service.start(timeout=0)
        wait_until_serving(service, _timeout(service, timeout))
        return service

    def perform_stop_model(self, service: BaseService, timeout: int | None = None,
                           force: bool = False) -> BaseService:
        service.stop(timeout=_timeout(service, timeout), force=force)
        return service

    def perform_start_model(self, service: BaseService, timeout: int | None = None) -> BaseService:
        service.start(timeout=0)
        wait_until_serving(service, _timeout(service, timeout))
        return service

    def perform_delete_model(self, service: BaseService, timeout: int | None = None, force: bool = False) -> None:
        service.stop(timeout=_timeout(service, timeout), force=force)
        runtime = getattr(service.status, "runtime_path", None)
        if runtime and os.path.isdir(runtime):
            shutil.rmtree(runtime, ignore_errors=True)


def _timeout(service: BaseService, timeout: int | None) -> int:
    """``timeout`` if given, else the server's ``serving.start_timeout`` (seconds to start, and to stop)."""
    return timeout if timeout is not None else cast(PredictionServer, service).config.serving.start_timeout


def free_port(host: str, preferred: int, span: int = 50) -> int:
    """``preferred`` if nothing listens there, else the next free port.

    Binds as the server will (address reuse, so a closed server's lingering
    connections do not count; no port sharing, so a listening one does).
    """
    for port in range(preferred, min(preferred + span, 65536)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return port
            except OSError:
                continue
    raise OSError(f"no free TCP port on {host} in {preferred}-{preferred + span - 1}")


def wait_until_serving(service: BaseService, timeout: float, grace: float = 5.0) -> bool:
    """Wait until the health check answers; give up early once the daemon process is gone.

    (ZenML's own wait would sit out the whole timeout on a process that
    exited at once, e.g. because the bundle failed verification.)
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        service.update_status()
        if service.is_running:
            return True
        if service.status.pid is None and time.monotonic() - started > grace:
            return False
        time.sleep(0.25)
    return False


def active_deployer(required: bool = True) -> BaseModelDeployer | None:
    """The active stack's model deployer; with ``required``, an error telling how to add one."""
    from zenml.client import Client

    from collabops.production.deployment import DeploymentError

    stack = Client().active_stack
    if stack.model_deployer is None and required:
        raise DeploymentError(f"stack '{stack.name}' has no model deployer to run the prediction service; "
                              "add one (see stacks/industry-local.yaml) and run `python run.py stacks`")
    return stack.model_deployer


class CollabopsModelDeployerFlavor(BaseModelDeployerFlavor):
    """Flavor of :class:`CollabopsModelDeployer` (``--flavor collabops-local``)."""

    @property
    def name(self) -> str:
        return FLAVOR_NAME

    @property
    def config_class(self) -> type[CollabopsModelDeployerConfig]:
        return CollabopsModelDeployerConfig

    @property
    def implementation_class(self) -> type[CollabopsModelDeployer]:
        return CollabopsModelDeployer


CollabopsModelDeployer.FLAVOR = CollabopsModelDeployerFlavor
