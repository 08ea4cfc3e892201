"""Request body -> records -> validated rows: the service's input rules and limits, without HTTP routing.

Refusals are :class:`RequestError` with the HTTP status: 400 (not JSON, or
nested too deeply to parse), 413 (body or record count over the limit), 422
(not ``{"records": [...]}``, or a record the contract refuses, naming the
record and the field). Nothing a client sends is meant to end as a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas and the compiled path load with the model, not at import
    import pandas as pd
    from starlette.requests import Request

    from collabops.data.contract import DataContract
    from collabops.production.compiled import CompiledModel

class RequestError(Exception):
    """A request the service refuses, with its HTTP status (400, 401, 413 or 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Parsed:
    """A validated request: ``rows`` (tuples in feature order) for the compiled path, or a ``frame`` of them."""

    records: list[dict[str, Any]]
    rows: list[tuple[Any, ...]] | None = None
    frame: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)


async def read_body(request: Request, max_body_bytes: int) -> bytes:
    """The whole body, or 413 as soon as the declared length or the bytes received pass ``max_body_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise RequestError(413, f"body of {declared} bytes; the limit is {max_body_bytes}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body_bytes:
            raise RequestError(413, f"body larger than the limit; the limit is {max_body_bytes} bytes")
    return body


class _NotJson(Exception):
    """What Python's json module accepts but JSON (RFC 8259) does not, or what would be read two ways."""


def _object_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different (Python's json keeps the last of a repeated key in silence)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NotJson(f"key {key!r} appears twice in one object")
            seen.add(key)
    return found


def _no_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON numbers (send null for a missing value)."""
    raise _NotJson(f"{name!r} is not a JSON number (send null for a missing value)")


class RequestDecoder:
    """The input rules of one model: its contract's feature columns, the compiled validator if any, the record limit."""

    def __init__(self, contract: DataContract, compiled: CompiledModel | None, max_records: int) -> None:
        from collabops.data.rules import RecordValidator

        self.contract, self.compiled, self.max_records = contract, compiled, max_records
        self.features = contract.feature_columns
        self._feature_set = frozenset(self.features)
        self._validator = RecordValidator(contract, self.features)

    def records(self, body: bytes) -> list[dict[str, Any]]:
        """The body's records (at least one, at most ``max_records``), or the 400/413/422 that refuses it."""
        try:
            payload = json.loads(body, object_pairs_hook=_object_once, parse_constant=_no_constant)
        except _NotJson as exc:
            raise RequestError(400, f"malformed JSON: {exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"malformed JSON: {exc}") from None
        except RecursionError:
            raise RequestError(400, "malformed JSON: nested too deeply") from None
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            raise RequestError(422, "body must be {\"records\": [{field: value, ...}, ...]} with at least one record")
        if len(records) > self.max_records:
            raise RequestError(413, f"{len(records)} records in one request; the limit is {self.max_records}")
        return records

    def validate(self, records: list[dict[str, Any]]) -> Parsed:
        """The one rule set of the request path: ``records`` -> rows for the model, or a 422 naming record and field.

        The contract's per-record validator (:class:`collabops.data.rules.RecordValidator`,
        the same rules as the pandera schema and the batch validator) decides
        every request at the same speed: the rows it accepts go to the
        compiled path, or, when the model could not be compiled, to
        ``model.predict`` on a frame built from the rows; a refusal is HTTP
        422 at once, naming the record (counted from 0) and the field.
        """
        from collabops.data.rules import RecordError

        try:
            rows = self._validator.rows(records)
        except RecordError as exc:
            raise RequestError(422, str(exc)) from None
        except RecursionError:  # a value nested too deeply to describe
            raise RequestError(422, "a value is nested too deeply to be a field value") from None
        if self.compiled is not None:
            return Parsed(records, rows=rows, warnings=self.warnings(records))
        from collabops.production.compiled import frame_from_rows

        return Parsed(records, frame=frame_from_rows(rows, self.contract, self.features),
                      warnings=self.warnings(records))

    def warnings(self, records: list[dict[str, Any]]) -> list[str]:
        """One warning naming the fields that are not features (the target, personal columns, ...), if any."""
        wanted, known = len(self.features), self._feature_set
        if all(len(r) == wanted for r in records):  # every feature present (checked before): nothing else
            return []
        extra = sorted(_printable(k) for k in {k for r in records for k in r} - known)
        return [f"ignored field(s) that are not model features: {', '.join(extra)}"] if extra else []


def _printable(name: Any) -> str:
    """A field name as text the JSON answer can carry (a lone surrogate, which UTF-8 cannot encode, escaped)."""
    return str(name).encode("utf-8", "backslashreplace").decode("utf-8")
