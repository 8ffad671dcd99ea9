"""How many statements may run at once: overall and per client, never queued.

A request over a limit is refused at once with a ``Retry-After`` hint rather than waiting
in a queue: a queue would hold memory and connections for every waiting request, and its
clients would time out anyway. Per client first (429 ``TOO_MANY_REQUESTS``: this client
should slow down), then overall (503 ``GATEWAY_BUSY``: every client should).

Pure bookkeeping, no I/O: ``gateway.http_limits`` takes a slot per HTTP request. The
counters are changed from the event loop only, so no lock is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from byom.errors import Busy, TooManyRequests

#: Seconds a refused client is asked to wait (``Retry-After``): statements mostly take
#: well under a second, so a slot is likely free by then.
RETRY_AFTER_S = 1


class InFlightLimiter:
    """At most ``total`` statements in flight, at most ``per_client`` of any one client."""

    def __init__(self, total: int, per_client: int, retry_after: int = RETRY_AFTER_S) -> None:
        self.total = total
        self.per_client = per_client
        self.retry_after = retry_after
        self.in_flight = 0
        self._clients: dict[str, int] = {}

    def running(self, client: str) -> int:
        """How many statements ``client`` has in flight now."""
        return self._clients.get(client, 0)

    def acquire(self, client: str) -> None:
        """Take a slot for ``client``, or raise ``TooManyRequests`` / ``Busy``."""
        mine = self._clients.get(client, 0)
        if mine >= self.per_client:
            raise TooManyRequests(
                f"This client already runs {mine} statements, the most one client may run at "
                f"once (BYOM_MAX_IN_FLIGHT_PER_CLIENT = {self.per_client}); retry after "
                f"{self.retry_after}s.",
                retry_after=self.retry_after,
                limit=self.per_client,
            )
        if self.in_flight >= self.total:
            raise Busy(
                f"The gateway already runs {self.in_flight} statements, the most it runs at "
                f"once (BYOM_MAX_IN_FLIGHT = {self.total}); retry after {self.retry_after}s.",
                retry_after=self.retry_after,
                limit=self.total,
            )
        self._clients[client] = mine + 1
        self.in_flight += 1

    def release(self, client: str) -> None:
        """Give back a slot of ``client`` taken by ``acquire``."""
        left = self._clients.get(client, 0) - 1
        if left > 0:
            self._clients[client] = left
        else:
            self._clients.pop(client, None)  # no entry per client ever seen: memory stays flat
        self.in_flight = max(0, self.in_flight - 1)

    @contextmanager
    def slot(self, client: str) -> Iterator[None]:
        """``acquire`` now, ``release`` on leaving, whatever happened."""
        self.acquire(client)
        try:
            yield
        finally:
            self.release(client)
