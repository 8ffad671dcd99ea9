"""The adapters against real servers: the Ray Serve example and ``mlflow models serve``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import mlflow.pyfunc
import pandas as pd
import pytest

from adapters.base import Adapter, AdapterContext, Endpoint, Predictions
from adapters.http import HttpSettings
from adapters.registry import AdapterRegistry
from byom.errors import EndpointHTTPError, EndpointUnreachable, InvalidOption
from gateway.processes import (
    Service,
    free_port,
    load_example,
    start_mlflow_example,
    wait_http,
)
from tests.mock_http import with_client

pytestmark = pytest.mark.slow

T = TypeVar("T")
FEATURES = ["initial_price", "rental_price"]
TARGET = "number_of_rooms"
DTYPES = {"number_of_rooms": "categorical", "initial_price": "integer", "rental_price": "integer"}
# Few retries with short waits: the error tests expect failures, and should see them quickly.
SETTINGS = HttpSettings(retries=1, backoff=0.05)


def call(format: str, action: Callable[[Adapter], Awaitable[T]]) -> T:
    """Run ``action`` with the registry's adapter for ``format`` on a fresh pooled client."""
    return with_client(
        SETTINGS,
        None,  # the real network
        lambda client: action(AdapterRegistry(AdapterContext(client, SETTINGS)).get(format)),
    )


def table() -> pd.DataFrame:
    return load_example("home_rentals").generate()


def rows_of(frame: pd.DataFrame, columns: Sequence[str]) -> list[list[Any]]:
    """Rows as plain Python values, as a datasource would hand them to the adapter."""
    return frame[list(columns)].astype(object).values.tolist()


def ray_endpoint(service: Service) -> Endpoint:
    return Endpoint(
        model="byom",
        url_predict=service.url + "/predict",
        url_train=service.url + "/train",
        target=TARGET,
        dtype_dict=DTYPES,
    )


@pytest.fixture(scope="module")
def trained_ray(ray_serve_example: Service) -> Endpoint:
    """The Ray Serve example, trained through the adapter on the home_rentals table."""
    endpoint = ray_endpoint(ray_serve_example)
    columns = [TARGET, *FEATURES]
    answer = call("ray_server", lambda a: a.train(endpoint, columns, rows_of(table(), columns)))
    assert answer["status"] == "ok"
    assert answer["features"] == FEATURES  # the model saw exactly the non-target columns
    return endpoint


def test_ray_serve_predictions_match_a_direct_request(trained_ray: Endpoint) -> None:
    frame = table()
    batch = pd.concat([frame[frame.rental_price > 5300], frame.head(20)])
    rows = rows_of(batch, FEATURES)

    got = call("ray_serve", lambda a: a.predict(trained_ray, FEATURES, rows))

    direct = httpx.post(
        trained_ray.url_predict,
        json={"df": batch[FEATURES].to_json(orient="records")},
        timeout=30,
    )
    direct.raise_for_status()
    expected = direct.json()
    assert isinstance(got, Predictions)
    assert len(got) == len(rows) == len(expected["prediction"])
    assert got.values == expected["prediction"]
    assert got.extra["confidence"] == expected["confidence"]
    assert all(0 < c <= 1 for c in got.extra["confidence"])
    assert set(got.values) <= set(range(5))
    # The priciest flats are the big ones: the trained model must see that.
    assert sum(v >= 3 for v in got.values[: (frame.rental_price > 5300).sum()]) >= 1


def test_ray_serve_model_beats_chance(trained_ray: Endpoint) -> None:
    frame = table()
    got = call("ray_serve", lambda a: a.predict(trained_ray, FEATURES, rows_of(frame, FEATURES)))
    accuracy = (pd.Series(got.values) == frame[TARGET].reset_index(drop=True)).mean()
    assert accuracy > 0.5  # five classes: chance is about 0.2


def test_ray_serve_extra_columns_are_ignored(trained_ray: Endpoint) -> None:
    frame = table().head(5)
    columns = ["neighborhood", *FEATURES, "sqft"]
    with_extra = call(
        "ray_serve", lambda a: a.predict(trained_ray, columns, rows_of(frame, columns))
    )
    plain = call("ray_serve", lambda a: a.predict(trained_ray, FEATURES, rows_of(frame, FEATURES)))
    assert with_extra.values == plain.values


def test_ray_serve_missing_feature_is_an_http_error_naming_it(trained_ray: Endpoint) -> None:
    with pytest.raises(EndpointHTTPError) as info:
        call("ray_serve", lambda a: a.predict(trained_ray, ["initial_price"], [[3000]]))
    err = info.value
    assert err.code == "ENDPOINT_HTTP_ERROR"
    assert "HTTP 400" in err.message
    assert "rental_price" in err.message
    assert trained_ray.url_predict in err.message


def test_ray_serve_wrong_path_is_an_http_error_with_the_url(ray_serve_example: Service) -> None:
    base = ray_serve_example.url.rsplit("/my_model", 1)[0]
    wrong = Endpoint(model="byom", url_predict=base + "/no_such_model/predict", target=TARGET)
    with pytest.raises(EndpointHTTPError) as info:
        call("ray_serve", lambda a: a.predict(wrong, FEATURES, [[3000, 3000]]))
    err = info.value
    assert err.code == "ENDPOINT_HTTP_ERROR"
    assert err.status == 502
    assert wrong.url_predict in err.message
    assert "404" in err.message
    assert err.details["endpoint_status"] == 404


@pytest.mark.parametrize("payload", ["parquet", "arrow", "json_columns"])
def test_ray_serve_columnar_payloads_predict_like_json(trained_ray: Endpoint, payload: str) -> None:
    frame = table()
    rows = rows_of(frame, FEATURES)
    as_json = call("ray_serve", lambda a: a.predict(trained_ray, FEATURES, rows))
    other = replace(trained_ray, options={"payload": payload})
    got = call("ray_serve", lambda a: a.predict(other, FEATURES, rows))
    assert len(got) == len(frame)
    assert got.values == as_json.values
    assert got.extra == as_json.extra


def test_ray_serve_trains_from_parquet(trained_ray: Endpoint) -> None:
    # The session's model is retrained on exactly the data the fixture used, so other tests
    # sharing the deployment see the same model (logistic regression fits deterministically).
    columns = [TARGET, *FEATURES]
    frame = table()
    before = call("ray_serve", lambda a: a.predict(trained_ray, FEATURES, rows_of(frame, FEATURES)))
    parquet = replace(trained_ray, options={"payload": "parquet"})
    answer = call("ray_serve", lambda a: a.train(parquet, columns, rows_of(frame, columns)))
    assert answer["status"] == "ok"
    assert answer["rows"] == len(frame)
    assert answer["features"] == FEATURES  # the target came through the query string
    after = call("ray_serve", lambda a: a.predict(parquet, FEATURES, rows_of(frame, FEATURES)))
    assert after.values == before.values


def test_ray_serve_parquet_missing_feature_is_an_http_error_naming_it(
    trained_ray: Endpoint,
) -> None:
    parquet = replace(trained_ray, options={"payload": "parquet"})
    with pytest.raises(EndpointHTTPError) as info:
        call("ray_serve", lambda a: a.predict(parquet, ["initial_price"], [[3000]]))
    assert "HTTP 400" in info.value.message and "rental_price" in info.value.message
    assert "payload='json'" in info.value.message  # the hint for endpoints without Parquet


def test_closed_port_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/my_model/predict"  # nothing listens there
    endpoint = Endpoint(model="byom", url_predict=url, target=TARGET)
    with pytest.raises(EndpointUnreachable) as info:
        call("ray_serve", lambda a: a.predict(endpoint, FEATURES, [[3000, 3000]]))
    assert info.value.code == "ENDPOINT_UNREACHABLE"
    assert url in info.value.message
    assert "byom" in info.value.message


def mlflow_endpoint(service: Service) -> Endpoint:
    return Endpoint(
        model="byom2",
        url_predict=service.url,
        target=TARGET,
        dtype_dict=dict(DTYPES),
    )


def test_mlflow_predictions_match_the_loaded_model(
    mlflow_example: Service, mlflow_model_path: str
) -> None:
    frame = table()
    batch = pd.concat([frame[frame.rental_price > 5300], frame.head(30)])
    endpoint = mlflow_endpoint(mlflow_example)

    got = call("mlflow", lambda a: a.predict(endpoint, FEATURES, rows_of(batch, FEATURES)))

    # The signature declares doubles (so JSON integers and decimals both fit); in-process,
    # pyfunc refuses to cast int64 columns to float64 itself.
    frame_in = batch[FEATURES].astype("float64")
    expected = mlflow.pyfunc.load_model(mlflow_model_path).predict(frame_in)
    assert len(got) == len(batch)
    assert got.values == [int(v) for v in expected]
    assert got.extra == {}


def test_mlflow_accepts_decimal_inputs(mlflow_example: Service) -> None:
    endpoint = mlflow_endpoint(mlflow_example)
    got = call("mlflow", lambda a: a.predict(endpoint, FEATURES, [[3000.5, 2999.0], [6000, 5900]]))
    assert len(got) == 2
    assert got.values[1] >= got.values[0]  # a far pricier flat is not predicted smaller


def test_mlflow_wrong_columns_is_an_http_error_with_mlflows_message(
    mlflow_example: Service,
) -> None:
    endpoint = mlflow_endpoint(mlflow_example)
    with pytest.raises(EndpointHTTPError) as info:
        call("mlflow", lambda a: a.predict(endpoint, ["price", "rent"], [[3000, 3000]]))
    err = info.value
    assert err.code == "ENDPOINT_HTTP_ERROR"
    assert "HTTP 400" in err.message
    assert mlflow_example.url in err.message
    # MLflow's own explanation reaches the user.
    body = json.loads(
        httpx.post(
            mlflow_example.url,
            json={"dataframe_split": {"columns": ["price", "rent"], "data": [[3000, 3000]]}},
        ).text
    )
    assert body["error_code"] in err.message
    assert "Failed to" in err.message


def test_mlflow_train_is_refused(mlflow_example: Service) -> None:
    endpoint = mlflow_endpoint(mlflow_example)
    with pytest.raises(InvalidOption) as info:
        call("mlflow", lambda a: a.train(endpoint, [TARGET, *FEATURES], [[1, 2, 3]]))
    assert info.value.code == "INVALID_OPTION"
    assert "predict-only" in info.value.message


# ---- the launcher behind the fixtures fails loudly -----------------------------------------


def test_a_service_that_dies_fails_fast_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "boom.log"
    log.write_text("starting\nboom: no model here\n")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError) as info:
        wait_http(f"http://127.0.0.1:{free_port()}/", 300, process, log_path=log)
    assert "exited with code 3" in str(info.value)
    assert "boom: no model here" in str(info.value)


def test_mlflow_example_with_a_missing_model_raises_with_mlflows_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    with pytest.raises(RuntimeError) as info:
        start_mlflow_example(str(missing), log_dir=tmp_path, timeout=120)
    message = str(info.value)
    assert f"mlflow models serve -m {missing} exited with code" in message
    assert "No such artifact: 'no_such_model'" in message  # mlflow's own words, from its log
