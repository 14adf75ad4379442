"""One place that maps ticklake's exceptions to HTTP statuses (datasette's ``Base400``).

The first class in :data:`STATUS_BY_ERROR` that an exception is an instance of decides
its status; the body is always ``{"error": {"type", "message", "fields"}}``. A request
the framework cannot validate (malformed JSON, wrong types, out-of-range or unknown
fields) is a 422 in the same envelope (:func:`validation_error_body`), never FastAPI's
``{"detail": [...]}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ticklake.analytics.registry import UnknownMetricError
from ticklake.errors import (
    AmbiguousDatasetError,
    ConfigError,
    DatasetNotFoundError,
    InvalidNameError,
    LakeNotFoundError,
    LockTimeoutError,
    QueryError,
    QueryRejectedError,
    QueryTimeoutError,
    ResultTooLargeError,
    SchemaMismatchError,
    TicklakeError,
)


class ResourceNotFoundError(TicklakeError, KeyError):
    """A run, job, report or file the request names does not exist."""

    exit_code = 4


class UnsafePathError(TicklakeError, PermissionError):
    """A requested file lies outside the directory it must come from."""


class JobStateError(TicklakeError, RuntimeError):
    """The job cannot do that in its current state (e.g. resume a running job)."""


def _status_table() -> list[tuple[type[BaseException], int]]:
    return [
        (ResourceNotFoundError, 404),
        (DatasetNotFoundError, 404),
        (LakeNotFoundError, 404),
        (UnknownMetricError, 404),
        (UnsafePathError, 403),
        (ResultTooLargeError, 413),
        (AmbiguousDatasetError, 409),
        (JobStateError, 409),
        (QueryRejectedError, 400),
        (QueryTimeoutError, 400),
        (QueryError, 400),
        (InvalidNameError, 422),
        (SchemaMismatchError, 422),
        (ConfigError, 422),
        (LockTimeoutError, 503),
        (TicklakeError, 500),
    ]


def status_for(error: BaseException) -> int:
    """The HTTP status of a ticklake exception.

    Examples:
        >>> status_for(DatasetNotFoundError("x")), status_for(QueryRejectedError("no"))
        (404, 400)
    """
    for cls, status in _status_table():
        if isinstance(error, cls):
            return status
    return 500


def json_safe(value: Any) -> Any:
    """Plain JSON values: dates as ISO text, paths as text, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def error_body(error: TicklakeError) -> dict[str, Any]:
    fields = {k: v for k, v in error.fields.items() if k not in ("query",)}
    body = {"type": type(error).__name__, "message": str(error), "fields": json_safe(fields)}
    json.dumps(body)  # json_safe guarantees this; fail loudly here, not mid-response
    return {"error": body}


#: JSON Schema of the error envelope (the OpenAPI document's 422 answers use it).
ERROR_ENVELOPE_SCHEMA: dict[str, Any] = {
    "title": "ErrorEnvelope",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "fields"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object"},
            },
        }
    },
}


def _problem(error: Any) -> dict[str, str]:
    location = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", "invalid"))
    kind = str(error.get("type", "invalid"))
    if kind == "json_invalid":  # loc is ("body", character offset)
        reason = (error.get("ctx") or {}).get("error")
        at = f" at character {location[1]}" if len(location) > 1 else ""
        location, message = location[:1], f"malformed JSON{at}: {reason or message}"
    return {"location": ".".join(location) or "request", "message": message, "type": kind}


def validation_error_body(errors: Sequence[Any]) -> dict[str, Any]:
    """The error envelope of a request that failed FastAPI's validation (a 422).

    The message is one line naming the first problem and where it is; ``fields.errors``
    lists every problem as ``{"location", "message", "type"}``.

    Examples:
        >>> body = validation_error_body(
        ...     [{"loc": ("body", "max_rows"), "msg": "Input should be greater than or "
        ...       "equal to 1", "type": "greater_than_equal", "input": 0}])
        >>> body["error"]["message"]
        'body.max_rows: Input should be greater than or equal to 1'
    """
    problems = [_problem(error) for error in errors]
    first = problems[0] if problems else {"location": "request", "message": "invalid"}
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    body = {
        "type": "RequestValidationError",
        "message": f"{first['location']}: {first['message']}{more}",
        "fields": {"errors": json_safe(problems)},
    }
    return {"error": body}
