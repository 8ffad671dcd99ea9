"""Cancelling a running JOIN or write-back (``DELETE /api/queries/{id}``), end to end.

A real gateway behind uvicorn, a real (slow: ~20 ms a batch) ``ray_serve`` model over TCP,
and a 20,000-row SQLite source read 100 rows a batch: the statement runs for seconds, so a
cancel lands mid-way, and the test sees what its client and the progress entry say.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from byom.errors import Forbidden
from datasources.embedded import embedded_schema_path
from gateway import auth
from gateway.progress import ProgressRegistry
from gateway.server import create_app
from tests.threaded_server import serving

ROWS = 20_000
SOURCE = "SELECT t.id, p.y FROM local.test_data.src AS t JOIN slow AS p"
# One batch in flight: 200 batches of >= 20 ms, seconds in all.
JOIN = f"{SOURCE} USING batch_size = 100, concurrency = 1"


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    """A ray_serve model that sleeps 20 ms a batch and predicts ``2 * id``."""

    async def predict(request: Request) -> Response:
        rows = json.loads((await request.json())["df"])
        await asyncio.sleep(0.02)
        return JSONResponse({"prediction": [2 * r["id"] for r in rows]})

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
    with serving(app, "slow model server") as url:
        yield url


@pytest.fixture
def url(tmp_path: Path, model_url: str) -> Iterator[str]:
    """A served gateway with ``local.test_data.src`` (ids 1..ROWS) and the model ``slow``."""
    with sqlite3.connect(embedded_schema_path(tmp_path, "test_data")) as conn:
        conn.execute("CREATE TABLE src (id INTEGER)")
        conn.executemany("INSERT INTO src VALUES (?)", ((i,) for i in range(1, ROWS + 1)))
    with serving(create_app(home=tmp_path), "gateway") as base:
        sql(
            base,
            f"CREATE MODEL slow PREDICT y USING url.predict='{model_url}/predict', "
            "format='ray_serve'",
        )
        yield base


def sql(base: str, query: str, status: int = 200, **extra: Any) -> dict[str, Any]:
    response = httpx.post(f"{base}/api/sql", json={"query": query, **extra}, timeout=60)
    assert response.status_code == status, response.text
    return response.json()


def wait_rows(base: str, query_id: str, at_least: int) -> None:
    """Poll the progress entry until ``at_least`` rows are done (the statement is mid-way)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = httpx.get(f"{base}/api/queries/{query_id}")
        if response.status_code == 200 and response.json()["rows_done"] >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError(f"query {query_id} did not reach {at_least} rows")


def test_cancel_a_streamed_join(url: str) -> None:
    lines: list[dict[str, Any]] = []
    body = {"query": JOIN, "format": "ndjson", "query_id": "join-1"}
    with httpx.stream("POST", f"{url}/api/sql", json=body, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            lines.append(json.loads(line))
            if len(lines) == 4:  # the columns and a few batches: cancel mid-way
                wait_rows(url, "join-1", 300)
                cancelled = httpx.delete(f"{url}/api/queries/join-1")
                assert cancelled.status_code == 200, cancelled.text
    progress = cancelled.json()
    assert progress["status"] == "cancelled"
    assert 300 <= progress["rows_done"] < ROWS
    assert "cancelled" in progress["error"]
    error = lines[-1]["error"]
    assert error["code"] == "QUERY_CANCELLED"
    assert error["rows_done"] == progress["rows_done"]
    assert f"{progress['rows_done']} rows were done" in error["message"]
    sent = sum(len(line.get("rows", [])) for line in lines[1:-1])
    assert 0 < sent <= progress["rows_done"] < ROWS
    # the entry stays cancelled; a second cancel says it finished, and how
    assert httpx.get(f"{url}/api/queries/join-1").json()["status"] == "cancelled"
    again = httpx.delete(f"{url}/api/queries/join-1")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "QUERY_FINISHED"
    assert "already finished (cancelled" in again.json()["error"]["message"]
    assert sql(url, "SELECT 1 AS one")["rows"] == [[1]]  # the gateway still answers


def test_cancel_a_write_back_keeps_the_written_batches(url: str) -> None:
    answer: dict[str, Any] = {}

    def write() -> None:
        statement = f"CREATE TABLE local.test_data.preds AS {JOIN}"
        response = httpx.post(
            f"{url}/api/sql", json={"query": statement, "query_id": "write-1"}, timeout=60
        )
        answer.update(status=response.status_code, body=response.json())

    writer = threading.Thread(target=write)
    writer.start()
    wait_rows(url, "write-1", 300)
    cancelled = httpx.delete(f"{url}/api/queries/write-1")
    writer.join(timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    progress = cancelled.json()
    assert progress["status"] == "cancelled"
    written = progress["rows_done"]
    assert 300 <= written < ROWS
    assert answer["status"] == 409
    error = answer["body"]["error"]
    assert error["code"] == "QUERY_CANCELLED"
    assert error["rows_written"] == written
    assert f"{written} rows were written to preds and stay there" in error["message"]
    count = sql(url, "SELECT COUNT(*) AS n FROM local.test_data.preds")["rows"]
    assert count == [[written]]
    assert sql(url, "SELECT 1 AS one")["rows"] == [[1]]


def test_unknown_and_finished_queries(url: str) -> None:
    missing = httpx.delete(f"{url}/api/queries/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "QUERY_NOT_FOUND"
    done = sql(url, f"{SOURCE} LIMIT 5", query_id="j")
    assert len(done["rows"]) == 5
    finished = httpx.delete(f"{url}/api/queries/j")
    assert finished.status_code == 409
    error = finished.json()["error"]
    assert error["code"] == "QUERY_FINISHED"
    assert "already finished (done)" in error["message"]


class _Store:
    """A catalog stand-in holding one running query of another replica."""

    def __init__(self) -> None:
        other = ProgressRegistry(owner="replica-b")
        self.record = other.start("SELECT ...", "join", "elsewhere").record("replica-b")

    def save_query(self, record: Any, keep_finished: int | None = None) -> None:
        pass

    def find_query(self, query_id: str) -> Any:
        return self.record if query_id == self.record.id else None

    def list_queries(self) -> list[Any]:
        return [self.record]


def test_a_query_of_another_replica_is_refused_by_name() -> None:
    registry = ProgressRegistry(store=_Store(), owner="replica-a")
    with pytest.raises(Exception) as caught:
        registry.cancel("elsewhere")
    assert getattr(caught.value, "code", None) == "QUERY_ON_OTHER_REPLICA"
    assert caught.value.status == 409  # type: ignore[attr-defined]
    assert "replica-b" in str(caught.value)
    registry.close()


def test_a_reader_cancels_only_its_own_queries(tmp_path: Path) -> None:
    from gateway.core import Gateway

    async def scenario() -> None:
        gateway = await Gateway.start(tmp_path)
        try:
            progress = gateway.services.progress
            token = auth.current.set(auth.Principal("alice", "reader"))
            try:
                own = progress.start("SELECT ...", "join", "mine")
            finally:
                auth.current.reset(token)
            theirs = progress.start("SELECT ...", "join", "theirs")
            token = auth.current.set(auth.Principal("alice", "reader"))
            try:
                assert gateway.cancel_query("mine") is own
                with pytest.raises(Forbidden):
                    gateway.cancel_query("theirs")
            finally:
                auth.current.reset(token)
            token = auth.current.set(auth.Principal("bob", "writer"))
            try:
                assert gateway.cancel_query("theirs") is theirs
            finally:
                auth.current.reset(token)
            assert own.cancel_requested and theirs.cancel_requested
        finally:
            await gateway.close()

    asyncio.run(scenario())
