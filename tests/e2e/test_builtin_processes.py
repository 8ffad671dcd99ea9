"""Built-in models through real processes: ``byom sql`` embedded (it waits for training and
draws its bar), ``byom serve`` with ``byom sql --url --wait``, and a gateway killed while a
model trains: the restarted gateway marks that version ``error`` and still serves the
active version of the other model without retraining.

The processes join the session's Ray through ``RAY_ADDRESS`` (a second local Ray would not
fit on a small machine next to it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.client import Client
from gateway.processes import start_gateway
from tests.builtin_models.conftest import TINY_HYPERPARAMS, build_tiny_bert, sentiment_frame
from tests.conftest import RayCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert_processes"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE reviews (text TEXT, labels TEXT)")
        conn.executemany(
            "INSERT INTO reviews VALUES (?, ?)",
            sentiment_frame(200).itertuples(index=False, name=None),
        )
    return path


def ray_env(ray_cluster: RayCluster) -> dict[str, str]:
    return {"RAY_ADDRESS": ray_cluster.address, "RAY_AUTH_MODE": "disabled"}


def create_sql(name: str, tiny_bert: Path, epochs: int = 4) -> str:
    hyper = json.dumps({**TINY_HYPERPARAMS, "num_train_epochs": epochs})
    return (
        f"CREATE MODEL {name} FROM shop (SELECT text, labels FROM reviews) PREDICT labels "
        f"USING task = 'text_classification', model_name = '{tiny_bert}', hyperparams = '{hyper}'"
    )


def byom_sql(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "sql", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_embedded_byom_sql_waits_for_training_and_draws_its_bar(
    ray_cluster: RayCluster, tiny_bert: Path, data: Path, tmp_path: Path
) -> None:
    env = ray_env(ray_cluster)
    params = json.dumps({"path": str(data)})
    made = byom_sql(
        tmp_path, env, f"CREATE DATABASE shop WITH ENGINE = 'sqlite', PARAMETERS = {params}"
    )
    assert made.returncode == 0, made.stderr
    done = byom_sql(tmp_path, env, "--progress", "--json", create_sql("cli_model", tiny_bert))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    row = dict(zip(answer["columns"], answer["rows"][0], strict=True))
    assert (row["name"], row["version"], row["status"]) == ("cli_model", 1, "complete")
    # the bar, drawn while it trained: "cli_model v1 <phase> [####....]  NN%"
    assert re.search(
        r"cli_model v1 (generating|reading|preparing|training|evaluating|"
        r"logging|deploying) \[[#.]{20}\] +\d+%",
        done.stderr,
    ), done.stderr
    predicted = byom_sql(
        tmp_path, env, "--json", "SELECT labels FROM cli_model WHERE text = 'dull and awful'"
    )
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["rows"] == [["negative"]]


def records(result: Any) -> list[dict[str, Any]]:
    return result.records()


def test_a_killed_gateway_leaves_no_version_training_and_the_restart_serves(
    ray_cluster: RayCluster, tiny_bert: Path, data: Path, tmp_path: Path
) -> None:
    env = ray_env(ray_cluster)
    home = tmp_path / "home"
    gateway = start_gateway(home, env=env, log_dir=tmp_path)
    try:
        with Client(gateway.url) as client:
            params = json.dumps({"path": str(data)})
            client.sql(f"CREATE DATABASE shop WITH ENGINE = 'sqlite', PARAMETERS = {params}")
        waited = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "sql", "--url", gateway.url, "--wait"]
            + ["--json", create_sql("kept", tiny_bert)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert waited.returncode == 0, waited.stderr
        with Client(gateway.url) as client:
            versions = records(client.sql("DESCRIBE kept"))
            assert versions[0]["status"] == "complete", versions
            client.sql(create_sql("cut", tiny_bert, epochs=400))
            deadline = time.monotonic() + 120
            while records(client.sql("DESCRIBE cut"))[0]["phase"] != "training":
                assert time.monotonic() < deadline
                time.sleep(0.3)
        os.killpg(gateway.process.pid, signal.SIGKILL)  # no goodbye: the gateway dies
        gateway.process.wait(timeout=30)
    finally:
        gateway.stop()
    again = start_gateway(home, env=env, log_dir=tmp_path)
    try:
        with Client(again.url) as client:
            cut = records(client.sql("DESCRIBE cut"))[0]
            assert cut["status"] == "error"
            assert "interrupted" in cut["error"]
            jobs = records(client.sql("SELECT model, status FROM mindsdb.jobs"))
            assert {"model": "cut", "status": "error"} in jobs
            answer = records(
                client.sql("SELECT labels FROM kept WHERE text = 'a wonderful and moving film'")
            )
            assert answer == [{"labels": "positive"}]
            assert len(records(client.sql("DESCRIBE kept"))) == 1  # not retrained
    finally:
        again.stop()
