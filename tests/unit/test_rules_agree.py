"""Property: the three validators of the contract accept and refuse the same inputs, naming the same column and row.

The validators: the pandera schema (``DataContract.validate``), the batch
chunk validator (``scoring.fast_validate`` and ``ContractRules.check_frame``,
vectorised) and the per-record validator (``RecordValidator``, value by value,
as the service checks JSON records). Hypothesis generates values of every
kind for every column type: wrong types, out of range, nulls, unknown
categories, long text, bools for numbers, integral and fractional floats,
huge integers, text of digits, timestamps in and out of the accepted layouts,
with and without offsets, aware values of other zones, wall times in the
spring gap and in the repeated autumn hour of the contract's time zone
(Europe/Stockholm). Where all accept, they must also agree on the values
(after conversion), including which instant a repeated wall time became.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collabops.data.contract import contract_from_dict
from collabops.data.rules import RecordError, RecordValidator, rules_for
from collabops.errors import DataError
from collabops.production.compiled import frame_from_rows
from collabops.production.scoring import fast_validate

CONTRACT = contract_from_dict({
    "name": "agree", "version": 1, "time_column": "ts", "target": "y", "entity_column": "site",
    "segment_column": "kind", "time_zone": "Europe/Stockholm",
    "columns": [
        {"name": "ts", "type": "datetime"},
        {"name": "site", "type": "string", "max_length": 8},
        {"name": "kind", "type": "category", "categories": ["a", "b"]},
        {"name": "kind_n", "type": "category", "categories": ["x", "y"], "nullable": True},
        {"name": "note", "type": "string", "nullable": True},
        {"name": "flag", "type": "bool"},
        {"name": "flag_n", "type": "bool", "nullable": True},
        {"name": "size", "type": "int", "min": 0, "max": 1000},
        {"name": "count_n", "type": "int", "nullable": True},
        {"name": "level", "type": "float", "min": -10, "max": 10, "nullable": True},
        {"name": "price", "type": "float"},
        {"name": "seen", "type": "datetime", "nullable": True},
        {"name": "y", "type": "float"},
    ]})
FEATURES = CONTRACT.feature_columns
RULES = rules_for(CONTRACT)
EXAMPLES = int(os.environ.get("COLLABOPS_AGREE_EXAMPLES", "250"))
"""Examples of the one-value property (the several-records one runs half as many); raise it to search longer."""
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _base(i: int) -> dict[str, Any]:
    """A valid record; records of different ``i`` have different (site, ts) keys."""
    return {"ts": f"2024-03-01T{i:02d}:00:00", "site": f"S{i}", "kind": "a", "kind_n": None, "note": "n",
            "flag": True, "flag_n": None, "size": 10, "count_n": None, "level": 1.5, "price": 2.0,
            "seen": "2024-02-01"}


def _timestamp(moment: dt.datetime, layout: int) -> str:
    if layout == 0:
        return moment.date().isoformat()
    if layout == 1:
        return moment.strftime("%Y-%m-%dT%H:%M")
    if layout == 2:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if layout == 9:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if layout == 10:
        return moment.strftime("%Y-%m-%d %H:%M+0530")
    if layout == 11:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f-03:00")
    return moment.isoformat(timespec="microseconds")[:20 + layout % 6]  # 1 to 6 fraction digits


STOCKHOLM = ZoneInfo("Europe/Stockholm")
CLOCK_TEXTS = ["2024-03-31T02:30:00", "2024-03-31 02:00", "2024-03-31T01:59:59.999999", "2024-03-31T03:00",
               "2024-10-27T02:00:00", "2024-10-27 02:30", "2024-10-27T02:59:59.123456789", "2024-10-27T03:00",
               "2024-10-27T01:59", "2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00",
               "2024-10-27T00:00:00Z", "2024-10-27T01:00Z", "2024-10-27T02:00+0100", "2024-10-27T02:00:00z",
               "2024-10-27T02:00:00+01", "2024-10-27T02:00 UTC", "2024-10-27+01:00", "2024-10-27T02:00:00+24:00",
               "2261-12-31T23:30:00-05:00", "2262-01-01T00:30:00+14:00", "1677-12-31T23:30:00Z", "1678-01-01"]
"""Texts around the clock's changes in Europe/Stockholm (gap on 2024-03-31, repeat on 2024-10-27) and offsets."""

VALUES = st.one_of(
    st.none(),
    st.just(math.nan),
    st.booleans(),
    st.integers(min_value=-(2 ** 65), max_value=2 ** 65),
    st.integers(min_value=-20, max_value=1020),
    st.sampled_from([0, 1, 2 ** 53, 2 ** 53 + 1, -(2 ** 53) - 1, 2 ** 63 - 1, 2 ** 63, -(2 ** 63), -(2 ** 63) - 1,
                     1709276400, 1709276400000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-15, max_value=1005).map(lambda v: float(round(v)) if v > 500 else v),  # integral, or not
    st.sampled_from([864.0, 500.9, -0.0, 10.0, -10.0, 10.5, 1e300, float(2 ** 63), 1.0, 0.0]),
    st.text(max_size=12),
    st.from_regex(r"[+-]?[0-9]{1,7}(\.[0-9]{0,2})?", fullmatch=True),  # numbers written as text
    st.sampled_from(["true", "false", "True", "yes", "0", "1", "a", "b", "c", "x", "y", "", "001", "S1", "N" * 9,
                     "L" * 257, "nan", "NA"]),
    st.builds(_timestamp, st.datetimes(min_value=dt.datetime(1600, 1, 1), max_value=dt.datetime(2400, 12, 31)),
              st.integers(min_value=0, max_value=11)),
    st.sampled_from(CLOCK_TEXTS),
    st.sampled_from([dt.datetime(2024, 10, 27, 2, 30), dt.datetime(2024, 3, 31, 2, 30), dt.date(2024, 3, 31),
                     dt.datetime(2024, 10, 27, 2, 30, tzinfo=STOCKHOLM),
                     dt.datetime(2024, 10, 27, 2, 30, tzinfo=STOCKHOLM, fold=1),
                     dt.datetime(2024, 5, 1, 8, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
                     pd.Timestamp("2024-10-27 02:30"), pd.Timestamp("2024-10-27 00:30", tz="UTC"),
                     pd.Timestamp("2024-10-27 02:30:00.000000001", tz="America/New_York"),
                     pd.Timestamp("2261-12-31 23:30", tz="Pacific/Kiritimati"),
                     np.datetime64("2024-10-27T02:15"), np.datetime64("2024-03-31T02:15:00.000000001")]),
    st.sampled_from(["2024-03-01T00:00:00Z", "2024-03-01T00:00:00+01:00", "2024-02-30", "2024-03-01T24:00",
                     "1677-12-31", "1678-01-01", "2261-12-31T23:59:59.999999", "2262-01-01", "01/02/2024",
                     "2024-03-01T07:30:15.1234567", "20240301", "2024-3-1"]),
)


def _record_problems(records: list[dict[str, Any]]) -> set[tuple[int, str]]:
    """(record, field) of every value the per-record validator refuses, one field at a time."""
    found = set()
    for index, record in enumerate(records):
        for name in FEATURES:
            try:
                RecordValidator(RULES, [name]).rows([record])
            except RecordError:
                found.add((index, name))
    return found


def _pandera(frame: pd.DataFrame) -> tuple[pd.DataFrame | None, set[tuple[int, str]], str]:
    """The contract's verdict: the frame, or the (row from 0, column) pairs its message names, and the message."""
    try:
        return CONTRACT.validate(frame, source="request", columns=FEATURES), set(), ""
    except DataError as exc:
        message = str(exc)
    named = set()
    for line in message.splitlines()[1:]:
        column = re.match(r"\s+- column '([^']+)'", line)
        if column:
            named |= {(int(row) - 1, column.group(1)) for row in re.findall(r"\(row (\d+)\)", line)}
        else:
            assert line.lstrip().startswith("- duplicate rows"), message
            named |= {(int(row) - 1, "<duplicate>") for row in re.findall(r"\(row (\d+)\)", line)}
    return None, named, message


def _batch(frame: pd.DataFrame) -> tuple[pd.DataFrame | None, set[tuple[int, str]], set[tuple[int, str]]]:
    """The chunk validator's verdict: the frame or None, every (row, column) it refuses, and those a message shows.

    A message shows the first 3 rows of each problem of a column (type, null,
    range, length), as pandera's is worded.
    """
    fast = fast_validate(CONTRACT, frame, FEATURES)
    checked = RULES.check_frame(frame, FEATURES)
    assert (fast is None) == (not checked.ok)
    named, shown = set(), set()
    for problem in checked.problems:
        column = "<duplicate>" if problem.problem == "duplicate" else problem.column
        named |= {(row, column) for row in problem.rows}
        shown |= {(row, column) for row in sorted(problem.rows)[:3]}
    return fast, named, shown


def _agree(records: list[dict[str, Any]], frame: pd.DataFrame) -> None:
    by_pandera, pandera_named, message = _pandera(frame)
    by_batch, batch_named, batch_shown = _batch(frame)
    try:
        rows = RecordValidator(CONTRACT).rows(records)
        first = None
    except RecordError as exc:
        rows, first = None, exc
    record_named = _record_problems(records)
    accepted = {"pandera": by_pandera is not None, "batch": by_batch is not None, "records": rows is not None}
    assert len(set(accepted.values())) == 1, (accepted, records, message)
    if rows is not None:
        pd.testing.assert_frame_equal(by_batch, by_pandera)
        pd.testing.assert_frame_equal(frame_from_rows(rows, CONTRACT, FEATURES), by_pandera, check_index_type=False)
        return
    # Every value refused, by (row, column), named alike.
    assert batch_named - {p for p in batch_named if p[1] == "<duplicate>"} == record_named, (records, message)
    assert pandera_named == batch_shown, (records, message)
    first_bad = RULES.check_frame(frame, FEATURES).first()
    if first_bad.problem == "duplicate":
        assert first.problem.startswith("duplicate") and first.index == min(first_bad.rows)
    else:
        assert (first.index, first.field) == (min(first_bad.rows), first_bad.column), (first, records)


@SETTINGS
@given(column=st.sampled_from(FEATURES), value=VALUES)
def test_one_value_in_one_record_gets_the_same_verdict_at_every_door(column: str, value: Any) -> None:
    """A one-row frame as the service builds it from the record (``DataFrame.from_records``)."""
    record = _base(0)
    record[column] = value
    _agree([record], pd.DataFrame.from_records([record], columns=FEATURES))


@settings(max_examples=max(1, EXAMPLES // 2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.one_of(st.none(), st.tuples(st.sampled_from(FEATURES), VALUES)), min_size=1, max_size=4))
def test_several_records_name_the_same_first_record_and_field(changes: list) -> None:
    """Up to four records, each valid or with one value changed; object columns keep every value as it is."""
    records = []
    for i, change in enumerate(changes):
        record = _base(i)
        if change is not None:
            record[change[0]] = change[1]
        records.append(record)
    frame = pd.DataFrame({name: pd.Series([r[name] for r in records], dtype=object) for name in FEATURES})
    _agree(records, frame)


WALLS = st.sampled_from(["2024-10-27T02:00:00", "2024-10-27 02:00", "2024-10-27T02:00:00+02:00",
                         "2024-10-27T02:00:00+01:00", "2024-10-27T00:00:00Z", "2024-10-27T01:00:00Z",
                         "2024-10-27T02:30:00", "2024-10-27T01:30:00", "2024-03-31T02:30:00", "2024-03-31T03:00:00"])


@settings(max_examples=max(1, EXAMPLES // 2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(st.tuples(st.sampled_from(["A", "B"]), WALLS), min_size=1, max_size=6))
def test_repeated_wall_times_become_the_same_instants_at_every_door(keys: list) -> None:
    """Records of two entities around the clock's changes: order of appearance decides the same instants everywhere."""
    records = [dict(_base(i), site=site, ts=ts) for i, (site, ts) in enumerate(keys)]
    frame = pd.DataFrame({name: pd.Series([r[name] for r in records], dtype=object) for name in FEATURES})
    _agree(records, frame)
    fresh = RULES.check_frame(frame, FEATURES)
    if fresh.ok:  # the time column became aware instants on the contract's clock, each key once
        assert str(fresh.values["ts"].dtype) == "datetime64[ns, Europe/Stockholm]"
        assert not fresh.values.duplicated(["site", "ts"]).any()
