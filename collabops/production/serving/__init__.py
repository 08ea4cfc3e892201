"""The prediction service: a small ASGI app over a verified model bundle.

``POST /predict`` takes ``{"records": [{field: value, ...}, ...]}``, validates
the records against the contract's feature columns, and answers with the
predictions, the model version and the bundle id. Fields that are not
features (the target, personal columns, anything else) are ignored and named
in ``warnings``, so a client can send a raw row as the industry stores it.
Bad requests get 400, 401, 413 or 422 (the field and record named); no input
crashes the service. Served rows go to an inference log flushed off the
request path. ``/health``, ``/metadata`` and ``/metrics`` (Prometheus,
summed over all workers) complete it.

By job: :mod:`.config` (:class:`ServiceConfig`, the one settings object),
:mod:`.decoding` (body -> records -> validated rows, limits, refusals),
:mod:`.runtime` (:class:`PredictionService`: the model on the compiled path or
scikit-learn), :mod:`.inference_log`, :mod:`.metrics`, :mod:`.app` (routes
and status codes) and :mod:`.process` (:func:`serve`, workers, ``main``).
Importing the package changes nothing in the process; numpy, pandas and
scikit-learn load with the model.

Run it with ``python -m collabops.production.serving --bundle DIR --keys-dir keys --port 8000``,
or call :func:`serve` with a :class:`ServiceConfig`.
"""

from collabops.production.serving.app import create_app
from collabops.production.serving.config import ServiceConfig
from collabops.production.serving.decoding import Parsed, RequestDecoder, RequestError
from collabops.production.serving.inference_log import InferenceLog
from collabops.production.serving.metrics import ServiceMetrics
from collabops.production.serving.process import build_app, main, parse_args, serve
from collabops.production.serving.runtime import PredictionService, service_from_bundle

__all__ = ["InferenceLog", "Parsed", "PredictionService", "RequestDecoder", "RequestError", "ServiceConfig",
           "ServiceMetrics", "build_app", "create_app", "main", "parse_args", "serve", "service_from_bundle"]
