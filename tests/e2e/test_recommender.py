"""The built-in recommender through SQL, on real Ray and Ray Serve: both native forms, the
seed form and HeatWave's, on synthetic interactions with a planted structure (users in
groups that like their group's items).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from builtin_models import artifacts
from gateway.executor import builtin_statements
from gateway.server import create_app
from tests.conftest import RayCluster

pytestmark = pytest.mark.slow
GROUPS, USERS_PER_GROUP, ITEMS_PER_GROUP = 4, 15, 12
HYPER = json.dumps({"epochs": 15})


def run(api: TestClient, query: str, status: int = 200, session: str = "s") -> dict[str, Any]:
    response = api.post("/api/sql", json={"query": query}, headers={"X-Byom-Session": session})
    assert response.status_code == status, response.text
    return response.json()


def records(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def group_of(entity: str) -> int:
    return int(entity.split("_")[1])


def wait(api: TestClient, model: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = records(run(api, f"DESCRIBE {model}"))
        if rows[-1]["status"] not in ("generating", "training"):
            return rows[-1]
        assert time.monotonic() < deadline, rows[-1]
        time.sleep(0.3)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """interactions(user_id, item_id, rating): each user rates 8 items of its group 4-5 and
    2 random items 1-2; items(item_id, genre); users(user_id); a NULL row and an unknown user."""
    rng = random.Random(3)
    path = tmp_path_factory.mktemp("rec") / "shop.sqlite"
    items = [f"i_{g}_{k}" for g in range(GROUPS) for k in range(ITEMS_PER_GROUP)]
    rows = []
    for g in range(GROUPS):
        for u in range(USERS_PER_GROUP):
            user = f"u_{g}_{u}"
            mine = [i for i in items if group_of(i) == g]
            rows += [(user, i, rng.choice([4, 5])) for i in rng.sample(mine, 8)]
            rows += [(user, i, rng.choice([1, 2])) for i in rng.sample(items, 2)]
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE interactions (user_id TEXT, item_id TEXT, rating INTEGER)")
        conn.executemany("INSERT INTO interactions VALUES (?, ?, ?)", rows)
        conn.execute("INSERT INTO interactions VALUES (NULL, 'i_0_0', 5)")
        conn.execute("CREATE TABLE numeric_ids (user_id INTEGER, item_id TEXT)")
        conn.execute("INSERT INTO numeric_ids VALUES (1, 'a'), (2, 'b')")
        conn.execute("CREATE TABLE users (user_id TEXT)")
        conn.executemany(
            "INSERT INTO users VALUES (?)", [(f"u_{g}_0",) for g in range(GROUPS)] + [("ghost",)]
        )
        conn.execute("CREATE TABLE items (item_id TEXT, genre TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"g{group_of(i)}") for i in items])
    return path


@pytest.fixture(scope="module")
def api(
    ray_cluster: RayCluster, data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with TestClient(create_app(home=tmp_path_factory.mktemp("rec_home"))) as client:
        params = json.dumps({"path": str(data)})
        run(client, f"CREATE DATABASE shop WITH ENGINE = 'sqlite', PARAMETERS = {params}")
        yield client


@pytest.fixture(scope="module")
def rec(api: TestClient) -> dict[str, Any]:
    """The options form, explicit feedback (PREDICT rating), with item metadata."""
    run(
        api,
        "CREATE MODEL rec FROM shop (SELECT user_id AS uid, item_id, rating FROM interactions) "
        "PREDICT rating USING task = 'recommendation', users = 'uid', items = 'item_id', "
        "feedback = 'implicit', feedback_threshold = 3, "
        'item_metadata = \'{"table_name": "shop.items"}\', '
        f"test_size = 0.2, test_sampling = 'random', hyperparams = '{HYPER}'",
    )
    return wait(api, "rec")


def test_trains_with_ranking_metrics(rec: dict[str, Any]) -> None:
    assert rec["status"] == "complete", rec["error"]
    metrics = rec["metrics"]
    assert {"precision_at_k", "recall_at_k", "hr_at_k", "ndcg_at_k"} <= set(metrics)
    assert metrics["dropped_null_rows"] == 1
    assert metrics["hr_at_k"] > 0.5


def test_the_training_loss_curve(api: TestClient, rec: dict[str, Any]) -> None:
    """The two-tower loop logs each batch's loss to MLflow; DESCRIBE reads it back."""
    curve = records(run(api, "DESCRIBE rec.training_loss"))
    assert curve and {r["version"] for r in curve} == {1}
    assert [r["step"] for r in curve] == sorted(r["step"] for r in curve)
    losses = [r["loss"] for r in curve]
    # averaged over the first and last tenth, training lowered the loss
    tenth = max(1, len(losses) // 10)
    assert sum(losses[-tenth:]) < sum(losses[:tenth])


def test_a_logged_curve_is_read_from_mlflow_once(
    api: TestClient, rec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A logged version's curve never changes: a second DESCRIBE (a console refreshing its
    model page) answers the same rows without reading MLflow again."""
    first = run(api, "DESCRIBE rec.training_loss")["rows"]
    reads: list[str] = []
    history = artifacts.metric_history
    monkeypatch.setattr(
        artifacts, "metric_history", lambda *args: reads.append(args[0]) or history(*args)
    )
    assert run(api, "DESCRIBE rec.training_loss")["rows"] == first
    assert reads == []
    builtin_statements._loss_points.cache_clear()  # a restarted gateway reads it again
    assert run(api, "DESCRIBE rec.training_loss")["rows"] == first
    assert len(reads) == 1


def test_recommends_in_group_items_for_a_user(api: TestClient, rec: dict[str, Any]) -> None:
    rows = records(
        run(
            api,
            "SELECT item_id, score, rank, cold_start FROM rec WHERE user_id = 'u_2_3' "
            "USING recommend = 'items', topk = 5",
        )
    )
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    in_group = sum(group_of(r["item_id"]) == 2 for r in rows)
    assert in_group >= 4, rows  # chance: 5 / GROUPS
    assert not any(r["cold_start"] for r in rows)
    cold = records(run(api, "SELECT item_id, cold_start FROM rec WHERE user_id = 'stranger'"))
    assert len(cold) == 3 and all(r["cold_start"] for r in cold)  # topk defaults to 3


def test_every_recommend_mode(api: TestClient, rec: dict[str, Any]) -> None:
    users = records(
        run(
            api,
            "SELECT user_id FROM rec WHERE item_id = 'i_1_0' USING recommend = 'users', topk = 4",
        )
    )
    assert sum(group_of(r["user_id"]) == 1 for r in users) >= 3
    similar = records(
        run(
            api,
            "SELECT item_id FROM rec WHERE item_id = 'i_3_1' USING recommend = 'items_to_items'",
        )
    )
    assert sum(group_of(r["item_id"]) == 3 for r in similar) >= 2
    peers = records(
        run(
            api,
            "SELECT user_id FROM rec WHERE user_id = 'u_0_1' USING recommend = 'users_to_users'",
        )
    )
    assert sum(group_of(r["user_id"]) == 0 for r in peers) >= 2
    scores = records(
        run(
            api,
            "SELECT prediction FROM rec WHERE user_id = 'u_0_1' AND item_id = 'i_0_5' "
            "USING recommend = 'ratings'",
        )
    )
    assert len(scores) == 1 and isinstance(scores[0]["prediction"], float)


def test_join_over_users_and_write_back(api: TestClient, rec: dict[str, Any]) -> None:
    rows = records(
        run(
            api,
            "SELECT u.user_id, p.item_id, p.rank FROM shop.users AS u JOIN rec AS p "
            "USING recommend = 'items', topk = 3",
        )
    )
    assert len(rows) == 5 * 3  # 4 known users and a cold-start one, 3 items each
    for r in rows:
        if r["user_id"] != "ghost":
            assert group_of(r["item_id"]) == group_of(r["user_id"]) or r["rank"] > 1
    run(
        api,
        "CREATE TABLE shop.recs AS SELECT u.user_id, p.item_id, p.rank FROM shop.users AS u "
        "JOIN rec AS p USING topk = 2",
    )
    assert records(run(api, "SELECT COUNT(*) AS n FROM shop.recs")) == [{"n": 10}]


def test_the_three_tables_are_readable(api: TestClient, rec: dict[str, Any]) -> None:
    users = records(run(api, "SELECT user_id, embedding_vector FROM local.rec_users"))
    assert len(users) == GROUPS * USERS_PER_GROUP
    items = records(run(api, "SELECT COUNT(*) AS n FROM local.rec_items"))
    assert items == [{"n": GROUPS * ITEMS_PER_GROUP}]
    inter = records(run(api, "SELECT COUNT(*) AS n FROM local.rec_interactions"))
    assert inter[0]["n"] > 0
    heatwave = records(run(api, "SELECT COUNT(*) AS n FROM ML_SCHEMA_byom.rec_items"))
    assert heatwave == items


def test_evaluate(api: TestClient, rec: dict[str, Any]) -> None:
    metrics = {
        r["metric"]: r["value"]
        for r in records(
            run(
                api,
                "EVALUATE rec FROM shop (SELECT user_id AS uid, item_id, rating FROM "
                "interactions WHERE user_id IS NOT NULL)",
            )
        )
    }
    assert metrics["rows"] > 0 and "ndcg_at_k" in metrics


def test_seed_form_and_id_rules(api: TestClient) -> None:
    body = run(
        api,
        "CREATE MODEL model.seed_rec FROM (SELECT user_id AS user_id, item_id AS item_id "
        "FROM shop.interactions WHERE shop.interactions.rating > 3) AS training_data "
        "WHERE MODEL_NAME = 'recommender'",
    )
    assert body["columns"] == ["model_id", "model_name", "model_type", "training_data", "status"]
    seeded = wait(api, "seed_rec")
    assert seeded["status"] == "complete", seeded["error"]
    numeric = run(
        api,
        "CREATE MODEL numeric FROM shop (SELECT user_id, item_id FROM numeric_ids) "
        "USING task = 'recommendation'",
    )
    assert numeric["rows"]
    failed = wait(api, "numeric")
    assert failed["status"] == "error" and "string" in failed["error"].lower()
    refused = run(
        api,
        "CREATE MODEL tt FROM shop (SELECT user_id, item_id FROM interactions) "
        "USING task = 'recommendation', model_list = '[\"TwoTower\"]'",
        400,
    )
    assert "TwoTower" in refused["error"]["message"]


def test_heatwave_forms_give_the_native_rows(api: TestClient, rec: dict[str, Any]) -> None:
    native = records(
        run(api, "SELECT * FROM rec WHERE user_id = 'u_1_2' USING recommend = 'items', topk = 3")
    )
    run(api, "SET @model = 'rec'", session="hw")
    heatwave = records(
        run(
            api,
            "SELECT sys.ML_PREDICT_ROW(JSON_OBJECT('user_id', 'u_1_2'), @model, "
            "JSON_OBJECT('recommend', 'items', 'topk', 3))",
            session="hw",
        )
    )
    assert heatwave == native
    run(api, "CALL sys.ML_MODEL_LOAD(@model, NULL)", session="hw")
    run(
        api,
        "CALL sys.ML_PREDICT_TABLE('shop.users', @model, 'shop.hw_out', "
        "JSON_OBJECT('recommend', 'items', 'topk', 2))",
        session="hw",
    )
    assert records(run(api, "SELECT COUNT(*) AS n FROM shop.hw_out")) == [{"n": 10}]
    catalog = records(
        run(
            api, "SELECT model_id, model_handle, train_table_name FROM ML_SCHEMA_byom.MODEL_CATALOG"
        )
    )
    assert any(r["model_handle"] == "rec" for r in catalog)
    run(api, "SET @trained = NULL", session="hw")
    run(
        api,
        "CALL sys.ML_TRAIN('shop.interactions', 'rating', JSON_OBJECT('task', 'recommendation', "
        "'users', 'user_id', 'items', 'item_id', 'feedback', 'implicit', "
        "'feedback_threshold', 3), @trained)",
        session="hw",
    )
    handle = records(run(api, "SELECT @trained", session="hw"))[0]["@trained"]
    assert handle and handle.startswith("shop_interactions_")
    assert wait(api, handle)["status"] == "complete"
