"""The gateway deployed on a real multi-node Ray cluster (issue 10).

A head node (2 CPUs) and a second node declaring the custom resource ``trainer`` are
started with Ray's own ``ray start``; the gateway runs on them as a Ray Serve application
with 2 replicas (``byom serve --ray``) over a PostgreSQL catalog of its own. Then, through
Serve's proxy: an external model is registered and predicted by both replicas; a built-in
model trains on the ``trainer`` node (BYOM_TRAIN_RESOURCES) while both replicas keep
answering; the replica that owns a training job is killed with SIGKILL and the job ends
``error`` on its own (heartbeat), after which the model retrains. Before all that, the Serve
config file of deploy/ is deployed with Ray's real ``serve run``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.processes import Service, free_port, start_gateway, wait_http
from tests.builtin_models.conftest import TINY_HYPERPARAMS, build_tiny_bert, sentiment_frame
from tests.e2e import recording_model
from tests.pg_fixtures import fresh_database
from tests.ray_nodes import RayNodes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_TIMEOUT_S = 6
REPLICA_HEADER = "X-Byom-Replica"


@pytest.fixture(scope="module")
def nodes() -> Iterator[RayNodes]:
    cluster = RayNodes.start_head(num_cpus=2)
    try:
        # 2 CPUs: Serve may place a gateway replica (0.25 CPU) here too, next to the
        # training task's 1 CPU.
        cluster.add_node("trainer", num_cpus=2, resources={"trainer": 1})
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def serve_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def catalog_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of this module's own: the replicas' shared catalog."""
    with fresh_database(postgres_url, "byom_test_cluster") as url:
        yield url


def test_the_serve_config_file_deploys_with_serve_run(
    nodes: RayNodes, serve_port: int, tmp_path: Path
) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "serve_config.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": serve_port}
    args = config["applications"][0]["args"]
    # This machine's stand-ins for the cluster's shared services.
    args["catalog_url"] = f"sqlite:///{tmp_path / 'catalog.db'}"
    args["home"] = str(tmp_path / "home")
    args["env"].pop("BYOM_TRACKING_URI")
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    serve = Path(sys.executable).parent / "serve"
    log = tmp_path / "serve_run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(serve), "run", "--address", nodes.address, str(path)],
            env=nodes.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{serve_port}"
    try:
        wait_http(f"{url}/healthz", 180, process, log_path=log, what="serve run")
        wait_routes(url)
        replicas = {_status(url)["gateway"]["replica"] for _ in range(30)}
        assert len(replicas) == 2, replicas  # args.replicas of the config file
        answer = httpx.post(f"{url}/api/sql", json={"query": "SHOW MODELS"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] == []
    finally:
        process.send_signal(signal.SIGINT)  # serve run's Ctrl-C: it tears its app down
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_routes(url: str, timeout: float = 120) -> None:
    """Until ``/api/status`` answers 200 ten times in a row: every node's Serve proxy (one
    per node, all on one port here) learns the app's routes a moment after it is up."""
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while in_a_row < 10:
        assert time.monotonic() < deadline, "Serve's proxies never all routed /api/status"
        try:
            ok = httpx.get(f"{url}/api/status", timeout=30).status_code == 200
        except httpx.TransportError:
            ok = False
        in_a_row = in_a_row + 1 if ok else 0
        if not ok:
            time.sleep(0.5)


def _status(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/status", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def gateway(
    nodes: RayNodes, serve_port: int, catalog_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """``byom serve --ray`` with 2 replicas on the cluster, built-in training pinned to the
    ``trainer`` node, heartbeats quick enough for a test."""
    home = tmp_path_factory.mktemp("cluster_home")
    env = {
        "RAY_ADDRESS": nodes.address,
        "RAY_AUTH_MODE": "disabled",
        "BYOM_TRAIN_RESOURCES": json.dumps({"trainer": 1}),
        "BYOM_TRAIN_CPUS": "1",
        "BYOM_HEARTBEAT_INTERVAL": "1",
        "BYOM_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
    }
    service = start_gateway(
        home,
        port=serve_port,
        log_dir=home,
        env=env,
        timeout=240,
        extra_args=["--ray", "--replicas", "2", "--catalog-url", catalog_url],
    )
    try:
        wait_routes(service.url)
        yield service
    finally:
        service.stop(timeout=60)


def sql(url: str, query: str, status: int = 200) -> tuple[dict[str, Any], str]:
    """Run ``query``; its answer and the replica that answered."""
    response = httpx.post(f"{url}/api/sql", json={"query": query}, timeout=120)
    assert response.status_code == status, response.text
    return response.json(), response.headers[REPLICA_HEADER]


def records(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def test_two_replicas_share_the_catalog(gateway: Service) -> None:
    with recording_model.running() as model:
        _, registered_by = sql(
            gateway.url,
            f"CREATE PREDICTOR doubler PREDICT y USING url.predict='{model.url}/predict', "
            "format='ray_serve'",
        )
        answers: dict[str, list[Any]] = {}
        for x in range(40):
            body, replica = sql(gateway.url, f"SELECT y FROM doubler WHERE x = {x}")
            answers.setdefault(replica, []).append((x, body["rows"]))
            if len(answers) == 2 and x >= 10:
                break
        assert len(answers) == 2, f"one replica answered every request: {list(answers)}"
        assert registered_by in answers
        for replica, seen in answers.items():
            assert all(rows == [[2 * x]] for x, rows in seen), (replica, seen)
        # a DROP through one replica is seen by the other on its next statement
        dropped_by = sql(gateway.url, "DROP PREDICTOR doubler")[1]
        for _ in range(10):
            body, replica = sql(gateway.url, "DESCRIBE doubler", status=404)
            assert body["error"]["code"] == "MODEL_NOT_FOUND"
            if replica != dropped_by:
                break
        assert replica != dropped_by


@pytest.fixture(scope="module")
def shop(gateway: Service, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT and a SQLite datasource ``shop`` of reviews (one machine: every node
    reads the file)."""
    where = tmp_path_factory.mktemp("cluster_shop")
    path = where / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE reviews (text TEXT, labels TEXT)")
        conn.executemany(
            "INSERT INTO reviews VALUES (?, ?)",
            sentiment_frame(200).itertuples(index=False, name=None),
        )
    params = json.dumps({"path": str(path)})
    sql(gateway.url, f"CREATE DATABASE shop WITH ENGINE = 'sqlite', PARAMETERS = {params}")
    return build_tiny_bert(where / "tiny_bert")


def create(name: str, bert: Path, epochs: int) -> str:
    hyper = json.dumps({**TINY_HYPERPARAMS, "num_train_epochs": epochs})
    return (
        f"CREATE MODEL {name} FROM shop (SELECT text, labels FROM reviews) PREDICT labels "
        f"USING task = 'text_classification', model_name = '{bert}', hyperparams = '{hyper}'"
    )


def version_row(url: str, model: str, version: int) -> dict[str, Any]:
    body = _retrying_sql(url, f"DESCRIBE {model}")
    return {r["version"]: r for r in records(body)}[version]


def _retrying_sql(url: str, query: str, attempts: int = 30) -> dict[str, Any]:
    """``query``'s answer, retried while Serve replaces a replica that died (503/500)."""
    for _ in range(attempts):
        try:
            response = httpx.post(f"{url}/api/sql", json={"query": query}, timeout=60)
        except httpx.TransportError:
            time.sleep(1)
            continue
        if response.status_code == 200:
            return response.json()
        assert response.status_code >= 500, response.text
        time.sleep(1)
    raise AssertionError(f"{query!r} kept failing")


def wait_version(url: str, model: str, version: int, until: Any, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        row = version_row(url, model, version)
        if until(row):
            return row
        assert time.monotonic() < deadline, f"{model} v{version} stuck: {row}"
        time.sleep(0.5)


def test_training_runs_on_the_trainer_node_while_both_replicas_answer(
    gateway: Service, shop: Path
) -> None:
    sql(gateway.url, create("sentiment", shop, epochs=4))
    during: set[str] = set()
    while version_row(gateway.url, "sentiment", 1)["status"] in ("generating", "training"):
        during.add(httpx.get(f"{gateway.url}/api/status", timeout=30).headers[REPLICA_HEADER])
        time.sleep(0.2)
    row = version_row(gateway.url, "sentiment", 1)
    assert row["status"] == "complete", row
    assert len(during) == 2, f"only {during} answered while the model trained"
    # Only the second node declares `trainer`: the training task could run nowhere else.
    nodes = _status(gateway.url)["cluster"]["nodes"]
    assert [n["resources"].get("trainer") for n in nodes if n["alive"]].count(1.0) == 1
    body, _ = sql(gateway.url, "SELECT labels FROM sentiment WHERE text = 'dull and awful'")
    assert body["rows"] == [["negative"]]


def test_a_killed_owner_replica_leaves_its_job_in_error_and_the_model_retrains(
    gateway: Service, shop: Path
) -> None:
    sql(gateway.url, create("longrun", shop, epochs=400))
    wait_version(gateway.url, "longrun", 1, lambda r: r["phase"] == "training", timeout=240)
    jobs = [j for j in _status(gateway.url)["jobs"] if j["model"] == "longrun"]
    assert len(jobs) == 1, jobs
    owner = jobs[0]["owner"]
    pid = int(owner.split(":")[1])  # "<host>:<pid>:<nonce>"
    os.kill(pid, signal.SIGKILL)  # the replica dies without a word; Serve replaces it
    row = wait_version(
        gateway.url,
        "longrun",
        1,
        lambda r: r["status"] == "error",
        timeout=HEARTBEAT_TIMEOUT_S * 20,
    )
    assert "owner lost" in row["error"] or "interrupted" in row["error"], row
    jobs = records(_retrying_sql(gateway.url, "SELECT model, status FROM mindsdb.jobs"))
    assert {"model": "longrun", "status": "error"} in jobs
    # retrainable: a new version trains to the end
    hyper = json.dumps({**TINY_HYPERPARAMS, "num_train_epochs": 2})
    _retrying_sql(gateway.url, f"RETRAIN longrun USING hyperparams = '{hyper}'")
    row = wait_version(
        gateway.url, "longrun", 2, lambda r: r["status"] not in ("generating", "training")
    )
    assert row["status"] == "complete", row


def test_an_engine_ray_join_from_a_replica_equals_the_local_one(
    gateway: Service, tmp_path: Path
) -> None:
    """A replica (itself a Ray actor) runs the JOIN on Ray Data across both nodes."""
    path = tmp_path / "numbers.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE numbers (id INTEGER, x INTEGER)")
        conn.executemany("INSERT INTO numbers VALUES (?, ?)", [(i, i % 97) for i in range(20_000)])
    params = json.dumps({"path": str(path)})
    sql(gateway.url, f"CREATE DATABASE nums WITH ENGINE = 'sqlite', PARAMETERS = {params}")
    with recording_model.running() as model:
        sql(
            gateway.url,
            f"CREATE PREDICTOR twice PREDICT y USING url.predict='{model.url}/predict', "
            "format='ray_serve'",
        )
        join = "SELECT t.id, m.y FROM nums.numbers AS t JOIN twice AS m ORDER BY t.id "
        local, _ = sql(gateway.url, join + "USING batch_size = 500, engine = 'local'")
        on_ray, _ = sql(gateway.url, join + "USING batch_size = 500, engine = 'ray', workers = 2")
        sql(gateway.url, "DROP PREDICTOR twice")
    assert len(local["rows"]) == 20_000
    assert on_ray == local
    assert local["rows"][:3] == [[0, 0], [1, 2], [2, 4]]  # the model doubles the first column


def test_training_no_node_can_take_says_queued_and_can_be_cancelled(
    gateway: Service, shop: Path, nodes: RayNodes
) -> None:
    sql(gateway.url, create("stranded", shop, epochs=1) + ", train_resources = '{\"gpu_box\": 1}'")
    row = wait_version(gateway.url, "stranded", 1, lambda r: r["phase"] == "queued", timeout=120)
    assert row["status"] == "training", row  # not an error: a node may yet join
    sql(gateway.url, "CANCEL TRAINING stranded")
    row = wait_version(gateway.url, "stranded", 1, lambda r: r["status"] == "error", timeout=120)
    assert "cancel" in row["error"], row
    sql(gateway.url, "DROP MODEL stranded")
    # DROP alone, through whichever replica: the owner stops the job first, nothing stays
    sql(gateway.url, create("stranded2", shop, epochs=1) + ", train_resources = '{\"gpu_box\": 1}'")
    wait_version(gateway.url, "stranded2", 1, lambda r: r["phase"] == "queued", timeout=120)
    assert "gpu_box" in pending_demands(nodes)  # the task waits on Ray
    sql(gateway.url, "DROP MODEL stranded2")
    assert not [j for j in _status(gateway.url)["jobs"] if j["model"] == "stranded2"]
    deadline = time.monotonic() + 60  # Ray's status refreshes every few seconds
    while "gpu_box" in pending_demands(nodes):
        assert time.monotonic() < deadline, "the dropped model's training task still waits"
        time.sleep(1)


def pending_demands(nodes: RayNodes) -> str:
    """The "Pending Demands" part of `ray status` on the test cluster."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "status", "--address", nodes.address],
        env=nodes.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.partition("Pending Demands:")[2]
