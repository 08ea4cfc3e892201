"""collabops: the plain library behind the pipelines.

Nothing in this package imports ZenML: it holds the logic (data contract,
example data, splitting, models, metrics, promotion rule, plots) that the
ZenML steps call and that the unit tests exercise directly.
"""

__version__ = "0.1.0"
