"""Datasources: SQLite files (with attached schemas) and a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event

from byom.errors import DatasourceError, DatasourceUnavailable, InvalidOption
from catalog.records import DatasourceRecord
from datasources import (
    EMBEDDED_NAME,
    Datasource,
    DatasourcePool,
    embedded_record,
    embedded_schema_path,
    open_datasource,
    validate,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _record(name: str, engine: str, parameters: dict[str, Any]) -> DatasourceRecord:
    return DatasourceRecord(name=name, engine=engine, parameters=parameters, created_at=NOW)


def _sqlite_file(path: Path, table: str, rows: int) -> Path:
    """A SQLite file holding ``table(id, name)`` with ``rows`` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER, name TEXT)")
        conn.executemany(f"INSERT INTO {table} VALUES (?, ?)", [(i, f"n{i}") for i in range(rows)])
    conn.close()
    return path


@pytest.fixture
def sqlite_ds(tmp_path: Path) -> Iterator[Datasource]:
    main = _sqlite_file(tmp_path / "main.db", "items", 25)
    extra = _sqlite_file(tmp_path / "extra.db", "things", 3)
    ds = open_datasource(
        _record("mydb", "sqlite", {"path": str(main), "attach": {"Extra": str(extra)}})
    )
    yield ds
    ds.close()


@pytest.fixture
def pg_ds(postgres_params: dict[str, Any]) -> Iterator[Datasource]:
    ds = open_datasource(_record("pg", "postgres", postgres_params))
    yield ds
    ds.close()


@pytest.fixture
def pg_table(pg_ds: Datasource) -> str:
    """A fresh 25-row table ``t_<hex>(id, name)`` in the test schema."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    pg_ds.query(f"CREATE TABLE {name} (id BIGINT, name TEXT)")
    pg_ds.query(f"INSERT INTO {name} SELECT i, 'n' || i FROM generate_series(0, 24) AS i")
    return name


# -- validate ------------------------------------------------------------------------------


def test_validate_fills_defaults_and_normalises() -> None:
    engine, params = validate(
        "PostgreSQL", {"Host": "db", "user": "u", "database": "d", "port": "6543"}
    )
    assert engine == "postgres"
    assert params["host"] == "db" and params["port"] == 6543
    assert params["connect_timeout"] == 10 and params["password"] is None

    engine, params = validate("postgres", {"host": "db", "user": "u", "database": "d"})
    assert params["port"] == 5432

    engine, params = validate("sqlite", {"path": "rel/my.db"})
    assert engine == "sqlite"
    assert Path(params["path"]).is_absolute() and params["path"].endswith("rel/my.db")


def test_validate_unknown_engine_suggests() -> None:
    with pytest.raises(InvalidOption) as info:
        validate("postgress", {})
    assert "Unknown datasource engine 'postgress'. Did you mean postgres?" in info.value.message
    with pytest.raises(InvalidOption, match="Supported engines: sqlite, postgres"):
        validate("oracle", {})


def test_validate_unknown_and_missing_parameters() -> None:
    with pytest.raises(InvalidOption) as info:
        validate("postgres", {"hots": "db", "user": "u", "database": "d"})
    message = info.value.message
    assert "Unknown parameter 'hots' for engine 'postgres'. Did you mean host?" in message
    assert "Expected: host, user, database (required)" in message

    with pytest.raises(InvalidOption) as info:
        validate("postgres", {"host": "db"})
    assert "Missing parameter 'user', 'database' for engine 'postgres'" in info.value.message

    with pytest.raises(InvalidOption, match="Missing parameter 'path'"):
        validate("sqlite", {})


@pytest.mark.parametrize(
    ("engine", "params", "fragment"),
    [
        ("sqlite", {"path": ":memory:"}, "':memory:' is not allowed"),
        ("sqlite", {"path": ""}, "non-empty string"),
        ("sqlite", {"path": "/x.db", "attach": ["a"]}, "must be an object"),
        ("sqlite", {"path": "/x.db", "attach": {"bad name": "/y.db"}}, "plain identifier"),
        ("sqlite", {"path": "/x.db", "attach": {"main": "/y.db"}}, "reserved by SQLite"),
        ("postgres", {"host": "h", "user": "u", "database": "d", "port": "x"}, "whole number"),
        ("postgres", {"host": "h", "user": "u", "database": "d", "port": 70000}, "between"),
        ("postgres", {"host": "h", "user": "u", "database": "d", "sslmode": "on"}, "sslmode"),
    ],
)
def test_validate_rejects_bad_values(engine: str, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidOption, match=fragment):
        validate(engine, params)


def test_open_datasource_validates(tmp_path: Path) -> None:
    with pytest.raises(InvalidOption):
        open_datasource(_record("x", "mysqlx", {}))
    ds = open_datasource(_record("x", "sqlite", {"path": str(tmp_path / "x.db")}))
    assert (ds.name, ds.engine_name, ds.dialect) == ("x", "sqlite", "sqlite")
    ds.close()


# -- SQLite --------------------------------------------------------------------------------


def test_sqlite_stream_chunks_and_attach(sqlite_ds: Datasource) -> None:
    chunks = list(sqlite_ds.stream("SELECT id, name FROM items ORDER BY id", chunk_rows=10))
    assert [len(rows) for _, rows in chunks] == [10, 10, 5]
    assert all(cols == ["id", "name"] for cols, _ in chunks)
    assert [r for _, rows in chunks for r in rows] == [(i, f"n{i}") for i in range(25)]

    # The attached database is a schema; its name was lower-cased.
    cols, rows = sqlite_ds.query("SELECT count(*) AS n FROM extra.things")
    assert (cols, rows) == (["n"], [(3,)])


def test_sqlite_bound_params_and_literal_colons(sqlite_ds: Datasource) -> None:
    _, rows = sqlite_ds.query(
        "SELECT id FROM items WHERE id >= :low AND id < :high",
        {
            "low": 3,
            "high": 6,
        },
    )
    assert rows == [(3,), (4,), (5,)]
    # Without params the text goes to the driver untouched: ':b' is not a placeholder.
    assert sqlite_ds.query("SELECT 'a :b' AS x, '50%' AS y") == (["x", "y"], [("a :b", "50%")])


def test_sqlite_empty_result_still_yields_columns(sqlite_ds: Datasource) -> None:
    assert list(sqlite_ds.stream("SELECT id FROM items WHERE id < 0")) == [(["id"], [])]


def test_sqlite_errors_name_the_datasource(sqlite_ds: Datasource, tmp_path: Path) -> None:
    with pytest.raises(DatasourceError) as info:
        sqlite_ds.query("SELECT * FROM missing_table")
    assert info.value.message == (
        "query failed on datasource 'mydb' (sqlite): no such table: missing_table."
    )
    assert info.value.details == {"datasource": "mydb"}
    assert isinstance(info.value.__cause__, Exception)

    with pytest.raises(DatasourceError, match="no such table"):
        list(sqlite_ds.stream("SELECT * FROM missing_table"))

    unreachable = open_datasource(
        _record("gone", "sqlite", {"path": str(tmp_path / "no" / "such" / "dir.db")})
    )
    with pytest.raises(DatasourceError, match=r"cannot connect to datasource 'gone' \(sqlite at"):
        unreachable.check()
    unreachable.close()


def test_sqlite_pass_through_and_write_back(sqlite_ds: Datasource) -> None:
    assert sqlite_ds.query("CREATE VIEW small AS SELECT * FROM items WHERE id < 2") == ([], [])
    assert sqlite_ds.query("SELECT name FROM small ORDER BY id") == (["name"], [("n0",), ("n1",)])
    assert sqlite_ds.query("DELETE FROM items WHERE id >= 20") == ([], [])

    # Write-back into an attached schema: create, then append.
    rows = [(1, "x"), (2, "y"), (3, "z")]
    with sqlite_ds.open_writer("loaded", ["a", "b"], schema="extra") as writer:
        assert writer.write(rows) == 3
    with sqlite_ds.open_writer("loaded", ["a", "b"], schema="extra", mode="append") as writer:
        assert writer.write(rows) == 3
    with pytest.raises(DatasourceError, match="already exists"):
        sqlite_ds.open_writer("loaded", ["a", "b"], schema="extra")
    with pytest.raises(InvalidOption):
        sqlite_ds.open_writer("loaded", ["a", "b"], mode="merge")
    sqlite_ds.close()

    # Committed: a plain sqlite3 connection (no gateway) sees every write.
    with sqlite3.connect(sqlite_ds.parameters["path"]) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (20,)
        assert conn.execute("SELECT count(*) FROM small").fetchone() == (2,)
    conn.close()
    with sqlite3.connect(sqlite_ds.parameters["attach"]["extra"]) as conn:
        assert conn.execute("SELECT count(*) FROM loaded").fetchone() == (6,)
    conn.close()


def test_sqlite_early_close_returns_connection(sqlite_ds: Datasource) -> None:
    pool = sqlite_ds.sa_engine.pool
    chunks = sqlite_ds.stream("SELECT * FROM items", chunk_rows=10)
    next(chunks)
    assert pool.checkedout() == 1
    chunks.close()
    assert pool.checkedout() == 0


def test_embedded_datasource_sees_new_schema_files(tmp_path: Path) -> None:
    record = embedded_record(tmp_path)
    assert record.name == EMBEDDED_NAME == "local"
    assert record.parameters["path"] == str(tmp_path / "local.sqlite")

    pool = DatasourcePool()
    ds = pool.get(record)
    ds.query("CREATE TABLE notes (x INTEGER)")
    # A pooled connection exists now; a schema file dropped in later must still appear.
    path = embedded_schema_path(tmp_path, "test_data")
    assert path == tmp_path / "local" / "test_data.sqlite"
    _sqlite_file(path, "home_rentals", 7)
    assert ds.query("SELECT count(*) FROM test_data.home_rentals") == (["count(*)"], [(7,)])
    assert ds.query("SELECT count(*) FROM notes") == (["count(*)"], [(0,)])

    # The helper creates the file, so a demo can load a table into a brand-new schema.
    embedded_schema_path(tmp_path, "demo")
    with ds.open_writer("home_rentals", ["rooms", "price"], schema="demo") as writer:
        assert writer.write([(1, 1000.0), (2, 1500.0)]) == 2
    assert ds.query("SELECT sum(rooms) FROM demo.home_rentals") == (["sum(rooms)"], [(3,)])

    # Files whose names are not schema names are left alone rather than failing queries.
    (tmp_path / "local" / "not a schema.sqlite").write_bytes(b"")
    assert ds.query("SELECT 1") == (["1"], [(1,)])
    with pytest.raises(InvalidOption):
        embedded_schema_path(tmp_path, "bad-name")
    pool.close_all()


def test_pool_caches_and_reopens(tmp_path: Path) -> None:
    pool = DatasourcePool()
    for name in ("a.db", "b.db"):
        (tmp_path / name).touch()  # datasource files must exist: never created
    first = _record("mydb", "sqlite", {"path": str(tmp_path / "a.db")})
    ds = pool.get(first)
    assert pool.get(first) is ds
    assert pool.get(_record("MYDB", "sqlite", {"path": str(tmp_path / "a.db")})) is ds

    moved = pool.get(_record("mydb", "sqlite", {"path": str(tmp_path / "b.db")}))
    assert moved is not ds and moved.parameters["path"].endswith("b.db")

    pool.drop("MyDB")
    assert pool.get(first) is not moved
    pool.drop("never-opened")  # no error
    pool.close_all()


# -- PostgreSQL ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_pg_check_and_dialect(pg_ds: Datasource) -> None:
    pg_ds.check()
    assert (pg_ds.engine_name, pg_ds.dialect) == ("postgres", "postgres")


@pytest.mark.postgres
def test_pg_stream_uses_server_side_cursor(pg_ds: Datasource, pg_table: str) -> None:
    cursor_names: list[str | None] = []

    def remember(conn: Any, cursor: Any, *args: Any) -> None:
        cursor_names.append(cursor.name)

    event.listen(pg_ds.sa_engine, "before_cursor_execute", remember)
    try:
        chunks = list(pg_ds.stream(f"SELECT id, name FROM {pg_table} ORDER BY id", chunk_rows=10))
    finally:
        event.remove(pg_ds.sa_engine, "before_cursor_execute", remember)

    assert [len(rows) for _, rows in chunks] == [10, 10, 5]
    assert chunks[0][0] == ["id", "name"]
    assert [r for _, rows in chunks for r in rows] == [(i, f"n{i}") for i in range(25)]
    # psycopg2 names its cursor only when it is a server-side (streaming) cursor.
    assert cursor_names and cursor_names[-1] is not None


@pytest.mark.postgres
def test_pg_bound_params(pg_ds: Datasource, pg_table: str) -> None:
    sql = f"SELECT name FROM {pg_table} WHERE id BETWEEN :low AND :high ORDER BY id"
    chunks = list(pg_ds.stream(sql, {"low": 5, "high": 7}))
    assert chunks == [(["name"], [("n5",), ("n6",), ("n7",)])]
    # A parameter is data, never SQL.
    _, rows = pg_ds.query(f"SELECT count(*) FROM {pg_table} WHERE name = :n", {"n": "x' OR '1'='1"})
    assert rows == [(0,)]
    # Casts and literal percent signs survive on both paths.
    assert pg_ds.query("SELECT '7'::int AS n, '50%' AS p, 'a :b' AS c") == (
        ["n", "p", "c"],
        [(7, "50%", "a :b")],
    )


@pytest.mark.postgres
def test_pg_early_close_releases_connection(pg_ds: Datasource, pg_table: str) -> None:
    pool = pg_ds.sa_engine.pool
    pg_ds.check()  # one connection exists and is checked in
    before = pool.checkedin()

    chunks = pg_ds.stream(f"SELECT * FROM {pg_table}", chunk_rows=10)
    next(chunks)
    assert pool.checkedout() == 1
    chunks.close()
    assert pool.checkedout() == 0
    assert pool.checkedin() == before

    # Abandoning a for loop half way behaves the same once the generator is closed.
    gen = pg_ds.stream(f"SELECT * FROM {pg_table}", chunk_rows=5)
    for _cols, _rows in gen:
        break
    gen.close()
    assert pool.checkedout() == 0
    # The released connection is healthy: no open transaction or cursor left behind.
    assert pg_ds.query(f"SELECT count(*) FROM {pg_table}") == (["count"], [(25,)])


@pytest.mark.postgres
def test_pg_error_mapping(pg_ds: Datasource) -> None:
    with pytest.raises(DatasourceError) as info:
        list(pg_ds.stream("SELECT * FROM no_such_table"))
    assert info.value.message.startswith("query failed on datasource 'pg' (postgres): ")
    assert 'relation "no_such_table" does not exist' in info.value.message
    assert info.value.code == "DATASOURCE_ERROR" and info.value.status == 400

    with pytest.raises(DatasourceError, match="syntax error"):
        pg_ds.query("SELEC 1")
    assert pg_ds.query("SELECT 1 AS one") == (["one"], [(1,)])  # the pool recovered


@pytest.mark.postgres
def test_pg_connection_lost_mid_stream_is_unavailable(pg_ds: Datasource, pg_table: str) -> None:
    """The server ends the connection between two chunks: 503 DATASOURCE_UNAVAILABLE (the
    statement was fine), and the next statement gets a new connection."""
    backends: list[int] = []

    def remember(conn: Any, cursor: Any, *args: Any) -> None:
        backends.append(conn.connection.dbapi_connection.get_backend_pid())

    event.listen(pg_ds.sa_engine, "before_cursor_execute", remember)
    try:
        stream = pg_ds.stream(f"SELECT id, name FROM {pg_table} ORDER BY id", chunk_rows=10)
        _, first = next(stream)
    finally:
        event.remove(pg_ds.sa_engine, "before_cursor_execute", remember)
    assert len(first) == 10
    # Another connection of the pool ends the streaming one, as a server restart would.
    _, ended = pg_ds.query(f"SELECT pg_terminate_backend({backends[-1]})")
    assert ended == [(True,)]
    with pytest.raises(DatasourceUnavailable) as info:
        list(stream)
    error = info.value
    assert (error.code, error.status) == ("DATASOURCE_UNAVAILABLE", 503)
    assert error.message.startswith("the connection to datasource 'pg' (postgres at ")
    assert "retry" in error.message
    assert pg_ds.query(f"SELECT count(*) FROM {pg_table}")[1] == [(25,)]


@pytest.mark.postgres
def test_pg_connect_failures_hide_password(postgres_params: dict[str, Any]) -> None:
    secret = "s3cret-" + uuid.uuid4().hex[:6]
    wrong = open_datasource(_record("mydb", "postgres", {**postgres_params, "password": secret}))
    with pytest.raises(DatasourceError) as info:
        wrong.check()
    wrong.close()
    message = info.value.message
    host = postgres_params["host"]
    assert message.startswith(f"cannot connect to datasource 'mydb' (postgres at {host}:")
    assert "password authentication failed" in message
    assert secret not in message

    assert (info.value.code, info.value.status) == ("DATASOURCE_ERROR", 400)  # its parameters

    closed = open_datasource(_record("down", "postgres", {**postgres_params, "port": 1}))
    refused = r"cannot connect to datasource 'down' .*:1\)"
    with pytest.raises(DatasourceError, match=refused) as down:
        list(closed.stream("SELECT 1"))
    closed.close()
    # nothing listens there: the statement may be fine, the database is not reachable
    assert (down.value.code, down.value.status) == ("DATASOURCE_UNAVAILABLE", 503)
    assert "retry it once the database is back" in down.value.message
    nowhere = {**postgres_params, "database": "no_such_db_" + uuid.uuid4().hex[:6]}
    unknown = open_datasource(_record("nodb", "postgres", nowhere))
    with pytest.raises(DatasourceError, match="does not exist") as missing:
        unknown.check()
    unknown.close()
    assert missing.value.code == "DATASOURCE_ERROR"


@pytest.mark.postgres
def test_pg_password_with_url_characters(postgres_url: str, postgres_params: dict) -> None:
    """The URL is built from parts, so '@', ':', '/' and '%' in a password just work."""
    role = f"byom_role_{uuid.uuid4().hex[:8]}"
    password = "p@ss:w/rd%40?#"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD %(pw)s", {"pw": password})
    try:
        params = {**postgres_params, "user": role, "password": password}
        ds = open_datasource(_record("odd", "postgres", params))
        try:
            assert ds.query("SELECT current_user") == (["current_user"], [(role,)])
        finally:
            ds.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


@pytest.mark.postgres
def test_pg_pass_through_view_and_schema(pg_ds: Datasource, pg_table: str) -> None:
    schema = pg_ds.parameters["schema"]
    view = f"v_{uuid.uuid4().hex[:8]}"
    # Unqualified names land in the datasource's schema (its search_path).
    assert pg_ds.query(f"CREATE VIEW {view} AS SELECT id FROM {pg_table} WHERE id < 3") == (
        [],
        [],
    )
    assert pg_ds.query(f"SELECT id FROM {schema}.{view} ORDER BY id") == (
        ["id"],
        [(0,), (1,), (2,)],
    )
    assert pg_ds.query(f"INSERT INTO {pg_table} VALUES (100, 'new')") == ([], [])

    # Committed: a brand-new datasource (other pool, other connection) sees both.
    other = open_datasource(_record("again", "postgres", dict(pg_ds.parameters)))
    try:
        assert other.query(f"SELECT count(*) FROM {view}") == (["count"], [(3,)])
        assert other.query(f"SELECT count(*) FROM {pg_table}") == (["count"], [(26,)])
    finally:
        other.close()


@pytest.mark.postgres
def test_pg_write_back_modes(pg_ds: Datasource) -> None:
    name = f"w_{uuid.uuid4().hex[:8]}"
    rows = [(1.5, "a"), (2.5, "b")]
    with pg_ds.open_writer(name, ["x", "label"]) as writer:
        assert writer.write(rows) == 2
    with pg_ds.open_writer(name, ["x", "label"], mode="append") as writer:
        assert writer.write(rows[:1]) == 1
    with pytest.raises(DatasourceError, match="already exists"):
        pg_ds.open_writer(name, ["x", "label"])
    with pytest.raises(InvalidOption, match="write mode"):
        pg_ds.open_writer(name, ["x", "label"], mode="replace")  # no replace: drop it first
    assert pg_ds.query(f"SELECT x, label FROM {name} ORDER BY x, label") == (
        ["x", "label"],
        [(1.5, "a"), (1.5, "a"), (2.5, "b")],
    )


def test_sqlite_files_use_wal_so_writers_pass_readers(sqlite_ds: Datasource) -> None:
    """WAL mode, for the main file and attached ones: a reader part-way through a result
    does not block a commit into the same file (rollback-journal mode would: "database is
    locked" after the busy timeout)."""
    _, modes = sqlite_ds.query("PRAGMA main.journal_mode")
    assert modes == [("wal",)]
    assert sqlite_ds.query("PRAGMA extra.journal_mode")[1] == [("wal",)]

    chunks = sqlite_ds.stream("SELECT id FROM items ORDER BY id", chunk_rows=10)
    _, first = next(chunks)
    sqlite_ds.query("INSERT INTO items VALUES (100, 'late')")  # commits beside the reader
    rest = [r for _, rows in chunks for r in rows]
    assert len(first) + len(rest) == 25  # the reader keeps its snapshot
    assert sqlite_ds.query("SELECT count(*) FROM items")[1] == [(26,)]
