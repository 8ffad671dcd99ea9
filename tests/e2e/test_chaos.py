"""Chaos: real services broken in the middle of work.

Each test starts real processes - ``byom serve``, a small HTTP model server answering the
``ray_serve`` wire format, the shared PostgreSQL - breaks one of them while a statement
runs, then checks four things:

- the client got a clear error (a code, and a message naming what failed), never a
  silently short answer;
- nothing stays ``running`` (``mindsdb.queries`` / ``mindsdb.jobs``, and the catalog read
  directly once the gateway stopped);
- the catalog is consistent (the model is unchanged, a write-back's row count is true);
- the gateway keeps serving (``SHOW MODELS`` and ``/healthz`` answer afterwards).

The model server sleeps a little per batch and the statements use ``batch_size = 100`` over
20,000 rows, so a statement lasts seconds; every break is triggered by an event (the first
rows read, the first progress recorded), never by a fixed sleep.

PostgreSQL is shared with other people's tests: every outage here lasts seconds, and a
``finally`` brings the server back (waiting for ``pg_isready``) even when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from byom.errors import GatewayError, NotFound
from catalog.db import catalog_url
from catalog.liveness import STATEMENT_STOPPED
from catalog.records import QueryRecord
from catalog.repository import Catalog
from gateway.client import Client
from gateway.processes import Service, free_port, start_gateway, wait_http

pytestmark = pytest.mark.slow

ROWS = 20_000
BATCH = 100
# Seconds the model sleeps per batch: 200 batches one at a time last >= 4 s, long enough
# to break something in the middle, short enough for a quick module.
DELAY = 0.02
# The environment variables that would point a gateway somewhere other than its home.
_REDIRECTING_ENV = ("BYOM_CATALOG_URL", "BYOM_URL", "BYOM_HOME", "BYOM_TOKEN")

# A real model endpoint in its own process (so it can be killed): POST /predict answers
# ``2 * first column`` in the ray_serve wire format after sleeping DELAY seconds; GET /seen
# says how many predict requests have arrived (finished or not).
MODEL_APP = r"""
import asyncio, json, sys
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn

DELAY = float(sys.argv[2])
SEEN = [0]

async def predict(request):
    SEEN[0] += 1
    rows = json.loads((await request.json())["df"])
    await asyncio.sleep(DELAY)
    return JSONResponse({"prediction": [2 * next(iter(r.values())) for r in rows]})

async def ping(request):
    return JSONResponse({"ok": True})

async def seen(request):
    return JSONResponse({"seen": SEEN[0]})

app = Starlette(routes=[
    Route("/predict", predict, methods=["POST"]), Route("/ping", ping), Route("/seen", seen),
])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

JOIN = (
    f"SELECT t.x, p.y FROM {{source}} AS t JOIN m AS p USING batch_size = {BATCH}, concurrency = 1"
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _REDIRECTING_ENV:
        monkeypatch.delenv(name, raising=False)


# -- services ---------------------------------------------------------------------------


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, Callable[..., Service]]]:
    """``gateway(home, env=None)`` and ``model(delay)`` starters; all stopped at teardown."""
    started: list[Service] = []
    logs = tmp_path / "logs"

    def gateway(home: Path, env: dict[str, str] | None = None) -> Service:
        service = start_gateway(home, log_dir=logs, env=env)
        started.append(service)
        return service

    def model(delay: float = DELAY) -> Service:
        logs.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = logs / f"model_{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", MODEL_APP, str(port), str(delay)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # killpg reaches it and nothing else
            )
        service = Service("model", f"http://127.0.0.1:{port}", process, log_path)
        started.append(service)
        wait_http(f"{service.url}/ping", 60, process, log_path=log_path, what="the model server")
        return service

    try:
        yield {"gateway": gateway, "model": model}
    finally:
        for service in reversed(started):
            service.stop()


def kill(service: Service) -> None:
    """SIGKILL the service's whole process group (a crash: nothing runs on the way out)."""
    os.killpg(service.process.pid, signal.SIGKILL)
    assert service.process.wait(timeout=30) == -signal.SIGKILL


def make_source(path: Path, table: str = "src", rows: int = ROWS) -> Path:
    """A SQLite file with ``table(x INTEGER)`` holding 0 .. rows-1."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"CREATE TABLE {table} (x INTEGER)")
        conn.executemany(f"INSERT INTO {table} VALUES (?)", ((i,) for i in range(rows)))
    return path


def count_rows(path: Path, table: str) -> int | None:
    """Rows in ``table`` of the SQLite file, None when the table does not exist."""
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if found is None:
            return None
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def seen(model: Service) -> int:
    """Predict requests the model server has received so far."""
    return int(httpx.get(f"{model.url}/seen", timeout=10).json()["seen"])


def setup_gateway(client: Client, model: Service, data: Path | None) -> None:
    """Register model ``m`` on the model server and (with ``data``) SQLite datasource ds."""
    if data is not None:
        params = json.dumps({"path": str(data)})
        client.sql(f"CREATE DATABASE ds WITH ENGINE = 'sqlite', PARAMETERS = {params}")
    client.sql(
        f"CREATE MODEL m PREDICT y USING url.predict = '{model.url}/predict', "
        'format = \'ray_serve\', dtype_dict = {"x": "integer", "y": "integer"}'
    )


def eventually(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``check`` every 20 ms until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rows_done(client: Client, query_id: str) -> int:
    """The statement's rows done; 0 until its request has reached the gateway."""
    try:
        return int(client.query_progress(query_id)["rows_done"])
    except NotFound:  # the background thread has not sent it yet
        return 0


@contextmanager
def in_background(call: Callable[[], Any]) -> Iterator[dict[str, Any]]:
    """Run ``call`` in a thread; the dict gets ``result`` or ``error`` once it ended
    (the thread is joined on leaving the block)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        thread.join(timeout=120)
        assert not thread.is_alive(), "the background statement never ended"


# -- what every test checks afterwards --------------------------------------------------


def query_row(client: Client, query_id: str) -> dict[str, Any]:
    """The statement's row of ``mindsdb.queries``."""
    rows = [r for r in client.sql("SELECT * FROM mindsdb.queries").records() if r["id"] == query_id]
    assert len(rows) == 1, rows
    return rows[0]


def assert_serving(client: Client, models: list[str]) -> None:
    """The gateway answers: /healthz ok, SHOW MODELS lists ``models``, nothing running."""
    assert client.health()["status"] == "ok"
    assert sorted(r["name"] for r in client.sql("SHOW MODELS").records()) == sorted(models)
    queries = client.sql("SELECT * FROM mindsdb.queries").records()
    assert [q for q in queries if q["status"] == "running"] == []
    jobs = client.sql("SELECT * FROM mindsdb.jobs").records()
    assert [j for j in jobs if j["status"] == "running"] == []


def stored_queries(url: str) -> dict[str, QueryRecord]:
    """The catalog's statements by id, read directly (the gateway stopped)."""
    catalog = Catalog(url)
    try:
        assert [j for j in catalog.list_jobs() if j.status == "running"] == []
        return {q.id: q for q in catalog.list_queries()}
    finally:
        catalog.close()


def assert_model_unchanged(url: str) -> None:
    """Model m is still complete and alone in the catalog."""
    catalog = Catalog(url)
    try:
        assert [(p.name, p.status) for p in catalog.list_predictors()] == [("m", "complete")]
    finally:
        catalog.close()


# -- a. the model endpoint dies -------------------------------------------------------------


def test_model_killed_mid_join_stream(tmp_path: Path, services: dict[str, Any]) -> None:
    data = make_source(tmp_path / "data.sqlite")
    model = services["model"]()
    home = tmp_path / "home"
    gateway = services["gateway"](home)
    with Client(gateway.url) as client:
        setup_gateway(client, model, data)
        stream = client.iter_sql(JOIN.format(source="ds.src"), query_id="chaos-join")
        got: list[list[Any]] = []
        with stream, pytest.raises(GatewayError) as caught:
            for batch in stream:
                got.extend(batch)
                if model.running:  # the first rows are here: the JOIN is mid-stream
                    kill(model)
        error = caught.value
        # never a silently short answer: the stream raised, with what failed
        assert error.code in ("ENDPOINT_UNREACHABLE", "ENDPOINT_BAD_RESPONSE"), error
        assert "'m'" in error.message and model.url in error.message, error.message
        assert 0 < len(got) < ROWS
        assert got == [[i, 2 * i] for i in range(len(got))]  # what came is right

        row = query_row(client, "chaos-join")
        assert row["status"] == "error" and "'m'" in row["error"]
        assert row["rows_done"] >= len(got)
        assert_serving(client, ["m"])
        assert client.sql("DESCRIBE m").records()[0]["status"] == "complete"
    gateway.stop()
    stored = stored_queries(catalog_url(home))
    assert stored["chaos-join"].status == "error"
    assert_model_unchanged(catalog_url(home))


def test_model_killed_mid_write_back(tmp_path: Path, services: dict[str, Any]) -> None:
    data = make_source(tmp_path / "data.sqlite")
    model = services["model"]()
    home = tmp_path / "home"
    gateway = services["gateway"](home)
    statement = "CREATE TABLE ds.out AS " + JOIN.format(source="ds.src")
    with Client(gateway.url) as client, Client(gateway.url) as watcher:
        setup_gateway(client, model, data)
        with in_background(lambda: client.sql(statement, query_id="chaos-write")) as outcome:
            # this gateway's own progress is fresh (not throttled): a few batches written
            eventually(
                "the first batches written",
                lambda: rows_done(watcher, "chaos-write") >= 3 * BATCH,
            )
            kill(model)
        error = outcome.get("error")
        assert isinstance(error, GatewayError), outcome
        assert error.code in ("ENDPOINT_UNREACHABLE", "ENDPOINT_BAD_RESPONSE"), error
        assert "'m'" in error.message and model.url in error.message, error.message
        said = re.search(r"(\d+) rows were already written to out", error.message)
        assert said is not None, error.message
        written = int(said.group(1))
        # the error tells the truth: exactly that many rows are in the table
        assert written >= 3 * BATCH and written % BATCH == 0
        assert count_rows(data, "out") == written

        row = query_row(watcher, "chaos-write")
        assert row["status"] == "error" and f"{written} rows were already written" in row["error"]
        assert_serving(watcher, ["m"])
    gateway.stop()
    assert stored_queries(catalog_url(home))["chaos-write"].status == "error"
    assert_model_unchanged(catalog_url(home))


# -- c. the gateway itself is killed ------------------------------------------------------


def recorded(url: str, query_id: str) -> QueryRecord | None:
    """The statement as the catalog holds it (another reader of the live gateway's file)."""
    catalog = Catalog(url)
    try:
        return catalog.find_query(query_id)
    finally:
        catalog.close()


def test_gateway_killed_mid_write_back_is_recorded_with_rows_written(
    tmp_path: Path, services: dict[str, Any]
) -> None:
    data = make_source(tmp_path / "data.sqlite")
    model = services["model"]()
    home = tmp_path / "home"
    url = catalog_url(home)
    gateway = services["gateway"](home)
    statement = "CREATE TABLE ds.out AS " + JOIN.format(source="ds.src")
    with Client(gateway.url) as client:
        setup_gateway(client, model, data)
        with in_background(lambda: client.sql(statement, query_id="chaos-kill")) as outcome:
            # the throttled progress (~every 0.5 s) reached the catalog with some rows
            eventually(
                "progress recorded in the catalog",
                lambda: (r := recorded(url, "chaos-kill")) is not None and r.rows_done >= 300,
            )
            kill(gateway)
        error = outcome.get("error")
        assert isinstance(error, GatewayError), outcome
        # the client learns the connection broke; it is not told the statement succeeded
        assert error.code == "GATEWAY_UNREACHABLE", error
        assert gateway.url in error.message

    before = recorded(url, "chaos-kill")
    assert before is not None and before.status == "running"  # nothing ran on the way out
    in_table = count_rows(data, "out")
    assert in_table is not None and in_table >= before.rows_done >= 300

    restarted = services["gateway"](home)
    with Client(restarted.url) as client:
        row = query_row(client, "chaos-kill")
        assert row["status"] == "error"
        assert row["error"].startswith(STATEMENT_STOPPED)
        assert f"at least {before.rows_done} rows had been written" in row["error"]
        assert "CREATE PREDICTOR" not in row["error"]  # the training message is not for this
        assert row["finished_at"] is not None
        assert_serving(client, ["m"])
        # the rows written before the crash stayed; the table is usable
        assert client.sql("SELECT count(*) AS n FROM ds.out").rows == [[in_table]]
    restarted.stop()
    stored = stored_queries(url)["chaos-kill"]
    assert (stored.status, stored.rows_done) == ("error", before.rows_done)
    assert count_rows(data, "out") == in_table  # recovery touched no user data
    assert_model_unchanged(url)


def test_gateway_killed_after_creating_the_table_before_any_progress_was_recorded(
    tmp_path: Path, services: dict[str, Any]
) -> None:
    """The write-back's table exists and holds rows, but the catalog still says 0 rows
    (its progress writes were held up): the error must not claim nothing was written."""
    data = make_source(tmp_path / "data.sqlite")
    # A slow first batch: the catalog is locked while the model holds it, so the lock
    # always falls between the statement's catalog reads and its first progress write.
    model = services["model"](delay=2.0)
    home = tmp_path / "home"
    url = catalog_url(home)
    gateway = services["gateway"](home)
    statement = "CREATE TABLE ds.early AS " + JOIN.format(source="ds.src")
    with Client(gateway.url) as client:
        setup_gateway(client, model, data)
        with in_background(lambda: client.sql(statement, query_id="chaos-early")) as outcome:
            eventually("the statement's start", lambda: recorded(url, "chaos-early"))
            # Lock only once the JOIN sent its first batch: by then everything it does in
            # the catalog before the batches is done, so the lock holds up progress only.
            eventually("the first batch at the model", lambda: seen(model) > 0)
            # Hold the catalog's write lock: the progress writes wait (in their own
            # thread), while the JOIN keeps writing batches to the datasource file.
            lock = sqlite3.connect(home / "catalog.sqlite", isolation_level=None, timeout=30)
            try:
                lock.execute("BEGIN IMMEDIATE")
                (done,) = lock.execute(
                    "SELECT rows_done FROM queries WHERE id = 'chaos-early'"
                ).fetchone()
                assert done == 0, "progress was recorded before the catalog was locked"
                eventually("rows in the new table", lambda: (count_rows(data, "early") or 0) > 0)
                kill(gateway)
            finally:
                lock.rollback()
                lock.close()
        assert isinstance(outcome.get("error"), GatewayError), outcome

    before = recorded(url, "chaos-early")
    assert before is not None and (before.status, before.rows_done) == ("running", 0)
    in_table = count_rows(data, "early")
    assert in_table is not None and in_table > 0

    restarted = services["gateway"](home)
    with Client(restarted.url) as client:
        row = query_row(client, "chaos-early")
        assert row["status"] == "error" and row["error"].startswith(STATEMENT_STOPPED)
        # honest about it: no count recorded, but the table may exist with rows in it
        assert "before any written rows were recorded" in row["error"]
        assert "may exist" in row["error"]
        assert_serving(client, ["m"])
    restarted.stop()
    assert stored_queries(url)["chaos-early"].status == "error"
    assert count_rows(data, "early") == in_table


# -- b. PostgreSQL restarts -----------------------------------------------------------------


def _pg_address(postgres_url: str) -> tuple[str, int]:
    """Host and port of the test server, which must be this machine's cluster (the one
    these tests can restart)."""
    url = make_url(postgres_url)
    host, port = url.host or "127.0.0.1", url.port or 5432
    if host not in ("127.0.0.1", "localhost"):
        pytest.fail(f"the chaos tests restart the local PostgreSQL; BYOM_TEST_PG is {host}")
    return host, port


def _pg_cluster() -> list[str]:
    """``version main`` of the newest local cluster, as .ci/run picks it."""
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])
    return [versions[-1], "main"]


def pg_ready(host: str, port: int) -> bool:
    done = subprocess.run(
        ["pg_isready", "-q", "-h", host, "-p", str(port)], check=False, timeout=30
    )
    return done.returncode == 0


def pg_ctl(action: str) -> None:
    """``pg_ctlcluster <version> main <action>`` (fast mode: sessions are cut at once)."""
    subprocess.run(
        ["pg_ctlcluster", "-m", "fast", *_pg_cluster(), action],
        check=True,
        timeout=120,
        capture_output=True,
    )


@contextmanager
def postgres_kept_running(postgres_url: str) -> Iterator[tuple[str, int]]:
    """Whatever the block does to PostgreSQL, it is running and ready on leaving."""
    host, port = _pg_address(postgres_url)
    assert pg_ready(host, port), "PostgreSQL must be up before a chaos test breaks it"
    try:
        yield host, port
    finally:
        if not pg_ready(host, port):
            # exit code 2: already running (another start raced ours)
            subprocess.run(["pg_ctlcluster", *_pg_cluster(), "start"], check=False, timeout=120)
        deadline = time.monotonic() + 60
        while not pg_ready(host, port):
            assert time.monotonic() < deadline, "PostgreSQL did not come back"
            time.sleep(0.2)


@contextmanager
def pg_schema(postgres_url: str) -> Iterator[dict[str, Any]]:
    """Datasource PARAMETERS for a new schema holding ``src(x)`` = 0 .. ROWS-1, dropped on
    exit. Not the session's ``postgres_params``: its pooled admin connection would not
    survive the restarts here; each engine of this module lives only while it is used."""
    url = make_url(postgres_url)
    schema = f"byom_chaos_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            series = f"generate_series(0, {ROWS - 1})"
            conn.exec_driver_sql(f'CREATE TABLE "{schema}".src AS SELECT g AS x FROM {series} g')
    finally:
        admin.dispose()
    try:
        yield {
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "user": url.username,
            "password": url.password,
            "database": url.database,
            "schema": schema,
        }
    finally:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            admin.dispose()


@pytest.mark.postgres
def test_postgres_restarted_mid_join_from_a_postgres_datasource(
    tmp_path: Path, services: dict[str, Any], postgres_url: str
) -> None:
    model = services["model"]()
    home = tmp_path / "home"
    gateway = services["gateway"](home)
    with (
        pg_schema(postgres_url) as params,
        postgres_kept_running(postgres_url) as (host, port),
        Client(gateway.url) as client,
    ):
        source = f"pg.{params['schema']}.src"
        setup_gateway(client, model, None)
        client.sql(
            f"CREATE DATABASE pg WITH ENGINE = 'postgres', PARAMETERS = {json.dumps(params)}"
        )
        stream = client.iter_sql(JOIN.format(source=source), query_id="chaos-pg-join")
        got: list[list[Any]] = []
        restarted = False
        with stream, pytest.raises(GatewayError) as caught:
            for batch in stream:
                got.extend(batch)
                if not restarted:  # the first rows are here: the JOIN reads PostgreSQL
                    restarted = True
                    pg_ctl("restart")
        error = caught.value
        assert error.code == "DATASOURCE_UNAVAILABLE", error  # 503: the statement was fine
        assert "pg" in error.message, error.message
        assert 0 < len(got) < ROWS
        assert got == [[i, 2 * i] for i in range(len(got))]

        # PostgreSQL is back: the same gateway reads it again (its pool reconnects)
        assert pg_ready(host, port)
        again = client.sql(f"SELECT t.x, p.y FROM {source} AS t JOIN m AS p WHERE t.x < 5")
        assert again.rows == [[i, 2 * i] for i in range(5)]
        row = query_row(client, "chaos-pg-join")
        assert row["status"] == "error" and row["error"] == error.message
        assert_serving(client, ["m"])
        gateway.stop()  # before the schema goes: its pool holds connections there
    assert stored_queries(catalog_url(home))["chaos-pg-join"].status == "error"
    assert_model_unchanged(catalog_url(home))


@contextmanager
def pg_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new database for a catalog, dropped on exit (own short-lived engines,
    as in ``pg_schema``)."""
    url = make_url(postgres_url)
    name = f"byom_chaos_catalog_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.dispose()


@pytest.mark.postgres
def test_postgres_catalog_down_mid_join_and_mid_catalog_write(
    tmp_path: Path, services: dict[str, Any], postgres_url: str
) -> None:
    data = make_source(tmp_path / "data.sqlite")
    model = services["model"](0.03)  # >= 6 s of JOIN: it outlasts the outage
    home = tmp_path / "home"
    m2 = (
        f"CREATE MODEL m2 PREDICT y USING url.predict = '{model.url}/predict', format = 'ray_serve'"
    )
    with pg_database(postgres_url) as url, postgres_kept_running(postgres_url) as (host, port):
        gateway = services["gateway"](home, env={"BYOM_CATALOG_URL": url})
        with Client(gateway.url) as client, Client(gateway.url) as other:
            setup_gateway(client, model, data)
            got: list[list[Any]] = []

            def read_all() -> None:
                with client.iter_sql(JOIN.format(source="ds.src"), query_id="cat-join") as rows:
                    for batch in rows:
                        got.extend(batch)

            with in_background(read_all) as outcome:
                eventually("the JOIN's first rows", lambda: got)
                pg_ctl("stop")
                try:
                    # a catalog write while the catalog is down: a clear error, at once
                    with pytest.raises(GatewayError) as caught:
                        other.sql(m2)
                finally:
                    pg_ctl("start")
                assert pg_ready(host, port)
            # the JOIN needs no catalog once planned: all of it came, right
            assert "error" not in outcome, outcome.get("error")
            assert got == [[i, 2 * i] for i in range(ROWS)]

            error = caught.value
            assert (error.status, error.code) == (503, "CATALOG_UNAVAILABLE"), error
            assert "catalog database" in error.message and "retry" in error.message, error

            # PostgreSQL is back: the same gateway writes its catalog again
            assert other.sql(m2).records()[0]["status"] == "complete"
            row = query_row(other, "cat-join")
            assert (row["status"], row["rows_done"]) == ("done", ROWS)
            assert_serving(other, ["m", "m2"])
        gateway.stop()
        stored = stored_queries(url)
        # the statement's end reached the catalog after the outage: not left running
        assert (stored["cat-join"].status, stored["cat-join"].rows_done) == ("done", ROWS)
        catalog = Catalog(url)
        try:
            names = sorted((p.name, p.status) for p in catalog.list_predictors())
        finally:
            catalog.close()
        assert names == [("m", "complete"), ("m2", "complete")]  # m2 once, not half-made
