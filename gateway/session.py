"""Sessions: what one client's statements share between them.

A ``Session`` holds the defaults ``USE`` sets: the datasource unqualified table names are
read from (``USE ds``) and the project an unqualified ``CREATE MODEL`` puts its model in
(``USE project``); and MySQL's user variables (``SET @name = value``, read as ``@name``).
Every ``Gateway`` method that runs SQL takes one; without it each call (one script) is a
session of its own, so ``USE`` (and ``SET``) applies to the statements after it in the
same script.

Over HTTP a client names its session with the header ``X-Byom-Session: <id>``; without the
header each request is its own session. The server reads a named session at the start of a
request and saves it at the end: in the catalog (``CatalogSessionStore``), so that every
gateway replica sharing the catalog sees what a ``USE`` on another one set, or in this
process's memory (``SessionStore``, for a gateway without a catalog, as in the API tests).
The Python client sends one random id per ``Client``; the embedded CLI uses one session for
its process.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from catalog.records import SessionRecord

HEADER = "X-Byom-Session"
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
_ID = re.compile(ID_PATTERN)


@dataclass
class Session:
    """One client's defaults. ``datasource``/``project`` None: the gateway's own defaults
    (the embedded datasource ``local``, the project ``mindsdb``)."""

    id: str | None = None
    datasource: str | None = None
    project: str | None = None
    # SET @name = value (names lower-case: MySQL's user variables are case-insensitive)
    variables: dict[str, Any] = field(default_factory=dict)
    # A CatalogSessionStore's bookkeeping: the state it last read or wrote and when it was
    # written (None: never), so that it writes only what changed.
    stored: tuple[tuple[Any, ...], datetime | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def state(self) -> tuple[Any, ...]:
        """What a session store keeps of this session."""
        return (self.datasource, self.project, dict(self.variables))


def valid_id(session_id: str) -> bool:
    """Whether ``session_id`` is a usable session id (1-128 of ``[A-Za-z0-9_.-]``)."""
    return bool(_ID.match(session_id))


class Sessions(Protocol):
    """What the HTTP server needs of a session store."""

    def get(self, session_id: str) -> Session:
        """The session ``session_id`` as its last request left it (fresh when unknown)."""
        ...

    def save(self, session: Session) -> None:
        """Keep ``session`` for its next request (after its request ran)."""
        ...


class SessionStore:
    """Sessions in this process's memory (a gateway without a catalog: the API tests' fake).

    Bounded: at most ``capacity`` sessions (1000), the least recently used one forgotten
    first, and a session idle for ``ttl`` seconds (an hour) expires; a forgotten session
    starts again with the defaults. Not shared between processes: ``CatalogSessionStore``
    is what a real gateway uses.
    """

    def __init__(
        self,
        capacity: int = 1000,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._clock = clock
        self._sessions: OrderedDict[str, tuple[Session, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> Session:
        """The session ``session_id``, made fresh when unknown or expired."""
        now = self._clock()
        self._expire(now)
        found = self._sessions.pop(session_id, None)
        session = found[0] if found is not None else Session(id=session_id)
        self._sessions[session_id] = (session, now)  # most recently used: last
        while len(self._sessions) > self.capacity:
            self._sessions.popitem(last=False)
        return session

    def save(self, session: Session) -> None:
        """Nothing to do: ``get`` hands out the kept object itself."""

    def _expire(self, now: float) -> None:
        while self._sessions:
            _, (_, used) = next(iter(self._sessions.items()))
            if now - used < self.ttl:
                return
            self._sessions.popitem(last=False)


class SessionBackend(Protocol):
    """Where a ``CatalogSessionStore`` keeps sessions (``catalog.repository.Catalog``)."""

    def load_session(self, session_id: str, used_since: datetime) -> SessionRecord | None: ...

    def save_session(
        self,
        session_id: str,
        *,
        datasource: str | None,
        project: str | None,
        variables: dict[str, Any],
    ) -> SessionRecord: ...

    def purge_sessions(self, used_before: datetime) -> int: ...


class CatalogSessionStore:
    """Sessions in the catalog, shared by every gateway replica that uses it.

    ``get`` reads a session at the start of a request; ``save`` writes it at the end when
    it changed, or when its last write is older than a tenth of ``ttl`` (so an idle session,
    and only an idle one, expires ``ttl`` seconds - an hour - after its last request, give
    or take that tenth). Expired sessions are deleted now and then (``purge_every``).
    """

    def __init__(
        self,
        backend: SessionBackend,
        ttl: float = 3600.0,
        purge_every: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ttl = ttl
        self._backend = backend
        self._purge_every = purge_every
        self._clock = clock
        self._purged: datetime | None = None

    def get(self, session_id: str) -> Session:
        """The session ``session_id``, made fresh when unknown or expired."""
        now = self._clock()
        record = self._backend.load_session(session_id, now - timedelta(seconds=self.ttl))
        if record is None:
            session = Session(id=session_id)
        else:
            session = Session(
                id=session_id,
                datasource=record.datasource,
                project=record.project,
                variables=dict(record.variables),
            )
        session.stored = (session.state(), record.updated_at if record is not None else None)
        return session

    def save(self, session: Session) -> None:
        """Write ``session`` when it changed since ``get`` (or its last write is old)."""
        if session.id is None:
            return
        now = self._clock()
        state = session.state()
        before, written = session.stored or ((None, None, {}), None)
        recent = written is None or now - written < timedelta(seconds=self.ttl / 10)
        if state != before or not recent:
            record = self._backend.save_session(
                session.id,
                datasource=session.datasource,
                project=session.project,
                variables=session.variables,
            )
            session.stored = (state, record.updated_at)
        if self._purged is None or (now - self._purged).total_seconds() >= self._purge_every:
            self._purged = now
            self._backend.purge_sessions(now - timedelta(seconds=self.ttl))
