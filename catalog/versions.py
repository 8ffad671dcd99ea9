"""Model versions in the catalog: each training run of a built-in model is its next version.

``VersionsMixin`` gives ``catalog.repository.Catalog`` its version methods (use them through
``Catalog``); ``delete_versions`` and ``fail_busy_versions`` are the parts of
``drop_predictor`` and ``fail_interrupted`` that touch versions, run in those methods'
transactions. As everywhere in the catalog, rows never leave: methods hand out
``ModelVersionRecord``s, whose ``active`` says whether the predictor's ``version`` column
names them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from byom.errors import InvalidInput, InvalidOption, ModelNotFound, ModelVersionNotFound
from catalog.records import VERSION_STATUSES, ModelVersionRecord, PredictorRecord, name_key
from catalog.tables import ModelVersionRow, PredictorRow, utcnow

# What ``update_version`` may set; the rest is fixed when the version is added.
UPDATABLE_FIELDS = frozenset(
    {
        "status",
        "error",
        "progress",
        "metrics",
        "hyperparams",
        "run_id",
        "model_uri",
        "tracking_uri",
        "deployment",
        "url_predict",
        "job_id",
    }
)
_JSON_FIELDS = frozenset({"progress", "metrics", "hyperparams"})
# Version states that mean "a job of ours is working on it".
_BUSY_STATUSES = ("generating", "training")


def _versions() -> Select[tuple[ModelVersionRow, int | None]]:
    """Versions with their predictor's active version number, in (predictor, version) order."""
    return (
        select(ModelVersionRow, PredictorRow.version)
        .outerjoin(PredictorRow, PredictorRow.name == ModelVersionRow.predictor)
        .order_by(ModelVersionRow.predictor, ModelVersionRow.version)
    )


def _record(row: ModelVersionRow, active_version: int | None) -> ModelVersionRecord:
    return ModelVersionRecord(
        predictor=row.predictor,
        version=row.version,
        status=row.status,
        task=row.task,
        job_id=row.job_id,
        training_datasource=row.training_datasource,
        training_query=row.training_query,
        options=dict(row.options or {}),
        progress=dict(row.progress or {}),
        metrics=dict(row.metrics or {}),
        hyperparams=dict(row.hyperparams or {}),
        run_id=row.run_id,
        model_uri=row.model_uri,
        tracking_uri=row.tracking_uri,
        deployment=row.deployment,
        url_predict=row.url_predict,
        error=row.error,
        active=active_version == row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` fit for ``update_version``, JSON values copied; ValueError (a caller's bug)
    for a field it may not set or a JSON field that is not a dict, ``InvalidOption`` for an
    unknown status."""
    unknown = sorted(set(fields) - UPDATABLE_FIELDS)
    if unknown:
        raise ValueError(
            f"update_version cannot set {unknown}; it sets only {sorted(UPDATABLE_FIELDS)}"
        )
    if "status" in fields and fields["status"] not in VERSION_STATUSES:
        raise InvalidOption(
            f"Unknown version status '{fields['status']}'; expected one of "
            f"{list(VERSION_STATUSES)}."
        )
    values = dict(fields)
    for name in _JSON_FIELDS & set(values):
        if not isinstance(values[name], dict):
            raise ValueError(f"update_version: {name} must be a dict, not {values[name]!r}")
        values[name] = dict(values[name])
    return values


def delete_versions(session: Session, predictor: str) -> None:
    """Delete every version of ``predictor`` (a stored, lower-case name) in ``session``."""
    session.execute(delete(ModelVersionRow).where(ModelVersionRow.predictor == predictor))


def fail_busy_versions(session: Session, message: str, now: datetime) -> set[str]:
    """Mark every version still generating or training as ``error`` with ``message``, in
    ``session``; return their predictors' names."""
    names = session.execute(
        update(ModelVersionRow)
        .where(ModelVersionRow.status.in_(_BUSY_STATUSES))
        .values(status="error", error=message, updated_at=now)
        .returning(ModelVersionRow.predictor)
    ).scalars()
    return set(names)


class VersionsMixin:
    """The version methods of ``Catalog``; each is one transaction, like the others."""

    if TYPE_CHECKING:  # provided by Catalog

        def _session(self, read_only: bool = False) -> AbstractContextManager[Session]: ...

        def _model_not_found(self, key: str) -> ModelNotFound: ...

        @staticmethod
        def _predictor_record(row: Any) -> PredictorRecord: ...

    def add_version(
        self,
        predictor: str,
        *,
        task: str,
        training_datasource: str | None,
        training_query: str | None,
        options: dict[str, Any],
        job_id: int | None = None,
    ) -> ModelVersionRecord:
        """Record the next version of the built-in model ``predictor``, ``generating``.

        Its number is one past the highest the model has had (and past the model's active
        ``version``): numbers are never reused while the model exists. ``ModelNotFound``
        when there is no such model, ``InvalidOption`` for an external one.
        """
        key = name_key(predictor)
        values: dict[str, Any] = {
            "task": task,
            "job_id": job_id,
            "training_datasource": name_key(training_datasource) if training_datasource else None,
            "training_query": training_query,
            "options": dict(options),
        }
        try:
            record = self._insert_version(key, values)
        except IntegrityError:
            # Another writer took the same number between our read and insert: count again.
            record = self._insert_version(key, values)
        if record is None:
            raise self._model_not_found(key)
        return record

    def _insert_version(self, key: str, values: dict[str, Any]) -> ModelVersionRecord | None:
        with self._session() as s:
            # FOR UPDATE (PostgreSQL; SQLite's writers are serialised anyway): writers of
            # this model's versions queue here, so the number read below stays the highest.
            query = select(PredictorRow).where(PredictorRow.name == key).with_for_update()
            model = s.execute(query).scalar()
            if model is None:
                return None
            if model.kind != "builtin":
                raise InvalidOption(
                    f"Model '{key}' is {model.kind}, not built-in: the gateway does not train "
                    "versions of it."
                )
            highest = s.execute(
                select(func.max(ModelVersionRow.version)).where(ModelVersionRow.predictor == key)
            ).scalar()
            now = utcnow()
            row = ModelVersionRow(
                predictor=key,
                version=max(highest or 0, model.version or 0) + 1,
                status="generating",
                progress={},
                metrics={},
                hyperparams={},
                created_at=now,
                updated_at=now,
                **values,
            )
            s.add(row)
            s.flush()
            return _record(row, model.version)

    def find_version(self, predictor: str, version: int) -> ModelVersionRecord | None:
        """Version ``version`` of ``predictor``, or None."""
        key = name_key(predictor)
        query = _versions().where(
            ModelVersionRow.predictor == key, ModelVersionRow.version == version
        )
        with self._session(read_only=True) as s:
            found = s.execute(query).first()
            return _record(*found) if found is not None else None

    def get_version(self, predictor: str, version: int) -> ModelVersionRecord:
        """Version ``version`` of ``predictor``; ``ModelVersionNotFound`` listing the versions
        it has (``ModelNotFound`` when there is no such model)."""
        record = self.find_version(predictor, version)
        if record is not None:
            return record
        raise self._version_not_found(name_key(predictor), version)

    def _version_not_found(self, key: str, version: int) -> ModelNotFound | ModelVersionNotFound:
        with self._session(read_only=True) as s:
            exists = s.execute(select(PredictorRow.id).where(PredictorRow.name == key)).scalar()
            numbers = s.execute(
                select(ModelVersionRow.version).where(ModelVersionRow.predictor == key)
            ).scalars()
            versions = list(numbers)
        if exists is None:
            return self._model_not_found(key)
        return ModelVersionNotFound.of(key, version, versions)

    def list_versions(self, predictor: str | None = None) -> list[ModelVersionRecord]:
        """Every version, by predictor then number; only ``predictor``'s when given."""
        query = _versions()
        if predictor is not None:
            query = query.where(ModelVersionRow.predictor == name_key(predictor))
        with self._session(read_only=True) as s:
            return [_record(row, active) for row, active in s.execute(query).all()]

    def update_version(self, predictor: str, version: int, **fields: Any) -> ModelVersionRecord:
        """Set ``fields`` of a version (only those of ``UPDATABLE_FIELDS``; anything else is
        a ValueError) and its ``updated_at``. ``InvalidOption`` for an unknown status,
        ``ModelVersionNotFound`` when there is no such version."""
        values = _check_fields(fields)
        key = name_key(predictor)
        with self._session() as s:
            found = s.execute(
                _versions()
                .where(ModelVersionRow.predictor == key, ModelVersionRow.version == version)
                .with_for_update(of=ModelVersionRow)
            ).first()
            if found is not None:
                row, active = found
                for name, value in values.items():
                    setattr(row, name, value)
                row.updated_at = utcnow()
                s.flush()
                return _record(row, active)
        raise self._version_not_found(key, version)

    def activate_version(self, predictor: str, version: int) -> PredictorRecord:
        """Make a version the one ``predictor`` serves: the model takes its number,
        ``url_predict`` and deployment, and is ``complete`` with no error. Only a complete,
        deployed version can be made active (``InvalidInput`` otherwise)."""
        key = name_key(predictor)
        with self._session() as s:
            found = s.execute(
                select(ModelVersionRow, PredictorRow)
                .join(PredictorRow, PredictorRow.name == ModelVersionRow.predictor)
                .where(ModelVersionRow.predictor == key, ModelVersionRow.version == version)
                .with_for_update()
            ).first()
            if found is not None:
                row, model = found
                where = f"Model '{key}' version {version}"
                if row.status != "complete":
                    raise InvalidInput(
                        f"{where} is {row.status}; only a complete version can be made active.",
                        model=key,
                        version=version,
                        status=row.status,
                    )
                if not row.url_predict:
                    raise InvalidInput(
                        f"{where} is not deployed (it has no predict URL); only a deployed "
                        "version can be made active.",
                        model=key,
                        version=version,
                        status=row.status,
                    )
                model.version = row.version
                model.url_predict = row.url_predict
                model.deployment = row.deployment
                model.status = "complete"
                model.error = None
                model.updated_at = utcnow()
                s.flush()
                return self._predictor_record(model)
        raise self._version_not_found(key, version)
