"""Typed settings of a model project, parsed once from its project file.

A project file (``configs/parking.yaml`` is the example) names the model,
its task, its data contract and its training configuration, the partners and
their stacks, how data and models cross between them, and how the industry
partner deploys and serves. Every command reads it through
:func:`load_project`; every default is written once, here; an unknown key is
refused naming the key and the file, so a typo never falls back to a default
in silence.

Values are checked strictly (pydantic's strict mode): ``port: "8000"`` is
refused, not turned into 8000. An integer is accepted where a float is
expected, which loses nothing (pydantic's documented strict-mode rule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from collabops.errors import ConfigError

DEFAULT_PROJECT = Path(__file__).resolve().parents[1] / "configs" / "parking.yaml"
"""The project a command uses when no ``--project`` is given."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PartnerSettings(_Settings):
    """One partner of the collaboration: the ZenML stack it runs on and who it is."""

    stack: str = Field(min_length=1)
    owner: str = ""


class ExchangeSettings(_Settings):
    """How bundles cross the boundary. Paths may start with ``~``; relative ones are relative to the project root."""

    keys_dir: str = "keys"
    """Folder of the partners' public keys (committed); private keys are never in the repository."""
    pseudonymisation_key_env: str = "COLLABOPS_PSEUDONYMISATION_KEY"
    pseudonymisation_key_file: str | None = None
    """None: ``$XDG_CONFIG_HOME/collabops/pseudonymisation.key`` (``~/.config`` by default), next to the
    signing keys; a path may start with ``~``, a relative one is relative to the project root."""
    holdout_fraction: float = Field(0.1, gt=0, lt=1)
    """Latest share of the time range the industry keeps back for its acceptance gate."""
    max_bundle_bytes: int = Field(2 * 1024 ** 3, ge=1024)
    """Largest a received bundle may be, unpacked (all its files together); checked from an archive's headers
    before anything is extracted, and extraction stops at it."""
    max_bundle_files: int = Field(1_000, ge=1)
    """Most files (archive members) a received bundle may hold."""
    max_manifest_bytes: int = Field(1024 ** 2, ge=1024)
    """Largest ``manifest.json`` read (before its signature is checked)."""
    prediction_tolerance: float = Field(1e-9, ge=0)
    """Largest difference allowed between the producer's predictions on the model bundle's reference sample
    and the receiver's re-prediction of it (at import, deploy and every service start), in the target's units."""


class AcceptanceSettings(_Settings):
    """The industry's acceptance gate on its own holdout, in the task's metric (see ``collabops.training.tasks``)."""

    metric: str | None = None
    """The metric the gate judges by; None: the task's primary metric."""
    max_error: float = Field(0.08, ge=0)
    """Absolute ceiling on the holdout, in the metric's units."""
    max_regression: float = Field(0.05, ge=0)
    """At most this share worse than the current production model, overall."""
    max_segment_regression: float = Field(0.15, ge=0)
    """And at most this share worse on any segment of the contract's segment column."""
    min_gain_over_baseline: float = Field(0.05, ge=0, lt=1)
    """The candidate must beat the seasonal baseline (fitted on the data the model was trained on) on the
    holdout by at least this share of the baseline's error."""


class ServingSettings(_Settings):
    """How the prediction service runs. One object for the server and each of its worker processes."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    """Preferred port; while an older service still holds it, the new one takes the next free port."""
    workers: int = Field(2, ge=1)
    """Server processes, one OpenMP thread each (about one per core)."""
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """Larger request bodies get HTTP 413."""
    max_records: int = Field(10_000, ge=1)
    """More records in one request get HTTP 413."""
    api_key_secret: str | None = None
    """Name of a ZenML secret with an ``api_key`` value; None: no key required."""
    start_timeout: int = Field(120, ge=1)
    """Seconds a new service may take to answer its health check."""
    log_flush_seconds: float = Field(2.0, gt=0)
    """How often the inference log writes what it buffered."""


class SmokeTestSettings(_Settings):
    """What a new service must answer before it may replace the running one."""

    rows: int = Field(20, ge=1)
    """Holdout rows sent to the new service."""
    tolerance: float = Field(1e-6, ge=0)
    """Largest allowed difference from the model's own predictions."""


class PromotionSettings(_Settings):
    """The university's champion/challenger rule after each training run."""

    min_improvement: float = Field(0.01, ge=0, lt=1)
    """A challenger replaces the champion only when better by at least this share of the champion's error
    on the comparison rows."""


class DataSettings(_Settings):
    """What training data (``train`` and ``export-data``) may hold beyond the contract's column rules."""

    max_days_ahead: float = Field(1.0, ge=0)
    """Times later than now plus this many days are refused (a training row describes the past)."""


class MonitoringSettings(_Settings):
    """The industry's monitoring of the production model: what counts as drift, and what happens then.

    Distances are Evidently's effect sizes, not p-values (which call every
    difference significant on large samples): the Wasserstein distance
    divided by the reference's standard deviation for numerical columns, the
    Jensen-Shannon distance for categorical and boolean ones (both in [0, ...),
    0 = same distribution). See docs/monitoring.md.
    """

    drift_threshold: float = Field(0.1, gt=0)
    """A column has drifted when its distance is at least this (Evidently's default for both distances)."""
    column_thresholds: dict[str, float] = {}
    """Per-column thresholds, for columns whose distribution varies on its own from one year's season to the
    next (weather): ``{temperature_c: 0.3}``."""
    drift_share: float = Field(0.5, gt=0, le=1)
    """The verdict is ``drift`` when at least this share of the monitored features drifted (Evidently's
    dataset-drift rule), or the prediction drifted, or the live error passed ``max_error_ratio``."""
    season_window_days: int = Field(21, ge=0, le=183)
    """The reference's season for a period: its rows whose day of the year lies within this many days of one
    of the period's days (on the contract's clock)."""
    min_season_rows: int = Field(1000, ge=1)
    """Fewer reference rows in the season: the nearest rows by day of the year are used, and the verdict is at
    least ``warning`` (the reference does not cover this season)."""
    min_rows: int = Field(500, ge=1)
    """Fewer current rows: too few to judge drift; the verdict is at least ``warning``."""
    sample_rows: int = Field(200_000, ge=1_000)
    """Larger periods are compared through a seeded sample of this many rows, stratified by segment and day;
    a column whose sampled distance lies within the sampling error bound of its threshold is measured again on
    every row (docs/monitoring.md)."""
    sample_error_probability: float = Field(1e-3, gt=0, lt=1)
    """The chance, per column, that the sampled distance is further from the distance on every row than the
    stated bound."""
    seed: int = Field(0, ge=0)
    max_null_increase: float = Field(0.05, ge=0, le=1)
    """A column's share of nulls may exceed the reference's by at most this before it is a quality problem."""
    max_new_share: float = Field(0.01, ge=0, le=1)
    """New categories or values outside the reference's range in more than this share of the rows: a quality
    problem (``warning``); fewer are listed with the verdict but do not change it."""
    warning_error_ratio: float = Field(1.1, ge=1)
    """Live error above the promised error times this: ``warning``."""
    max_error_ratio: float = Field(1.25, ge=1)
    """Live error above the promised error times this: ``drift``."""
    max_segment_error_ratio: float = Field(1.5, ge=1)
    """A segment's live error above its promised error times this: ``warning`` (segments are smaller and their
    errors vary more with the season than the whole)."""
    min_outcome_rows: int = Field(100, ge=1)
    """Fewer rows with outcomes: the live error is not judged (it is shown, with the count)."""
    export_on_drift: bool = True
    """On ``drift``, export the period's rows (with their outcomes) as a signed data bundle with a retraining
    request, when the period's full rows are at hand."""
    exchange_dir: str | None = None
    """Where the retraining bundle is written; None: ``$XDG_DATA_HOME/collabops/exchange`` (``~/.local/share``
    by default), outside the repository; ``~`` allowed, a relative path is relative to the project root."""

    @model_validator(mode="after")
    def _ratios_in_order(self) -> MonitoringSettings:
        if self.warning_error_ratio > self.max_error_ratio:
            raise ValueError(f"warning_error_ratio {self.warning_error_ratio} is above max_error_ratio "
                             f"{self.max_error_ratio}")
        for column, value in self.column_thresholds.items():
            if value <= 0:
                raise ValueError(f"column_thresholds.{column}: {value} is not above 0")
        return self

    def threshold(self, column: str) -> float:
        return self.column_thresholds.get(column, self.drift_threshold)


class DeploymentSettings(_Settings):
    """The industry side: what a model must pass before it serves, and how it is served."""

    require_approval: bool = False
    """True: deploy refuses a version until ``python run.py approve N --by NAME``."""
    acceptance: AcceptanceSettings = AcceptanceSettings()
    serving: ServingSettings = ServingSettings()
    smoke_test: SmokeTestSettings = SmokeTestSettings()


class ProjectSettings(_Settings):
    """A model project: what is learned, from which contract, between which partners.

    ``contract`` and ``training`` are paths relative to the project file's
    folder (or absolute); :attr:`contract_path` and :attr:`training_path`
    resolve them.
    """

    name: str = Field(min_length=1)
    description: str = ""
    model_name: str = Field(min_length=1, pattern=r"\S")
    """The ZenML model the versions belong to; written here only."""
    task: str = "regression"
    contract: str = Field(min_length=1)
    training: str = Field(min_length=1)
    default_partner: str
    partners: dict[str, PartnerSettings]
    data: DataSettings = DataSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    promotion: PromotionSettings = PromotionSettings()
    deployment: DeploymentSettings = DeploymentSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    source: str = Field("", exclude=True)
    """The project file this was read from (set by :func:`load_project`)."""

    @model_validator(mode="after")
    def _default_partner_is_a_partner(self) -> ProjectSettings:
        if self.default_partner not in self.partners:
            raise ValueError(f"default_partner '{self.default_partner}' is not one of the partners "
                             f"({', '.join(sorted(self.partners))})")
        return self

    @property
    def folder(self) -> Path:
        return Path(self.source).parent if self.source else DEFAULT_PROJECT.parent

    @property
    def root(self) -> Path:
        """The project root: relative exchange paths are relative to it."""
        return _repository_root(self.folder)

    @property
    def contract_path(self) -> Path:
        return _resolve(self.folder, self.contract)

    @property
    def training_path(self) -> Path:
        return _resolve(self.folder, self.training)

    @property
    def keys_dir(self) -> Path:
        return _resolve(self.root, self.exchange.keys_dir)

    @property
    def exchange_dir(self) -> Path:
        """Where monitoring writes retraining bundles: ``monitoring.exchange_dir``, else the XDG default."""
        if self.monitoring.exchange_dir:
            return _resolve(self.root, self.monitoring.exchange_dir)
        import os

        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return base / "collabops" / "exchange"

    @property
    def pseudonymisation_key_path(self) -> Path:
        """The pseudonymisation key file: ``exchange.pseudonymisation_key_file``, else the XDG default."""
        if self.exchange.pseudonymisation_key_file:
            return _resolve(self.root, self.exchange.pseudonymisation_key_file)
        import os

        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        return base / "collabops" / "pseudonymisation.key"

    def stack_of(self, partner: str) -> str:
        """The stack of ``partner``; refuses an unknown partner naming the known ones."""
        try:
            return self.partners[partner].stack
        except KeyError:
            raise ConfigError(f"unknown partner '{partner}' (partners in {self.source}: "
                              f"{', '.join(sorted(self.partners))})") from None

    def partner_of(self, stack: str) -> str | None:
        return next((name for name, p in self.partners.items() if p.stack == stack), None)

    @property
    def owners(self) -> dict[str, str]:
        return {name: p.owner or name for name, p in self.partners.items()}


def _resolve(base: Path, path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (base / candidate).resolve()


def _repository_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` that holds ``run.py``; else ``start`` itself.

    A project file kept outside any checkout (``~/proj/parking.yaml``) has its
    own folder as root: relative paths in it (``keys_dir: keys``) are read
    next to it, never from its parent folder.
    """
    for folder in [start, *start.parents]:
        if (folder / "run.py").is_file():
            return folder
    return start


def load_project(path: Path | str | None = None) -> ProjectSettings:
    """Read and check a project file; ``ConfigError`` names the file and every wrong or unknown key."""
    path = Path(path) if path is not None else DEFAULT_PROJECT
    raw = read_yaml_mapping(path, "project file")
    try:
        return ProjectSettings.model_validate({**raw, "source": str(path.resolve())})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from None


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping; errors name the file. A key written twice in one mapping is refused
    (YAML loaders keep the last one in silence)."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of settings")
    _refuse_repeated_keys(path)
    return raw


def _refuse_repeated_keys(path: Path) -> None:
    """``ConfigError`` naming the first key written twice in one mapping of a YAML file (and both lines)."""
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    pending: list[tuple[Any, str]] = [(root, "")]
    while pending:
        node, where = pending.pop()
        if isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name is not None and name in lines:
                    raise ConfigError(f"{path}: key '{where}{name}' is written twice (lines {lines[name]} and "
                                      f"{key.start_mark.line + 1}); write each key once")
                if name is not None:
                    lines[name] = key.start_mark.line + 1
                pending.append((value, f"{where}{name}."))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, f"{where[:-1]}[{i}].") for i, item in enumerate(node.value))


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """pydantic's errors as one message: the file, then each key path and what is wrong with it."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown setting")
        elif error["type"] == "missing":
            problems.append(f"{where}: required setting is missing")
        elif not error["loc"] or isinstance(error.get("input"), dict):  # the input is a whole section: not shown
            problems.append(f"{where}: {error['msg']}")
        else:
            problems.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return f"{source}: " + ("; ".join(problems) if len(problems) <= 1 else
                            f"{len(problems)} problems: " + "; ".join(problems))


TRAINING_PARAMETERS = ("generator", "split", "search")
_PROJECT_KEYS = {"model_name": "model_name", "task": "task", "contract_path": "contract"}


def load_training_config(path: Path) -> dict[str, Any]:
    """The training pipeline's ZenML run configuration, its ``parameters`` checked once.

    ``parameters`` may hold ``generator``, ``split`` and ``search`` (each
    parsed here by its own settings class, so a mistake is refused before a
    run exists); the model name, task and contract belong to the project
    file and are refused here, naming the project key to use instead.
    Raises ``ConfigError`` naming the file and key.
    """
    from collabops.data.split import SplitSettings
    from collabops.training.search import SearchSettings

    config = read_yaml_mapping(path, "training config")
    parameters = config.get("parameters")
    if not isinstance(parameters, dict):
        raise ConfigError(f"{path}: needs a 'parameters' mapping (see configs/training.yaml)")
    for key in parameters:
        if key in _PROJECT_KEYS:
            raise ConfigError(f"{path}: parameters.{key} belongs in the project file, as '{_PROJECT_KEYS[key]}' "
                              "(see configs/parking.yaml)")
        if key not in TRAINING_PARAMETERS:
            raise ConfigError(f"{path}: parameters.{key}: unknown setting (known: {', '.join(TRAINING_PARAMETERS)})")
    for key, parse in (("split", SplitSettings.from_dict), ("search", SearchSettings.from_dict),
                       ("generator", _generator_settings)):
        value = parameters.get(key)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{path}: parameters.{key} must be a mapping of settings, not {value!r}")
        try:
            parse(value)
        except ConfigError as exc:
            text = str(exc)
            raise ConfigError(f"{path}: {text if text.startswith(key) else f'{key}: {text}'}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: parameters.{key}: {exc}") from None
    return config


def _generator_settings(raw: dict[str, Any] | None) -> Any:
    """The example generator's settings, refused unless whole numbers of months and series are at least 1."""
    from collabops.data.generator import GeneratorSettings

    settings = GeneratorSettings(**(raw or {}))
    for name in ("months", "car_parks", "seed"):
        value = getattr(settings, name)
        if type(value) is not int:
            raise ConfigError(f"generator.{name} must be a whole number, not {value!r}")
    if settings.months < 1 or settings.car_parks < 1:
        raise ConfigError(f"generator: months and car_parks must be at least 1 (got {settings.months} and "
                          f"{settings.car_parks})")
    return settings
