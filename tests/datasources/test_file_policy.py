"""The file policy of SQLite datasources, refused pass-through statements and read-only
datasources, through the gateway's real SQL path (a Gateway on a tmp home).

Each test narrows ``BYOM_DATA_DIRS`` to ``<tmp>/data`` (the session allows the whole temp
dir, tests/conftest.py) and points ``BYOM_HOME`` at the gateway's home, so ``<tmp>/outside``
really is outside.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from byom.errors import GatewayError
from gateway.core import Gateway
from gateway.settings import Settings

MODEL_URL = "http://model.test/predict"


class Dirs:
    """``home`` (the gateway's), ``data`` (BYOM_DATA_DIRS) and ``outside`` (neither)."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.data = root / "data"
        self.outside = root / "outside"
        for d in (self.home, self.data, self.outside):
            d.mkdir()


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dirs:
    found = Dirs(tmp_path)
    monkeypatch.setenv("BYOM_DATA_DIRS", str(found.data))
    monkeypatch.setenv("BYOM_HOME", str(found.home))
    monkeypatch.delenv("BYOM_CATALOG_URL", raising=False)
    return found


def _db(path: Path, rows: int = 3) -> Path:
    """A SQLite file with ``t(id, a)`` of ``rows`` rows."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, a INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, 10 * i) for i in range(rows)])
    conn.close()
    return path


def _create(name: str, params: dict[str, Any]) -> str:
    return (
        f"CREATE DATABASE {name} WITH ENGINE = '{params.pop('engine', 'sqlite')}', "
        f"PARAMETERS = {json.dumps(params)}"
    )


class Model:
    """A ray_serve model behind MockTransport: predicts ``2 * a``; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        rows = json.loads(json.loads(request.content)["df"])
        return httpx.Response(200, json={"prediction": [2 * r["a"] for r in rows]})


@asynccontextmanager
async def gateway(home: Path, model: Model | None = None) -> AsyncIterator[Gateway]:
    """A gateway on ``home`` (its catalog at ``<home>/catalog.sqlite``) with model ``m``."""
    gw = await Gateway.start(
        home=home, settings=Settings(), transport=httpx.MockTransport(model or Model())
    )
    try:
        await gw.sql(
            f"CREATE MODEL m PREDICT y USING url.predict='{MODEL_URL}', format='ray_serve', "
            'dtype_dict={"a": "integer", "y": "integer"}'
        )
        yield gw
    finally:
        await gw.close()


def run(home: Path, body: Callable[[Gateway], Coroutine[Any, Any, None]]) -> None:
    async def go() -> None:
        async with gateway(home) as gw:
            await body(gw)

    asyncio.run(go())


async def refused(gw: Gateway, sql: str, code: str) -> GatewayError:
    """The error of ``sql``, which must be ``code`` and a 4xx."""
    with pytest.raises(GatewayError) as caught:
        await gw.sql(sql)
    assert caught.value.code == code, caught.value.message
    assert 400 <= caught.value.status < 500
    return caught.value


# --- where a file may be -------------------------------------------------------------------


def test_outside_path_refused_with_the_rule_and_what_to_do(dirs: Dirs) -> None:
    outside = _db(dirs.outside / "x.db")

    async def body(gw: Gateway) -> None:
        error = await refused(gw, _create("x", {"path": str(outside)}), "PATH_NOT_ALLOWED")
        assert str(outside) in error.message
        assert "BYOM_DATA_DIRS" in error.message and "$BYOM_HOME" in error.message
        await refused(gw, _create("pw", {"path": "/etc/passwd"}), "PATH_NOT_ALLOWED")
        # attach paths and attach_dir follow the same rule
        inside = _db(dirs.data / "in.db")
        attach = {"path": str(inside), "attach": {"o": str(outside)}}
        await refused(gw, _create("a", attach), "PATH_NOT_ALLOWED")
        await refused(
            gw, _create("d", {"path": str(inside), "attach_dir": "/etc"}), "PATH_NOT_ALLOWED"
        )
        assert "x" not in str((await gw.sql("SHOW DATABASES")).rows)

    run(dirs.home, body)


def test_symlink_and_dotdot_cannot_escape(dirs: Dirs) -> None:
    outside = _db(dirs.outside / "x.db")
    link = dirs.data / "link.db"
    link.symlink_to(outside)
    dotdot = f"{dirs.data}/../outside/x.db"

    async def body(gw: Gateway) -> None:
        error = await refused(gw, _create("l", {"path": str(link)}), "PATH_NOT_ALLOWED")
        assert f"resolves to {outside}" in error.message
        await refused(gw, _create("dd", {"path": dotdot}), "PATH_NOT_ALLOWED")

    run(dirs.home, body)


def test_data_dirs_and_home_are_allowed(dirs: Dirs) -> None:
    in_data = _db(dirs.data / "ok.db", rows=4)
    in_home = _db(dirs.home / "mine.db", rows=2)

    async def body(gw: Gateway) -> None:
        await gw.sql(_create("ok", {"path": str(in_data)}))
        await gw.sql(_create("mine", {"path": str(in_home)}))
        assert (await gw.sql("SELECT count(*) AS n FROM ok.t")).rows == [[4]]
        assert (await gw.sql("SELECT count(*) AS n FROM mine.t")).rows == [[2]]
        # the embedded datasource keeps working (its files are created by the product)
        await gw.sql("CREATE TABLE local.notes AS SELECT 1 AS x")
        assert (await gw.sql("SELECT x FROM local.notes")).rows == [[1]]

    run(dirs.home, body)


def test_a_second_data_dir_in_the_list_is_allowed(
    dirs: Dirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = tmp_path / "second"
    second.mkdir()
    monkeypatch.setenv("BYOM_DATA_DIRS", f"{dirs.data}{os.pathsep}{second}")
    path = _db(second / "s.db")

    async def body(gw: Gateway) -> None:
        await gw.sql(_create("s", {"path": str(path)}))
        assert (await gw.sql("SELECT count(*) AS n FROM s.t")).rows == [[3]]

    run(dirs.home, body)


def test_the_catalog_is_never_a_datasource(dirs: Dirs) -> None:
    catalog = dirs.home / "catalog.sqlite"
    link = dirs.data / "sneaky.db"
    link.symlink_to(catalog)

    async def body(gw: Gateway) -> None:
        assert catalog.exists()
        for path in (catalog, Path(f"{catalog}-wal"), Path(f"{catalog}-shm"), link):
            error = await refused(
                gw, _create("cat", {"path": str(path)}), "CATALOG_NOT_A_DATASOURCE"
            )
            assert str(path) in error.message
        inside = _db(dirs.data / "in.db")
        # attach_dir = the home would attach catalog.sqlite as schema "catalog"
        await refused(
            gw,
            _create("h", {"path": str(inside), "attach_dir": str(dirs.home)}),
            "CATALOG_NOT_A_DATASOURCE",
        )
        await refused(
            gw,
            _create("c", {"path": str(inside), "attach": {"c": str(catalog)}}),
            "CATALOG_NOT_A_DATASOURCE",
        )

    run(dirs.home, body)


def test_a_missing_file_is_refused_and_not_created(dirs: Dirs) -> None:
    missing = dirs.data / "nope.db"
    missing_attach = dirs.data / "nope2.db"

    async def body(gw: Gateway) -> None:
        error = await refused(gw, _create("n", {"path": str(missing)}), "PATH_NOT_FOUND")
        assert str(missing) in error.message
        inside = _db(dirs.data / "in.db")
        attach = {"path": str(inside), "attach": {"n": str(missing_attach)}}
        await refused(gw, _create("n2", attach), "PATH_NOT_FOUND")

    run(dirs.home, body)
    assert not missing.exists()
    assert not missing_attach.exists()


def test_a_stored_datasource_is_checked_again_when_opened(dirs: Dirs) -> None:
    """A catalog written before the policy may hold a path it now forbids."""
    outside = _db(dirs.outside / "old.db")

    async def body(gw: Gateway) -> None:
        gw.catalog.add_datasource("old", "sqlite", {"path": str(outside)})
        error = await refused(gw, "SELECT * FROM old.t", "PATH_NOT_ALLOWED")
        assert str(outside) in error.message

    run(dirs.home, body)


# --- pass-through that opens or writes other files -----------------------------------------


def test_vacuum_into_attach_detach_load_extension_are_refused(dirs: Dirs) -> None:
    path = _db(dirs.data / "db.db")
    copy = dirs.outside / "copy.db"
    other = dirs.outside / "other.db"

    async def body(gw: Gateway) -> None:
        await gw.sql(_create("db", {"path": str(path)}))
        for sql in (
            f"USE db; VACUUM INTO '{copy}'",
            "SELECT load_extension('/tmp/evil.so') FROM db.t",
            f"VACUUM INTO '{copy}'",  # the embedded datasource too
        ):
            error = await refused(gw, sql, "STATEMENT_NOT_ALLOWED")
            assert "ATTACH, DETACH, VACUUM INTO and load_extension" in error.message
        # The gateway's parser does not take ATTACH/DETACH at all; whatever SQL text does
        # reach the datasource meets its authorizer.
        for sql in (f"USE db; ATTACH DATABASE '{other}' AS o", "USE db; DETACH DATABASE main"):
            with pytest.raises(GatewayError) as caught:
                await gw.sql(sql)
            assert caught.value.code in ("PARSE_ERROR", "STATEMENT_NOT_ALLOWED")
        ds = gw.services.datasource("db")
        for sql in (f"ATTACH DATABASE '{other}' AS o", "DETACH DATABASE main"):
            with pytest.raises(GatewayError) as caught:
                await asyncio.to_thread(ds.query, sql)
            assert caught.value.code == "STATEMENT_NOT_ALLOWED"
            assert "'db'" in caught.value.message
        # the connection still works, with its own configured tables
        assert (await gw.sql("SELECT count(*) AS n FROM db.t")).rows == [[3]]

    run(dirs.home, body)
    assert not copy.exists()
    assert not other.exists()


def test_configured_attaches_still_work(dirs: Dirs) -> None:
    path = _db(dirs.data / "main.db")
    side = _db(dirs.data / "side.db", rows=5)

    async def body(gw: Gateway) -> None:
        await gw.sql(_create("two", {"path": str(path), "attach": {"side": str(side)}}))
        assert (await gw.sql("SELECT count(*) AS n FROM two.side.t")).rows == [[5]]

    run(dirs.home, body)


# --- read-only datasources -----------------------------------------------------------------


def test_read_only_sqlite_reads_but_refuses_writes(dirs: Dirs) -> None:
    path = _db(dirs.data / "ro.db")
    before = path.read_bytes()
    model = Model()

    async def go() -> None:
        async with gateway(dirs.home, model) as gw:
            created = await gw.sql(_create("ro", {"path": str(path), "read_only": True}))
            assert created.rows[0][2]["read_only"] is True
            shown = {r[0]: r[2] for r in (await gw.sql("SHOW DATABASES")).rows}
            assert shown["ro"]["read_only"] is True
            assert shown["local"]["read_only"] is False
            assert (await gw.sql("SELECT count(*) AS n FROM ro.t")).rows == [[3]]
            joined = await gw.sql("SELECT t.id, p.y FROM ro.t AS t JOIN m AS p")
            assert sorted(map(list, joined.rows)) == [[0, 0], [1, 20], [2, 40]]
            calls = model.calls

            error = await refused(gw, "INSERT INTO ro.t VALUES (9, 90)", "DATASOURCE_READ_ONLY")
            assert "'ro'" in error.message
            await refused(gw, "USE ro; CREATE TABLE x (a INT)", "DATASOURCE_READ_ONLY")
            error = await refused(
                gw,
                "CREATE TABLE ro.preds AS SELECT t.id, p.y FROM ro.t AS t JOIN m AS p",
                "DATASOURCE_READ_ONLY",
            )
            assert "CREATE TABLE ro.preds" in error.message
            await refused(
                gw,
                "INSERT INTO ro.t (id, a) SELECT t.id, p.y FROM ro.t AS t JOIN m AS p",
                "DATASOURCE_READ_ONLY",
            )
            assert model.calls == calls  # refused before any row reached the model
            assert (await gw.sql("SELECT count(*) AS n FROM ro.t")).rows == [[3]]

    asyncio.run(go())
    assert path.read_bytes() == before


def test_read_only_must_be_a_boolean(dirs: Dirs) -> None:
    path = _db(dirs.data / "b.db")

    async def body(gw: Gateway) -> None:
        error = await refused(
            gw, _create("b", {"path": str(path), "read_only": "maybe"}), "INVALID_OPTION"
        )
        assert "read_only" in error.message

    run(dirs.home, body)


@pytest.mark.postgres
def test_read_only_postgres_reads_but_refuses_writes(
    dirs: Dirs, postgres_params: dict[str, Any], postgres_url: str
) -> None:
    table = f"ro_{uuid.uuid4().hex[:8]}"
    schema = postgres_params["schema"]
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{schema}".{table} (id INT, a INT)')
        conn.exec_driver_sql(f'INSERT INTO "{schema}".{table} VALUES (1, 10), (2, 20)')
    params = {"engine": "postgres", **postgres_params, "read_only": True}

    async def body(gw: Gateway) -> None:
        await gw.sql(_create("pgro", dict(params)))
        assert (await gw.sql(f"SELECT count(*) AS n FROM pgro.{table}")).rows == [[2]]
        joined = await gw.sql(f"SELECT t.id, p.y FROM pgro.{table} AS t JOIN m AS p")
        assert sorted(map(list, joined.rows)) == [[1, 20], [2, 40]]
        # the server's own refusal, reported as the datasource's
        error = await refused(
            gw, f"INSERT INTO pgro.{table} VALUES (3, 30)", "DATASOURCE_READ_ONLY"
        )
        assert "read-only transaction" in error.message
        # text that would switch the session back to writable is refused up front
        await refused(
            gw,
            f"USE pgro; SET TRANSACTION READ WRITE; INSERT INTO {table} VALUES (4, 40)",
            "DATASOURCE_READ_ONLY",
        )
        await refused(
            gw, "USE pgro; SET default_transaction_read_only = off", "DATASOURCE_READ_ONLY"
        )
        await refused(
            gw,
            f"CREATE TABLE pgro.preds AS SELECT t.id, p.y FROM pgro.{table} AS t JOIN m AS p",
            "DATASOURCE_READ_ONLY",
        )
        assert (await gw.sql(f"SELECT count(*) AS n FROM pgro.{table}")).rows == [[2]]

    try:
        run(dirs.home, body)
        with admin.connect() as conn:
            rows = conn.exec_driver_sql(f'SELECT count(*) FROM "{schema}".{table}').all()
            assert rows == [(2,)]
            missing = conn.exec_driver_sql(
                "SELECT to_regclass(%s)", (f'"{schema}".preds',)
            ).scalar()
            assert missing is None
    finally:
        admin.dispose()
