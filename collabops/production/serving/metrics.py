"""Prometheus metrics of the prediction service, counted over every worker process.

Three families: ``collabops_requests_total{status}`` (``/predict`` answers
by HTTP status), ``collabops_request_seconds`` (their latency) and
``collabops_prediction`` (the predicted values served). With several
workers, :func:`~collabops.production.serving.process.serve` gives them one
fresh ``PROMETHEUS_MULTIPROC_DIR`` before they start; prometheus_client then
keeps each worker's values in files there (it decides when it is first
imported, so the variable must be set before that), and a scrape answered
by any worker merges them all. A single in-process worker counts in memory.
Both render the same text: the same families in the same order, with their
help text, without ``_created`` samples.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # prometheus_client picks its mode when first imported: in ServiceMetrics, not at our import
    from prometheus_client import Histogram
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample

    from collabops.data.contract import DataContract

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds (seconds) of the request-latency histogram."""
DEFAULT_PREDICTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds of the predicted-value histogram when the contract bounds its target on neither side
(prometheus_client's own default buckets)."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text format ``/metrics`` answers in."""

def prediction_buckets(contract: DataContract) -> tuple[float, ...]:
    """Upper bounds of the predicted-value histogram: ten equal steps over the target's [min, max] in the contract.

    Without both bounds, :data:`DEFAULT_PREDICTION_BUCKETS`.
    """
    spec = contract.column(contract.target)
    if spec.min is None or spec.max is None or not spec.max > spec.min:
        return DEFAULT_PREDICTION_BUCKETS
    step = (spec.max - spec.min) / 10
    return tuple(round(spec.min + step * k, 12) for k in range(1, 11))


_FAMILIES = (  # (name, type, help): what /metrics shows, in this order
    ("collabops_requests", "counter", "Prediction requests answered, by HTTP status."),
    ("collabops_request_seconds", "histogram", "Time to answer a prediction request, in seconds."),
    ("collabops_prediction", "histogram", "Predicted values served."),
)
_BULK = 64
"""Above this many values in one request, prediction buckets are counted with numpy and added at once."""
_SUFFIX_ORDER = {"bucket": 0, "count": 1, "sum": 2}


class ServiceMetrics:
    """The service's counters and histograms in this process, and the ``/metrics`` text.

    Multiprocess mode applies when prometheus_client was imported with
    ``PROMETHEUS_MULTIPROC_DIR`` set; then :meth:`render` sums the files of
    every process in that folder.
    """

    def __init__(self, prediction_bounds: Sequence[float] = DEFAULT_PREDICTION_BUCKETS) -> None:
        """``prediction_bounds``: upper bounds of the predicted-value histogram (:func:`prediction_buckets`)."""
        from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, values

        own = CollectorRegistry()
        name = {family: help_text for family, _, help_text in _FAMILIES}
        self._requests = Counter("collabops_requests", name["collabops_requests"], ["status"], registry=own)
        self._latency = Histogram("collabops_request_seconds", name["collabops_request_seconds"],
                                  buckets=LATENCY_BUCKETS, registry=own)
        self._predictions = Histogram("collabops_prediction", name["collabops_prediction"],
                                      buckets=tuple(prediction_bounds), registry=own)
        self.directory: str | None = None
        source: Any = own
        if getattr(values.ValueClass, "_multiprocess", False):
            self.directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
            source = CollectorRegistry()
            multiprocess.MultiProcessCollector(source, path=self.directory)
        self._exposition = _Exposition(source)

    @property
    def multiprocess(self) -> bool:
        return self.directory is not None

    def observe(self, status: int, seconds: float, predictions: Sequence[float] | None = None) -> None:
        """One answered ``/predict`` request: its HTTP status, its latency in seconds, the values it served."""
        self._requests.labels(status=str(status)).inc()
        self._latency.observe(seconds)
        if predictions:
            _observe_all(self._predictions, predictions)

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every family, summed over all worker processes."""
        from prometheus_client.exposition import generate_latest

        return generate_latest(self._exposition)  # type: ignore[arg-type]

    def close(self) -> None:
        """This process is done: prometheus_client's bookkeeping for a dead worker (its counts stay in the sums)."""
        if self.directory is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), self.directory)


class _Exposition:
    """A collector over ``source`` that shows every family, with its help text, without ``_created``, sorted.

    (Multiprocess mode loses help texts, leaves out families no process has
    written yet and orders histogram samples differently; this makes both
    modes print the same.)
    """

    def __init__(self, source: Any) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        found = {metric.name: metric for metric in self._source.collect()}
        for name, kind, help_text in _FAMILIES:
            metric = Metric(name, help_text, kind)
            samples = found[name].samples if name in found else []
            metric.samples = sorted((s for s in samples if not s.name.endswith("_created")), key=_sample_order)
            yield metric


def _sample_order(sample: Sample) -> tuple[Any, ...]:
    labels = sorted((k, v) for k, v in sample.labels.items() if k != "le")
    return labels, _SUFFIX_ORDER.get(sample.name.rsplit("_", 1)[-1], 0), float(sample.labels.get("le", 0))


def _observe_all(histogram: Histogram, predictions: Sequence[float]) -> None:
    """``histogram.observe`` for each value; for many values, counted per bucket first and added in one step each."""
    buckets, total = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
    if len(predictions) <= _BULK or buckets is None or total is None:  # (no bulk API in prometheus_client)
        for value in predictions:
            histogram.observe(value)
        return
    import numpy as np

    array = np.asarray(predictions, dtype=np.float64)
    slots = np.searchsorted(np.asarray(histogram._upper_bounds), array, side="left")  # first bound >= value
    for bucket, count in zip(buckets, np.bincount(slots).tolist(), strict=False):  # NaN: no bucket
        if count:
            bucket.inc(count)
    total.inc(float(array.sum()))
