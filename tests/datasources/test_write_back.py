"""Write-back: ``Datasource.open_writer`` / ``TableWriter`` and ``Datasource.count``, on a
SQLite file and on the real PostgreSQL server (each test runs on both)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import inspect

from byom.errors import DatasourceError, InvalidInput, InvalidOption
from catalog.records import DatasourceRecord
from datasources import Datasource, TableWriter, infer_column_type, open_datasource

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _record(name: str, engine: str, parameters: dict[str, Any]) -> DatasourceRecord:
    return DatasourceRecord(name=name, engine=engine, parameters=parameters, created_at=NOW)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def record(request: pytest.FixtureRequest, tmp_path: Path) -> DatasourceRecord:
    """The datasource under test: a fresh SQLite file, or the test schema on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "wb.db"
        path.touch()  # datasource files must exist: the gateway never creates one
        return _record("wb", "sqlite", {"path": str(path)})
    return _record("wb", "postgres", request.getfixturevalue("postgres_params"))


@pytest.fixture
def ds(record: DatasourceRecord) -> Iterator[Datasource]:
    datasource = open_datasource(record)
    yield datasource
    # Every test must leave no connection checked out, whatever it did.
    assert datasource.sa_engine.pool.checkedout() == 0
    datasource.close()


@pytest.fixture
def other(record: DatasourceRecord) -> Iterator[Datasource]:
    """The same database through a second pool: it sees only what was committed."""
    datasource = open_datasource(record)
    yield datasource
    datasource.close()


@pytest.fixture
def table() -> str:
    # Unique: the PostgreSQL schema is shared by the whole test session.
    return f"wb_{uuid.uuid4().hex[:8]}"


def _types(ds: Datasource, table: str, schema: str | None = None) -> dict[str, str]:
    dialect = ds.sa_engine.dialect
    return {
        c["name"]: c["type"].compile(dialect=dialect)
        for c in inspect(ds.sa_engine).get_columns(table, schema=schema)
    }


def _count(ds: Datasource, table: str) -> int:
    return ds.query(f"SELECT count(*) FROM {table}")[1][0][0]


# -- create mode ---------------------------------------------------------------------------


def test_create_infers_types_from_first_batch(ds: Datasource, table: str) -> None:
    columns = ["b", "i", "f", "dec", "s", "d", "ts", "raw", "nothing", "ints_floats", "mixed"]
    rows = [
        (True, 1, 1.5, Decimal("1.25"), "x", date(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5),
         b"\x00\xff", None, 1, 1),
        (False, None, 2.0, Decimal("10.50"), None, None, None, None, None, 2.5, "two"),
    ]  # fmt: skip
    writer = ds.open_writer(table, columns)
    assert isinstance(writer, TableWriter)
    assert not inspect(ds.sa_engine).has_table(table)  # created lazily, on the first write
    assert writer.write(rows) == 2
    writer.close()

    sqlite = ds.engine_name == "sqlite"
    expected = {
        "b": "BOOLEAN",
        "i": "BIGINT",
        "f": "REAL" if sqlite else "DOUBLE PRECISION",
        "dec": "NUMERIC",
        "s": "TEXT",
        "d": "DATE",
        "ts": "TIMESTAMP" if sqlite else "TIMESTAMP WITHOUT TIME ZONE",
        "raw": "BLOB" if sqlite else "BYTEA",
        "nothing": "TEXT",
        "ints_floats": "REAL" if sqlite else "DOUBLE PRECISION",
        "mixed": "TEXT",
    }
    assert _types(ds, table) == expected

    # "nothing" is an SQLite keyword that SQLAlchemy does not know to quote: the writer
    # quotes every identifier, and so must this query.
    _, back = ds.query(
        f'SELECT b, i, f, dec, s, raw, "nothing", ints_floats FROM {table} ORDER BY f'
    )
    # SQLite gives booleans back as 0/1, psycopg2 gives bytea back as a memoryview.
    back = [(bool(r[0]), *r[1:5], r[5] and bytes(r[5]), *r[6:]) for r in back]
    assert back == [
        (True, 1, 1.5, Decimal("1.25") if not sqlite else 1.25, "x", b"\x00\xff", None, 1.0),
        (False, None, 2.0, Decimal("10.50") if not sqlite else 10.5, None, None, None, 2.5),
    ]
    _, back = ds.query(f"SELECT d, ts FROM {table} WHERE d IS NOT NULL")
    if sqlite:  # SQLite keeps dates as ISO text, as its own adapters did
        assert back == [("2024-01-02", "2024-01-02 03:04:05")]
    else:
        assert back == [(date(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5))]


def test_later_batches_store_what_the_database_converts(ds: Datasource, table: str) -> None:
    writer = ds.open_writer(table, ["n", "label"])
    writer.write([(1, "a")])
    writer.write([("7", 8)])  # other Python types than the first batch had
    _, rows = ds.query(f"SELECT n, label FROM {table} ORDER BY n")
    assert rows == [(1, "a"), (7, "8")]

    if ds.engine_name == "postgres":
        with pytest.raises(DatasourceError) as info:
            writer.write([("not a number", "b")])
        assert "invalid input syntax for type bigint" in info.value.message
    else:  # SQLite keeps the text: its column types are not strict
        writer.write([("not a number", "b")])
        assert ds.query(f"SELECT typeof(n) FROM {table} WHERE label = 'b'")[1] == [("text",)]
    writer.close()


def test_timezones_numpy_and_json_values(ds: Datasource, table: str) -> None:
    aware = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    rows = [
        (np.int64(3), np.float64(0.5), np.bool_(True), aware, {"k": [1, 2]}, uuid.UUID(int=1)),
        (np.int64(4), np.float32(1.5), np.bool_(False), None, [1, "x"], None),
    ]
    writer = ds.open_writer(table, ["i", "f", "b", "at", "doc", "id"])
    assert writer.write(rows) == 2
    writer.close()

    types = _types(ds, table)
    assert (types["i"], types["b"], types["doc"], types["id"]) == (
        "BIGINT",
        "BOOLEAN",
        "TEXT",
        "TEXT",
    )
    if ds.engine_name == "postgres":
        assert types["at"] == "TIMESTAMP WITH TIME ZONE"
    _, back = ds.query(f"SELECT i, f, doc, id FROM {table} ORDER BY i")
    assert back == [
        (3, 0.5, '{"k": [1, 2]}', "00000000-0000-0000-0000-000000000001"),
        (4, 1.5, '[1, "x"]', None),
    ]
    _, (row,) = ds.query(f"SELECT at FROM {table} WHERE i = 3")
    if ds.engine_name == "postgres":
        assert row[0] == aware  # the same instant, whatever the session's time zone
    else:
        assert row[0] == "2024-05-01 12:00:00+02:00"


def test_each_chunk_is_committed(ds: Datasource, other: Datasource, table: str) -> None:
    writer = ds.open_writer(table, ["id", "name"])
    for chunk in range(3):
        rows = [(chunk * 10 + i, f"n{chunk}-{i}") for i in range(10)]
        assert writer.write(rows) == 10
        # Another pool, another connection: sees the chunk as soon as write() returns.
        assert _count(other, table) == 10 * (chunk + 1)
        assert writer.rows_written == 10 * (chunk + 1)
        assert ds.sa_engine.pool.checkedout() == 0  # nothing held between chunks
    assert writer.write([]) == 0
    writer.close()
    assert writer.closed
    with pytest.raises(ValueError, match="closed"):
        writer.write([(1, "x")])
    _, rows = other.query(f"SELECT id, name FROM {table} WHERE id IN (0, 29) ORDER BY id")
    assert rows == [(0, "n0-0"), (29, "n2-9")]


def test_create_refuses_an_existing_table(ds: Datasource, table: str) -> None:
    ds.query(f"CREATE TABLE {table} (x INTEGER)")
    with pytest.raises(DatasourceError) as info:
        ds.open_writer(table, ["x"])
    assert info.value.message == (
        f"table '{table}' already exists in datasource 'wb'; use INSERT INTO ... SELECT to append."
    )
    assert info.value.details == {"datasource": "wb", "table": table}

    # Created by someone else between open_writer and the first write: the database's
    # refusal comes back as a DatasourceError too.
    late = f"{table}_late"
    writer = ds.open_writer(late, ["x"])
    ds.query(f"CREATE TABLE {late} (x INTEGER)")
    with pytest.raises(DatasourceError, match=f"writing table '{late}' in datasource 'wb'"):
        writer.write([(1,)])
    writer.close()


def test_empty_result_creates_table_only_on_finish(ds: Datasource, table: str) -> None:
    writer = ds.open_writer(table, ["a", "b"])
    writer.write([])
    writer.close()  # an aborted write-back creates nothing
    assert not inspect(ds.sa_engine).has_table(table)

    with ds.open_writer(table, ["a", "b"]) as writer:
        pass  # finish(): CREATE TABLE ... AS SELECT of no rows still makes the table
    assert writer.closed
    assert _types(ds, table) == {"a": "TEXT", "b": "TEXT"}
    assert _count(ds, table) == 0

    with pytest.raises(RuntimeError), ds.open_writer(f"{table}_x", ["a"]) as writer:
        raise RuntimeError("the JOIN failed")
    assert not inspect(ds.sa_engine).has_table(f"{table}_x")


# -- append mode ---------------------------------------------------------------------------


def test_append_matches_columns_by_name(ds: Datasource, table: str) -> None:
    ds.query(
        f"CREATE TABLE {table} (id INTEGER, \"Label\" TEXT, extra TEXT, note TEXT DEFAULT 'dflt')"
    )
    ds.query(f"INSERT INTO {table} (id, \"Label\") VALUES (0, 'old')")
    writer = ds.open_writer(table, ["label", "id"], mode="append")  # other order and case
    assert writer.columns == ["Label", "id"]
    assert writer.write([("a", 1), ("b", 2)]) == 2
    writer.close()
    _, rows = ds.query(f'SELECT id, "Label", extra, note FROM {table} ORDER BY id')
    assert rows == [(0, "old", None, "dflt"), (1, "a", None, "dflt"), (2, "b", None, "dflt")]


def test_append_errors_name_what_is_missing(ds: Datasource, table: str) -> None:
    ds.query(f"CREATE TABLE {table} (id INTEGER, label TEXT)")
    with pytest.raises(DatasourceError) as info:
        ds.open_writer(table, ["id", "score", "rank"], mode="append")
    assert info.value.message == (
        f"table '{table}' in datasource 'wb' has no column 'score', 'rank'; its columns: id, label."
    )
    with pytest.raises(DatasourceError) as info:
        ds.open_writer(f"{table}_nope", ["id"], mode="append")
    assert info.value.message == (
        f"table '{table}_nope' does not exist in datasource 'wb'; "
        "use CREATE TABLE ... AS SELECT to create it."
    )


def test_failing_chunk_keeps_earlier_chunks(ds: Datasource, other: Datasource, table: str) -> None:
    ds.query(f"CREATE TABLE {table} (id INTEGER NOT NULL, v TEXT)")
    writer = ds.open_writer(table, ["id", "v"], mode="append")
    writer.write([(1, "a"), (2, "b")])
    writer.write([(3, "c"), (4, "d")])
    with pytest.raises(DatasourceError) as info:
        writer.write([(5, "e"), (None, "f"), (7, "g")])
    message = info.value.message
    assert message.startswith(f"writing table '{table}' in datasource 'wb' ({ds.engine_name})")
    db_says = "NOT NULL constraint failed" if ds.engine_name == "sqlite" else "null value in column"
    assert db_says in message
    assert "4 rows were written before this chunk and stay committed" in message
    assert info.value.details == {"datasource": "wb", "table": table, "rows_written": 4}
    assert writer.rows_written == 4
    # Rows 1-4 are committed; the failing chunk is rolled back as a whole (no row 5).
    _, rows = other.query(f"SELECT id FROM {table} ORDER BY id")
    assert rows == [(1,), (2,), (3,), (4,)]
    assert ds.sa_engine.pool.checkedout() == 0

    # The writer can go on after a failed chunk, and the pool is healthy.
    assert writer.write([(8, "h")]) == 1 and writer.rows_written == 5
    writer.close()
    assert _count(ds, table) == 5


# -- identifiers and values ----------------------------------------------------------------


def test_quoted_identifiers_and_bound_values(ds: Datasource, record: DatasourceRecord) -> None:
    # A name that needs quoting, in an explicit schema (attached file / the test schema).
    if ds.engine_name == "sqlite":
        ds.close()
        path = str(Path(record.parameters["path"]).with_name("side.db"))
        Path(path).touch()  # attached files must exist too: never created
        ds = open_datasource(
            _record("wb", "sqlite", {**record.parameters, "attach": {"side": path}})
        )
        schema = "side"
    else:
        schema = record.parameters["schema"]
    table = f"Odd Table {uuid.uuid4().hex[:6]}"
    columns = ["1", "Number Of Rooms", 'we"ird', "select"]
    nasty = "x'); DROP TABLE t; --"
    try:
        writer = ds.open_writer(table, columns, schema=schema)
        assert writer.write([(1, 3, nasty, "%(x)s :y ?")]) == 1
        writer.close()
        writer = ds.open_writer(table, list(reversed(columns)), schema=schema, mode="append")
        assert writer.write([("s", None, 4, 2)]) == 1
        writer.close()

        assert set(_types(ds, table, schema)) == set(columns)
        _, rows = ds.query(
            f'SELECT "1", "Number Of Rooms", "we""ird", "select" '
            f'FROM "{schema}"."{table}" ORDER BY "1"'
        )
        assert rows == [(1, 3, nasty, "%(x)s :y ?"), (2, 4, None, "s")]
        with pytest.raises(DatasourceError, match="already exists"):
            ds.open_writer(table, columns, schema=schema)
    finally:
        if ds.engine_name == "sqlite":
            ds.close()


def test_bad_arguments(ds: Datasource, table: str) -> None:
    with pytest.raises(InvalidOption, match="write mode must be one of create, append"):
        ds.open_writer(table, ["a"], mode="replace")
    with pytest.raises(InvalidInput, match="repeated: a"):
        ds.open_writer(table, ["a", "b", "a"])
    with pytest.raises(InvalidInput, match="no columns"):
        ds.open_writer(table, [])
    writer = ds.open_writer(table, ["a", "b"])
    with pytest.raises(InvalidInput, match=r"has 1 values; expected 2 \(a, b\)"):
        writer.write([(1, 2), (3,)])
    writer.close()


def test_infer_column_type_families() -> None:
    def name(values: list[Any], dialect: str = "postgres") -> str:
        return type(infer_column_type(values, dialect)).__name__

    assert name([True, None, False]) == "Boolean"
    assert name([1, True]) == "Text"  # a bool is not silently an integer
    assert name([1, Decimal("2.5")]) == "Numeric"
    assert name([1, Decimal("2.5"), 0.5]) == "DOUBLE_PRECISION"
    assert name([Decimal("2.5"), 0.5]) == "DOUBLE_PRECISION"
    assert name([1, 0.5], "sqlite") == "REAL"
    assert name([date(2024, 1, 1), datetime(2024, 1, 1, 1)]) == "TIMESTAMP"
    assert name([None, None]) == name([]) == "Text"
    assert name([bytearray(b"x")]) == "LargeBinary"


# -- reading and writing the same database --------------------------------------------------


def test_write_back_while_streaming_the_same_database(ds: Datasource, table: str) -> None:
    """A JOIN reads its source chunk by chunk while the writer commits into the same
    database (on SQLite: the same file; WAL mode is what makes that possible)."""
    source = f"{table}_src"
    ds.query(f"CREATE TABLE {source} (id INTEGER)")
    ds.query(f"INSERT INTO {source} (id) SELECT * FROM (VALUES (1), (2), (3), (4), (5)) AS v")
    writer = ds.open_writer(table, ["id", "double"])
    chunks = ds.stream(f"SELECT id FROM {source} ORDER BY id", chunk_rows=2)
    for _columns, rows in chunks:
        writer.write([(r[0], r[0] * 2) for r in rows])
    writer.close()
    assert writer.rows_written == 5
    assert ds.query(f"SELECT sum(double) FROM {table}")[1] == [(30,)]


# -- count ---------------------------------------------------------------------------------


def test_count(ds: Datasource, table: str, caplog: pytest.LogCaptureFixture) -> None:
    ds.query(f"CREATE TABLE {table} (id INTEGER)")
    writer = ds.open_writer(table, ["id"], mode="append")
    writer.write([(i,) for i in range(25)])
    writer.close()

    assert ds.count(f"SELECT * FROM {table}") == 25
    assert ds.count(f"SELECT id FROM {table} WHERE id >= :low", {"low": 20}) == 5
    assert ds.count(f"SELECT id FROM {table} ORDER BY id DESC LIMIT 7;") == 7
    assert ds.count(f"SELECT id FROM {table} -- a trailing comment") == 25
    assert ds.count(f"SELECT id FROM {table} WHERE id < 0") == 0

    uncountable = "PRAGMA table_info(x)" if ds.engine_name == "sqlite" else "SHOW search_path"
    with caplog.at_level(logging.DEBUG, logger="datasources"):
        assert ds.count(uncountable) is None
        assert ds.count("SELECT * FROM no_such_table") is None
    assert any("cannot count" in r.getMessage() for r in caplog.records)
    assert ds.sa_engine.pool.checkedout() == 0
    assert ds.count(f"SELECT * FROM {table}") == 25  # the pool is healthy afterwards
