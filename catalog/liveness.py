"""Who runs what: owners and heartbeats of training jobs and streaming statements.

Several gateway replicas may share one catalog. Each has an owner id (``host:pid:tag``)
that it records on the training jobs it starts (``TrainingJobRow.owner``) and the
statements whose progress it writes (``QueryRow.owner``), and it beats regularly
(``beat``): the ``heartbeat_at`` of its running jobs and the ``updated_at`` of its
running statements move on. A job or statement whose owner stopped beating belongs to a
gateway that is gone; another replica marks it ``error`` (``fail_lost``), together with
the predictor and versions the job was training, as ``fail_interrupted`` does for all of
them at once.

Timestamps come from the writers' clocks: replicas' clocks must agree to well within the
heartbeat timeout.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from catalog.tables import ModelVersionRow, PredictorRow, QueryRow, TrainingJobRow, utcnow

INTERRUPTED_MESSAGE = (
    "interrupted: the gateway stopped while this job was running; "
    "re-run CREATE PREDICTOR to train again"
)
# Predictor and version states that mean "a job is working on it".
BUSY_STATUSES = ("generating", "training")


# The start of a statement's error when its gateway stopped (the jobs' message is about
# training: "re-run CREATE PREDICTOR" means nothing for a JOIN or a write-back).
STATEMENT_STOPPED = "interrupted: the gateway stopped while this statement was running"


def owner_lost_message(owner: str) -> str:
    """The error of a job or statement whose owner stopped beating."""
    return f"interrupted: owner lost ({owner})"


def query_interrupted_message(kind: str, rows_done: int, cause: str = STATEMENT_STOPPED) -> str:
    """The error of a statement whose gateway is gone: ``cause``, then how far it got by
    its last recorded progress (``rows_done``, written at most every ~0.5 s, so the real
    figure may be higher). A write-back (``kind`` "write") commits each batch on its own:
    its rows stay in the table, and the client needs to know how many to expect there."""
    if kind == "write":
        if rows_done <= 0:
            return (
                f"{cause}, before any written rows were recorded; its table may exist and "
                "hold the rows of batches written since (each batch is its own transaction)"
            )
        return (
            f"{cause}; at least {rows_done} rows had been written when last recorded and "
            "stay in the table (each batch is its own transaction; more may have been "
            "written after that record)"
        )
    return f"{cause}; {rows_done} rows had been sent when last recorded"


def _job_beat() -> ColumnElement[datetime]:
    """A job's last sign of life: its heartbeat, or its start when it never beat."""
    return func.coalesce(TrainingJobRow.heartbeat_at, TrainingJobRow.started_at)


def _lost(
    column: ColumnElement[str | None],
    dead_owners: Collection[str],
    unowned: bool,
    stale: ColumnElement[bool] | None,
    alive: str | None,
) -> ColumnElement[bool] | None:
    """The condition "owned by nobody / a dead owner / an owner that stopped beating",
    never true of ``alive``'s rows; None when nothing can match."""
    reasons: list[ColumnElement[bool]] = []
    if unowned:
        reasons.append(column.is_(None))
    if dead_owners:
        reasons.append(column.in_(sorted(dead_owners)))
    if stale is not None:
        reasons.append(stale)
    if not reasons:
        return None
    condition = or_(*reasons)
    if alive is not None:
        condition = and_(condition, or_(column.is_(None), column != alive))
    return condition


class LivenessMixin:
    """The owner and heartbeat methods of ``Catalog``; each is one transaction."""

    if TYPE_CHECKING:  # provided by Catalog

        def _session(self, read_only: bool = False) -> AbstractContextManager[Session]: ...

    def running_owners(self) -> set[str | None]:
        """The owners of running jobs and statements (None: a job from before v5)."""
        with self._session(read_only=True) as s:
            jobs = s.execute(
                select(TrainingJobRow.owner).where(TrainingJobRow.status == "running").distinct()
            ).scalars()
            owners: set[str | None] = set(jobs)
            queries = s.execute(
                select(QueryRow.owner).where(QueryRow.status == "running").distinct()
            ).scalars()
            owners.update(queries)
        return owners

    def request_cancel(self, predictor: str) -> str | None:
        """Ask the owner of ``predictor``'s running job to cancel it (``cancel_requested``
        in the job's extra, read by ``cancel_requests``); that owner, or None when no job
        of ``predictor`` runs."""
        with self._session() as s:
            job = s.execute(
                select(TrainingJobRow)
                .where(TrainingJobRow.predictor == predictor, TrainingJobRow.status == "running")
                .order_by(TrainingJobRow.id.desc())
            ).scalars().first()  # fmt: skip
            if job is None:
                return None
            job.extra = {**job.extra, "cancel_requested": True}  # a new dict: the ORM sees it
            return job.owner or ""

    def cancel_requests(self, owner: str) -> list[str]:
        """Predictors whose running job ``owner`` runs and another replica asked to cancel."""
        with self._session(read_only=True) as s:
            jobs = s.execute(
                select(TrainingJobRow).where(
                    TrainingJobRow.status == "running", TrainingJobRow.owner == owner
                )
            ).scalars()
            return sorted({j.predictor for j in jobs if j.extra.get("cancel_requested")})

    def beat(self, owner: str) -> int:
        """``owner`` is alive: its running jobs' ``heartbeat_at`` and its running
        statements' ``updated_at`` become now. Returns how many jobs it runs."""
        now = utcnow()
        with self._session() as s:
            jobs = s.execute(
                update(TrainingJobRow)
                .where(TrainingJobRow.status == "running", TrainingJobRow.owner == owner)
                .values(heartbeat_at=now)
            ).rowcount
            s.execute(
                update(QueryRow)
                .where(QueryRow.status == "running", QueryRow.owner == owner)
                .values(updated_at=now)
            )
        return jobs

    def fail_lost(
        self,
        *,
        dead_owners: Collection[str] = (),
        unowned: bool = False,
        stale_before: datetime | None = None,
        alive: str | None = None,
    ) -> list[str]:
        """Mark ``error`` the running jobs and statements whose owner is gone: owned by one
        of ``dead_owners`` or (``unowned``) by nobody - "the gateway stopped" -, or (with
        ``stale_before``) not beaten since - "owner lost (<owner>)". Rows of ``alive`` (the
        caller) are never marked. A marked job's predictor, when still generating or
        training, and its busy versions become ``error`` too; a built-in model that stayed
        ``complete`` while a new version trained keeps serving its active version. A marked
        statement's error says how far it got (``query_interrupted_message``).

        Each row is re-checked in the same transaction as its update, so a job beaten
        meanwhile is left alone. Returns the affected predictors' names, sorted.
        """
        now = utcnow()
        dead = set(dead_owners)

        def message(owner: str | None) -> str:
            if owner is None or owner in dead:
                return INTERRUPTED_MESSAGE
            return owner_lost_message(owner)

        stale_jobs = _job_beat() < stale_before if stale_before is not None else None
        lost_jobs = _lost(TrainingJobRow.owner, dead, unowned, stale_jobs, alive)
        stale_queries = QueryRow.updated_at < stale_before if stale_before is not None else None
        lost_queries = _lost(QueryRow.owner, dead, False, stale_queries, alive)
        names: set[str] = set()
        with self._session() as s:
            if lost_jobs is not None:
                jobs = s.execute(
                    select(TrainingJobRow)
                    .where(TrainingJobRow.status == "running", lost_jobs)
                    .order_by(TrainingJobRow.id)
                    .with_for_update()
                ).scalars()
                for job in list(jobs):
                    text = message(job.owner)
                    job.status, job.error, job.finished_at = "error", text, now
                    s.flush()
                    _fail_trained(s, job, text, now)
                    names.add(job.predictor)
            if lost_queries is not None:
                for query in s.execute(
                    select(QueryRow).where(QueryRow.status == "running", lost_queries)
                ).scalars():
                    owner = query.owner
                    lost = owner is not None and owner not in dead
                    cause = owner_lost_message(owner) if lost else STATEMENT_STOPPED
                    query.status = "error"
                    query.error = query_interrupted_message(query.kind, query.rows_done, cause)
                    query.finished_at = query.updated_at = now
        return sorted(names)

    def fail_orphans(self, stale_before: datetime, message: str = INTERRUPTED_MESSAGE) -> list[str]:
        """Mark ``error`` the predictors and versions still generating or training that no
        running job works on and that did not change since ``stale_before`` (a gateway
        stopped between storing the model and starting its job). Returns their names."""
        now = utcnow()
        no_job = ~exists().where(
            TrainingJobRow.status == "running", TrainingJobRow.predictor == PredictorRow.name
        )
        no_version_job = ~exists().where(
            TrainingJobRow.status == "running",
            TrainingJobRow.predictor == ModelVersionRow.predictor,
        )
        with self._session() as s:
            predictors = s.execute(
                update(PredictorRow)
                .where(
                    PredictorRow.status.in_(BUSY_STATUSES),
                    PredictorRow.updated_at < stale_before,
                    no_job,
                )
                .values(status="error", error=message, updated_at=now)
                .returning(PredictorRow.name)
            ).scalars()
            names = set(predictors)
            versions = s.execute(
                update(ModelVersionRow)
                .where(
                    ModelVersionRow.status.in_(BUSY_STATUSES),
                    ModelVersionRow.updated_at < stale_before,
                    no_version_job,
                )
                .values(status="error", error=message, updated_at=now)
                .returning(ModelVersionRow.predictor)
            ).scalars()
            names.update(versions)
        return sorted(names)


def _fail_trained(s: Session, job: TrainingJobRow, message: str, now: datetime) -> None:
    """The predictor (when busy and no other job of it runs) and the busy versions that the
    lost ``job`` was training become ``error`` with ``message``."""
    others = s.execute(
        select(TrainingJobRow.id).where(
            TrainingJobRow.predictor == job.predictor,
            TrainingJobRow.status == "running",
            TrainingJobRow.id != job.id,
        )
    ).first()
    if others is None:
        s.execute(
            update(PredictorRow)
            .where(PredictorRow.name == job.predictor, PredictorRow.status.in_(BUSY_STATUSES))
            .values(status="error", error=message, updated_at=now)
        )
    s.execute(
        update(ModelVersionRow)
        .where(
            ModelVersionRow.predictor == job.predictor,
            ModelVersionRow.status.in_(BUSY_STATUSES),
            or_(ModelVersionRow.job_id == job.id, ModelVersionRow.job_id.is_(None)),
        )
        .values(status="error", error=message, updated_at=now)
    )
