"""The model runtime: one verified model with its contract and identity, predicting on the fastest path it passed.

The model runs on the compiled inference path of
:mod:`collabops.production.compiled` when the load-time check shows it gives
the pipeline's own predictions (``inference_path`` ``compiled``), else with
scikit-learn (``sklearn``); ``inference_note`` says which and why.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collabops.production.serving.decoding import Parsed, RequestDecoder
from collabops.production.serving.inference_log import InferenceLog
from collabops.settings import ServingSettings

if TYPE_CHECKING:  # pandas, scikit-learn and the model load with the service, not at import
    import pandas as pd

    from collabops.data.contract import DataContract
    from collabops.production.compiled import CompiledModel
    from collabops.production.serving.config import ServiceConfig

logger = logging.getLogger("collabops.production.serving")


class PredictionService:
    """The model, its contract and identity, and the request handling that does not depend on HTTP.

    ``serving`` gives the record limit (``max_records``, which the keyword of
    that name overrides), the inference-log flush interval and the worker
    count shown in :meth:`metadata`. ``reference`` is the bundle's reference
    sample the compiled path is checked against; without it, or with
    ``compile_model=False``, the model serves through scikit-learn.
    """

    def __init__(self, model: Any, contract: DataContract, model_version: str, bundle_id: str,
                 producer: dict[str, Any], serving: ServingSettings | None = None, log_dir: Path | None = None,
                 reference: pd.DataFrame | None = None, compile_model: bool = True,
                 max_records: int | None = None) -> None:
        serving = serving or ServingSettings()
        if max_records is not None:
            serving = ServingSettings.model_validate({**serving.model_dump(), "max_records": max_records})
        self.model, self.contract, self.serving = model, contract, serving
        self.model_version, self.bundle_id, self.producer = model_version, bundle_id, producer
        self.features = contract.feature_columns
        self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        from collabops.production.compiled import load_compiled

        self.compiled: CompiledModel | None = None
        if compile_model:
            self.compiled, self.inference_note = load_compiled(model, contract, self.features, reference)
        else:
            self.inference_note = "sklearn (compiled path switched off)"
        self.inference_path = "compiled" if self.compiled is not None else "sklearn"
        self.decoder = RequestDecoder(contract, self.compiled, serving.max_records)
        self.log = InferenceLog(log_dir, serving.log_flush_seconds, contract=contract, features=self.features,
                                identity={"model_version": model_version, "bundle_id": bundle_id})

    def metadata(self) -> dict[str, Any]:
        """What ``/metadata`` answers: identity, contract, feature types, inference path, workers, this PID."""
        return {"model_version": self.model_version, "bundle_id": self.bundle_id, "producer": self.producer,
                "contract": self.contract.name, "contract_digest": self.contract.digest(),
                "features": {name: self.contract.column(name).type for name in self.features},
                "started_at": self.started_at, "inference_path": self.inference_path,
                "inference_check": self.inference_note, "workers": self.serving.workers, "worker_pid": os.getpid()}

    def parse(self, body: bytes) -> Parsed:
        """A request body -> validated rows or frame, plus warnings; ``RequestError`` (400/413/422) if refused."""
        return self.parse_records(self.decoder.records(body))

    def parse_records(self, records: list[dict[str, Any]]) -> Parsed:
        return self.decoder.validate(records)

    def predict(self, parsed: Parsed) -> list[float]:
        """The predictions of a validated request, one float per record; the rows go to the inference log."""
        if parsed.rows is not None:
            assert self.compiled is not None
            values = self.compiled.pipeline.predict(parsed.rows).tolist()
            self.log.append_rows(parsed.rows, values)
            return [float(v) for v in values]
        import pandas as pd

        assert parsed.frame is not None
        values = self.model.predict(parsed.frame)
        logged = parsed.frame.assign(prediction=values, model_version=self.model_version, bundle_id=self.bundle_id,
                                     served_at=pd.Timestamp.now(tz="UTC").as_unit("ns"))  # as the compiled path
        self.log.append(logged)
        return [float(v) for v in values]

    def answer(self, body: bytes) -> tuple[list[float], list[str]]:
        """Everything for one request body (what a worker thread runs for a large request): predictions, warnings."""
        return self.answer_records(self.decoder.records(body))

    def answer_records(self, records: list[dict[str, Any]]) -> tuple[list[float], list[str]]:
        parsed = self.parse_records(records)
        return self.predict(parsed), parsed.warnings

    def close(self) -> None:
        """Write what the inference log still buffers and stop its thread."""
        self.log.close()


def limit_openmp_here() -> None:
    """Make predictions on the calling thread follow ``OMP_NUM_THREADS``, even if OpenMP loaded before it was set.

    libgomp keeps the thread count per thread, so the app runs this on the
    event-loop thread and on each prediction thread. Nothing happens when the
    variable is not set (the process entry sets it to 1 unless the user chose).
    """
    wanted = os.environ.get("OMP_NUM_THREADS", "")
    if not wanted.isdigit() or int(wanted) < 1:
        return
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(wanted), user_api="openmp")
    except Exception:
        logger.debug("could not limit OpenMP threads with threadpoolctl", exc_info=True)


def load_verified_model(config: ServiceConfig) -> tuple[Any, Any]:
    """Verify the bundle, load its model with trusted types only, and check it re-predicts the reference sample.

    Returns ``(verified bundle, model)``; raises the exchange layer's errors
    (tampered, unsigned or untrusted bundle, unknown types, predictions that
    differ from the producer's by more than ``config.prediction_tolerance``)
    unchanged.
    """
    from collabops.exchange.bundle import verify
    from collabops.exchange.model_bundle import check_reference_predictions, load_model
    from collabops.exchange.signing import trusted_keys

    verified = verify(config.bundle_dir, trusted_keys(config.keys_dir), kind="model")
    model = load_model(verified)
    check_reference_predictions(verified, model, config.prediction_tolerance)
    return verified, model


def service_from_bundle(config: ServiceConfig) -> PredictionService:
    """Verify the bundle again (it may have changed on disk), load its model and check the compiled path."""
    import pandas as pd

    from collabops.exchange.model_bundle import SAMPLE_FILE

    verified, model = load_verified_model(config)
    sample_path = verified.root / SAMPLE_FILE
    reference = pd.read_parquet(sample_path) if sample_path.is_file() else None
    version = config.model_version or str(verified.manifest.get("model", {}).get("version", "unknown"))
    service = PredictionService(model, verified.contract(), version, verified.bundle_id,
                                verified.manifest.get("producer", {}), serving=config.serving,
                                log_dir=config.log_dir, reference=reference)
    logger.info("worker %d: bundle %s, model version %s, inference path %s", os.getpid(), service.bundle_id,
                service.model_version, service.inference_note)
    return service
