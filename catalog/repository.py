"""The catalog's only public face: ``Catalog`` reads and writes plain records.

Every method is one short transaction in its own ``Session``, so a ``Catalog`` can be shared
by the event loop and worker threads alike. ORM rows never escape: each method converts them
to ``catalog.records`` dataclasses before its session closes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from byom.errors import (
    DatasourceExists,
    DatasourceNotFound,
    InvalidOption,
    ModelExists,
    ModelNotFound,
    NotFound,
)
from catalog import migrations
from catalog.db import catalog_url, default_home, make_engine, read_engine, unavailable_as_error
from catalog.liveness import BUSY_STATUSES, INTERRUPTED_MESSAGE, LivenessMixin
from catalog.projects import ProjectsMixin
from catalog.queries import QueriesMixin
from catalog.records import (
    JOB_STATUSES,
    MODEL_KINDS,
    PREDICTOR_STATUSES,
    DatasourceRecord,
    PredictorRecord,
    PredictorSpec,
    TrainingJobRecord,
)
from catalog.records import name_key as _key
from catalog.secrets import SecretBox
from catalog.sessions import SessionsMixin
from catalog.tables import (
    DatasourceRow,
    PredictorRow,
    SchemaVersionRow,
    TrainingJobRow,
    utcnow,
)
from catalog.tokens import TokensMixin
from catalog.versions import VersionsMixin, delete_versions, fail_busy_versions


def _datasource_record(row: DatasourceRow) -> DatasourceRecord:
    return DatasourceRecord(
        name=row.name,
        engine=row.engine,
        parameters=dict(row.parameters),
        created_at=row.created_at,
    )


# PredictorRecord's fields, each a PredictorRow column of the same name.
_PREDICTOR_FIELDS = tuple(f.name for f in dataclasses.fields(PredictorRecord))
_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(PredictorSpec))


def _copied(value: Any) -> Any:
    """JSON columns come back as the row's own dict: hand out a copy."""
    return dict(value) if isinstance(value, dict) else value


# One predictor by name, as a Core statement (built once).
_FIND_PREDICTOR = select(PredictorRow.__table__).where(
    PredictorRow.__table__.c.name == bindparam("name")
)


def _predictor_record(row: Any) -> PredictorRecord:
    """A record from an ORM row or a Core row (both give the columns as attributes)."""
    return PredictorRecord(**{f: _copied(getattr(row, f)) for f in _PREDICTOR_FIELDS})


def _predictor_row(spec: PredictorSpec, status: str) -> PredictorRow:
    """A new row for ``spec``: names normalised, no error, no deployment yet."""
    values = {f: _copied(getattr(spec, f)) for f in _SPEC_FIELDS}
    values["name"] = _key(spec.name)
    values["namespace"] = _key(spec.namespace or "")
    if spec.training_datasource:
        values["training_datasource"] = _key(spec.training_datasource)
    now = utcnow()
    return PredictorRow(
        **values,
        status=status,
        error=None,
        version=None,
        deployment=None,
        created_at=now,
        updated_at=now,
    )


def _check_spec(spec: PredictorSpec) -> None:
    if spec.kind not in MODEL_KINDS:
        raise InvalidOption(
            f"Unknown model kind '{spec.kind}'; expected one of {list(MODEL_KINDS)}."
        )
    if spec.kind == "external" and not spec.url_predict:
        raise InvalidOption(
            f"Model '{_key(spec.name)}' is external and needs url_predict: the URL the "
            "gateway sends predictions to."
        )


def _job_record(row: TrainingJobRow) -> TrainingJobRecord:
    return TrainingJobRecord(
        id=row.id,
        predictor=row.predictor,
        status=row.status,
        error=row.error,
        rows=row.rows,
        started_at=row.started_at,
        finished_at=row.finished_at,
        extra=dict(row.extra or {}),
        owner=row.owner,
        heartbeat_at=row.heartbeat_at,
    )


def _check_status(status: str, allowed: tuple[str, ...], what: str) -> None:
    if status not in allowed:
        raise InvalidOption(f"Unknown {what} status '{status}'; expected one of {list(allowed)}.")


class Catalog(
    VersionsMixin, ProjectsMixin, LivenessMixin, QueriesMixin, SessionsMixin, TokensMixin
):
    """Datasources, projects (``catalog.projects``), predictors, their versions
    (``catalog.versions``), training jobs with their owners (``catalog.liveness``),
    streaming statements' progress (``catalog.queries``), HTTP sessions
    (``catalog.sessions``) and tokens (``catalog.tokens``), in a SQL database."""

    # For the version methods, which live in catalog.versions.
    _predictor_record = staticmethod(_predictor_record)

    def __init__(
        self, url: str, owner: str | None = None, secrets: SecretBox | None = None
    ) -> None:
        """Open (and create or upgrade) the catalog at the SQLAlchemy ``url``. ``owner``
        (a gateway's id) is recorded on the training jobs started through this object.
        ``secrets`` encrypts datasource secrets (default: ``$BYOM_SECRET_KEY`` or the
        default home's key file, see ``catalog.secrets``)."""
        self.owner = owner
        self._engine: Engine = make_engine(url)
        self._secrets = secrets if secrets is not None else SecretBox()
        # Other gateways may open a server catalog: they must share the key.
        self._secrets.shared = self._engine.dialect.name != "sqlite"
        try:
            migrations.migrate(self._engine, secrets=self._secrets)
        except BaseException:
            self._engine.dispose()
            raise
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._reader = read_engine(self._engine)
        self._reads = sessionmaker(self._reader, expire_on_commit=False)

    @classmethod
    def open(cls, home: Path | None = None) -> Catalog:
        """The catalog of ``home`` (default ``$BYOM_HOME`` or ``~/.byom``), or
        ``$BYOM_CATALOG_URL`` when set."""
        home = home if home is not None else default_home()
        return cls(catalog_url(home), secrets=SecretBox(home))

    def close(self) -> None:
        """Close every pooled connection; the object is unusable afterwards."""
        self._engine.dispose()

    @property
    def url(self) -> str:
        """The catalog URL with any password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._session(read_only=True) as s:
            return int(s.execute(select(SchemaVersionRow.version)).scalar_one())

    @contextmanager
    def _session(self, read_only: bool = False) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error. ``read_only``
        for those that never write: they do not wait for (or hold up) a writer."""
        sessions = self._reads if read_only else self._sessions
        with unavailable_as_error(self.url), sessions.begin() as session:
            yield session

    # -- datasources -------------------------------------------------------------------

    def add_datasource(
        self, name: str, engine: str, parameters: dict[str, Any]
    ) -> DatasourceRecord:
        """Store a datasource, its secrets encrypted; ``DatasourceExists`` when the name
        is taken. The record returned holds ``parameters`` as given."""
        key = _key(name)
        sealed = self._secrets.seal_parameters(parameters)
        try:
            with self._session() as s:
                row = DatasourceRow(name=key, engine=engine, parameters=sealed, created_at=utcnow())
                s.add(row)
                s.flush()
                return dataclasses.replace(_datasource_record(row), parameters=dict(parameters))
        except IntegrityError as exc:
            raise DatasourceExists(
                f"Datasource '{key}' already exists. DROP DATABASE {key} first, or pick "
                "another name.",
                datasource=key,
            ) from exc

    def get_datasource(self, name: str) -> DatasourceRecord:
        """The datasource called ``name``, its secrets decrypted (this is the record the
        gateway connects with); ``DatasourceNotFound`` with a did-you-mean,
        SECRET_KEY_MISMATCH when this catalog's key cannot decrypt them."""
        key = _key(name)
        with self._session(read_only=True) as s:
            row = s.execute(select(DatasourceRow).where(DatasourceRow.name == key)).scalar()
            if row is None:
                raise DatasourceNotFound.named(key, s.execute(select(DatasourceRow.name)).scalars())
            found = _datasource_record(row)
        parameters = self._secrets.reveal_parameters(found.parameters, datasource=key)
        return dataclasses.replace(found, parameters=parameters)

    def list_datasources(self) -> list[DatasourceRecord]:
        """Every stored datasource, by name; secrets stay encrypted (for listing: mask them
        with ``public_parameters``)."""
        with self._session(read_only=True) as s:
            rows = s.execute(select(DatasourceRow).order_by(DatasourceRow.name)).scalars()
            return [_datasource_record(r) for r in rows]

    def drop_datasource(self, name: str) -> None:
        """Forget a datasource; ``DatasourceNotFound`` when there is none."""
        key = _key(name)
        with self._session() as s:
            deleted = s.execute(delete(DatasourceRow).where(DatasourceRow.name == key)).rowcount
        if not deleted:
            self.get_datasource(key)  # raises the not-found error with its did-you-mean

    # -- predictors --------------------------------------------------------------------

    def add_predictor(self, spec: PredictorSpec, *, status: str) -> PredictorRecord:
        """Store the predictor ``spec`` with ``status``; ``ModelExists`` when the name is
        taken, ``InvalidOption`` for an unknown kind or status or an external model
        without ``url_predict``."""
        _check_status(status, PREDICTOR_STATUSES, "predictor")
        _check_spec(spec)
        key = _key(spec.name)
        try:
            with self._session() as s:
                row = _predictor_row(spec, status)
                s.add(row)
                s.flush()
                return _predictor_record(row)
        except IntegrityError as exc:
            raise ModelExists(
                f"Model '{key}' already exists. DROP MODEL {key} first, or pick another name.",
                model=key,
            ) from exc

    def find_predictor(self, name: str) -> PredictorRecord | None:
        """The predictor called ``name``, or None.

        Every prediction statement starts here, so it reads with a Core ``select`` on one
        connection rather than an ORM session (about a third of the cost; the column types'
        conversions - JSON, UTC timestamps - apply the same way).
        """
        with unavailable_as_error(self.url), self._reader.connect() as conn:
            row = conn.execute(_FIND_PREDICTOR, {"name": _key(name)}).first()
        return _predictor_record(row) if row is not None else None

    def get_predictor(self, name: str) -> PredictorRecord:
        """The predictor called ``name``; ``ModelNotFound`` with a did-you-mean."""
        record = self.find_predictor(name)
        if record is not None:
            return record
        raise self._model_not_found(_key(name))

    def _model_not_found(self, key: str) -> ModelNotFound:
        with self._session(read_only=True) as s:
            existing = list(s.execute(select(PredictorRow.name)).scalars())
        return ModelNotFound.named(key, existing)

    def list_predictors(self) -> list[PredictorRecord]:
        """Every predictor, by name."""
        with self._session(read_only=True) as s:
            rows = s.execute(select(PredictorRow).order_by(PredictorRow.name)).scalars()
            return [_predictor_record(r) for r in rows]

    def drop_predictor(self, name: str) -> None:
        """Forget a predictor, its versions and training jobs; ``ModelNotFound`` when there
        is none."""
        key = _key(name)
        with self._session() as s:
            deleted = s.execute(delete(PredictorRow).where(PredictorRow.name == key)).rowcount
            if deleted:
                # A predictor created later under the same name starts with no history.
                s.execute(delete(TrainingJobRow).where(TrainingJobRow.predictor == key))
                delete_versions(s, key)
        if not deleted:
            raise self._model_not_found(key)

    def set_predictor_status(
        self, name: str, status: str, error: str | None = None
    ) -> PredictorRecord:
        """Move a predictor to ``status`` (with ``error`` text, cleared when None)."""
        _check_status(status, PREDICTOR_STATUSES, "predictor")
        key = _key(name)
        with self._session() as s:
            row = s.execute(select(PredictorRow).where(PredictorRow.name == key)).scalar()
            if row is not None:
                row.status = status
                row.error = error
                row.updated_at = utcnow()
                s.flush()
                return _predictor_record(row)
        raise self._model_not_found(key)

    def set_predictor_deployment(
        self,
        name: str,
        *,
        url_predict: str | None,
        deployment: str | None,
        version: int | None,
    ) -> PredictorRecord:
        """Record where the gateway deployed a built-in model: the Serve ``deployment``
        running ``version``, reached at ``url_predict`` (all None: not deployed).

        ``InvalidOption`` for an external model, whose URL is the user's to declare.
        """
        key = _key(name)
        with self._session() as s:
            row = s.execute(select(PredictorRow).where(PredictorRow.name == key)).scalar()
            if row is not None:
                if row.kind != "builtin":
                    raise InvalidOption(
                        f"Model '{key}' is {row.kind}, not built-in: the gateway does not "
                        "deploy it."
                    )
                row.url_predict = url_predict
                row.deployment = deployment
                row.version = version
                row.updated_at = utcnow()
                s.flush()
                return _predictor_record(row)
        raise self._model_not_found(key)

    # -- training jobs -----------------------------------------------------------------

    def start_job(self, predictor: str, extra: dict[str, Any] | None = None) -> TrainingJobRecord:
        """Record a running training job of ``predictor`` (which must exist), owned by
        this catalog's ``owner``."""
        key = _key(predictor)
        with self._session() as s:
            exists = s.execute(select(PredictorRow.id).where(PredictorRow.name == key)).scalar()
            if exists is not None:
                row = TrainingJobRow(
                    predictor=key,
                    status="running",
                    error=None,
                    rows=None,
                    started_at=utcnow(),
                    finished_at=None,
                    extra=dict(extra or {}),
                    owner=self.owner,
                    heartbeat_at=None,
                )
                s.add(row)
                s.flush()
                return _job_record(row)
        raise self._model_not_found(key)

    def finish_job(
        self,
        job_id: int,
        status: str,
        error: str | None = None,
        rows: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TrainingJobRecord:
        """End a job as ``complete`` or ``error``; ``extra`` is merged into the job's."""
        _check_status(status, JOB_STATUSES, "job")
        if status == "running":
            raise InvalidOption("finish_job needs a final status: 'complete' or 'error'.")
        with self._session() as s:
            row = s.get(TrainingJobRow, job_id)
            if row is None:
                raise NotFound(f"Training job {job_id} not found.", code="JOB_NOT_FOUND")
            row.status = status
            row.error = error
            row.rows = rows
            row.finished_at = utcnow()
            if extra:
                row.extra = {**(row.extra or {}), **extra}
            s.flush()
            return _job_record(row)

    def list_jobs(self, predictor: str | None = None) -> list[TrainingJobRecord]:
        """Training jobs, oldest first; only ``predictor``'s when given."""
        query = select(TrainingJobRow).order_by(TrainingJobRow.id)
        if predictor is not None:
            query = query.where(TrainingJobRow.predictor == _key(predictor))
        with self._session(read_only=True) as s:
            return [_job_record(r) for r in s.execute(query).scalars()]

    def fail_interrupted(self, message: str = INTERRUPTED_MESSAGE) -> list[str]:
        """Mark every running job, and every predictor and version still generating or
        training, as ``error`` with ``message``; return the affected predictor names, sorted.
        A predictor is marked only by its own status: a built-in model that stayed
        ``complete`` while a new version trained keeps serving its active version.

        For a catalog only one gateway uses; with replicas, ``fail_lost`` (catalog.liveness)
        marks only what belonged to gateways that are gone.
        """
        now = utcnow()
        with self._session() as s:
            jobs = s.execute(
                update(TrainingJobRow)
                .where(TrainingJobRow.status == "running")
                .values(status="error", error=message, finished_at=now)
                .returning(TrainingJobRow.predictor)
            ).scalars()
            names = set(jobs)
            predictors = s.execute(
                update(PredictorRow)
                .where(PredictorRow.status.in_(BUSY_STATUSES))
                .values(status="error", error=message, updated_at=now)
                .returning(PredictorRow.name)
            ).scalars()
            names.update(predictors)
            names.update(fail_busy_versions(s, message, now))
        return sorted(names)
