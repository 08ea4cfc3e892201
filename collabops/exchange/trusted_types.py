"""Types a saved model may contain, for loading without running arbitrary code.

Models are saved with skops, which refuses to load any type not explicitly
trusted. This list is the project's explicit trust: scikit-learn's own
building blocks plus the project's transformers and baseline.
"""

from __future__ import annotations

from typing import Any

TRUSTED_TYPES = [
    "collabops.training.baseline.SeasonalProfileBaseline",
    "collabops.training.features.CalendarFeatures",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._encoders.OneHotEncoder",
]


def untrusted_types(model: Any) -> list[str]:
    """Types in ``model`` that are neither trusted by skops by default nor listed here."""
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return sorted(set(found) - set(TRUSTED_TYPES))
