"""The prediction service as a ZenML local daemon service.

ZenML starts ``run`` in a detached daemon process, so the service outlives
the ``run.py`` process that deployed it; ZenML's service registry remembers
it (``zenml model-deployer models list``), and ``undeploy`` stops it. The
process serves a verified model bundle with :mod:`collabops.production.serving`.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from zenml.services import HTTPEndpointHealthMonitor, HTTPEndpointHealthMonitorConfig, ServiceType
from zenml.services.local.local_service import LocalDaemonService, LocalDaemonServiceConfig
from zenml.services.local.local_service_endpoint import LocalDaemonServiceEndpoint, LocalDaemonServiceEndpointConfig
from zenml.services.service import BaseDeploymentService
from zenml.services.service_endpoint import ServiceEndpointProtocol

API_KEY_ENV = "COLLABOPS_SERVING_API_KEY"
API_KEY_SECRET_KEY = "api_key"  # the value's name inside the ZenML secret the config names


class PredictionServerConfig(LocalDaemonServiceConfig):
    """What one prediction server serves and how; secrets only by name."""

    bundle_dir: str
    keys_dir: str
    bundle_id: str
    producer: dict[str, Any] = {}
    log_dir: Optional[str] = None
    workers: int = 2
    max_body_bytes: int = 4 * 1024 * 1024
    api_key_secret: Optional[str] = None
    host: str = "127.0.0.1"
    port: Optional[int] = None
    deployment_run_id: str = ""  # which deploy run started it (also keeps each service's config unique)


class PredictionServer(LocalDaemonService, BaseDeploymentService):
    """A local process running ``collabops.production.serving`` over one model bundle."""

    SERVICE_TYPE = ServiceType(name="collabops-prediction-server", type="model-serving", flavor="collabops-local",
                               description="collabops prediction service (verified model bundle over HTTP)")
    config: PredictionServerConfig
    endpoint: LocalDaemonServiceEndpoint

    def __init__(self, config: Union[PredictionServerConfig, dict[str, Any]], **attrs: Any) -> None:
        if not isinstance(config, PredictionServerConfig):
            config = PredictionServerConfig.model_validate(config)
        if "endpoint" not in attrs:
            attrs["endpoint"] = LocalDaemonServiceEndpoint(
                config=LocalDaemonServiceEndpointConfig(protocol=ServiceEndpointProtocol.HTTP,
                                                        ip_address=config.host, port=config.port),
                monitor=HTTPEndpointHealthMonitor(config=HTTPEndpointHealthMonitorConfig(
                    healthcheck_uri_path="health", use_head_request=False)),
            )
        super().__init__(config=config, **attrs)

    def run(self) -> None:
        """Runs in the daemon: read the API key from the ZenML secret store, then serve."""
        from collabops.production import serving

        argv = ["--bundle", self.config.bundle_dir, "--keys-dir", self.config.keys_dir,
                "--host", self.endpoint.status.hostname or "127.0.0.1", "--port", str(self.endpoint.status.port),
                "--model-version", str(self.config.model_version), "--max-body-bytes", str(self.config.max_body_bytes)]
        if self.config.log_dir:
            argv += ["--log-dir", self.config.log_dir]
        argv += ["--workers", str(self.config.workers)]
        if self.config.api_key_secret:
            from zenml.client import Client

            secret = Client().get_secret(self.config.api_key_secret)
            os.environ[API_KEY_ENV] = str(secret.secret_values[API_KEY_SECRET_KEY])
            argv += ["--api-key-env", API_KEY_ENV]
        serving.main(argv)

    @property
    def prediction_url(self) -> Optional[str]:
        uri = self.endpoint.status.uri
        return f"{uri.rstrip('/')}/predict" if uri else None

    @property
    def base_url(self) -> Optional[str]:
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

