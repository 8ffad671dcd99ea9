"""Sessions: what one client's statements share between them.

A ``Session`` holds the defaults ``USE`` sets: the datasource unqualified table names are
read from (``USE ds``) and the project an unqualified ``CREATE MODEL`` puts its model in
(``USE project``); and MySQL's user variables (``SET @name = value``, read as ``@name``).
Every ``Gateway`` method that runs SQL takes one; without it each call (one script) is a
session of its own, so ``USE`` (and ``SET``) applies to the statements after it in the
same script.

Over HTTP a client names its session with the header ``X-Byom-Session: <id>`` and the
server keeps the sessions in memory (``SessionStore``); without the header each request is
its own session. The Python client sends one random id per ``Client``; the embedded CLI
uses one session for its process.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


def valid_id(session_id: str) -> bool:
    """Whether ``session_id`` is a usable session id (1-128 of ``[A-Za-z0-9_.-]``)."""
    return bool(_ID.match(session_id))


class SessionStore:
    """The HTTP server's sessions, in this process's memory.

    Bounded: at most ``capacity`` sessions (1000), the least recently used one forgotten
    first, and a session idle for ``ttl`` seconds (an hour) expires; a forgotten session
    starts again with the defaults. Sessions are not shared between gateway replicas yet
    (a later issue): behind a load balancer, route a session's requests to one replica.
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

    def _expire(self, now: float) -> None:
        while self._sessions:
            _, (_, used) = next(iter(self._sessions.items()))
            if now - used < self.ttl:
                return
            self._sessions.popitem(last=False)
