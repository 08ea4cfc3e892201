"""The one settings object of a prediction service, handed whole to the service and to each worker process."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from collabops.settings import ExchangeSettings, ServingSettings


class ServiceConfig(BaseModel):
    """What one prediction service serves and how.

    ``serving`` is the project's serving block (host, port, workers, limits,
    flush interval; every default is in :class:`collabops.settings.ServingSettings`);
    the other fields are per service. :func:`~collabops.production.serving.process.serve`
    serialises it once (``model_dump_json``) for its spawned workers, which
    read it back with ``model_validate_json``. The API key itself never
    appears here, only the name of the environment variable that holds it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle_dir: Path
    """The model bundle; verified again at every start, in every worker."""
    keys_dir: Path
    """Folder of the trusted public keys the bundle is verified with."""
    serving: ServingSettings = ServingSettings()
    log_dir: Path | None = None
    """Inference-log folder; None: no inference log."""
    model_version: str | None = None
    """The version answers carry; None: the bundle's ``model.version``."""
    api_key_env: str | None = None
    """Environment variable holding the API key clients must send as ``X-API-Key``; None: no key."""
    parent_pid: int | None = None
    """Set by ``serve`` for worker processes: a worker stops when this process is gone."""
    prediction_tolerance: float = Field(ExchangeSettings.model_fields["prediction_tolerance"].default, ge=0)
    """How far this checkout's predictions on the bundle's reference sample may be from the producer's
    (the project's ``exchange.prediction_tolerance``); checked at every start."""

    def api_key(self) -> str | None:
        """The API key from ``api_key_env``; None when no variable is named or it is not set."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def resolved(self) -> ServiceConfig:
        """The same config with absolute paths, so a process started elsewhere reads the same folders."""
        return self.model_copy(update={"bundle_dir": self.bundle_dir.resolve(), "keys_dir": self.keys_dir.resolve(),
                                       "log_dir": self.log_dir.resolve() if self.log_dir else None})
