"""The MySQL protocol (gateway.mysql_server) with real clients: pymysql, SQLAlchemy's
``mysql+pymysql://`` and the ``mariadb`` command-line client, against ``create_app`` served
by uvicorn (its lifespan starts the MySQL server on the same gateway), and a real HTTP
model endpoint. Every answer is compared with what ``POST /api/sql`` answers."""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pymysql
import pymysql.cursors
import pytest
import sqlalchemy as sa
from pymysql.constants import COMMAND, FIELD_TYPE
from pymysql.protocol import FieldDescriptorPacket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.server import create_app
from gateway.settings import Settings
from tests.threaded_server import serving

ROWS = 20_000


@dataclass
class Model:
    """A ray_serve-format model (``y = 2 * x``) that counts its calls; from call
    ``hold_from`` on it waits for ``release`` (to show rows reach the client first)."""

    url: str = ""
    calls: int = 0
    hold_from: int | None = None
    fail_from: int | None = None  # from this call on: HTTP 400
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Served:
    url: str
    mysql_port: int
    app: Any

    def connect(self, **kwargs: Any) -> pymysql.Connection:
        options = {"user": "anyone", "password": "anything", "autocommit": True} | kwargs
        return pymysql.connect(host="127.0.0.1", port=self.mysql_port, **options)

    def http(self, sql: str, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = httpx.post(f"{self.url}/api/sql", json={"query": sql}, headers=headers)
        return answer.json()


@pytest.fixture(scope="module")
def model() -> Iterator[Model]:
    state = Model()

    async def predict(request: Request) -> Response:
        rows = json.loads((await request.json())["df"])
        state.calls += 1
        if state.fail_from is not None and state.calls >= state.fail_from:
            return JSONResponse({"detail": "model broke"}, status_code=400)
        if state.hold_from is not None and state.calls >= state.hold_from:
            await asyncio.to_thread(state.release.wait, 10)
        return JSONResponse({"prediction": [2 * row["x"] for row in rows]})

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
    with serving(app, "model") as url:
        state.url = url + "/predict"
        yield state


def _serve(home: Path) -> Iterator[Served]:
    app = create_app(home=home, settings=Settings(), mysql_port=0)
    with serving(app, "gateway") as url:
        yield Served(url, app.state.mysql_port, app)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, model: Model) -> Iterator[Served]:
    yield from _serve(tmp_path_factory.mktemp("mysql"))


def _same(value: Any) -> Any:
    """An HTTP answer's value as the MySQL text protocol gives it back."""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return int(value)
    return value


def _http_rows(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    assert "error" not in answer, answer
    return [tuple(_same(v) for v in row) for row in answer["rows"]]


def _mysql(conn: pymysql.Connection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        columns = [d[0] for d in cur.description or ()]
        return columns, list(cur.fetchall())


def _create_model(name: str, url: str) -> str:
    return (
        f"CREATE MODEL {name} PREDICT y USING url.predict = '{url}', format = 'ray_serve', "
        'dtype_dict = {"x": "integer"}'
    )


def test_statements_answer_as_over_http(gw: Served, model: Model) -> None:
    conn = gw.connect()
    _mysql(conn, "CREATE TABLE items (id INT, x INT)")
    _mysql(conn, "INSERT INTO items VALUES (1, 10), (2, 20), (3, NULL)")
    columns, rows = _mysql(conn, _create_model("doubler", model.url))
    assert columns[0] == "name" and rows[0][0] == "doubler"
    statements = [
        "SELECT * FROM doubler WHERE x = 21",
        "SELECT t.id, p.y FROM local.items AS t JOIN doubler AS p WHERE t.x IS NOT NULL",
        "SHOW MODELS",
        "SHOW DATABASES",
        "SHOW FULL DATABASES",
        "DESCRIBE doubler",
        "SHOW TABLES FROM local",
    ]
    for sql in statements:
        columns, rows = _mysql(conn, sql)
        answer = gw.http(sql)
        assert columns == answer["columns"], sql
        assert rows == _http_rows(answer), sql
    assert _mysql(conn, "SELECT * FROM doubler WHERE x = 21")[1] == [(21, 42)]
    assert _mysql(conn, "DROP MODEL doubler") == ([], [])
    assert gw.http("SHOW MODELS")["rows"] == []


def test_sqlalchemy_and_use_per_connection(gw: Served) -> None:
    engine = sa.create_engine(f"mysql+pymysql://me:pw@127.0.0.1:{gw.mysql_port}/local")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS sa_t (n INT)")
            conn.exec_driver_sql("INSERT INTO sa_t VALUES (7)")
            # USE local (from the URL) holds for the connection: unqualified names
            assert conn.exec_driver_sql("SELECT n FROM sa_t").fetchall() == [(7,)]
            assert conn.execute(sa.text("SELECT DATABASE()")).scalar() == "local"
            shown = conn.exec_driver_sql("SHOW DATABASES").fetchall()
            assert [tuple(r) for r in shown] == _http_rows(gw.http("SHOW DATABASES"))
    finally:
        engine.dispose()


def test_sqlalchemy_reflects_schemas_tables_and_columns(gw: Served, model: Model) -> None:
    """SQLAlchemy's MySQL dialect reflects with SHOW SCHEMAS and SHOW CREATE TABLE: the
    datasources and projects, their tables and models, and the columns information_schema
    shows (a table's typed as its datasource declares them, a model's by its dtype_dict)."""
    conn = gw.connect()
    _mysql(conn, "CREATE TABLE IF NOT EXISTS refl_t (id INTEGER, name TEXT)")
    _mysql(conn, "INSERT INTO refl_t VALUES (1, 'one')")
    _mysql(conn, _create_model("refl_m", model.url))
    engine = sa.create_engine(f"mysql+pymysql://me:pw@127.0.0.1:{gw.mysql_port}/local")
    try:
        inspector = sa.inspect(engine)
        listed = [row[0] for row in gw.http("SHOW DATABASES")["rows"]]
        assert inspector.get_schema_names() == listed and "local" in listed
        assert "refl_t" in inspector.get_table_names(schema="local")
        columns = {c["name"]: c["type"] for c in inspector.get_columns("refl_t", "local")}
        assert list(columns) == ["id", "name"]  # typed as the datasource declares them
        assert isinstance(columns["id"], sa.BigInteger) and isinstance(columns["name"], sa.Text)
        model_columns = {c["name"]: c["type"] for c in inspector.get_columns("refl_m", "mindsdb")}
        assert list(model_columns) == ["x", "y"] and isinstance(model_columns["x"], sa.BigInteger)
        table = sa.Table("refl_t", sa.MetaData(), autoload_with=engine, schema="local")
        with engine.connect() as sa_conn:
            assert sa_conn.execute(sa.select(table).where(table.c.id == 1)).all() == [(1, "one")]
        # has_table runs DESCRIBE, as pandas.read_sql_table does before reading
        assert inspector.has_table("refl_t", schema="local")
        assert not inspector.has_table("nosuch", schema="local")
        frame = pd.read_sql_table("refl_t", engine, schema="local")
        assert frame.to_dict("records") == [{"id": 1, "name": "one"}]
    finally:
        engine.dispose()
    with pytest.raises(pymysql.err.MySQLError) as missing:
        _mysql(gw.connect(database="local"), "SHOW CREATE TABLE nosuch")
    assert missing.value.args == (1146, "Table 'local.nosuch' doesn't exist")
    with pytest.raises(pymysql.err.MySQLError) as no_database:
        _mysql(gw.connect(), "SHOW CREATE TABLE refl_t")
    assert no_database.value.args[0] == 1046


def test_mysql_clients_own_statements(gw: Served) -> None:
    conn = gw.connect()
    assert _mysql(conn, "SELECT @@version_comment LIMIT 1")[1] == [("byom-gateway",)]
    assert _mysql(conn, "SET NAMES utf8mb4") == ([], [])
    assert _mysql(conn, "SHOW VARIABLES LIKE 'sql_mode'")[0] == ["Variable_name", "Value"]
    _mysql(conn, "CREATE TABLE IF NOT EXISTS info_t (a INT)")
    _, rows = _mysql(
        conn,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'local' "
        "AND table_name = 'info_t'",
    )
    assert rows == [("info_t",)]
    _mysql(conn, "SET @v = 5")  # the gateway's session variables, per connection
    assert _mysql(conn, "SELECT @v")[1] == [(5,)]
    assert _mysql(gw.connect(), "SELECT @v")[1] == [(None,)]


def test_parameters_with_quotes_and_backslashes_arrive_as_sent(gw: Served) -> None:
    """Drivers escape parameters themselves. The gateway's strings take no backslash
    escapes, and it says so (the status flag pymysql and libmysqlclient read, and
    @@sql_mode for SQLAlchemy): every value arrives as sent, none a parse error."""
    values = ["it's", 'a "b" \\ c', "line\nbreak\r\x1a", "\\'", "ünï 😀"]
    conn = gw.connect()
    with conn.cursor() as cur:
        for value in values:
            cur.execute("SELECT %s AS v", (value,))
            assert cur.fetchall() == ((value,),)
        cur.execute("CREATE TABLE IF NOT EXISTS quoted_t (s TEXT)")
        cur.executemany("INSERT INTO quoted_t VALUES (%s)", [(v,) for v in values])
    assert gw.http("SELECT s FROM local.quoted_t")["rows"] == [[v] for v in values]
    assert _mysql(conn, "SELECT @@sql_mode")[1] == [("ANSI,NO_BACKSLASH_ESCAPES",)]
    engine = sa.create_engine(f"mysql+pymysql://me:pw@127.0.0.1:{gw.mysql_port}/local")
    try:
        with engine.connect() as sa_conn:
            for value in values:  # bound by pymysql, then written inline by SQLAlchemy
                assert sa_conn.execute(sa.text("SELECT :v"), {"v": value}).scalar() == value
                inline = sa.select(sa.literal(value, literal_execute=True))
                assert sa_conn.execute(inline).scalar() == value
    finally:
        engine.dispose()


def test_errors_carry_the_gateways_code_and_keep_the_connection(gw: Served) -> None:
    conn = gw.connect()
    with pytest.raises(pymysql.err.ProgrammingError) as parse:
        _mysql(conn, "SELEC 1")
    assert parse.value.args[0] == 1064
    assert parse.value.args[1].startswith("[PARSE_ERROR] ")
    assert gw.http("SELEC 1")["error"]["message"] in parse.value.args[1]
    with pytest.raises(pymysql.err.ProgrammingError) as missing:
        _mysql(conn, "DESCRIBE nosuchmodel")
    assert missing.value.args[0] == 1146
    assert "[MODEL_NOT_FOUND]" in missing.value.args[1]
    with pytest.raises(pymysql.err.MySQLError) as other:
        _mysql(conn, "USE nosuchdb")
    assert other.value.args[0] == 1049
    assert _mysql(conn, "SELECT 1")[1] == [(1,)]  # still usable


def test_a_join_streams_to_the_client(gw: Served, model: Model) -> None:
    conn = gw.connect()
    _mysql(conn, "CREATE TABLE big (id INTEGER, x INTEGER)")
    _mysql(
        conn,
        f"INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        f"WHERE i < {ROWS}) SELECT i, i FROM n",
    )
    _mysql(conn, _create_model("streamer", model.url))
    model.calls, model.hold_from = 0, 4  # batches 4+ wait until rows reached the client
    model.release.clear()
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    try:
        cursor.execute(
            "SELECT t.id, p.y FROM local.big AS t JOIN streamer AS p "
            "USING batch_size = 1000, concurrency = 2"
        )
        first = cursor.fetchmany(1000)
        # 1000 rows arrived while the model still held batch 4 of 20: nothing was collected
        assert len(first) == 1000 and model.calls <= 5 and not model.release.is_set()
        model.release.set()
        rest = cursor.fetchall()
    finally:
        model.release.set()
        cursor.close()
    rows = first + list(rest)
    assert len(rows) == ROWS
    assert rows[0] == (1, 2) and rows[-1] == (ROWS, 2 * ROWS)
    assert model.calls == ROWS // 1000
    model.hold_from = None


def _param(value: int | str | None) -> tuple[int, bytes]:
    """A COM_STMT_EXECUTE parameter's type and value bytes (a NULL's are none)."""
    if value is None:
        return FIELD_TYPE.NULL, b""
    if isinstance(value, int):
        return FIELD_TYPE.LONGLONG, struct.pack("<q", value)
    encoded = value.encode()
    assert len(encoded) < 0x10000
    length = (
        bytes([len(encoded)]) if len(encoded) < 251 else b"\xfc" + struct.pack("<H", len(encoded))
    )
    return FIELD_TYPE.VAR_STRING, length + encoded


def _prepared(
    conn: pymysql.Connection, sql: str, *params: int | str | None
) -> list[tuple[Any, ...]]:
    """``sql`` with ``params`` for its ``?`` as a server-side prepared statement,
    as drivers that prepare send it (COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_CLOSE;
    pymysql never does, so through its packet layer): the binary rows, decoded for BIGINT,
    DOUBLE and text."""
    conn._execute_command(COMMAND.COM_STMT_PREPARE, sql)
    ok = conn._read_packet()  # an error packet raises here
    assert ok.read_uint8() == 0
    stmt_id, columns, count = ok.read_uint32(), ok.read_uint16(), ok.read_uint16()
    assert (columns, count) == (0, len(params))  # mysql-mimic tells the columns at execute
    if params:  # a "?" definition each, then EOF
        for _ in range(count + 1):
            conn._read_packet()
    execute = struct.pack("<IBI", stmt_id, 0, 1)
    if params:  # the NULL bitmap, types bound now (signed), then the values
        nulls = bytearray((len(params) + 7) // 8)
        for i, value in enumerate(params):
            nulls[i // 8] |= (value is None) << (i % 8)
        typed = [_param(value) for value in params]
        execute += bytes(nulls) + b"\x01" + b"".join(bytes([kind, 0]) for kind, _ in typed)
        execute += b"".join(value for _, value in typed)
    conn._execute_command(COMMAND.COM_STMT_EXECUTE, execute)
    count = conn._read_packet().read_length_encoded_integer()
    types = [conn._read_packet(FieldDescriptorPacket).type_code for _ in range(count)]
    assert conn._read_packet().is_eof_packet()
    rows = []
    while not (packet := conn._read_packet()).is_eof_packet():
        assert packet.read_uint8() == 0  # a binary row's header
        nulls = packet.read((count + 9) // 8)
        row: list[Any] = []
        for i, kind in enumerate(types):
            if nulls[(i + 2) // 8] & (1 << ((i + 2) % 8)):
                row.append(None)
            elif kind == FIELD_TYPE.LONGLONG:
                row.append(packet.read_struct("<q")[0])
            elif kind == FIELD_TYPE.DOUBLE:
                row.append(packet.read_struct("<d")[0])
            else:
                row.append(packet.read_length_coded_string().decode())
        rows.append(tuple(row))
    conn._execute_command(COMMAND.COM_STMT_CLOSE, struct.pack("<I", stmt_id))  # no answer
    return rows


def test_a_prepared_join_sends_binary_rows(gw: Served, model: Model) -> None:
    conn = gw.connect()
    _mysql(conn, "CREATE TABLE prep (id INTEGER, name TEXT, x INTEGER)")
    _mysql(conn, "INSERT INTO prep VALUES (1, 'one', 1), (2, NULL, 2), (3, 'three', 3)")
    _mysql(conn, _create_model("prepared", model.url))
    join = "SELECT t.id, t.name, p.y FROM local.prep AS t JOIN prepared AS p USING batch_size = 2"
    rows = _prepared(conn, join)
    assert rows == [(1, "one", 2), (2, None, 4), (3, "three", 6)]
    assert rows == _mysql(conn, join)[1]  # as the text protocol gives them
    assert _prepared(conn, join + ", concurrency = ?", 1) == rows  # a bound parameter
    assert _prepared(conn, "SELECT id, name FROM local.prep WHERE id = ?", 3) == [(3, "three")]
    assert _prepared(conn, "SELECT id FROM local.prep WHERE name = ?", "three") == [(3,)]
    assert _prepared(conn, "SELECT id FROM local.prep WHERE name IS ?", None) == [(2,)]
    assert _prepared(conn, "SELECT id FROM local.prep WHERE name = ?", "x' OR 'a'='a") == []
    with pytest.raises(pymysql.err.MySQLError, match=r"1105.*no such table: nosuch"):
        _prepared(conn, "SELECT t.id, p.y FROM local.prep AS t JOIN nosuch AS p")
    assert _mysql(conn, "SELECT 1 AS one")[1] == [(1,)]  # the connection goes on


def test_prepared_parameters_arrive_as_sent(gw: Served) -> None:
    """A prepared statement's values are bound as literals of the gateway's SQL: quotes,
    backslashes, a "?" or a quote character in a value change nothing else."""
    conn = gw.connect()
    values = ["it's", 'a "b" \\ c \\1', 'why? `x` "y"', "line\nbreak", "ünï 😀", "z" * 300]
    for value in values:
        assert _prepared(conn, "SELECT ? AS v, ? AS w", value, 7) == [(value, 7)]
    assert _prepared(conn, "SELECT '?' AS q, ? AS v", "'") == [("?", "'")]  # not a place
    assert _prepared(conn, "SELECT ? AS v", None) == [(None,)]


def test_an_error_part_way_ends_the_result(gw: Served, model: Model) -> None:
    conn = gw.connect()
    _mysql(conn, "CREATE TABLE mid (id INTEGER, x INTEGER)")
    _mysql(
        conn,
        "INSERT INTO mid WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 5000) SELECT i, i FROM n",
    )
    _mysql(conn, _create_model("breaks", model.url))
    model.calls, model.fail_from = 0, 3
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    try:
        cursor.execute(
            "SELECT t.id, p.y FROM local.mid AS t JOIN breaks AS p "
            "USING batch_size = 1000, concurrency = 1"
        )
        rows = cursor.fetchmany(2000)  # batches 1 and 2 arrive
        with pytest.raises(pymysql.err.MySQLError) as failed:
            cursor.fetchall()
    finally:
        model.fail_from = None
        cursor.close()
    assert len(rows) == 2000
    assert "[ENDPOINT_HTTP_ERROR]" in failed.value.args[1]
    assert _mysql(conn, "SELECT 1")[1] == [(1,)]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str, str]]:
    for served in _serve(tmp_path_factory.mktemp("mysql_auth")):
        gateway = served.app.state.gateway
        _, admin = gateway.create_token("ops", "admin")
        _, reader = gateway.create_token("viewer", "reader")
        yield served, admin, reader


def test_tokens_are_the_passwords(secured: tuple[Served, str, str], model: Model) -> None:
    served, admin, reader = secured
    for user, password in (("ops", "wrong"), ("ops", ""), ("viewer", admin)):
        with pytest.raises(pymysql.err.OperationalError) as denied:
            served.connect(user=user, password=password)
        assert denied.value.args[0] == 1045
    ops = served.connect(user="ops", password=admin)
    assert _mysql(ops, "SHOW MODELS") == (
        served.http("SHOW MODELS", admin)["columns"],
        _http_rows(served.http("SHOW MODELS", admin)),
    )
    viewer = served.connect(user="viewer", password=reader)
    assert _mysql(viewer, "SHOW DATABASES")[1] == _http_rows(served.http("SHOW DATABASES", reader))
    with pytest.raises(pymysql.err.MySQLError) as forbidden:
        _mysql(viewer, _create_model("nope", model.url))
    assert forbidden.value.args[0] == 1142
    assert "[FORBIDDEN]" in forbidden.value.args[1] and "role writer" in forbidden.value.args[1]
    assert _mysql(ops, _create_model("allowed", model.url))[1][0][0] == "allowed"
    assert _mysql(viewer, "SELECT * FROM allowed WHERE x = 2")[1] == [(2, 4)]


def test_kill_is_the_owners_or_a_writers(secured: tuple[Served, str, str]) -> None:
    """KILL as MySQL answers it: 1094 for an id not connected; a reader may stop only its
    own token's connections (as DELETE /api/queries), an admin any."""
    served, admin, reader = secured
    ops = served.connect(user="ops", password=admin)
    viewer, viewer_too = (served.connect(user="viewer", password=reader) for _ in range(2))
    with pytest.raises(pymysql.err.MySQLError) as unknown:
        _mysql(viewer, "KILL QUERY 4000000000")
    assert unknown.value.args == (1094, "Unknown thread id: 4000000000")
    with pytest.raises(pymysql.err.MySQLError) as forbidden:
        _mysql(viewer, f"KILL QUERY {ops.thread_id()}")
    assert forbidden.value.args[0] == 1142 and "[FORBIDDEN]" in forbidden.value.args[1]
    assert "role reader" in forbidden.value.args[1]
    with pytest.raises(pymysql.err.MySQLError):
        _mysql(viewer, f"KILL {ops.thread_id()}")
    assert _mysql(ops, "SELECT 1")[1] == [(1,)]  # neither reached it
    _mysql(viewer, f"KILL QUERY {viewer_too.thread_id()}")  # its own token's: allowed
    assert _mysql(viewer_too, "SELECT 2")[1] == [(2,)]  # nothing was running to stop
    _mysql(ops, f"KILL {viewer_too.thread_id()}")  # an admin's: the connection ends
    with pytest.raises(pymysql.err.OperationalError):
        _mysql(viewer_too, "SELECT 3")


def test_the_mariadb_command_line_client(secured: tuple[Served, str, str]) -> None:
    served, admin, _ = secured
    client = shutil.which("mariadb") or shutil.which("mysql")
    assert client, "the mariadb client is installed by .ci/run"
    script = "USE local;\nCREATE TABLE cli_t (x INT);\nINSERT INTO cli_t VALUES (4);\n"
    script += "SELECT x FROM cli_t;\nSHOW DATABASES;\n"
    base = [client, "-h", "127.0.0.1", "-P", str(served.mysql_port), "--batch"]
    run = subprocess.run(
        [*base, "-u", "ops", f"-p{admin}"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:2] == ["x", "4"]
    assert lines[2] == "name\tengine\tparameters" and lines[3].startswith("local\tsqlite\t")
    refused = subprocess.run(
        [*base, "-u", "ops", "-pwrong", "-e", "SELECT 1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "1045" in refused.stderr


def test_kill_query_cancels_a_running_statement(gw: Served, model: Model) -> None:
    conn, other = gw.connect(), gw.connect()
    _mysql(conn, "CREATE TABLE IF NOT EXISTS few (id INTEGER, x INTEGER)")
    _mysql(conn, "INSERT INTO few VALUES (1, 1)")
    _mysql(conn, _create_model("killable", model.url))
    model.calls, model.hold_from = 0, 1
    model.release.clear()
    timer = threading.Timer(0.5, lambda: _mysql(other, f"KILL QUERY {conn.thread_id()}"))
    timer.start()
    try:
        with pytest.raises(pymysql.err.OperationalError) as killed:
            _mysql(conn, "SELECT t.id, p.y FROM local.few AS t JOIN killable AS p")
        assert killed.value.args[0] == 3169  # ER_SESSION_WAS_KILLED
    finally:
        timer.join()
        model.release.set()
        model.hold_from = None
    assert _mysql(conn, "SELECT 1")[1] == [(1,)]  # the connection itself lives on


@pytest.mark.parametrize(
    ("sql", "library"),
    [
        ("SELECT @@version_comment LIMIT 1", True),
        ("  /* c */ SET NAMES utf8mb4", True),
        ("SET autocommit = 0", True),
        ("SET @v = 1", False),
        ("SHOW VARIABLES LIKE 'sql_mode'", True),
        ("SHOW FULL COLUMNS FROM t", True),
        ("SHOW CREATE TABLE `local`.`t`", True),
        ("SHOW MODELS", False),
        ("SHOW DATABASES", False),
        ("SELECT DATABASE()", True),
        ("select * from information_schema.tables", True),
        ("SELECT user_id FROM local.t", False),
        ("ROLLBACK", True),
        ("KILL QUERY 3", True),
        ("USE local", False),
        ("DESCRIBE m", False),
        ("SELECT @v", False),
    ],
)
def test_which_statements_mysql_mimic_answers(sql: str, library: bool) -> None:
    from gateway.mysql_server import _for_library

    assert _for_library(sql) is library


def test_the_port_setting() -> None:
    from byom.errors import InvalidOption

    assert Settings.load({}).mysql_port is None
    assert Settings.load({"BYOM_MYSQL_PORT": "47335"}).mysql_port == 47335
    with pytest.raises(InvalidOption, match="BYOM_MYSQL_PORT"):
        Settings.load({"BYOM_MYSQL_PORT": "mysql"})


def test_a_revoked_token_stops_its_open_connection(secured: tuple[Served, str, str]) -> None:
    served, admin, _ = secured
    gateway = served.app.state.gateway
    _, secret = gateway.create_token("shortlived", "reader")
    conn = served.connect(user="shortlived", password=secret)
    assert _mysql(conn, "SELECT 1")[1] == [(1,)]
    gateway.revoke_token("shortlived")
    time.sleep(1.1)  # gateway.auth.CACHE_S
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _mysql(conn, "SELECT 1")
    assert refused.value.args[0] == 1045 and "[UNAUTHORIZED]" in refused.value.args[1]


def test_serve_refuses_the_port_with_ray(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    assert main(["serve", "--ray", "--mysql-port", "47335"]) == 2
    assert "--mysql-port is not available with --ray" in capsys.readouterr().err


# --- several statements in one query, OK packets' messages, in-flight limits -------------


def _sets(cur: pymysql.cursors.Cursor) -> list[tuple[list[str], list[tuple[Any, ...]], str]]:
    """Every result of the cursor's query: columns, rows and the OK packet's message."""
    sets = []
    while True:
        message = (cur._result.message or b"").decode()  # type: ignore[union-attr]
        sets.append(([d[0] for d in cur.description or ()], list(cur.fetchall()), message))
        if not cur.nextset():
            return sets


def test_a_script_answers_each_statement(gw: Served, model: Model) -> None:
    conn = gw.connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    _mysql(conn, "CREATE TABLE IF NOT EXISTS multi (id INT, x INT)")
    _mysql(conn, "INSERT INTO multi VALUES (1, 5), (2, 6)")
    _mysql(conn, _create_model("scripted", model.url))
    # a streamed JOIN, a message without rows and rows, every one but the last followed
    script = (
        "SELECT t.id, p.y FROM local.multi AS t JOIN scripted AS p; USE local; "
        "SHOW DATABASES; SELECT id FROM multi WHERE id = 2"
    )
    with conn.cursor() as cur:
        cur.execute(script)
        sets = _sets(cur)
    answer = gw.http(script)
    assert len(sets) == len(answer["results"]) == 4
    for (columns, rows, message), expected in zip(sets, answer["results"], strict=True):
        assert columns == expected["columns"], expected["sql"]
        assert rows == _http_rows(expected), expected["sql"]
        assert message == (expected.get("message") or "")
    assert sets[1][2]  # USE answers a message, in its OK packet
    assert _mysql(conn, "SELECT DATABASE()")[1] == [("local",)]  # the script's USE holds


def test_an_error_in_a_script_stops_it_there(gw: Served) -> None:
    conn = gw.connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    _mysql(conn, "CREATE TABLE IF NOT EXISTS halted (n INT)")
    insert = "INSERT INTO local.halted VALUES"
    script = f"{insert} (1); DESCRIBE nosuchmodel; {insert} (2)"
    cur = conn.cursor()
    cur.execute(script)  # statement 1's answer
    with pytest.raises(pymysql.err.ProgrammingError) as failed:
        cur.nextset()
    assert failed.value.args[0] == 1146
    http = gw.http("SELECT 1; DESCRIBE nosuchmodel; SELECT 2")["error"]
    assert http["statement"] == 2 and http["done"] == [1]
    assert failed.value.args[1] == f"[{http['code']}] {http['message']}"
    assert _mysql(conn, "SELECT n FROM local.halted")[1] == [(1,)]  # 1 ran, 3 did not
    with pytest.raises(pymysql.err.ProgrammingError) as syntax:
        cur.execute("INSERT INTO local.halted VALUES (3); SELEC 4")
    assert syntax.value.args[0] == 1064 and "[PARSE_ERROR]" in syntax.value.args[1]
    assert _mysql(conn, "SELECT n FROM local.halted")[1] == [(1,)]  # parsed whole: none ran


def test_mysql_chores_amid_a_script_are_answered_in_turn(gw: Served) -> None:
    """What mysql-mimic answers (``SET NAMES``, ``@@variables``) inside a script of the
    gateway's statements: each answered where it stands, as a GUI tool's init script sends
    them."""
    conn = gw.connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    _mysql(conn, "CREATE TABLE IF NOT EXISTS chores (n INT)")
    script = (
        "SET NAMES utf8mb4; SELECT @@version_comment; INSERT INTO local.chores VALUES (7); "
        "SET autocommit = 1; SELECT n FROM local.chores"
    )
    with conn.cursor() as cur:
        cur.execute(script)
        sets = _sets(cur)
    assert [rows for _, rows, _ in sets] == [[], [("byom-gateway",)], [], [], [(7,)]]
    # a chore that fails stops the script there, as any statement's error does
    with conn.cursor() as cur:
        cur.execute("INSERT INTO local.chores VALUES (8); SET nosuch_variable = 1; SELECT 1")
        with pytest.raises(pymysql.err.MySQLError) as failed:
            cur.nextset()
    message = failed.value.args[1]
    assert message.startswith("[INVALID_INPUT] Statement 2: SET nosuch_variable = 1:"), message
    assert "statement 1 took effect; statement 3 did not run" in message
    assert _mysql(conn, "SELECT n FROM local.chores ORDER BY n")[1] == [(7,), (8,)]


def test_a_script_needs_the_clients_multi_statements_flag(gw: Served) -> None:
    conn = gw.connect()  # pymysql's default: no CLIENT_MULTI_STATEMENTS
    with pytest.raises(pymysql.err.ProgrammingError) as refused:
        _mysql(conn, "CREATE TABLE refused_t (n INT); SELECT 1")
    assert refused.value.args[0] == 1064
    assert (
        "2 statements" in refused.value.args[1]
        and "CLIENT_MULTI_STATEMENTS" in refused.value.args[1]
    )
    assert ("refused_t",) not in _http_rows(gw.http("SHOW TABLES FROM local"))
    assert _mysql(conn, "SELECT 1; ")[1] == [(1,)]  # one statement, a trailing ';': fine


def test_ok_packets_carry_the_statements_message(gw: Served, model: Model) -> None:
    conn = gw.connect()
    for name in ("gone_mysql", "gone_http"):
        _mysql(conn, _create_model(name, model.url))
    with conn.cursor() as cur:
        cur.execute("USE local")
        assert cur.description is None
        assert cur._result.message.decode() == gw.http("USE local")["message"]  # type: ignore[union-attr]
        cur.execute("DROP MODEL gone_mysql")
        dropped = cur._result.message.decode()  # type: ignore[union-attr]
    over_http = gw.http("DROP MODEL gone_http")["message"]
    assert over_http and dropped == over_http.replace("gone_http", "gone_mysql")
    with conn.cursor() as cur:
        cur.execute("SET NAMES utf8mb4")  # mysql-mimic's own OK packet: no message
        assert cur._result.message == b""  # type: ignore[union-attr]


def _held_join(served: Served, model: Model) -> tuple[threading.Thread, list[Any]]:
    """A JOIN on a connection of its own, held by the model until ``model.release``; its
    rows (or error) land in the returned list."""
    conn = served.connect()
    _mysql(conn, "CREATE TABLE IF NOT EXISTS held (id INTEGER, x INTEGER)")
    _mysql(conn, "DELETE FROM held")
    _mysql(conn, "INSERT INTO held VALUES (1, 1)")
    _mysql(
        conn,
        _create_model("holder", model.url).replace("CREATE MODEL", "CREATE MODEL IF NOT EXISTS"),
    )
    model.calls, model.hold_from = 0, 1
    model.release.clear()
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(_mysql(conn, "SELECT t.id, p.y FROM local.held AS t JOIN holder AS p")[1])
        except Exception as exc:  # noqa: BLE001 - the test reads it
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    while model.calls < 1 and thread.is_alive():  # the JOIN is in flight, waiting on the model
        time.sleep(0.01)
    return thread, out


@pytest.mark.parametrize(
    ("env", "number", "code"),
    [
        ({"BYOM_MAX_IN_FLIGHT": "1"}, 1040, "GATEWAY_BUSY"),
        ({"BYOM_MAX_IN_FLIGHT_PER_CLIENT": "1"}, 1226, "TOO_MANY_REQUESTS"),
    ],
)
def test_statements_over_the_in_flight_limit_are_refused(
    tmp_path: Path, model: Model, env: dict[str, str], number: int, code: str
) -> None:
    app = create_app(home=tmp_path, settings=Settings.load(env), mysql_port=0)
    with serving(app, "gateway") as url:
        served = Served(url, app.state.mysql_port, app)
        other = served.connect()  # same address, no token: the same client as the JOIN's
        thread, out = _held_join(served, model)
        try:
            with pytest.raises(pymysql.err.OperationalError) as refused:
                _mysql(other, "SELECT 1")
        finally:
            model.release.set()
            thread.join(30)
            model.hold_from = None
        assert refused.value.args[0] == number
        assert refused.value.args[1].startswith(f"[{code}] ")
        assert out == [[(1, 2)]]  # the statement in flight was not disturbed
        assert _mysql(other, "SELECT 1")[1] == [(1,)]  # slot given back; connection usable


def test_http_and_mysql_share_the_in_flight_limiter(tmp_path: Path) -> None:
    """``create_app`` hands its HTTP limiter to the MySQL server: a slot taken there (an
    HTTP statement in flight) leaves none for a MySQL statement."""

    def query(port: int) -> Any:
        conn = pymysql.connect(host="127.0.0.1", port=port, user="u", password="p")
        try:
            return _mysql(conn, "SELECT 1")[1]
        except pymysql.err.MySQLError as exc:
            return exc.args[0]
        finally:
            conn.close()

    settings = Settings.load({"BYOM_MAX_IN_FLIGHT": "1"})
    app = create_app(home=tmp_path, settings=settings, mysql_port=0)
    with serving(app, "gateway"):
        limiter = app.state.limiter
        limiter.acquire("ip:elsewhere")
        try:
            busy = query(app.state.mysql_port)
        finally:
            limiter.release("ip:elsewhere")
        free = query(app.state.mysql_port)
        assert [busy, free, limiter.in_flight] == [1040, [(1,)], 0]
