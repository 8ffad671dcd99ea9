"""The MySQL wire protocol in front of the same ``Gateway`` as the HTTP API (mysql-mimic).

``byom serve --mysql-port N`` (or ``$BYOM_MYSQL_PORT``) serves it next to uvicorn, in the
same process and event loop, over the very gateway object the HTTP routes use
(``gateway.server.create_app`` starts it in its lifespan with ``serving``).

Each connection is one gateway ``Session`` (``USE`` and ``SET @v`` hold for the connection).
Statement text goes to ``Gateway.run_script`` as ``POST /api/sql`` sends it, so results and
errors are the HTTP API's; a JOIN's batches are written to the socket as they arrive (never
collected). A query of several statements (a client that turned on CLIENT_MULTI_STATEMENTS;
others get MySQL's 1064 and nothing runs) is answered one result per statement, stopped by
its first error; an OK packet carries the statement's message; statements share the HTTP
API's in-flight limits (1226 per client, 1040 overall): see ``gateway.mysql_connection``.

Only what a MySQL client asks of a MySQL server and the gateway does not answer -
``SET NAMES``/``SET autocommit``, ``@@variables``, ``DATABASE()``, ``SHOW VARIABLES``/
``WARNINGS``/``COLUMNS``, ``information_schema``, ``KILL``, and ``BEGIN``/``COMMIT``/
``ROLLBACK`` (no-ops: the gateway has no transactions) - is left to mysql-mimic
(``_for_library``), alone in a query or among the gateway's statements in a script.

Authentication: ``gateway.mysql_auth`` (the gateway's tokens over mysql_clear_password);
answers and errors as packets: ``gateway.mysql_results``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlglot
from mysql_mimic import MysqlServer, Session
from mysql_mimic.connection import Connection
from mysql_mimic.constants import DEFAULT_SERVER_CAPABILITIES
from mysql_mimic.control import TooManyConnections
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.results import AllowedResult
from mysql_mimic.session import Query
from mysql_mimic.stream import MysqlStream
from mysql_mimic.types import Capabilities
from sqlglot import exp

from byom.errors import Forbidden, GatewayError, InvalidInput, Unauthorized
from gateway import auth, mysql_auth
from gateway.limits import InFlightLimiter
from gateway.mysql_connection import Answer, GatewayConnection, own_limiter
from gateway.mysql_results import (
    ER_NO_SUCH_THREAD,
    library_rows,
    mysql_error,
    plain_rows,
    result_columns,
    streamed_rows,
)
from gateway.mysql_schema import create_table, schema
from gateway.parser import ScriptStatement
from gateway.result import Result, StreamResult
from gateway.scripts import parse_off_loop, run_statements
from gateway.session import Session as GatewaySessionState

log = logging.getLogger("byom.mysql")

# Statements mysql-mimic answers (see the module doc); anything else is the gateway's.
_COMMENTS = re.compile(r"^(?:\s+|/\*.*?\*/|(?:--|#)[^\n]*\n?)*", re.S)
_LIBRARY_WORDS = frozenset({"kill", "begin", "start", "commit", "rollback"})
_LIBRARY_SHOW = re.compile(
    r"show\s+(?:(?:global|session|full)\s+)?(?:variables|status|warnings|errors|columns|"
    r"fields|index|indexes|keys|collation|character\s+set|charset|create\s+table)\b",
    re.I,
)
_MYSQL_INFO = re.compile(
    r"@@|\binformation_schema\b|\b(?:database|schema|current_schema|user|current_user|"
    r"session_user|system_user|version|connection_id)\s*\(",
    re.I,
)
_USER_VARIABLE = re.compile(r"(?<!@)@(?!@)[`'\"\w]")
_SCHEMA_READ = re.compile(
    r"\binformation_schema\b|\bshow\s+(?:full\s+)?(?:columns|fields|index|indexes|keys|"
    r"create\s+table)\b",
    re.I,
)


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


def _library_statement(sql: str) -> bool:
    """Whether mysql-mimic answers ``sql`` (one statement its parser reads, of the kinds
    ``_for_library`` names); a script's statements are asked one by one (``_script_step``)."""
    return _for_library(sql) and _one_parsed_statement(sql)


@functools.lru_cache(maxsize=64)
def _one_parsed_statement(sql: str) -> bool:
    """Whether mysql-mimic's parser reads ``sql`` as one statement it can answer. Kept:
    each query is asked twice (its in-flight slot, then its answer), and clients send the
    same chores (``SET NAMES``, ``SELECT @@...``) on every connection."""
    try:
        expressions = [e for e in sqlglot.parse(sql, read="mysql") if e is not None]
    except sqlglot.errors.SqlglotError:
        return False
    # The library's middlewares; what none of them answers comes to ``query``.
    return len(expressions) == 1 and not isinstance(expressions[0], exp.Command)


def takes_slot(sql: str) -> bool:
    """Whether ``sql`` counts against the in-flight limits: the gateway's statements and
    the library's that read the gateway's schema, not a client's chores (``SET NAMES``
    when it connects, ``KILL``, ``@@variables``), which must go through a busy gateway."""
    return not _library_statement(sql) or bool(_SCHEMA_READ.search(sql))


@dataclass
class _Chore:
    """A statement of a script that mysql-mimic answered (its result set, None: OK)."""

    allowed: AllowedResult


class GatewaySession(Session):
    """One MySQL connection: a gateway session, its principal, and the library's state."""

    def __init__(self, gateway: Any, limiter: InFlightLimiter) -> None:
        super().__init__()
        self.gateway = gateway
        self.limiter = limiter  # read by GatewayConnection: a slot per statement command
        self.state = GatewaySessionState()
        self.secret: str | None = None
        self.variables.set("version_comment", "byom-gateway", force=True)
        # What drivers that read @@sql_mode (SQLAlchemy, Connector/J) must know to quote
        # strings the gateway's way (see GatewayConnection: the handshake's status flag).
        self.variables.set("sql_mode", "ANSI,NO_BACKSLASH_ESCAPES", force=True)

    def takes_slot(self, sql: str) -> bool:
        """Whether ``sql`` takes an in-flight slot (read by ``GatewayConnection``)."""
        return takes_slot(sql)

    async def init(self, connection: Connection) -> None:
        await super().init(connection)
        self.secret = mysql_auth.login.get()
        if self.database:  # a database named at connect: the gateway's USE checks it
            name, self.database = self.database, None
            await self.use(name)

    async def reset(self) -> None:
        """COM_CHANGE_USER / COM_RESET_CONNECTION: a fresh session for the new login."""
        self.secret = mysql_auth.login.get()
        self.state = GatewaySessionState()
        self.database = None

    async def use(self, database: str) -> None:
        """COM_INIT_DB (``pymysql.connect(database=...)``, ``mysql -D``): the gateway's USE."""
        self._authorize()  # not through handle_query: check the login here too
        quoted = "`" + database.replace("`", "``") + "`"
        await self._run(f"USE {quoted}")

    async def handle_query(self, sql: str, attrs: dict[str, str]) -> AllowedResult:
        """One answer (prepared statements, COM_FIELD_LIST: the library's own paths);
        COM_QUERY is answered by ``answers``, one answer per statement. The library
        encodes these rows itself: a prepared statement's are binary rows."""
        self._authorize()
        if _library_statement(sql):
            return await super().handle_query(sql, attrs)
        return await self._run(sql, encode=False)

    async def answers(self, sql: str, attrs: dict[str, str]) -> AsyncIterator[Answer]:
        """The answer of each statement of ``sql`` in turn, each yielded before the next
        statement runs (see ``gateway.mysql_connection``). A script runs as over HTTP
        (``Gateway.run_script``): parsed whole first, stopped by its first error, which
        names the statement and those that took effect (``gateway.scripts``)."""
        self._authorize()
        if _library_statement(sql):
            yield Answer(await super().handle_query(sql, attrs))
            return
        try:
            items = await parse_off_loop(sql, self.gateway.parse_limits)
        except GatewayError as exc:
            raise mysql_error(exc) from exc
        total = len(items)
        if total > 1 and Capabilities.CLIENT_MULTI_STATEMENTS not in self.connection.capabilities:
            raise MysqlError(  # MySQL's answer too; the results would confuse such a client
                f"[PARSE_ERROR] This query holds {total} statements and the client did not "
                "turn on multiple statements (CLIENT_MULTI_STATEMENTS; pymysql: client_flag="
                "CLIENT.MULTI_STATEMENTS): send one at a time. No statement ran.",
                code=ErrorCode.PARSE_ERROR,
            )
        before = (self.state.datasource, self.state.project)
        results = run_statements(items, self._script_step(attrs))
        try:
            while True:
                try:
                    step = await anext(results, None)
                except GatewayError as exc:
                    raise mysql_error(exc) from exc
                if step is None:
                    return
                item, result = step
                before = self._follow_use(before)
                if isinstance(result, _Chore):
                    allowed, message = result.allowed, None
                else:
                    allowed = await self._allowed(result)
                    message = result.message if isinstance(result, Result) else None
                answer = Answer(allowed, message, item.index < total)
                yield answer  # written (a stream read to its end) before the next runs
                if not answer.more:
                    return  # the last stream is closed by its reader: nothing to drain
        finally:
            await results.aclose()

    def _script_step(self, attrs: dict[str, str]) -> Callable[[ScriptStatement], Awaitable[Any]]:
        """One statement of a script, as ``Gateway.run_script`` runs it - unless mysql-mimic
        answers it (``SET NAMES``, ``@@variables`` amid the gateway's statements): a
        ``_Chore``, its failure the script's error like any statement's."""
        run = self.gateway.statement_runner(self.state)
        library = super().handle_query  # bound here: the step runs outside this method

        async def step(item: ScriptStatement) -> Any:
            if not _library_statement(item.sql):
                return await run(item)
            try:
                return _Chore(await library(item.sql, attrs))
            except MysqlError as exc:
                raise InvalidInput(f"{item.sql}: {exc.msg}", mysql_code=int(exc.code)) from exc

        return step

    async def _show(self, expression: exp.Show) -> AllowedResult:
        """mysql-mimic's SHOW statements, and SHOW CREATE TABLE (``mysql_schema``)."""
        if expression.name.upper() != "CREATE TABLE":
            return await super()._show(expression)
        database = expression.text("db") or self.database
        return create_table(await self.schema(), database, expression.text("target"))

    async def _kill_middleware(self, q: Query) -> AllowedResult:
        """``KILL [QUERY | CONNECTION] <id>`` as MySQL answers it: 1094 for a connection id
        that is not connected. With tokens a reader stops only its own token's connections
        (as ``DELETE /api/queries``: a reader must not stop another user's work); writers
        and admins any. The library then stops the connection's statement (or it)."""
        target = q.expression.this if isinstance(q.expression, exp.Kill) else None
        if target is not None and target.name.isdigit():
            killed = _connections(self.connection.control).get(int(target.name))
            if killed is None:  # MySQL's own message
                unknown = f"Unknown thread id: {target.name}"
                raise MysqlError(unknown, code=ER_NO_SUCH_THREAD)  # type: ignore[arg-type]
            principal = auth.current.get()
            owner = (killed.session.username or "").lower()
            if (
                principal is not None
                and principal.role == "reader"
                and owner != principal.name.lower()
            ):
                raise mysql_error(
                    Forbidden(
                        f"Token '{principal.name}' has role reader, which may stop only its "
                        f"own connections' statements; connection {target.name} is another "
                        "token's.",
                        role=principal.role,
                        required_role="writer",
                    )
                )
        return await super()._kill_middleware(q)

    async def query(self, expression: exp.Expression, sql: str, attrs: dict[str, str]) -> Any:
        return await self._run(sql)

    async def schema(self) -> dict[str, Any]:
        """information_schema, ``SHOW COLUMNS``: see ``gateway.mysql_schema``."""
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

    async def _run(self, sql: str, encode: bool = True) -> AllowedResult:
        """``sql`` through the gateway, as ``POST /api/sql`` runs it: the last answer
        (``encode``: see ``_allowed``)."""
        before = (self.state.datasource, self.state.project)
        try:
            result = await self.gateway.sql_stream(sql, session=self.state)
        except GatewayError as exc:
            raise mysql_error(exc) from exc
        self._follow_use(before)
        return await self._allowed(result, encode)

    def _follow_use(self, before: tuple[str | None, str | None]) -> tuple[str | None, str | None]:
        """After a USE, what DATABASE() answers; returns the session's defaults now."""
        now = (self.state.datasource, self.state.project)
        if now != before:
            self.database = now[0] if now[0] != before[0] else now[1]
        return now

    async def _allowed(self, result: Result | StreamResult, encode: bool = True) -> AllowedResult:
        """A gateway result as mysql-mimic writes it (None: an OK packet). A JOIN's rows
        are written here as text rows, a batch at a time (``streamed_rows``: COM_QUERY); with
        ``encode`` False they go to the library row by row, which encodes them as its
        command needs (a prepared statement's binary rows)."""
        if isinstance(result, StreamResult):
            try:
                first = await anext(result.batches, [])
            except BaseException as exc:  # cancelled (KILL QUERY) too: release the statement
                await result.aclose()
                if isinstance(exc, GatewayError):
                    raise mysql_error(exc) from exc
                raise
            columns = result_columns(result.columns, first)
            if not encode:
                return library_rows(result, first), columns
            return streamed_rows(result, first, self.connection.stream, columns), columns
        if not result.columns:
            return None  # an OK packet (``answers`` gives it the message)
        return plain_rows(result.rows), result_columns(result.columns, result.rows)


# Multiple statements in one COM_QUERY, answered one result each (gateway.mysql_connection);
# a client gets them only when it asks (the server masks its flags with these).
CAPABILITIES = (
    DEFAULT_SERVER_CAPABILITIES
    | Capabilities.CLIENT_MULTI_STATEMENTS
    | Capabilities.CLIENT_MULTI_RESULTS
)


class _Server(MysqlServer):
    """mysql-mimic's server with ``GatewayConnection`` connections, each client's address
    recorded in the connection's context (``gateway.auth.client``: the audit log's
    ``client``) and kept as its in-flight limits' key. As the library's own callback
    (3.0.5), which names its ``Connection`` class inside."""

    async def _client_connected_cb(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else None
        auth.client.set(address)
        stream = MysqlStream(reader, writer)
        connection = GatewayConnection(
            stream=stream,
            session=self.session_factory(),  # type: ignore[arg-type]
            control=self.control,
            server_capabilities=self.capabilities,
            identity_provider=self.identity_provider,
            ssl=self.ssl,
            address=address,
            error=mysql_error,
        )
        try:
            connection.connection_id = await self.control.add(connection)
        except TooManyConnections:
            error = connection.error(msg="Too many connections", code=ErrorCode.CON_COUNT_ERROR)
            await stream.write(error)
            writer.close()
            return
        try:
            await connection.start()
        finally:
            writer.close()
            await self.control.remove(connection.connection_id)


def _connections(control: Any) -> dict[int, Connection]:
    """The open connections by id: mysql-mimic 3.0.5's ``LocalControl`` keeps them in a
    private dict and offers no lookup."""
    return control._connections  # type: ignore[no-any-return]


def _not_user_errors(record: logging.LogRecord) -> bool:
    """mysql-mimic logs each error it answers at ERROR level; a user's error (a
    ``MysqlError``: the gateway's errors become those) is no fault of the server's."""
    return not isinstance(record.msg, MysqlError)


logging.getLogger("mysql_mimic.connection").addFilter(_not_user_errors)


@asynccontextmanager
async def serving(
    gateway: Any, host: str, port: int, limiter: InFlightLimiter | None = None
) -> AsyncIterator[int]:
    """Serve the MySQL protocol for ``gateway`` on ``host:port`` (0: a free port) until the
    block ends; yields the port. Open connections are closed at the end, before the caller
    closes the gateway. ``limiter``: the HTTP API's (``app.state.limiter``), so that both
    protocols share its slots; without one the server has its own, with the same limits."""
    limiter = limiter if limiter is not None else own_limiter(gateway)
    server = _Server(
        session_factory=lambda: GatewaySession(gateway, limiter),
        capabilities=CAPABILITIES,
        identity_provider=mysql_auth.TokenIdentities(gateway),
    )
    await server.start_server(host=host, port=port)
    bound = server.sockets()[0].getsockname()[1]
    log.info("MySQL protocol on %s:%s", host, bound)
    try:
        yield bound
    finally:
        server.close()
        connections = list(_connections(server.control).values())
        for connection in connections:
            connection.kill()
        tasks = [c._task for c in connections if c._task is not None]
        if tasks:  # their statements end (cancelled) while the gateway is still open
            await asyncio.wait(tasks, timeout=5)
        await server.wait_closed()
