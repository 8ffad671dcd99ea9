"""The plans the planner makes and the executor runs, and the ``Resolver`` the planner uses.

A plan is a frozen dataclass saying what a statement does, with every name already resolved
(a ``PredictorRecord``, a datasource name, the SQL a datasource will run). Statements that need
no more than checking (``SHOW DATABASES``, ``DROP MODEL`` ...) are their own plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlglot import exp

from catalog.records import PredictorRecord, PredictorSpec, ProjectRecord
from gateway import statements as st

# Canonical qualifiers of the columns in ``JoinPlan.post_filter``.
TABLE_SIDE = "__table__"
MODEL_SIDE = "__model"


class Resolver(Protocol):
    """Name lookups the planner needs; the executor implements it over the catalog, one
    instance per statement so each name is looked up once.

    ``default_datasource`` (unqualified table names) and ``default_project`` (where an
    unqualified ``CREATE MODEL`` puts the model) are the session's (``USE``).
    """

    default_datasource: str
    default_project: str

    def model(self, name: str) -> PredictorRecord | None: ...

    def model_names(self) -> list[str]: ...

    def datasource_dialect(self, name: str) -> str | None:
        """sqlglot dialect of datasource ``name``, or None when there is no such datasource."""
        ...

    def datasource_names(self) -> list[str]: ...

    def project(self, name: str) -> ProjectRecord | None:
        """Project ``name`` (``model``/``models`` are ``mindsdb``), or None when there is none."""
        ...

    def project_names(self) -> list[str]: ...

    def model_version(self, name: str, version: int) -> PredictorRecord:
        """Model ``name`` as of ``version`` (its URL and status): ModelVersionNotFound when
        it has no such version."""
        ...


@dataclass(frozen=True)
class RegisterPlan:
    """Register a predictor (and train it when ``url_train`` and a query are set).

    ``or_replace``: drop the model of that name first (stopping its training);
    ``if_not_exists``: keep an existing one and change nothing.
    """

    spec: PredictorSpec
    or_replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class TrainBuiltinPlan:
    """Train a new version of a built-in model: ``CREATE MODEL ... USING task=...`` (or
    ``WHERE MODEL_NAME = ...``; then ``seed_answer``: the one-row answer of that form), or
    ``RETRAIN`` (``retrain``: the model exists and keeps serving its active version).

    ``spec.options`` holds the version's training options (model_name, hyperparams,
    test_size, test_sampling); ``activate``: make the new version active once it is complete.
    """

    spec: PredictorSpec
    retrain: bool = False
    activate: bool = True
    seed_answer: bool = False
    or_replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class EvaluatePlan:
    """``EVALUATE m [VERSION n] FROM ds (query)``: ``model`` is the version's record."""

    model: PredictorRecord
    datasource: str
    query: str


@dataclass(frozen=True)
class CancelTrainingPlan:
    """``CANCEL TRAINING m``: stop the model's running training job."""

    model: PredictorRecord


@dataclass(frozen=True)
class ActivateVersionPlan:
    """``UPDATE models SET active = true WHERE name = 'm' AND version = n``: roll back/forward."""

    model: PredictorRecord
    version: int


@dataclass(frozen=True)
class UsePlan:
    """``USE name``: the session's default datasource, or its default project."""

    datasource: str | None = None
    project: str | None = None


@dataclass(frozen=True)
class DescribeTablePlan:
    """``DESCRIBE ds.table``: the columns of a datasource's table or view."""

    datasource: str
    table: str


@dataclass(frozen=True)
class DescribePlan:
    """``DESCRIBE [project.]m[.attribute]``: ``attribute`` is None, ``features`` or ``model``."""

    model: PredictorRecord
    attribute: str | None = None


@dataclass(frozen=True)
class ShowTablesPlan:
    """``SHOW [FULL] TABLES``: of ``datasource``, or the models of ``project``."""

    datasource: str | None
    project: str | None
    full: bool = False
    like: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class OutputColumn:
    """One column of a prediction result.

    ``side`` is ``"table"`` or ``"model"``; ``model`` indexes ``JoinPlan.models`` (always 0
    for a one-row prediction). ``name == "*"`` expands at run time to every column of that
    side (table columns are known once the first chunk arrives; extra model outputs once the
    first answer does).
    """

    side: str
    name: str
    label: str
    model: int = 0


@dataclass(frozen=True)
class PredictRowPlan:
    model: PredictorRecord
    inputs: dict[str, Any]
    outputs: list[OutputColumn]
    model_params: dict[str, Any] = field(default_factory=dict)  # USING: sent to the model


@dataclass(frozen=True)
class JoinPlan:
    datasource: str
    source_sql: str  # run on the datasource, with :pN bound parameters
    params: dict[str, Any]
    models: list[PredictorRecord]
    outputs: list[OutputColumn]
    options: dict[str, Any] = field(default_factory=dict)  # knobs: batch_size, ...
    model_params: dict[str, Any] = field(default_factory=dict)  # other USING keys: models
    # WHERE conditions that read model outputs, checked after prediction; their columns are
    # qualified TABLE_SIDE or MODEL_SIDE<i> (the index into ``models``).
    post_filter: exp.Expression | None = None
    limit: int | None = None  # enforced by the executor too (exactly n rows)


@dataclass(frozen=True)
class CatalogQueryPlan:
    """A read-only SELECT over the catalog's tables (``mindsdb.models``, ``.jobs``, ...)."""

    sql: str  # SQLite, with the namespace stripped


@dataclass(frozen=True)
class WriteBackPlan:
    """``CREATE TABLE ds.t AS <JOIN>`` (mode create) or ``INSERT INTO ds.t [(cols)] <JOIN>``."""

    datasource: str
    table: str
    schema: str | None
    mode: str  # "create" | "append"
    join: JoinPlan
    columns: list[str] | None = None  # INSERT's column list, renaming the JOIN's columns


@dataclass(frozen=True)
class NativePlan:
    datasource: str
    sql: str
    # Unqualified table names: if the datasource has no such table, the user may have
    # misspelt a model name, and the executor says so.
    bare_tables: tuple[str, ...] = ()


Plan = (
    CatalogQueryPlan
    | TrainBuiltinPlan
    | EvaluatePlan
    | CancelTrainingPlan
    | ActivateVersionPlan
    | WriteBackPlan
    | RegisterPlan
    | PredictRowPlan
    | JoinPlan
    | NativePlan
    | UsePlan
    | DescribePlan
    | DescribeTablePlan
    | ShowTablesPlan
    | st.CreateDatabase
    | st.DropDatabase
    | st.DropModel
    | st.CreateProject
    | st.DropProject
    | st.ShowDatabases
    | st.ShowModels
    | st.ShowProjects
    | st.ShowEngines
    | st.SetVariables
)
