"""One set of column rules for the data contract, read by every validator.

The contract (``configs/contract.yaml``) compiles once, with :func:`rules_for`,
into a :class:`ColumnRule` per column and the (entity, time) key
(:class:`ContractRules`). Every door reads these rules and nothing else:

* frames: :meth:`DataContract.validate` runs the pandera schema
  :meth:`ContractRules.schema` builds from the rules (pandera decides and words
  the error: file, column, rows counted from 1);
* file chunks in batch scoring: :meth:`ContractRules.check_frame`, the same
  checks vectorised, without pandera (``scoring.fast_validate``);
* request records (JSON-decoded dicts): :class:`RecordValidator`, the same
  checks one value at a time (:meth:`ColumnRule.value`), raising
  :class:`RecordError` naming the record and the field. It needs neither
  pandas frames nor a model.

The rules are strict: a value has one meaning at every door, and nothing is
converted with a loss.

==========  ===================================================================
type        accepted (a null: None, NaN, NaT; only where the column is nullable)
==========  ===================================================================
int         integers in the int64 range; an integral float (864.0) is the same
            integer and is accepted, 500.9 is not; a bool is not a number
float       numbers: floats, and integers up to 2**53 (which a float holds
            exactly); a bool is not a number
bool        booleans (JSON true/false, Python, numpy and pandas booleans)
string      text (never a number) that UTF-8 can encode (no lone surrogate
            such as ``"\\ud800"``), at most ``max_length`` characters
            (:data:`DEFAULT_MAX_LENGTH` unless the contract says otherwise)
category    text, one of the column's categories
datetime    ISO 8601 text ``YYYY-MM-DD[(T| )hh:mm[:ss[.f{1,9}]][offset]]``
            (offset ``Z``, ``+hh:mm`` or ``+hhmm``, only after a time), or a
            date/time value, naive or aware (Python, numpy, pandas, a Parquet
            timestamp column); local years 1678-2261 (whole years of pandas'
            nanosecond range); never a number (no epoch), never another layout
            (no day/month guessing)
==========  ===================================================================

min/max bound int and float columns (inclusive), categories bound category
and string columns. Accepted columns take their final dtype
(``datetime64[ns, <time zone>]``, int64 or Int64 when nullable, float64 with
NaN for null, bool or boolean when nullable, object text with None for null),
whichever door they came through.

One clock
---------
The contract names a time zone (``time_zone``, an IANA name; default UTC)
and every datetime column is read on that clock. A value with an offset
(``2024-05-01T08:00:00+02:00``, ``Z``, an aware datetime, a time-zone-aware
Parquet column) is an exact instant and is converted into the zone. A value
without one is wall-clock time in the zone:

* a wall time the clocks jump over (the spring gap, 02:30 on the night
  summer time starts) does not exist and is refused, naming the row/record
  (problem ``gap``);
* a wall time that occurs twice (the repeated autumn hour) is resolved by
  order of appearance, per entity, in the time column: the first row of an
  (entity, wall time) is the earlier instant (summer time), the second the
  later one (standard time), a third repeats the second's key and is refused
  as a duplicate. This is what pandas' ``tz_localize(ambiguous="infer")``
  assumes for ordered data. Rows count in file order, across the chunks of
  batch scoring (:class:`RepeatedHours` carries the count); without an
  entity column (or when it is not among the columns checked) the order is
  per wall time; a single record in the repeated hour is the earlier
  instant. A value with an offset is exact and does not count. Other
  datetime columns take the earlier instant.

docs/contract.md says the same for users.

Accepted times are aware (``datetime64[ns, zone]`` in frames, an aware
``pandas.Timestamp`` in records): keys compare instants, and calendar
features read local wall time (``.dt.hour`` of an aware series is local).

Files are text. Before their values meet these rules, :meth:`ColumnRule.from_file`
reads a file's spellings (``dataset.read_table`` and batch scoring call it on
every file, CSV or Parquet): ``true/false/1/0`` in any case, and 0/1 integers,
for bool columns; numbers written as text for int and float columns. A JSON
record has no spellings: ``"false"`` is a string and ``"717"`` is not an
integer, so both are refused there.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collabops.data.contract import ColumnSpec, DataContract

DEFAULT_MAX_LENGTH = 256
"""Longest text a string column accepts when the contract gives no ``max_length``."""

FIRST_YEAR, LAST_YEAR = 1678, 2261
"""Whole years inside pandas' datetime64[ns] range: the years a timestamp may have."""

INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
EXACT_FLOAT_INT = 2 ** 53
"""Largest integer magnitude a float64 holds exactly (a float column refuses larger integers)."""

DEFAULT_TIME_ZONE = "UTC"
"""The contract's time zone when it names none (an old contract's naive times keep their meaning)."""

TIMESTAMP = re.compile(r"(\d{4})-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?",
                       re.ASCII)
"""The ISO 8601 layouts a datetime column accepts as text (groups: year, fraction, offset)."""
_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)

FILE_BOOLS = {"true": True, "false": False, "1": True, "0": False}
"""A bool column's spellings in a file (compared in lower case); nothing else is a bool there."""

FILE_NULLS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "NaT")
"""Null spellings in a CSV file for int, float, bool and datetime columns (pandas' own, and NaT).

String and category columns take only the empty field as null, so a car
park called ``NA`` keeps its name.
"""

# Problems, as FrameProblem.problem and in pandera's check names.
MISSING, NULL, TYPE, GAP, DOMAIN, LENGTH, DUPLICATE = ("missing", "null", "type", "gap", "domain", "length",
                                                       "duplicate")
CHECK_PREFIX = "rule:"
"""Pandera check names are ``rule:<problem>`` (``rule:type``, ``rule:gap``, ``rule:domain``, ``rule:length``)."""

KINDS = ("datetime", "string", "category", "int", "float", "bool")


class RecordError(ValueError):
    """A record refused by the rules; the message names the record (0-based, as the service reports it) and field.

    ``index`` is the record's position in the request, ``field`` the column
    (``None`` when the record itself is not an object), ``problem`` what is
    wrong with its value, e.g. ``record 2: column 'capacity': 'lots' is not of type int``.
    """

    def __init__(self, index: int, field: str | None, problem: str) -> None:
        where = f"record {index}: column '{field}'" if field is not None else f"record {index}"
        super().__init__(f"{where}: {problem}")
        self.index, self.field, self.problem = index, field, problem


class Refused(Exception):
    """One value refused by a rule: ``problem`` is one of TYPE, NULL, DOMAIN, LENGTH; ``text`` says why."""

    def __init__(self, problem: str, text: str) -> None:
        super().__init__(text)
        self.problem, self.text = problem, text


def show(value: Any) -> str:
    """A value as the user wrote it: numbers plain, text quoted (long text cut), numpy scalars unwrapped."""
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, (list, tuple, dict)):
        return "a JSON object" if isinstance(value, dict) else "a JSON array"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:30]!r}... ({len(value)} characters)"
    return str(value)


def is_null(value: Any) -> bool:
    """Null at every door: None, a float NaN, pandas' NA and NaT, numpy's NaT."""
    kind = type(value)
    if value is None:
        return True
    if kind is float:
        return value != value
    if kind in (str, int, bool):
        return False
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


# ----------------------------------------------------------------------------- one column

@dataclass(frozen=True)
class ColumnCheck:
    """A column after its rule: values (of the column's final dtype when nothing is refused) and one mask per problem.

    Masks are boolean arrays over the column's positions: ``null`` marks nulls
    in a column that is not nullable, ``mistyped`` values that are not of the
    column's type, ``gap`` wall times that do not exist in the contract's time
    zone (datetime columns), ``outside`` values outside min/max or the
    categories, ``too_long`` text longer than ``max_length``. Where anything
    is refused, ``values`` is an object column: accepted values converted,
    refused ones as they were.

    Datetime columns also say which accepted rows are naive wall times of a
    repeated hour (``ambiguous``; ``values`` holds their earlier instant) and
    ``later``, an aware array holding their later instant (NaT elsewhere),
    for :meth:`ContractRules.check_frame` to resolve by order of appearance.
    """

    values: pd.Series
    null: np.ndarray
    mistyped: np.ndarray
    outside: np.ndarray
    too_long: np.ndarray
    gap: np.ndarray
    ambiguous: np.ndarray | None = None
    later: Any = None

    def problems(self) -> Iterator[tuple[str, np.ndarray]]:
        """(problem, mask) for every problem that occurs, in the order records report them."""
        for problem, mask in ((NULL, self.null), (TYPE, self.mistyped), (GAP, self.gap), (DOMAIN, self.outside),
                              (LENGTH, self.too_long)):
            if mask.any():
                yield problem, mask

    @property
    def ok(self) -> bool:
        return not (self.null.any() or self.mistyped.any() or self.gap.any() or self.outside.any()
                    or self.too_long.any())

    def with_later(self, rows: np.ndarray) -> pd.Series:
        """``values`` with the rows at positions ``rows`` (repeated-hour rows) set to their later instant."""
        if len(rows) == 0:
            return self.values
        later = self.later[rows]
        if isinstance(self.values.dtype, pd.DatetimeTZDtype):
            moments = self.values.array.copy()
            moments[rows] = later
            return pd.Series(moments, index=self.values.index, name=self.values.name)
        objects = self.values.to_numpy(dtype=object).copy()
        objects[rows] = list(later)
        return pd.Series(objects, index=self.values.index, name=self.values.name, dtype=object)


@dataclass(frozen=True)
class ColumnRule:
    """What one contract column accepts; the same rule for frames, file chunks and records.

    Build it with :func:`rules_for`. ``domain`` words min/max or the
    categories for messages (``in [0, 1]``, ``one of a, b``); ``time_zone``
    (an IANA name) is the clock of a datetime column.
    """

    name: str
    kind: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: frozenset[str] | None = None
    max_length: int | None = None
    domain: str = ""
    time_zone: str = DEFAULT_TIME_ZONE
    _convert: Callable[[Any], Any] = field(init=False, compare=False, repr=False)
    _tz: Any = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column '{self.name}': unknown type '{self.kind}'")
        object.__setattr__(self, "_tz", zone_dtype(self.time_zone).tz if self.kind == "datetime" else None)
        convert = (lambda value: self.moment(value)[0]) if self.kind == "datetime" else _CONVERTERS[self.kind]
        object.__setattr__(self, "_convert", convert)

    @property
    def dtype(self) -> str:
        """The pandas dtype of the column once accepted."""
        return {"datetime": f"datetime64[ns, {self.time_zone}]", "int": "Int64" if self.nullable else "int64",
                "float": "float64", "bool": "boolean" if self.nullable else "bool"}.get(self.kind, "object")

    @property
    def bounded(self) -> bool:
        """Whether the column has a domain check (min/max or categories)."""
        return self.categories is not None or (self.kind in ("int", "float") and
                                               (self.min is not None or self.max is not None))

    @property
    def null_value(self) -> Any:
        """A null as records normalise it: NaN in float columns, None elsewhere."""
        return math.nan if self.kind == "float" else None

    # -- one value (records)

    def value(self, value: Any) -> Any:
        """``value`` normalised, or ``Refused``.

        Normalised: int, float, bool, str, an aware ``pandas.Timestamp`` in
        the column's time zone (a repeated wall time: the earlier instant); a
        null as :attr:`null_value`. Checks, in order: null where not
        nullable, type (and, for times, that the wall time exists), then
        min/max or categories, then the text length.
        """
        if is_null(value):
            if self.nullable:
                return self.null_value
            raise Refused(NULL, "null but the column is not nullable")
        converted = self._convert(value)
        self.check_domain(converted)
        return converted

    def moment(self, value: Any) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """A datetime column's value as (instant, later instant or None); ``Refused`` as :meth:`value` says.

        The second is not None only for a naive wall time that occurs twice
        (the repeated autumn hour): the first is then its earlier instant.
        A null (where nullable) is ``(None, None)``.
        """
        if is_null(value):
            if self.nullable:
                return None, None
            raise Refused(NULL, "null but the column is not nullable")
        ns, naive = _parse_moment(value)
        return _localize_one(ns, naive, self, value)

    def check_domain(self, converted: Any) -> None:
        """Raise ``Refused`` if an accepted, converted value is outside min/max, the categories or the length."""
        if self.kind == "int" or self.kind == "float":
            low, high = _bounds(self)
            if (low is not None and converted < low) or (high is not None and converted > high):
                raise Refused(DOMAIN, f"{show(converted)} is not {self.domain}")
        elif self.kind in ("string", "category"):
            if self.categories is not None and converted not in self.categories:
                raise Refused(DOMAIN, f"{show(converted)} is not {self.domain}")
            if self.max_length is not None and len(converted) > self.max_length:
                raise Refused(LENGTH, f"{show(converted)} is longer than {self.max_length} characters")

    # -- a whole column (frames and file chunks)

    def column(self, series: pd.Series) -> ColumnCheck:
        """The column checked by this rule, vectorised; the same verdict as :meth:`value` on each of its values."""
        if self.kind == "datetime":
            return _datetime_column(self, series)
        if isinstance(series.dtype, pd.CategoricalDtype):
            accepted = self._categorical(series)
            if accepted is not None:
                return accepted
        view, data, nulls = _view(series)
        if view == "O":
            good_values, mistyped = self._elementwise(data, nulls)
        else:
            good_values, mistyped = _TYPED[self.kind](view, data, nulls)
        good = ~nulls & ~mistyped
        outside, too_long = self._domain_masks(good_values, good)
        disallowed = nulls if not self.nullable else np.zeros(len(nulls), dtype=bool)
        if mistyped.any() or disallowed.any():
            raw = data if view == "O" else series.to_numpy(dtype=object)
            values = pd.Series(_mixed(raw, good_values, good), index=series.index, dtype=object, name=series.name)
        else:
            values = pd.Series(_final(self, good_values, nulls, data), index=series.index, name=series.name)
        return ColumnCheck(values, disallowed, mistyped, outside, too_long, np.zeros(len(nulls), dtype=bool))

    def _categorical(self, series: pd.Series) -> ColumnCheck | None:
        """A pandas Categorical checked once per category, the verdicts spread to the rows by the codes.

        Each value's verdict depends on that value alone, so it is the
        per-row verdict (e.g. a Parquet text column read as a dictionary).
        Returns None when a row is refused (or there is no category): the
        per-row path then builds the refused column.
        """
        categories = np.asarray(series.cat.categories, dtype=object)
        codes = series.cat.codes.to_numpy()
        nulls = codes < 0
        if len(categories) == 0 or (nulls.any() and not self.nullable):
            return None
        converted, mistyped = self._elementwise(categories, np.zeros(len(categories), dtype=bool))
        if mistyped[codes[~nulls]].any():
            return None
        outside, too_long = self._domain_masks(converted, np.ones(len(categories), dtype=bool))
        values = converted[codes]
        if nulls.any():
            outside, too_long = outside[codes] & ~nulls, too_long[codes] & ~nulls
            values[nulls] = {"float": np.nan, "int": 0, "bool": False}.get(self.kind)  # None for text
        else:
            outside, too_long = outside[codes], too_long[codes]
        final = pd.Series(_final(self, values, nulls, values), index=series.index, name=series.name)
        none = np.zeros(len(codes), dtype=bool)
        return ColumnCheck(final, none, none, outside, too_long, none)

    def _elementwise(self, data: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An object column through the per-value converter.

        Shortcuts that give the converter's answer without calling it per
        value: a column of text only, for text columns (one encoding check
        for lone surrogates over all of it); of bools only, for bool columns;
        of integers (in the int64 range) or floats only, for int and float
        columns. (Datetime columns have their own path, ``_datetime_column``.)
        """
        n = len(data)
        mistyped = np.zeros(n, dtype=bool)
        present = np.flatnonzero(~nulls)
        values = data if len(present) == n else data[present]
        shape = pd.api.types.infer_dtype(values, skipna=False) if len(present) else "empty"
        kind, convert = self.kind, self._convert
        if kind in ("string", "category") and shape in ("string", "empty"):
            if shape == "string" and not _encodable(values):
                mistyped[present] = [not _encodable((text,)) for text in values]
            return data, mistyped
        if kind == "bool" and shape in ("boolean", "empty"):
            flags = np.zeros(n, dtype=bool)
            flags[present] = values.astype(bool)
            return flags, mistyped
        if kind in ("int", "float") and shape in ("integer", "floating", "empty"):
            converted = _numbers(kind, values, shape)
            if converted is not None:
                numbers, bad = converted
                out = np.zeros(n, dtype=numbers.dtype) if kind == "int" else np.full(n, np.nan)
                out[present] = numbers
                mistyped[present] = bad
                return out, mistyped
        out = np.empty(n, dtype=object)
        for i in present:
            try:
                out[i] = convert(data[i])
            except Refused:
                mistyped[i] = True
        good = ~nulls & ~mistyped
        if kind == "int":
            numbers = np.zeros(n, dtype=np.int64)
            numbers[good] = out[good].tolist()
            return numbers, mistyped
        if kind == "float":
            numbers = np.full(n, np.nan)
            numbers[good] = out[good].tolist()
            return numbers, mistyped
        if kind == "bool":
            flags = np.zeros(n, dtype=bool)
            flags[good] = out[good].tolist()
            return flags, mistyped
        return out, mistyped

    def _domain_masks(self, values: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(outside, too_long): min/max for numbers; categories and length for text, checked once per distinct text."""
        n = len(good)
        outside = np.zeros(n, dtype=bool)
        too_long = np.zeros(n, dtype=bool)
        if self.kind in ("int", "float"):
            low, high = _bounds(self)
            with np.errstate(invalid="ignore"):
                if low is not None:
                    outside |= good & (values < low)
                if high is not None:
                    outside |= good & (values > high)
        elif self.kind in ("string", "category") and good.any() and (self.categories is not None or
                                                                     self.max_length is not None):
            codes, uniques = pd.factorize(values[good])
            texts = list(uniques)
            if self.categories is not None:
                outside[good] = np.array([t not in self.categories for t in texts], dtype=bool)[codes]
            if self.max_length is not None:
                too_long[good] = np.array([len(t) > self.max_length for t in texts], dtype=bool)[codes]
        return outside, too_long

    # -- a file's spellings

    def from_file(self, series: pd.Series) -> pd.Series:
        """A file column's values with the file spellings read (see the module docstring); the rest left as they are.

        Bool columns: ``true/false/1/0`` in any case and 0/1 integers become
        bools. Int and float columns: numbers written as text become numbers.
        Whatever does not read stays as written, for the rule to refuse it by
        row.
        """
        dtype = series.dtype
        numpy_dtype = isinstance(dtype, np.dtype)
        text = (numpy_dtype and dtype.kind == "O") or (not numpy_dtype and pd.api.types.is_string_dtype(dtype))
        if self.kind == "bool":
            if numpy_dtype and dtype.kind in "iu":
                flags = series.isin([0, 1])
                return series.astype(bool) if flags.all() else series.astype(object).where(~flags, series == 1)
            if text:
                read = _read_spellings(series, _file_bool)
                present = read.dropna()
                if len(present) and pd.api.types.infer_dtype(present, skipna=False) == "boolean":  # all read
                    return read.astype(bool) if len(present) == len(read) else read.astype("boolean")
                return read
        elif self.kind in ("int", "float") and text:
            return _read_spellings(series, _file_number)
        return series


def _file_bool(value: Any) -> Any:
    if isinstance(value, str):
        return FILE_BOOLS.get(value.lower(), value)
    if type(value) is not bool and isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    return value


def _file_number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if _INT_TEXT.fullmatch(value):
        return int(value)
    if _NUMBER_TEXT.fullmatch(value):
        return float(value)
    return value


def _read_spellings(series: pd.Series, read: Callable[[Any], Any]) -> pd.Series:
    """``read`` applied to every non-null value (once per distinct text when the column is all text)."""
    values = series.to_numpy(dtype=object)
    nulls = pd.isna(values)
    out = values.copy()
    present = values[~nulls]
    if pd.api.types.infer_dtype(present, skipna=False) == "string":  # 1, 1.0 and True never share a code here
        codes, uniques = pd.factorize(present)
        out[~nulls] = np.array([read(u) for u in uniques] + [None], dtype=object)[codes]
    else:
        out[~nulls] = np.array([read(v) for v in present] + [None], dtype=object)[:-1]
    return pd.Series(out, index=series.index, name=series.name, dtype=object)


def _bounds(rule: ColumnRule) -> tuple[Any, Any]:
    """min/max as compared: integers (ceil/floor) for int columns, so that comparisons are exact."""
    if rule.kind != "int":
        return rule.min, rule.max
    low = None if rule.min is None or math.isinf(rule.min) else max(INT64_MIN, math.ceil(rule.min))
    high = None if rule.max is None or math.isinf(rule.max) else min(INT64_MAX, math.floor(rule.max))
    return low, high


# ----------------------------------------------------------------------------- per-value converters

def _to_int(value: Any) -> int:
    """An integer; an integral float is that integer; a bool, text or fraction is refused."""
    if isinstance(value, (bool, np.bool_)):
        raise Refused(TYPE, f"{show(value)} is not of type int (a bool is not a number)")
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            raise Refused(TYPE, f"{show(value)} is not of type int (not a whole number)")
        number = int(value)
    else:
        raise Refused(TYPE, f"{show(value)} is not of type int")
    if not INT64_MIN <= number <= INT64_MAX:
        raise Refused(TYPE, f"{show(value)} is not of type int (outside the 64-bit integer range)")
    return number


def _to_float(value: Any) -> float:
    """A float; an integer up to 2**53 in magnitude is that float; a bool or text is refused."""
    if isinstance(value, (bool, np.bool_)):
        raise Refused(TYPE, f"{show(value)} is not of type float (a bool is not a number)")
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (int, np.integer)):
        if not -EXACT_FLOAT_INT <= int(value) <= EXACT_FLOAT_INT:
            raise Refused(TYPE, f"{show(value)} is not of type float (too large to hold exactly)")
        return float(value)
    raise Refused(TYPE, f"{show(value)} is not of type float")


def _to_bool(value: Any) -> bool:
    """A boolean; nothing else (not 0/1, not the text "false")."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    hint = " (use true or false)" if isinstance(value, (str, int, float, np.number)) else ""
    raise Refused(TYPE, f"{show(value)} is not of type bool{hint}")


def _to_string(value: Any) -> str:
    """Text that UTF-8 can encode, never a number."""
    if isinstance(value, str):
        if not _encodable((value,)):
            raise Refused(TYPE, _NOT_TEXT.format(show(value)))
        return value
    raise Refused(TYPE, f"{show(value)} is not of type string")


def _to_category(value: Any) -> str:
    """Text that UTF-8 can encode, never a number (the categories are checked after)."""
    if isinstance(value, str):
        if not _encodable((value,)):
            raise Refused(TYPE, _NOT_TEXT.format(show(value)))
        return value
    raise Refused(TYPE, f"{show(value)} is not of type category")


_NOT_TEXT = "{} is not valid text (a lone surrogate, which UTF-8 cannot encode)"


def _encodable(texts: Sequence[str] | np.ndarray) -> bool:
    """Whether every text is valid Unicode (no lone surrogate, U+D800-U+DFFF): one encode over all of them."""
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ----------------------------------------------------------------------------- times

_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
_NAT = np.iinfo(np.int64).min
"""NaT as an int64 nanosecond count."""
_LOWEST_NS, _HIGHEST_NS = pd.Timestamp.min.value, pd.Timestamp.max.value
_LAYOUTS = ("use ISO 8601: YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fffffffff]], optionally with an offset Z or "
            "+hh:mm after the time")


@lru_cache(maxsize=64)
def zone_dtype(time_zone: str) -> pd.DatetimeTZDtype:
    """The dtype of an accepted datetime column on ``time_zone``'s clock: ``datetime64[ns, time_zone]``.

    ``time_zone`` is an IANA name; pandas picks its implementation (its
    ``.tz`` is what every localisation here uses, so frames and records use
    one time-zone database).
    """
    return pd.DatetimeTZDtype("ns", time_zone)


def check_time_zone(name: Any) -> str:
    """``name`` if it is an IANA time zone that ``zoneinfo`` and pandas know, else ``ValueError`` saying why."""
    import zoneinfo

    if not isinstance(name, str) or not name:
        raise ValueError(f"must be an IANA time zone name such as Europe/Stockholm, not {name!r}")
    try:
        zoneinfo.ZoneInfo(name)
        zone_dtype(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, LookupError):
        raise ValueError(f"'{name}' is not a time zone known to zoneinfo (use an IANA name such as "
                         "Europe/Stockholm or UTC)") from None
    except Exception as exc:  # noqa: BLE001 - pytz' UnknownTimeZoneError is a KeyError subclass of its own
        raise ValueError(f"'{name}' is not a time zone pandas can use: {type(exc).__name__}") from None
    return name


def _parse_moment(value: Any) -> tuple[int, bool]:
    """(nanoseconds, naive): a naive value's wall time, or an aware value's instant (UTC), as int64 ns.

    Refuses (``Refused``, TYPE) numbers, text in other layouts, impossible
    dates, and naive values outside the years 1678-2261 (an aware value's
    years are checked in the zone, by the caller).
    """
    if isinstance(value, str):
        layout = TIMESTAMP.fullmatch(value)
        if layout is None:
            raise Refused(TYPE, f"{show(value)} is not of type datetime ({_LAYOUTS})")
        year, fraction, offset = layout.groups()
        if offset is None and not FIRST_YEAR <= int(year) <= LAST_YEAR:
            raise Refused(TYPE, f"{show(value)} is not of type datetime (outside the years {FIRST_YEAR}-{LAST_YEAR})")
        try:  # beyond microseconds (as pandas writes nanoseconds), pandas' Timestamp keeps every digit
            moment: Any = pd.Timestamp(value) if fraction is not None and len(fraction) > 6 else \
                dt.datetime.fromisoformat(value)
        except (ValueError, OverflowError):
            raise Refused(TYPE, f"{show(value)} is not of type datetime (not a valid date or time)") from None
    elif isinstance(value, np.datetime64):
        low, high = np.datetime64(f"{FIRST_YEAR}-01-01"), np.datetime64(f"{LAST_YEAR + 1}-01-01")
        if not low <= value < high:
            raise Refused(TYPE, f"{show(value)} is not of type datetime (outside the years {FIRST_YEAR}-{LAST_YEAR})")
        return int(value.astype("datetime64[ns]").astype(np.int64)), True
    elif isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        raise Refused(TYPE, f"{show(value)} is not of type datetime (a number is not a timestamp: use ISO 8601 "
                            "text)")
    else:
        raise Refused(TYPE, f"{show(value)} is not of type datetime")
    naive = moment.tzinfo is None or moment.utcoffset() is None
    if naive and not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise Refused(TYPE, f"{show(value)} is not of type datetime (outside the years {FIRST_YEAR}-{LAST_YEAR})")
    if isinstance(moment, pd.Timestamp):
        return int(moment.as_unit("ns").value), naive
    if naive:
        return (moment.replace(tzinfo=None) - _EPOCH) // _MICROSECOND * 1000, True
    ns = (moment.replace(tzinfo=None) - moment.utcoffset() - _EPOCH) // _MICROSECOND * 1000
    if not _LOWEST_NS <= ns <= _HIGHEST_NS:
        raise Refused(TYPE, f"{show(value)} is not of type datetime (outside the years {FIRST_YEAR}-{LAST_YEAR})")
    return ns, False


def _outside_years(rule: ColumnRule, value: Any) -> Refused:
    return Refused(TYPE, f"{show(value)} is not of type datetime (outside the years {FIRST_YEAR}-{LAST_YEAR} "
                         f"in {rule.time_zone})")


def _gap(rule: ColumnRule, value: Any) -> Refused:
    return Refused(GAP, f"{show(value)} does not exist in {rule.time_zone} (the clocks jump over this wall time)")


def _localize_one(ns: int, naive: bool, rule: ColumnRule, value: Any) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """One parsed value on the rule's clock: (instant, later instant of a repeated wall time, else None).

    ``Refused`` for a wall time in the gap (GAP) or an instant whose local
    year is outside 1678-2261 (TYPE), naming ``value`` as it was written.
    """
    placed = _on_clock(rule.time_zone, ns, naive)
    if placed is None:
        raise _gap(rule, value) if naive else _outside_years(rule, value)
    return placed


@lru_cache(maxsize=4096)
def _on_clock(time_zone: str, ns: int, naive: bool) -> tuple[pd.Timestamp, pd.Timestamp | None] | None:
    """:func:`_localize_one`'s answer, cached (the records of one request often share their times); None: refused."""
    tz = zone_dtype(time_zone).tz
    if not naive:
        moment = pd.Timestamp(ns, tz="UTC").tz_convert(tz)
        return (moment, None) if FIRST_YEAR <= moment.year <= LAST_YEAR else None
    wall = pd.Timestamp(ns)
    moment = wall.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    if moment is not pd.NaT:
        return moment, None
    first = wall.tz_localize(tz, ambiguous=True, nonexistent="NaT")
    if first is pd.NaT:
        return None
    second = wall.tz_localize(tz, ambiguous=False, nonexistent="NaT")
    return (first, second) if first <= second else (second, first)


def _datetime_column(rule: ColumnRule, series: pd.Series) -> ColumnCheck:
    """A datetime column on the rule's clock, vectorised: the verdicts of :meth:`ColumnRule.moment` per value."""
    n = len(series)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    view, data, nulls = _view(series)
    ns = np.zeros(n, dtype=np.int64)
    naive = np.zeros(n, dtype=bool)
    mistyped = ~nulls
    if view in ("M", "tz"):
        if view == "tz":  # the instants, in UTC
            data = series.array.tz_convert("UTC").tz_localize(None).to_numpy()
        # naive: the wall time's years; aware: instants pandas holds in ns (their years are checked in the zone)
        low = np.datetime64(f"{FIRST_YEAR}-01-01" if view == "M" else "1677-09-22")
        high = np.datetime64(f"{LAST_YEAR + 1}-01-01" if view == "M" else "2262-04-11")
        good = ~nulls & (data >= low.astype(data.dtype)) & (data < high.astype(data.dtype))
        ns[good] = data[good].astype("datetime64[ns]").astype(np.int64)
        naive, mistyped = good & (view == "M"), ~nulls & ~good
    elif view == "O":
        ns, naive, mistyped = _parse_objects(data, nulls)
    accepted = ~nulls & ~mistyped
    instants = np.full(n, _NAT, dtype=np.int64)
    aware = accepted & ~naive
    instants[aware] = ns[aware]
    gap = np.zeros(n, dtype=bool)
    ambiguous = np.zeros(n, dtype=bool)
    later = None
    walls = np.flatnonzero(accepted & naive)
    if len(walls):
        first, second, skipped = _localize_walls(rule._tz, ns[walls])
        instants[walls] = first
        gap[walls] = skipped
        repeated = second != _NAT
        if repeated.any():
            ambiguous[walls[repeated]] = True
            later_ns = np.full(n, _NAT, dtype=np.int64)
            later_ns[walls[repeated]] = second[repeated]
            later = _aware(later_ns, rule)
    values = _aware(instants, rule)
    if aware.any():  # an exact instant: its years are those of its wall time in the zone
        years = values.year
        outside = aware & ((years < FIRST_YEAR) | (years > LAST_YEAR))
        if outside.any():
            mistyped = mistyped | outside
            instants[outside] = _NAT
            values = _aware(instants, rule)
    disallowed = nulls if not rule.nullable else np.zeros(n, dtype=bool)
    none = np.zeros(n, dtype=bool)
    if mistyped.any() or disallowed.any() or gap.any():
        raw = data if view == "O" else series.to_numpy(dtype=object)
        good = ~nulls & ~mistyped & ~gap
        out = pd.Series(_mixed(raw, values, good), index=series.index, dtype=object, name=series.name)
    else:
        out = pd.Series(values, index=series.index, name=series.name)
    return ColumnCheck(out, disallowed, mistyped, none, none, gap, ambiguous if later is not None else None, later)


def _parse_objects(data: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ns, naive, mistyped) of an object column's values by :func:`_parse_moment` (text: once per distinct text)."""
    n = len(data)
    ns = np.zeros(n, dtype=np.int64)
    naive = np.zeros(n, dtype=bool)
    mistyped = np.zeros(n, dtype=bool)
    present = np.flatnonzero(~nulls)
    values = data if len(present) == n else data[present]
    if len(present) and pd.api.types.infer_dtype(values, skipna=False) == "string":
        codes, uniques = pd.factorize(values)
        parsed_ns = np.zeros(len(uniques), dtype=np.int64)
        parsed_naive = np.zeros(len(uniques), dtype=bool)
        bad = np.zeros(len(uniques), dtype=bool)
        for i, text in enumerate(uniques):
            try:
                parsed_ns[i], parsed_naive[i] = _parse_moment(text)
            except Refused:
                bad[i] = True
        ns[present], naive[present], mistyped[present] = parsed_ns[codes], parsed_naive[codes], bad[codes]
        return ns, naive, mistyped
    for i in present:
        try:
            ns[i], naive[i] = _parse_moment(data[i])
        except Refused:
            mistyped[i] = True
    return ns, naive, mistyped


def _localize_walls(tz: Any, walls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wall times (int64 ns) on the clock ``tz``: (earlier instant, later instant or NaT, gap mask), instants as ns.

    A wall time that exists once has one instant (later: NaT); one in the
    repeated hour has two; one in the gap has none (earlier: NaT, gap: True).
    """
    index = pd.DatetimeIndex(walls.view("datetime64[ns]"))
    first = index.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").asi8.copy()
    second = np.full(len(walls), _NAT, dtype=np.int64)
    gap = np.zeros(len(walls), dtype=bool)
    unsure = np.flatnonzero(first == _NAT)
    if len(unsure):
        some = index[unsure]
        one = some.tz_localize(tz, ambiguous=np.ones(len(some), dtype=bool), nonexistent="NaT").asi8
        other = some.tz_localize(tz, ambiguous=np.zeros(len(some), dtype=bool), nonexistent="NaT").asi8
        skipped = one == _NAT
        gap[unsure] = skipped
        first[unsure] = np.where(skipped, _NAT, np.minimum(one, other))
        second[unsure] = np.where(skipped, _NAT, np.maximum(one, other))
    return first, second, gap


def _aware(instants: np.ndarray, rule: ColumnRule) -> Any:
    """int64 ns instants (NaT as its int) as an aware DatetimeArray on the rule's clock."""
    utc = pd.DatetimeIndex(instants.view("datetime64[ns]")).tz_localize("UTC")
    return utc.tz_convert(zone_dtype(rule.time_zone).tz).array


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int, "float": _to_float, "bool": _to_bool, "string": _to_string, "category": _to_category,
}


# ----------------------------------------------------------------------------- vectorised converters

def _view(series: pd.Series) -> tuple[str, np.ndarray, np.ndarray]:
    """The column as (kind, values, nulls): kind ``i``/``u``/``f``/``b``/``M`` (numpy arrays), ``O`` (objects),
    ``tz`` (datetimes with a time zone) or ``other`` (any other dtype: every non-null value is mistyped)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        values = series.to_numpy(dtype=object)
        return "O", values, pd.isna(values)
    if isinstance(dtype, np.dtype):
        values = series.to_numpy()
        if dtype.kind in "iub":
            return dtype.kind, values, np.zeros(len(values), dtype=bool)
        if dtype.kind == "f":
            return "f", values, np.isnan(values)
        if dtype.kind == "M":
            return "M", values, np.isnat(values)
        if dtype.kind == "O":  # text only (the usual case) has no null: skip the slower null scan
            text_only = pd.api.types.infer_dtype(values, skipna=False) == "string"
            return "O", values, np.zeros(len(values), dtype=bool) if text_only else pd.isna(values)
        return "other", values.astype(object), pd.isna(values)
    nulls = series.isna().to_numpy()
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "tz", series.to_numpy(dtype=object), nulls
    if pd.api.types.is_bool_dtype(dtype):
        return "b", series.to_numpy(dtype=bool, na_value=False), nulls
    if pd.api.types.is_float_dtype(dtype):
        return "f", series.to_numpy(dtype=np.float64, na_value=np.nan), nulls
    if pd.api.types.is_signed_integer_dtype(dtype):
        return "i", series.to_numpy(dtype=np.int64, na_value=0), nulls
    if pd.api.types.is_unsigned_integer_dtype(dtype):
        return "u", series.to_numpy(dtype=np.uint64, na_value=0), nulls
    if pd.api.types.is_string_dtype(dtype):
        return "O", series.to_numpy(dtype=object, na_value=None), nulls
    return "other", series.to_numpy(dtype=object), nulls


def _typed_int(view: str, data: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if view == "i":
        return data.astype(np.int64, copy=False), np.zeros(len(data), dtype=bool)
    if view == "u":
        mistyped = data > np.uint64(INT64_MAX)
        return np.where(mistyped, 0, data).astype(np.int64), mistyped
    if view == "f":
        with np.errstate(invalid="ignore"):
            good = np.isfinite(data) & (data == np.floor(data)) & (data >= -2.0 ** 63) & (data < 2.0 ** 63)
        return np.where(good, data, 0).astype(np.int64), ~nulls & ~good
    return np.zeros(len(data), dtype=np.int64), ~nulls


def _typed_float(view: str, data: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if view == "f":
        return data.astype(np.float64, copy=False), np.zeros(len(data), dtype=bool)
    if view == "i":
        mistyped = (data > EXACT_FLOAT_INT) | (data < -EXACT_FLOAT_INT)
        return np.where(mistyped, 0, data).astype(np.float64), mistyped
    if view == "u":
        mistyped = data > np.uint64(EXACT_FLOAT_INT)
        return np.where(mistyped, 0, data).astype(np.float64), mistyped
    return np.full(len(data), np.nan), ~nulls


def _typed_bool(view: str, data: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if view == "b":
        return data.astype(bool, copy=False), np.zeros(len(data), dtype=bool)
    return np.zeros(len(data), dtype=bool), ~nulls


def _typed_text(view: str, data: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.empty(len(data), dtype=object), ~nulls


_TYPED: dict[str, Callable[[str, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "int": _typed_int, "float": _typed_float, "bool": _typed_bool, "string": _typed_text, "category": _typed_text,
}


def _numbers(kind: str, values: np.ndarray, shape: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Objects that are all ints or all floats as an array and a mistyped mask, or None to go value by value.

    The same verdicts as :func:`_to_int` and :func:`_to_float`: floats must be
    whole (and in the int64 range) for an int column; ints must fit int64,
    and for a float column be within 2**53.
    """
    if len(values) == 0:
        return (np.zeros(0, dtype=np.int64) if kind == "int" else np.zeros(0)), np.zeros(0, dtype=bool)
    if shape == "integer":
        try:
            integers = values.astype(np.int64)
        except OverflowError:
            return None  # beyond int64: the converter words it
        if kind == "int":
            return integers, np.zeros(len(values), dtype=bool)
        return _typed_float("i", integers, np.zeros(len(values), dtype=bool))
    floats = values.astype(np.float64)
    nulls = np.zeros(len(values), dtype=bool)
    return _typed_int("f", floats, nulls) if kind == "int" else (floats, nulls)


def _final(rule: ColumnRule, values: np.ndarray, nulls: np.ndarray, data: np.ndarray) -> Any:
    """The accepted column in its final dtype (nulls only where the column is nullable; None in text columns)."""
    kind = rule.kind
    if kind == "int":
        return pd.arrays.IntegerArray(values.astype(np.int64, copy=False), nulls.copy()) if rule.nullable else values
    if kind == "float":
        return np.where(nulls, np.nan, values) if nulls.any() else values
    if kind == "bool":
        return pd.arrays.BooleanArray(values.astype(bool, copy=False), nulls.copy()) if rule.nullable else values
    text = data if data.dtype == object else data.astype(object)  # e.g. a column of NaN only
    if nulls.any():  # every null of a text column as None, as records have it, whatever the file wrote
        text = text.copy() if text is data else text
        text[nulls] = None
    return text


def _mixed(raw: np.ndarray, values: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Objects: accepted values converted, the rest as they were (for messages and the key check)."""
    out = np.array(raw, dtype=object, copy=True)
    if good.any():
        out[good] = pd.Series(values[good]).astype(object).to_numpy()
    return out


# ----------------------------------------------------------------------------- the contract's rules

@dataclass(frozen=True)
class FrameProblem:
    """One problem found in a frame: the column (the entity column for duplicate keys), what, and at which rows.

    ``rows`` are the frame's index labels (the callers number rows from 0 and
    add 1 in messages).
    """

    column: str
    problem: str
    rows: tuple[int, ...]


@dataclass(frozen=True)
class FrameCheck:
    """A frame after the rules: the accepted values (final dtypes) and the problems, empty when all is accepted.

    ``repeated`` lists the (entity, wall time) of every row in the repeated
    autumn hour, in order: what :meth:`RepeatedHours.add` must count once the
    caller keeps these values (see :meth:`ContractRules.check_frame`).
    """

    values: pd.DataFrame
    problems: tuple[FrameProblem, ...]
    repeated: tuple[tuple[Any, int], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self) -> FrameProblem | None:
        """The problem a record validator would report: the value problem at the lowest row (ties: the first
        column); a duplicate key only when no value is refused (keys are compared once every value is accepted)."""
        if not self.problems:
            return None
        order = {name: i for i, name in enumerate(self.values.columns)}
        values = [p for p in self.problems if p.problem != DUPLICATE] or list(self.problems)
        return min(values, key=lambda p: (min(p.rows), order.get(p.column, len(order))))


class RepeatedHours:
    """How often each (entity, wall time) of a repeated hour has been seen so far: the order rule's memory.

    A naive wall time that occurs twice on the clock (the autumn hour) is its
    earlier instant the first time an entity has it, and its later instant
    after that. One object follows one file or request from its first row
    on, so the order holds across the chunks of batch scoring. Keys are
    (entity value or None, the wall time's later instant as int64 ns).
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[Any, int], int] = {}

    def occurrences(self, keys: Sequence[tuple[Any, int]]) -> np.ndarray:
        """For each key in order, how often it was seen before it (earlier keys of ``keys`` included); no change."""
        counts, here = self.counts, {}
        out = np.zeros(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            seen = here.get(key, 0)
            out[i] = counts.get(key, 0) + seen
            here[key] = seen + 1
        return out

    def add(self, keys: Sequence[tuple[Any, int]]) -> None:
        """Count ``keys`` as seen (once the rows they come from are kept)."""
        for key in keys:
            self.counts[key] = self.counts.get(key, 0) + 1


@dataclass(frozen=True)
class ContractRules:
    """The contract as rules: one :class:`ColumnRule` per column, in the contract's order, and the (entity, time) key.

    ``features`` are the columns a model reads (the default for records);
    ``time_zone`` the clock of the datetime columns.
    """

    name: str
    columns: tuple[ColumnRule, ...]
    entity_column: str | None
    time_column: str
    features: tuple[str, ...]
    time_zone: str = DEFAULT_TIME_ZONE

    @property
    def names(self) -> list[str]:
        return [rule.name for rule in self.columns]

    @property
    def keys(self) -> tuple[str, ...]:
        """(entity, time), or (time,) when the contract has no entity column."""
        return (self.entity_column, self.time_column) if self.entity_column else (self.time_column,)

    def rule(self, name: str) -> ColumnRule:
        for rule in self.columns:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def check_frame(self, frame: pd.DataFrame, columns: Sequence[str] | None = None,
                    check_keys: bool = True, clock: RepeatedHours | None = None) -> FrameCheck:
        """``frame[columns]`` through the rules, vectorised: values converted, problems by column and row.

        Every column must be present once (the callers check). Naive wall
        times of the repeated hour in the time column are resolved by order
        of appearance per entity (the module docstring), counting from what
        ``clock`` has seen (None: from nothing); ``clock`` is not changed:
        the caller adds :attr:`FrameCheck.repeated` to it when it keeps the
        values. Duplicate (entity, time) keys, compared as instants, when
        both are among ``columns``, are a problem of the entity column at
        every repeat after the first (``check_keys=False``: not checked here,
        for a caller that checks them itself, as batch scoring does over the
        whole file).
        """
        names = list(columns) if columns is not None else self.names
        values: dict[str, pd.Series] = {}
        problems: list[FrameProblem] = []
        checks: dict[str, ColumnCheck] = {}
        for name in names:
            checked = checks[name] = self.rule(name).column(frame[name])
            values[name] = checked.values
            for problem, mask in checked.problems():
                problems.append(FrameProblem(name, problem, tuple(int(i) for i in frame.index[mask])))
        repeated: tuple[tuple[Any, int], ...] = ()
        time = checks.get(self.time_column)
        if time is not None and time.ambiguous is not None:
            entity = checks.get(self.entity_column) if self.entity_column else None
            rows = np.flatnonzero(time.ambiguous)
            if entity is None or entity.ok:  # a refused entity value: the frame is refused anyway
                owners = values[self.entity_column].to_numpy(dtype=object)[rows] if entity is not None \
                    else [None] * len(rows)
                repeated = tuple(zip(owners, time.later.asi8[rows].tolist(), strict=True))
                later = rows[(clock or RepeatedHours()).occurrences(repeated) >= 1]
                values[self.time_column] = time.with_later(later)
        out = pd.DataFrame(values, index=frame.index)
        if check_keys and set(self.keys) <= set(names) and len(out) > 1:
            repeats = out.duplicated(list(self.keys), keep="first").to_numpy()
            if repeats.any():
                problems.append(FrameProblem(self.keys[0], DUPLICATE,
                                             tuple(int(i) for i in frame.index[repeats])))
        return FrameCheck(out, tuple(problems), repeated)

    def from_file(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A frame read from a file with the contract's columns' file spellings read (other columns as they are)."""
        changed = {}
        for rule in self.columns:
            if rule.name in frame.columns and isinstance(frame[rule.name], pd.Series):
                read = rule.from_file(frame[rule.name])
                if read is not frame[rule.name]:
                    changed[rule.name] = read
        return frame.assign(**changed) if changed else frame

    def schema(self, columns: Sequence[str]) -> Any:
        """The pandera ``DataFrameSchema`` of these rules for ``columns`` (cached).

        Each column gets pandera's own null check (``nullable``) and the
        rule's checks named ``rule:type``, ``rule:domain`` (min/max or
        categories) and ``rule:length`` (text length), each the vectorised
        check of :meth:`ColumnRule.column`; the frame gets the (entity, time)
        uniqueness check when both columns are there. Run it on the values of
        :meth:`check_frame` so that keys are compared as converted values.
        """
        return _schema(self, tuple(columns))

    def records(self, features: Sequence[str] | None = None) -> RecordValidator:
        """A :class:`RecordValidator` of these rules for ``features`` (default: the contract's feature columns)."""
        return RecordValidator(self, features)


@lru_cache(maxsize=64)
def _schema(rules: ContractRules, columns: tuple[str, ...]) -> Any:
    import pandera.pandas as pa

    def check(rule: ColumnRule, mask: str) -> Callable[[pd.Series], pd.Series]:
        return lambda series: pd.Series(~getattr(rule.column(series), mask), index=series.index)

    schema_columns = {}
    for name in columns:
        rule = rules.rule(name)
        checks = [pa.Check(check(rule, "mistyped"), name=CHECK_PREFIX + TYPE)]
        if rule.kind == "datetime":
            checks.append(pa.Check(check(rule, "gap"), name=CHECK_PREFIX + GAP))
        if rule.bounded:
            checks.append(pa.Check(check(rule, "outside"), name=CHECK_PREFIX + DOMAIN))
        if rule.max_length is not None:
            checks.append(pa.Check(check(rule, "too_long"), name=CHECK_PREFIX + LENGTH))
        schema_columns[name] = pa.Column(None, checks=checks, nullable=rule.nullable, coerce=False)
    keys = list(rules.keys)
    return pa.DataFrameSchema(schema_columns, unique=keys if set(keys) <= set(columns) else None,
                              report_duplicates="exclude_first", strict=False)


@lru_cache(maxsize=32)
def rules_for(contract: DataContract) -> ContractRules:
    """The contract compiled into rules, once per contract."""
    return ContractRules(
        name=contract.name,
        columns=tuple(column_rule(spec, contract.time_zone) for spec in contract.columns),
        entity_column=contract.entity_column,
        time_column=contract.time_column,
        features=tuple(contract.feature_columns),
        time_zone=contract.time_zone,
    )


def column_rule(spec: ColumnSpec, time_zone: str = DEFAULT_TIME_ZONE) -> ColumnRule:
    """One contract column as a rule (a string column without ``max_length`` gets :data:`DEFAULT_MAX_LENGTH`).

    ``time_zone``: the contract's clock, for a datetime column.
    """
    max_length = spec.max_length if spec.max_length is not None else (
        DEFAULT_MAX_LENGTH if spec.type == "string" else None)
    return ColumnRule(
        name=spec.name, kind=spec.type, nullable=spec.nullable,
        min=spec.min if spec.type in ("int", "float") else None,
        max=spec.max if spec.type in ("int", "float") else None,
        categories=frozenset(spec.categories) if spec.categories is not None else None,
        max_length=max_length, domain=spec.describe_domain(),
        time_zone=time_zone if spec.type == "datetime" else DEFAULT_TIME_ZONE,
    )


# ----------------------------------------------------------------------------- records

class RecordValidator:
    """Checks records (JSON-decoded dicts, as the HTTP service receives them) against the rules, value by value.

    ``rows(records)`` returns one tuple per record, the values normalised
    (int, float with NaN for null, bool, str, an aware ``pandas.Timestamp``
    on the contract's clock; other nulls as None) in the order of
    ``features``, or raises :class:`RecordError` for the first record and
    field refused (records in order, fields in feature order), then for a
    repeated (entity, time) key, compared as instants. Naive wall times of
    the repeated autumn hour in the time column are resolved by order of
    appearance per entity within the request, as frames resolve them (a
    single such record is the earlier instant). Fields that are not features
    are ignored. Needs no model and no pandas frame.
    """

    def __init__(self, contract: DataContract | ContractRules, features: Sequence[str] | None = None) -> None:
        rules = contract if isinstance(contract, ContractRules) else rules_for(contract)
        self.rules = rules
        self.features = list(features) if features is not None else list(rules.features)
        self._checks = [(name, rules.rule(name).value) for name in self.features]
        self._time = self.features.index(rules.time_column) if rules.time_column in self.features else None
        if self._time is not None:
            self._checks[self._time] = (rules.time_column, rules.rule(rules.time_column).moment)
        entity = rules.entity_column
        self._entity = self.features.index(entity) if entity is not None and entity in self.features else None
        keys = rules.keys
        self._keys = tuple(self.features.index(k) for k in keys) if set(keys) <= set(self.features) else None

    def rows(self, records: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Normalised values of every record, or ``RecordError`` naming the first record and field refused."""
        checks, out, time = self._checks, [], self._time
        repeated: list[tuple[int, pd.Timestamp]] = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise RecordError(index, None, "is not a JSON object of field: value")
            values = []
            for position, (name, check) in enumerate(checks):
                try:
                    value = record[name]
                except KeyError:
                    raise RecordError(index, name, "missing") from None
                try:
                    if position == time:
                        value, later = check(value)
                        if later is not None:
                            repeated.append((index, later))
                        values.append(value)
                    else:
                        values.append(check(value))
                except Refused as refused:
                    raise RecordError(index, name, refused.text) from None
            out.append(tuple(values))
        if repeated:
            self._in_order(out, repeated)
        if self._keys is not None and len(out) > 1:
            first: dict[tuple[Any, ...], int] = {}
            positions = self._keys
            named = ", ".join(self.features[i] for i in positions)
            for index, values in enumerate(out):
                key = tuple(_key_part(values[i]) for i in positions)
                if key in first:
                    raise RecordError(index, self.features[positions[0]],
                                      f"duplicate ({named}) key: record {first[key]} has the same")
                first[key] = index
        return out

    def _in_order(self, out: list[tuple[Any, ...]], repeated: list[tuple[int, pd.Timestamp]]) -> None:
        """Records in the repeated hour after the first of their (entity, wall time) get the later instant."""
        assert self._time is not None
        entity, time = self._entity, self._time
        keys = [(out[index][entity] if entity is not None else None, later.value) for index, later in repeated]
        for (index, later), seen in zip(repeated, RepeatedHours().occurrences(keys), strict=True):
            if seen >= 1:
                row = list(out[index])
                row[time] = later
                out[index] = tuple(row)


def _key_part(value: Any) -> Any:
    """A key value as compared: a time as its instant (int64 ns), anything else as it is."""
    return value.value if isinstance(value, pd.Timestamp) else value


def validate_records(contract: DataContract | ContractRules, records: Sequence[Mapping[str, Any]],
                     features: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """``RecordValidator(contract, features).rows(records)``: normalised rows, or ``RecordError``."""
    return RecordValidator(contract, features).rows(records)
