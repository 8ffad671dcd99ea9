"""A built-in text classifier's whole life through the SQL API, on real Ray and Ray Serve.

A tiny BERT built in the test is fine-tuned from rows of a real SQLite datasource: CREATE
(training as a Ray task, progress in the catalog, ``replicas = 2`` Serve replicas), predict
one row and by JOIN through the ordinary ray_serve adapter, RETRAIN to version 2, query
version 1 as ``m.1``, roll back, EVALUATE, restart the gateway (the deployment comes back
with its two replicas, without retraining), DROP (the Serve applications are gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from builtin_models.deployments import app_name
from gateway.server import create_app
from tests.builtin_models.conftest import (
    TINY_HYPERPARAMS,
    build_tiny_bert,
    genre_frame,
    sentiment_frame,
)
from tests.conftest import RayCluster

pytestmark = pytest.mark.slow
HYPER = json.dumps(TINY_HYPERPARAMS)


def run(api: TestClient, query: str, status: int = 200) -> dict[str, Any]:
    response = api.post("/api/sql", json={"query": query})
    assert response.status_code == status, response.text
    return response.json()


@contextlib.contextmanager
def sqlite_gateway(
    factory: pytest.TempPathFactory, name: str, tables: dict[str, tuple[str, list[Any]]]
) -> Iterator[TestClient]:
    """A gateway on a fresh home with SQLite datasource ``name`` holding ``tables``
    (table -> (column definitions, rows))."""
    path = factory.mktemp(f"{name}_data") / f"{name}.sqlite"
    with sqlite3.connect(path) as conn:
        for table, (columns, rows) in tables.items():
            conn.execute(f"CREATE TABLE {table} ({columns})")
            if rows:
                marks = ", ".join("?" for _ in rows[0])
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    with TestClient(create_app(home=factory.mktemp(f"{name}_home"))) as client:
        params = json.dumps({"path": str(path)})
        run(client, f"CREATE DATABASE {name} WITH ENGINE = 'sqlite', PARAMETERS = {params}")
        yield client


def records(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def wait_version(api: TestClient, model: str, version: int, timeout: float = 240) -> dict:
    """Poll DESCRIBE until ``version`` leaves generating/training; its row."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        rows = {r["version"]: r for r in records(run(api, f"DESCRIBE {model}"))}
        row = rows[version]
        seen.add(str(row["phase"]))
        if row["status"] not in ("generating", "training"):
            row["phases_seen"] = seen
            return row
        assert time.monotonic() < deadline, f"still {row['status']}: {row}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert_e2e"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file: reviews (training), fresh (to predict), genres (multi-label)."""
    path = tmp_path_factory.mktemp("builtin_data") / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE reviews (review TEXT, sentiment TEXT)")
        conn.executemany(
            "INSERT INTO reviews VALUES (?, ?)",
            sentiment_frame(200).itertuples(index=False, name=None),
        )
        conn.execute("CREATE TABLE fresh (id INTEGER, review TEXT, sentiment TEXT)")
        conn.executemany(
            "INSERT INTO fresh VALUES (?, ?, ?)",
            [(i, t, s) for i, (t, s) in enumerate(sentiment_frame(40, seed=9).values)],
        )
        conn.execute("CREATE TABLE genres (overview TEXT, genre TEXT)")
        conn.executemany(
            "INSERT INTO genres VALUES (?, ?)",
            genre_frame(240).itertuples(index=False, name=None),
        )
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builtin_home")


@pytest.fixture(scope="module")
def api(ray_cluster: RayCluster, home: Path, data: Path) -> Iterator[TestClient]:
    with TestClient(create_app(home=home)) as client:
        run(
            client,
            "CREATE DATABASE shop WITH ENGINE = 'sqlite', "
            f"PARAMETERS = {json.dumps({'path': str(data)})}",
        )
        yield client


@pytest.fixture(scope="module")
def created(api: TestClient, tiny_bert: Path) -> dict[str, Any]:
    """CREATE MODEL in the MindsDB form; the answer, then the finished version 1."""
    body = run(
        api,
        "CREATE MODEL sentiment FROM shop (SELECT review AS text, sentiment FROM reviews) "
        f"PREDICT sentiment USING task = 'text_classification', model_name = '{tiny_bert}', "
        f"hyperparams = '{HYPER}', test_size = 0.2, test_sampling = 'stratified', "
        "replicas = 2",
    )
    return {"answer": records(body)[0], "v1": wait_version(api, "sentiment", 1)}


def replica_states(model: str, version: int, timeout: float = 60) -> dict[str, int]:
    """The replica states of the version's deployment, once none is still starting."""
    from ray import serve

    name = app_name(model, version)
    deadline = time.monotonic() + timeout
    while True:
        app = serve.status().applications.get(name)
        states = dict(app.deployments[name].replica_states) if app is not None else {}
        if (states and set(states) == {"RUNNING"}) or time.monotonic() > deadline:
            return {str(k): v for k, v in states.items()}
        time.sleep(0.1)


def test_create_answers_at_once_and_trains_to_complete(created: dict[str, Any]) -> None:
    answer, v1 = created["answer"], created["v1"]
    assert answer["name"] == "sentiment"
    assert answer["kind"] == "builtin"
    assert answer["status"] in ("generating", "training")
    assert v1["status"] == "complete", v1["error"]
    assert v1["active"] is True
    assert v1["metrics"]["accuracy"] >= 0.8
    assert {"f1", "precision", "recall", "roc_auc"} <= set(v1["metrics"])
    assert v1["hyperparams"]["num_train_epochs"] == TINY_HYPERPARAMS["num_train_epochs"]
    assert v1["percent"] == 100.0
    assert v1["model_uri"] and v1["url_predict"].endswith("/byom/sentiment/v1/predict")
    assert "training" in v1["phases_seen"] or v1["job_id"] is not None
    assert v1["replicas"] == 2
    assert replica_states("sentiment", 1) == {"RUNNING": 2}


def test_predict_one_row_with_probabilities(api: TestClient, created: dict[str, Any]) -> None:
    body = run(
        api,
        "SELECT sentiment, sentiment_proba FROM sentiment "
        "WHERE text = 'a wonderful and brilliant film'",
    )
    (row,) = records(body)
    assert row["sentiment"] == "positive"
    assert set(row["sentiment_proba"]) == {"negative", "positive"}
    assert row["sentiment_proba"]["positive"] > 0.5


def test_predict_by_join(api: TestClient, created: dict[str, Any]) -> None:
    body = run(
        api,
        "SELECT t.id, t.sentiment AS truth, p.sentiment FROM "
        "(SELECT id, review AS text, sentiment FROM shop.fresh) AS t JOIN sentiment AS p",
    )
    rows = records(body)
    assert len(rows) == 40
    right = sum(r["truth"] == r["sentiment"] for r in rows)
    assert right >= 32, rows


def test_jobs_and_versions_are_catalog_tables(api: TestClient, created: dict[str, Any]) -> None:
    versions = records(
        run(api, "SELECT name, version, status, active FROM mindsdb.models_versions")
    )
    assert {"name": "sentiment", "version": 1, "status": "complete", "active": 1} in versions
    jobs = records(run(api, "SELECT id, model, status FROM mindsdb.jobs"))
    assert any(j["model"] == "sentiment" and j["status"] == "complete" for j in jobs)


def test_retrain_query_old_version_roll_back_and_evaluate(
    api: TestClient, created: dict[str, Any]
) -> None:
    body = run(
        api,
        "RETRAIN sentiment USING hyperparams = "
        f"'{json.dumps({**TINY_HYPERPARAMS, 'num_train_epochs': 1, 'learning_rate': 1e-6})}'",
    )
    assert records(body)[0]["name"] == "sentiment"
    v2 = wait_version(api, "sentiment", 2)
    assert v2["status"] == "complete", v2["error"]
    assert v2["active"] is True
    assert v2["hyperparams"]["num_train_epochs"] == 1
    # version 1 stays reachable by number; the model answers with version 2 now
    text = "a wonderful and brilliant film"
    old = records(run(api, f"SELECT sentiment FROM sentiment.1 WHERE text = '{text}'"))
    assert old[0]["sentiment"] == "positive"
    joined = records(
        run(
            api,
            "SELECT t.id, p.sentiment FROM (SELECT id, review AS text FROM shop.fresh) AS t "
            "JOIN mindsdb.sentiment.1 AS p LIMIT 5",
        )
    )
    assert len(joined) == 5
    evaluated = {
        (r["version"], r["metric"]): r["value"]
        for r in records(
            run(
                api,
                "EVALUATE sentiment VERSION 1 FROM shop "
                "(SELECT review AS text, sentiment FROM fresh)",
            )
        )
    }
    assert evaluated[(1, "rows")] == 40
    assert evaluated[(1, "accuracy")] >= 0.8
    assert "confusion_matrix" in {m for _, m in evaluated}
    # both versions' loss curves, read from their MLflow runs
    curve = records(run(api, "DESCRIBE sentiment.training_loss"))
    steps = {v: [r["step"] for r in curve if r["version"] == v] for v in (1, 2)}
    assert steps[1] == list(range(1, len(steps[1]) + 1)) and len(steps[1]) > 1
    assert steps[2] == list(range(1, len(steps[2]) + 1))
    assert len(steps[2]) < len(steps[1])  # version 2 trained 1 epoch, version 1 more
    assert all(r["loss"] > 0 for r in curve)
    # roll back to version 1
    run(api, "UPDATE models SET active = true WHERE name = 'sentiment' AND version = 1")
    rows = {r["version"]: r for r in records(run(api, "DESCRIBE sentiment"))}
    assert rows[1]["active"] is True and rows[2]["active"] is False
    model = records(run(api, "SELECT name, version FROM mindsdb.models"))
    assert {"name": "sentiment", "version": 1} in model


def test_multi_label(api: TestClient, tiny_bert: Path) -> None:
    run(
        api,
        "CREATE MODEL genres FROM shop (SELECT overview AS text, genre AS labels FROM genres) "
        f"PREDICT labels USING task = 'text_classification', model_name = '{tiny_bert}', "
        f"hyperparams = '{json.dumps({**TINY_HYPERPARAMS, 'num_train_epochs': 8})}'",
    )
    v1 = wait_version(api, "genres", 1)
    assert v1["status"] == "complete", v1["error"]
    assert {"f1_micro", "f1_macro", "subset_accuracy"} <= set(v1["metrics"])
    row = records(
        run(
            api,
            "SELECT labels, labels_proba FROM genres "
            "WHERE text = 'the detective and the police chase a gang'",
        )
    )[0]
    assert "Crime" in row["labels"].split(", ")
    assert set(row["labels_proba"]) == {"Comedy", "Crime", "Drama"}


def test_error_cases_answer_clearly(api: TestClient, tiny_bert: Path) -> None:
    q = "FROM shop (SELECT review AS text, sentiment FROM reviews) PREDICT sentiment"
    unknown_task = run(api, f"CREATE MODEL x {q} USING task = 'text_clasification'", 400)
    assert "Did you mean text_classification" in unknown_task["error"]["message"]
    missing_base = run(
        api, f"CREATE MODEL x {q} USING task = 'text_classification', model_name = 'no/such'", 400
    )
    assert "no/such" in missing_base["error"]["message"]
    wrong_cols = run(
        api,
        "CREATE MODEL x FROM shop (SELECT review, sentiment FROM reviews) PREDICT sentiment "
        f"USING task = 'text_classification', model_name = '{tiny_bert}'",
        400,
    )
    assert "text" in wrong_cols["error"]["message"]
    assert run(api, "SHOW MODELS LIKE 'x'")["rows"] == []
    # the data's problems are found where the rows are read: the version ends in error
    run(
        api,
        "CREATE MODEL few FROM shop (SELECT review AS text, sentiment FROM reviews LIMIT 4) "
        f"PREDICT sentiment USING task = 'text_classification', model_name = '{tiny_bert}'",
    )
    few = wait_version(api, "few", 1)
    assert few["status"] == "error"
    assert "at least 10 rows" in few["error"]
    one_class = "SELECT review AS text, 'same' AS sentiment FROM reviews"
    run(
        api,
        f"CREATE MODEL onec FROM shop ({one_class}) PREDICT sentiment "
        f"USING task = 'text_classification', model_name = '{tiny_bert}'",
    )
    assert "only one class" in wait_version(api, "onec", 1)["error"]
    status = records(run(api, "SELECT name, status FROM mindsdb.models WHERE name = 'onec'"))
    assert status == [{"name": "onec", "status": "error"}]
    refused = run(api, "SELECT sentiment FROM onec WHERE text = 'x'", 409)
    assert refused["error"]["code"] == "MODEL_NOT_READY"


def test_cancel_training_and_the_gateway_answers_meanwhile(
    api: TestClient, tiny_bert: Path
) -> None:
    slow = json.dumps({**TINY_HYPERPARAMS, "num_train_epochs": 400})
    run(
        api,
        "CREATE MODEL slow FROM shop (SELECT review AS text, sentiment FROM reviews) "
        f"PREDICT sentiment USING task = 'text_classification', model_name = '{tiny_bert}', "
        f"hyperparams = '{slow}'",
    )
    deadline = time.monotonic() + 120
    while records(run(api, "DESCRIBE slow"))[0]["status"] != "training":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # other statements are answered while the model trains
    assert run(api, "SHOW MODELS")["rows"]
    assert records(run(api, "SELECT COUNT(*) AS n FROM shop.reviews")) == [{"n": 200}]
    run(api, "CANCEL TRAINING slow")
    row = records(run(api, "DESCRIBE slow"))[0]
    assert row["status"] == "error"
    assert "cancelled" in row["error"]
    jobs = records(run(api, "SELECT status, error FROM mindsdb.jobs WHERE model = 'slow'"))
    assert jobs[0]["status"] == "error"


def test_a_dead_training_worker_ends_the_version_in_error(api: TestClient, tiny_bert: Path) -> None:
    slow = json.dumps({**TINY_HYPERPARAMS, "num_train_epochs": 400})
    run(
        api,
        "CREATE MODEL doomed FROM shop (SELECT review AS text, sentiment FROM reviews) "
        f"PREDICT sentiment USING task = 'text_classification', model_name = '{tiny_bert}', "
        f"hyperparams = '{slow}'",
    )
    catalog = api.app.state.gateway.catalog
    deadline = time.monotonic() + 120
    while not (catalog.get_version("doomed", 1).progress or {}).get("step"):
        assert time.monotonic() < deadline, catalog.get_version("doomed", 1)
        time.sleep(0.2)
    os.kill(int(catalog.get_version("doomed", 1).progress["pid"]), signal.SIGKILL)
    row = wait_version(api, "doomed", 1, timeout=60)
    assert row["status"] == "error"
    assert "died" in row["error"]
    model = records(run(api, "SELECT status, error FROM mindsdb.models WHERE name = 'doomed'"))
    assert model[0]["status"] == "error" and "died" in model[0]["error"]
    jobs = records(run(api, "SELECT status FROM mindsdb.jobs WHERE model = 'doomed'"))
    assert jobs == [{"status": "error"}]


def test_restart_serves_again_and_drop_removes_deployments(
    api: TestClient, created: dict[str, Any], home: Path, ray_cluster: RayCluster
) -> None:
    from ray import serve

    # A restarted cluster has no deployments: remove them, then start a new gateway.
    for app in list(serve.status().applications):
        if app.startswith("byom-sentiment-"):
            serve.delete(app)
    with TestClient(create_app(home=home)) as again:
        deadline = time.monotonic() + 120
        while True:  # restored in the background at start-up, or on the first prediction
            response = again.post(
                "/api/sql",
                json={"query": "SELECT sentiment FROM sentiment WHERE text = 'dull and awful'"},
            )
            if response.status_code == 200:
                break
            assert time.monotonic() < deadline, response.text
            time.sleep(0.5)
        assert records(response.json())[0]["sentiment"] == "negative"
        versions = records(run(again, "DESCRIBE sentiment"))
        assert len(versions) == 2  # nothing was retrained
        # the active version 1 came back with the replicas stored with it
        assert versions[0]["replicas"] == 2
        assert replica_states("sentiment", 1) == {"RUNNING": 2}
        run(again, "DROP MODEL sentiment")
        left = [a for a in serve.status().applications if a.startswith("byom-sentiment-")]
        assert left == []
        url = versions[0]["url_predict"]
        assert httpx.post(url, json={"df": "[]"}, timeout=10).status_code == 404
