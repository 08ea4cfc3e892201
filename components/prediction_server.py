"""The prediction service as a ZenML local daemon service.

ZenML starts ``run`` in a detached daemon process, so the service outlives
the ``run.py`` process that deployed it; ZenML's service registry remembers
it (``zenml model-deployer models list``), and ``undeploy`` stops it. The
process serves a verified model bundle with :mod:`collabops.production.serving`.

Once it has read the API key, the daemon replaces itself (``os.execve``,
:func:`collabops.production.serving.process.exec_serve`) with a fresh
``python -m collabops.production.serving`` serving the same config: same PID
(the one in ZenML's pid file, which ZenML sends SIGTERM to), same log file,
and a command line that still names ZenML's daemon entrypoint and config file
(ZenML checks them), but without the hundreds of MiB of ZenML it had
imported. The service's supervisor then holds neither ZenML nor the model.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import Field
from zenml.services import HTTPEndpointHealthMonitor, HTTPEndpointHealthMonitorConfig, ServiceType
from zenml.services.local.local_service import LocalDaemonService, LocalDaemonServiceConfig
from zenml.services.local.local_service_endpoint import LocalDaemonServiceEndpoint, LocalDaemonServiceEndpointConfig
from zenml.services.service import BaseDeploymentService
from zenml.services.service_endpoint import ServiceEndpointProtocol

from collabops.settings import ExchangeSettings, ServingSettings

API_KEY_ENV = "COLLABOPS_SERVING_API_KEY"
API_KEY_SECRET_KEY = "api_key"  # the value's name inside the ZenML secret the config names
EXEC_SERVICE = True
"""``run`` replaces the daemon by a fresh service process (False: serve inside the daemon, ZenML loaded)."""

logger = logging.getLogger(__name__)


class PredictionServerConfig(LocalDaemonServiceConfig):
    """What one prediction server serves and how; secrets only by name (``serving.api_key_secret``)."""

    bundle_dir: str
    keys_dir: str
    bundle_id: str
    producer: dict[str, Any] = Field(default_factory=dict)
    log_dir: str | None = None
    serving: ServingSettings = ServingSettings()
    """The project's serving block; ``serving.port`` is the port the deployer found free for this server."""
    deployment_run_id: str = ""  # which deploy run started it (also keeps each service's config unique)
    prediction_tolerance: float = ExchangeSettings.model_fields["prediction_tolerance"].default
    """The project's ``exchange.prediction_tolerance``: the reference sample is re-predicted at every start."""


class PredictionServer(LocalDaemonService, BaseDeploymentService):
    """A local process running ``collabops.production.serving`` over one model bundle."""

    SERVICE_TYPE = ServiceType(name="collabops-prediction-server", type="model-serving", flavor="collabops-local",
                               description="collabops prediction service (verified model bundle over HTTP)")
    config: PredictionServerConfig
    endpoint: LocalDaemonServiceEndpoint

    def __init__(self, config: PredictionServerConfig | dict[str, Any], **attrs: Any) -> None:
        if not isinstance(config, PredictionServerConfig):
            config = PredictionServerConfig.model_validate(config)
        if "endpoint" not in attrs:
            attrs["endpoint"] = LocalDaemonServiceEndpoint(
                config=LocalDaemonServiceEndpointConfig(protocol=ServiceEndpointProtocol.HTTP,
                                                        ip_address=config.serving.host,
                                                        port=config.serving.port),
                monitor=HTTPEndpointHealthMonitor(config=HTTPEndpointHealthMonitorConfig(
                    healthcheck_uri_path="health", use_head_request=False)),
            )
        super().__init__(config=config, **attrs)

    def run(self) -> None:
        """Runs in the daemon: read the API key from the ZenML secret store, then serve until stopped."""
        from collabops.production.serving import ServiceConfig, serve

        serving = self.config.serving.model_copy(update={
            "host": self.endpoint.status.hostname or self.config.serving.host,
            "port": self.endpoint.status.port or self.config.serving.port})
        api_key_env = None
        if serving.api_key_secret:
            from zenml.client import Client

            secret = Client().get_secret(serving.api_key_secret)
            os.environ[API_KEY_ENV] = str(secret.secret_values[API_KEY_SECRET_KEY])
            api_key_env = API_KEY_ENV
        config = ServiceConfig(bundle_dir=Path(self.config.bundle_dir), keys_dir=Path(self.config.keys_dir),
                               log_dir=Path(self.config.log_dir) if self.config.log_dir else None,
                               model_version=self.config.model_version or None, api_key_env=api_key_env,
                               serving=serving, prediction_tolerance=self.config.prediction_tolerance)
        if EXEC_SERVICE and os.name == "posix":
            from collabops.production.serving.process import exec_serve

            pid_file = self.status.pid_file
            try:  # keeps ZenML's daemon command line (sys.orig_argv) so that ZenML still recognises the PID
                exec_serve(config, Path(pid_file) if pid_file else None, daemon_argv=sys.orig_argv[1:])
            except OSError:
                logger.exception("could not exec a fresh service process; serving inside the ZenML daemon")
        serve(config)

    @property
    def prediction_url(self) -> str | None:
        uri = self.endpoint.status.uri
        return f"{uri.rstrip('/')}/predict" if uri else None

    @property
    def base_url(self) -> str | None:
        uri = self.endpoint.status.uri
        return uri.rstrip("/") if uri else None

    def predict(self, request: Any) -> Any:
        """Predict over HTTP (ZenML's deployment-service interface)."""
        import json
        import urllib.request

        if not self.prediction_url:
            raise RuntimeError(f"prediction server {self.uuid} is not running")
        body = json.dumps({"records": request}, default=str).encode()
        call = urllib.request.Request(self.prediction_url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(call, timeout=30) as answer:
            return json.loads(answer.read())

