"""The SQL surface of issue 7, through the HTTP API over the real Gateway (a tmp home):
SHOW TABLES/DATABASES/ENGINES/MODELS/PROJECTS, USE and sessions, CREATE OR REPLACE / IF NOT
EXISTS, projects, DESCRIBE m.features|model, other products' forms refused by name, and
did-you-mean that never points at another statement kind.

Models are served by a small Starlette app on a real port (``model_endpoint``): predict
doubles ``a``; train waits until the test opens its gate, so training can be caught in
flight.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from byom.errors import GatewayError, NotFound
from datasources import embedded_schema_path
from gateway.cli import main
from gateway.client import Client
from gateway.server import create_app
from gateway.session import Session, SessionStore
from tests.gateway.test_server import FakeGateway
from tests.threaded_server import serving

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient deprecation notice
    from fastapi.testclient import TestClient

SESSION = "X-Byom-Session"


# --- fixtures ----------------------------------------------------------------------------


class Endpoint:
    """A ray_serve model on a real port; ``gate`` holds every train call until set."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.trained = 0

        async def train(request: Request) -> JSONResponse:
            deadline = time.monotonic() + 30
            while not self.gate.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            self.trained += 1
            return JSONResponse({"status": "ok"})

        async def predict(request: Request) -> JSONResponse:
            rows = json.loads((await request.json())["df"])
            return JSONResponse({"prediction": [2 * r["a"] for r in rows]})

        self.app = Starlette(
            routes=[
                Route("/train", train, methods=["POST"]),
                Route("/predict", predict, methods=["POST"]),
            ]
        )
        self.url = ""


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    model = Endpoint()
    with serving(model.app) as url:
        model.url = url
        yield model
        model.gate.set()


@pytest.fixture
def api(tmp_path: Path, endpoint: Endpoint) -> Iterator[TestClient]:
    """A gateway whose embedded datasource has t(id, a, y), view v and schema test_data
    (table homes), plus a SQLite datasource ``mydb`` with table sales."""
    endpoint.gate.clear()
    with sqlite3.connect(embedded_schema_path(tmp_path, "test_data")) as conn:
        conn.execute("CREATE TABLE homes (rooms INTEGER)")
    with sqlite3.connect(tmp_path / "mydb.sqlite") as conn:
        conn.execute("CREATE TABLE sales (a INTEGER)")
        conn.execute("INSERT INTO sales VALUES (5)")
    with TestClient(create_app(home=tmp_path)) as client:
        ok(client, "CREATE TABLE t (id INTEGER, a INTEGER, y INTEGER)")
        ok(client, "INSERT INTO t VALUES (1, 1, 2), (2, 2, 4), (3, 3, 6)")
        ok(client, "CREATE VIEW v AS SELECT a FROM t")
        path = json.dumps({"path": str(tmp_path / "mydb.sqlite")})
        ok(client, f"CREATE DATABASE mydb WITH ENGINE = 'sqlite', PARAMETERS = {path}")
        yield client
    endpoint.gate.set()


def post(api: TestClient, query: str, session: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {SESSION: session} if session is not None else {}
    answer = api.post("/api/sql", json={"query": query}, headers=headers)
    return answer.status_code, answer.json()


def ok(api: TestClient, query: str, session: str | None = None) -> dict[str, Any]:
    status, body = post(api, query, session)
    assert status == 200, body
    assert "error" not in body, body
    return body


def error(api: TestClient, query: str, status: int, code: str, session: str | None = None) -> str:
    """The error message of ``query``, checked to have ``status`` and ``code``."""
    got, body = post(api, query, session)
    assert got == status, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert "syntax error" not in message, message  # never the datasource's parser
    return message


def records(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def column(body: dict[str, Any], name: str) -> list[Any]:
    return [r[name] for r in records(body)]


def predict_only(name: str, url: str, extra: str = "") -> str:
    return (
        f"CREATE MODEL {name} PREDICT y USING url.predict = '{url}/predict', "
        f'format = \'ray_serve\', dtype_dict = {{"a": "integer", "y": "integer"}}{extra}'
    )


def trained(name: str, url: str, prefix: str = "CREATE MODEL") -> str:
    return (
        f"{prefix} {name} FROM local (SELECT a, y FROM t) PREDICT y "
        f"USING url.train = '{url}/train', url.predict = '{url}/predict', format = 'ray_serve'"
    )


def status_of(api: TestClient, name: str) -> str:
    return records(ok(api, f"DESCRIBE {name}"))[0]["status"]


def wait_idle(api: TestClient) -> None:
    deadline = time.monotonic() + 30
    while api.get("/healthz").json()["training_in_flight"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)


# --- SHOW TABLES / DATABASES / ENGINES -------------------------------------------------------


def test_show_tables_of_the_default_datasource(api: TestClient) -> None:
    body = ok(api, "SHOW TABLES")
    assert body["columns"] == ["table_name"]
    assert column(body, "table_name") == ["t", "test_data.homes", "v"]
    full = records(ok(api, "show full tables"))
    assert full == [
        {"table_name": "t", "table_type": "BASE TABLE"},
        {"table_name": "test_data.homes", "table_type": "BASE TABLE"},
        {"table_name": "v", "table_type": "VIEW"},
    ]


def test_show_tables_from_a_datasource_like_and_where(api: TestClient) -> None:
    assert ok(api, "SHOW TABLES FROM mydb")["rows"] == [["sales"]]
    assert ok(api, "SHOW TABLES IN local LIKE 'TEST%'")["rows"] == [["test_data.homes"]]
    body = ok(api, "SHOW FULL TABLES WHERE table_type = 'VIEW'")
    assert body["rows"] == [["v", "VIEW"]]
    message = error(api, "SHOW TABLES WHERE kind = 'x'", 400, "INVALID_INPUT")
    assert "SHOW TABLES WHERE" in message and "no such column: kind" in message
    assert "Columns: table_name." in message


def test_show_tables_from_unknown_suggests(api: TestClient) -> None:
    message = error(api, "SHOW TABLES FROM mydbb", 404, "DATASOURCE_NOT_FOUND")
    assert "'mydbb'" in message and "Did you mean mydb?" in message


def test_describe_a_datasource_table_lists_its_columns(api: TestClient) -> None:
    ok(api, "CREATE TABLE typed (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL DEFAULT 'x')")
    body = ok(api, "DESCRIBE local.typed")
    assert body["columns"] == ["Field", "Type", "Null", "Key", "Default", "Extra"]
    assert body["rows"] == [
        ["id", "INTEGER", "YES", "PRI", None, ""],  # SQLite's INTEGER PRIMARY KEY allows NULL
        ["name", "VARCHAR(20)", "NO", "", "'x'", ""],
    ]
    assert column(ok(api, "DESCRIBE local.v"), "Field") == ["a"]  # a view
    assert column(ok(api, "DESCRIBE mydb.sales"), "Field") == ["a"]
    message = error(api, "DESCRIBE mydb.sale", 404, "TABLE_NOT_FOUND")
    assert "Table 'sale' not found in datasource 'mydb'" in message
    assert "Did you mean sales?" in message and "SHOW TABLES FROM mydb" in message


def test_show_tables_from_a_project_lists_its_models(api: TestClient, endpoint: Endpoint) -> None:
    ok(api, "CREATE PROJECT p")
    ok(api, predict_only("p.m1", endpoint.url))
    assert records(ok(api, "SHOW FULL TABLES FROM p")) == [
        {"table_name": "m1", "table_type": "MODEL"}
    ]
    tables = records(ok(api, "SHOW FULL TABLES FROM mindsdb"))
    assert {"table_name": "models", "table_type": "SYSTEM VIEW"} in tables


@pytest.mark.postgres
def test_show_tables_of_a_postgres_datasource(
    api: TestClient, postgres_params: dict[str, Any]
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import URL

    params = postgres_params
    url = URL.create(
        "postgresql+psycopg2", username=params["user"], password=params["password"],
        host=params["host"], port=params["port"], database=params["database"],
    )  # fmt: skip
    schema = params["schema"]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE IF NOT EXISTS "{schema}".surface_t (x INT)')
        conn.exec_driver_sql(
            f'CREATE OR REPLACE VIEW "{schema}".surface_v AS SELECT x FROM "{schema}".surface_t'
        )
    engine.dispose()
    ok(api, f"CREATE DATABASE pg WITH ENGINE = 'postgres', PARAMETERS = {json.dumps(params)}")
    assert ok(api, "DESCRIBE pg.surface_v")["rows"] == [["x", "INTEGER", "YES", "", None, ""]]
    shown = records(ok(api, "SHOW FULL TABLES FROM pg LIKE 'surface%'"))
    assert shown == [
        {"table_name": "surface_t", "table_type": "BASE TABLE"},
        {"table_name": "surface_v", "table_type": "VIEW"},
    ]
    # USE pg: SHOW TABLES and plain SQL go to it
    ok(api, "USE pg; INSERT INTO surface_t VALUES (7)", session="pg-session")
    assert ok(api, "SHOW TABLES LIKE 'surface_t'", session="pg-session")["rows"] == [["surface_t"]]
    assert ok(api, "SELECT x FROM surface_t", session="pg-session")["rows"] == [[7]]


def test_show_full_databases_lists_projects_and_datasources(api: TestClient) -> None:
    ok(api, "CREATE PROJECT proj")
    body = ok(api, "SHOW FULL DATABASES")
    assert body["columns"] == ["name", "type", "engine"]
    assert body["rows"] == [
        ["mindsdb", "project", None],
        ["proj", "project", None],
        ["local", "data", "sqlite"],
        ["mydb", "data", "sqlite"],
    ]
    assert ok(api, "SHOW FULL DATABASES WHERE type = 'data' AND name LIKE 'my%'")["rows"] == [
        ["mydb", "data", "sqlite"]
    ]
    # plain SHOW DATABASES keeps its answer: the datasources and their parameters
    assert ok(api, "SHOW DATABASES LIKE 'local'")["columns"] == ["name", "engine", "parameters"]


@pytest.mark.parametrize("statement", ["SHOW ENGINES", "SHOW HANDLERS"])
def test_show_engines_lists_datasource_engines_and_model_formats(
    api: TestClient, statement: str
) -> None:
    body = ok(api, statement)
    assert body["columns"] == ["name", "type", "aliases", "parameters", "description"]
    found = {r["name"]: r for r in records(body)}
    assert set(found) == {"sqlite", "postgres", "ray_serve", "mlflow"}
    assert found["postgres"]["type"] == "data" and found["postgres"]["aliases"] == "postgresql"
    assert "host" in found["postgres"]["parameters"]
    assert found["ray_serve"]["type"] == "ml" and found["ray_serve"]["aliases"] == "ray_server"
    assert "url.predict" in found["ray_serve"]["parameters"]
    assert "parquet" in found["ray_serve"]["parameters"]
    assert "MLflow" in found["mlflow"]["description"]
    assert ok(api, f"{statement} WHERE type = 'ml'")["rows"][0][0] in ("ray_serve", "mlflow")


# --- USE and sessions ------------------------------------------------------------------------


def test_use_holds_for_the_rest_of_a_script(api: TestClient) -> None:
    body = ok(api, "USE mydb; SELECT a FROM sales; SHOW TABLES")
    results = body["results"]
    assert "mydb" in results[0]["message"]
    assert results[1]["rows"] == [[5]] and results[2]["rows"] == [["sales"]]
    # a request without the header is a session of its own: back to local
    assert ok(api, "SHOW TABLES LIKE 's%'")["rows"] == []


def test_use_holds_across_requests_of_one_session(api: TestClient) -> None:
    answer = api.post("/api/sql", json={"query": "USE mydb"}, headers={SESSION: "s-1"})
    assert answer.status_code == 200 and answer.headers[SESSION] == "s-1"
    assert ok(api, "SELECT a FROM sales", session="s-1")["rows"] == [[5]]
    # another session, and no session, still read the embedded datasource
    error(api, "SELECT a FROM sales", 400, "DATASOURCE_ERROR", session="s-2")
    error(api, "SELECT a FROM sales", 400, "DATASOURCE_ERROR")
    ok(api, "USE local", session="s-1")
    assert ok(api, "SELECT count(*) FROM t", session="s-1")["rows"] == [[3]]


def test_use_unknown_datasource_suggests(api: TestClient) -> None:
    message = error(api, "USE mydbb", 404, "DATASOURCE_NOT_FOUND")
    assert "Did you mean mydb?" in message


def test_session_header_is_checked(api: TestClient) -> None:
    answer = api.post("/api/sql", json={"query": "SHOW TABLES"}, headers={SESSION: "bad id!"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "INVALID_REQUEST"
    assert SESSION in answer.json()["error"]["message"]


def test_use_project_sets_the_project_of_new_models(api: TestClient, endpoint: Endpoint) -> None:
    ok(api, "CREATE PROJECT sales_models")
    body = ok(api, f"USE sales_models; {predict_only('m', endpoint.url)}")
    assert "project 'sales_models'" in body["results"][0]["message"]
    assert records(ok(api, "DESCRIBE m"))[0]["namespace"] == "sales_models"
    # the default datasource did not change
    assert ok(api, "SELECT count(*) FROM t")["rows"] == [[3]]
    assert ok(api, "USE models")["message"] == "Using project 'mindsdb' for new models."


def test_the_server_hands_the_gateway_one_session_per_header() -> None:
    fake = FakeGateway()
    with TestClient(create_app(fake)) as client:
        for headers in ({SESSION: "a"}, {SESSION: "a"}, {}, {}, {SESSION: "b"}):
            answer = client.post("/api/sql", json={"query": "SELECT 1"}, headers=headers)
            assert answer.status_code == 200
            assert answer.headers.get(SESSION) == headers.get(SESSION)
        client.post("/api/sql", json={"query": "SELECT 1; SELECT 1"}, headers={SESSION: "a"})
    a1, a2, n1, n2, b, *script = fake.sessions
    assert a1 is a2 and a1 is script[0] is script[1] and a1.id == "a"
    assert n1 is not n2 and n1 is not None and n1.id is None
    assert b is not a1 and b.id == "b"


def test_session_store_is_bounded_and_expires() -> None:
    now = [0.0]
    store = SessionStore(capacity=2, ttl=10, clock=lambda: now[0])
    a = store.get("a")
    a.datasource = "mydb"
    assert store.get("a") is a
    store.get("b")
    store.get("c")  # a is the least recently used: forgotten
    assert len(store) == 2 and store.get("a").datasource is None
    now[0] = 100.0  # everything idle for longer than the ttl
    assert store.get("b").datasource is None and len(store) == 1
    assert Session().datasource is None and Session().project is None


def test_python_client_keeps_one_session(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "mydb.sqlite") as conn:
        conn.execute("CREATE TABLE sales (a INTEGER)")
    path = json.dumps({"path": str(tmp_path / "mydb.sqlite")})
    with serving(create_app(home=tmp_path)) as url:
        with Client(url) as client:
            client.sql(f"CREATE DATABASE mydb WITH ENGINE = 'sqlite', PARAMETERS = {path}")
            client.sql("USE mydb")
            assert client.sql("SHOW TABLES").rows == [["sales"]]
            with client.iter_sql("SELECT count(*) AS n FROM sales") as rows:
                assert list(rows.rows()) == [[0]]
        with Client(url) as other:
            assert other.session != client.session
            assert other.sql("SHOW TABLES").rows == []
        with Client(url, session="mine") as named:
            named.sql("USE mydb")
        with Client(url, session="mine") as again:
            assert again.sql("SHOW TABLES").rows == [["sales"]]


def test_cli_script_is_one_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(tmp_path / "mydb.sqlite") as conn:
        conn.execute("CREATE TABLE sales (a INTEGER)")
        conn.execute("INSERT INTO sales VALUES (9)")
    path = json.dumps({"path": str(tmp_path / "mydb.sqlite")})
    script = tmp_path / "s.sql"
    script.write_text(
        f"CREATE DATABASE mydb WITH ENGINE = 'sqlite', PARAMETERS = {path};\n"
        "USE mydb;\nSELECT a FROM sales;\n"
    )
    assert main(["sql", "-f", str(script), "--home", str(tmp_path), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["results"][2]["rows"] == [[9]]


# --- CREATE OR REPLACE / IF NOT EXISTS ---------------------------------------------------------


def test_create_if_not_exists_keeps_the_model(api: TestClient, endpoint: Endpoint) -> None:
    ok(api, predict_only("m", endpoint.url))
    before = records(ok(api, "DESCRIBE m"))[0]
    body = ok(api, predict_only("IF NOT EXISTS m", endpoint.url.replace("127", "128")))
    assert body["message"] == "Model 'mindsdb.m' already exists; nothing changed."
    assert records(ok(api, "DESCRIBE m"))[0] == before
    message = error(api, predict_only("m", endpoint.url), 409, "MODEL_EXISTS")
    assert "already exists" in message
    statement = predict_only("IF NOT EXISTS fresh", endpoint.url)
    body = ok(api, statement.replace("CREATE MODEL", "CREATE PREDICTOR"))
    assert column(body, "name") == ["fresh"]


def test_create_or_replace_replaces_and_stops_training(api: TestClient, endpoint: Endpoint) -> None:
    assert records(ok(api, trained("m", endpoint.url)))[0]["status"] == "generating"
    deadline = time.monotonic() + 10
    while status_of(api, "m") != "training":  # the train call is waiting on the gate
        assert time.monotonic() < deadline
        time.sleep(0.02)
    body = ok(
        api, predict_only("m", endpoint.url).replace("CREATE MODEL", "CREATE OR REPLACE PREDICTOR")
    )
    assert records(body)[0]["status"] == "complete" and records(body)[0]["url_train"] is None
    assert api.get("/healthz").json()["training_in_flight"] == []
    assert ok(api, "SELECT * FROM mindsdb.jobs")["rows"] == []  # the old model's history went
    assert ok(api, "SELECT y FROM m WHERE a = 4")["rows"] == [[8]]
    # replacing a model that does not exist just creates it
    ok(api, predict_only("other", endpoint.url).replace("CREATE", "CREATE OR REPLACE"))
    assert status_of(api, "other") == "complete"


def test_a_bad_replacement_keeps_the_old_model(api: TestClient, endpoint: Endpoint) -> None:
    ok(api, predict_only("m", endpoint.url))
    bad = trained("m", endpoint.url, "CREATE OR REPLACE MODEL").replace("SELECT a", "SELECT nope")
    error(api, bad, 400, "DATASOURCE_ERROR")
    missing = trained("m", endpoint.url, "CREATE OR REPLACE MODEL").replace("local", "nowhere")
    error(api, missing, 404, "DATASOURCE_NOT_FOUND")
    assert records(ok(api, "DESCRIBE m"))[0]["url_train"] is None  # still the first one
    assert ok(api, "SELECT y FROM m WHERE a = 1")["rows"] == [[2]]


def test_drop_model_stops_its_training(api: TestClient, endpoint: Endpoint) -> None:
    ok(api, trained("m", endpoint.url))
    assert ok(api, "DROP MODEL m")["message"] == "Model 'm' dropped."
    assert api.get("/healthz").json()["training_in_flight"] == []
    error(api, "DESCRIBE m", 404, "MODEL_NOT_FOUND")


def test_or_replace_and_if_not_exists_together_is_a_parse_error(api: TestClient) -> None:
    message = error(api, "CREATE OR REPLACE MODEL IF NOT EXISTS m", 400, "PARSE_ERROR")
    assert "contradict" in message


# --- SHOW MODELS --------------------------------------------------------------------------------


def test_show_models_from_like_where(api: TestClient, endpoint: Endpoint) -> None:
    ok(api, "CREATE PROJECT p")
    for name in ("mindsdb.alpha", "beta", "p.gamma"):
        ok(api, predict_only(name, endpoint.url))
    assert column(ok(api, "SHOW MODELS"), "name") == ["alpha", "beta", "gamma"]
    assert column(ok(api, "SHOW PREDICTORS FROM p"), "name") == ["gamma"]
    assert column(ok(api, "SHOW MODELS FROM models"), "name") == ["alpha", "beta"]
    assert column(ok(api, "SHOW MODELS LIKE 'B%'"), "name") == ["beta"]
    body = ok(api, "SHOW MODELS FROM mindsdb LIKE '%a' WHERE status = 'complete' AND name <> 'x'")
    assert column(body, "name") == ["alpha", "beta"]
    assert column(ok(api, "SHOW MODELS WHERE namespace = 'p'"), "name") == ["gamma"]
    message = error(api, "SHOW MODELS WHERE acuracy > 1", 400, "INVALID_INPUT")
    assert "SHOW MODELS WHERE" in message and "Columns: name, namespace" in message
    message = error(api, "SHOW MODELS FROM pp", 404, "PROJECT_NOT_FOUND")
    assert "Did you mean p?" in message


# --- projects -----------------------------------------------------------------------------------


def test_projects_lifecycle(api: TestClient, endpoint: Endpoint) -> None:
    created = records(ok(api, "CREATE PROJECT Proj"))
    assert created[0]["name"] == "proj" and created[0]["models"] == 0
    assert ok(api, "CREATE PROJECT IF NOT EXISTS proj")["message"].endswith("nothing changed.")
    assert "already exists" in error(api, "CREATE PROJECT proj", 409, "PROJECT_EXISTS")
    assert "already exists" in error(api, "CREATE PROJECT models", 409, "PROJECT_EXISTS")
    ok(api, predict_only("proj.m", endpoint.url))
    shown = records(ok(api, "SHOW PROJECTS"))
    assert [(p["name"], p["models"]) for p in shown] == [("mindsdb", 0), ("proj", 1)]
    assert ok(api, "SELECT name FROM mindsdb.projects WHERE name = 'proj'")["rows"] == [["proj"]]
    message = error(api, "DROP PROJECT proj", 400, "PROJECT_NOT_EMPTY")
    assert "proj.m" in message
    message = error(api, "DROP PROJECT mindsdb", 400, "INVALID_INPUT")
    assert "default project" in message
    error(api, "DROP PROJECT model", 400, "INVALID_INPUT")
    ok(api, "DROP MODEL proj.m")
    assert ok(api, "DROP PROJECT proj")["message"] == "Project 'proj' dropped."
    assert "does not exist" in ok(api, "DROP PROJECT IF EXISTS proj")["message"]
    message = error(api, "DROP PROJECT projj", 404, "PROJECT_NOT_FOUND")
    assert "'projj'" in message


def test_drop_database_of_a_project_drops_the_project(api: TestClient) -> None:
    ok(api, "CREATE PROJECT scratch")
    assert ok(api, "DROP DATABASE scratch")["message"] == "Project 'scratch' dropped."


def test_project_and_datasource_names_stay_apart(api: TestClient) -> None:
    message = error(api, "CREATE PROJECT mydb", 400, "INVALID_INPUT")
    assert "datasource" in message and "mydb" in message
    ok(api, "CREATE PROJECT p")
    message = error(
        api,
        'CREATE DATABASE p WITH ENGINE = \'sqlite\', PARAMETERS = {"path": "/tmp/x.db"}',
        400,
        "INVALID_INPUT",
    )
    assert "project" in message


def test_create_model_in_unknown_project_suggests(api: TestClient, endpoint: Endpoint) -> None:
    message = error(api, predict_only("mindbs.m", endpoint.url), 404, "PROJECT_NOT_FOUND")
    assert message == "Project 'mindbs' not found. Did you mean mindsdb? See SHOW PROJECTS."
    _, body = post(api, predict_only("mindbs.m", endpoint.url))
    assert body["error"]["suggestion"] == "mindsdb"


def test_model_names_are_unique_across_projects(api: TestClient, endpoint: Endpoint) -> None:
    ok(api, "CREATE PROJECT p1; CREATE PROJECT p2")
    ok(api, predict_only("p1.m", endpoint.url))
    for statement in (predict_only("p2.m", endpoint.url), predict_only("m", endpoint.url)):
        message = error(api, statement, 409, "MODEL_EXISTS")
        assert "in project 'p1'" in message and "unique across projects" in message
    message = error(api, predict_only("IF NOT EXISTS p2.m", endpoint.url), 409, "MODEL_EXISTS")
    assert "p1" in message


def test_a_model_is_used_through_its_project(api: TestClient, endpoint: Endpoint) -> None:
    ok(api, "CREATE PROJECT p1; CREATE PROJECT p2")
    ok(api, predict_only("p1.m", endpoint.url))
    assert ok(api, "SELECT y FROM p1.m WHERE a = 2")["rows"] == [[4]]
    assert ok(api, "SELECT y FROM m WHERE a = 3")["rows"] == [[6]]  # unqualified: unique
    body = ok(api, "SELECT t.id, p.y FROM local.t AS t JOIN p1.m AS p ORDER BY t.id")
    assert body["rows"] == [[1, 2], [2, 4], [3, 6]]
    assert records(ok(api, "DESCRIBE p1.m"))[0]["namespace"] == "p1"
    for statement in ("SELECT y FROM p2.m WHERE a = 1", "DESCRIBE p2.m", "DROP MODEL mindsdb.m"):
        message = error(api, statement, 404, "MODEL_NOT_FOUND")
        assert "is in project 'p1'" in message and "p1.m" in message
    message = error(api, "SELECT y FROM p2.mm WHERE a = 1", 404, "MODEL_NOT_FOUND")
    assert "Did you mean m?" in message
    error(api, "DESCRIBE nope.m", 404, "PROJECT_NOT_FOUND")
    error(api, "DROP MODEL nope.m", 404, "PROJECT_NOT_FOUND")
    assert ok(api, "DROP MODEL p1.m")["message"] == "Model 'm' dropped."


# --- DESCRIBE m.features / m.model ---------------------------------------------------------------


def test_describe_features_and_model(api: TestClient, endpoint: Endpoint) -> None:
    ok(api, "CREATE PROJECT p")
    ok(api, predict_only("p.m", endpoint.url, ", payload = 'parquet'"))
    features = ok(api, "DESCRIBE m.features")
    assert features["columns"] == ["column", "type", "role"]
    assert features["rows"] == [["a", "integer", "feature"], ["y", "integer", "target"]]
    assert ok(api, "DESCRIBE p.m.features") == features
    detail = records(ok(api, "DESCRIBE PREDICTOR p.m.model"))[0]
    assert (detail["name"], detail["project"], detail["kind"], detail["format"]) == (
        "m",
        "p",
        "external",
        "ray_serve",
    )
    assert detail["url_predict"] == f"{endpoint.url}/predict" and detail["status"] == "complete"
    assert detail["options"] == {"payload": "parquet"}  # a JSON object, not a string
    assert records(ok(api, "DESCRIBE m.model")) == [detail]
    message = error(api, "DESCRIBE m.metrics", 400, "INVALID_INPUT")
    assert "features" in message and "model" in message and "'metrics'" in message
    message = error(api, "DESCRIBE mm.features", 404, "MODEL_NOT_FOUND")
    assert "Did you mean m?" in message


def test_describe_features_adds_a_target_missing_from_dtype_dict(
    api: TestClient, endpoint: Endpoint
) -> None:
    ok(api, f"CREATE MODEL m PREDICT z USING url.predict = '{endpoint.url}/p', format = 'mlflow'")
    assert ok(api, "DESCRIBE m.features")["rows"] == [["z", None, "target"]]


# --- other products' forms ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "named", "native"),
    [
        (
            "SELECT pgml.train('p', 'regression', 't', 'y')",
            "pgml.train is PostgresML's",
            "CREATE MODEL m FROM ds",
        ),
        (
            "SELECT pgml.predict_batch('p', ARRAY[1, 2])",
            "pgml.predict_batch is PostgresML's",
            "SELECT * FROM m WHERE",
        ),
        (
            "SELECT * FROM pgml.predict_joint('p', ARRAY[1])",
            "pgml.predict_joint is PostgresML's",
            "JOIN m AS p",
        ),
        (
            "INSERT INTO t SELECT pgml.predict('p', a) FROM t",
            "pgml.predict is PostgresML's",
            "SELECT pgml.predict('project', 'text') [AS name] [FROM ...]",
        ),
        (
            "SELECT pgml.deploy('p', 'best_score')",
            "pgml.deploy is PostgresML's",
            "UPDATE models SET active = true",
        ),
        ("SELECT pgml.whatever(1)", "pgml.whatever is PostgresML's", "CREATE MODEL"),
        (
            "CALL sys.ML_EXPLAIN_TABLE('db.t', @m, 'db.out', NULL)",
            "sys.ML_EXPLAIN_TABLE is MySQL HeatWave's",
            "translates ML_TRAIN",
        ),
        (
            "call sys.ml_score('db.t', 'y', @m, 'accuracy', @s, NULL)",
            "sys.ML_SCORE is MySQL HeatWave's",
            "ML_PREDICT_TABLE",
        ),
        (
            "CALL sys.ML_PREDICT_ROW('{\"a\": 1}', @m, NULL)",
            "sys.ML_PREDICT_ROW is a MySQL HeatWave function",
            "SELECT sys.ML_PREDICT_ROW(",
        ),
        (
            "SELECT t.a, sys.ML_PREDICT_ROW(JSON_OBJECT('a', t.a), @m, NULL) FROM t",
            "sys.ML_PREDICT_ROW is MySQL HeatWave's",
            "JOIN m AS p",
        ),
        ("SET @@autocommit = 1", "@@autocommit is a MySQL system variable", "per session"),
        (
            "SHOW MODELS FROM ML_SCHEMA_user1",
            "ML_SCHEMA_user1 is MySQL HeatWave's",
            "SHOW TABLES FROM ML_SCHEMA_user1",
        ),
        (
            "DELETE FROM ML_SCHEMA_user1.MODEL_CATALOG WHERE model_id = 1",
            "MODEL_CATALOG is MySQL HeatWave's model catalog",
            "DROP MODEL",
        ),
        ("CALL refresh_sales(1)", "CALL refresh_sales runs a stored procedure", "not support"),
        ("SHOW COLUMNS FROM t", "SHOW COLUMNS is not supported", "SHOW [FULL] TABLES"),
        ("SHOW search_path", "SHOW search_path is not a statement of the gateway", "SQLite"),
    ],
)
def test_other_products_forms_are_refused_by_name(
    api: TestClient, statement: str, named: str, native: str
) -> None:
    message = error(api, statement, 400, "UNSUPPORTED_STATEMENT")
    assert named in message and native in message
    assert message.endswith(".") and not message.endswith("..")


def test_a_script_with_a_foreign_form_runs_nothing(api: TestClient) -> None:
    _, body = post(api, "INSERT INTO t VALUES (9, 9, 9);\nCALL sys.ML_EXPLAIN('t', 'y', @m, NULL)")
    assert body["error"]["code"] == "UNSUPPORTED_STATEMENT"
    assert body["error"]["statement"] == 2 and body["error"]["done"] == []
    assert body["error"]["message"].startswith("Statement 2: sys.ML_EXPLAIN")
    assert ok(api, "SELECT count(*) FROM t")["rows"] == [[3]]


def test_pgml_tables_are_plain_sql(api: TestClient) -> None:
    # only pgml's functions are refused: a schema named pgml is read as any other
    error(api, "SELECT * FROM pgml.kde4", 400, "DATASOURCE_ERROR")


# --- did-you-mean -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "suggestion"),
    [
        ("CREATE PROJECTS p", "PROJECT"),
        ("CREATE PROJET p", "PROJECT"),
        ("DROP PROJECTS p", "PROJECT"),
        ("CREATE PREDICTORS m", "PREDICTOR"),
        ("SHOW PROJECT", "PROJECTS"),
        ("SHOW DATABASE", "DATABASES"),
        ("SHOW TABLE", "TABLES"),
        ("SHOW ENGINE", "ENGINES"),
        ("SHOW HANDLRES", "HANDLERS"),
        ("SHOW FULL TABLE", "TABLES"),
        ("CREATE ENGINES x", None),
        ("DROP HANDLERS x", None),
    ],
)
def test_did_you_mean_stays_within_a_statement_kind(
    api: TestClient, statement: str, suggestion: str | None
) -> None:
    _, body = post(api, statement)
    assert body["error"]["code"] == "PARSE_ERROR"
    assert body["error"].get("suggestion") == suggestion
    assert "Unknown statement" in body["error"]["message"]


def test_client_errors_for_new_codes_keep_their_family(tmp_path: Path) -> None:
    with serving(create_app(home=tmp_path)) as url, Client(url) as client:
        with pytest.raises(NotFound) as info:
            client.sql("SHOW MODELS FROM nope")
        assert info.value.code == "PROJECT_NOT_FOUND"
        client.sql("CREATE PROJECT p")
        with pytest.raises(GatewayError) as exists:
            client.sql("CREATE PROJECT p")
        assert exists.value.code == "PROJECT_EXISTS" and exists.value.status == 409
