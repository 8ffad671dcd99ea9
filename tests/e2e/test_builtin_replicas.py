"""``USING replicas = n`` on real Ray Serve: a tiny built-in text classifier trained with
``replicas = 2`` runs two Serve replicas, DESCRIBE says so, and a restarted gateway deploys
the version again with two (the count is kept with the version, nothing is retrained).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from builtin_models.deployments import app_name
from gateway.server import create_app
from tests.builtin_models.conftest import TINY_HYPERPARAMS, build_tiny_bert, sentiment_frame
from tests.conftest import RayCluster
from tests.e2e.test_builtin_lifecycle import records, run, wait_version

pytestmark = pytest.mark.slow
HYPER = json.dumps({**TINY_HYPERPARAMS, "num_train_epochs": 1})


def replica_states(model: str, version: int, timeout: float = 60) -> dict[str, int]:
    """The replica states of the version's deployment, once none is still starting."""
    from ray import serve

    name = app_name(model, version)
    deadline = time.monotonic() + timeout
    while True:
        app = serve.status().applications.get(name)
        states = dict(app.deployments[name].replica_states) if app is not None else {}
        if states and set(states) == {"RUNNING"}:
            return {str(k): v for k, v in states.items()}
        if time.monotonic() > deadline:
            return {str(k): v for k, v in states.items()}
        time.sleep(0.1)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replicas_home")


@pytest.fixture(scope="module")
def api(
    ray_cluster: RayCluster, home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("replicas_data") / "shop.sqlite"
    with sqlite3.connect(data) as conn:
        conn.execute("CREATE TABLE reviews (review TEXT, sentiment TEXT)")
        conn.executemany(
            "INSERT INTO reviews VALUES (?, ?)",
            sentiment_frame(60).itertuples(index=False, name=None),
        )
    with TestClient(create_app(home=home)) as client:
        params = json.dumps({"path": str(data)})
        run(client, f"CREATE DATABASE shop WITH ENGINE = 'sqlite', PARAMETERS = {params}")
        yield client


def test_a_version_runs_the_replicas_it_asked_for(
    api: TestClient, home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from ray import serve

    tiny = build_tiny_bert(tmp_path_factory.mktemp("replicas_bert"))
    run(
        api,
        "CREATE MODEL twice FROM shop (SELECT review AS text, sentiment FROM reviews) "
        f"PREDICT sentiment USING task = 'text_classification', model_name = '{tiny}', "
        f"hyperparams = '{HYPER}', replicas = 2",
    )
    v1 = wait_version(api, "twice", 1)
    assert v1["status"] == "complete", v1["error"]
    assert v1["replicas"] == 2
    assert replica_states("twice", 1) == {"RUNNING": 2}
    predicted: dict[str, Any] = records(
        run(api, "SELECT sentiment FROM twice WHERE text = 'a wonderful film'")
    )[0]
    assert predicted["sentiment"] in ("positive", "negative")

    # A restarted cluster has no deployments; a new gateway deploys the version again with
    # the replicas stored with it.
    serve.delete(app_name("twice", 1))
    with TestClient(create_app(home=home)) as again:
        deadline = time.monotonic() + 120
        while True:  # restored in the background at start-up, or by the first prediction
            response = again.post(
                "/api/sql", json={"query": "SELECT sentiment FROM twice WHERE text = 'dull'"}
            )
            if response.status_code == 200:
                break
            assert time.monotonic() < deadline, response.text
            time.sleep(0.1)
        assert replica_states("twice", 1) == {"RUNNING": 2}
        assert [v["replicas"] for v in records(run(again, "DESCRIBE twice"))] == [2]
        run(again, "DROP MODEL twice")
