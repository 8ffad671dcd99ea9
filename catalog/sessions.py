"""HTTP sessions in the catalog, so that a session's requests may land on any replica.

``SessionsMixin`` gives ``catalog.repository.Catalog`` its session methods; the gateway's
``gateway.session.CatalogSessionStore`` reads a session at the start of a request and saves
it at the end when it changed. A session idle for longer than the store's TTL counts as
gone (``load_session`` ignores it, ``purge_sessions`` deletes it).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.records import SessionRecord
from catalog.tables import SessionRow, utcnow


def _record(row: SessionRow) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        datasource=row.datasource,
        project=row.project,
        variables=dict(row.variables or {}),
        updated_at=row.updated_at,
    )


class SessionsMixin:
    """The session methods of ``Catalog``; each is one transaction."""

    if TYPE_CHECKING:  # provided by Catalog

        def _session(self, read_only: bool = False) -> AbstractContextManager[Session]: ...

    def load_session(self, session_id: str, used_since: datetime) -> SessionRecord | None:
        """Session ``session_id``, or None when unknown or not saved since ``used_since``."""
        with self._session(read_only=True) as s:
            row = s.get(SessionRow, session_id)
            if row is None or row.updated_at < used_since:
                return None
            return _record(row)

    def save_session(
        self,
        session_id: str,
        *,
        datasource: str | None,
        project: str | None,
        variables: dict[str, Any],
    ) -> SessionRecord:
        """Store session ``session_id`` as of now (replacing what it was)."""
        values = {"datasource": datasource, "project": project, "variables": dict(variables)}
        try:
            return self._upsert_session(session_id, values)
        except IntegrityError:
            # Another request of the session inserted it first: the later write wins.
            return self._upsert_session(session_id, values)

    def _upsert_session(self, session_id: str, values: dict[str, Any]) -> SessionRecord:
        with self._session() as s:
            row = s.get(SessionRow, session_id, with_for_update=True)
            if row is None:
                row = SessionRow(id=session_id)
                s.add(row)
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            s.flush()
            return _record(row)

    def purge_sessions(self, used_before: datetime) -> int:
        """Delete the sessions not saved since ``used_before``; returns how many."""
        with self._session() as s:
            return s.execute(delete(SessionRow).where(SessionRow.updated_at < used_before)).rowcount
