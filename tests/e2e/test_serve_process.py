"""The gateway as a real separate process (``byom serve``), driven over TCP.

Unlike test_sql_api.py (FastAPI in-process), these tests start the command a user runs,
talk to it with ``gateway.client.Client`` and the ``byom sql`` CLI, and kill or stop it the
way production does: SIGKILL (a crash) and SIGTERM (a clean shutdown) while a model trains,
then restart it on the same home and check the catalog tells the truth.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import mlflow.pyfunc
import pandas as pd
import pytest

from byom.errors import GatewayError, ModelNotReady
from catalog.db import catalog_url
from catalog.records import PredictorRecord, TrainingJobRecord
from catalog.repository import Catalog
from datasources import embedded_schema_path
from gateway.client import Client
from gateway.processes import Service, load_example, start_gateway
from tests.e2e import bad_endpoint

pytestmark = pytest.mark.slow

DTYPES = '{"number_of_rooms": "categorical", "initial_price": "integer", "rental_price": "integer"}'
MLFLOW_DTYPES = (
    '{"initial_price": "integer", "rental_price": "integer", "number_of_rooms": "integer"}'
)
# The environment variables that would point a gateway or the CLI somewhere other than the
# home directory a test gives it.
_REDIRECTING_ENV = ("BYOM_CATALOG_URL", "BYOM_URL", "BYOM_HOME")

StartGateway = Callable[[Path], Service]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _REDIRECTING_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[StartGateway]:
    """Starts ``byom serve`` on a home; every gateway started is stopped at teardown."""
    started: list[Service] = []

    def start(home: Path) -> Service:
        service = start_gateway(home, log_dir=tmp_path / "logs")
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


@pytest.fixture(scope="module")
def bad_url() -> Iterator[str]:
    with bad_endpoint.running() as url:
        yield url


@pytest.fixture(scope="module")
def home_rentals() -> pd.DataFrame:
    return load_example("home_rentals").generate(400, seed=7)


# -- helpers ----------------------------------------------------------------------------


def describe(client: Client, name: str) -> dict[str, Any]:
    return client.sql(f"DESCRIBE {name}").records()[0]


def wait_status(
    client: Client, name: str, until: Callable[[str], bool], timeout: float = 60
) -> dict[str, Any]:
    """Poll DESCRIBE until ``until(status)``; the last row."""
    deadline = time.monotonic() + timeout
    while True:
        row = describe(client, name)
        if until(row["status"]):
            return row
        assert time.monotonic() < deadline, f"{name} still {row['status']}: {row['error']}"
        time.sleep(0.1)


def direct_predict(url: str, frame: pd.DataFrame) -> dict[str, list[Any]]:
    """What the Ray Serve model itself answers for these rows, bypassing the gateway."""
    answer = httpx.post(f"{url}/predict", json={"df": frame.to_json(orient="records")}, timeout=30)
    answer.raise_for_status()
    return answer.json()


def byom_command() -> list[str]:
    """The ``byom`` console script of this venv (what a user types), else ``-m gateway.cli``."""
    script = Path(sys.executable).parent / "byom"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def byom_sql(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``byom sql ARGS`` to completion (a fresh process, as from a shell)."""
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING_ENV}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return subprocess.run(
        [*byom_command(), "sql", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def cli_json(*args: str) -> dict[str, Any]:
    """``byom sql ARGS --json``, which must succeed; its parsed output."""
    done = byom_sql(*args, "--json")
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def catalog_state(home: Path, name: str) -> tuple[PredictorRecord, list[TrainingJobRecord]]:
    """The predictor and its jobs as stored; call only while no gateway runs on ``home``."""
    catalog = Catalog(catalog_url(home))
    try:
        return catalog.get_predictor(name), catalog.list_jobs(name)
    finally:
        catalog.close()


def start_hanging_training(client: Client, bad_url: str) -> None:
    """Create table pts and a predictor whose training endpoint never answers; wait until
    the gateway is in the middle of that training call."""
    client.sql("CREATE TABLE pts (x INTEGER, y INTEGER)")
    client.sql("INSERT INTO pts VALUES (1, 2), (2, 4), (3, 6)")
    created = client.sql(
        f"""CREATE PREDICTOR hang FROM local (SELECT x, y FROM pts) PREDICT y
        USING url.train='{bad_url}/train_hangs', url.predict='{bad_url}/doubler',
        format='ray_serve'"""
    ).records()
    assert created[0]["status"] == "generating"
    wait_status(client, "hang", lambda status: status == "training")
    assert client.health()["training_in_flight"] == ["hang"]


def assert_recovered(client: Client) -> dict[str, Any]:
    """After a restart: hang is 'error' (interrupted), unusable, listed once; the gateway
    itself is healthy and idle. Returns hang's DESCRIBE row."""
    row = describe(client, "hang")
    assert row["status"] == "error"
    assert "interrupted" in row["error"]

    with pytest.raises(ModelNotReady) as caught:
        client.sql("SELECT * FROM hang WHERE x=1")
    assert caught.value.code == "MODEL_NOT_READY"
    assert caught.value.status == 409
    assert "interrupted" in caught.value.message

    health = client.health()
    assert health["status"] == "ok"
    assert health["training_in_flight"] == []  # nothing resumed the old training
    names = [m["name"] for m in client.sql("SHOW MODELS").records()]
    assert names == ["hang"]
    assert client.sql("SELECT model, status FROM mindsdb.jobs").rows == [["hang", "error"]]
    # the data the model trained on survived the stop
    assert client.sql("SELECT x, y FROM pts ORDER BY x").rows == [[1, 2], [2, 4], [3, 6]]
    return row


def assert_catalog_consistent(home: Path, error: str) -> None:
    """With the gateway stopped: one predictor and one finished job, both 'error' with
    ``error`` (the text DESCRIBE showed)."""
    predictor, jobs = catalog_state(home, "hang")
    assert (predictor.status, predictor.error) == ("error", error)
    assert len(jobs) == 1
    assert (jobs[0].status, jobs[0].finished_at is not None) == ("error", True)
    assert "interrupted" in (jobs[0].error or "")


# -- tests ------------------------------------------------------------------------------


def test_byom_serve_predictions_equal_the_models(
    tmp_path: Path,
    gateways: StartGateway,
    home_rentals: pd.DataFrame,
    ray_serve_example: Service,
    mlflow_example: Service,
    mlflow_model_path: str,
) -> None:
    home = tmp_path / "home"
    with closing(sqlite3.connect(embedded_schema_path(home, "test_data"))) as conn, conn:
        home_rentals.to_sql("home_rentals", conn, index=False)
    gateway = gateways(home)

    with Client(gateway.url) as client:
        # -- Ray Serve: trained through the gateway from its own embedded table
        ray = ray_serve_example.url
        created = client.sql(
            f"""CREATE PREDICTOR byom
            FROM local (
                SELECT number_of_rooms, initial_price, rental_price
                FROM test_data.home_rentals
            ) PREDICT number_of_rooms
            USING url.train = '{ray}/train', url.predict = '{ray}/predict',
            dtype_dict={DTYPES}, format='ray_server';"""
        ).records()
        assert created[0]["status"] == "generating"
        done = wait_status(client, "byom", lambda s: s not in ("generating", "training"))
        assert done["status"] == "complete", done["error"]

        one = client.sql("SELECT * FROM byom WHERE initial_price=3000 AND rental_price=3000")
        expected = direct_predict(
            ray, pd.DataFrame([{"initial_price": 3000, "rental_price": 3000}])
        )
        assert one.records() == [
            {
                "initial_price": 3000,
                "rental_price": 3000,
                "number_of_rooms": expected["prediction"][0],
                "confidence": expected["confidence"][0],
            }
        ]

        joined = client.sql(
            """SELECT t.initial_price, t.rental_price, tb.number_of_rooms, tb.confidence
            FROM local.test_data.home_rentals AS t JOIN mindsdb.byom AS tb
            WHERE t.rental_price > 5300;"""
        )
        source = home_rentals[home_rentals.rental_price > 5300][["initial_price", "rental_price"]]
        assert len(source) > 0
        assert [r[:2] for r in joined.rows] == source.values.tolist()  # source order kept
        direct = direct_predict(ray, source)
        assert [r[2] for r in joined.rows] == direct["prediction"]
        assert [r[3] for r in joined.rows] == pytest.approx(direct["confidence"])

        # -- MLflow: predict-only, served by the real `mlflow models serve`
        created = client.sql(
            f"""CREATE PREDICTOR byom2 PREDICT number_of_rooms
            USING url.predict='{mlflow_example.url}', format='mlflow',
            data_dtype={MLFLOW_DTYPES}"""
        ).records()
        assert created[0]["status"] == "complete"
        model = mlflow.pyfunc.load_model(mlflow_model_path)
        row = pd.DataFrame([{"initial_price": 2500, "rental_price": 4100}])
        # the example's signature declares doubles, so in-process calls need float columns
        rooms = int(model.predict(row.astype(float))[0])
        one = client.sql(
            "SELECT number_of_rooms FROM byom2 WHERE initial_price=2500 AND rental_price=4100"
        )
        assert (one.columns, one.rows) == (["number_of_rooms"], [[rooms]])

        joined = client.sql(
            "SELECT t.initial_price, t.rental_price, m.number_of_rooms "
            "FROM local.test_data.home_rentals AS t JOIN models.byom2 AS m "
            "WHERE t.location = 'great'"
        )
        source = home_rentals[home_rentals.location == "great"][["initial_price", "rental_price"]]
        assert len(source) > 0
        assert [r[:2] for r in joined.rows] == source.values.tolist()
        expected_rooms = [int(v) for v in model.predict(source.astype(float))]
        assert [r[2] for r in joined.rows] == expected_rooms
        assert len(set(expected_rooms)) > 1  # a constant answer would prove little

    # -- the CLI against the running server
    shown = byom_sql("SHOW MODELS", "--url", gateway.url)
    assert shown.returncode == 0, shown.stderr
    assert "byom" in shown.stdout.split() and "byom2" in shown.stdout.split()
    listed = cli_json("SHOW MODELS", "--url", gateway.url)
    names = [row[listed["columns"].index("name")] for row in listed["rows"]]
    assert sorted(names) == ["byom", "byom2"]

    # -- the CLI embedded: no server, its own home, state kept between invocations
    other = tmp_path / "other_home"
    created_emb = cli_json(
        f"CREATE PREDICTOR emb PREDICT number_of_rooms USING url.predict='{mlflow_example.url}', "
        f"format='mlflow', data_dtype={MLFLOW_DTYPES}",
        "--home",
        str(other),
    )
    assert created_emb["rows"][0][created_emb["columns"].index("status")] == "complete"
    predicted = cli_json(
        "SELECT number_of_rooms FROM emb WHERE initial_price=2500 AND rental_price=4100",
        "--home",
        str(other),
    )
    assert predicted["rows"] == [[rooms]]
    listed = cli_json("SHOW MODELS", "--home", str(other))
    assert [row[listed["columns"].index("name")] for row in listed["rows"]] == ["emb"]
    assert (other / "catalog.sqlite").is_file()
    # the served gateway's catalog did not see the embedded one's model
    with Client(gateway.url) as client:
        assert sorted(m["name"] for m in client.sql("SHOW MODELS").records()) == ["byom", "byom2"]


def test_restart_marks_interrupted_training_as_error(
    tmp_path: Path, gateways: StartGateway, bad_url: str
) -> None:
    home = tmp_path / "home"
    gateway = gateways(home)
    with Client(gateway.url) as client:
        start_hanging_training(client, bad_url)

    # A crash: the whole process group dies at once, nothing runs on the way out.
    os.killpg(gateway.process.pid, signal.SIGKILL)
    assert gateway.process.wait(timeout=30) == -signal.SIGKILL
    predictor, jobs = catalog_state(home, "hang")
    assert (predictor.status, [j.status for j in jobs]) == ("training", ["running"])

    restarted = gateways(home)
    assert "marked interrupted training as error: hang" in restarted.log_tail()
    with Client(restarted.url) as client:
        row = assert_recovered(client)
    restarted.stop()
    assert_catalog_consistent(home, row["error"])


def test_clean_shutdown_marks_training_interrupted(
    tmp_path: Path, gateways: StartGateway, bad_url: str
) -> None:
    home = tmp_path / "home"
    gateway = gateways(home)
    with Client(gateway.url) as client:
        start_hanging_training(client, bad_url)

    gateway.process.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean exit
    # too; what matters is that it ended by itself and ran the lifespan's shutdown.
    assert gateway.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in gateway.log_tail()
    # Gateway.close() cancelled the training and recorded why before the process ended.
    predictor, jobs = catalog_state(home, "hang")
    assert predictor.status == "error"
    assert "interrupted" in (predictor.error or "")
    assert [j.status for j in jobs] == ["error"]

    restarted = gateways(home)
    # nothing was left running, so start-up had nothing to repair
    assert "marked interrupted training" not in restarted.log_tail()
    with Client(restarted.url) as client:
        row = assert_recovered(client)
    assert row["error"] == predictor.error
    restarted.stop()
    assert_catalog_consistent(home, row["error"])


def _slow_join(home: Path, gateways: StartGateway, bad_url: str) -> tuple[Service, Any, Any]:
    """A gateway on ``home`` and an ndjson JOIN of 3000 rows over ``slow_doubler`` (~3 s),
    its first row read: (gateway, stream, iterator of the remaining rows)."""
    home.mkdir()
    with closing(sqlite3.connect(home / "local.sqlite")) as conn, conn:
        conn.execute("CREATE TABLE numbers (x INTEGER)")
        conn.executemany("INSERT INTO numbers VALUES (?)", [(i,) for i in range(3000)])
    gateway = gateways(home)
    client = Client(gateway.url)
    client.sql(
        f"CREATE PREDICTOR slow PREDICT y USING url.predict='{bad_url}/slow_doubler', "
        "format='ray_serve'"
    )
    stream = client.iter_sql(
        "SELECT t.x, m.y FROM local.numbers AS t JOIN slow AS m "
        "USING batch_size = 50, concurrency = 1"
    )
    return gateway, stream, iter(stream.rows())


def test_sigterm_drains_a_streaming_join_before_the_gateway_stops(
    tmp_path: Path, gateways: StartGateway, bad_url: str
) -> None:
    gateway, stream, rows = _slow_join(tmp_path / "home", gateways, bad_url)
    with stream:
        got = [next(rows)]  # the statement is running: ~60 batches of 50 ms to go
        gateway.process.send_signal(signal.SIGTERM)
        got.extend(rows)  # a cut-off answer would raise STREAM_INCOMPLETE here
    assert [tuple(r) for r in got] == [(i, 2 * i) for i in range(3000)]
    assert gateway.process.wait(timeout=60) in (0, -signal.SIGTERM)


def test_a_gateway_killed_mid_join_gives_the_client_an_error_not_a_short_answer(
    tmp_path: Path, gateways: StartGateway, bad_url: str
) -> None:
    gateway, stream, rows = _slow_join(tmp_path / "home", gateways, bad_url)
    with stream, pytest.raises(GatewayError) as caught:
        next(rows)
        os.killpg(gateway.process.pid, signal.SIGKILL)
        for _ in rows:
            pass
    assert caught.value.code == "STREAM_INCOMPLETE", caught.value
    assert "ended before its last line" in caught.value.message
