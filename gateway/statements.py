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


@dataclass(frozen=True)
class CreatePredictor:
    """``CREATE PREDICTOR|MODEL [ns.]name [FROM ds (query)] [PREDICT col] [USING k=v, ...]``.

    ``options`` keys are normalised: ``url.train``, ``url.predict``, ``format``, ``dtype_dict``
    (``data_dtype`` is folded into it), everything else lower-cased as written. Values are
    Python values: strings, numbers, booleans, dicts and lists from JSON literals.
    """

    name: str
    namespace: str | None = None
    datasource: str | None = None
    query: str | None = None  # the SQL inside FROM ds ( ... ), verbatim
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


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
    """``DROP MODEL|PREDICTOR [IF EXISTS] [ns.]name``."""

    name: str
    namespace: str | None = None
    if_exists: bool = False


@dataclass(frozen=True)
class ShowDatabases:
    pass


@dataclass(frozen=True)
class ShowModels:
    pass


@dataclass(frozen=True)
class Describe:
    """``DESCRIBE [MODEL|PREDICTOR] [ns.]name``."""

    name: str
    namespace: str | None = None


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
    | CreateDatabase
    | DropDatabase
    | DropModel
    | ShowDatabases
    | ShowModels
    | Describe
    | Query
)

# Namespaces a model name may be qualified with; all three name the same model space.
MODEL_NAMESPACES = ("mindsdb", "model", "models")
