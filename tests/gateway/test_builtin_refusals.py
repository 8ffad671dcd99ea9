"""A built-in model's deployment refusing a query (HTTP 400/422: a bad ``USING`` value, rows
it cannot read) is the user's error, 4xx, naming the option; an external model's is still
the endpoint's (502)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from byom.errors import EndpointHTTPError
from catalog.records import PredictorRecord
from gateway.executor.predict import refused

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _record(kind: str) -> PredictorRecord:
    return PredictorRecord(
        name="french", kind=kind, task="translation" if kind == "builtin" else None,
        url_predict="http://serve/byom/french/v1/predict", status="complete",
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def _answered(status: int, detail: Any) -> EndpointHTTPError:
    body = json.dumps({"detail": detail}) if detail is not None else "plain text"
    return EndpointHTTPError("answered HTTP ...", endpoint_status=status, body=body)


def test_a_refused_option_is_an_invalid_option() -> None:
    error = refused(
        _record("builtin"),
        _answered(400, "cannot predict: temperature must be in [0, 100], got -1.0"),
        {"max_new_tokens": 3, "temperature": -1},
    )
    assert error is not None and error.status == 400 and error.code == "INVALID_OPTION"
    assert error.message == (
        "Model 'french' refused USING temperature = -1: temperature must be in [0, 100], got -1.0."
    )
    assert error.details == {"model": "french", "option": "temperature"}


def test_refused_rows_are_invalid_input() -> None:
    error = refused(
        _record("builtin"), _answered(400, "cannot predict: expected a 'source' column"), {}
    )
    assert error is not None and error.code == "INVALID_INPUT"
    assert error.message == "Model 'french' cannot predict: expected a 'source' column."
    plain = refused(_record("builtin"), _answered(422, None), None)
    assert plain is not None and plain.message == "Model 'french' cannot predict: plain text."


def test_other_answers_stay_endpoint_errors() -> None:
    assert refused(_record("external"), _answered(400, "bad"), {"temperature": -1}) is None
    assert refused(_record("builtin"), _answered(404, "Not Found"), {}) is None
    assert refused(_record("builtin"), _answered(500, "boom"), {}) is None
