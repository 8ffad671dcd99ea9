"""Limits and backpressure: request and statement sizes (413), statements in flight (429 /
503 with Retry-After), the statement timeout (504), long names, parsing off the event loop,
the 20,000-value IN list, cancel on disconnect, and the JOIN timeout naming its model.

The HTTP tests drive the real app (``create_app``) over ``FakeGateway`` in one event loop
(``httpx.ASGITransport``), or with raw ASGI messages where the test must control what the
client does; the statement-path tests run the real ``Gateway`` over a mocked model endpoint.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlglot.expressions import core as sqlglot_core

from byom.errors import (
    Busy,
    EndpointTimeout,
    InvalidOption,
    ParseError,
    StatementTimeout,
    TooLarge,
    TooManyRequests,
)
from gateway import scripts
from gateway.http_limits import client_key
from gateway.limits import InFlightLimiter
from gateway.parse_tokens import DIALECT, MAX_IDENTIFIER, tokenize
from gateway.parser import ParseLimits, parse_script
from gateway.result import Result, StreamResult
from gateway.server import create_app
from gateway.session import Session
from gateway.settings import Settings
from tests.gateway.test_executor import URL, FakeModel, gateway
from tests.gateway.test_server import FakeGateway

# --- the limiter, alone ------------------------------------------------------------------


def test_limiter_refuses_per_client_first_then_overall_and_frees_slots() -> None:
    limiter = InFlightLimiter(total=3, per_client=2, retry_after=2)
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(TooManyRequests) as mine:
        limiter.acquire("a")
    assert mine.value.status == 429 and mine.value.headers() == {"Retry-After": "2"}
    assert "BYOM_MAX_IN_FLIGHT_PER_CLIENT = 2" in mine.value.message
    limiter.acquire("b")
    with pytest.raises(Busy) as full:
        limiter.acquire("c")
    assert type(full.value) is Busy and full.value.status == 503
    assert full.value.code == "GATEWAY_BUSY" and "BYOM_MAX_IN_FLIGHT = 3" in full.value.message
    limiter.release("a")
    limiter.acquire("c")  # a slot came free
    assert (limiter.in_flight, limiter.running("a"), limiter.running("c")) == (3, 1, 1)


def test_limiter_keeps_no_entry_for_idle_clients() -> None:
    limiter = InFlightLimiter(total=10, per_client=10)
    for i in range(100):
        with limiter.slot(f"client-{i}"):
            assert limiter.running(f"client-{i}") == 1
    with pytest.raises(RuntimeError), limiter.slot("x"):
        raise RuntimeError("the statement failed")  # the slot is given back all the same
    assert limiter.in_flight == 0 and limiter._clients == {}


def test_client_is_the_token_name_else_the_address() -> None:
    assert client_key({"client": ("10.1.2.3", 5000)}) == "ip:10.1.2.3"
    scope = {"client": ("10.1.2.3", 5000), "state": {"byom_token": "etl"}}
    assert client_key(scope) == "token:etl"
    assert client_key({}) == "ip:unknown"


# --- HTTP: sizes ---------------------------------------------------------------------------


def _app(fake: FakeGateway, **limits: Any) -> Any:
    return create_app(fake, settings=Settings(**limits))  # type: ignore[arg-type]


async def _post(app: Any, query: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, **kwargs)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.post("/api/sql", json={"query": query})


def test_body_over_the_limit_is_413_before_the_route_runs() -> None:
    fake = FakeGateway()
    app = _app(fake, max_body_bytes=200)
    response = asyncio.run(_post(app, "SELECT 1 " + "x" * 300))
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "REQUEST_TOO_LARGE" and error["limit"] == 200
    assert "BYOM_MAX_BODY_BYTES" in error["message"]
    assert fake.calls == []
    assert asyncio.run(_post(app, "SELECT 1")).status_code == 200


async def _asgi(app: Any, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[Any]:
    """Run one request with these ``http.request`` messages; returns what the app sent."""
    sent: list[dict[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # the client waits for its answer
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    base = {"type": "http", "http_version": "1.1", "method": "POST", "path": "/api/sql",
            "raw_path": b"/api/sql", "query_string": b"", "root_path": "", "scheme": "http",
            "server": ("gw", 80), "client": ("127.0.0.1", 1), "app": app}  # fmt: skip
    await asyncio.wait_for(app(base | scope, receive, send), 30)
    return sent


def test_body_without_content_length_is_cut_off_while_read() -> None:
    fake = FakeGateway()
    app = _app(fake, max_body_bytes=100)
    chunks = [b'{"query": "SELECT 1', b" " * 60, b" " * 60, b'"}']
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    messages[-1]["more_body"] = False
    headers = [(b"content-type", b"application/json")]  # chunked: no Content-Length
    sent = asyncio.run(_asgi(app, {"headers": headers}, messages))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 413
    assert json.loads(body)["error"]["code"] == "REQUEST_TOO_LARGE"
    assert [m["type"] for m in sent].count("http.response.start") == 1  # one answer only
    assert fake.calls == []


def test_statement_and_script_sizes_are_413_naming_their_limit() -> None:
    fake = FakeGateway()
    app = _app(fake, max_statement_bytes=64, max_statements=3)
    big = asyncio.run(_post(app, "SELECT 1; SELECT '" + "y" * 100 + "'"))
    assert big.status_code == 413
    error = big.json()["error"]
    assert error["code"] == "STATEMENT_TOO_LARGE" and error["limit"] == 64
    assert "BYOM_MAX_STATEMENT_BYTES" in error["message"]
    # Every run of text between two ';' is short, but statement 2 (its string holds one) not.
    split = asyncio.run(_post(app, "SELECT 1; SELECT '" + "y" * 40 + ";" + "y" * 40 + "'"))
    assert split.status_code == 413
    assert split.json()["error"]["message"].startswith("Statement 2 is 90 bytes")
    many = asyncio.run(_post(app, "SELECT 1; " * 5))
    assert many.status_code == 413 and many.json()["error"]["code"] == "TOO_MANY_STATEMENTS"
    assert "BYOM_MAX_STATEMENTS" in many.json()["error"]["message"]
    assert fake.calls == []


def test_many_command_statements_are_refused_not_tokenized_for_hours() -> None:
    """``'SHOW MODELS;' * 87000`` never finished: sqlglot copied its token list after each
    command statement. Now tokenizing is linear and the count is refused (413)."""
    with pytest.raises(TooLarge) as info:
        parse_script("SHOW MODELS;" * 20_000)
    assert info.value.code == "TOO_MANY_STATEMENTS" and info.value.status == 413
    assert len(parse_script("SHOW MODELS;" * 200)) == 200


@pytest.mark.parametrize(
    "script",
    [
        "SHOW MODELS;" * 100,
        "SELECT 1;\n  SHOW MODELS ; -- c;\nSELECT 'a;b', `x;y`\r\n;CALL x(1);\n\n /* ; */ SELECT 2;"
        * 20,
        "CREATE TRIGGER t BEGIN SELECT 1; SELECT 2; END;\n" * 40,
    ],
)
def test_piecewise_tokens_are_the_whole_scripts_tokens(script: str) -> None:
    def fields(toks: list[Any]) -> list[tuple[Any, ...]]:
        return [(t.token_type, t.text, t.line, t.col, t.start, t.end) for t in toks]

    assert script.count(";") > 64  # the piecewise path
    assert fields(tokenize(script)) == fields(DIALECT.tokenize(script))


def test_statement_over_the_limit_is_refused_before_it_is_tokenized() -> None:
    limits = ParseLimits(max_statement_bytes=1000)
    with pytest.raises(TooLarge) as info:
        parse_script("SELECT " + "1," * 5000 + "1", limits)
    assert info.value.code == "STATEMENT_TOO_LARGE" and "1000 bytes" in info.value.message
    parse_script("SELECT " + "1," * 400 + "1", limits)  # under it: parsed


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "CREATE MODEL {} PREDICT y USING url.predict = 'http://h/p'",
        'CREATE MODEL "{}" PREDICT y',
        "SELECT `{}` FROM t",
        "SELECT * FROM {}",
        "CREATE DATABASE {} WITH ENGINE = 'sqlite', PARAMETERS = {{}}",
    ],
)
def test_a_name_over_the_limit_is_a_parse_error_with_its_position(template: str) -> None:
    ok = template.format("a" * MAX_IDENTIFIER)
    parse_script(ok)
    with pytest.raises(ParseError) as info:
        parse_script(template.format("a" * 1_000_000))
    assert f"at most {MAX_IDENTIFIER} characters" in info.value.message
    at = template.index("{")
    quoted = template[at - 1] in '"`'
    assert (info.value.line, info.value.col) == (1, at if quoted else at + 1)


def test_long_double_quoted_values_are_not_names() -> None:
    long = "v" * 1000
    stmt = parse_script(f'CREATE MODEL m PREDICT y USING prompt = "{long}", url.predict = "x"')
    assert stmt[0].statement.options["prompt"] == long  # type: ignore[attr-defined]


# --- HTTP: statements in flight ---------------------------------------------------------


class HoldingGateway(FakeGateway):
    """``HOLD`` streams its answer only once ``release`` is set (holding its slot)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.holding = 0
        self.cancelled = 0

        async def rows() -> AsyncIterator[list[list[Any]]]:
            self.holding += 1
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            yield [[1]]

        self.answers["HOLD"] = lambda query_id: StreamResult(["x"], rows())


async def _until(condition: Any) -> None:
    for _ in range(2000):  # a bound against hangs, not a timing check
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


def test_over_the_per_client_limit_is_429_and_overall_503_with_retry_after() -> None:
    async def go() -> None:
        fake = HoldingGateway()
        app = _app(fake, max_in_flight=2, max_in_flight_per_client=1)
        first = asyncio.ensure_future(_post(app, "HOLD", client=("10.0.0.1", 1)))
        await _until(lambda: fake.holding == 1)
        again = await _post(app, "SELECT 1", client=("10.0.0.1", 2))
        assert again.status_code == 429 and again.headers["retry-after"] == "1"
        assert again.json()["error"]["code"] == "TOO_MANY_REQUESTS"
        other = asyncio.ensure_future(_post(app, "HOLD", client=("10.0.0.2", 1)))
        await _until(lambda: fake.holding == 2)
        third = await _post(app, "SELECT 1", client=("10.0.0.3", 1))
        assert third.status_code == 503 and third.headers["retry-after"] == "1"
        assert third.json()["error"]["code"] == "GATEWAY_BUSY"
        transport = httpx.ASGITransport(app=app, client=("10.0.0.3", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            assert (await client.get("/healthz")).status_code == 200  # never limited
            assert (await client.get("/api/status")).status_code == 200
        fake.release.set()
        assert [(await first).status_code, (await other).status_code] == [200, 200]
        assert app.state.limiter.in_flight == 0
        assert (await _post(app, "SELECT 1", client=("10.0.0.1", 3))).status_code == 200

    asyncio.run(go())


def test_the_client_is_the_token_when_the_auth_middleware_names_one() -> None:
    async def go() -> None:
        fake = HoldingGateway()
        app = _app(fake, max_in_flight=10, max_in_flight_per_client=1)

        def as_token(name: str) -> Any:  # what the auth middleware (outside) does
            async def wrapped(scope: Any, receive: Any, send: Any) -> None:
                scope.setdefault("state", {})["byom_token"] = name
                await app(scope, receive, send)

            return wrapped

        first = asyncio.ensure_future(_post(as_token("etl"), "HOLD"))
        await _until(lambda: fake.holding == 1)
        same = await _post(as_token("etl"), "SELECT 1")  # same address, same token
        other = await _post(as_token("bi"), "SELECT 1")  # same address, another token
        assert (same.status_code, other.status_code) == (429, 200)
        fake.release.set()
        assert (await first).status_code == 200

    asyncio.run(go())


def test_client_gone_cancels_its_statement_and_frees_the_slot() -> None:
    class Hanging(FakeGateway):
        def __init__(self) -> None:
            super().__init__()
            self.started = asyncio.Event()
            self.cancelled = False

        async def sql_stream(self, text: str, query_id: Any = None, session: Any = None) -> Any:
            self.started.set()
            try:
                await asyncio.sleep(3600)  # a statement answered in one piece (no stream)
            except asyncio.CancelledError:
                self.cancelled = True
                raise
            return Result()

    async def go() -> None:
        fake = Hanging()
        app = _app(fake)
        gone = asyncio.Event()
        body = json.dumps({"query": "SELECT 1"}).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "http_version": "1.1", "method": "POST", "path": "/api/sql",
                 "raw_path": b"/api/sql", "query_string": b"", "root_path": "",
                 "scheme": "http", "server": ("gw", 80), "client": ("127.0.0.1", 1),
                 "headers": [(b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())]}  # fmt: skip
        request = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.wait_for(fake.started.wait(), 30)
        assert app.state.limiter.in_flight == 1
        gone.set()
        await asyncio.wait_for(request, 30)
        assert fake.cancelled and sent == []
        assert app.state.limiter.in_flight == 0

    asyncio.run(go())


# --- parsing off the event loop ----------------------------------------------------------


def test_healthz_answers_while_a_big_script_is_being_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsing = threading.Event()
    release = threading.Event()
    real = scripts.parse_for_run

    def slow_parse(text: str, limits: ParseLimits) -> Any:
        parsing.set()
        release.wait(30)  # parsing "takes" until healthz has answered
        return real(text, limits)

    monkeypatch.setattr(scripts, "parse_for_run", slow_parse)
    big = "SELECT 1; SELECT " + ", ".join(["1"] * 3000)

    async def go() -> None:
        fake = FakeGateway()
        fake.answers[big.split("; ")[1]] = Result(columns=["x"], rows=[])
        app = _app(fake)
        request = asyncio.ensure_future(_post(app, big))
        await asyncio.to_thread(parsing.wait, 30)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            health = await client.get("/healthz")
        assert health.status_code == 200
        assert not request.done()  # healthz answered while the big script was parsing
        release.set()
        assert (await request).status_code == 200

    asyncio.run(go())


def test_short_statements_are_parsed_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(*args: Any) -> Any:
        raise AssertionError("a short statement went to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    parsed = asyncio.run(scripts.parse_off_loop("SELECT 1; SELECT 2"))
    assert [item.sql for item in parsed] == ["SELECT 1", "SELECT 2"]


# --- the statement path: the IN list, timeouts ------------------------------------------


def test_a_20000_value_in_list_plans_in_linear_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlglot's ``replace`` of one list item re-parents the whole list: binding each of
    20,000 literals that way was 200 million steps. Count the re-parenting work."""
    reparented = 0
    real = sqlglot_core.Expr._set_parent

    def counting(self: Any, arg_key: str, value: object, index: int | None = None) -> None:
        nonlocal reparented
        reparented += len(value) if isinstance(value, list) else 1
        real(self, arg_key, value, index)

    monkeypatch.setattr(sqlglot_core.Expr, "_set_parent", counting)
    values = ", ".join(str(i) for i in range(20_000))
    sql = f"SELECT t.id, p.y FROM local.t AS t JOIN m AS p WHERE t.a IN ({values})"

    async def go() -> Result:
        async with gateway(tmp_path, FakeModel()) as gw:
            return await gw.sql(sql)

    result = asyncio.run(go())
    assert [row[0] for row in result.rows] == list(range(1, 11))  # a = 10..100: all in
    assert reparented < 50 * 20_000  # quadratic was ~20,000 * 20,000 / 2


def test_in_list_on_model_outputs_is_one_set_lookup(tmp_path: Path) -> None:
    values = ", ".join(str(i) for i in range(0, 20_000, 40))  # y = 2a: 20, 40, ... 200

    async def go() -> Result:
        async with gateway(tmp_path, FakeModel()) as gw:
            return await gw.sql(
                f"SELECT t.id FROM local.t AS t JOIN m AS p WHERE p.y IN ({values})"
            )

    assert [row[0] for row in asyncio.run(go()).rows] == [2, 4, 6, 8, 10]


class SecondBatchHangs:
    """A model that answers its first batch at once and never the later ones."""

    def __init__(self) -> None:
        self.calls = 0
        self.waiting = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        rows = json.loads(json.loads(request.content)["df"])
        self.calls += 1
        if self.calls > 1:
            self.waiting += 1
            try:
                await asyncio.sleep(3600)
            finally:
                self.waiting -= 1
        return httpx.Response(200, json={"prediction": [2 * r["a"] for r in rows]})


async def _run_gateway(tmp_path: Path, model: Any, sql: str, **settings: Any) -> Any:
    async with gateway(tmp_path, model, **settings) as gw:
        try:
            return await gw.sql(sql)
        except Exception as exc:  # returned, so the caller can check what was cancelled
            return exc


def test_statement_timeout_covers_a_joins_rows_and_cancels_the_endpoint_call(
    tmp_path: Path,
) -> None:
    model = SecondBatchHangs()
    sql = (
        "SELECT t.id, p.y FROM local.t AS t JOIN m AS p "
        "USING batch_size = 5, concurrency = 1, statement_timeout = 0.5"
    )
    error = asyncio.run(_run_gateway(tmp_path, model, sql))
    assert isinstance(error, StatementTimeout), error
    assert error.status == 504 and error.code == "STATEMENT_TIMEOUT"
    assert "0.5s (USING statement_timeout = 0.5)" in error.message
    assert model.calls == 2 and model.waiting == 0  # the hanging call was cancelled


def test_gateway_statement_timeout_names_its_setting(tmp_path: Path) -> None:
    model = FakeModel(slow_first=3600)
    sql = "SELECT t.id, p.y FROM local.t AS t JOIN m AS p"
    error = asyncio.run(_run_gateway(tmp_path, model, sql, statement_timeout=0.3))
    assert isinstance(error, StatementTimeout), error
    assert "BYOM_STATEMENT_TIMEOUT" in error.message and "USING statement_timeout" in error.message
    assert model.in_flight == 0  # the endpoint call did not go on


def test_the_json_predict_route_runs_under_the_statement_timeout(tmp_path: Path) -> None:
    """POST /api/predictors/{name}/predict (Gateway.predict) has no USING: the gateway's
    limit bounds it as it bounds the SQL twin."""
    model = FakeModel(slow_first=3600)

    async def main() -> Any:
        async with gateway(tmp_path, model, statement_timeout=0.3) as gw:
            try:
                return await gw.predict("m", [{"a": 1}])
            except Exception as exc:  # noqa: BLE001 - returned to be checked
                return exc

    error = asyncio.run(main())
    assert isinstance(error, StatementTimeout), error
    assert "BYOM_STATEMENT_TIMEOUT" in error.message
    assert model.in_flight == 0  # the endpoint call did not go on


def test_json_registered_names_have_the_sql_length_limit(tmp_path: Path) -> None:
    async def main() -> Any:
        async with gateway(tmp_path, FakeModel()) as gw:
            try:
                await gw.register_predictor(
                    {"name": "m" * 256, "format": "mlflow", "url_predict": "http://h/p"}
                )
            except Exception as exc:  # noqa: BLE001 - returned to be checked
                return exc, (await gw.list_predictors()).rows
            return None, []

    error, models = asyncio.run(main())
    assert isinstance(error, InvalidOption) and "at most 255" in error.message, error
    assert all(len(row[0]) < 256 for row in models)  # nothing was stored


def test_statement_timeout_option_must_be_positive(tmp_path: Path) -> None:
    sql = "SELECT t.id FROM local.t AS t JOIN m AS p USING statement_timeout = 'soon'"
    error = asyncio.run(_run_gateway(tmp_path, FakeModel(), sql))
    assert isinstance(error, InvalidOption) and "statement_timeout" in error.message


def test_statement_timeout_option_is_held_to_the_admins_cap(tmp_path: Path) -> None:
    model = FakeModel()
    sql = "SELECT t.id, p.y FROM local.t AS t JOIN m AS p USING statement_timeout = 86400"
    error = asyncio.run(_run_gateway(tmp_path / "a", model, sql, max_statement_timeout=600))
    assert isinstance(error, InvalidOption), error
    assert "cap of 600s (BYOM_MAX_STATEMENT_TIMEOUT)" in error.message
    assert error.details["cap_s"] == 600 and model.batches == []  # nothing ran
    within = sql.replace("86400", "600")
    answer = asyncio.run(_run_gateway(tmp_path / "b", model, within, max_statement_timeout=600))
    assert isinstance(answer, Result) and answer.rows, answer
    uncapped = asyncio.run(_run_gateway(tmp_path / "c", model, sql))
    assert isinstance(uncapped, Result) and uncapped.rows, uncapped


def test_statement_timeout_is_not_sent_to_the_model(tmp_path: Path) -> None:
    sent: list[dict[str, Any]] = []

    async def model(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        rows = json.loads(body["df"])
        return httpx.Response(200, json={"prediction": [2 * r["a"] for r in rows]})

    sql = "SELECT t.id, p.y FROM local.t AS t JOIN m AS p USING statement_timeout = 60"
    result = asyncio.run(_run_gateway(tmp_path, model, sql))
    assert isinstance(result, Result) and len(result.rows) == 10
    assert sent and all("statement_timeout" not in json.dumps(b) for b in sent)


def test_join_timeout_names_the_model_and_its_url(tmp_path: Path) -> None:
    model = FakeModel(slow_first=3600)
    sql = "SELECT t.id, p.y FROM local.t AS t JOIN m AS p USING timeout = 0.2"
    error = asyncio.run(_run_gateway(tmp_path, model, sql))
    assert isinstance(error, EndpointTimeout), error
    assert "Model 'm'" in error.message and f"{URL}/predict" in error.message
    assert "JOIN's timeout of 0.2s" in error.message
    assert error.details["model"] == "m" and error.details["url"] == f"{URL}/predict"
    assert model.in_flight == 0


def test_a_statement_under_its_time_limit_answers_as_before(tmp_path: Path) -> None:

    async def go() -> Result:
        async with gateway(tmp_path, FakeModel(), statement_timeout=30) as gw:
            return await gw.sql("SELECT * FROM m WHERE a = 3", session=Session())

    assert asyncio.run(go()).records()[0]["y"] == 6
