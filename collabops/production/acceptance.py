"""The industry partner's acceptance gate, on its own holdout.

A model version from the university reaches production only if, on the
holdout the university never saw, its error is below an absolute ceiling and
it is not worse than the current production model beyond an allowed margin,
overall and per segment. The report puts the figures side by side with the
university's own, so both partners can see where they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from collabops.errors import ConfigError


@dataclass(frozen=True)
class AcceptanceThresholds:
    """Limits on the primary metric (an error: lower is better)."""

    max_error: float = 0.08
    max_regression: float = 0.05
    max_segment_regression: float = 0.15

    @classmethod
    def from_dict(cls, raw: Optional[dict[str, Any]]) -> "AcceptanceThresholds":
        raw = dict(raw or {})
        known = {"max_error", "max_regression", "max_segment_regression"}
        unknown = sorted(set(raw) - known - {"require_approval"})
        if unknown:
            raise ConfigError(f"acceptance: unknown setting(s) {', '.join(unknown)}")
        values = {k: float(v) for k, v in raw.items() if k in known}
        for name, value in values.items():
            if value < 0:
                raise ConfigError(f"acceptance.{name} must not be negative, got {value}")
        return cls(**values)


@dataclass
class AcceptanceReport:
    passed: bool
    reasons: list[str]
    metric: str
    candidate: dict[str, Any]
    production: Optional[dict[str, Any]] = None
    university: Optional[dict[str, Any]] = None
    thresholds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "failures": self.failures, "metric": self.metric,
                "candidate": self.candidate, "production": self.production or {}, "thresholds": self.thresholds}

    def markdown(self) -> str:
        """The report as a table: candidate, production and the university's figures side by side."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"# Acceptance gate: {verdict}", ""] + [f"- {r}" for r in self.reasons] + [""]
        lines += [f"| {self.metric} on | candidate (our holdout) | production (our holdout) | university (their test) |",
                  "|---|---|---|---|"]
        lines.append(self._row("overall", self.candidate.get("overall", {}).get(self.metric),
                               (self.production or {}).get("overall", {}).get(self.metric),
                               (self.university or {}).get("overall", {}).get(self.metric)))
        for segment, value in sorted(self.candidate.get("by_segment", {}).items()):
            lines.append(self._row(segment, value, (self.production or {}).get("by_segment", {}).get(segment),
                                   (self.university or {}).get("by_segment", {}).get(segment)))
        return "\n".join(lines) + "\n"

    @staticmethod
    def _row(name: str, *values: Optional[float]) -> str:
        return f"| {name} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in values) + " |"


def gate(candidate: dict[str, Any], thresholds: AcceptanceThresholds, metric: str = "mae",
         production: Optional[dict[str, Any]] = None, university: Optional[dict[str, Any]] = None) -> AcceptanceReport:
    """Judge a candidate's holdout evaluation (``{"overall": {...}, "by_segment": {...}}``)."""
    reasons: list[str] = []
    failures: list[str] = []
    error = float(candidate["overall"][metric])
    if error > thresholds.max_error:
        failures.append(f"{metric} {error:.4f} on our holdout is above the ceiling {thresholds.max_error:.4f}")
    else:
        reasons.append(f"{metric} {error:.4f} on our holdout is within the ceiling {thresholds.max_error:.4f}")
    if production is None:
        reasons.append("no production model to compare with")
    else:
        reference = float(production["overall"][metric])
        allowed = reference * (1 + thresholds.max_regression)
        if error > allowed:
            failures.append(f"{metric} {error:.4f} is worse than production's {reference:.4f} by more than "
                           f"{thresholds.max_regression:.0%}")
        else:
            reasons.append(f"{metric} {error:.4f} vs production's {reference:.4f}: within the "
                           f"{thresholds.max_regression:.0%} margin")
        for segment, value in sorted(candidate.get("by_segment", {}).items()):
            base = production.get("by_segment", {}).get(segment)
            if base is not None and value > base * (1 + thresholds.max_segment_regression):
                failures.append(f"segment '{segment}': {metric} {value:.4f} is worse than production's {base:.4f} "
                               f"by more than {thresholds.max_segment_regression:.0%}")
        if not any(f.startswith("segment ") for f in failures):
            reasons.append(f"every segment within the {thresholds.max_segment_regression:.0%} margin of production")
    return AcceptanceReport(passed=not failures, reasons=failures + reasons, metric=metric, candidate=candidate,
                            production=production, university=university, thresholds=thresholds.__dict__.copy(),
                            failures=failures)
