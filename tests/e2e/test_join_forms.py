"""Every JOIN form of issue 3 against SQLite and PostgreSQL, through the HTTP API.

The model is ``bad_endpoint``'s ``/doubler`` (a real HTTP ray_serve endpoint answering
``2 * first column``), so each expected prediction is computable here. What the datasource
received is read from SQLAlchemy's ``before_cursor_execute`` event on the datasource's own
engine: that is the statement and the bound parameters handed to the database driver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from gateway.server import create_app
from tests.e2e import bad_endpoint

pytestmark = pytest.mark.slow

N = 120  # rows in the source table: id 1..N, a = id * 10, grp = 'g' || (id % 3)


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    with bad_endpoint.running() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, model_url: str
) -> Iterator[tuple[TestClient, str, list[tuple[str, Any]]]]:
    """(api, qualified source table, list of (sql, params) the datasource received)."""
    with TestClient(create_app(home=tmp_path)) as api:
        if request.param == "sqlite":
            ds, table = "local", "local.src"
            run(api, "CREATE TABLE src (id INTEGER, a INTEGER, grp TEXT)")
        else:
            params = request.getfixturevalue("postgres_params")
            run(api, f"CREATE DATABASE pg WITH ENGINE='postgres', PARAMETERS={json.dumps(params)}")
            ds, table = "pg", f"pg.{params['schema']}.src"
            # the schema lives for the whole session: start each test from empty tables
            run(api, f"DROP TABLE IF EXISTS {table}, pg.{params['schema']}.preds")
            run(api, f"CREATE TABLE {table} (id INTEGER, a INTEGER, grp TEXT)")
        values = ", ".join(f"({i}, {i * 10}, 'g{i % 3}')" for i in range(1, N + 1))
        run(api, f"INSERT INTO {table} VALUES {values}")
        for name in ("dbl", "dbl2"):
            run(
                api,
                f"CREATE MODEL {name} PREDICT y USING url.predict='{model_url}/doubler', "
                'format=\'ray_serve\', dtype_dict={"a": "integer", "y": "integer"}',
            )
        gateway = api.app.state.gateway
        engine = gateway.services.datasource(ds).sa_engine
        received: list[tuple[str, Any]] = []

        def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            received.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", record)
        try:
            yield api, table, received
        finally:
            event.remove(engine, "before_cursor_execute", record)


def run(api: TestClient, query: str, status: int = 200) -> dict[str, Any]:
    response = api.post("/api/sql", json={"query": query})
    assert response.status_code == status, response.text
    return response.json()


def selects(received: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(s, p) for s, p in received if s.lstrip().upper().startswith("SELECT T.")]


def test_where_limit_columns_pushed_down(env: tuple[TestClient, str, list]) -> None:
    api, table, received = env
    body = run(
        api,
        f"SELECT t.id, p.y FROM {table} AS t JOIN dbl AS p "
        "WHERE t.a > 300 AND t.grp = 'g1' ORDER BY t.id DESC LIMIT 7",
    )
    expected_ids = sorted((i for i in range(31, N + 1) if i % 3 == 1), reverse=True)[:7]
    assert body["rows"] == [[i, 2 * i * 10] for i in expected_ids]
    [(sql, params)] = selects(received)
    # only the needed columns, the WHERE with bound values, ORDER BY and LIMIT all went down
    assert '"id"' in sql and '"a"' in sql and "grp" not in sql.split("FROM")[0]
    assert "> 300" not in sql and "'g1'" not in sql
    assert "ORDER BY" in sql.upper() and "LIMIT 7" in sql.upper()
    values = list(params.values()) if isinstance(params, dict) else list(params)
    assert 300 in values and "g1" in values


def test_where_on_model_output_applied_after_prediction(env: tuple[TestClient, str, list]) -> None:
    api, table, received = env
    body = run(
        api,
        f"SELECT t.id, p.y FROM {table} AS t JOIN dbl AS p "
        "WHERE p.y >= 1000 AND t.grp <> 'g0' LIMIT 4 USING batch_size=16",
    )
    expected = [i for i in range(1, N + 1) if 20 * i >= 1000 and i % 3 != 0][:4]
    assert body["rows"] == [[i, 20 * i] for i in expected]
    [(sql, _)] = selects(received)
    assert "LIMIT" not in sql.upper()  # a post-filter drops rows, so LIMIT stays here


def test_limit_is_exact_with_subquery_table_side(env: tuple[TestClient, str, list]) -> None:
    api, table, _ = env
    for limit in (0, 1, 5, 50):
        body = run(
            api,
            f"SELECT t.id, p.y FROM (SELECT id, a FROM {table} WHERE id > 10) AS t "
            f"JOIN dbl AS p LIMIT {limit} USING batch_size=3, concurrency=2",
        )
        assert [r[0] for r in body["rows"]] == list(range(11, 11 + limit))


def test_two_predictors_and_order_under_concurrency(env: tuple[TestClient, str, list]) -> None:
    api, table, _ = env
    body = run(
        api,
        f"SELECT t.id, a.y AS first, b.y AS second FROM {table} AS t JOIN dbl AS a "
        "JOIN mindsdb.dbl2 AS b ORDER BY t.id USING batch_size=7, concurrency=4",
    )
    assert body["columns"] == ["id", "first", "second"]
    assert body["rows"] == [[i, 20 * i, 20 * i] for i in range(1, N + 1)]


def test_write_back_create_and_insert(env: tuple[TestClient, str, list]) -> None:
    api, table, _ = env
    target = table.rsplit(".", 1)[0] + ".preds"
    answer = run(
        api,
        f"CREATE TABLE {target} AS SELECT t.id, p.y FROM {table} AS t JOIN dbl AS p "
        "WHERE t.id <= 50 USING batch_size=20",
    )
    assert answer["rows"][0][0] == 50
    answer = run(
        api,
        f"INSERT INTO {target} (id, y) SELECT t.id, p.y FROM {table} AS t JOIN dbl AS p "
        "WHERE t.id > 100",
    )
    assert answer["rows"][0][0] == N - 100
    rows = run(api, f"SELECT id, y FROM {target} ORDER BY id")["rows"]
    expected = [i for i in range(1, N + 1) if i <= 50 or i > 100]
    assert rows == [[i, 20 * i] for i in expected]
    # a second CREATE of the same table is refused and changes nothing
    error = run(
        api, f"CREATE TABLE {target} AS SELECT t.id, p.y FROM {table} AS t JOIN dbl AS p", 400
    )
    assert error["error"]["code"] == "DATASOURCE_ERROR"
    assert len(run(api, f"SELECT id FROM {target}")["rows"]) == len(expected)


def test_endpoint_error_part_way_aborts_cleanly(
    env: tuple[TestClient, str, list], model_url: str
) -> None:
    api, table, _ = env
    run(
        api,
        f"CREATE MODEL broken PREDICT y USING url.predict='{model_url}/wrong_count', "
        "format='ray_serve'",
    )
    body = run(api, f"SELECT t.id, p.y FROM {table} AS t JOIN broken AS p USING batch_size=50", 502)
    assert body["error"]["code"] == "ENDPOINT_BAD_RESPONSE"
    assert "rows 1-50" in body["error"]["message"]
    pool = api.app.state.gateway.services.datasources
    for ds in pool._open.values():
        assert ds.sa_engine.pool.checkedout() == 0  # no leaked connection
    assert run(api, f"SELECT count(*) FROM {table}")["rows"] == [[N]]  # still serving


def test_progress_is_recorded(env: tuple[TestClient, str, list]) -> None:
    api, table, _ = env
    response = api.post(
        "/api/sql",
        json={"query": f"SELECT t.id, p.y FROM {table} AS t JOIN dbl AS p", "query_id": "job-1"},
    )
    assert response.status_code == 200
    progress = api.get("/api/queries/job-1").json()
    assert progress["status"] == "done"
    assert progress["rows_done"] == N and progress["rows_total"] == N
    listed = run(api, "SELECT id, status, rows_done FROM mindsdb.queries WHERE id = 'job-1'")
    assert listed["rows"] == [["job-1", "done", N]]


def test_datasource_error_part_way_aborts_cleanly(
    env: tuple[TestClient, str, list], request: pytest.FixtureRequest
) -> None:
    api, table, _ = env
    # The source fails at row 60 only, after earlier batches were already predicted.
    failing = (
        "100 / (id - 60)"
        if table.startswith("pg.")
        else "CAST(json(CASE WHEN id = 60 THEN 'not json' ELSE '1' END) AS INTEGER)"
    )
    response = api.post(
        "/api/sql",
        json={
            # no ORDER BY: sorting would evaluate every row before the first is returned
            "query": f"SELECT t.id, p.y FROM (SELECT {failing} AS a, id FROM {table}) AS t "
            "JOIN dbl AS p USING batch_size=10, concurrency=2"
        },
    )
    body = response.json()
    # Headers were sent with the first batch, so the error ends the streamed document.
    assert response.status_code == 200, body
    assert body["error"]["code"] == "DATASOURCE_ERROR"
    assert len(body["rows"]) < 60
    pool = api.app.state.gateway.services.datasources
    for ds in pool._open.values():
        assert ds.sa_engine.pool.checkedout() == 0
    assert run(api, f"SELECT count(*) FROM {table}")["rows"] == [[N]]
