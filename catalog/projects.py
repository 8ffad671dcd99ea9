"""Projects in the catalog: ``ProjectsMixin`` gives ``catalog.repository.Catalog`` its
project methods. ``mindsdb`` (also called ``model``/``models``) always exists."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from byom.errors import AlreadyExists, InvalidInput, UserError
from catalog.records import DEFAULT_PROJECT, ProjectRecord, project_key
from catalog.tables import PredictorRow, ProjectRow, utcnow


class ProjectsMixin:
    """The project methods of ``Catalog``; each is one transaction."""

    if TYPE_CHECKING:  # provided by Catalog

        def _session(self, read_only: bool = False) -> AbstractContextManager[Session]: ...

    def add_project(self, name: str) -> ProjectRecord:
        """Store a project; ``AlreadyExists`` (code PROJECT_EXISTS) when the name is taken
        (``mindsdb`` and its other names always are)."""
        key = project_key(name)
        try:
            with self._session() as s:
                row = ProjectRow(name=key, created_at=utcnow())
                s.add(row)
                s.flush()
                return ProjectRecord(name=row.name, created_at=row.created_at)
        except IntegrityError as exc:
            raise AlreadyExists(
                f"Project '{key}' already exists.", code="PROJECT_EXISTS", project=key
            ) from exc

    def find_project(self, name: str) -> ProjectRecord | None:
        """The project called ``name`` (``model``/``models`` are ``mindsdb``), or None."""
        with self._session(read_only=True) as s:
            row = s.execute(select(ProjectRow).where(ProjectRow.name == project_key(name))).scalar()
            return ProjectRecord(name=row.name, created_at=row.created_at) if row else None

    def list_projects(self) -> list[ProjectRecord]:
        """Every project, by name."""
        with self._session(read_only=True) as s:
            rows = s.execute(select(ProjectRow).order_by(ProjectRow.name)).scalars()
            return [ProjectRecord(name=r.name, created_at=r.created_at) for r in rows]

    def drop_project(self, name: str) -> bool:
        """Forget an empty project; False when there was none. ``mindsdb`` cannot be
        dropped, nor a project that still has models (code PROJECT_NOT_EMPTY, naming them):
        the check and the delete are one transaction."""
        key = project_key(name)
        if key == DEFAULT_PROJECT:
            raise InvalidInput(
                f"Project '{DEFAULT_PROJECT}' is the default project and cannot be dropped.",
                project=key,
            )
        with self._session() as s:
            models = list(
                s.execute(
                    select(PredictorRow.name)
                    .where(PredictorRow.namespace == key)
                    .order_by(PredictorRow.name)
                ).scalars()
            )
            if models:
                shown = ", ".join(f"{key}.{m}" for m in models)
                raise UserError(
                    f"Project '{key}' still has {len(models)} model(s): {shown}. Drop them "
                    "first (DROP MODEL ...).",
                    code="PROJECT_NOT_EMPTY",
                    project=key,
                    models=models,
                )
            deleted = s.execute(delete(ProjectRow).where(ProjectRow.name == key)).rowcount
        return bool(deleted)
