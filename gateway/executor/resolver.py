"""The planner's view of the catalog for one statement: each name is looked up once.

A fresh ``CatalogResolver`` is made per statement, so the planner may ask about a name as
often as it likes (a table reference is checked as a model, then as a datasource) for one
catalog round trip per name, and a change made by another gateway sharing the catalog is
seen by the very next statement - there is no cache that outlives a statement. The
session's defaults (``USE``) are the resolver's ``default_datasource``/``default_project``.
"""

from __future__ import annotations

from dataclasses import replace

import datasources as dsmod
from byom.errors import DatasourceNotFound
from catalog.records import DEFAULT_PROJECT, PredictorRecord, ProjectRecord, project_key
from gateway.executor.services import Services
from gateway.executor.training_query import probe_sql
from gateway.session import Session

_MISSING = object()


class CatalogResolver:
    """Implements ``gateway.plans.Resolver`` over the catalog, memoised for one statement."""

    def __init__(self, services: Services, session: Session | None = None) -> None:
        self._services = services
        session = session or Session()
        self.default_datasource = session.datasource or services.default_datasource
        self.default_project = session.project or DEFAULT_PROJECT
        self._models: dict[str, PredictorRecord | None] = {}
        self._dialects: dict[str, str | None] = {}
        self._projects: dict[str, ProjectRecord | None] = {}
        self._model_names: list[str] | None = None
        self._datasource_names: list[str] | None = None
        self._project_names: list[str] | None = None

    def model(self, name: str) -> PredictorRecord | None:
        """The predictor ``name``, or None."""
        record = self._models.get(name, _MISSING)
        if record is _MISSING:
            record = self._services.catalog.find_predictor(name)
            self._models[name] = record
        return record  # type: ignore[return-value]

    def model_version(self, name: str, version: int) -> PredictorRecord:
        """Model ``name`` (which exists) as of ``version``: that version's URL and status."""
        record = self.model(name)
        if record is None:
            raise self._services.model_not_found(name)
        v = self._services.catalog.get_version(name, version)
        return replace(
            record,
            version=v.version,
            url_predict=v.url_predict,
            deployment=v.deployment,
            status=v.status,
            error=v.error,
        )

    def model_names(self) -> list[str]:
        if self._model_names is None:
            self._model_names = self._services.model_names()
        return self._model_names

    def datasource_dialect(self, name: str) -> str | None:
        """The sqlglot dialect of datasource ``name``, or None when there is none."""
        if name not in self._dialects:
            try:
                record = self._services.datasource_record(name)
            except DatasourceNotFound:
                self._dialects[name] = None
            else:
                spec = dsmod.ENGINES.get(record.engine)
                self._dialects[name] = spec.dialect if spec else record.engine
        return self._dialects[name]

    def datasource_names(self) -> list[str]:
        if self._datasource_names is None:
            self._datasource_names = self._services.catalog_datasource_names()
        return self._datasource_names

    def project(self, name: str) -> ProjectRecord | None:
        """Project ``name`` (``model``/``models`` are ``mindsdb``), or None."""
        key = project_key(name)
        if key not in self._projects:
            self._projects[key] = self._services.catalog.find_project(key)
        return self._projects[key]

    def project_names(self) -> list[str]:
        if self._project_names is None:
            self._project_names = [p.name for p in self._services.catalog.list_projects()]
        return self._project_names

    def relation_columns(self, datasource: str, table: str) -> list[str]:
        """The columns of ``table`` (SQL text) in ``datasource``, read by a query that
        returns no rows (PostgresML's pgml.tune maps them to a task's columns)."""
        columns, _ = self._services.datasource(datasource).query(
            probe_sql(f"SELECT * FROM {table}")
        )
        return list(columns)
