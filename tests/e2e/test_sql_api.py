"""The whole data path through the HTTP API: SQL in, real Ray Serve / MLflow models out.

Every test drives the FastAPI app in-process (``TestClient`` runs its lifespan, so the real
``Gateway`` with its catalog, datasources and adapters is behind it) against real model
servers: the example Ray Serve deployment and ``mlflow models serve``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow.pyfunc
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from datasources import embedded_schema_path
from gateway.processes import Service, free_port, load_example
from gateway.server import create_app
from tests.e2e import bad_endpoint

pytestmark = pytest.mark.slow

DTYPES = '{"number_of_rooms": "categorical", "initial_price": "integer", "rental_price": "integer"}'


@pytest.fixture(scope="module")
def home_rentals() -> pd.DataFrame:
    return load_example("home_rentals").generate(400, seed=7)


@pytest.fixture
def api(tmp_path: Path, home_rentals: pd.DataFrame) -> Iterator[TestClient]:
    """A gateway on a fresh home whose embedded datasource has test_data.home_rentals."""
    path = embedded_schema_path(tmp_path, "test_data")
    import sqlite3

    with sqlite3.connect(path) as conn:
        home_rentals.to_sql("home_rentals", conn, index=False)
    with TestClient(create_app(home=tmp_path)) as client:
        yield client


@pytest.fixture(scope="module")
def bad_url() -> Iterator[str]:
    with bad_endpoint.running() as url:
        yield url


def sql(api: TestClient, query: str, status: int = 200) -> dict[str, Any]:
    response = api.post("/api/sql", json={"query": query})
    assert response.status_code == status, response.text
    return response.json()


def records(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def wait_status(api: TestClient, name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        row = records(sql(api, f"DESCRIBE {name}"))[0]
        if row["status"] not in ("generating", "training"):
            return row
        assert time.monotonic() < deadline, f"{name} still {row['status']}"
        time.sleep(0.1)


def train_byom(api: TestClient, ray: Service, name: str = "byom") -> dict[str, Any]:
    body = sql(
        api,
        f"""CREATE PREDICTOR {name}
        FROM local (
            SELECT number_of_rooms, initial_price, rental_price
            FROM test_data.home_rentals
        ) PREDICT number_of_rooms
        USING
        url.train = '{ray.url}/train',
        url.predict = '{ray.url}/predict',
        dtype_dict={DTYPES},
        format='ray_server';""",
    )
    assert records(body)[0]["status"] == "generating"  # returns at once, trains in background
    return wait_status(api, name)


def direct_predict(url: str, frame: pd.DataFrame) -> dict[str, list[Any]]:
    """What the Ray Serve model itself answers for these rows, bypassing the gateway."""
    payload = {"df": frame.to_json(orient="records")}
    answer = httpx.post(f"{url}/predict", json=payload, timeout=30)
    answer.raise_for_status()
    return answer.json()


def test_spec_ray_serve_flow(
    api: TestClient, ray_serve_example: Service, home_rentals: pd.DataFrame
) -> None:
    described = train_byom(api, ray_serve_example)
    assert described["status"] == "complete", described["error"]
    assert described["dtype_dict"]["initial_price"] == "integer"  # an object, not a string

    one = records(sql(api, "SELECT * FROM byom WHERE initial_price=3000 AND rental_price=3000;"))
    expected = direct_predict(
        ray_serve_example.url, pd.DataFrame([{"initial_price": 3000, "rental_price": 3000}])
    )
    assert one == [
        {
            "initial_price": 3000,
            "rental_price": 3000,
            "number_of_rooms": expected["prediction"][0],
            "confidence": expected["confidence"][0],
        }
    ]

    body = sql(
        api,
        """SELECT tb.number_of_rooms, t.rental_price
        FROM local.test_data.home_rentals AS t JOIN mindsdb.byom AS tb
        WHERE t.rental_price > 5300;""",
    )
    assert body["columns"] == ["number_of_rooms", "rental_price"]
    source = home_rentals[home_rentals.rental_price > 5300]
    assert len(source) > 0
    assert [r[1] for r in body["rows"]] == source.rental_price.tolist()  # source order kept
    direct = direct_predict(ray_serve_example.url, source[["initial_price", "rental_price"]])
    assert [r[0] for r in body["rows"]] == direct["prediction"]

    # the catalog itself is queryable with SELECT
    models = sql(api, "SELECT name, status, format FROM mindsdb.models WHERE name = 'byom'")
    assert models["rows"] == [["byom", "complete", "ray_serve"]]
    jobs = sql(api, "SELECT model, status, rows FROM mindsdb.jobs")
    assert jobs["rows"] == [["byom", "complete", len(home_rentals)]]


def test_join_batches_concurrently_and_keeps_order(
    api: TestClient, ray_serve_example: Service, home_rentals: pd.DataFrame
) -> None:
    assert train_byom(api, ray_serve_example)["status"] == "complete"
    body = sql(
        api,
        """SELECT t.initial_price, t.rental_price, p.number_of_rooms, p.confidence
        FROM local.test_data.home_rentals AS t JOIN byom AS p
        USING batch_size = 37, concurrency = 3""",
    )
    assert len(body["rows"]) == len(home_rentals)
    assert [r[0] for r in body["rows"]] == home_rentals.initial_price.tolist()
    direct = direct_predict(ray_serve_example.url, home_rentals[["initial_price", "rental_price"]])
    assert [r[2] for r in body["rows"]] == direct["prediction"]
    assert [r[3] for r in body["rows"]] == pytest.approx(direct["confidence"])


def test_mlflow_predictor(
    api: TestClient, mlflow_example: Service, mlflow_model_path: str, home_rentals: pd.DataFrame
) -> None:
    created = sql(
        api,
        f"""CREATE PREDICTOR byom2 PREDICT number_of_rooms USING url.predict='{mlflow_example.url}',
        format='mlflow',
        data_dtype={{"initial_price": "integer", "rental_price": "integer",
                     "number_of_rooms": "integer"}}""",
    )
    assert records(created)[0]["status"] == "complete"  # predict-only: ready at once
    model = mlflow.pyfunc.load_model(mlflow_model_path)
    row = pd.DataFrame([{"initial_price": 2500, "rental_price": 4100}])
    body = sql(
        api, "SELECT number_of_rooms FROM byom2 WHERE initial_price=2500 AND rental_price=4100"
    )
    # the example's signature declares doubles, so in-process calls need float columns
    assert body == {
        "columns": ["number_of_rooms"],
        "rows": [[int(model.predict(row.astype(float))[0])]],
    }

    joined = sql(
        api,
        "SELECT t.sqft, m.number_of_rooms FROM local.test_data.home_rentals AS t "
        "JOIN models.byom2 AS m WHERE t.location = 'great' ORDER BY t.sqft LIMIT 25",
    )
    source = home_rentals[home_rentals.location == "great"].sort_values("sqft", kind="stable")
    source = source.head(25)
    assert [r[0] for r in joined["rows"]] == source.sqft.tolist()
    expected = model.predict(source[["initial_price", "rental_price"]].astype(float))
    assert [r[1] for r in joined["rows"]] == [int(v) for v in expected]


def test_predictor_json_api(api: TestClient, mlflow_example: Service) -> None:
    spec = {
        "name": "rooms",
        "format": "mlflow",
        "url_predict": mlflow_example.url,
        "target": "number_of_rooms",
        "dtype_dict": {"initial_price": "integer", "rental_price": "integer"},
    }
    assert api.post("/api/predictors", json=spec).status_code == 201
    assert api.get("/api/predictors/rooms").json()["status"] == "complete"
    answer = api.post(
        "/api/predictors/rooms/predict",
        json={
            "rows": [
                {"initial_price": 1000, "rental_price": 2000},
                {"initial_price": 5000, "rental_price": 9000},
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["columns"][:3] == ["initial_price", "rental_price", "number_of_rooms"]
    assert len(body["rows"]) == 2
    assert [p["name"] for p in api.get("/api/predictors").json()] == ["rooms"]
    assert api.delete("/api/predictors/rooms").status_code == 200
    assert api.get("/api/predictors/rooms").status_code == 404


def test_postgres_datasource_join(
    api: TestClient,
    ray_serve_example: Service,
    postgres_params: dict[str, Any],
    home_rentals: pd.DataFrame,
) -> None:
    params = json.dumps(postgres_params)
    sql(api, f"CREATE DATABASE pg WITH ENGINE = 'postgres', PARAMETERS = {params};")
    shown = records(sql(api, "SHOW DATABASES"))
    pg = next(d for d in shown if d["name"] == "pg")
    assert pg["parameters"]["password"] == "******"  # secrets never shown back
    schema = postgres_params["schema"]
    sql(api, f"CREATE TABLE pg.{schema}.homes (initial_price int, rental_price int, id int)")
    values = ", ".join(
        f"({r.initial_price}, {r.rental_price}, {i})"
        for i, r in enumerate(home_rentals.itertuples())
    )
    sql(api, f"INSERT INTO pg.{schema}.homes VALUES {values}")
    assert train_byom(api, ray_serve_example)["status"] == "complete"
    body = sql(
        api,
        f"SELECT t.id, p.number_of_rooms FROM pg.{schema}.homes AS t JOIN byom AS p "
        "WHERE t.rental_price > 2000 ORDER BY t.id USING batch_size=25",
    )
    source = home_rentals[home_rentals.rental_price > 2000]
    assert [r[0] for r in body["rows"]] == [int(i) for i in source.index]
    direct = direct_predict(ray_serve_example.url, source[["initial_price", "rental_price"]])
    assert [r[1] for r in body["rows"]] == direct["prediction"]
    sql(api, "DROP DATABASE pg")
    assert "pg" not in [d["name"] for d in records(sql(api, "SHOW DATABASES"))]


# ------------------------------------------------------------------ errors through HTTP


def error(api: TestClient, query: str, status: int, code: str) -> str:
    body = sql(api, query, status=status)
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


def register(api: TestClient, name: str, url: str) -> None:
    sql(
        api,
        f"CREATE MODEL {name} PREDICT y USING url.predict='{url}', format='ray_serve', "
        'dtype_dict={"x": "integer", "y": "integer"}',
    )


@pytest.mark.parametrize(
    ("route", "status", "code", "words"),
    [
        ("/not_json", 502, "ENDPOINT_BAD_RESPONSE", "JSON"),
        ("/missing_key", 502, "ENDPOINT_BAD_RESPONSE", "prediction"),
        ("/wrong_count", 502, "ENDPOINT_BAD_RESPONSE", "2"),
        ("/server_error", 502, "ENDPOINT_HTTP_ERROR", "division by zero"),
        ("/no_such_route", 502, "ENDPOINT_HTTP_ERROR", "404"),
    ],
)
def test_endpoint_errors(
    api: TestClient, bad_url: str, route: str, status: int, code: str, words: str
) -> None:
    url = bad_url + route
    register(api, "shaky", url)
    message = error(api, "SELECT * FROM shaky WHERE x = 1", status, code)
    assert "shaky" in message and url in message and words in message
    # the gateway keeps serving and the catalog is unchanged
    assert records(sql(api, "DESCRIBE shaky"))[0]["status"] == "complete"


def test_unreachable_endpoint(api: TestClient) -> None:
    url = f"http://127.0.0.1:{free_port()}/predict"  # nothing listens there
    register(api, "gone", url)
    message = error(api, "SELECT * FROM gone WHERE x = 1", 502, "ENDPOINT_UNREACHABLE")
    assert "gone" in message and url in message


def test_endpoint_timeout(tmp_path: Path, bad_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOM_PREDICT_TIMEOUT", "0.5")
    monkeypatch.setenv("BYOM_PREDICT_RETRIES", "0")
    with TestClient(create_app(home=tmp_path)) as api:
        register(api, "sleepy", bad_url + "/slow")
        message = error(api, "SELECT * FROM sleepy WHERE x = 1", 504, "ENDPOINT_TIMEOUT")
        assert "sleepy" in message and "/slow" in message


def test_join_error_part_way_names_the_rows(api: TestClient, bad_url: str) -> None:
    register(api, "counter", bad_url + "/wrong_count")
    sql(api, "CREATE TABLE nums AS SELECT 1 AS x UNION ALL SELECT 2 UNION ALL SELECT 3")
    message = error(
        api,
        "SELECT t.x, p.y FROM local.nums AS t JOIN counter AS p USING batch_size=2",
        502,
        "ENDPOINT_BAD_RESPONSE",
    )
    assert "rows 1-2" in message and "counter" in message
    assert sql(api, "SELECT count(*) AS n FROM nums")["rows"] == [[3]]  # still serving


def test_training_failure_is_recorded(api: TestClient, bad_url: str) -> None:
    sql(api, "CREATE TABLE pts (x INTEGER, y INTEGER)")
    sql(api, "INSERT INTO pts VALUES (1, 2), (2, 4)")
    sql(
        api,
        f"CREATE PREDICTOR picky FROM local (SELECT x, y FROM pts) PREDICT y "
        f"USING url.train='{bad_url}/train_refused', url.predict='{bad_url}/doubler', "
        "format='ray_serve'",
    )
    row = wait_status(api, "picky")
    assert row["status"] == "error"
    assert "one class only" in row["error"]
    message = error(api, "SELECT * FROM picky WHERE x = 1", 409, "MODEL_NOT_READY")
    assert "one class only" in message


def test_user_errors(api: TestClient, ray_serve_example: Service) -> None:
    body = sql(api, "SELECT * FORM byom", status=400)
    assert body["error"]["code"] == "PARSE_ERROR"
    assert body["error"]["line"] == 1 and body["error"]["suggestion"] == "FROM"
    train_byom(api, ray_serve_example)
    message = error(api, "SELECT * FROM mindsdb.byon WHERE a = 1", 404, "MODEL_NOT_FOUND")
    assert "Did you mean byom" in message
    message = error(api, "SELECT * FROM byomm WHERE a = 1", 404, "MODEL_NOT_FOUND")
    assert "byom" in message
    error(api, "DESCRIBE nothing_here", 404, "MODEL_NOT_FOUND")
    message = error(
        api,
        f"CREATE MODEL byom PREDICT y USING url.predict='{ray_serve_example.url}', "
        "format='ray_serve'",
        409,
        "MODEL_EXISTS",
    )
    assert "DROP MODEL byom" in message
    error(api, "SELECT * FROM nosuchtable", 400, "DATASOURCE_ERROR")
    error(api, "CREATE DATABASE x WITH ENGINE = 'mongo', PARAMETERS = {}", 400, "INVALID_OPTION")
    assert sql(api, "DROP MODEL byom") and sql(api, "SHOW MODELS")["rows"] == []
