"""Unit tests for adapters.http: error mapping, retries, serialisation, dtype checks."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

import adapters.http as http_mod
from adapters.base import Endpoint
from adapters.http import HttpSettings, check_dtype, dumps, make_client, post_json, records
from gateway.errors import (
    EndpointBadResponse,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
    InvalidInput,
)

URL = "http://models.test:8000/my_model/predict"
FAST = HttpSettings(backoff=0.0, retries=2)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    retry: bool = True,
    settings: HttpSettings = FAST,
    url: str = URL,
    timeout: float | None = None,
    body: bytes = b'{"df": "[]"}',
) -> Any:
    async def go() -> Any:
        async with make_client(settings, transport=httpx.MockTransport(handler)) as client:
            return await post_json(
                client, url, body, model="byom", settings=settings, retry=retry, timeout=timeout
            )

    return asyncio.run(go())


class Recorder:
    """A MockTransport handler that answers from a script and keeps the requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_posts_json_and_returns_parsed_answer() -> None:
    rec = Recorder(httpx.Response(200, json={"prediction": [1, 2]}))
    assert call(rec, body=b'{"a": 1}') == {"prediction": [1, 2]}
    (req,) = rec.requests
    assert req.method == "POST"
    assert str(req.url) == URL
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "application/json"
    assert req.headers["user-agent"].startswith("byom-gateway/")
    assert req.content == b'{"a": 1}'


def test_timeout_override_reaches_the_request() -> None:
    rec = Recorder(httpx.Response(200, json={}))
    call(rec, timeout=123.0)
    timeouts = rec.requests[0].extensions["timeout"]
    assert timeouts["read"] == 123.0
    assert timeouts["connect"] == FAST.connect_timeout
    rec = Recorder(httpx.Response(200, json={}))
    call(rec)
    assert rec.requests[0].extensions["timeout"]["read"] == FAST.read_timeout


def test_refused_connection_on_a_real_closed_port() -> None:
    url = f"http://127.0.0.1:{free_port()}/my_model/predict"

    async def go() -> None:
        async with make_client(FAST) as client:
            await post_json(client, url, b"{}", model="byom", settings=FAST, retry=False)

    with pytest.raises(EndpointUnreachable) as info:
        asyncio.run(go())
    err = info.value
    assert err.code == "ENDPOINT_UNREACHABLE"
    assert err.status == 502
    assert f"cannot connect to {url}: connection refused" in err.message
    assert "Model 'byom'" in err.message
    assert "Check url.predict with DESCRIBE byom." in err.message
    assert isinstance(err.__cause__, httpx.ConnectError)
    body = err.to_dict()["error"]
    assert body["model"] == "byom" and body["url"] == url


def test_connect_error_is_retried_for_predict_only() -> None:
    rec = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(EndpointUnreachable) as info:
        call(rec, retry=True)
    assert len(rec.requests) == 3
    assert "after 3 attempts" in info.value.message

    rec = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(EndpointUnreachable):
        call(rec, retry=False)
    assert len(rec.requests) == 1


def test_read_timeout_maps_to_endpoint_timeout() -> None:
    rec = Recorder(httpx.ReadTimeout("slow"))
    with pytest.raises(EndpointTimeout) as info:
        call(rec, retry=False, timeout=7.5)
    err = info.value
    assert err.code == "ENDPOINT_TIMEOUT"
    assert err.status == 504
    assert URL in err.message and "byom" in err.message and "7.5s" in err.message
    assert isinstance(err.__cause__, httpx.ReadTimeout)
    assert err.details["url"] == URL
    assert len(rec.requests) == 1


def test_timeout_then_success_is_retried() -> None:
    rec = Recorder(httpx.ReadTimeout("slow"), httpx.Response(200, json={"ok": True}))
    assert call(rec) == {"ok": True}
    assert len(rec.requests) == 2


def test_http_500_keeps_status_and_a_snippet_of_the_body() -> None:
    rec = Recorder(httpx.Response(500, text="Traceback: KeyError 'rental_price'"))
    with pytest.raises(EndpointHTTPError) as info:
        call(rec)
    err = info.value
    assert err.code == "ENDPOINT_HTTP_ERROR"
    assert err.status == 502
    assert "HTTP 500" in err.message
    assert "KeyError 'rental_price'" in err.message
    assert URL in err.message and "Model 'byom'" in err.message
    assert err.details["endpoint_status"] == 500
    assert len(rec.requests) == 1  # 500 is not a retry status


def test_long_error_body_is_truncated_and_payload_never_echoed() -> None:
    payload = b'{"df": "' + b"S" * 5000 + b'"}'
    rec = Recorder(httpx.Response(422, text="E" * 5000))
    with pytest.raises(EndpointHTTPError) as info:
        call(rec, body=payload)
    msg = info.value.message
    assert "E" * 300 in msg and "E" * 301 not in msg
    assert msg.endswith("...")
    assert "SSSS" not in msg
    assert len(rec.requests) == 1  # 4xx never retried


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_statuses_are_retried_then_succeed(status: int) -> None:
    rec = Recorder(httpx.Response(status, text="busy"), httpx.Response(200, json=[1]))
    assert call(rec) == [1]
    assert len(rec.requests) == 2


def test_retries_give_up_after_the_configured_count(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(http_mod, "_sleep", fake_sleep)
    rec = Recorder(httpx.Response(503, text="overloaded"))
    settings = HttpSettings(retries=2, backoff=0.2)
    with pytest.raises(EndpointHTTPError) as info:
        call(rec, settings=settings)
    assert len(rec.requests) == 3
    assert delays == pytest.approx([0.2, 0.4])  # exponential backoff
    assert "HTTP 503" in info.value.message and "after 3 attempts" in info.value.message


def test_no_retry_when_not_idempotent() -> None:
    rec = Recorder(httpx.Response(503, text="busy"), httpx.Response(200, json={}))
    with pytest.raises(EndpointHTTPError):
        call(rec, retry=False)
    assert len(rec.requests) == 1


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    rec = Recorder(httpx.Response(status, text="nope"), httpx.Response(200, json={}))
    with pytest.raises(EndpointHTTPError) as info:
        call(rec)
    assert len(rec.requests) == 1
    assert f"HTTP {status}" in info.value.message


def test_dropped_connection_is_bad_response_and_retried() -> None:
    rec = Recorder(httpx.RemoteProtocolError("Server disconnected"))
    with pytest.raises(EndpointBadResponse) as info:
        call(rec)
    assert len(rec.requests) == 3
    assert "Server disconnected" in info.value.message
    assert info.value.code == "ENDPOINT_BAD_RESPONSE"


def test_non_json_answer_is_bad_response() -> None:
    rec = Recorder(httpx.Response(200, text="<html>It works!</html>"))
    with pytest.raises(EndpointBadResponse) as info:
        call(rec)
    err = info.value
    assert err.code == "ENDPOINT_BAD_RESPONSE"
    assert "not JSON" in err.message and "<html>It works!</html>" in err.message
    assert err.details == {"model": "byom", "url": URL, "body": "<html>It works!</html>"}


def test_nan_in_answer_is_accepted() -> None:
    # Python's json.dumps writes NaN; orjson alone would refuse it.
    rec = Recorder(httpx.Response(200, content=b'{"prediction": [NaN, 1.0]}'))
    answer = call(rec)
    assert np.isnan(answer["prediction"][0]) and answer["prediction"][1] == 1.0


def test_redirect_is_followed_with_the_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/"):
            return httpx.Response(307, headers={"location": URL})
        return httpx.Response(200, json={"echo": json.loads(request.content)})

    assert call(handler, url=URL + "/", body=b'{"x": 1}') == {"echo": {"x": 1}}


def test_url_without_scheme_is_unreachable_with_a_hint() -> None:
    rec = Recorder(httpx.Response(200, json={}))

    async def go() -> None:
        async with make_client(FAST) as client:
            await post_json(
                client,
                "localhost:8000/predict",
                b"{}",
                model="byom",
                settings=FAST,
                retry=True,
                url_option="url.train",
            )

    with pytest.raises(EndpointUnreachable) as info:
        asyncio.run(go())
    assert "Check url.train with DESCRIBE byom." in info.value.message
    assert rec.requests == []


# ---- serialisation ----------------------------------------------------------------------------


def test_dumps_handles_database_and_pandas_scalars() -> None:
    row = {
        "i": np.int64(3),
        "f": np.float32(1.5),
        "nan": float("nan"),
        "npnan": np.float64("nan"),
        "b": np.bool_(True),
        "dec": decimal.Decimal("2.50"),
        "d": dt.date(2024, 1, 2),
        "ts": dt.datetime(2024, 1, 2, 3, 4, 5),
        "pts": pd.Timestamp("2024-01-02 03:04:05"),
        "nat": pd.NaT,
        "na": pd.NA,
        "none": None,
        "s": "héllo",
        "bytes": b"raw",
    }
    assert orjson.loads(dumps(row, model="m")) == {
        "i": 3,
        "f": 1.5,
        "nan": None,
        "npnan": None,
        "b": True,
        "dec": 2.5,
        "d": "2024-01-02",
        "ts": "2024-01-02T03:04:05",
        "pts": "2024-01-02T03:04:05",
        "nat": None,
        "na": None,
        "none": None,
        "s": "héllo",
        "bytes": "raw",
    }


def test_dumps_rejects_unserialisable_values_as_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        dumps([{"x": object()}], model="byom")
    assert info.value.code == "INVALID_INPUT"
    assert "byom" in info.value.message and "object" in info.value.message


def test_records_checks_row_width_and_duplicate_columns() -> None:
    assert records(["a", "b"], [(1, 2)], model="m") == [{"a": 1, "b": 2}]
    with pytest.raises(InvalidInput, match="row 1 has 1 values for 2 columns"):
        records(["a", "b"], [(1, 2), (3,)], model="m")
    with pytest.raises(InvalidInput, match="duplicate input column"):
        records(["a", "a"], [(1, 2)], model="m")


# ---- dtype checks -------------------------------------------------------------------------------


def endpoint(dtype: str | None) -> Endpoint:
    dtypes = {"y": dtype} if dtype is not None else {}
    return Endpoint(model="byom", url_predict=URL, target="y", dtype_dict=dtypes)


@pytest.mark.parametrize(
    ("dtype", "good", "bad"),
    [
        ("integer", [1, 2.0, -3, None, float("nan")], ["3", 2.5, True, [1]]),
        ("float", [1, 2.5, None], ["2.5", False, {"a": 1}]),
        ("binary", [True, False, 0, 1, 1.0, "true", "False", "0", "1", None], [2, "yes", 0.5]),
        ("categorical", ["a", 1, 2.5, True, None], [[1], {"a": 1}]),
        ("text", ["some words", 3], [["a"]]),
        ("date", ["2024-01-02", None], [20240102]),
        ("datetime", ["2024-01-02T03:04:05"], [1.5]),
        ("INTEGER", [1], ["x"]),  # dtype names are case-insensitive
    ],
)
def test_check_dtype(dtype: str, good: list[Any], bad: list[Any]) -> None:
    check_dtype(good, endpoint(dtype))
    for value in bad:
        with pytest.raises(EndpointBadResponse) as info:
            check_dtype([*good, value], endpoint(dtype))
        err = info.value
        assert err.details["row"] == len(good)
        assert err.details["dtype"] == dtype
        assert f"row {len(good)}" in err.message
        assert repr(value)[:20] in err.message
        assert URL in err.message and "byom" in err.message


@pytest.mark.parametrize("dtype", [None, "vector", "json"])
def test_unknown_or_missing_dtype_is_not_checked(dtype: str | None) -> None:
    check_dtype([[1, 2], {"a": 1}, "x"], endpoint(dtype))


def test_check_dtype_without_target_is_a_no_op() -> None:
    ep = Endpoint(model="m", url_predict=URL, dtype_dict={"y": "integer"})
    check_dtype(["not an int"], ep)
