"""Unit tests for the ray_serve adapter against httpx.MockTransport."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from adapters.base import Endpoint, Predictions
from adapters.http import HttpSettings
from adapters.ray_serve import RayServeAdapter
from byom.errors import (
    EndpointBadResponse,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
    InvalidInput,
    InvalidOption,
)
from tests.mock_http import Handler, Recorder, free_port, with_client

PREDICT = "http://127.0.0.1:8000/my_model/predict"
TRAIN = "http://127.0.0.1:8000/my_model/train"
SETTINGS = HttpSettings(backoff=0.0, retries=2, train_timeout=1234.0)
COLUMNS = ["number_of_rooms", "initial_price", "rental_price"]
ROWS = [(1, 3000, 3100), (2, 4000, 4200), (3, 5000, 5300)]
BYOM = Endpoint(
    model="byom",
    url_predict=PREDICT,
    url_train=TRAIN,
    target="number_of_rooms",
    dtype_dict={
        "number_of_rooms": "categorical",
        "initial_price": "integer",
        "rental_price": "integer",
    },
)


def run(
    handler: Handler | None,
    method: str,
    endpoint: Endpoint = BYOM,
    columns: Sequence[str] = COLUMNS,
    rows: Sequence[Sequence[Any]] = ROWS,
) -> Any:
    """``RayServeAdapter.<method>(endpoint, columns, rows)`` answered by ``handler``."""
    return with_client(
        SETTINGS,
        handler,
        lambda client: getattr(RayServeAdapter(client, SETTINGS), method)(endpoint, columns, rows),
    )


def ok(**answer: Any) -> httpx.Response:
    return httpx.Response(200, json=answer)


# ---- predict ----------------------------------------------------------------------------------


def test_predict_request_shape_is_readable_by_pandas() -> None:
    rec = Recorder(ok(prediction=["1", "2", "3"]))
    result = run(rec, "predict")
    assert isinstance(result, Predictions)
    assert result.values == ["1", "2", "3"] and result.extra == {}
    (req,) = rec.requests
    assert str(req.url) == PREDICT and req.method == "POST"
    assert req.headers["content-type"] == "application/json"
    body = rec.body()
    assert set(body) == {"df"}
    assert isinstance(body["df"], str)  # a JSON string inside JSON, as MindsDB sends it
    got = pd.DataFrame(json.loads(body["df"]))
    expected = pd.DataFrame(ROWS, columns=COLUMNS)
    pd.testing.assert_frame_equal(got, expected)
    assert json.loads(body["df"])[0] == dict(zip(COLUMNS, ROWS[0], strict=True))


def test_predict_serialises_database_and_numpy_scalars() -> None:
    columns = ["d", "ts", "price", "n", "x", "missing"]
    rows = [
        (
            dt.date(2024, 1, 2),
            dt.datetime(2024, 1, 2, 3, 4),
            decimal.Decimal("9.5"),
            np.int64(7),
            float("nan"),
            None,
        ),
    ]
    rec = Recorder(ok(prediction=[1]))
    run(rec, "predict", columns=columns, rows=rows)
    assert json.loads(rec.body()["df"]) == [
        {
            "d": "2024-01-02",
            "ts": "2024-01-02T03:04:00",
            "price": 9.5,
            "n": 7,
            "x": None,
            "missing": None,
        }
    ]


def test_extra_per_row_lists_become_extra_and_scalars_are_ignored() -> None:
    rec = Recorder(
        ok(
            prediction=[1, 2, 3],
            confidence=[0.9, 0.8, 0.7],
            interval=[[0, 2], [1, 3], [2, 4]],
            model_version="v3",
            classes=["a", "b"],
        )
    )
    result = run(rec, "predict")
    assert result.values == [1, 2, 3]
    assert result.extra == {"confidence": [0.9, 0.8, 0.7], "interval": [[0, 2], [1, 3], [2, 4]]}
    assert len(result) == 3


def test_empty_batch_sends_nothing() -> None:
    rec = Recorder(ok(prediction=[]))
    assert run(rec, "predict", rows=[]).values == []
    assert rec.requests == []


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ({"predictions": [1, 2, 3]}, "missing key 'prediction' (keys: predictions)"),
        ({"prediction": [1, 2]}, "returned 2 predictions for 3 rows"),
        ({"prediction": [1, 2, 3, 4]}, "returned 4 predictions for 3 rows"),
        ({"prediction": 5}, "'prediction' as a JSON number"),
        ([1, 2, 3], "returned a JSON array, expected an object"),
        ({"prediction": [1, [2], 3]}, "returned [2] for row 1"),  # categorical needs a scalar
    ],
)
def test_bad_predict_answers(answer: Any, fragment: str) -> None:
    rec = Recorder(httpx.Response(200, json=answer))
    with pytest.raises(EndpointBadResponse) as info:
        run(rec, "predict")
    err = info.value
    assert err.code == "ENDPOINT_BAD_RESPONSE" and err.status == 502
    assert fragment in err.message
    assert err.message.startswith("Model 'byom': ") and PREDICT in err.message
    assert err.details["model"] == "byom" and err.details["url"] == PREDICT


def test_dtype_mismatch_names_row_value_and_dtype() -> None:
    ep = Endpoint(
        model="byom", url_predict=PREDICT, target="rooms", dtype_dict={"rooms": "integer"}
    )
    rec = Recorder(ok(prediction=[1, 2.0, "three"]))
    with pytest.raises(EndpointBadResponse) as info:
        run(rec, "predict", endpoint=ep)
    msg = info.value.message
    assert "'three'" in msg and "row 2" in msg and "'integer'" in msg and PREDICT in msg
    assert info.value.details["row"] == 2


def test_predict_retried_on_503_then_succeeds() -> None:
    rec = Recorder(httpx.Response(503, text="no replicas"), ok(prediction=[1, 2, 3]))
    assert run(rec, "predict").values == [1, 2, 3]
    assert len(rec.requests) == 2
    assert rec.requests[0].content == rec.requests[1].content


def test_predict_404_is_not_retried() -> None:
    rec = Recorder(httpx.Response(404, text='{"detail":"Not Found"}'), ok(prediction=[1, 2, 3]))
    with pytest.raises(EndpointHTTPError) as info:
        run(rec, "predict")
    assert len(rec.requests) == 1
    assert "HTTP 404" in info.value.message and "Not Found" in info.value.message


def test_predict_timeout() -> None:
    rec = Recorder(httpx.ReadTimeout("timed out"))
    with pytest.raises(EndpointTimeout) as info:
        run(rec, "predict")
    assert info.value.code == "ENDPOINT_TIMEOUT"
    assert len(rec.requests) == 1 + SETTINGS.retries
    assert "byom" in info.value.message and PREDICT in info.value.message


def test_predict_refused_on_a_real_closed_port() -> None:
    url = f"http://127.0.0.1:{free_port()}/my_model/predict"
    ep = Endpoint(model="byom", url_predict=url)
    with pytest.raises(EndpointUnreachable) as info:
        run(None, "predict", endpoint=ep)
    assert info.value.message == (
        f"Model 'byom': cannot connect to {url}: connection refused (after 3 attempts). "
        "Is the endpoint running? Check url.predict with DESCRIBE byom."
    )


def test_bad_rows_are_invalid_input_and_send_nothing() -> None:
    rec = Recorder(ok(prediction=[1]))
    with pytest.raises(InvalidInput, match="row 0 has 2 values for 3 columns"):
        run(rec, "predict", rows=[(1, 2)])
    with pytest.raises(InvalidInput, match="duplicate input column"):
        run(rec, "predict", columns=["a", "a"], rows=[(1, 2)])
    assert rec.requests == []


# ---- train ------------------------------------------------------------------------------------


def test_train_request_shape_and_answer() -> None:
    rec = Recorder(ok(status="ok", accuracy=0.93))
    assert run(rec, "train") == {"status": "ok", "accuracy": 0.93}
    (req,) = rec.requests
    assert str(req.url) == TRAIN
    assert req.headers["content-type"] == "application/json"
    assert req.extensions["timeout"]["read"] == SETTINGS.train_timeout
    body = rec.body()
    assert set(body) == {"df", "target"}
    assert body["target"] == "number_of_rooms"
    pd.testing.assert_frame_equal(
        pd.DataFrame(json.loads(body["df"])), pd.DataFrame(ROWS, columns=COLUMNS)
    )


@pytest.mark.parametrize(
    "answer",
    [{"status": "error", "detail": "bad data"}, {"result": "done"}, ["ok"], "ok", None],
)
def test_train_answer_without_status_ok_is_bad_response(answer: Any) -> None:
    # content=, not json=: httpx sends an empty body for json=None
    rec = Recorder(httpx.Response(200, content=json.dumps(answer).encode()))
    with pytest.raises(EndpointBadResponse) as info:
        run(rec, "train")
    err = info.value
    assert '"status": "ok"' in err.message and TRAIN in err.message and "byom" in err.message
    assert json.dumps(answer, separators=(",", ":")) in err.message  # quotes what it got
    assert err.details["url"] == TRAIN


def test_train_is_never_retried() -> None:
    rec = Recorder(httpx.Response(503, text="busy"), ok(status="ok"))
    with pytest.raises(EndpointHTTPError) as info:
        run(rec, "train")
    assert len(rec.requests) == 1
    assert info.value.details["url"] == TRAIN

    rec = Recorder(httpx.ReadTimeout("slow"), ok(status="ok"))
    with pytest.raises(EndpointTimeout):
        run(rec, "train")
    assert len(rec.requests) == 1


def test_train_connect_error_points_at_url_train() -> None:
    rec = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(EndpointUnreachable) as info:
        run(rec, "train")
    assert "Check url.train with DESCRIBE byom." in info.value.message
    assert len(rec.requests) == 1


def test_train_without_url_train_is_invalid_option() -> None:
    ep = Endpoint(model="byom", url_predict=PREDICT, target="number_of_rooms")
    rec = Recorder(ok(status="ok"))
    with pytest.raises(InvalidOption) as info:
        run(rec, "train", endpoint=ep)
    assert info.value.code == "INVALID_OPTION" and "url.train" in info.value.message
    assert rec.requests == []


@pytest.mark.parametrize(
    ("endpoint", "rows", "error", "fragment"),
    [
        (
            Endpoint(model="byom", url_predict=PREDICT, url_train=TRAIN),
            ROWS,
            InvalidOption,
            "needs a target column",
        ),
        (
            Endpoint(model="byom", url_predict=PREDICT, url_train=TRAIN, target="price"),
            ROWS,
            InvalidInput,
            "target column 'price' is not among",
        ),
        (BYOM, [], InvalidInput, "returned no rows"),
    ],
)
def test_train_input_errors(
    endpoint: Endpoint, rows: list[Any], error: type[Exception], fragment: str
) -> None:
    rec = Recorder(ok(status="ok"))
    with pytest.raises(error, match=fragment):
        run(rec, "train", endpoint=endpoint, rows=rows)
    assert rec.requests == []


# ---- payload option ---------------------------------------------------------------------------


def with_payload(payload: str, endpoint: Endpoint = BYOM, **changes: Any) -> Endpoint:
    return replace(endpoint, options={**endpoint.options, "payload": payload}, **changes)


def read_body(request: httpx.Request) -> pd.DataFrame:
    ctype = request.headers["content-type"]
    if ctype == "application/vnd.apache.parquet":
        return pd.read_parquet(io.BytesIO(request.content))
    assert ctype == "application/vnd.apache.arrow.stream"
    with pa.ipc.open_stream(request.content) as reader:
        return reader.read_pandas()


@pytest.mark.parametrize(
    ("payload", "ctype"),
    [
        ("parquet", "application/vnd.apache.parquet"),
        ("ARROW", "application/vnd.apache.arrow.stream"),
    ],
)
def test_predict_with_a_binary_payload(payload: str, ctype: str) -> None:
    rec = Recorder(ok(prediction=[1, 2, 3], confidence=[0.5, 0.6, 0.7]))
    result = run(rec, "predict", endpoint=with_payload(payload))
    assert result.values == [1, 2, 3] and result.extra == {"confidence": [0.5, 0.6, 0.7]}
    (req,) = rec.requests
    assert str(req.url) == PREDICT
    assert req.headers["content-type"] == ctype
    assert req.headers["accept"] == "application/json"
    pd.testing.assert_frame_equal(read_body(req), pd.DataFrame(ROWS, columns=COLUMNS))


def test_predict_with_columnar_json() -> None:
    rec = Recorder(ok(prediction=[1, 2, 3]))
    run(rec, "predict", endpoint=with_payload("json_columns"))
    body = rec.body()
    assert set(body) == {"df"} and rec.requests[0].headers["content-type"] == "application/json"
    assert json.loads(body["df"]) == {
        "number_of_rooms": [1, 2, 3],
        "initial_price": [3000, 4000, 5000],
        "rental_price": [3100, 4200, 5300],
    }
    pd.testing.assert_frame_equal(
        pd.DataFrame(json.loads(body["df"])), pd.DataFrame(ROWS, columns=COLUMNS)
    )


def test_explicit_json_payload_is_the_default_body() -> None:
    plain, explicit = Recorder(ok(prediction=[1, 2, 3])), Recorder(ok(prediction=[1, 2, 3]))
    run(plain, "predict")
    run(explicit, "predict", endpoint=with_payload("Json"))
    assert plain.requests[0].content == explicit.requests[0].content


@pytest.mark.parametrize("payload", ["parquet", "arrow"])
def test_train_with_a_binary_payload_sends_the_target_in_the_query(payload: str) -> None:
    rec = Recorder(ok(status="ok"))
    train_url = TRAIN + "?token=abc"  # the endpoint's own query survives
    assert run(rec, "train", endpoint=with_payload(payload, url_train=train_url)) == {
        "status": "ok"
    }
    (req,) = rec.requests
    assert req.url.path == "/my_model/train"
    assert dict(req.url.params) == {"token": "abc", "target": "number_of_rooms"}
    assert req.extensions["timeout"]["read"] == SETTINGS.train_timeout
    pd.testing.assert_frame_equal(read_body(req), pd.DataFrame(ROWS, columns=COLUMNS))


def test_train_with_columnar_json_keeps_target_in_the_body() -> None:
    rec = Recorder(ok(status="ok"))
    run(rec, "train", endpoint=with_payload("json_columns"))
    body = rec.body()
    assert body["target"] == "number_of_rooms" and str(rec.requests[0].url) == TRAIN
    pd.testing.assert_frame_equal(
        pd.DataFrame(json.loads(body["df"])), pd.DataFrame(ROWS, columns=COLUMNS)
    )


def test_endpoint_refusing_a_binary_payload_gets_a_hint() -> None:
    rec = Recorder(httpx.Response(415, text="Unsupported Media Type"))
    with pytest.raises(EndpointHTTPError) as info:
        run(rec, "predict", endpoint=with_payload("parquet"))
    msg = info.value.message
    assert "HTTP 415" in msg and PREDICT in msg
    assert "may not accept payload='parquet'" in msg and "payload='json'" in msg
    assert len(rec.requests) == 1


def test_unknown_payload_is_invalid_option_and_sends_nothing() -> None:
    rec = Recorder(ok(prediction=[1, 2, 3], status="ok"))
    for method in ("predict", "train"):
        with pytest.raises(InvalidOption) as info:
            run(rec, method, endpoint=with_payload("parqet"))
        assert "Did you mean parquet?" in info.value.message
        assert info.value.message.startswith("Model 'byom': unknown payload 'parqet'")
    assert rec.requests == []


def test_mixed_type_column_with_parquet_is_invalid_input_and_sends_nothing() -> None:
    rec = Recorder(ok(prediction=[1, 2]))
    with pytest.raises(InvalidInput, match="column 'b'"):
        run(rec, "predict", endpoint=with_payload("parquet"), columns=["a", "b"],
            rows=[(1, 2), (3, "x")])  # fmt: skip
    assert rec.requests == []
