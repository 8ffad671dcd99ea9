"""Built-in model statements that fail before any training: every mistake a user can make in
CREATE ... USING task=..., RETRAIN, EVALUATE, CANCEL TRAINING and the version switch gets a
clear error with a stable code, nothing is stored, and Ray is never started (these run
without a cluster; the whole lifecycle is tests/e2e/test_builtin_lifecycle.py).
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.server import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

FROM = "FROM shop (SELECT review AS text, sentiment FROM reviews) PREDICT sentiment"


def run(api: TestClient, query: str, status: int = 200) -> dict[str, Any]:
    response = api.post("/api/sql", json={"query": query})
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    data = tmp_path / "shop.sqlite"
    with sqlite3.connect(data) as conn:
        conn.execute("CREATE TABLE reviews (review TEXT, sentiment TEXT)")
        conn.execute("INSERT INTO reviews VALUES ('good', 'pos'), ('bad', 'neg')")
    with TestClient(create_app(home=tmp_path / "home")) as client:
        params = json.dumps({"path": str(data)})
        run(client, f"CREATE DATABASE shop WITH ENGINE = 'sqlite', PARAMETERS = {params}")
        run(
            client,
            "CREATE MODEL ext PREDICT y USING url.predict = 'http://127.0.0.1:9/p', "
            "format = 'ray_serve'",
        )
        yield client
        # nothing here needed Ray: the gateway never connected
        assert not client.app.state.gateway.executor.builtin.started


@pytest.mark.parametrize(
    ("using", "code", "fragment"),
    [
        ("task = 'text_clasification'", "INVALID_OPTION", "Did you mean text_classification"),
        ("task = 'text_classification', model_name = 'no/such-model'", "INVALID_OPTION",
         "no/such-model"),
        ("task = 'text_classification', hyperparams = '{not json'", "INVALID_OPTION",
         "hyperparams is not JSON"),
        ("task = 'text_classification', hyperparams = '[1, 2]'", "INVALID_OPTION",
         "must be a JSON object"),
        ("task = 'text_classification', test_size = 1.5", "INVALID_OPTION", "test_size"),
        ("task = 'text_classification', test_sampling = 'randm'", "INVALID_OPTION",
         "Did you mean random"),
        ("task = 'text_classification', epochs = 3", "INVALID_OPTION",
         "unknown option 'epochs'"),
        ("task = 'text_classification', active = 'yes'", "INVALID_OPTION",
         "active must be true or false"),
        ("task = 'text_classification', url.predict = 'http://x/p'", "INVALID_OPTION",
         "takes no url.predict"),
        ("model_name = 'bert-base-uncased'", "INVALID_OPTION", "the task is missing"),
        ("task = 'text_classification', replicas = 0", "INVALID_OPTION",
         "replicas must be a positive whole number"),
        ("task = 'text_classification', replicas = 'x'", "INVALID_OPTION",
         "replicas must be a positive whole number (the Ray Serve replicas of the version), "
         "got 'x'"),
        ("task = 'text_classification', replicas = 1.5", "INVALID_OPTION",
         "got 1.5"),
        ("task = 'text_classification', replicas = TRUE", "INVALID_OPTION", "got True"),
        ("task = 'text_classification', replica = 2", "INVALID_OPTION",
         "Did you mean replicas"),
        ("task = 'text_classification', train_resources = 'trainer'", "INVALID_OPTION",
         "train_resources must be a JSON object"),
        ("task = 'text_classification', train_resources = '{\"trainer\": 0}'",
         "INVALID_OPTION", "positive numbers"),
        ("task = 'text_classification', replica_resources = {\"CPU\": 1}", "INVALID_OPTION",
         "BYOM_REPLICA_CPUS"),
    ],
)  # fmt: skip
def test_create_mistakes(api: TestClient, using: str, code: str, fragment: str) -> None:
    body = run(api, f"CREATE MODEL m {FROM} USING {using}", 400)
    assert body["error"]["code"] == code
    assert fragment in body["error"]["message"]
    assert run(api, "SHOW MODELS LIKE 'm'")["rows"] == []


def test_text_generation_needs_a_text_column_not_its_answer_column(api: TestClient) -> None:
    """The seed form names the task; the training query must return ``text`` - never the
    answer column (``continuation``, or the PREDICT column), which no row holds."""
    body = run(
        api,
        "CREATE MODEL model.gen FROM (SELECT 'a' AS body) AS training_data "
        "WHERE MODEL_NAME = 'text_generation'",
        400,
    )
    assert body["error"]["code"] == "INVALID_INPUT"
    assert "needs text; alias them" in body["error"]["message"]
    assert "continuation" not in body["error"]["message"]
    none = run(api, "CREATE MODEL gen PREDICT continuation USING task = 'text_generation'", 400)
    assert "SELECT ... AS text FROM" in none["error"]["message"]


def test_training_data_is_required_and_checked(api: TestClient) -> None:
    none = run(api, "CREATE MODEL m PREDICT y USING task = 'text_classification'", 400)
    assert "trained from your rows" in none["error"]["message"]
    cols = run(
        api,
        "CREATE MODEL m FROM shop (SELECT review, sentiment FROM reviews) PREDICT sentiment "
        "USING task = 'text_classification'",
        400,
    )
    assert cols["error"]["code"] == "INVALID_INPUT"
    assert "needs text, sentiment" in cols["error"]["message"]
    table = run(
        api,
        "CREATE MODEL m FROM shop (SELECT text FROM nowhere) USING task = 'text_classification'",
        400,
    )
    assert table["error"]["code"] == "DATASOURCE_ERROR"


def test_statements_on_models_that_are_not_built_in(api: TestClient) -> None:
    for sql in (
        "RETRAIN ext",
        "EVALUATE ext FROM shop (SELECT 1)",
        "CANCEL TRAINING ext",
        "UPDATE models SET active = true WHERE name = 'ext' AND version = 1",
    ):
        body = run(api, sql, 400)
        assert body["error"]["code"] == "UNSUPPORTED_STATEMENT", sql
        assert "external model" in body["error"]["message"]
    missing = run(api, "RETRAIN nosuch", 404)
    assert missing["error"]["code"] == "MODEL_NOT_FOUND"
    assert run(api, "SELECT * FROM nosuch.2 WHERE text = 'x'", 404)["error"]["code"] == (
        "MODEL_NOT_FOUND"
    )


def test_version_switch_forms(api: TestClient) -> None:
    for sql, fragment in (
        ("UPDATE models SET active = false WHERE name = 'ext' AND version = 1", "SET active"),
        ("UPDATE models SET active = true WHERE name = 'ext'", "Name the model and the version"),
        ("UPDATE mindsdb.models_versions SET active = 1 WHERE version = 2", "Name the model"),
    ):
        body = run(api, sql, 400)
        assert body["error"]["code"] == "UNSUPPORTED_STATEMENT", sql
        assert fragment in body["error"]["message"], body


def test_cluster_options_are_kept_with_the_version() -> None:
    """``replicas`` and the resources are checked and stored in the version's options (a
    restart deploys it again from there); RETRAIN keeps them unless it gives new ones."""
    from builtin_models.tasks import get_task
    from gateway import statements as st
    from gateway.builtin_planner import checked_options, plan_create
    from gateway.parser import parse_one

    def options_of(using: str) -> dict[str, Any]:
        stmt = parse_one(f"CREATE MODEL m {FROM} USING task = 'text_classification', {using}")
        assert isinstance(stmt, st.CreatePredictor)
        return plan_create(stmt, "mindsdb").spec.options

    stored = options_of(
        'replicas = 2, train_resources = \'{"trainer": 1}\', replica_resources = {"serving": 0.5}'
    )
    assert stored == {
        "replicas": 2,
        "train_resources": {"trainer": 1.0},
        "replica_resources": {"serving": 0.5},
    }
    assert options_of("replicas = '3'") == {"replicas": 3}
    # RETRAIN's options: the version's, overridden by the statement's (plan_retrain's merge)
    task = get_task("text_classification")
    kept, _ = checked_options({**stored, "test_size": 0.3}, "m", task)
    assert kept["replicas"] == 2 and kept["train_resources"] == {"trainer": 1.0}
    changed, _ = checked_options({**stored, "replicas": 4}, "m", task)
    assert changed["replicas"] == 4


def test_describe_shows_the_replicas_of_each_version() -> None:
    """DESCRIBE of a built-in model (and mindsdb.models_versions) has a replicas column:
    shown here on the catalog's versions table without training anything."""
    from datetime import UTC, datetime

    from catalog.records import ModelVersionRecord
    from gateway.executor.catalog_tables import versions_table

    now = datetime.now(UTC)
    versions = [
        ModelVersionRecord(
            predictor="m", version=n, status="complete", task="text_classification",
            job_id=n, training_datasource="shop", training_query="SELECT 1", options=options,
            progress={}, metrics={}, hyperparams={}, run_id=None, model_uri=None,
            tracking_uri=None, deployment=None, url_predict=None, error=None, active=n == 2,
            created_at=now, updated_at=now,
        )
        for n, options in ((1, {}), (2, {"replicas": 3}))
    ]  # fmt: skip
    result = versions_table(versions)
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    assert [r["replicas"] for r in rows] == [1, 3]


@pytest.mark.parametrize(
    ("wanted", "free", "expected"),
    [(1.0, 2.0, 1.0), (2.0, 2.0, 2.0), (2.0, 1.8, 1.8), (2.0, 1.79999, 1.7), (1.0, 0.0, 0.1)],
)
def test_evaluate_asks_for_no_more_cpus_than_ray_has_free(
    wanted: float, free: float, expected: float
) -> None:
    """A training-sized request beside deployed replicas would queue forever; EVALUATE's
    caller is waiting, so it takes what is free."""
    from gateway.executor.builtin_statements import evaluation_cpus

    assert evaluation_cpus(wanted, free) == expected
