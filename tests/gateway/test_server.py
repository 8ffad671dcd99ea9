"""The HTTP API over a fake Gateway: success shapes, the error JSON shape and status codes."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import inspect
import re
import sys
import types
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from byom.errors import (
    EndpointTimeout,
    EndpointUnreachable,
    GatewayError,
    ModelExists,
    ModelNotFound,
    NotFound,
    ParseError,
)
from catalog.records import TokenRecord
from gateway.parser import ScriptStatement
from gateway.progress import ProgressRegistry, QueryProgress
from gateway.result import Result, StreamResult
from gateway.scripts import parse_for_run, run_statements
from gateway.server import GatewayAPI, create_app
from gateway.session import Session

with warnings.catch_warnings():
    # Starlette warns at import that its TestClient will move off httpx; not our concern.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


# A few of the real DESCRIBE columns: the tests here and in test_client_cli.py read these.
PREDICTOR_COLUMNS = ["name", "format", "status", "url_predict"]


# A streamed answer: called with the statement's query_id, returns a fresh StreamResult
# (a stream can be read only once).
StreamFactory = Callable[[str | None], StreamResult]


class FakeGateway:
    """Implements Gateway's methods with canned answers; ``answers`` maps SQL to a Result,
    a ``StreamFactory`` or an exception to raise, so each test states the behaviour it
    relies on.

    It is a ``GatewayAPI`` (what the routes call), and every method it has is one of
    ``gateway.core.Gateway``'s with the same signature: the tests at the end of this file
    check both, so the fake cannot drift from the real gateway unnoticed.
    """

    def __init__(self) -> None:
        self.answers: dict[str, Result | Exception | StreamFactory] = {
            "SELECT 1": Result(columns=["one"], rows=[[1]]),
            "SELEC 1": ParseError("Unknown statement 'SELEC'.", line=1, col=1, suggestion="SELECT"),
            # test_client_cli.py checks this exact (older) wording of the message.
            "SELECT * FROM missing": ModelNotFound(
                "model 'missing' does not exist", model="missing"
            ),
            "SELECT * FROM down": EndpointUnreachable(
                "model 'down': cannot connect to http://127.0.0.1:9/predict",
                url="http://127.0.0.1:9/predict",
            ),
            "SELECT * FROM slow": EndpointTimeout("model 'slow': no answer within 30 s"),
            "BOOM": RuntimeError("kaput"),
            "CREATE DATABASE x": Result(message="datasource 'x' created"),
            "SELECT odd": Result(
                columns=["i", "f", "nan", "when", "dec", "flag"],
                rows=[
                    [
                        np.int64(7),
                        np.float32(0.5),
                        float("nan"),
                        dt.datetime(2024, 1, 2, 3, 4, 5),
                        decimal.Decimal("1.25"),
                        np.bool_(True),
                    ]
                ],
            ),
        }
        self.predictors: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.query_ids: list[str | None] = []
        self.sessions: list[Session | None] = []  # the session of each sql_stream call
        self.progress = ProgressRegistry()
        self.polls = 0
        self.closed = False
        # The real gateway always says "ok"; a test sets another status to exercise the
        # route's 503 branch.
        self.status = "ok"
        self.training_now: list[str] = []

    async def close(self) -> None:
        self.closed = True

    async def sql_stream(
        self, text: str, query_id: str | None = None, session: Session | None = None
    ) -> Result | StreamResult:
        self.calls.append(("sql", text))
        self.query_ids.append(query_id)
        self.sessions.append(session)
        answer = self.answers.get(text)
        if answer is None:
            raise ParseError(f"fake gateway has no answer for {text!r}")
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Result):
            return answer
        return answer(query_id)

    async def run_script(
        self,
        script: str | list[ScriptStatement],
        query_id: str | None = None,
        session: Session | None = None,
    ) -> AsyncIterator[tuple[ScriptStatement, Result | StreamResult]]:
        """Gateway.run_script over the canned answers: each statement is answered by
        ``sql_stream(its text)``, with the real error marking and draining."""
        items = parse_for_run(script) if isinstance(script, str) else script

        def execute(item: ScriptStatement) -> Awaitable[Result | StreamResult]:
            return self.sql_stream(item.sql, query_id, session)

        async for item, result in run_statements(items, execute):
            yield item, result

    async def sql(self, text: str, session: Session | None = None) -> Result:
        result = await self.sql_stream(text, session=session)
        return await result.collect() if isinstance(result, StreamResult) else result

    def queries(self) -> list[QueryProgress]:
        return self.progress.list()

    def cancel_query(self, query_id: str) -> QueryProgress:
        return self.progress.cancel(query_id)

    def query_progress(self, query_id: str) -> QueryProgress:
        self.polls += 1
        entry = self.progress.get(query_id)
        if entry is None:
            raise NotFound(
                f"No query '{query_id}' is running or recently finished.", code="QUERY_NOT_FOUND"
            )
        return entry

    async def wait_idle(self) -> list[str]:
        return []

    def training_in_flight(self) -> list[str]:
        return list(self.training_now)

    def training(self, name: str) -> bool:
        return False

    def _row(self, name: str) -> Result:
        spec = self.predictors[name]
        row = [name, spec["format"], "complete", spec["url_predict"]]
        return Result(columns=PREDICTOR_COLUMNS, rows=[row])

    async def register_predictor(self, spec: dict[str, Any]) -> Result:
        self.calls.append(("register_predictor", spec))
        name = spec["name"]
        if name in self.predictors:
            raise ModelExists(
                f"Model '{name}' already exists; DROP MODEL {name} first or pick another name.",
                model=name,
            )
        self.predictors[name] = spec
        return self._row(name)

    async def describe_predictor(self, name: str) -> Result:
        if name not in self.predictors:
            raise ModelNotFound.named(name, self.predictors)
        return self._row(name)

    async def list_predictors(self) -> Result:
        rows = [self._row(name).rows[0] for name in self.predictors]
        return Result(columns=PREDICTOR_COLUMNS, rows=rows)

    async def drop_predictor(self, name: str) -> Result:
        if self.predictors.pop(name, None) is None:
            raise ModelNotFound.named(name, self.predictors)
        return Result(message=f"Model '{name}' dropped.")

    async def predict(self, name: str, rows: list[dict[str, Any]]) -> Result:
        self.calls.append(("predict", (name, rows)))
        if name not in self.predictors:
            raise ModelNotFound.named(name, self.predictors)
        columns = [*rows[0], "prediction"] if rows else ["prediction"]
        out = [[*row.values(), sum(v for v in row.values() if isinstance(v, int))] for row in rows]
        return Result(columns=columns, rows=out)

    async def wait_for_training(self, name: str, timeout: float = 120.0) -> Result:
        return await self.describe_predictor(name)

    def health(self) -> dict[str, Any]:
        # The keys of Gateway.health (test_fake_health_has_the_real_keys).
        return {
            "status": self.status,
            "uptime_s": 0.0,
            "catalog_schema_version": 1,
            "training_in_flight": list(self.training_now),
            "endpoints": {},
        }

    owner = "fake-replica"

    def status_report(self) -> dict[str, Any]:
        return {"gateway": {**self.health(), "replica": self.owner}, "cluster": None, "jobs": []}

    # Tokens: the fake has no catalog, so no authentication (tests/gateway/test_auth.py
    # runs the real one); these answer what a gateway without tokens would.
    def create_token(self, name: str, role: str) -> tuple[TokenRecord, str]:
        record = TokenRecord(name, role, "byom_fake", dt.datetime.now(dt.UTC), None, None)
        return record, "byom_fake-secret"

    def list_tokens(self) -> list[TokenRecord]:
        return []

    def revoke_token(self, name: str) -> TokenRecord:
        raise NotFound(f"No token named '{name}'.", code="TOKEN_NOT_FOUND")


@pytest.fixture
def fake() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def client(fake: FakeGateway) -> TestClient:
    with TestClient(create_app(fake)) as test_client:
        yield test_client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message", ...}}`` with a useful message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


# --- /api/sql ---------------------------------------------------------------------------


def test_sql_answers_columns_and_rows(client: TestClient, fake: FakeGateway) -> None:
    response = client.post("/api/sql", json={"query": "SELECT 1"})
    assert response.status_code == 200
    assert response.json() == {"columns": ["one"], "rows": [[1]]}
    assert fake.calls == [("sql", "SELECT 1")]


def test_sql_message_only_result(client: TestClient) -> None:
    response = client.post("/api/sql", json={"query": "CREATE DATABASE x"})
    assert response.json() == {"columns": [], "rows": [], "message": "datasource 'x' created"}


def test_sql_encodes_numpy_datetime_nan_decimal(client: TestClient) -> None:
    response = client.post("/api/sql", json={"query": "SELECT odd"})
    assert response.status_code == 200
    assert response.json()["rows"] == [[7, 0.5, None, "2024-01-02T03:04:05", 1.25, True]]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("SELEC 1", 400, "PARSE_ERROR"),
        ("SELECT * FROM missing", 404, "MODEL_NOT_FOUND"),
        ("SELECT * FROM down", 502, "ENDPOINT_UNREACHABLE"),
        ("SELECT * FROM slow", 504, "ENDPOINT_TIMEOUT"),
    ],
)
def test_gateway_errors_keep_code_and_status(
    client: TestClient, query: str, status: int, code: str
) -> None:
    assert_error(client.post("/api/sql", json={"query": query}), status, code)


def test_error_details_travel_with_the_error(client: TestClient) -> None:
    parse = assert_error(client.post("/api/sql", json={"query": "SELEC 1"}), 400, "PARSE_ERROR")
    assert parse["line"] == 1 and parse["col"] == 1 and parse["suggestion"] == "SELECT"
    assert "Did you mean SELECT?" in parse["message"]
    down = assert_error(
        client.post("/api/sql", json={"query": "SELECT * FROM down"}), 502, "ENDPOINT_UNREACHABLE"
    )
    assert down["url"] == "http://127.0.0.1:9/predict"


def test_unexpected_exception_is_500_internal_error(client: TestClient) -> None:
    response = client.post("/api/sql", json={"query": "BOOM"})
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert error["message"] == ("internal gateway error: RuntimeError: kaput; see the gateway log")


def test_unexpected_exception_is_logged_with_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="gateway.server"):
        client.post("/api/sql", json={"query": "BOOM"})
    logged = [r for r in caplog.records if r.name == "gateway.server"]
    assert len(logged) == 1
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is RuntimeError


def test_plain_gateway_error_is_500_with_its_code(client: TestClient, fake: FakeGateway) -> None:
    fake.answers["X"] = GatewayError("catalog is locked", code="CATALOG_LOCKED")
    assert_error(client.post("/api/sql", json={"query": "X"}), 500, "CATALOG_LOCKED")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (
            {"content": b'{"query": ', "headers": {"content-type": "application/json"}},
            "not valid JSON",
        ),
        ({"json": {"sql": "SELECT 1"}}, "query: Field required"),
        ({"json": {"query": 42}}, "query: Input should be a valid string"),
        ({"json": ["SELECT 1"]}, "invalid request"),
        ({}, "JSON request body is required"),
        (
            {"content": b'{"query": "SELECT 1"}', "headers": {"content-type": "text/plain"}},
            "Content-Type",
        ),
    ],
)
def test_bad_sql_body_is_400_invalid_request(
    client: TestClient, fake: FakeGateway, kwargs: dict[str, Any], needle: str
) -> None:
    error = assert_error(client.post("/api/sql", **kwargs), 400, "INVALID_REQUEST")
    assert needle in error["message"]
    assert fake.calls == []


def test_unknown_route_and_wrong_method_use_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/api/nothing"), 404, "NOT_FOUND")
    assert_error(client.get("/api/sql"), 405, "METHOD_NOT_ALLOWED")


def test_sql_passes_query_id_to_the_gateway(client: TestClient, fake: FakeGateway) -> None:
    client.post("/api/sql", json={"query": "SELECT 1", "query_id": "mine-1"})
    client.post("/api/sql", json={"query": "SELECT 1"})
    assert fake.query_ids == ["mine-1", None]


# --- /api/queries ---------------------------------------------------------------------


def test_queries_list_and_one(client: TestClient, fake: FakeGateway) -> None:
    assert client.get("/api/queries").json() == []
    entry = fake.progress.start("SELECT t.a, m.y FROM db.t JOIN m", "join", query_id="q-7")
    entry.rows_done, entry.rows_total = 30, 120
    other = fake.progress.start("INSERT INTO db.out SELECT ...", "write")
    fake.progress.finish(other, "error", "endpoint down")
    listed = client.get("/api/queries").json()
    assert [q["id"] for q in listed] == ["q-7", other.id]
    one = client.get("/api/queries/q-7").json()
    assert one == {**entry.to_dict(), "fraction": 0.25}
    assert (one["status"], one["kind"], one["rows_done"]) == ("running", "join", 30)
    assert listed[1]["status"] == "error" and listed[1]["error"] == "endpoint down"
    error = assert_error(client.get("/api/queries/nope"), 404, "QUERY_NOT_FOUND")
    assert "nope" in error["message"]


# --- /api/predictors ------------------------------------------------------------------


SPEC = {"name": "byom2", "format": "mlflow", "url_predict": "http://127.0.0.1:5000/invocations"}


def test_register_predictor_returns_201_and_the_row(client: TestClient, fake: FakeGateway) -> None:
    body = {**SPEC, "target": "1", "data_dtype": {"0": "integer", "1": "integer"}}
    response = client.post("/api/predictors", json=body)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "name": "byom2",
        "format": "mlflow",
        "status": "complete",
        "url_predict": SPEC["url_predict"],
    }
    kind, spec = fake.calls[-1]
    assert kind == "register_predictor"
    assert spec == {  # the PredictorSpec fields given (the gateway fills in the rest)
        "name": "byom2",
        "format": "mlflow",
        "url_predict": SPEC["url_predict"],
        "dtype_dict": {"0": "integer", "1": "integer"},  # data_dtype is an alias
        "target": "1",
    }


def test_predictor_body_is_derived_from_the_catalog_spec() -> None:
    """The JSON body has exactly the PredictorSpec fields (but kind), plus the nested url."""
    from dataclasses import fields

    from catalog.records import PredictorSpec as CatalogSpec
    from gateway.server import PredictorSpec

    expected = {f.name for f in fields(CatalogSpec)} - {"kind"} | {"url"}
    assert set(PredictorSpec.model_fields) == expected


def test_register_predictor_accepts_nested_url(client: TestClient, fake: FakeGateway) -> None:
    body = {
        "name": "byom",
        "format": "ray_server",
        "url": {"predict": "http://h/predict", "train": "http://h/train"},
        "dtype_dict": {"x": "integer"},
        "target": "y",
        "datasource": "mydb",
        "query": "SELECT x, y FROM t",
    }
    assert client.post("/api/predictors", json=body).status_code == 201
    spec = fake.calls[-1][1]
    assert spec["url_predict"] == "http://h/predict"
    assert spec["url_train"] == "http://h/train"
    assert "url" not in spec
    assert (spec["training_datasource"], spec["training_query"]) == ("mydb", "SELECT x, y FROM t")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"format": "mlflow", "url_predict": "http://h"}, "name: Field required"),
        ({**SPEC, "dtypes": {"a": "integer"}}, "dtypes: Extra inputs are not permitted"),
        ({**SPEC, "url": {"predict": "http://other"}}, "disagree"),
        ({**SPEC, "dtype_dict": ["integer"]}, "dtype_dict"),
    ],
)
def test_register_predictor_rejects_bad_specs(
    client: TestClient, fake: FakeGateway, body: dict[str, Any], needle: str
) -> None:
    error = assert_error(client.post("/api/predictors", json=body), 400, "INVALID_REQUEST")
    assert needle in error["message"]
    assert fake.calls == []


def test_register_existing_predictor_is_409(client: TestClient) -> None:
    assert client.post("/api/predictors", json=SPEC).status_code == 201
    assert_error(client.post("/api/predictors", json=SPEC), 409, "MODEL_EXISTS")


def test_list_describe_drop_predictor(client: TestClient) -> None:
    assert client.get("/api/predictors").json() == []
    client.post("/api/predictors", json=SPEC)
    listed = client.get("/api/predictors").json()
    assert [p["name"] for p in listed] == ["byom2"]
    described = client.get("/api/predictors/byom2").json()
    assert described["status"] == "complete"
    assert client.delete("/api/predictors/byom2").json() == {"dropped": "byom2"}
    assert_error(client.get("/api/predictors/byom2"), 404, "MODEL_NOT_FOUND")
    assert_error(client.delete("/api/predictors/byom2"), 404, "MODEL_NOT_FOUND")


@pytest.mark.parametrize("wrap", [True, False], ids=["rows-object", "bare-list"])
def test_predict_accepts_rows_object_or_bare_list(
    client: TestClient, fake: FakeGateway, wrap: bool
) -> None:
    client.post("/api/predictors", json=SPEC)
    rows = [{"0": 2, "1": 3}, {"0": 5, "1": 1}]
    response = client.post("/api/predictors/byom2/predict", json={"rows": rows} if wrap else rows)
    assert response.status_code == 200, response.text
    assert response.json() == {"columns": ["0", "1", "prediction"], "rows": [[2, 3, 5], [5, 1, 6]]}
    assert fake.calls[-1] == ("predict", ("byom2", rows))


def test_predict_errors(client: TestClient) -> None:
    assert_error(
        client.post("/api/predictors/nope/predict", json={"rows": [{"a": 1}]}),
        404,
        "MODEL_NOT_FOUND",
    )
    error = assert_error(
        client.post("/api/predictors/nope/predict", json={"rows": [1, 2]}), 400, "INVALID_REQUEST"
    )
    assert "rows[0]" in error["message"]


# --- health, docs, lifespan -----------------------------------------------------------


def test_status_answers_the_gateways_report(client: TestClient) -> None:
    response = client.get("/api/status")
    body = response.json()
    assert body["gateway"]["replica"] == "fake-replica"
    assert response.headers["X-Byom-Replica"] == "fake-replica"  # on every answer
    assert body["cluster"] is None and body["jobs"] == []


def test_healthz(client: TestClient, fake: FakeGateway) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "uptime_s": 0.0,
        "catalog_schema_version": 1,
        "training_in_flight": [],
        "endpoints": {},
    }
    fake.status = "degraded"
    assert client.get("/healthz").status_code == 503


def test_openapi_and_docs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) >= {
        "/api/sql",
        "/api/queries",
        "/api/queries/{query_id}",
        "/api/predictors",
        "/api/predictors/{name}",
        "/api/predictors/{name}/predict",
        "/healthz",
    }
    assert set(paths["/api/predictors"]) == {"get", "post"}
    assert set(paths["/api/predictors/{name}"]) == {"get", "delete"}
    assert "PredictorSpec" in schema["components"]["schemas"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def install_fake_core(
    monkeypatch: pytest.MonkeyPatch, fake: FakeGateway, seen: list[tuple[Any, ...]]
) -> type:
    """Make ``gateway.core.Gateway.start`` return ``fake`` and record its ``(home,
    catalog_url)``; returns the stand-in class. Its ``start`` takes what the real one takes
    (test_fake_start_takes_what_gateway_start_takes)."""

    class StartsFake:
        @classmethod
        async def start(
            cls,
            home: Path | None = None,
            catalog_url: str | None = None,
            settings: Any = None,
            transport: Any = None,
            serving: bool = True,
        ) -> Any:
            seen.append((home, catalog_url))
            return fake

    module = types.ModuleType("gateway.core")
    module.Gateway = StartsFake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.core", module)
    return StartsFake


def test_lifespan_starts_and_closes_its_own_gateway(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeGateway()
    seen: list[tuple[Path | None, str | None]] = []
    install_fake_core(monkeypatch, fake, seen)
    app = create_app(home=tmp_path, catalog_url="sqlite:///c.db")
    with TestClient(app) as test_client:
        assert seen == [(tmp_path, "sqlite:///c.db")]
        assert test_client.post("/api/sql", json={"query": "SELECT 1"}).status_code == 200
        assert not fake.closed
    assert fake.closed


def test_given_gateway_is_not_closed_by_the_app(fake: FakeGateway) -> None:
    with TestClient(create_app(fake)) as test_client:
        test_client.get("/healthz")
    assert not fake.closed


# --- the fake and the real gateway match what the routes call ----------------------------


def _own_methods(cls: type) -> set[str]:
    """The public methods ``cls`` defines itself (a Protocol's bookkeeping is private)."""
    return {name for name, value in vars(cls).items() if callable(value) and name[0] != "_"}


def _shape(cls: type, name: str) -> tuple[bool, inspect.Signature]:
    """Whether ``cls.name`` is async, and its signature with the annotations evaluated."""
    method = getattr(cls, name)
    return inspect.iscoroutinefunction(method), inspect.signature(method, eval_str=True)


def test_protocol_lists_exactly_what_the_routes_call() -> None:
    # Every route takes the gateway as ``gw: GatewayDep``; any ``gw.<name>`` counts.
    called = set(re.findall(r"\bgw\.(\w+)", inspect.getsource(create_app)))
    assert called == _own_methods(GatewayAPI)


@pytest.mark.parametrize("name", sorted(_own_methods(GatewayAPI)))
def test_real_gateway_and_fake_conform_to_the_protocol(name: str) -> None:
    from gateway.core import Gateway  # here, not at the top: it imports the whole gateway

    expected = _shape(GatewayAPI, name)
    assert _shape(Gateway, name) == expected, f"gateway.core.Gateway.{name} != GatewayAPI"
    assert _shape(FakeGateway, name) == expected, f"FakeGateway.{name} != GatewayAPI"
    assert isinstance(FakeGateway(), GatewayAPI)


def test_fake_methods_are_all_real_gateway_methods() -> None:
    """The CLI and demo tests use the fake beyond the routes (sql, close, wait_idle, ...)."""
    from gateway.core import Gateway

    for name in sorted(_own_methods(FakeGateway)):
        assert hasattr(Gateway, name), f"FakeGateway.{name} is not a gateway.core.Gateway method"
        assert _shape(FakeGateway, name) == _shape(Gateway, name), f"FakeGateway.{name} differs"


def test_fake_health_has_the_real_keys(tmp_path: Path) -> None:
    from gateway.core import Gateway

    async def real_health() -> dict[str, Any]:
        catalog = f"sqlite:///{tmp_path / 'catalog.sqlite'}"  # not $BYOM_CATALOG_URL's
        async with await Gateway.start(home=tmp_path, catalog_url=catalog) as gateway:
            return gateway.health()

    real = asyncio.run(real_health())
    answer = FakeGateway().health()
    assert {k: type(v) for k, v in answer.items()} == {k: type(v) for k, v in real.items()}
    assert answer["status"] == real["status"] == "ok"
    assert answer["training_in_flight"] == real["training_in_flight"] == []


def test_fake_start_takes_what_gateway_start_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.core import Gateway

    def parameters(start: Any) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(start).parameters.values()]

    expected = parameters(Gateway.start)
    assert parameters(install_fake_core(monkeypatch, FakeGateway(), []).start) == expected
