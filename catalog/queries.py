"""Streaming statements' progress in the catalog, so that every replica can answer for it.

``QueriesMixin`` gives ``catalog.repository.Catalog`` its query methods: the gateway that
runs a JOIN or write-back writes its progress here (``gateway.progress.ProgressRegistry``,
throttled), and ``GET /api/queries[/{id}]`` and ``mindsdb.queries`` on any replica read it.
Finished statements are kept for a while: the newest ``keep_finished``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.records import QueryRecord
from catalog.tables import QueryRow, utcnow

_FIELDS = (
    "statement", "kind", "status", "rows_done", "rows_total", "error", "owner", "started_at",
    "finished_at",
)  # fmt: skip


def _record(row: QueryRow) -> QueryRecord:
    return QueryRecord(id=row.id, **{f: getattr(row, f) for f in _FIELDS})


class QueriesMixin:
    """The query-progress methods of ``Catalog``; each is one transaction."""

    if TYPE_CHECKING:  # provided by Catalog

        def _session(self, read_only: bool = False) -> AbstractContextManager[Session]: ...

    def save_query(self, record: QueryRecord, keep_finished: int | None = None) -> None:
        """Store ``record`` (replacing the statement with its id, if any). With
        ``keep_finished``, finished statements beyond the newest ``keep_finished`` go."""
        try:
            self._upsert_query(record, keep_finished)
        except IntegrityError:
            # Another writer inserted the same id between our read and insert: update it.
            self._upsert_query(record, keep_finished)

    def _upsert_query(self, record: QueryRecord, keep_finished: int | None) -> None:
        with self._session() as s:
            row = s.get(QueryRow, record.id, with_for_update=True)
            if row is None:
                row = QueryRow(id=record.id)
                s.add(row)
            for name in _FIELDS:
                setattr(row, name, getattr(record, name))
            row.updated_at = utcnow()
            if keep_finished is not None and record.status != "running":
                s.flush()
                newest = (
                    select(QueryRow.id)
                    .where(QueryRow.status != "running")
                    .order_by(QueryRow.finished_at.desc(), QueryRow.id.desc())
                    .limit(keep_finished)
                )
                s.execute(
                    delete(QueryRow).where(QueryRow.status != "running", QueryRow.id.not_in(newest))
                )

    def find_query(self, query_id: str) -> QueryRecord | None:
        """The statement ``query_id``, or None."""
        with self._session(read_only=True) as s:
            row = s.get(QueryRow, query_id)
            return _record(row) if row is not None else None

    def list_queries(self) -> list[QueryRecord]:
        """Every stored statement, oldest first."""
        with self._session(read_only=True) as s:
            rows = s.execute(select(QueryRow).order_by(QueryRow.started_at, QueryRow.id))
            return [_record(r) for r in rows.scalars()]
