"""Unit tests for the mlflow adapter against httpx.MockTransport."""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pandas as pd
import pytest

from adapters.base import Endpoint, Predictions
from adapters.http import HttpSettings
from adapters.mlflow_serving import MlflowAdapter
from byom.errors import (
    EndpointBadResponse,
    EndpointHTTPError,
    EndpointTimeout,
    InvalidInput,
    InvalidOption,
)
from tests.mock_http import Handler, Recorder, with_client

URL = "http://localhost:5000/invocations"
SETTINGS = HttpSettings(backoff=0.0, retries=2)
COLUMNS = ["0", "1"]
ROWS = [(2, 10), (3, 20), (4, 30)]
BYOM2 = Endpoint(
    model="byom2", url_predict=URL, target="1", dtype_dict={"0": "integer", "1": "integer"}
)


def run(
    handler: Handler,
    method: str = "predict",
    endpoint: Endpoint = BYOM2,
    columns: Sequence[str] = COLUMNS,
    rows: Sequence[Sequence[Any]] = ROWS,
) -> Any:
    """``MlflowAdapter.<method>(endpoint, columns, rows)`` answered by ``handler``."""
    return with_client(
        SETTINGS,
        handler,
        lambda client: getattr(MlflowAdapter(client, SETTINGS), method)(endpoint, columns, rows),
    )


def answer(payload: Any) -> httpx.Response:
    return httpx.Response(200, content=json.dumps(payload).encode())


def test_request_is_dataframe_split() -> None:
    rec = Recorder(answer({"predictions": [11, 21, 31]}))
    result = run(rec)
    assert isinstance(result, Predictions)
    assert result.values == [11, 21, 31] and result.extra == {}
    (req,) = rec.requests
    assert str(req.url) == URL and req.method == "POST"
    assert req.headers["content-type"] == "application/json"
    assert rec.body() == {
        "dataframe_split": {"columns": ["0", "1"], "data": [[2, 10], [3, 20], [4, 30]]}
    }
    split = rec.body()["dataframe_split"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(split["data"], columns=split["columns"]), pd.DataFrame(ROWS, columns=COLUMNS)
    )


def test_dates_and_missing_values_are_serialised() -> None:
    rec = Recorder(answer({"predictions": [1]}))
    run(
        rec,
        endpoint=Endpoint(model="m", url_predict=URL),
        columns=["d", "x"],
        rows=[(dt.date(2024, 5, 6), float("nan"))],
    )
    assert rec.body()["dataframe_split"]["data"] == [["2024-05-06", None]]


def test_mlflow_1_bare_list_answer() -> None:
    rec = Recorder(answer([11, 21, 31]))
    assert run(rec).values == [11, 21, 31]


def test_list_of_dicts_uses_the_target_key_and_keeps_every_key() -> None:
    rec = Recorder(
        answer(
            {
                "predictions": [
                    {"proba": 0.1, "1": 11},
                    {"proba": 0.2, "1": 21},
                    {"proba": 0.3, "1": 31},
                ]
            }
        )
    )
    result = run(rec)
    assert result.values == [11, 21, 31]
    assert result.extra == {"proba": [0.1, 0.2, 0.3], "1": [11, 21, 31]}


def test_list_of_dicts_without_the_target_key_uses_the_first_key() -> None:
    ep = Endpoint(model="m", url_predict=URL, target="y")
    rec = Recorder(
        answer(
            {
                "predictions": [
                    {"label": "a", "score": 0.9},
                    {"label": "b", "score": 0.4},
                    {"label": "c", "score": 0.1},
                ]
            }
        )
    )
    result = run(rec, endpoint=ep)
    assert result.values == ["a", "b", "c"]
    assert result.extra == {"label": ["a", "b", "c"], "score": [0.9, 0.4, 0.1]}


def test_dict_of_lists_answer() -> None:
    rec = Recorder(answer({"predictions": {"score": [0.5, 0.6, 0.7], "1": [1, 2, 3]}}))
    result = run(rec)
    assert result.values == [1, 2, 3]
    assert result.extra == {"score": [0.5, 0.6, 0.7], "1": [1, 2, 3]}


def test_list_of_lists_is_kept_per_row_when_no_dtype_constrains_it() -> None:
    ep = Endpoint(model="m", url_predict=URL)
    rec = Recorder(answer({"predictions": [[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]]}))
    assert run(rec, endpoint=ep).values == [[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]]


def test_empty_batch_sends_nothing() -> None:
    rec = Recorder(answer({"predictions": []}))
    assert run(rec, rows=[]).values == []
    assert rec.requests == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"prediction": [1, 2, 3]}, "missing key 'predictions' (keys: prediction)"),
        ({"predictions": [1, 2]}, "returned 2 predictions for 3 rows"),
        ([1, 2, 3, 4], "returned 4 predictions for 3 rows"),
        ("oops", "returned a JSON string, expected an object"),
        ({"predictions": 7}, "'predictions' as a JSON number"),
        ({"predictions": {}}, "empty object"),
        ({"predictions": {"1": [1, 2]}}, "returned 2 values of '1' for 3 rows"),
        ({"predictions": {"1": 5}}, "'predictions.1' as a JSON number"),
        ({"predictions": [{"1": 1}, 2, {"1": 3}]}, "prediction 1 as 2 while prediction 0"),
        ({"predictions": [{"1": 1}, {"1": 2}, {"2": 3}]}, "prediction 2 with keys ['2']"),
        ({"predictions": [{}, {}, {}]}, "expected every prediction to be an object"),
        ({"predictions": [1, "two", 3]}, "returned 'two' for row 1"),  # dtype integer
        ({"predictions": {"1": [1, 2, 3.5]}}, "returned 3.5 for row 2"),
        ({"predictions": [{"1": 1}, {"1": True}, {"1": 3}]}, "returned True for row 1"),
    ],
)
def test_bad_answers(payload: Any, fragment: str) -> None:
    rec = Recorder(answer(payload))
    with pytest.raises(EndpointBadResponse) as info:
        run(rec)
    err = info.value
    assert err.code == "ENDPOINT_BAD_RESPONSE"
    assert fragment in err.message
    assert err.message.startswith("Model 'byom2': ") and URL in err.message
    assert err.details["model"] == "byom2" and err.details["url"] == URL


def test_mlflow_schema_error_is_http_error_with_its_message() -> None:
    body = {"error_code": "BAD_REQUEST", "message": "Failed to enforce schema: missing column 'x'"}
    rec = Recorder(httpx.Response(400, json=body), answer({"predictions": [1, 2, 3]}))
    with pytest.raises(EndpointHTTPError) as info:
        run(rec)
    err = info.value
    assert err.code == "ENDPOINT_HTTP_ERROR"
    assert "HTTP 400" in err.message and "missing column 'x'" in err.message
    assert len(rec.requests) == 1


def test_predict_retried_on_503() -> None:
    rec = Recorder(httpx.Response(503), answer({"predictions": [1, 2, 3]}))
    assert run(rec).values == [1, 2, 3]
    assert len(rec.requests) == 2


def test_timeout() -> None:
    rec = Recorder(httpx.ReadTimeout("slow"))
    with pytest.raises(EndpointTimeout) as info:
        run(rec)
    assert "byom2" in info.value.message and URL in info.value.message


def test_row_width_mismatch_is_invalid_input() -> None:
    rec = Recorder(answer({"predictions": [1]}))
    with pytest.raises(InvalidInput, match="row 0 has 3 values for 2 columns"):
        run(rec, rows=[(1, 2, 3)])
    assert rec.requests == []


def test_train_is_predict_only_error() -> None:
    rec = Recorder(answer({}))
    with pytest.raises(InvalidOption) as info:
        run(rec, method="train")
    assert info.value.code == "INVALID_OPTION"
    assert "format 'mlflow' is predict-only" in info.value.message
    assert "without url.train" in info.value.message
    assert rec.requests == []


@pytest.mark.parametrize("payload", ["parquet", "arrow", "csv"])
def test_mlflow_payload_must_be_json(payload: str) -> None:
    rec = Recorder(answer({"predictions": [1, 2, 3]}))
    ep = Endpoint(model="byom2", url_predict=URL, options={"payload": payload})
    with pytest.raises(InvalidOption) as info:
        run(rec, endpoint=ep)
    assert "byom2" in info.value.message and "json" in info.value.message
    assert rec.requests == []
    ok = Endpoint(model="byom2", url_predict=URL, options={"payload": "JSON"})
    assert run(rec, endpoint=ok).values == [1, 2, 3]


def test_rows_of_any_sequence_type_are_sent_as_arrays() -> None:
    Row = collections.namedtuple("Row", ["a", "b"])
    rec = Recorder(answer({"predictions": [1, 2, 3]}))
    run(rec, rows=[Row(2, 10), [3, 20], (4, 30)])
    assert rec.body()["dataframe_split"]["data"] == [[2, 10], [3, 20], [4, 30]]


def test_duplicate_columns_are_invalid_input() -> None:
    rec = Recorder(answer({"predictions": [1]}))
    with pytest.raises(InvalidInput, match="duplicate input column"):
        run(rec, columns=["x", "x"], rows=[(1, 2)])
    assert rec.requests == []
