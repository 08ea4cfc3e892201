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
string      text (never a number), at most ``max_length`` characters
            (:data:`DEFAULT_MAX_LENGTH` unless the contract says otherwise)
category    text, one of the column's categories
datetime    naive ISO 8601 text ``YYYY-MM-DD[(T| )hh:mm[:ss[.f{1,9}]]]`` or a
            naive date/time value, years 1678-2261 (whole years of pandas'
            nanosecond range); never a number (epoch) nor a value with a time zone
==========  ===================================================================

min/max bound int and float columns (inclusive), categories bound category
and string columns. Accepted columns take their final dtype (datetime64[ns],
int64 or Int64 when nullable, float64 with NaN for null, bool or boolean when
nullable, object text with None for null), whichever door they came through.

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

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?", re.ASCII)
"""The naive ISO 8601 layouts a datetime column accepts as text."""
_ZONED = re.compile(TIMESTAMP.pattern + r"\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)", re.ASCII | re.IGNORECASE)
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
MISSING, NULL, TYPE, DOMAIN, LENGTH, DUPLICATE = "missing", "null", "type", "domain", "length", "duplicate"
CHECK_PREFIX = "rule:"
"""Pandera check names are ``rule:<problem>`` (``rule:type``, ``rule:domain``, ``rule:length``)."""

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
    column's type, ``outside`` values outside min/max or the categories,
    ``too_long`` text longer than ``max_length``. Where anything is refused,
    ``values`` is an object column: accepted values converted, refused ones as
    they were.
    """

    values: pd.Series
    null: np.ndarray
    mistyped: np.ndarray
    outside: np.ndarray
    too_long: np.ndarray

    def problems(self) -> Iterator[tuple[str, np.ndarray]]:
        """(problem, mask) for every problem that occurs, in the order records report them."""
        for problem, mask in ((NULL, self.null), (TYPE, self.mistyped), (DOMAIN, self.outside),
                              (LENGTH, self.too_long)):
            if mask.any():
                yield problem, mask

    @property
    def ok(self) -> bool:
        return not (self.null.any() or self.mistyped.any() or self.outside.any() or self.too_long.any())


@dataclass(frozen=True)
class ColumnRule:
    """What one contract column accepts; the same rule for frames, file chunks and records.

    Build it with :func:`rules_for`. ``domain`` words min/max or the
    categories for messages (``in [0, 1]``, ``one of a, b``).
    """

    name: str
    kind: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: frozenset[str] | None = None
    max_length: int | None = None
    domain: str = ""
    _convert: Callable[[Any], Any] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column '{self.name}': unknown type '{self.kind}'")
        object.__setattr__(self, "_convert", _CONVERTERS[self.kind])

    @property
    def dtype(self) -> str:
        """The pandas dtype of the column once accepted."""
        return {"datetime": "datetime64[ns]", "int": "Int64" if self.nullable else "int64", "float": "float64",
                "bool": "boolean" if self.nullable else "bool"}.get(self.kind, "object")

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
        """``value`` normalised (int, float, bool, str, naive datetime; a null as :attr:`null_value`), or ``Refused``.

        Checks, in order: null where not nullable, type, then min/max or
        categories, then the text length.
        """
        if is_null(value):
            if self.nullable:
                return self.null_value
            raise Refused(NULL, "null but the column is not nullable")
        converted = self._convert(value)
        self.check_domain(converted)
        return converted

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
        return ColumnCheck(values, disallowed, mistyped, outside, too_long)

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
            values[nulls] = {"datetime": np.datetime64("NaT"), "float": np.nan, "int": 0,
                             "bool": False}.get(self.kind)  # None for text
        else:
            outside, too_long = outside[codes], too_long[codes]
        final = pd.Series(_final(self, values, nulls, values), index=series.index, name=series.name)
        none = np.zeros(len(codes), dtype=bool)
        return ColumnCheck(final, none, none, outside, too_long)

    def _elementwise(self, data: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An object column through the per-value converter.

        Shortcuts that give the converter's answer without calling it per
        value: a column of text only, for text columns; of bools only, for
        bool columns; of integers (in the int64 range) or floats only, for
        int and float columns. Timestamps written as text are converted once
        per distinct text.
        """
        n = len(data)
        mistyped = np.zeros(n, dtype=bool)
        present = np.flatnonzero(~nulls)
        values = data if len(present) == n else data[present]
        shape = pd.api.types.infer_dtype(values, skipna=False) if len(present) else "empty"
        kind, convert = self.kind, self._convert
        if kind in ("string", "category") and shape in ("string", "empty"):
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
        if kind == "datetime" and shape == "string":
            codes, uniques = pd.factorize(values)
            converted_uniques = np.empty(len(uniques), dtype=object)
            bad = np.zeros(len(uniques), dtype=bool)
            for i, text in enumerate(uniques):
                try:
                    converted_uniques[i] = convert(text)
                except Refused:
                    bad[i] = True
            moments = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
            moments[present] = _as_datetime(converted_uniques, ~bad)[codes]
            mistyped[present] = bad[codes]
            return moments, mistyped
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
        if kind == "datetime":
            return _as_datetime(out, good), mistyped
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
    """Text, never a number."""
    if isinstance(value, str):
        return value
    raise Refused(TYPE, f"{show(value)} is not of type string")


def _to_category(value: Any) -> str:
    """Text, never a number (the categories are checked after)."""
    if isinstance(value, str):
        return value
    raise Refused(TYPE, f"{show(value)} is not of type category")


def _to_datetime(value: Any) -> dt.datetime:
    """A naive datetime from ISO 8601 text or a naive date/time value, years 1678-2261; never a number."""
    if isinstance(value, str):
        if TIMESTAMP.fullmatch(value) is None:
            if _ZONED.fullmatch(value):
                raise Refused(TYPE, f"{show(value)} is not of type datetime (has a time zone; timestamps are "
                                    "naive local time)")
            raise Refused(TYPE, f"{show(value)} is not of type datetime (use ISO 8601: YYYY-MM-DD or "
                                "YYYY-MM-DDThh:mm[:ss[.ffffff]])")
        try:  # beyond microseconds (as pandas writes nanoseconds), pandas' Timestamp keeps every digit
            moment = dt.datetime.fromisoformat(value) if len(value) <= 26 else pd.Timestamp(value)
        except ValueError:
            raise Refused(TYPE, f"{show(value)} is not of type datetime (not a valid date or time)") from None
    elif isinstance(value, np.datetime64):
        low, high = np.datetime64(f"{FIRST_YEAR}-01-01"), np.datetime64(f"{LAST_YEAR + 1}-01-01")
        if not low <= value < high:
            raise Refused(TYPE, f"{show(value)} is not of type datetime (outside the years {FIRST_YEAR}-{LAST_YEAR})")
        return pd.Timestamp(value)
    elif isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise Refused(TYPE, f"{show(value)} is not of type datetime (has a time zone; timestamps are naive "
                                "local time)")
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        raise Refused(TYPE, f"{show(value)} is not of type datetime (a number is not a timestamp: use ISO 8601 "
                            "text)")
    else:
        raise Refused(TYPE, f"{show(value)} is not of type datetime")
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise Refused(TYPE, f"{show(value)} is not of type datetime (outside the years {FIRST_YEAR}-{LAST_YEAR})")
    return moment


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int, "float": _to_float, "bool": _to_bool, "string": _to_string, "category": _to_category,
    "datetime": _to_datetime,
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


def _typed_datetime(view: str, data: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if view == "M":
        low = np.datetime64(f"{FIRST_YEAR}-01-01").astype(data.dtype)
        high = np.datetime64(f"{LAST_YEAR + 1}-01-01").astype(data.dtype)
        good = ~nulls & (data >= low) & (data < high)
        values = np.where(good, data, np.datetime64("NaT")).astype("datetime64[ns]")
        return values, ~nulls & ~good
    return np.full(len(data), np.datetime64("NaT"), dtype="datetime64[ns]"), ~nulls


_TYPED: dict[str, Callable[[str, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "int": _typed_int, "float": _typed_float, "bool": _typed_bool, "string": _typed_text, "category": _typed_text,
    "datetime": _typed_datetime,
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


def _as_datetime(objects: np.ndarray, good: np.ndarray) -> np.ndarray:
    out = np.full(len(objects), np.datetime64("NaT"), dtype="datetime64[ns]")
    if good.any():
        out[good] = pd.DatetimeIndex(list(objects[good])).as_unit("ns").to_numpy()
    return out


def _final(rule: ColumnRule, values: np.ndarray, nulls: np.ndarray, data: np.ndarray) -> Any:
    """The accepted column in its final dtype (nulls only where the column is nullable; None in text columns)."""
    kind = rule.kind
    if kind == "int":
        return pd.arrays.IntegerArray(values.astype(np.int64, copy=False), nulls.copy()) if rule.nullable else values
    if kind == "float":
        return np.where(nulls, np.nan, values) if nulls.any() else values
    if kind == "bool":
        return pd.arrays.BooleanArray(values.astype(bool, copy=False), nulls.copy()) if rule.nullable else values
    if kind == "datetime":
        return values
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
    """A frame after the rules: the accepted values (final dtypes) and the problems, empty when all is accepted."""

    values: pd.DataFrame
    problems: tuple[FrameProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self) -> FrameProblem | None:
        """The problem at the lowest row (ties: the first column), as a record validator would report it."""
        if not self.problems:
            return None
        order = {name: i for i, name in enumerate(self.values.columns)}
        return min(self.problems, key=lambda p: (min(p.rows), order.get(p.column, len(order))))


@dataclass(frozen=True)
class ContractRules:
    """The contract as rules: one :class:`ColumnRule` per column, in the contract's order, and the (entity, time) key.

    ``features`` are the columns a model reads (the default for records).
    """

    name: str
    columns: tuple[ColumnRule, ...]
    entity_column: str | None
    time_column: str
    features: tuple[str, ...]

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
                    check_keys: bool = True) -> FrameCheck:
        """``frame[columns]`` through the rules, vectorised: values converted, problems by column and row.

        Every column must be present once (the callers check). Duplicate
        (entity, time) keys, when both are among ``columns``, are a problem of
        the entity column at every repeat after the first (``check_keys=False``:
        not checked here, for a caller that checks them itself, as batch
        scoring does over the whole file).
        """
        names = list(columns) if columns is not None else self.names
        values: dict[str, pd.Series] = {}
        problems: list[FrameProblem] = []
        for name in names:
            checked = self.rule(name).column(frame[name])
            values[name] = checked.values
            for problem, mask in checked.problems():
                problems.append(FrameProblem(name, problem, tuple(int(i) for i in frame.index[mask])))
        out = pd.DataFrame(values, index=frame.index)
        if check_keys and set(self.keys) <= set(names) and len(out) > 1:
            repeated = out.duplicated(list(self.keys), keep="first").to_numpy()
            if repeated.any():
                problems.append(FrameProblem(self.keys[0], DUPLICATE,
                                             tuple(int(i) for i in frame.index[repeated])))
        return FrameCheck(out, tuple(problems))

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
        columns=tuple(column_rule(spec) for spec in contract.columns),
        entity_column=contract.entity_column,
        time_column=contract.time_column,
        features=tuple(contract.feature_columns),
    )


def column_rule(spec: ColumnSpec) -> ColumnRule:
    """One contract column as a rule (a string column without ``max_length`` gets :data:`DEFAULT_MAX_LENGTH`)."""
    max_length = spec.max_length if spec.max_length is not None else (
        DEFAULT_MAX_LENGTH if spec.type == "string" else None)
    return ColumnRule(
        name=spec.name, kind=spec.type, nullable=spec.nullable,
        min=spec.min if spec.type in ("int", "float") else None,
        max=spec.max if spec.type in ("int", "float") else None,
        categories=frozenset(spec.categories) if spec.categories is not None else None,
        max_length=max_length, domain=spec.describe_domain(),
    )


# ----------------------------------------------------------------------------- records

class RecordValidator:
    """Checks records (JSON-decoded dicts, as the HTTP service receives them) against the rules, value by value.

    ``rows(records)`` returns one tuple per record, the values normalised
    (int, float with NaN for null, bool, str, naive ``datetime``; other nulls
    as None) in the order of ``features``, or raises :class:`RecordError` for
    the first record and field refused (records in order, fields in feature
    order), then for a repeated (entity, time) key. Fields that are not
    features are ignored. Needs no model and no pandas frame.
    """

    def __init__(self, contract: DataContract | ContractRules, features: Sequence[str] | None = None) -> None:
        rules = contract if isinstance(contract, ContractRules) else rules_for(contract)
        self.rules = rules
        self.features = list(features) if features is not None else list(rules.features)
        self._checks = [(name, rules.rule(name).value) for name in self.features]
        keys = rules.keys
        self._keys = tuple(self.features.index(k) for k in keys) if set(keys) <= set(self.features) else None

    def rows(self, records: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Normalised values of every record, or ``RecordError`` naming the first record and field refused."""
        checks, out = self._checks, []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise RecordError(index, None, "is not a JSON object of field: value")
            values = []
            for name, check in checks:
                try:
                    value = record[name]
                except KeyError:
                    raise RecordError(index, name, "missing") from None
                try:
                    values.append(check(value))
                except Refused as refused:
                    raise RecordError(index, name, refused.text) from None
            out.append(tuple(values))
        if self._keys is not None and len(out) > 1:
            first: dict[tuple[Any, ...], int] = {}
            positions = self._keys
            named = ", ".join(self.features[i] for i in positions)
            for index, values in enumerate(out):
                key = tuple(values[i] for i in positions)
                if key in first:
                    raise RecordError(index, self.features[positions[0]],
                                      f"duplicate ({named}) key: record {first[key]} has the same")
                first[key] = index
        return out


def validate_records(contract: DataContract | ContractRules, records: Sequence[Mapping[str, Any]],
                     features: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """``RecordValidator(contract, features).rows(records)``: normalised rows, or ``RecordError``."""
    return RecordValidator(contract, features).rows(records)
