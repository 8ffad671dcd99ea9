"""Progress of long statements (JOINs, write-backs), queryable while they run.

The executor registers each streaming statement here and bumps ``rows_done`` as batches
finish. ``GET /api/queries[/{id}]`` and ``SELECT * FROM mindsdb.queries`` read it; the CLI
polls it to draw a progress bar. Finished entries are kept for a while (the newest
``keep_finished``) so a client that polls late still sees the outcome.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from byom.errors import GatewayError

STATUSES = ("running", "done", "error", "cancelled")


@dataclass
class QueryProgress:
    """One statement's progress; ``rows_total`` is None when the source cannot count."""

    id: str
    statement: str
    kind: str  # "join" | "write"
    rows_done: int = 0
    rows_total: int | None = None
    status: str = "running"
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def fraction(self) -> float | None:
        if not self.rows_total:
            return None
        return min(1.0, self.rows_done / self.rows_total)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO-8601 UTC strings, plus ``fraction``."""
        body = asdict(self)
        body["started_at"] = _iso(self.started_at)
        body["finished_at"] = _iso(self.finished_at)
        body["fraction"] = self.fraction
        return body


class ProgressRegistry:
    """Thread-safe table of running and recently finished statements."""

    COLUMNS = (
        "id", "statement", "kind", "status", "rows_done", "rows_total", "error",
        "started_at", "finished_at",
    )  # fmt: skip

    def __init__(self, keep_finished: int = 100) -> None:
        self._entries: OrderedDict[str, QueryProgress] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep_finished
        self._counter = itertools.count(1)

    def start(self, statement: str, kind: str, query_id: str | None = None) -> QueryProgress:
        """Register a statement; ``query_id`` lets a client name it up front to poll it."""
        entry = QueryProgress(id=query_id or f"q{next(self._counter)}-{uuid.uuid4().hex[:6]}",
                              statement=statement, kind=kind)  # fmt: skip
        with self._lock:
            self._entries[entry.id] = entry
            self._trim()
        return entry

    def finish(self, entry: QueryProgress, status: str, error: str | None = None) -> None:
        with self._lock:
            entry.status = status
            entry.error = error
            entry.finished_at = time.time()
            self._trim()

    @contextmanager
    def failing(self, entry: QueryProgress) -> Iterator[None]:
        """Finish ``entry`` as ``error`` (a gateway error) or ``cancelled`` (anything else,
        a client going away included) when the block raises; the exception goes on."""
        try:
            yield
        except GatewayError as exc:
            self.finish(entry, "error", exc.message)
            raise
        except BaseException:
            self.finish(entry, "cancelled")
            raise

    def get(self, query_id: str) -> QueryProgress | None:
        with self._lock:
            return self._entries.get(query_id)

    def list(self) -> list[QueryProgress]:
        with self._lock:
            return list(self._entries.values())

    def rows(self) -> list[list[Any]]:
        """All entries as rows in ``COLUMNS`` order (for ``mindsdb.queries``)."""
        return [[e.to_dict()[c] for c in self.COLUMNS] for e in self.list()]

    def _trim(self) -> None:
        finished = [k for k, e in self._entries.items() if e.status != "running"]
        for key in finished[: max(0, len(finished) - self._keep)]:
            del self._entries[key]


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()
