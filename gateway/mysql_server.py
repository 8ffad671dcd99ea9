"""The MySQL wire protocol in front of the same ``Gateway`` as the HTTP API (mysql-mimic).

``byom serve --mysql-port N`` (or ``$BYOM_MYSQL_PORT``) serves it next to uvicorn, in the
same process and event loop, over the very gateway object the HTTP routes use
(``gateway.server.create_app`` starts it in its lifespan with ``serving``).

Each connection is one gateway ``Session`` (``USE`` and ``SET @v`` hold for the connection).
Statement text goes to ``Gateway.sql_stream`` exactly as ``POST /api/sql`` sends it, so
results and errors are the HTTP API's; a JOIN's batches are written to the socket as they
arrive (never collected). Only what a MySQL client asks of a MySQL server and the gateway
does not answer - ``SET NAMES``/``SET autocommit``, ``@@variables``, ``DATABASE()``,
``SHOW VARIABLES``/``WARNINGS``/``COLUMNS``, ``information_schema``, ``KILL``, and
``BEGIN``/``COMMIT``/``ROLLBACK`` (no-ops: the gateway has no transactions) - is left to
mysql-mimic (``_for_library``).

Authentication mirrors the HTTP API's bearer tokens (``gateway.auth``). Only a SHA-256 of
each token is stored, and mysql_native_password would need SHA1(SHA1(token)) on this side;
caching_sha2_password's fast path could be checked against the stored hash, but then that
hash alone would log in (a leaked catalog would be a key). So with tokens the server asks
for ``mysql_clear_password``: user = the token's name, password = the token, sent as the
HTTP API sends it in its ``Authorization`` header (no TLS here either: keep it on loopback,
a private network or a tunnel). Without tokens any user and password are accepted, as HTTP
is open then.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import orjson
import sqlglot
from mysql_mimic import MysqlServer, ResultColumn, Session
from mysql_mimic.auth import (
    AbstractClearPasswordAuthPlugin,
    AuthPlugin,
    IdentityProvider,
    NativePasswordAuthPlugin,
    User,
)
from mysql_mimic.connection import Connection
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.results import AllowedResult, infer_type
from mysql_mimic.stream import MysqlStream
from mysql_mimic.types import ColumnType
from sqlglot import exp

from byom.errors import (
    DatasourceNotFound,
    Forbidden,
    GatewayError,
    NotFound,
    ParseError,
    ProjectNotFound,
    Unauthorized,
)
from gateway import auth
from gateway.result import StreamResult
from gateway.session import Session as GatewaySessionState

log = logging.getLogger("byom.mysql")

# MySQL's own error numbers for the gateway's error classes (the first match wins); every
# other error is ER_UNKNOWN_ERROR. The message always starts with the gateway's code.
ER_BAD_DB_ERROR = 1049
ER_NO_SUCH_TABLE = 1146
ER_TABLEACCESS_DENIED_ERROR = 1142
_ERROR_NUMBERS: tuple[tuple[type[GatewayError], int], ...] = (
    (ParseError, ErrorCode.PARSE_ERROR),
    (DatasourceNotFound, ER_BAD_DB_ERROR),
    (ProjectNotFound, ER_BAD_DB_ERROR),
    (NotFound, ER_NO_SUCH_TABLE),
    (Forbidden, ER_TABLEACCESS_DENIED_ERROR),
    (Unauthorized, ErrorCode.ACCESS_DENIED_ERROR),
)

# Statements mysql-mimic answers (see the module doc); anything else is the gateway's.
_COMMENTS = re.compile(r"^(?:\s+|/\*.*?\*/|(?:--|#)[^\n]*\n?)*", re.S)
_LIBRARY_WORDS = frozenset({"kill", "begin", "start", "commit", "rollback"})
_LIBRARY_SHOW = re.compile(
    r"show\s+(?:(?:global|session|full)\s+)?(?:variables|status|warnings|errors|columns|"
    r"fields|index|indexes|keys|collation|character\s+set|charset)\b",
    re.I,
)
_MYSQL_INFO = re.compile(
    r"@@|\binformation_schema\b|\b(?:database|schema|current_schema|user|current_user|"
    r"session_user|system_user|version|connection_id)\s*\(",
    re.I,
)
_USER_VARIABLE = re.compile(r"(?<!@)@(?!@)[`'\"\w]")

# The token a connection logged in with, set by ``TokenPassword`` while it authenticates in
# the connection's task and read by ``GatewaySession.init`` in that same task: mysql-mimic
# hands the session only the user name, and statements must re-check the token (revoked
# tokens stop working on open connections too, as over HTTP).
_login: ContextVar[str | None] = ContextVar("byom_mysql_login", default=None)


def mysql_error(exc: GatewayError) -> MysqlError:
    """The MySQL error packet of a gateway error: its number and ``[CODE] message``."""
    number = next((n for cls, n in _ERROR_NUMBERS if isinstance(exc, cls)), None)
    code = ErrorCode.UNKNOWN_ERROR if number is None else number
    return MysqlError(f"[{exc.code}] {exc.message}", code=code)  # type: ignore[arg-type]


def _for_library(sql: str) -> bool:
    """Whether ``sql`` is a statement mysql-mimic answers rather than the gateway."""
    text = _COMMENTS.sub("", sql, count=1)
    word = text[:12].split(None, 1)[0].lower() if text.strip() else ""
    if word in _LIBRARY_WORDS:
        return True
    if word == "set":  # SET @v is the gateway's session variable; SET NAMES etc. are MySQL's
        return not _USER_VARIABLE.search(text)
    if word == "show":
        return bool(_LIBRARY_SHOW.match(text))
    if word == "select":
        return bool(_MYSQL_INFO.search(text))
    return False


_JSON_TYPES = (dict, list, tuple)


def _cell(value: Any) -> Any:
    """A JSON value (DESCRIBE's dtype_dict, SHOW DATABASES' parameters) as JSON text."""
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str).decode()
    return value


def _columns(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[ResultColumn]:
    """Column types from the first non-NULL value of each column in ``rows`` (the first
    batch: mysql-mimic's own inference would read a stream until every column had one)."""
    columns = []
    for i, name in enumerate(names):
        values = [row[i] for row in rows if row[i] is not None]
        kind = ColumnType.VARCHAR if not values else infer_type(values[0])
        if isinstance(values[0] if values else None, dict | list | tuple):
            kind = ColumnType.VARCHAR  # sent as JSON text (``_cell``)
        elif kind == ColumnType.LONGLONG and any(isinstance(v, float) for v in values):
            kind = ColumnType.DOUBLE  # 2, 2.5, ...: a client would read "2.5" as an int
        columns.append(ResultColumn(name=str(name), type=kind))
    return columns


def _plain(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows with their JSON values as text."""
    return [[_cell(v) if type(v) in _JSON_TYPES else v for v in row] for row in rows]


async def _streamed(
    result: StreamResult,
    first: list[Sequence[Any]],
    stream: MysqlStream,
    columns: list[ResultColumn],
) -> AsyncIterator[list[Any]]:
    """The rows of a JOIN written to ``stream`` one batch at a time; yields none itself.
    Closing it (the client went away, or an error) cancels the statement.

    mysql-mimic 3.0.5 takes rows of an async result one by one and only buffers them until
    the result ends: the whole result in memory, and nothing for the client until then. So
    each batch is encoded here, in one call, straight after the column definitions the
    library has already buffered, and sent before the next batch is asked for: one batch in
    memory, the socket's backpressure pacing the statement, and a fraction of the per-row
    cost. The library then ends the result (its row count, 0, is not read by clients)."""
    try:
        batch: list[Sequence[Any]] | None = first
        while batch is not None:
            stream.write_text_rows(_plain(batch), columns)
            await stream.drain()
            batch = await anext(result.batches, None)
    except GatewayError as exc:  # after rows were sent: an error packet ends the result
        raise mysql_error(exc) from exc
    finally:
        await result.aclose()
    return
    yield  # an async generator (what mysql-mimic iterates) that yields nothing


class GatewaySession(Session):
    """One MySQL connection: a gateway session, its principal, and the library's state."""

    def __init__(self, gateway: Any) -> None:
        super().__init__()
        self.gateway = gateway
        self.state = GatewaySessionState()
        self.secret: str | None = None
        self.variables.set("version_comment", "byom-gateway", force=True)

    async def init(self, connection: Connection) -> None:
        await super().init(connection)
        self.secret = _login.get()
        if self.database:  # a database named at connect: the gateway's USE checks it
            name, self.database = self.database, None
            await self.use(name)

    async def reset(self) -> None:
        """COM_CHANGE_USER / COM_RESET_CONNECTION: a fresh session for the new login."""
        self.secret = _login.get()
        self.state = GatewaySessionState()
        self.database = None

    async def use(self, database: str) -> None:
        """COM_INIT_DB (``pymysql.connect(database=...)``, ``mysql -D``): the gateway's USE."""
        self._authorize()  # not through handle_query: check the login here too
        quoted = "`" + database.replace("`", "``") + "`"
        await self._run(f"USE {quoted}")

    async def handle_query(self, sql: str, attrs: dict[str, str]) -> AllowedResult:
        self._authorize()
        if _for_library(sql):
            try:
                expressions = [e for e in sqlglot.parse(sql, read="mysql") if e is not None]
            except sqlglot.errors.SqlglotError:
                expressions = []
            if len(expressions) == 1 and not isinstance(expressions[0], exp.Command):
                # The library's middlewares; what none of them answers comes to ``query``.
                return await super().handle_query(sql, attrs)
        return await self._run(sql)

    async def query(self, expression: exp.Expression, sql: str, attrs: dict[str, str]) -> Any:
        return await self._run(sql)

    async def schema(self) -> dict[str, Any]:
        """information_schema, ``SHOW COLUMNS``: see ``gateway.mysql_schema``."""
        from gateway.mysql_schema import schema

        return await schema(self.gateway, self.state)

    def _authorize(self) -> None:
        """Set the statement's principal as the HTTP middleware does, checking the token
        again (revoked, or authentication turned on since this connection logged in)."""
        authenticator = self.gateway.authenticator
        if self.secret is None:
            if authenticator.enabled():
                raise MysqlError(
                    "[UNAUTHORIZED] Authentication is on: reconnect with user <token name> "
                    "and password <token>.",
                    code=ErrorCode.ACCESS_DENIED_ERROR,
                )
            principal = None
        else:
            try:
                principal = authenticator.authenticate(f"Bearer {self.secret}")
            except Unauthorized as exc:
                raise mysql_error(exc) from exc
        # The connection runs in a task of its own (its own context): setting is enough.
        auth.current.set(principal)

    async def _run(self, sql: str) -> AllowedResult:
        """``sql`` through the gateway, as ``POST /api/sql`` runs it."""
        before = (self.state.datasource, self.state.project)
        try:
            result = await self.gateway.sql_stream(sql, session=self.state)
        except GatewayError as exc:
            raise mysql_error(exc) from exc
        if (self.state.datasource, self.state.project) != before:  # a USE: DATABASE()
            self.database = (
                self.state.datasource if self.state.datasource != before[0] else self.state.project
            )
        if isinstance(result, StreamResult):
            try:
                first = await anext(result.batches, [])
            except BaseException as exc:  # cancelled (KILL QUERY) too: release the statement
                await result.aclose()
                if isinstance(exc, GatewayError):
                    raise mysql_error(exc) from exc
                raise
            columns = _columns(result.columns, first)
            return _streamed(result, first, self.connection.stream, columns), columns
        if not result.columns:
            return None  # an OK packet (a message, if any, has no place in one here)
        return _plain(result.rows), _columns(result.columns, result.rows)


class TokenPassword(AbstractClearPasswordAuthPlugin):
    """``mysql_clear_password`` checked against the gateway's tokens (see the module doc)."""

    name = "mysql_clear_password"

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    async def check(self, username: str, password: str) -> str | None:
        try:
            principal = await asyncio.to_thread(
                self.gateway.authenticator.authenticate, f"Bearer {password}"
            )
        except Unauthorized as exc:
            self._denied(exc.code)
            return None
        if principal is None:  # authentication was turned off meanwhile: open, as HTTP
            return username
        if principal.name.lower() != username.strip().lower():
            self._denied("UNAUTHORIZED")  # the token of another name
            return None
        _login.set(password)
        return principal.name

    def _denied(self, code: str) -> None:
        self.gateway.audit.record("AUTHENTICATE", "mysql", "denied", code=code,
                                  client=auth.client.get())  # fmt: skip


class OpenPassword(NativePasswordAuthPlugin):
    """Any password, while the gateway has no tokens (and only then)."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def password_matches(self, user: User, scramble: bytes, nonce: bytes) -> bool:
        return not self.gateway.authenticator.enabled()


class TokenIdentities(IdentityProvider):
    """Every user name exists; with tokens its password is checked by ``TokenPassword``."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self._plugins: list[AuthPlugin] = [OpenPassword(gateway), TokenPassword(gateway)]

    def get_plugins(self) -> list[AuthPlugin]:
        return self._plugins

    async def get_user(self, username: str) -> User:
        enabled = await asyncio.to_thread(self.gateway.authenticator.enabled)
        plugin = TokenPassword.name if enabled else OpenPassword.name
        return User(name=username, auth_plugin=plugin)


class _Server(MysqlServer):
    """Records each client's address (``gateway.auth.client``: the audit log's ``client``)
    in the connection's context before mysql-mimic takes it over."""

    async def _client_connected_cb(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        auth.client.set(str(peer[0]) if peer else None)
        await super()._client_connected_cb(reader, writer)


def _not_user_errors(record: logging.LogRecord) -> bool:
    """mysql-mimic logs each error it answers at ERROR level; a user's error (a
    ``MysqlError``: the gateway's errors become those) is no fault of the server's."""
    return not isinstance(record.msg, MysqlError)


logging.getLogger("mysql_mimic.connection").addFilter(_not_user_errors)


@asynccontextmanager
async def serving(gateway: Any, host: str, port: int) -> AsyncIterator[int]:
    """Serve the MySQL protocol for ``gateway`` on ``host:port`` (0: a free port) until the
    block ends; yields the port. Open connections are closed at the end, before the caller
    closes the gateway."""
    server = _Server(
        session_factory=lambda: GatewaySession(gateway), identity_provider=TokenIdentities(gateway)
    )
    await server.start_server(host=host, port=port)
    bound = server.sockets()[0].getsockname()[1]
    log.info("MySQL protocol on %s:%s", host, bound)
    try:
        yield bound
    finally:
        server.close()
        connections = list(server.control._connections.values())  # type: ignore[attr-defined]
        for connection in connections:
            connection.kill()
        tasks = [c._task for c in connections if c._task is not None]
        if tasks:  # their statements end (cancelled) while the gateway is still open
            await asyncio.wait(tasks, timeout=5)
        await server.wait_closed()
