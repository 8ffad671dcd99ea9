"""What the parser produces: one frozen dataclass per kind of statement.

The parser knows no catalog, so a ``SELECT`` stays a ``Query`` holding the sqlglot tree; the
planner decides (with the names the executor gives it) whether that is a one-row prediction,
a batch JOIN, or plain SQL for a datasource. Model and datasource names are lower-cased here;
column names keep the case they were written in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from catalog.records import DEFAULT_PROJECT, PROJECT_ALIASES


@dataclass(frozen=True)
class CreatePredictor:
    """``CREATE PREDICTOR|MODEL [ns.]name [FROM ds (query)] [PREDICT col] [USING k=v, ...]``.

    ``options`` keys are normalised: ``url.train``, ``url.predict``, ``format``, ``dtype_dict``
    (``data_dtype`` is folded into it), everything else lower-cased as written. Values are
    Python values: strings, numbers, booleans, dicts and lists from JSON literals.
    """

    name: str
    namespace: str | None = None  # the project (None: the session's default project)
    datasource: str | None = None
    query: str | None = None  # the SQL inside FROM ds ( ... ), verbatim
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    or_replace: bool = False  # CREATE OR REPLACE MODEL: drop the one that exists first
    if_not_exists: bool = False  # CREATE MODEL IF NOT EXISTS: an existing one is kept


@dataclass(frozen=True)
class Retrain:
    """``RETRAIN [MODEL|PREDICTOR] [project.]name [FROM ds (query) | FROM (query) [AS alias]]
    [PREDICT col] [USING k=v, ...]``: train a new version of a built-in model.

    Options are read as CREATE MODEL's (``WHERE k = v AND ...`` too). No FROM: the last
    version's training data.
    """

    name: str
    namespace: str | None = None
    datasource: str | None = None
    query: str | None = None  # the SQL inside FROM ds ( ... ), verbatim
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluate:
    """``EVALUATE [MODEL] [project.]name [VERSION n] FROM ds (query) [USING k=v, ...]`` (also
    ``FROM (query) [AS alias]``: the session's datasource): score a version (default: the
    active one) on labelled rows."""

    name: str
    namespace: str | None = None
    version: int | None = None
    datasource: str | None = None
    query: str = ""  # the SQL inside FROM ds ( ... ), verbatim
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelTraining:
    """``CANCEL TRAINING [OF] [MODEL] [project.]name``: stop the model's running training job."""

    name: str
    namespace: str | None = None


@dataclass(frozen=True)
class CreateDatabase:
    """``CREATE DATABASE name WITH ENGINE = 'sqlite', PARAMETERS = {...}``."""

    name: str
    engine: str
    parameters: dict[str, Any] = field(default_factory=dict)
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropDatabase:
    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class DropModel:
    """``DROP MODEL|PREDICTOR [IF EXISTS] [project.]name``."""

    name: str
    namespace: str | None = None
    if_exists: bool = False


@dataclass(frozen=True)
class CreateProject:
    """``CREATE PROJECT [IF NOT EXISTS] name``."""

    name: str
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropProject:
    """``DROP PROJECT [IF EXISTS] name``."""

    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class Use:
    """``USE name``: a datasource (for unqualified table names) or a project (for new
    models), for the rest of the session."""

    name: str


# The SHOW statements take ``[LIKE 'pattern'] [WHERE condition]``: ``like`` filters the
# answer's first column (SQL LIKE, case-insensitive); ``where`` is a condition over the
# answer's columns, kept as SQLite SQL (the answer is filtered in an in-memory SQLite).


@dataclass(frozen=True)
class ShowDatabases:
    """``SHOW [FULL] DATABASES``: datasources; FULL adds the projects and a ``type``."""

    full: bool = False
    like: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class ShowModels:
    """``SHOW MODELS|PREDICTORS [FROM project]``."""

    project: str | None = None
    like: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class ShowTables:
    """``SHOW [FULL] TABLES [FROM name]``: a datasource's tables (or a project's models);
    FULL adds ``table_type``. No FROM: the session's default datasource."""

    source: str | None = None
    full: bool = False
    like: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class ShowProjects:
    """``SHOW PROJECTS``."""

    like: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class ShowEngines:
    """``SHOW ENGINES|HANDLERS``: datasource engines and model formats."""

    like: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class Describe:
    """``DESCRIBE [MODEL|PREDICTOR] [project.]name[.attribute]``.

    Three parts are project, model and attribute. Two parts are read as ``namespace.name``
    here, but they may also be ``model.attribute`` (``DESCRIBE m.features``): the parser
    knows no catalog, so the planner decides.
    """

    name: str
    namespace: str | None = None
    attribute: str | None = None


@dataclass(frozen=True)
class Variable:
    """A MySQL user variable ``@name`` where a value is expected (``SET @b = @a``, an
    argument of a HeatWave routine). Names are case-insensitive: kept lower-case."""

    name: str


@dataclass(frozen=True)
class SetVariables:
    """``SET @a = 1, @b = 'x'``: user variables, kept for the rest of the session.

    ``values`` are ``(name, value)`` pairs in order (names lower-case; a value is a string,
    a number, a boolean, None, or a ``Variable`` until ``gateway.heatwave.resolve`` reads
    it from the session). ``message`` is the answer (None: which variables were set);
    HeatWave's ``ML_MODEL_LOAD``/``ML_MODEL_UNLOAD`` become one with no values and a message.
    """

    values: tuple[tuple[str, Any], ...] = ()
    message: str | None = None


@dataclass(frozen=True, eq=False)
class HeatWaveRoutine:
    """A MySQL HeatWave AutoML routine, read but not translated yet: ``CALL
    sys.ML_TRAIN|ML_PREDICT_TABLE|ML_MODEL_LOAD|ML_MODEL_UNLOAD(...)`` or ``SELECT
    sys.ML_PREDICT_ROW(...)``. Its arguments may name session variables, which only the
    session knows, so ``gateway.heatwave.resolve`` makes the gateway's own statement of it
    just before planning.

    ``args`` are Python values: strings, numbers, None, a dict for ``JSON_OBJECT(...)``, a
    ``Variable`` for ``@name``.
    """

    routine: str  # upper-case: ML_TRAIN, ML_PREDICT_ROW, ...
    args: tuple[Any, ...]
    sql: str  # the statement as written


@dataclass(frozen=True, eq=False)
class PostgresMLCall:
    """PostgresML's ``SELECT pgml.tune|predict|predict_proba|generate(...)``, read but not
    translated yet: the models and the training relation's columns are the catalog's and
    the datasource's to say, so ``gateway.postgresml.resolve`` makes the gateway's own
    statement of it just before planning.

    ``args`` are under PostgresML's argument names: Python values (``ARRAY[...]`` a list,
    ``'{...}'::jsonb`` parsed), or a sqlglot expression for a value read from a table's
    rows. ``label`` names the answer's column (the ``AS`` alias, else the function's name);
    ``query`` is the SELECT itself when it reads a table (``... FROM ds.t``), else None;
    ``using`` the ``USING k = v`` options written after it.
    """

    function: str  # lower-case: tune, predict, predict_proba, generate
    args: dict[str, Any]
    label: str
    query: exp.Select | None
    using: dict[str, Any]
    sql: str  # the statement as written


@dataclass(frozen=True, eq=False)
class Query:
    """Any other statement sqlglot understands (SELECT, INSERT, CREATE TABLE/VIEW, ...).

    ``tree`` is the sqlglot expression; ``sql`` the statement text as written (without the
    trailing ``;``), kept so pass-through can send exactly what the user wrote.
    """

    tree: exp.Expression
    sql: str


Statement = (
    CreatePredictor
    | Retrain
    | Evaluate
    | CancelTraining
    | CreateDatabase
    | DropDatabase
    | DropModel
    | CreateProject
    | DropProject
    | Use
    | ShowDatabases
    | ShowModels
    | ShowTables
    | ShowProjects
    | ShowEngines
    | Describe
    | SetVariables
    | HeatWaveRoutine
    | PostgresMLCall
    | Query
)

# The names of the default project ``mindsdb`` (``model``/``models`` are other names of it);
# any project made with CREATE PROJECT qualifies model names too.
MODEL_NAMESPACES = (DEFAULT_PROJECT, *PROJECT_ALIASES)
