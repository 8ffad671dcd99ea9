"""Two gateway replicas sharing one catalog (SQLite file and PostgreSQL): whatever a request
needs later lives in the catalog, so either replica can answer it.

- a streaming statement's progress on A is read from B (``query_progress``, ``/api/queries``,
  ``mindsdb.queries``);
- an HTTP session's ``USE`` and ``SET @v`` made through A hold on B;
- a model created or dropped on A is seen by B's very next statement;
- training jobs have owners: B's heartbeat marks a job whose owner stopped beating
  (``interrupted: owner lost (...)``), B's start leaves a live replica's job alone, and a
  job of a dead process of this host is marked at start.

The network is ``httpx.MockTransport``; each replica has its own home (embedded datasource).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from byom.errors import DatasourceError, ModelNotFound
from catalog.liveness import INTERRUPTED_MESSAGE, owner_lost_message
from catalog.records import PredictorSpec, QueryRecord
from catalog.repository import Catalog
from catalog.tables import TrainingJobRow
from gateway import progress
from gateway.core import Gateway
from gateway.executor.liveness import dead_here, heartbeat, make_owner
from gateway.progress import ProgressRegistry
from gateway.server import create_app
from gateway.session import CatalogSessionStore, Session
from gateway.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

URL = "http://model.test"
SESSION = "X-Byom-Session"
JOIN = "SELECT t.id, p.y FROM local.t AS t JOIN m AS p"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One empty catalog both replicas use."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite'}"
    return request.getfixturevalue("pg_catalog_clean_url")


@dataclass
class Model:
    """A ray_serve model behind MockTransport: predicts ``2 * a``, trains at once (or
    never, ``train_forever``). Predict call ``gate_at`` waits for ``release``."""

    gate_at: int | None = None
    train_forever: bool = False
    calls: int = 0
    urls: list[str] = field(default_factory=list)
    release: asyncio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        body = json.loads(request.content)
        rows = json.loads(body["df"])
        if request.url.path.endswith("/train"):
            if self.train_forever:
                await asyncio.sleep(3600)
            return httpx.Response(200, json={"status": "ok"})
        self.calls += 1
        if self.calls == self.gate_at:
            assert self.release is not None
            await self.release.wait()
        return httpx.Response(200, json={"prediction": [2 * r["a"] for r in rows]})


@asynccontextmanager
async def replica(
    home: Path, catalog_url: str, model: Model | None = None, **settings: Any
) -> AsyncIterator[Gateway]:
    gw = await Gateway.start(
        home=home,
        catalog_url=catalog_url,
        settings=Settings(**settings),
        transport=httpx.MockTransport(model or Model()),
    )
    try:
        yield gw
    finally:
        await gw.close()


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it is truthy (a bound against hangs, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.05)


def create_model(name: str = "m", url: str = URL, train: bool = False) -> str:
    source = "FROM local (SELECT a, y FROM t) PREDICT y " if train else "PREDICT y "
    using = f"url.train='{url}/train', " if train else ""
    return (
        f"CREATE MODEL {name} {source}USING {using}url.predict='{url}/predict', "
        'format=\'ray_serve\', dtype_dict={"a": "integer", "y": "integer"}'
    )


async def make_table(gw: Gateway, n: int = 10) -> None:
    await gw.sql("CREATE TABLE t (id INTEGER, a INTEGER, y INTEGER)")
    await gw.sql("INSERT INTO t VALUES " + ", ".join(f"({i}, {i}, 0)" for i in range(1, n + 1)))


# --- progress -------------------------------------------------------------------------------


def test_join_progress_on_a_is_read_from_b(tmp_path: Path, catalog_url: str) -> None:
    model = Model(gate_at=3)

    async def go() -> None:
        model.release = asyncio.Event()
        async with (
            replica(tmp_path / "a", catalog_url, model, batch_size=2, concurrency=1) as a,
            replica(tmp_path / "b", catalog_url) as b,
        ):
            await make_table(a)
            await a.sql(create_model())

            async def run() -> list[Any]:
                stream = await a.sql_stream(JOIN, query_id="shared-1")
                return (await stream.collect()).rows

            join = asyncio.create_task(run())
            await eventually(lambda: model.calls >= 3, "the JOIN to reach its third batch")
            # B has no entry of its own: what it answers comes from the catalog
            assert b.services.progress.list() == b.queries()
            seen = await eventually(
                lambda: (e := b.query_progress("shared-1")).rows_done > 0 and e,
                "B to see rows done on A",
            )
            assert (seen.status, seen.kind, seen.statement) == ("running", "join", JOIN)
            assert 0 < seen.rows_done < 10  # the third batch is still held back
            assert "shared-1" in [e.id for e in b.queries()]

            model.release.set()
            assert [r[0] for r in await join] == list(range(1, 11))
            done = b.query_progress("shared-1")
            assert (done.status, done.rows_done, done.rows_total) == ("done", 10, 10)
            assert done.finished_at is not None
            listed = await b.sql("SELECT id, status, rows_done FROM mindsdb.queries")
            assert ("shared-1", "done", 10) in [tuple(r) for r in listed.rows]
            with pytest.raises(Exception, match="QUERY_NOT_FOUND|No query"):
                b.query_progress("never-ran")

    asyncio.run(go())


class RecordingStore:
    """A progress store that keeps every write."""

    def __init__(self) -> None:
        self.writes: list[QueryRecord] = []

    def save_query(self, record: QueryRecord, keep_finished: int | None = None) -> None:
        self.writes.append(record)

    def find_query(self, query_id: str) -> QueryRecord | None:
        found = [w for w in self.writes if w.id == query_id]
        return found[-1] if found else None

    def list_queries(self) -> list[QueryRecord]:
        return list({w.id: w for w in self.writes}.values())


def test_row_counts_are_written_at_most_once_per_interval() -> None:
    store = RecordingStore()
    registry = ProgressRegistry(store=store, owner="me", write_interval=3600)
    entry = registry.start("SELECT ...", "join", "q")
    for _ in range(1000):
        entry.rows_done += 10  # what the executor does per batch
    entry.rows_total = 10_000
    registry.finish(entry, "done")
    registry.close()
    # the start, then (the interval not over) nothing until the end
    assert [(w.status, w.rows_done, w.owner) for w in store.writes] == [
        ("running", 0, "me"),
        ("done", 10_000, "me"),
    ]
    assert store.writes[-1].rows_total == 10_000


def test_row_counts_reach_the_store_while_running() -> None:
    store = RecordingStore()
    registry = ProgressRegistry(store=store, owner="me", write_interval=0.0)
    entry = registry.start("SELECT ...", "write", "q")
    entry.rows_done = 7

    async def written() -> None:
        await eventually(lambda: store.writes[-1].rows_done == 7, "the writer thread")

    asyncio.run(written())
    assert store.writes[-1].status == "running"
    registry.close()


def test_a_finished_statement_is_recorded_once_the_catalog_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its last write failed (catalog down): retried, never left "running" in the catalog."""
    monkeypatch.setattr(progress, "RETRY_S", 0.05)
    store = RecordingStore()
    down = [True]
    saved = store.save_query

    def save(record: QueryRecord, keep_finished: int | None = None) -> None:
        if down[0] and record.status != "running":
            raise OSError("catalog down")
        saved(record, keep_finished)

    store.save_query = save  # type: ignore[method-assign]
    registry = ProgressRegistry(store=store, owner="me", write_interval=0.0)
    entry = registry.start("SELECT ...", "join", "q")
    registry.finish(entry, "error", "endpoint gone")
    assert store.writes[-1].status == "running"  # the finish did not land
    down[0] = False

    async def recorded() -> None:
        await eventually(lambda: store.writes[-1].status == "error", "the retried write")

    asyncio.run(recorded())
    assert store.writes[-1].error == "endpoint gone"
    registry.close()


def test_finished_queries_are_trimmed_in_the_catalog(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    try:
        registry = ProgressRegistry(keep_finished=3, store=catalog, owner="me")
        running = registry.start("SELECT 0", "join", "q0")
        for i in range(1, 6):
            registry.finish(registry.start(f"SELECT {i}", "join", f"q{i}"), "done")
        registry.close()
        other = ProgressRegistry(store=catalog)  # another replica's view
        assert [e.id for e in other.list()] == ["q0", "q3", "q4", "q5"]
        assert other.get("q1") is None and other.get("q0").status == "running"  # type: ignore[union-attr]
        registry.finish(running, "cancelled")
        assert other.get("q0").status == "cancelled"  # type: ignore[union-attr]
    finally:
        catalog.close()


# --- sessions ------------------------------------------------------------------------------


@contextmanager
def two_servers(tmp_path: Path, catalog_url: str) -> Iterator[tuple[TestClient, TestClient]]:
    """Two HTTP apps, each starting its own gateway on the shared catalog."""
    app_a = create_app(home=tmp_path / "a", catalog_url=catalog_url, settings=Settings())
    app_b = create_app(home=tmp_path / "b", catalog_url=catalog_url, settings=Settings())
    with TestClient(app_a) as a, TestClient(app_b) as b:
        yield a, b


def sql(api: TestClient, query: str, session: str | None = "s-1") -> dict[str, Any]:
    headers = {SESSION: session} if session is not None else {}
    response = api.post("/api/sql", json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_use_and_set_through_a_hold_on_b(tmp_path: Path, catalog_url: str) -> None:
    mydb = tmp_path / "mydb.sqlite"
    mydb.touch()  # datasource files must exist: the gateway never creates one
    with two_servers(tmp_path, catalog_url) as (a, b):
        sql(a, "CREATE PROJECT p1")
        params = json.dumps({"path": str(mydb)})
        sql(a, f"CREATE DATABASE mydb WITH ENGINE = 'sqlite', PARAMETERS = {params}")
        sql(a, "CREATE TABLE mydb.sales (x INTEGER)")
        sql(a, "USE mydb; SET @v = 42")
        sql(a, "USE p1")
        # B: the session's datasource, project and variable
        assert sql(b, "SHOW TABLES")["rows"] == [["sales"]]
        assert sql(b, "SELECT @v")["rows"] == [[42]]
        sql(b, create_model("pm"))
        described = sql(b, "DESCRIBE pm")
        assert (
            dict(zip(described["columns"], described["rows"][0], strict=True))["namespace"] == "p1"
        )
        # other sessions, and requests without one, still have the defaults
        assert sql(b, "SELECT @v", session="s-2")["rows"] == [[None]]
        assert sql(b, "SHOW TABLES LIKE 'sales'", session=None)["rows"] == []
        # and a change made on B holds on A
        sql(b, "USE local; SET @v = 'b'")
        assert sql(a, "SELECT @v")["rows"] == [["b"]]
        assert sql(a, "SHOW TABLES LIKE 'sales'")["rows"] == []


def test_a_query_running_on_a_is_served_by_b(tmp_path: Path, catalog_url: str) -> None:
    with two_servers(tmp_path, catalog_url) as (a, b):
        registry = a.app.state.gateway.services.progress  # type: ignore[attr-defined]
        entry = registry.start("SELECT 1", "write", "http-1")
        answer = b.get("/api/queries/http-1")
        assert answer.status_code == 200
        assert (answer.json()["status"], answer.json()["rows_done"]) == ("running", 0)
        registry.finish(entry, "error", "boom")
        answer = b.get("/api/queries/http-1").json()
        assert (answer["status"], answer["error"]) == ("error", "boom")
        assert [q["id"] for q in b.get("/api/queries").json()] == ["http-1"]
        assert b.get("/api/queries/other").status_code == 404


def test_catalog_sessions_expire_after_the_ttl(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    now = [datetime.now(UTC)]
    try:
        store = CatalogSessionStore(catalog, ttl=3600, clock=lambda: now[0])
        session = store.get("s")
        assert session.state() == Session().state()
        store.save(session)  # nothing changed: nothing written
        assert catalog.load_session("s", now[0] - timedelta(days=1)) is None
        session.datasource, session.variables["x"] = "mydb", 1
        store.save(session)
        assert store.get("s").state() == ("mydb", None, {"x": 1})
        now[0] += timedelta(hours=2)  # idle longer than the ttl
        assert store.get("s").state() == Session().state()
        store.save(store.get("t"))
        fresh = CatalogSessionStore(catalog, ttl=3600, clock=lambda: now[0])
        fresh.save(Session(id="u"))  # its first save purges the expired sessions
        assert catalog.load_session("s", now[0] - timedelta(days=1)) is None
    finally:
        catalog.close()


# --- models ------------------------------------------------------------------------------


def test_create_and_drop_on_a_are_seen_by_bs_next_statement(
    tmp_path: Path, catalog_url: str
) -> None:
    model_b = Model()

    async def go() -> None:
        async with (
            replica(tmp_path / "a", catalog_url) as a,
            replica(tmp_path / "b", catalog_url, model_b) as b,
        ):
            with pytest.raises(ModelNotFound):
                await b.sql("DESCRIBE m")
            await a.sql(create_model())
            assert (await b.sql("SELECT y FROM m WHERE a = 4")).rows == [[8]]
            await a.sql("DROP MODEL m")
            with pytest.raises(ModelNotFound):
                await b.sql("DESCRIBE m")
            # no model m any more: a plain query for the embedded datasource, with no table m
            with pytest.raises(DatasourceError, match="no such table: m"):
                await b.sql("SELECT y FROM m WHERE a = 4")
            await a.sql(create_model(url="http://other.test"))
            assert (await b.sql("SELECT y FROM m WHERE a = 5")).rows == [[10]]
            assert model_b.urls == [f"{URL}/predict", "http://other.test/predict"]

    asyncio.run(go())


# --- training jobs: owners and heartbeats --------------------------------------------------


def add_training_model(catalog: Catalog, name: str) -> int:
    """A model training now, its job owned by ``catalog.owner``; returns the job id."""
    spec = PredictorSpec(name=name, url_predict=f"{URL}/predict", url_train=f"{URL}/train")
    catalog.add_predictor(spec, status="training")
    return catalog.start_job(name).id


def backdate(catalog_url: str, job_id: int, seconds: float) -> None:
    """Make a job's last heartbeat ``seconds`` old."""
    engine = create_engine(catalog_url)
    try:
        with engine.begin() as conn:
            when = datetime.now(UTC) - timedelta(seconds=seconds)
            conn.execute(
                update(TrainingJobRow).where(TrainingJobRow.id == job_id).values(heartbeat_at=when)
            )
    finally:
        engine.dispose()


def job(catalog: Catalog, job_id: int) -> Any:
    return {j.id: j for j in catalog.list_jobs()}[job_id]


def test_an_admin_commands_gateway_leaves_silent_owners_jobs_alone(
    tmp_path: Path, catalog_url: str
) -> None:
    """``byom token``/``status`` open a gateway with ``serving=False``: it reads and writes
    the catalog, but a stale job is a serving gateway's to mark (the next one started)."""
    ghost = f"elsewhere:123:{make_owner()[-8:]}"
    other = Catalog(catalog_url, owner=ghost)
    job_id = add_training_model(other, "m")
    backdate(catalog_url, job_id, 3600)

    async def go() -> None:
        admin = await Gateway.start(tmp_path / "a", catalog_url, serving=False)
        try:
            assert job(admin.catalog, job_id).status == "running"
            record, _ = admin.create_token("ops", "admin")
            assert record.name == "ops"
            assert [j["id"] for j in admin.status_report()["jobs"]] == [job_id]
        finally:
            await admin.close()
        async with replica(tmp_path / "b", catalog_url) as serving:
            assert job(serving.catalog, job_id).status == "error"
            assert [t.name for t in serving.catalog.list_tokens()] == ["ops"]

    try:
        asyncio.run(go())
    finally:
        other.close()


def test_heartbeat_marks_a_silent_owners_job_and_the_model_retrains(
    tmp_path: Path, catalog_url: str
) -> None:
    ghost = f"elsewhere:123:{make_owner()[-8:]}"
    other = Catalog(catalog_url, owner=ghost)

    async def go() -> None:
        fast = {"heartbeat_interval": 0.2, "heartbeat_timeout": 1.0}
        async with replica(tmp_path / "b", catalog_url, **fast) as b:
            await make_table(b)
            job_id = add_training_model(other, "m")  # started after B: not stale at its start
            assert job(b.catalog, job_id).status == "running"
            lost = await eventually(
                lambda: (j := job(b.catalog, job_id)).status != "running" and j,
                "B's heartbeat to mark the silent owner's job",
            )
            message = owner_lost_message(ghost)
            assert (lost.status, lost.error, lost.owner) == ("error", message, ghost)
            assert lost.finished_at is not None
            model = b.catalog.get_predictor("m")
            assert (model.status, model.error) == ("error", message)
            # not busy any more: it trains again, now as B's
            await b.sql(create_model(train=True).replace("CREATE MODEL", "CREATE OR REPLACE MODEL"))
            described = (await b.wait_for_training("m", timeout=60)).records()[0]
            assert described["status"] == "complete"
            [again] = b.catalog.list_jobs("m")
            assert (again.status, again.owner) == ("complete", b.owner)

    try:
        asyncio.run(go())
    finally:
        other.close()


def test_a_cancel_asked_elsewhere_reaches_the_owner_at_its_heartbeat(catalog_url: str) -> None:
    owner = f"here:1:{make_owner()[-8:]}"
    catalog = Catalog(catalog_url, owner=owner)
    try:
        add_training_model(catalog, "m")
        assert catalog.cancel_requests(owner) == []
        assert catalog.request_cancel("nothing") is None  # no job runs: nothing to ask
        assert catalog.request_cancel("m") == owner  # asked by some other replica
        assert catalog.cancel_requests(owner) == ["m"]
        assert catalog.cancel_requests("someone:else:1") == []

        async def go() -> list[str]:
            asked: list[str] = []

            async def on_cancel(name: str) -> None:
                asked.append(name)

            beating = asyncio.ensure_future(heartbeat(catalog, owner, 0.05, 60, on_cancel))
            try:
                await eventually(lambda: asked, "the owner's heartbeat to pass the cancel on")
            finally:
                beating.cancel()
                await asyncio.gather(beating, return_exceptions=True)
            return asked

        assert asyncio.run(go())[0] == "m"
    finally:
        catalog.close()


def test_b_leaves_a_live_replicas_job_alone(tmp_path: Path, catalog_url: str) -> None:
    model_a = Model(train_forever=True)
    beats = {"heartbeat_interval": 0.2, "heartbeat_timeout": 10.0}
    ghost = Catalog(catalog_url, owner="elsewhere:9:deadbeef")

    async def go() -> None:
        async with replica(tmp_path / "a", catalog_url, model_a, **beats) as a:
            await make_table(a)
            await a.sql(create_model(train=True))
            [running] = await eventually(lambda: a.catalog.list_jobs("m"), "A's job")
            assert running.owner == a.owner
            # a second job, of an owner long silent, proves B's heartbeat ran
            stale_id = add_training_model(ghost, "g")
            backdate(catalog_url, stale_id, 3600)
            async with replica(tmp_path / "b", catalog_url, **beats) as b:
                # B's start marked the stale one (no heartbeat for an hour) ...
                assert job(b.catalog, stale_id).status == "error"
                # ... and not A's, whose process (this one) lives and beats
                assert job(b.catalog, running.id).status == "running"
                await eventually(
                    lambda: job(b.catalog, running.id).heartbeat_at is not None, "A's beat"
                )
                stale_id = add_training_model(ghost, "g2")
                backdate(catalog_url, stale_id, 3600)
                await eventually(
                    lambda: job(b.catalog, stale_id).status == "error", "B's heartbeat"
                )
                assert job(b.catalog, running.id).status == "running"
                assert b.catalog.get_predictor("m").status == "training"
                assert a.training("m")
        # A's own close ends its job (as before replicas)
        closed = Catalog(catalog_url)
        try:
            [ended] = closed.list_jobs("m")
            assert (ended.status, ended.error) == ("error", INTERRUPTED_MESSAGE)
        finally:
            closed.close()

    try:
        asyncio.run(go())
    finally:
        ghost.close()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_dead_process_of_this_host_is_marked_at_start(tmp_path: Path, catalog_url: str) -> None:
    pid = dead_pid()
    here = Catalog(catalog_url, owner=f"{socket.gethostname()}:{pid}:0badf00d")
    away = Catalog(catalog_url, owner=f"far.away:{pid}:0badf00d")
    unowned = Catalog(catalog_url)  # a job as a catalog before v5 recorded it
    try:
        dead_job = add_training_model(here, "dead")
        far_job = add_training_model(away, "far")
        old_job = add_training_model(unowned, "old")

        async def go() -> None:
            async with replica(tmp_path / "b", catalog_url) as b:
                assert job(b.catalog, dead_job).status == "error"
                assert job(b.catalog, dead_job).error == INTERRUPTED_MESSAGE
                assert b.catalog.get_predictor("dead").status == "error"
                assert job(b.catalog, old_job).status == "error"
                # another host's process may live: it has its heartbeat timeout to beat
                assert job(b.catalog, far_job).status == "running"
                assert b.catalog.get_predictor("far").status == "training"

        asyncio.run(go())
    finally:
        for catalog in (here, away, unowned):
            catalog.close()


def test_owner_ids_and_who_is_dead() -> None:
    owner = make_owner()
    host, pid, tag = owner.split(":")
    assert (host, int(pid), len(tag)) == (socket.gethostname(), __import__("os").getpid(), 8)
    assert make_owner() != owner
    assert not dead_here(owner)  # this process
    assert dead_here(f"{host}:{dead_pid()}:x")
    assert not dead_here(f"another-host:{dead_pid()}:x")
    assert not dead_here("not an owner id")
