"""The model card that travels with a model bundle (Markdown).

Its wording comes from the project and the contract (the project's
description, the contract's target, features and segment column), so the
same code writes the card of any model project.
"""

from __future__ import annotations

from typing import Any

from collabops.data.contract import DataContract


def render(model_name: str, version: str, description: str, contract: DataContract, task: str,
           metrics: dict[str, Any], baseline_metrics: dict[str, Any], periods: dict[str, Any],
           producer: dict[str, Any], owners: dict[str, str], best_params: dict[str, Any] | None = None,
           primary_metric: str = "") -> str:
    """Intended use, data period, metrics overall and per segment, limitations, owners.

    ``metrics`` and ``baseline_metrics`` have the shape the evaluation writes:
    ``{"overall": {metric: value}, "by_segment": {segment: value}, "by_hour_band": {...}}``.
    """
    overall, base = metrics.get("overall", {}), baseline_metrics.get("overall", {})
    features = ", ".join(f"`{name}`" for name in contract.feature_columns)
    lines = [
        f"# Model card: {model_name} version {version}",
        "",
        "## Intended use",
        (description + " " if description else "")
        + f"Predicts `{contract.target}` ({task}) of the contract `{contract.name}` from {features}. "
        "Personal columns are never inputs.",
        "",
        "## Data",
    ]
    for name in ("train", "validation", "test"):
        part = periods.get(name)
        if part:
            lines.append(f"- {name}: {part['start']} to {part['end']} ({part['rows']:,} rows)")
    lines += ["", "## Metrics on the test period", "", "| metric | model | baseline |", "|---|---|---|"]
    for key, value in overall.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lines.append(f"| {key.upper()} | {value:.4f} | {base.get(key, float('nan')):.4f} |")
    segment = contract.segment_column or "segment"
    label = primary_metric.upper() or "error"
    for group, title in (("by_segment", f"`{segment}`"), ("by_hour_band", "hour band")):
        if metrics.get(group):
            lines += ["", f"{label} per {title}:", "", f"| {title} | model | baseline |", "|---|---|---|"]
            for key, value in sorted(metrics[group].items()):
                lines.append(f"| {key} | {value:.4f} | {baseline_metrics.get(group, {}).get(key, float('nan')):.4f} |")
    if best_params:
        lines += ["", "## Training", "",
                  "Hyperparameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(best_params.items()))]
    lines += [
        "",
        "## Limitations",
        "- Trained on the period above; values and categories not seen there are extrapolated.",
        f"- Errors are largest where the test period differs from training (see the per-`{segment}` table).",
        "- Monitor drift against the reference profile in this bundle and retrain when it fires.",
        "",
        "## Provenance and owners",
        f"- produced by: {producer.get('partner')} on stack {producer.get('stack')}, "
        f"ZenML run {producer.get('zenml_run_id')}, code {producer.get('code_revision')}",
    ]
    lines += [f"- {role}: {who}" for role, who in owners.items()]
    return "\n".join(lines) + "\n"
