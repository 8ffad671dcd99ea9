"""Unit tests of gateway.mysql_schema's pure parts: the MySQL type of a declared column type,
and SHOW CREATE TABLE's DDL (the schema read itself: tests/gateway/test_mysql_protocol.py)."""

from __future__ import annotations

import pytest
from mysql_mimic.errors import MysqlError

from gateway.mysql_schema import create_table, mysql_type


@pytest.mark.parametrize(
    ("declared", "kind"),
    [
        ("", "TEXT"),  # SQLite's untyped column
        ("INTEGER", "BIGINT"),
        ("smallint", "BIGINT"),
        ("POINT", "TEXT"),  # not an INT
        ("INTERVAL", "TEXT"),
        ("VARCHAR(20)", "TEXT"),
        ("JSONB", "TEXT"),
        ("BOOLEAN", "TINYINT"),
        ("DOUBLE PRECISION", "DOUBLE"),
        ("NUMERIC(10, 2)", "DOUBLE"),
        ("TIMESTAMP WITHOUT TIME ZONE", "DATETIME"),
        ("DATE", "DATE"),
        ("TIME", "TIME"),
        ("BYTEA", "BLOB"),
    ],
)
def test_mysql_types(declared: str, kind: str) -> None:
    assert mysql_type(declared) == kind


def test_create_table_writes_the_columns() -> None:
    tables = {"local": {"T`1": {"id": "BIGINT", "name": "TEXT"}}}
    rows, columns = create_table(tables, "local", "t`1")  # names match in any case
    assert columns == ["Table", "Create Table"]
    assert rows == [("t`1", "CREATE TABLE `t``1` (\n  `id` bigint,\n  `name` text\n)")]
    with pytest.raises(MysqlError) as missing:
        create_table(tables, "other", "t")
    assert (missing.value.code, missing.value.msg) == (1146, "Table 'other.t' doesn't exist")
    with pytest.raises(MysqlError) as no_database:
        create_table(tables, None, "t")
    assert no_database.value.code == 1046
