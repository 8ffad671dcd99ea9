"""Mistakes the gateway can see for itself are 4xx answers before any call, through the HTTP
API: input values that do not fit ``dtype_dict`` (one-row SQL predict, the JSON predict API)
and static mistakes of ``CREATE PREDICTOR`` (checked at CREATE time, not in the background).

The model is ``recording_model`` (real HTTP), so each test can say nothing reached it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.server import create_app
from tests.e2e import recording_model

DTYPES = '{"number_of_rooms": "categorical", "initial_price": "integer", "rental_price": "integer"}'


@pytest.fixture(scope="module")
def model() -> Iterator[recording_model.Recording]:
    with recording_model.running() as recording:
        yield recording


@pytest.fixture
def api(tmp_path: Path, model: recording_model.Recording) -> Iterator[TestClient]:
    """A gateway with table ``homes`` in ``local`` and predict-only model ``byom``."""
    model.clear()
    with TestClient(create_app(home=tmp_path)) as client:
        sql(client, "CREATE TABLE homes (initial_price INTEGER, rental_price INTEGER, rooms INT)")
        sql(client, "INSERT INTO homes VALUES (3000, 3100, 2), (1000, 1200, 1)")
        sql(
            client,
            f"CREATE PREDICTOR byom PREDICT number_of_rooms USING "
            f"url.predict='{model.url}/predict', format='ray_serve', dtype_dict={DTYPES}",
        )
        yield client


def sql(api: TestClient, query: str, status: int = 200) -> dict[str, Any]:
    response = api.post("/api/sql", json={"query": query})
    assert response.status_code == status, response.text
    return response.json()


def error(body: dict[str, Any], code: str) -> str:
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


# ---------------------------------------------------------------- inputs vs dtype_dict


def test_text_for_an_integer_input_is_a_400_naming_column_value_and_type(
    api: TestClient, model: recording_model.Recording
) -> None:
    body = sql(api, "SELECT * FROM byom WHERE initial_price = 'abc' AND rental_price = 3000", 400)
    message = error(body, "INVALID_INPUT")
    assert message.startswith(
        "Model 'byom': input 'initial_price' is 'abc', which does not fit its dtype integer: "
        "expected an integer"
    )
    assert body["error"]["column"] == "initial_price"
    assert body["error"]["value"] == "'abc'"
    assert model.predicted == []  # it never reached the model (it used to be a 502)


@pytest.mark.parametrize(
    ("where", "start"),
    [
        (
            "initial_price = NULL AND rental_price = 3000",
            "Model 'byom': input 'initial_price' is NULL or missing, but the model needs it",
        ),
        (
            "initial_price = 3000 AND rental_price = 3000.5",
            "Model 'byom': input 'rental_price' is 3000.5, which does not fit its dtype integer",
        ),
    ],
)
def test_null_and_fractions_for_integer_inputs_are_refused(
    api: TestClient, model: recording_model.Recording, where: str, start: str
) -> None:
    body = sql(api, f"SELECT * FROM byom WHERE {where}", 400)
    assert error(body, "INVALID_INPUT").startswith(start)
    assert model.predicted == []


def test_documented_conversions_are_what_the_model_gets(
    api: TestClient, model: recording_model.Recording
) -> None:
    body = sql(api, "SELECT * FROM byom WHERE initial_price = '3000' AND rental_price = 1500.0")
    assert body["columns"] == ["initial_price", "rental_price", "number_of_rooms"]
    assert body["rows"] == [[3000, 1500, 6000]]
    assert model.predicted == [[{"initial_price": 3000, "rental_price": 1500}]]


def test_json_predict_api_checks_every_row(
    api: TestClient, model: recording_model.Recording
) -> None:
    rows = [
        {"initial_price": 3000, "rental_price": 3000},
        {"initial_price": 1, "rental_price": "x"},
    ]
    response = api.post("/api/predictors/byom/predict", json={"rows": rows})
    assert response.status_code == 400, response.text
    assert error(response.json(), "INVALID_INPUT").startswith(
        "Model 'byom': input 'rental_price' in rows[1] is 'x', which does not fit its dtype integer"
    )
    response = api.post("/api/predictors/byom/predict", json=[{"initial_price": 3000}])
    assert response.status_code == 400, response.text
    assert "needs column(s) rental_price" in error(response.json(), "INVALID_INPUT")
    assert model.predicted == []
    response = api.post("/api/predictors/byom/predict", json=[rows[0]])
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [[3000, 3000, 6000]]


def test_join_batches_of_native_columns_are_sent_as_read(
    api: TestClient, model: recording_model.Recording
) -> None:
    body = sql(api, "SELECT h.rooms, p.number_of_rooms FROM local.homes AS h JOIN byom AS p")
    assert body["rows"] == [[2, 6000], [1, 2000]]
    assert model.predicted == [
        [
            {"initial_price": 3000, "rental_price": 3100},
            {"initial_price": 1000, "rental_price": 1200},
        ]
    ]


# ---------------------------------------------------------------- CREATE-time checks


TRAINED = "url.train='{url}/train', url.predict='{url}/predict', format='ray_serve'"


@pytest.mark.parametrize(
    ("statement", "code", "start"),
    [
        (
            "CREATE PREDICTOR m FROM local (SELECT initial_price, rooms FROM homes) "
            "PREDICT rooms USING url.train='{url}/train', url.predict='{url}/invocations', "
            "format='mlflow'",
            "INVALID_OPTION",
            "Model 'm': format 'mlflow' is predict-only",
        ),
        (
            "CREATE PREDICTOR m FROM local (SELECT initial_price, rooms FROM homes) "
            "PREDICT rooms USING " + TRAINED + ', dtype_dict={"initial_price": "integer"}',
            "INVALID_OPTION",
            "Model 'm': the target 'rooms' (PREDICT) is not in dtype_dict",
        ),
        (
            "CREATE PREDICTOR m FROM local (SELECT initial_price, rooms FROM hommes) "
            "PREDICT rooms USING " + TRAINED,
            "DATASOURCE_ERROR",
            "Model 'm': the training query cannot run: query failed on datasource 'local'",
        ),
        (
            "CREATE PREDICTOR m FROM local (SELECT initial_price FROM homes) "
            "PREDICT rooms USING " + TRAINED,
            "INVALID_INPUT",
            "Model 'm': the training query returns initial_price but not rooms",
        ),
        (
            "CREATE PREDICTOR m FROM local (SELECT initial_price, rooms FROM homes) "
            "PREDICT rooms USING "
            + TRAINED
            + ', dtype_dict={"initial_price": "integer", "rental_price": "integer", '
            '"rooms": "integer"}',
            "INVALID_INPUT",
            "Model 'm': the training query returns initial_price, rooms but not rental_price",
        ),
    ],
)
def test_create_refuses_static_mistakes_at_once(
    api: TestClient, model: recording_model.Recording, statement: str, code: str, start: str
) -> None:
    body = sql(api, statement.replace("{url}", model.url), 400)
    assert error(body, code).startswith(start)
    assert api.get("/api/predictors/m").status_code == 404  # nothing was stored
    assert sql(api, "SELECT count(*) FROM mindsdb.jobs")["rows"] == [[0]]
    assert model.trained == []


def test_json_register_twin_refuses_training_an_mlflow_model(
    api: TestClient, model: recording_model.Recording
) -> None:
    spec = {
        "name": "m",
        "format": "mlflow",
        "url_predict": f"{model.url}/invocations",
        "url_train": f"{model.url}/train",
        "datasource": "local",
        "query": "SELECT initial_price, rooms FROM homes",
        "target": "rooms",
    }
    response = api.post("/api/predictors", json=spec)
    assert response.status_code == 400, response.text
    message = error(response.json(), "INVALID_OPTION")
    assert "format 'mlflow' is predict-only" in message and "url.train" in message


def test_a_good_training_query_still_trains(
    api: TestClient, model: recording_model.Recording
) -> None:
    body = sql(
        api,
        "CREATE PREDICTOR m FROM local (SELECT initial_price, rooms FROM homes) PREDICT rooms "
        "USING " + TRAINED.replace("{url}", model.url),
    )
    assert dict(zip(body["columns"], body["rows"][0], strict=True))["status"] == "generating"
