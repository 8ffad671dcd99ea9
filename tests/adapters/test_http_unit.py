"""Unit tests for adapters.http: the pooled client, error mapping and retries."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

import adapters.http as http_mod
from adapters.http import HttpSettings, post_json
from byom.errors import (
    EndpointBadResponse,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
)
from tests.mock_http import Handler, Recorder, free_port, with_client

URL = "http://models.test:8000/my_model/predict"
FAST = HttpSettings(backoff=0.0, retries=2)


def call(
    handler: Handler | None,
    *,
    retry: bool = True,
    settings: HttpSettings = FAST,
    url: str = URL,
    timeout: float | None = None,
    body: bytes = b'{"df": "[]"}',
    **options: Any,
) -> Any:
    """``post_json`` of ``body`` to ``url`` for model 'byom', answered by ``handler``
    (the real network when None); ``options`` are post_json's other keywords."""
    return with_client(
        settings,
        handler,
        lambda client: post_json(
            client,
            url,
            body,
            model="byom",
            settings=settings,
            retry=retry,
            timeout=timeout,
            **options,
        ),
    )


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
    with pytest.raises(EndpointUnreachable) as info:
        call(None, url=url, body=b"{}", retry=False)
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
    assert "E" * 100 in msg and "E" * 101 not in msg  # a short excerpt, not a page
    assert msg.endswith("...")
    assert "HTTP 422" in msg and "text/plain" in msg  # status and content type always
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


def test_redirect_is_refused_naming_status_and_location() -> None:
    # A FastAPI endpoint registered as ".../predict/" answers 307 to ".../predict": the
    # gateway no longer follows it (the target was never checked by the egress rules).
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/"):
            return httpx.Response(307, headers={"location": "http://10.9.9.9/p?token=s3"})
        return httpx.Response(200, json={"echo": json.loads(request.content)})

    calls: list[httpx.Request] = []

    def counting(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return handler(request)

    with pytest.raises(EndpointHTTPError) as info:
        call(counting, url=URL + "/", body=b'{"x": 1}')
    err = info.value
    assert len(calls) == 1  # the Location was never fetched
    assert "HTTP 307" in err.message and "redirects are not followed" in err.message
    assert "register the final URL as url.predict" in err.message
    assert "http://10.9.9.9/p?token=***" in err.message and "s3" not in err.message
    assert err.details["endpoint_status"] == 307


def test_url_without_scheme_is_unreachable_with_a_hint() -> None:
    # The real transport: it is what refuses a URL without a scheme (MockTransport would
    # answer any URL), before any connection is tried.
    with pytest.raises(EndpointUnreachable) as info:
        call(None, url="localhost:8000/predict", body=b"{}", url_option="url.train")
    assert "Check url.train with DESCRIBE byom." in info.value.message


def test_binary_body_keeps_its_content_type_and_answer_is_json() -> None:
    rec = Recorder(httpx.Response(200, json={"prediction": [1]}))
    answer = call(rec, body=b"PAR1\x00\x01", content_type="application/vnd.apache.parquet")
    assert answer == {"prediction": [1]}
    (req,) = rec.requests
    assert req.headers["content-type"] == "application/vnd.apache.parquet"
    assert req.headers["accept"] == "application/json"
    assert req.content == b"PAR1\x00\x01"


@pytest.mark.parametrize(("status", "hinted"), [(400, True), (415, True), (500, False)])
def test_client_error_hint_is_added_to_4xx_only(status: int, hinted: bool) -> None:
    rec = Recorder(httpx.Response(status, text="cannot read body"))
    with pytest.raises(EndpointHTTPError) as info:
        call(rec, body=b"x", retry=False, client_error_hint="Try payload='json'.")
    assert info.value.message.endswith("Try payload='json'.") is hinted
    assert "cannot read body" in info.value.message
