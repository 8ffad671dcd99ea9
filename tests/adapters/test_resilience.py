"""Outbound HTTP safety and resilience (issue 12): redirects refused, secrets redacted, answer
size capped, one deadline for all attempts, cancellation, Retry-After, circuit breakers and
the connection-time address check (DNS rebinding).

Mostly ``httpx.MockTransport`` on a fake clock (``adapters.http._clock``/``_sleep``); the
redirect, oversized-answer and ``localhost`` cases also run against a real local server.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import adapters.http as http_mod
from adapters.breaker import Breakers
from adapters.guard import GuardedTransport
from adapters.http import HttpSettings, make_client, post_json
from adapters.http_errors import excerpt, retry_after_seconds
from adapters.urls import endpoint_key, redact_url
from byom.errors import (
    EndpointBadResponse,
    EndpointError,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
)
from gateway.core import Gateway
from gateway.settings import Settings
from tests.mock_http import Recorder
from tests.threaded_server import serving

URL = "http://models.test:8000/m/predict"
FAST = HttpSettings(backoff=0.0, retries=2)


class FakeTime:
    """``adapters.http``'s clock and sleep: sleeping moves the clock, instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(http_mod, "_clock", fake.clock)
    monkeypatch.setattr(http_mod, "_sleep", fake.sleep)
    return fake


def run(
    transport: httpx.AsyncBaseTransport | None,
    *,
    settings: HttpSettings = FAST,
    url: str = URL,
    **options: Any,
) -> Any:
    """``post_json`` of a small body for model 'byom' over ``make_client(transport)``."""

    async def go() -> Any:
        async with make_client(settings, transport=transport) as client:
            return await post_json(
                client, url, b'{"df": "[]"}', model="byom", settings=settings, **options
            )

    options.setdefault("retry", True)
    return asyncio.run(go())


def mock(handler: Callable[[httpx.Request], Any]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


# ---- redirects ---------------------------------------------------------------------------


def _redirecting_app(hits: list[str]) -> Callable[..., Awaitable[None]]:
    """A raw ASGI app: POST /m/predict/ answers 307 to /m/predict; every path is recorded."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        hits.append(scope["path"])
        if scope["path"].endswith("/"):
            headers = [(b"location", b"/m/predict?token=hunter2"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 307, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await _json_answer(send, b'{"prediction": [1]}')

    return app


async def _json_answer(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def test_a_real_redirect_is_refused_and_not_followed() -> None:
    hits: list[str] = []
    with serving(_redirecting_app(hits)) as base:
        with pytest.raises(EndpointHTTPError) as info:
            run(None, url=f"{base}/m/predict/")
        assert run(None, url=f"{base}/m/predict") == {"prediction": [1]}  # the server works
    err = info.value
    assert hits == ["/m/predict/", "/m/predict"]  # the Location was never fetched
    assert err.details["endpoint_status"] == 307
    assert "HTTP 307" in err.message and "redirects are not followed" in err.message
    assert "/m/predict?token=***" in err.message and "hunter2" not in err.message


# ---- answer size ---------------------------------------------------------------------------


def _big_app(size: int) -> Callable[..., Awaitable[None]]:
    """``/length``: ``size`` bytes with Content-Length; ``/chunked``: the same, streamed in
    64 KiB chunks without it."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunk = b" " * 65536
        if scope["path"] == "/length":
            headers = [(b"content-length", str(size).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b" " * size})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(size // len(chunk)):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"[]"})

    return app


@pytest.mark.parametrize("path", ["/length", "/chunked"])
def test_a_real_oversized_answer_is_refused(path: str) -> None:
    settings = HttpSettings(backoff=0.0, max_response_bytes=2**20)
    with serving(_big_app(3 * 2**20)) as base:
        with pytest.raises(EndpointBadResponse) as info:
            run(None, settings=settings, url=f"{base}{path}?api_key=k3y")
    err = info.value
    assert err.status == 502 and err.code == "ENDPOINT_BAD_RESPONSE"
    assert "Model 'byom'" in err.message and f"{base}{path}?api_key=***" in err.message
    assert "1.0 MiB limit" in err.message and "BYOM_MAX_RESPONSE_BYTES" in err.message
    assert err.details["limit_bytes"] == 2**20
    assert err.details.get("content_length") == (3 * 2**20 if path == "/length" else None)
    assert "k3y" not in err.message


class _Endless(httpx.AsyncByteStream):
    """An answer that never ends; counts the chunks it handed out."""

    def __init__(self) -> None:
        self.chunks = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.chunks += 1
            yield b"x" * 1000


def test_content_length_over_the_cap_is_refused_before_reading() -> None:
    stream = _Endless()
    rec = Recorder(httpx.Response(200, headers={"content-length": str(10**9)}, stream=stream))
    with pytest.raises(EndpointBadResponse, match="Content-Length"):
        run(mock(rec), settings=HttpSettings(max_response_bytes=5000))
    assert stream.chunks == 0
    assert len(rec.requests) == 1  # not retried: the same answer would come back


def test_an_endless_answer_is_cut_at_the_cap() -> None:
    stream = _Endless()
    with pytest.raises(EndpointBadResponse, match="over the 5000 bytes limit"):
        run(mock(Recorder(httpx.Response(200, stream=stream))), settings=HttpSettings(
            max_response_bytes=5000))  # fmt: skip
    assert stream.chunks == 6  # read until just past 5000 bytes, then stopped


# ---- redaction and excerpts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@h:8000/p", "http://h:8000/p"),
        ("http://user@h/p?x=1", "http://h/p?x=1"),
        ("https://h/p?token=abc&a=1&api_key=z", "https://h/p?token=***&a=1&api_key=***"),
        (
            "http://h/p?key=1&monkey=2&password=&Secret=s",
            "http://h/p?key=***&monkey=2&password=&Secret=***",
        ),  # fmt: skip
        ("http://h/p#access_token=t", "http://h/p#access_token=***"),
        ("http://h/p?a=b%20c", "http://h/p?a=b%20c"),  # others kept byte for byte
        ("http://u:p@[::1/p", "http://[::1/p"),  # does not parse: redacted by pattern
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_endpoint_key_is_scheme_host_port_path() -> None:
    assert (
        endpoint_key("HTTP://Models.Test/m/predict?target=y") == "http://models.test:80/m/predict"
    )
    assert endpoint_key("https://u:p@h/p") == "https://h:443/p"
    assert endpoint_key("http://[::1]:9/p") == "http://[::1]:9/p"


def test_errors_never_show_credentials_of_the_url() -> None:
    url = "http://admin:s3cret@models.test/p?token=t0k&x=1"
    with pytest.raises(EndpointUnreachable) as info:
        run(mock(Recorder(httpx.ConnectError("refused"))), url=url, retry=False)
    shown = f"{info.value.message} {info.value.to_dict()}"
    assert "http://models.test/p?token=***&x=1" in shown
    assert "s3cret" not in shown and "admin" not in shown and "t0k" not in shown


def test_error_excerpt_is_short_escaped_and_keeps_status_and_type() -> None:
    body = "\x1b[31mboom\x1b[0m\nline2\u202e" + "z" * 500
    rec = Recorder(httpx.Response(500, text=body, headers={"content-type": "text/x-trace"}))
    with pytest.raises(EndpointHTTPError) as info:
        run(mock(rec), retry=False)
    msg = info.value.message
    assert "HTTP 500" in msg and "text/x-trace" in msg
    assert "\\x1b[31mboom\\x1b[0m\\x0aline2\\u202e" in msg
    assert "\x1b" not in msg and "\n" not in msg and "\u202e" not in msg
    assert "z" * 50 in msg and "z" * 101 not in msg and msg.endswith("...")  # ~100 chars


def test_a_fastapi_detail_keeps_its_json_form_cut_short() -> None:
    raw = b'{"detail": "cannot predict: ' + b"w" * 300 + b'"}'
    text = excerpt(raw)
    assert text.startswith('{"detail": "cannot predict: www') and text.endswith('..."}')
    assert len(text) < 130


# ---- one deadline for all attempts ---------------------------------------------------------


def test_retries_stay_inside_the_call_deadline(fake_time: FakeTime) -> None:
    rec = Recorder(httpx.Response(503, text="busy"))
    settings = HttpSettings(retries=10, backoff=1.0)
    with pytest.raises(EndpointHTTPError) as info:
        run(mock(rec), settings=settings, timeout=5.0)
    # backoff 1 s, then 2 s: a third wait of 4 s would end past the 5 s deadline.
    assert len(rec.requests) == 3
    assert fake_time.sleeps == [1.0, 2.0] and sum(fake_time.sleeps) <= 5.0
    reads = [r.extensions["timeout"]["read"] for r in rec.requests]
    assert reads == [5.0, 4.0, 2.0]  # each attempt gets what is left of the budget
    assert "after 3 attempts" in info.value.message


def test_a_slow_endpoint_gets_the_budget_once_not_per_attempt() -> None:
    """Real time, short budget: an endpoint that never answers costs the budget once."""
    calls: list[float] = []

    async def never(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        await asyncio.sleep(30)
        return httpx.Response(200, json={})

    settings = HttpSettings(retries=5, backoff=0.0)
    started = time.monotonic()
    with pytest.raises(EndpointTimeout) as info:
        run(mock(never), settings=settings, timeout=0.3)
    assert len(calls) == 1  # no time left for a second attempt
    assert time.monotonic() - started < 10  # not 6 x 30 s
    assert "within 0.3s" in info.value.message and info.value.status == 504


def test_cancellation_stops_the_call_at_once() -> None:
    """A client that disconnects cancels its task: the call must not go on retrying."""
    seen: list[httpx.Request] = []

    async def scenario(during_backoff: bool) -> None:
        started = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            started.set()
            if during_backoff:
                return httpx.Response(503, text="busy")
            await asyncio.sleep(30)
            return httpx.Response(200, json={})

        breakers = Breakers(threshold=1, cooldown=0.0)
        settings = HttpSettings(retries=5, backoff=30.0)
        async with make_client(settings, transport=mock(handler)) as client:
            task = asyncio.create_task(
                post_json(
                    client,
                    URL,
                    b"{}",
                    model="byom",
                    settings=settings,
                    retry=True,
                    breakers=breakers,
                )  # fmt: skip
            )
            await started.wait()
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # No verdict recorded for a cancelled call: the breaker is untouched.
        assert breakers.state(endpoint_key(URL)).failures == 0

    for during_backoff in (False, True):
        seen.clear()
        asyncio.run(asyncio.wait_for(scenario(during_backoff), 10))
        assert len(seen) == 1


# ---- 429 / 503 and Retry-After ---------------------------------------------------------------


def test_429_with_retry_after_seconds_is_honoured(fake_time: FakeTime) -> None:
    rec = Recorder(
        httpx.Response(429, headers={"retry-after": "2"}, text="slow down"),
        httpx.Response(200, json={"prediction": [1]}),
    )
    assert run(mock(rec), settings=HttpSettings(backoff=0.1)) == {"prediction": [1]}
    assert fake_time.sleeps == [2.0]
    assert len(rec.requests) == 2


def test_503_with_retry_after_as_an_http_date(fake_time: FakeTime) -> None:
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    rec = Recorder(
        httpx.Response(503, headers={"retry-after": when}), httpx.Response(200, json=[1])
    )
    assert run(mock(rec), settings=HttpSettings(backoff=0.1)) == [1]
    (waited,) = fake_time.sleeps
    assert 1.0 < waited <= 3.0


def test_retry_after_past_the_deadline_fails_at_once(fake_time: FakeTime) -> None:
    rec = Recorder(httpx.Response(429, headers={"retry-after": "120"}, text="later"))
    with pytest.raises(EndpointHTTPError) as info:
        run(mock(rec), settings=HttpSettings(retries=5), timeout=10.0)
    assert len(rec.requests) == 1 and fake_time.sleeps == []
    msg = info.value.message
    assert "HTTP 429" in msg and "asked to retry after 120s" in msg and "10s timeout" in msg


def test_429_is_not_retried_for_train() -> None:
    rec = Recorder(httpx.Response(429, headers={"retry-after": "0"}), httpx.Response(200, json={}))
    with pytest.raises(EndpointHTTPError, match="HTTP 429"):
        run(mock(rec), retry=False)
    assert len(rec.requests) == 1


@pytest.mark.parametrize(
    ("value", "seconds"), [("7", 7.0), ("0", 0.0), ("-3", 0.0), ("soon", None), (None, None)]
)
def test_retry_after_parsing(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


# ---- circuit breakers through post_json ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_fails_fast_then_probes_and_closes() -> None:
    clock = Clock()
    breakers = Breakers(threshold=2, cooldown=30.0, clock=clock)
    answers: list[httpx.Response | Exception] = [httpx.ConnectError("refused")]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[-1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def call() -> Any:
        return run(mock(handler), retry=False, breakers=breakers)

    for _ in range(2):
        with pytest.raises(EndpointUnreachable):
            call()
    assert len(seen) == 2
    with pytest.raises(EndpointError) as info:
        call()
    err = info.value
    assert len(seen) == 2  # failed fast: no request
    assert err.code == "ENDPOINT_CIRCUIT_OPEN" and err.status == 502
    assert "http://models.test:8000/m/predict" in err.message
    assert "failed 2 times in a row" in err.message and "in 30s" in err.message
    assert err.details["failures"] == 2 and err.details["retry_in_s"] == 30.0

    clock.now += 30  # half-open: one probe goes through; the endpoint is back
    answers.append(httpx.Response(200, json={"prediction": [1]}))
    assert call() == {"prediction": [1]}
    assert len(seen) == 3
    assert breakers.state(endpoint_key(URL)).state == "closed"


def test_user_errors_and_429_do_not_count_for_the_breaker() -> None:
    breakers = Breakers(threshold=1, cooldown=30.0)
    for status in (400, 404, 422, 429):
        with pytest.raises(EndpointHTTPError):
            run(mock(Recorder(httpx.Response(status))), retry=False, breakers=breakers)
    assert breakers.state(endpoint_key(URL)).failures == 0
    with pytest.raises(EndpointHTTPError):
        run(mock(Recorder(httpx.Response(500))), retry=False, breakers=breakers)
    assert breakers.state(endpoint_key(URL)).state == "open"


def test_breaker_state_shows_in_describe_and_health(tmp_path: Path) -> None:
    url = "http://models.test/m/predict?token=s3cr3t"

    async def go() -> tuple[Any, ...]:
        gw = await Gateway.start(
            home=tmp_path,
            catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}",
            settings=Settings(breaker_failures=1, predict_retries=0),
            transport=mock(Recorder(httpx.ConnectError("refused"))),
        )
        try:
            await gw.sql(f"CREATE MODEL m PREDICT y USING url.predict='{url}', format='ray_serve'")
            before = (await gw.sql("DESCRIBE m")).records()[0]
            with pytest.raises(EndpointUnreachable) as first:
                await gw.sql("SELECT * FROM m WHERE a = 1")
            with pytest.raises(EndpointError) as second:
                await gw.sql("SELECT * FROM m WHERE a = 1")
            after = (await gw.sql("DESCRIBE m")).records()[0]
            detail = (await gw.sql("DESCRIBE m.model")).records()[0]
            models = await gw.sql("SELECT * FROM mindsdb.models")
            return before, first.value, second.value, after, detail, models, gw.health()
        finally:
            await gw.close()

    before, first, second, after, detail, models, health = asyncio.run(go())
    assert before["endpoint_state"] == "closed"
    assert second.code == "ENDPOINT_CIRCUIT_OPEN"
    assert after["endpoint_state"].startswith("open (1 failure; next try in")
    assert detail["endpoint_state"] == after["endpoint_state"]
    (key,) = health["endpoints"]
    assert key == "http://models.test:80/m/predict"
    assert health["endpoints"][key]["state"] == "open" and health["status"] == "ok"
    # The token is in none of what a user sees.
    assert after["url_predict"] == detail["url_predict"] == "http://models.test/m/predict?token=***"
    for shown in (str(after), str(detail), str(models.rows), first.message, second.message,
                  str(first.to_dict())):  # fmt: skip
        assert "s3cr3t" not in shown


# ---- connection-time address check (DNS rebinding) -------------------------------------------


class Resolver:
    """A fake DNS: host -> addresses; counts lookups."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        return self.answers[host]


def test_a_name_rebound_to_the_metadata_address_is_refused_at_connect() -> None:
    rec = Recorder(httpx.Response(200, json={}))
    dns = Resolver({"models.test": ["169.254.169.254"]})
    guarded = GuardedTransport(mock(rec), resolve=dns, allowed="")
    with pytest.raises(EndpointUnreachable) as info:
        run(guarded)
    err = info.value
    assert err.code == "ENDPOINT_ADDRESS_REFUSED"
    assert "models.test" in err.message and "169.254.169.254" in err.message
    assert "BYOM_ALLOWED_HOSTS" in err.message
    assert rec.requests == [] and dns.lookups == 1  # refused, and not retried


def test_an_explicitly_listed_name_may_resolve_to_link_local() -> None:
    rec = Recorder(httpx.Response(200, json={"ok": 1}))
    dns = Resolver({"models.test": ["169.254.10.10"]})
    guarded = GuardedTransport(mock(rec), resolve=dns, allowed="models.test")
    assert run(guarded) == {"ok": 1}
    guarded = GuardedTransport(mock(rec), resolve=dns, allowed="*")  # a wildcard is not enough
    with pytest.raises(EndpointUnreachable, match="link-local"):
        run(guarded)


def test_http_is_sent_to_the_checked_address_with_the_name_as_host() -> None:
    rec = Recorder(httpx.Response(200, json={}))
    dns = Resolver({"models.test": ["10.1.2.3"]})
    run(GuardedTransport(mock(rec), resolve=dns))
    (request,) = rec.requests
    assert request.url.host == "10.1.2.3" and request.url.port == 8000
    assert request.headers["host"] == "models.test:8000"


def test_resolutions_are_cached_for_a_few_seconds() -> None:
    clock = Clock()
    rec = Recorder(httpx.Response(200, json={}))
    dns = Resolver({"models.test": ["10.1.2.3"]})
    guarded = GuardedTransport(mock(rec), resolve=dns, ttl=5.0, clock=clock)

    async def calls(n: int) -> None:
        async with make_client(FAST, transport=guarded) as client:
            for _ in range(n):
                await post_json(client, URL, b"{}", model="b", settings=FAST, retry=False)

    asyncio.run(calls(3))
    assert dns.lookups == 1
    clock.now += 6
    dns.answers["models.test"] = ["169.254.169.254"]  # the rebinding, after the TTL
    with pytest.raises(EndpointUnreachable, match="169.254.169.254"):
        asyncio.run(calls(1))
    assert dns.lookups == 2 and len(rec.requests) == 3


def test_the_next_address_is_tried_when_one_refuses() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.1":
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"via": request.url.host})

    dns = Resolver({"models.test": ["10.0.0.1", "10.0.0.2"]})
    assert run(GuardedTransport(mock(handler), resolve=dns)) == {"via": "10.0.0.2"}


def test_a_literal_metadata_address_is_refused_at_connect_too() -> None:
    rec = Recorder(httpx.Response(200, json={}))
    with pytest.raises(EndpointUnreachable) as info:
        run(GuardedTransport(mock(rec), allowed=""), url="http://169.254.169.254/latest")
    assert info.value.code == "ENDPOINT_ADDRESS_REFUSED"
    assert rec.requests == []
    # Listed explicitly, the same address is allowed.
    run(GuardedTransport(mock(rec), allowed="169.254.169.254"), url="http://169.254.169.254/x")
    assert len(rec.requests) == 1


def test_a_real_server_by_name_through_the_default_client() -> None:
    """The default client resolves ``localhost`` itself, checks it and connects to the
    address (falling back between ::1 and 127.0.0.1, whichever listens)."""
    hits: list[str] = []
    with serving(_redirecting_app(hits)) as base:
        port = base.rsplit(":", 1)[1]
        assert run(None, url=f"http://localhost:{port}/m/predict") == {"prediction": [1]}
    assert hits == ["/m/predict"]
