"""Qualified column names (``ds.table.column``, ``ds.schema.table.column``) through the HTTP
API, on a real SQLite and a real PostgreSQL datasource named ``mldb``.

The datasource's own name is removed from every column reference of a statement sent to it
(pass-through, a JOIN's table side, write-back, a training query), as it already was from
table names; the datasource's own ``schema.table.column`` reaches it as written. What the
datasource received is read from SQLAlchemy's ``before_cursor_execute`` event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from gateway.server import create_app
from tests.e2e import recording_model

RATINGS = [("u1", "m1", 5), ("u2", "m1", 2), ("u3", "m2", 4), ("u1", "m3", 3), ("u4", "m2", 1)]
RENTALS = [(3000, 5400, 2), (1200, 5200, 1), (4100, 6100, 3), (2500, 5301, 2)]


@pytest.fixture(scope="module")
def model() -> Iterator[recording_model.Recording]:
    with recording_model.running() as recording:
        yield recording


@pytest.fixture(params=["sqlite", "postgres"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, model: recording_model.Recording
) -> Iterator[tuple[TestClient, str, list[str]]]:
    """(api, schema holding home_rentals, statements the datasource ``mldb`` received)."""
    model.clear()
    with TestClient(create_app(home=tmp_path)) as api:
        if request.param == "sqlite":
            for name in ("mldb.sqlite", "test_data.sqlite"):
                (tmp_path / name).touch()  # datasource files must exist: never created
            params: dict[str, Any] = {
                "path": str(tmp_path / "mldb.sqlite"),
                "attach": {"test_data": str(tmp_path / "test_data.sqlite")},
            }
            run(api, f"CREATE DATABASE mldb WITH ENGINE='sqlite', PARAMETERS={json.dumps(params)}")
            schema = "test_data"
        else:
            params = request.getfixturevalue("postgres_params")
            run(
                api, f"CREATE DATABASE mldb WITH ENGINE='postgres', PARAMETERS={json.dumps(params)}"
            )
            schema = params["schema"]  # also the search_path: mldb.movie_rating is in it
            run(api, f"DROP TABLE IF EXISTS mldb.{schema}.home_rentals, mldb.movie_rating")
            run(api, "DROP TABLE IF EXISTS mldb.preds")
        run(api, "CREATE TABLE mldb.movie_rating (user_id TEXT, movie_id TEXT, rating INTEGER)")
        values = ", ".join(f"('{u}', '{m}', {r})" for u, m, r in RATINGS)
        run(api, f"INSERT INTO mldb.movie_rating VALUES {values}")
        run(
            api,
            f"CREATE TABLE mldb.{schema}.home_rentals "
            "(initial_price INTEGER, rental_price INTEGER, number_of_rooms INTEGER)",
        )
        values = ", ".join(f"({a}, {b}, {c})" for a, b, c in RENTALS)
        run(api, f"INSERT INTO mldb.{schema}.home_rentals VALUES {values}")
        run(
            api,
            f"CREATE MODEL dbl PREDICT y USING url.predict='{model.url}/predict', "
            'format=\'ray_serve\', dtype_dict={"initial_price": "integer", "y": "integer"}',
        )
        engine = api.app.state.gateway.services.datasource("mldb").sa_engine
        received: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            received.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            yield api, schema, received
        finally:
            event.remove(engine, "before_cursor_execute", record)


def run(api: TestClient, query: str, status: int = 200) -> dict[str, Any]:
    response = api.post("/api/sql", json={"query": query})
    assert response.status_code == status, response.text
    return response.json()


def test_seed_statement_verbatim(env: tuple[TestClient, str, list[str]]) -> None:
    api, _, received = env
    body = run(
        api,
        "SELECT user_id AS user_id, movie_id AS item_id FROM mldb.movie_rating "
        "WHERE mldb.movie_rating.rating > 3",
    )
    assert body["columns"] == ["user_id", "item_id"]
    assert sorted(map(tuple, body["rows"])) == [("u1", "m1"), ("u3", "m2")]
    assert "movie_rating.rating > 3" in received[-1]
    assert "mldb." not in received[-1]


def test_qualified_select_list_group_by_order_by_and_subquery(
    env: tuple[TestClient, str, list[str]],
) -> None:
    api, _, _ = env
    body = run(api, "SELECT mldb.movie_rating.user_id FROM mldb.movie_rating ORDER BY 1")
    assert body["rows"] == [["u1"], ["u1"], ["u2"], ["u3"], ["u4"]]
    body = run(
        api,
        "SELECT mldb.movie_rating.movie_id, count(*) AS n FROM mldb.movie_rating "
        "WHERE mldb.movie_rating.user_id IN (SELECT mldb.r.user_id FROM mldb.movie_rating AS r "
        "WHERE r.rating >= 3) GROUP BY mldb.movie_rating.movie_id "
        "ORDER BY mldb.movie_rating.movie_id",
    )
    assert body["rows"] == [["m1", 1], ["m2", 1], ["m3", 1]]


def test_four_part_names_and_the_databases_own_three_part_names(
    env: tuple[TestClient, str, list[str]],
) -> None:
    api, schema, received = env
    table = f"mldb.{schema}.home_rentals"
    body = run(
        api,
        f"SELECT {table}.rental_price FROM {table} WHERE {table}.rental_price > 5300 "
        f"ORDER BY {table}.rental_price",
    )
    assert body["rows"] == [[5301], [5400], [6100]]
    assert f"{schema}.home_rentals.rental_price > 5300" in received[-1]
    # schema.table.column is the database's own syntax: kept as written
    body = run(
        api,
        f"SELECT {schema}.home_rentals.initial_price FROM {table} "
        f"WHERE {schema}.home_rentals.number_of_rooms = 3",
    )
    assert body["rows"] == [[4100]]


def test_join_table_side_without_alias(env: tuple[TestClient, str, list[str]]) -> None:
    api, schema, received = env
    table = f"mldb.{schema}.home_rentals"
    body = run(
        api,
        f"SELECT tb.y, {table}.rental_price FROM {table} JOIN mindsdb.dbl AS tb "
        f"WHERE {table}.rental_price > 5300 ORDER BY {table}.rental_price DESC",
    )
    assert body["columns"] == ["y", "rental_price"]
    assert body["rows"] == [[8200, 6100], [6000, 5400], [5000, 5301]]
    source = [s for s in received if "home_rentals" in s and "rental_price >" in s][-1]
    assert "mldb." not in source


def test_write_back_with_qualified_columns(env: tuple[TestClient, str, list[str]]) -> None:
    api, schema, _ = env
    table = f"mldb.{schema}.home_rentals"
    run(
        api,
        f"CREATE TABLE mldb.preds AS SELECT {table}.number_of_rooms, p.y FROM {table} "
        f"JOIN dbl AS p WHERE {table}.initial_price >= 2500",
    )
    body = run(api, "SELECT mldb.preds.number_of_rooms, y FROM mldb.preds ORDER BY y")
    assert body["rows"] == [[2, 5000], [2, 6000], [3, 8200]]


def test_training_query_naming_its_own_datasource(
    env: tuple[TestClient, str, list[str]], model: recording_model.Recording
) -> None:
    api, _, _ = env
    body = run(
        api,
        "CREATE PREDICTOR rec FROM mldb (SELECT user_id AS user_id, movie_id AS item_id, "
        "mldb.movie_rating.rating FROM mldb.movie_rating WHERE mldb.movie_rating.rating > 3) "
        f"PREDICT rating USING url.train='{model.url}/train', url.predict='{model.url}/predict', "
        "format='ray_serve'",
    )
    row = dict(zip(body["columns"], body["rows"][0], strict=True))
    assert row["status"] == "generating"
    assert row["training_query"] == (
        "SELECT user_id AS user_id, movie_id AS item_id, movie_rating.rating FROM movie_rating "
        "WHERE movie_rating.rating > 3"
    )
    deadline = time.monotonic() + 30
    while True:  # training runs in the background
        described = api.get("/api/predictors/rec").json()
        if described["status"] not in ("generating", "training") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (described["status"], described["error"]) == ("complete", None)
    assert len(model.trained) == 1
    assert model.trained[0]["target"] == "rating"
    assert sorted(r["user_id"] for r in model.trained[0]["rows"]) == ["u1", "u3"]
