"""The model card that travels with a model bundle (Markdown)."""

from __future__ import annotations

from typing import Any, Optional


def render(model_name: str, version: str, contract_name: str, task: str, metrics: dict[str, Any],
           baseline_metrics: dict[str, Any], periods: dict[str, Any], producer: dict[str, Any],
           owners: dict[str, str], best_params: Optional[dict[str, Any]] = None) -> str:
    """Intended use, data period, metrics overall and per segment, limitations, owners."""
    overall, base = metrics.get("overall", {}), baseline_metrics.get("overall", {})
    lines = [
        f"# Model card: {model_name} version {version}",
        "",
        "## Intended use",
        f"Forecast `{contract_name}` ({task}) for the industry partner's own car parks, one hour at a time, "
        "from calendar, weather, event and price inputs. Personal columns are never inputs.",
        "",
        "## Data",
    ]
    for name in ("train", "validation", "test"):
        part = periods.get(name)
        if part:
            lines.append(f"- {name}: {part['start']} to {part['end']} ({part['rows']:,} rows)")
    lines += ["", "## Metrics on the test period", "", "| metric | model | seasonal baseline |", "|---|---|---|"]
    for key in ("mae", "rmse", "r2"):
        if key in overall:
            lines.append(f"| {key.upper()} | {overall[key]:.4f} | {base.get(key, float('nan')):.4f} |")
    for group, title in (("by_segment", "car-park kind"), ("by_hour_band", "hour band")):
        if metrics.get(group):
            lines += ["", f"MAE per {title}:", "", f"| {title} | model | baseline |", "|---|---|---|"]
            for key, value in sorted(metrics[group].items()):
                lines.append(f"| {key} | {value:.4f} | {baseline_metrics.get(group, {}).get(key, float('nan')):.4f} |")
    if best_params:
        lines += ["", "## Training", "", "Hyperparameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(best_params.items()))]
    lines += [
        "",
        "## Limitations",
        "- Trained on the period above; seasons, tariffs or car-park kinds not seen there are extrapolated.",
        "- Errors are largest where the test period differs from training (see the per-kind table).",
        "- Monitor drift against the reference profile in this bundle and retrain when it fires.",
        "",
        "## Provenance and owners",
        f"- produced by: {producer.get('partner')} on stack {producer.get('stack')}, "
        f"ZenML run {producer.get('zenml_run_id')}, code {producer.get('code_revision')}",
    ]
    lines += [f"- {role}: {who}" for role, who in owners.items()]
    return "\n".join(lines) + "\n"
