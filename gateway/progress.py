"""Progress of long statements (JOINs, write-backs), queryable while they run.

The executor registers each streaming statement here and bumps ``rows_done`` as batches
finish. ``GET /api/queries[/{id}]`` and ``SELECT * FROM mindsdb.queries`` read it; the CLI
polls it to draw a progress bar. Finished entries are kept for a while (the newest
``keep_finished``) so a client that polls late still sees the outcome.

With a ``store`` (the catalog; the gateway passes it), every entry is also written there so
that any replica sharing the catalog answers for it: its start and its end at once, and
its row counts at most once per ``write_interval`` (0.5 s) per entry, from a writer thread,
so a JOIN's batches never wait for the catalog. Reads merge the store's entries with this
process's own (fresher) ones. Without a store the registry is this process's memory only.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from byom.errors import GatewayError, NotFound, QueryCancelled, QueryNotCancellable
from catalog.records import QueryRecord
from gateway import auth

log = logging.getLogger("byom.progress")

STATUSES = ("running", "done", "error", "cancelled")
# Seconds between tries to record a finished statement the catalog refused (it was down).
RETRY_S = 5.0


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
    # Not fields (not in to_dict, the catalog or mindsdb.queries): set on this process's
    # own entries. ``cancel_requested``: ``ProgressRegistry.cancel`` asked the executor to
    # stop at its next batch. ``started_by``: the token name of the statement's principal.
    cancel_requested: ClassVar[bool] = False
    started_by: ClassVar[str | None] = None

    def __setattr__(self, name: str, value: Any) -> None:
        # The executor bumps rows_done/rows_total in place; a registry with a store hears
        # of it here (its listener), so the executor needs to know nothing of the store.
        object.__setattr__(self, name, value)
        if name in _COUNTS:
            listener: Callable[[QueryProgress], None] | None = self.__dict__.get("_listener")
            if listener is not None:
                listener(self)

    @property
    def fraction(self) -> float | None:
        if not self.rows_total:
            return None
        return min(1.0, self.rows_done / self.rows_total)

    def raise_if_cancelled(self, done: str | None = None, **details: Any) -> None:
        """Between batches: raise ``QueryCancelled`` once a cancel was asked for. ``done``
        says what was done (default: the rows read and predicted so far); ``details`` go
        into the error's body (a write-back's ``rows_written``)."""
        if self.cancel_requested:
            done = done or f"{self.rows_done} rows were done"
            raise QueryCancelled(
                f"Query '{self.id}' was cancelled; {done}.", query_id=self.id,
                rows_done=self.rows_done, **details,
            )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO-8601 UTC strings, plus ``fraction``."""
        body = asdict(self)
        body["started_at"] = _iso(self.started_at)
        body["finished_at"] = _iso(self.finished_at)
        body["fraction"] = self.fraction
        return body

    def record(self, owner: str | None) -> QueryRecord:
        """This entry as the catalog stores it, run by gateway ``owner``."""
        return QueryRecord(
            id=self.id, statement=self.statement, kind=self.kind, status=self.status,
            rows_done=self.rows_done, rows_total=self.rows_total, error=self.error,
            owner=owner, started_at=_datetime(self.started_at),
            finished_at=None if self.finished_at is None else _datetime(self.finished_at),
        )  # fmt: skip

    @classmethod
    def from_record(cls, record: QueryRecord) -> QueryProgress:
        """An entry read back from the catalog (a snapshot: changing it changes nothing)."""
        return cls(
            id=record.id, statement=record.statement, kind=record.kind,
            rows_done=record.rows_done, rows_total=record.rows_total, status=record.status,
            error=record.error, started_at=record.started_at.timestamp(),
            finished_at=None if record.finished_at is None else record.finished_at.timestamp(),
        )  # fmt: skip


_COUNTS = frozenset({"rows_done", "rows_total"})


class ProgressStore(Protocol):
    """Where a registry writes its entries through to (``catalog.repository.Catalog``)."""

    def save_query(self, record: QueryRecord, keep_finished: int | None = None) -> None: ...

    def find_query(self, query_id: str) -> QueryRecord | None: ...

    def list_queries(self) -> list[QueryRecord]: ...


class ProgressRegistry:
    """Thread-safe table of running and recently finished statements."""

    COLUMNS = (
        "id", "statement", "kind", "status", "rows_done", "rows_total", "error",
        "started_at", "finished_at",
    )  # fmt: skip

    def __init__(
        self,
        keep_finished: int = 100,
        store: ProgressStore | None = None,
        owner: str | None = None,
        write_interval: float = 0.5,
    ) -> None:
        self._entries: OrderedDict[str, QueryProgress] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep_finished
        self._counter = itertools.count(1)
        self._store = store
        self._owner = owner
        self._interval = write_interval
        # The writer thread's state: entries whose counts changed since their last write,
        # and when each entry was last written (time.monotonic()).
        self._changed: dict[str, QueryProgress] = {}
        self._written: dict[str, float] = {}
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closed = False
        # One write at a time, each reading the entry as it is then: a slow write of the
        # running counts can never land after (and undo) the write of the entry's end.
        self._write_lock = threading.Lock()

    def start(self, statement: str, kind: str, query_id: str | None = None) -> QueryProgress:
        """Register a statement; ``query_id`` lets a client name it up front to poll it."""
        entry = QueryProgress(id=query_id or f"q{next(self._counter)}-{uuid.uuid4().hex[:6]}",
                              statement=statement, kind=kind)  # fmt: skip
        principal = auth.current.get()
        if principal is not None:
            entry.started_by = principal.name
        with self._lock:
            self._entries[entry.id] = entry
            self._trim()
        if self._store is not None:
            self._write(entry)
            object.__setattr__(entry, "_listener", self._counts_changed)
        return entry

    def finish(self, entry: QueryProgress, status: str, error: str | None = None) -> None:
        with self._lock:
            entry.status = status
            entry.error = error
            entry.finished_at = time.time()
            self._trim()
        if self._store is not None:
            with self._wake:
                self._changed.pop(entry.id, None)
                self._written.pop(entry.id, None)
            self._write(entry, keep_finished=self._keep)

    def close(self) -> None:
        """Stop the writer thread after writing what changed (a registry with a store)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.join(timeout=10)

    def fail(self, entry: QueryProgress, exc: BaseException) -> None:
        """Finish ``entry`` for ``exc``: ``cancelled`` for a cancel (``QueryCancelled``) or
        anything not a gateway error (a client going away), else ``error``."""
        if isinstance(exc, QueryCancelled):
            self.finish(entry, "cancelled", exc.message)
        elif isinstance(exc, GatewayError):
            self.finish(entry, "error", exc.message)
        else:
            self.finish(entry, "cancelled")

    @contextmanager
    def failing(self, entry: QueryProgress) -> Iterator[None]:
        """``fail(entry, exc)`` when the block raises ``exc``; the exception goes on."""
        try:
            yield
        except BaseException as exc:
            self.fail(entry, exc)
            raise

    def cancel(self, query_id: str) -> QueryProgress:
        """Ask this process's running statement ``query_id`` to stop at its next batch; the
        executor then raises ``QueryCancelled`` and the entry ends ``cancelled``.

        ``NotFound`` (QUERY_NOT_FOUND) when unknown; ``QueryNotCancellable`` (409) when it
        finished, or runs on another replica: the flag lives in that replica's memory, so
        only it can stop the statement (cross-replica cancel, e.g. a ``cancel_requested``
        column its writer thread polls, is left for later).
        """
        entry = self.own(query_id)
        if entry is None:
            entry = self._stored_elsewhere(query_id)
        if entry.status != "running":
            how = entry.status + (f": {entry.error}" if entry.error else "")
            raise QueryNotCancellable(
                f"Query '{query_id}' already finished ({how}) after {entry.rows_done} rows; "
                "there is nothing to cancel.", query_id=query_id, status=entry.status,
            )  # fmt: skip
        entry.cancel_requested = True
        return entry

    def own(self, query_id: str) -> QueryProgress | None:
        """This process's own entry ``query_id`` (never the store's), or None."""
        with self._lock:
            return self._entries.get(query_id)

    def _stored_elsewhere(self, query_id: str) -> QueryProgress:
        """The store's entry ``query_id`` (not this process's), for ``cancel`` to refuse."""
        record = None
        if self._store is not None:
            try:
                record = self._store.find_query(query_id)
            except Exception:  # noqa: BLE001 - the catalog is down: as if unknown
                log.warning("cannot read query %s from the catalog", query_id, exc_info=True)
        if record is None:
            raise NotFound(
                f"No query '{query_id}' is running or recently finished.", code="QUERY_NOT_FOUND"
            )
        if record.status == "running" and record.owner != self._owner:
            raise QueryNotCancellable(
                f"Query '{query_id}' runs on another gateway replica ({record.owner}); "
                "cancel it through that replica (cross-replica cancel is not supported yet).",
                code="QUERY_ON_OTHER_REPLICA", query_id=query_id, owner=record.owner,
            )  # fmt: skip
        return QueryProgress.from_record(record)

    def get(self, query_id: str) -> QueryProgress | None:
        """The entry ``query_id``: this process's own, else the store's (another replica's)."""
        with self._lock:
            entry = self._entries.get(query_id)
        if entry is not None or self._store is None:
            return entry
        try:
            record = self._store.find_query(query_id)
        except Exception:  # noqa: BLE001 - the catalog is down: answer with what is here
            log.warning("cannot read query %s from the catalog", query_id, exc_info=True)
            return None
        return QueryProgress.from_record(record) if record is not None else None

    def list(self) -> list[QueryProgress]:
        """Every entry, oldest first: the store's (all replicas'), this process's own
        taking the place of their stored copies."""
        with self._lock:
            own = list(self._entries.values())
        if self._store is None:
            return own
        try:
            stored = self._store.list_queries()
        except Exception:  # noqa: BLE001 - the catalog is down: answer with what is here
            log.warning("cannot list queries from the catalog", exc_info=True)
            return own
        entries = {r.id: QueryProgress.from_record(r) for r in stored}
        entries.update((e.id, e) for e in own)
        return sorted(entries.values(), key=lambda e: (e.started_at, e.id))

    def rows(self) -> list[list[Any]]:
        """All entries as rows in ``COLUMNS`` order (for ``mindsdb.queries``)."""
        return [[e.to_dict()[c] for c in self.COLUMNS] for e in self.list()]

    def _trim(self) -> None:
        finished = [k for k, e in self._entries.items() if e.status != "running"]
        for key in finished[: max(0, len(finished) - self._keep)]:
            del self._entries[key]

    # -- writing through to the store ----------------------------------------------------

    def _write(self, entry: QueryProgress, keep_finished: int | None = None) -> None:
        """Write ``entry`` as it is now; best effort (progress never fails a statement)."""
        assert self._store is not None
        with self._write_lock:
            failed = False
            try:
                self._store.save_query(entry.record(self._owner), keep_finished)
            except Exception:  # noqa: BLE001
                log.warning("cannot write query %s to the catalog", entry.id, exc_info=True)
                failed = True
            with self._wake:
                if entry.status == "running":
                    self._written[entry.id] = time.monotonic()
                elif failed and not self._closed:
                    # A finished statement's last write must land: else the catalog says
                    # "running" for as long as this gateway lives (its heartbeat keeps the
                    # row fresh, so no sweep marks it). Retry every RETRY_S until it does.
                    self._written[entry.id] = time.monotonic() + RETRY_S - self._interval
                    self._changed[entry.id] = entry
                    self._start_writer()

    def _counts_changed(self, entry: QueryProgress) -> None:
        """An entry's counts moved (called on the executor's thread: just take note)."""
        with self._wake:
            if entry.status != "running" or self._closed:
                return
            self._changed[entry.id] = entry
            self._start_writer()

    def _start_writer(self) -> None:
        """Start the writer thread if it is not running, and wake it (hold ``_wake``)."""
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_changes, name="byom-progress-writer", daemon=True
            )
            self._writer.start()
        self._wake.notify()

    def _write_changes(self) -> None:
        """The writer thread: write each changed entry once its interval has passed."""
        while True:
            with self._wake:
                due = self._due()
                while not due and not self._closed:
                    waits = [self._written.get(k, 0.0) + self._interval for k in self._changed]
                    timeout = min(waits) - time.monotonic() if waits else None
                    self._wake.wait(timeout)
                    due = self._due()
                if self._closed:
                    due = list(self._changed.values())
                for entry in due:
                    del self._changed[entry.id]
            for entry in due:
                self._write(entry)
            if self._closed:
                return

    def _due(self) -> list[QueryProgress]:
        """The changed entries not written for ``write_interval`` (hold ``_wake``)."""
        now = time.monotonic()
        return [
            e for k, e in self._changed.items() if now - self._written.get(k, 0.0) >= self._interval
        ]


def _datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()
