"""How one MySQL connection answers a COM_QUERY: every statement's answer, in flight limits.

mysql-mimic 3.0.5 answers a COM_QUERY with exactly one result (or OK packet), and its OK
packets carry no message. ``GatewayConnection`` replaces its ``handle_query`` with one that
writes what ``GatewaySession.answers`` yields, one answer per statement:

* each answer but the last ends with ``SERVER_MORE_RESULTS_EXISTS`` in its status flags, as
  MySQL answers a multi-statement query (pymysql's ``nextset()`` walks them). An error in
  statement k is the error packet after the answers of statements 1..k-1 (and ends the
  script there), as ``POST /api/sql`` stops at it;
* a statement that answers a message and no rows (USE, DROP MODEL, ...) gets it in the OK
  packet's info (pymysql: ``cursor._result.message``; the mariadb client prints it).

Every statement command (COM_QUERY, COM_INIT_DB, COM_STMT_EXECUTE, COM_FIELD_LIST), but the
client's chores (``SET NAMES``, ``KILL``, ...: ``GatewaySession.takes_slot``), takes a
slot of the HTTP API's ``InFlightLimiter`` for as long as its answer is written, counted
against the token's name, else the client's address (the keys ``gateway.http_limits``
uses, so a token's HTTP and MySQL statements count together). Over a limit the statement
is refused at once with an error packet and the connection stays usable.

COM_STMT_EXECUTE is mysql-mimic's, but with the statement's parameters bound by
``gateway.mysql_params`` (its own binding leaves quotes in values unescaped). Every packet
says ``SERVER_STATUS_NO_BACKSLASH_ESCAPES``, so drivers quote strings as the gateway reads
them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from mysql_mimic import packets
from mysql_mimic.connection import Connection
from mysql_mimic.constants import KillKind
from mysql_mimic.errors import MysqlError
from mysql_mimic.prepared import PreparedStatement
from mysql_mimic.results import AllowedResult, ensure_result_set
from mysql_mimic.types import ServerStatus

from byom.errors import GatewayError
from gateway.limits import InFlightLimiter
from gateway.mysql_params import bound_statement

__all__ = ["Answer", "GatewayConnection", "client_key", "own_limiter"]


@dataclass
class Answer:
    """One statement's answer: what mysql-mimic writes as a result set (None: an OK
    packet), the OK packet's ``message``, and whether another statement's answer follows."""

    result: AllowedResult
    message: str | None = None
    more: bool = False


class _AnsweringSession(Protocol):
    """What ``GatewayConnection`` needs of its session (``GatewaySession``)."""

    username: str | None
    secret: str | None
    limiter: InFlightLimiter

    def takes_slot(self, sql: str) -> bool: ...

    def answers(self, sql: str, attrs: dict[str, str]) -> AsyncIterator[Answer]: ...


def own_limiter(gateway: Any) -> InFlightLimiter:
    """The limits of the gateway's settings, for a server given no limiter to share."""
    settings = getattr(getattr(gateway, "services", None), "settings", None)
    if settings is None:
        from gateway.settings import Settings

        settings = Settings.load()
    return InFlightLimiter(settings.max_in_flight, settings.max_in_flight_per_client)


def client_key(session: _AnsweringSession, address: str | None) -> str:
    """Who a statement counts against: as ``gateway.http_limits.client_key``, the token's
    name (the login's user name, checked against the token) else the client's address."""
    if session.secret is not None and session.username:
        return f"token:{session.username}"
    return f"ip:{address or 'unknown'}"


class GatewayConnection(Connection):
    """A mysql-mimic connection that answers every statement of a query (see the module
    doc). ``error`` turns a gateway error into the error packet to raise."""

    def __init__(
        self,
        *args: Any,
        address: str | None,
        error: Callable[[GatewayError], MysqlError],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # The gateway's SQL reads a backslash as itself and a quote in a string as ''
        # (ANSI, as SQLite and PostgreSQL). Drivers that escape parameters themselves
        # (pymysql, libmysqlclient's mysql_real_escape_string) check this flag of the
        # handshake and OK packets; without it they send it's as 'it\'s' (a parse error)
        # and a " or \ with a backslash added (wrong data).
        self.status_flags |= ServerStatus.SERVER_STATUS_NO_BACKSLASH_ESCAPES
        self.address = address
        self._error = error
        self._executing: PreparedStatement | None = None  # see _stmt_execute
        self._running = False  # a statement command is being answered (see kill)

    @property
    def _session(self) -> _AnsweringSession:
        return self.session  # type: ignore[return-value]

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """A slot of the in-flight limiter for one statement command, or its error."""
        limiter = self._session.limiter
        key = client_key(self._session, self.address)
        try:
            limiter.acquire(key)
        except GatewayError as exc:
            raise self._error(exc) from exc
        try:
            yield
        finally:
            limiter.release(key)

    @contextmanager
    def _statement(self, limited: bool = True) -> Iterator[None]:
        """While a statement command is answered: its in-flight slot (``limited``), and
        what ``kill`` checks."""
        with self._slot() if limited else nullcontext():
            self._running = True
            try:
                yield
            finally:
                self._running = False

    def kill(self, kind: KillKind = KillKind.CONNECTION) -> None:
        """``KILL [QUERY]`` from another connection. KILL QUERY of a connection that is
        answering no statement does nothing, as in MySQL: mysql-mimic would cancel its wait
        for the next command, which ends the connection."""
        if kind == KillKind.QUERY and not self._running:
            return
        super().kill(kind)

    async def _limited(self, handle: Callable[[bytes], Awaitable[None]], data: bytes) -> None:
        with self._statement():
            await handle(data)

    async def handle_query(self, data: bytes) -> None:
        com_query = packets.parse_com_query(
            capabilities=self.capabilities, client_charset=self.client_charset, data=data
        )
        sql = com_query.sql
        with self._statement(limited=self._session.takes_slot(sql)):
            # Closed here even when writing an answer fails: the script's statement ends now.
            async with aclosing(self._session.answers(sql, com_query.query_attrs)) as it:
                async for answer in it:
                    await self.write_answer(answer)

    async def handle_init_db(self, data: bytes) -> None:
        await self._limited(super().handle_init_db, data)

    async def handle_stmt_execute(self, data: bytes) -> None:
        await self._limited(self._stmt_execute, data)

    async def _stmt_execute(self, data: bytes) -> None:
        """mysql-mimic's COM_STMT_EXECUTE, but with the parameters bound by
        ``gateway.mysql_params``: while it runs, the statement it looks up is a stand-in
        holding the bound SQL and no parameters left to fill."""
        stmt = self.get_stmt(int.from_bytes(data[:4], "little"))
        try:
            sql = bound_statement(data, self.capabilities, self.client_charset, stmt)
        except GatewayError as exc:
            raise self._error(exc) from exc
        stand_in = dataclasses.replace(stmt, sql=sql, num_params=0)
        self._executing = stand_in
        try:
            await super().handle_stmt_execute(data)
        finally:
            self._executing = None
            stmt.param_buffers = None  # long data is for one execution
            stmt.cursor = stand_in.cursor  # a cursor it opened is the statement's (FETCH)

    def get_stmt(self, stmt_id: int) -> PreparedStatement:
        executing = self._executing
        if executing is not None and executing.stmt_id == stmt_id:
            return executing
        return super().get_stmt(stmt_id)

    async def handle_field_list(self, data: bytes) -> None:
        await self._limited(super().handle_field_list, data)

    async def write_answer(self, answer: Answer) -> None:
        """One statement's answer; with ``more``, its last packet says another follows."""
        flags = self.status_flags
        if answer.more:  # what ``ok``/``eof`` put in the answer's last packet
            self.status_flags = flags | ServerStatus.SERVER_MORE_RESULTS_EXISTS
        try:
            result_set = await ensure_result_set(answer.result)
            if result_set:
                await self.write_text_resultset(result_set)
            else:
                await self.stream.write(self.ok_with_info(answer.message))
        finally:
            self.status_flags = flags

    def ok_with_info(self, message: str | None) -> bytes:
        """An OK packet with ``message`` as its info: after the status and warnings, the
        rest of the packet (``string<EOF>``: this server never offers CLIENT_SESSION_TRACK,
        which would make it length-encoded)."""
        packet = self.ok()
        return packet + self.server_charset.encode(message) if message else packet
