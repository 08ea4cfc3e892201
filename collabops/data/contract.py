"""The data contract: what a valid dataset looks like, kept as a YAML file.

Both partners validate against the same contract file, so changing the
dataset means editing ``configs/contract.yaml``, not code. The contract says,
for every column, its type, allowed range or categories, whether it may be
null and whether it is personal data, and which columns are the time, the
target, the series entity and the reporting segment. The contract compiles
into column rules (:mod:`collabops.data.rules`), the one definition of what a
value means that frames, file chunks and request records all use. Frames are
validated by the pandera schema built from those rules; this module turns
pandera's failure table into one message that names the file, the column and
the first offending rows.

The contract names the clock of its times (``time_zone``, an IANA name;
default UTC): naive times are wall time there, times with an offset are
converted into it (see the rules' module docstring). Training data may not
lie in the future beyond a horizon (:meth:`DataContract.check_horizon`).

A contract file is read strictly: an unknown key (at the top or in a
column), a key written twice in the YAML, a value of the wrong type
(``nullable: "yes"``), ``min`` above ``max`` or an unknown time zone are
refused naming the file and the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collabops.data import rules as rules_module
from collabops.errors import ConfigError, DataError

COLUMN_TYPES = ("datetime", "string", "category", "int", "float", "bool")
CONTRACT_FIELDS = ("name", "version", "description", "time_column", "time_zone", "target", "entity_column",
                   "segment_column", "columns")
"""The keys a contract file may have at its top level."""
COLUMN_FIELDS = ("name", "type", "nullable", "personal", "min", "max", "categories", "description", "max_length")
"""The keys a column of the contract may have."""
_MAX_ROWS_SHOWN = 3
_MAX_PROBLEMS_SHOWN = 10


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the contract."""

    name: str
    type: str
    nullable: bool = False
    personal: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    description: str = ""
    max_length: int | None = None
    """Longest text a string column accepts (None: ``rules.DEFAULT_MAX_LENGTH``)."""

    def describe_domain(self) -> str:
        """Human-readable allowed values, for error messages."""
        if self.categories is not None:
            return "one of " + ", ".join(self.categories)
        if self.min is not None and self.max is not None:
            return f"in [{self.min:g}, {self.max:g}]"
        if self.min is not None:
            return f">= {self.min:g}"
        if self.max is not None:
            return f"<= {self.max:g}"
        return f"of type {self.type}"


@dataclass(frozen=True)
class DataContract:
    """A parsed data contract. Build it with :func:`load_contract`."""

    name: str
    version: int
    time_column: str
    target: str
    entity_column: str | None
    """The series a row belongs to; None: the data is one time series."""
    segment_column: str | None
    """Metrics are also reported per value of this column; None: overall only."""
    columns: tuple[ColumnSpec, ...]
    description: str = ""
    time_zone: str = rules_module.DEFAULT_TIME_ZONE
    """The clock of the datetime columns (IANA name): naive times are wall time there."""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key_columns(self) -> list[str]:
        """The columns that identify a row: (entity, time), or time alone for one series."""
        return [self.entity_column, self.time_column] if self.entity_column else [self.time_column]

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def personal_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.personal]

    @property
    def feature_columns(self) -> list[str]:
        """Columns a model may read: everything but the target and personal data."""
        return [c.name for c in self.columns if not c.personal and c.name != self.target]

    def digest(self) -> str:
        """SHA-256 of the contract's canonical JSON form; bundles carry it.

        The time zone is part of it; ``time_zone: UTC`` and no ``time_zone``
        mean the same and give the same digest (so a contract written before
        the field existed keeps its digest).
        """
        raw = {k: v for k, v in self.raw.items() if k != "time_zone"}
        if self.time_zone != rules_module.DEFAULT_TIME_ZONE:
            raw["time_zone"] = self.time_zone
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def validate(self, frame: pd.DataFrame, source: str, columns: list[str] | None = None,
                 row_offset: int = 0, clock: rules_module.RepeatedHours | None = None) -> pd.DataFrame:
        """Return ``frame[columns]`` converted to the contract's types, or raise ``DataError``.

        The contract's column rules (:mod:`collabops.data.rules`) decide, as a
        pandera schema: nothing is converted with a loss (``"717"`` is not an
        int, 500.9 is not an int, 1 is not a bool, a number is not a string or
        a timestamp). The result has the columns' final dtypes
        (``datetime64[ns, <time_zone>]``, int64 or Int64 when nullable,
        float64, bool or boolean when nullable, object for text). Read files
        with ``dataset.read_table(path, contract)`` so that their spellings
        (``true``/``0``, numbers as text) are read first.

        Times: naive values are wall time in :attr:`time_zone` (a wall time in
        the spring gap is refused by row; the repeated autumn hour is resolved
        by order of appearance per entity, counting from what ``clock`` has
        seen, which is then updated: batch scoring passes one per file);
        values with an offset are converted into the zone.

        ``source`` names the data (usually its file path) in the error message.
        Rows in messages are counted from 1, header excluded; ``row_offset``
        shifts them when ``frame`` is a chunk of a larger file. ``columns``
        limits the check to those columns (scoring needs only the features).
        Refused: no rows, a column missing or present twice, any value its
        rule refuses, a repeated (entity, time) key (compared as instants).
        """
        import pandera.errors

        if len(frame) == 0:
            raise DataError(f"{source}: has a header but no data rows")
        wanted = list(columns) if columns is not None else self.column_names
        names = list(map(str, frame.columns))
        twice = [name for name in wanted if names.count(name) > 1]
        if twice:
            raise DataError(f"{source}: column '{twice[0]}' appears {names.count(twice[0])} times; "
                            "each column must appear once")
        missing = [name for name in wanted if name not in frame.columns]
        if missing:
            present = ", ".join(map(str, frame.columns))
            raise DataError(
                f"{source}: missing required column(s) {', '.join(repr(m) for m in missing)} "
                f"(the contract '{self.name}' needs them; the file has: {present})"
            )
        frame = frame[wanted].reset_index(drop=True)
        if row_offset:
            frame.index = frame.index + row_offset
        rules = self.rules
        checked = rules.check_frame(frame, wanted, clock=clock)
        try:
            validated = rules.schema(wanted).validate(checked.values, lazy=True)
        except pandera.errors.SchemaErrors as exc:
            raise DataError(_describe_failures(self, exc.failure_cases, source)) from None
        if not checked.ok:  # the schema runs the same checks: this would be a bug in the rules
            raise DataError(_describe_problems(self, checked.problems, source))
        if clock is not None:
            clock.add(checked.repeated)
        return validated.reset_index(drop=True) if row_offset else validated

    @property
    def rules(self) -> rules_module.ContractRules:
        """The contract compiled into column rules (once per contract)."""
        return rules_module.rules_for(self)

    def check_horizon(self, frame: pd.DataFrame, source: str, max_days_ahead: float,
                      now: dt.datetime | None = None) -> None:
        """Refuse times later than ``now`` plus ``max_days_ahead`` days: training data describes the past.

        ``frame`` is validated (its time column aware, rows counted from 1 in
        order); ``now`` is an aware datetime (default: the current time; a
        naive one raises ``ValueError``). Raises ``DataError`` naming the
        file, the time column, the limit and the first rows beyond it.
        """
        now = dt.datetime.now(dt.UTC) if now is None else now
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("check_horizon: 'now' must be an aware datetime")
        limit = pd.Timestamp(now).tz_convert(rules_module.zone_dtype(self.time_zone).tz) + \
            pd.Timedelta(days=max_days_ahead)
        times = frame[self.time_column]
        late = np.flatnonzero((times > limit).to_numpy())
        if len(late):
            examples = [f"{_show(times.iloc[i])} (row {i + 1})" for i in late[:_MAX_ROWS_SHOWN]]
            raise DataError(
                f"{source}: column '{self.time_column}': {len(late)} time(s) later than {limit.isoformat()} "
                f"(now + {max_days_ahead:g} day(s); the project's data.max_days_ahead): "
                f"{_shown(examples, len(late))}; training data describes the past")

    def check_trainable(self, frame: pd.DataFrame, source: str) -> None:
        """Refuse a target with a single value: there is nothing to learn from it."""
        values = frame[self.target].dropna().unique()
        if len(values) <= 1:
            only = _show(values[0]) if len(values) else "null"
            raise DataError(f"{source}: column '{self.target}' (the target) is constant: every row is {only}; "
                            "a model cannot learn anything from it")


def _describe_failures(contract: DataContract, failures: pd.DataFrame, source: str) -> str:
    """Condense pandera's failure-case table into one message per column and check."""
    problems: list[str] = []
    checks = failures["check"].astype(str)
    duplicates = failures[checks.str.startswith("multiple_fields_uniqueness")]
    if len(duplicates):  # one line for the key, not one per key column
        failures = failures[~checks.str.startswith("multiple_fields_uniqueness")]
        keys = contract.key_columns
        cases = duplicates.pivot_table(index="index", columns="column", values="failure_case", aggfunc="first")
        examples = [f"({', '.join(_show(row.get(k)) for k in keys)}) (row {int(i) + 1})"
                    for i, row in cases.sort_index().iterrows()]
        problems.append(_problem_text(contract, "None", "multiple_fields_uniqueness", len(examples),
                                      _shown(examples, len(examples))))
    for (column, check), group in failures.groupby(["column", "check"], sort=False, dropna=False):
        group = group.sort_values("index", kind="stable")
        rows = [int(i) + 1 for i in group["index"].dropna().tolist()]
        cases = list(group["failure_case"])
        examples = [f"{_show(case)} (row {row})" for case, row in zip(cases, rows, strict=False)] if rows else \
            [_show(case) for case in cases]
        problem = _problem_text(contract, str(column), str(check), len(group), _shown(examples, len(group)))
        if problem not in problems:
            problems.append(problem)
    return _message(contract, problems, source)


def _describe_problems(contract: DataContract, found: tuple[rules_module.FrameProblem, ...], source: str) -> str:
    """The rules' own problems in the same words (used only if pandera and the rules were ever to disagree)."""
    check = {rules_module.NULL: "not_nullable", rules_module.DUPLICATE: "multiple_fields_uniqueness"}
    problems = []
    for problem in found:
        examples = [f"row {row + 1}" for row in problem.rows]
        name = check.get(problem.problem, rules_module.CHECK_PREFIX + problem.problem)
        problems.append(_problem_text(contract, problem.column if problem.problem != rules_module.DUPLICATE
                                      else "None", name, len(problem.rows), _shown(examples, len(examples))))
    return _message(contract, problems, source)


def _shown(examples: list[str], count: int) -> str:
    if count <= _MAX_ROWS_SHOWN:
        return ", ".join(examples)
    return ", ".join(examples[:_MAX_ROWS_SHOWN]) + f", ... ({count} rows in all)"


def _message(contract: DataContract, problems: list[str], source: str) -> str:
    head = f"{source}: {len(problems)} problem(s) against the data contract '{contract.name}':"
    lines = problems[:_MAX_PROBLEMS_SHOWN]
    if len(problems) > _MAX_PROBLEMS_SHOWN:
        lines.append(f"... and {len(problems) - _MAX_PROBLEMS_SHOWN} more")
    return "\n".join([head] + [f"  - {line}" for line in lines])


def _show(value: Any) -> str:
    """A value as the user wrote it: numbers plain, text quoted (long text cut), numpy scalars unwrapped."""
    return rules_module.show(value)


def _problem_text(contract: DataContract, column: str, check: str, count: int, shown: str) -> str:
    if column in ("None", "nan") or check.startswith("multiple_fields_uniqueness"):
        keys = f"({', '.join(contract.key_columns)})"
        return f"duplicate rows for {keys}: {shown}"
    try:
        spec = contract.column(column)
    except KeyError:
        return f"column '{column}': failed {check}: {shown}"
    if check == rules_module.CHECK_PREFIX + rules_module.TYPE:
        return f"column '{column}': values are not of type {spec.type}: {shown}"
    if check == "not_nullable":
        return f"column '{column}': {count} null value(s) but the column is not nullable: {shown}"
    if check == rules_module.CHECK_PREFIX + rules_module.GAP:
        return (f"column '{column}': {count} wall time(s) that do not exist in {contract.time_zone} (the clocks "
                f"jump over them): {shown}")
    if check == rules_module.CHECK_PREFIX + rules_module.LENGTH:
        limit = contract.rules.rule(column).max_length
        return f"column '{column}': {count} value(s) longer than {limit} characters: {shown}"
    return f"column '{column}': {count} value(s) not {spec.describe_domain()}: {shown}"


def load_contract(path: str | Path) -> DataContract:
    """Read and check a contract YAML file; errors (``ConfigError``) name the file and field.

    Refused besides what :func:`contract_from_dict` refuses: a file that is
    missing, not UTF-8, not YAML or not a mapping, and a key written twice in
    one mapping (YAML would silently keep the last).
    """
    from collabops.settings import read_yaml_mapping

    path = Path(path)
    raw = read_yaml_mapping(path, "data contract file")  # also refuses a key written twice
    return contract_from_dict(raw, source=str(path))


def contract_from_dict(raw: dict[str, Any], source: str = "contract") -> DataContract:
    """Build a contract from its dict form (the parsed YAML); ``ConfigError`` names ``source`` and the field.

    Refused: a missing or unknown top-level field, a field of the wrong type
    (text for names, a whole number for ``version``), an unknown time zone,
    a role naming no column, and whatever :func:`_column_from_dict` refuses.
    """

    def need(key: str) -> Any:
        if key not in raw:
            raise ConfigError(f"{source}: missing field '{key}'")
        return raw[key]

    def text(key: str, value: Any, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or (not value and key != "description"):
            raise ConfigError(f"{source}: '{key}' must be {'text or null' if optional else 'text'}, not {value!r}")
        return value

    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a data contract must be a mapping of fields")
    unknown = sorted(map(str, set(raw) - set(CONTRACT_FIELDS)))
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)} (known: {', '.join(CONTRACT_FIELDS)})")
    columns_raw = need("columns")
    if not isinstance(columns_raw, list) or not columns_raw:
        raise ConfigError(f"{source}: 'columns' must be a non-empty list")
    columns = tuple(_column_from_dict(item, i, source) for i, item in enumerate(columns_raw))
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: column(s) listed twice: {', '.join(duplicates)}")
    version = need("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"{source}: 'version' must be a whole number, not {version!r}")
    time_zone = raw.get("time_zone", rules_module.DEFAULT_TIME_ZONE)
    try:
        rules_module.check_time_zone(time_zone)
    except ValueError as exc:
        raise ConfigError(f"{source}: 'time_zone' {exc}") from None
    contract = DataContract(
        name=str(text("name", need("name"))),
        version=version,
        time_column=str(text("time_column", need("time_column"))),
        target=str(text("target", need("target"))),
        entity_column=text("entity_column", raw.get("entity_column"), optional=True),
        segment_column=text("segment_column", raw.get("segment_column"), optional=True),
        columns=columns,
        description=str(text("description", raw.get("description", ""))),
        time_zone=time_zone,
        raw=raw,
    )
    roles = [role for role in ("time_column", "target", "entity_column", "segment_column")
             if getattr(contract, role) is not None]
    for role in roles:
        name = getattr(contract, role)
        if name not in names:
            raise ConfigError(f"{source}: {role} '{name}' is not one of the columns")
    if contract.column(contract.time_column).type != "datetime":
        raise ConfigError(f"{source}: time_column '{contract.time_column}' must have type datetime")
    for role in roles:
        spec = contract.column(getattr(contract, role))
        if spec.personal:
            raise ConfigError(f"{source}: {role} '{spec.name}' cannot be personal data")
    return contract


def _column_from_dict(item: Any, index: int, source: str) -> ColumnSpec:
    where = f"{source}: columns[{index}]"
    if not isinstance(item, dict) or "name" not in item or "type" not in item:
        raise ConfigError(f"{where}: each column needs at least 'name' and 'type'")
    if not isinstance(item["name"], str) or not item["name"]:
        raise ConfigError(f"{where}: 'name' must be text, not {item['name']!r}")
    where = f"{source}: column '{item['name']}'"
    unknown = sorted(map(str, set(item) - set(COLUMN_FIELDS)))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    if item["type"] not in COLUMN_TYPES:
        raise ConfigError(f"{where}: type '{item['type']}' is not one of {', '.join(COLUMN_TYPES)}")
    for flag in ("nullable", "personal"):
        if flag in item and not isinstance(item[flag], bool):
            raise ConfigError(f"{where}: '{flag}' must be true or false, not {item[flag]!r}")
    if not isinstance(item.get("description", ""), str):
        raise ConfigError(f"{where}: 'description' must be text, not {item['description']!r}")
    categories = item.get("categories")
    if item["type"] == "category" and not categories:
        raise ConfigError(f"{where}: a category column needs a non-empty 'categories' list")
    if categories is not None:
        if item["type"] not in ("category", "string"):
            raise ConfigError(f"{where}: 'categories' apply to category and string columns only")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise ConfigError(f"{where}: 'categories' must be a list of text values, not {categories!r}")
    bounds = {key: item.get(key) for key in ("min", "max")}
    if any(v is not None for v in bounds.values()) and item["type"] not in ("int", "float"):
        raise ConfigError(f"{where}: 'min' and 'max' apply to int and float columns only")
    for key, value in bounds.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or math.isnan(value)):
            raise ConfigError(f"{where}: '{key}' must be a number, not {value!r}")
    if bounds["min"] is not None and bounds["max"] is not None and bounds["min"] > bounds["max"]:
        raise ConfigError(f"{where}: 'min' ({bounds['min']}) is greater than 'max' ({bounds['max']}); no value "
                          "could pass")
    max_length = item.get("max_length")
    if max_length is not None:
        if item["type"] != "string":
            raise ConfigError(f"{where}: 'max_length' applies to string columns only")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ConfigError(f"{where}: 'max_length' must be a whole number of at least 1, not {max_length!r}")
    return ColumnSpec(
        name=item["name"],
        type=str(item["type"]),
        nullable=item.get("nullable", False),
        personal=item.get("personal", False),
        min=None if bounds["min"] is None else float(bounds["min"]),
        max=None if bounds["max"] is None else float(bounds["max"]),
        categories=None if categories is None else tuple(categories),
        description=item.get("description", ""),
        max_length=max_length,
    )


def time_zone_difference(ours: DataContract, theirs: DataContract) -> str | None:
    """How two contracts' clocks differ, for ``exchange.bundle.contract_differences``; None when they agree.

    A model's calendar features read local wall time, so a bundle whose
    contract names another time zone would be fed other hours.
    """
    if ours.time_zone == theirs.time_zone:
        return None
    return f"time_zone is {theirs.time_zone} there, {ours.time_zone} here"
