"""MySQL HeatWave AutoML's recommendation statements, translated into the gateway's own.

- ``SET @m = 'x', @n := 3`` -> session variables (``SetVariables``); ``@m`` in plain SQL
  (``SELECT @m``) -> its value, NULL when unset.
- ``CALL sys.ML_TRAIN('s.t', 'y', JSON_OBJECT('task', 'recommendation', ...), @m)`` ->
  ``CREATE MODEL m FROM s (SELECT * FROM t) PREDICT y USING task = 'recommendation', ...``
- ``SELECT sys.ML_PREDICT_ROW(JSON_OBJECT('c', v), @m, JSON_OBJECT('topk', 3))`` ->
  ``SELECT * FROM m WHERE c = v USING topk = 3``
- ``CALL sys.ML_PREDICT_TABLE('s.in', @m, 's.out', JSON_OBJECT(...))`` ->
  ``CREATE TABLE s.out AS SELECT * FROM s.in AS t JOIN m AS p USING ...``
- ``CALL sys.ML_MODEL_LOAD(@m, NULL)``, ``CALL sys.ML_MODEL_UNLOAD(@m)`` -> a message once
  the model is found (models need no loading here).
- ``ML_SCHEMA_<user>.MODEL_CATALOG`` -> ``mindsdb.model_catalog`` (read-only);
  ``ML_SCHEMA_<user>.<t>`` -> ``local.<t>`` (a recommender's ``<model>_users``, ...);
  ``SHOW TABLES FROM ML_SCHEMA_<user>`` -> ``MODEL_CATALOG`` and those tables.

Two halves. While parsing (``gateway.parse_heatwave``: pure, no session) the forms become
``SetVariables``, ``HeatWaveRoutine`` (a routine with its arguments: Python values,
``JSON_OBJECT`` as a dict, ``@name`` as a ``Variable``) or a ``Query`` (``ML_SCHEMA_<user>``
rewritten, ``@name`` noted). Just before planning, ``resolve`` reads the variables from the
session and writes the gateway's statement as SQL text (``native_sql``), parsed like any
other: the native form's plan, rows and errors are the HeatWave form's.

In ``'schema.table'`` arguments, ``schema`` is a datasource when one has that name (its
``table``), else a schema of the session's datasource (SQLite's attached schemas, a
PostgreSQL schema). ML_TRAIN options pass through as USING options (a nested
``JSON_OBJECT`` as a JSON object); HeatWave's options that have no equivalent here are an
INVALID_OPTION naming them. ML_TRAIN with a NULL ``@model`` makes a handle the way HeatWave
does (``<schema>_<table>_<user>_<unix time>``) and stores it in ``@model`` as it is
translated (HeatWave stores it once training ends; CREATE MODEL here answers at once, with
the training in the background).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlglot import exp
from sqlglot.tokens import TokenType

from byom.errors import InvalidInput, InvalidOption, ModelNotFound, UnsupportedStatement, UserError
from gateway import statements as st
from gateway.parse_heatwave import USAGE, VARIABLES_META
from gateway.parse_tokens import DIALECT
from gateway.plans import Resolver
from gateway.session import Session

# The MySQL user the gateway stands for: in generated model handles and model_owner.
USER = "byom"
# ML_TRAIN options that become USING options as they are (the recommendation ones); any
# other key that is not HeatWave's passes too, for the planner to check.
TRAIN_OPTIONS = (
    "task", "users", "items", "feedback", "feedback_threshold", "item_metadata",
    "user_metadata",
)  # fmt: skip
# HeatWave's other ML_TRAIN options: nothing here does what they do.
UNMAPPED_TRAIN_OPTIONS = (
    "model_list", "exclude_model_list", "optimization_metric", "exclude_column_list",
    "include_column_list", "datetime_index", "endogenous_variables", "exogenous_variables",
    "positive_class", "notes", "contamination", "document_column", "language",
    "ensemble_score", "logical_dateparts",
)  # fmt: skip
DEFAULT_TASK = "classification"  # HeatWave's, when ML_TRAIN names none
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_TABLE_PART = re.compile(r"`[^`]+`|[^.`]+")
_TABLE = re.compile(r"(?:`[^`]+`|[^.`]+)(?:\.(?:`[^`]+`|[^.`]+)){0,2}")


def resolve(
    statement: st.Statement,
    session: Session,
    resolver: Resolver,
    clock: Callable[[], float] = time.time,
) -> st.Statement:
    """The gateway's own statement for ``statement``, once the session is known: the
    values of ``@variables`` put in, a HeatWave routine translated (``native_sql``).

    Any other statement comes back as it is. ``resolver`` says which names are
    datasources and models (as for the planner); ``clock`` dates generated model handles.
    """
    if isinstance(statement, st.Query):
        if statement.tree.meta.get(VARIABLES_META):
            return _with_values(statement, session.variables)
        return statement
    if isinstance(statement, st.SetVariables):
        values = tuple((k, _value(v, session.variables)) for k, v in statement.values)
        return replace(statement, values=values)
    if isinstance(statement, st.HeatWaveRoutine):
        if statement.routine in ("ML_MODEL_LOAD", "ML_MODEL_UNLOAD"):
            return _load(statement, session, resolver)
        return _parsed(native_sql(statement, session, resolver, clock), statement)
    return statement


def native_sql(
    statement: st.HeatWaveRoutine,
    session: Session,
    resolver: Resolver,
    clock: Callable[[], float] = time.time,
) -> str:
    """The gateway's statement that does what ``statement`` (ML_TRAIN, ML_PREDICT_ROW or
    ML_PREDICT_TABLE) does, as SQL text. ML_TRAIN with a NULL ``@model`` stores the handle
    it makes in ``@model``."""
    routine = statement.routine
    args = [_value(a, session.variables) for a in statement.args]
    args += [None] * (4 - len(args))
    if routine == "ML_TRAIN":
        table = _text(args[0], routine, "the training table ('schema.table')")
        target = None if args[1] is None else _text(args[1], routine, "the target column")
        options = train_options(_json(args[2], routine, "the options"))
        handle = args[3]
        if handle is None:
            handle = generated_handle(table, clock)
            if isinstance(statement.args[3], st.Variable):
                session.variables[statement.args[3].name] = handle
        handle = _text(handle, routine, "the model handle")
        datasource, inner = _training_table(table, resolver)
        sql = f"CREATE MODEL {ident(handle)} FROM {ident(datasource)} (SELECT * FROM {inner})"
        if target is not None:
            sql += f" PREDICT {ident(target)}"
        return sql + using_clause(options)
    if routine == "ML_PREDICT_ROW":
        row = _json(args[0], routine, "the input row")
        model = _model(args[1], routine, resolver)
        options = _json(args[2], routine, "the options")
        sql = f"SELECT * FROM {ident(model)}"
        if row:
            sql += " WHERE " + " AND ".join(
                f"{ident(column)} = {_sql_value(value, column)}" for column, value in row.items()
            )
        return sql + using_clause(options)
    if routine == "ML_PREDICT_TABLE":
        source = _table(_text(args[0], routine, "the input table ('schema.table')"))
        model = _model(args[1], routine, resolver)
        output = _table(_text(args[2], routine, "the output table ('schema.table')"))
        options = _json(args[3], routine, "the options")
        return (
            f"CREATE TABLE {output} AS SELECT * FROM {source} AS t JOIN {ident(model)} AS p"
            + using_clause(options)
        )
    raise UnsupportedStatement(f"sys.{routine} is MySQL HeatWave's; it has no equivalent here.")


def train_options(options: dict[str, Any]) -> dict[str, Any]:
    """ML_TRAIN's options as USING options: HeatWave's that have no equivalent here are an
    InvalidOption naming them; no ``task`` is HeatWave's default, classification."""
    unmapped = [k for k in options if k.lower() in UNMAPPED_TRAIN_OPTIONS]
    if unmapped:
        raise InvalidOption(
            f"sys.ML_TRAIN: MySQL HeatWave's option(s) {', '.join(unmapped)} have no "
            f"equivalent here; remove them. Options that translate: {', '.join(TRAIN_OPTIONS)}.",
            option=unmapped[0],
        )
    out = {k.lower(): v for k, v in options.items()}
    out.setdefault("task", DEFAULT_TASK)
    return out


def generated_handle(table: str, clock: Callable[[], float] = time.time) -> str:
    """HeatWave's handle for a model trained without one: ``<schema>_<table>_<user>_<unix
    time>``, lower-case, other characters as ``_``."""
    parts = table_parts(table)[-2:]
    raw = "_".join([*parts, USER, str(int(clock()))])
    return re.sub(r"[^a-z0-9_]", "_", raw.lower())


def _load(statement: st.HeatWaveRoutine, session: Session, resolver: Resolver) -> st.Statement:
    """ML_MODEL_LOAD / ML_MODEL_UNLOAD: the model must exist; nothing else to do here."""
    routine = statement.routine
    model = _model(_value(statement.args[0], session.variables), routine, resolver)
    if routine == "ML_MODEL_LOAD":
        message = (
            f"Model '{model}' is loaded: here a model needs no loading, its first prediction "
            "starts its deployment when it has none."
        )
    else:
        message = (
            f"Model '{model}' is unloaded: here a model needs no unloading, it stays deployed "
            f"until DROP MODEL {model}."
        )
    return st.SetVariables(message=message)


def _parsed(sql: str, statement: st.HeatWaveRoutine) -> st.Statement:
    """``sql`` parsed as if the user had written it; an error names the translation."""
    from gateway.parser import parse_one  # the parser imports this module

    try:
        return parse_one(sql)
    except UserError as e:
        e.amend(after=f" (sys.{statement.routine} translated to: {sql})")
        raise


def _with_values(query: st.Query, variables: Mapping[str, Any]) -> st.Query:
    """``query`` with each ``@name`` replaced by its value (NULL when unset); a bare
    ``SELECT @name`` answers a column named ``@name``."""
    tree = query.tree.copy()
    for node in list(tree.find_all(exp.Parameter)):
        inner = node.this
        if not isinstance(inner, exp.Var | exp.Identifier):
            continue  # @@system: left for the datasource
        name = inner.name
        value = _literal(variables.get(name.lower()))
        if isinstance(node.parent, exp.Select) and node.arg_key == "expressions":
            value = exp.alias_(value, f"@{name}", quoted=True)
        node.replace(value)
    tree.meta.pop(VARIABLES_META, None)
    return st.Query(tree=tree, sql=tree.sql(dialect=DIALECT))


def _literal(value: Any) -> exp.Expression:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value) if value >= 0 else exp.Neg(this=exp.Literal.number(-value))
    return exp.Literal.string(str(value))


def _value(value: Any, variables: Mapping[str, Any]) -> Any:
    """``value`` with every ``Variable`` in it read from ``variables`` (unset: NULL)."""
    if isinstance(value, st.Variable):
        return variables.get(value.name)
    if isinstance(value, dict):
        return {k: _value(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v, variables) for v in value]
    return value


def _text(value: Any, routine: str, what: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    shown = "NULL" if value is None else repr(value)
    raise InvalidInput(f"sys.{routine}: {what} is {shown}: {USAGE[routine]}.")


def _json(value: Any, routine: str, what: str) -> dict[str, Any]:
    """A JSON_OBJECT argument: a dict, JSON text of an object, or NULL (nothing)."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInput(f"sys.{routine}: {what} is not JSON: {USAGE[routine]}.") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"sys.{routine}: {what} must be a JSON object: {USAGE[routine]}.")
    return value


def _model(value: Any, routine: str, resolver: Resolver) -> str:
    """The model a handle names; MODEL_NOT_FOUND when there is none."""
    if value is None:
        raise InvalidInput(
            f"sys.{routine}: the model handle is NULL; set it (SET @model = 'handle') or "
            f"train one (CALL sys.ML_TRAIN(..., @model)): {USAGE[routine]}."
        )
    name = _text(value, routine, "the model handle").lower()
    if resolver.model(name) is None:
        raise ModelNotFound.named(name, resolver.model_names())
    return name


def table_parts(table: str) -> list[str]:
    """The parts of ``'schema.table'`` (each may be in backticks), one to three."""
    text = table.strip()
    if not _TABLE.fullmatch(text):
        raise InvalidInput(f"'{table}' is not a table name: write 'schema.table'.")
    parts = [p[1:-1] if p.startswith("`") else p.strip() for p in _TABLE_PART.findall(text)]
    if not all(parts):
        raise InvalidInput(f"'{table}' is not a table name: write 'schema.table'.")
    return parts


def _table(table: str) -> str:
    """``'schema.table'`` as a table reference (a datasource's table when ``schema`` names
    a datasource, else a schema of the session's datasource: the planner decides)."""
    return ".".join(ident(p) for p in table_parts(table))


def _training_table(table: str, resolver: Resolver) -> tuple[str, str]:
    """The datasource and the table reference it knows the training table by."""
    parts = table_parts(table)
    if len(parts) > 1 and resolver.datasource_dialect(parts[0].lower()) is not None:
        return parts[0].lower(), ".".join(ident(p) for p in parts[1:])
    return resolver.default_datasource, ".".join(ident(p) for p in parts)


def ident(name: str) -> str:
    """``name`` as an identifier: as it is when it is a plain word, else in backticks."""
    if "`" in name:
        raise InvalidInput(f"The name {name!r} holds a backtick, which no name here may.")
    if _PLAIN.fullmatch(name):
        toks = DIALECT.tokenize(name)
        if len(toks) == 1 and toks[0].token_type == TokenType.VAR:
            return name
    return f"`{name}`"


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_value(value: Any, column: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    raise InvalidInput(
        f"sys.ML_PREDICT_ROW: the value of '{column}' is {json.dumps(value)}; an input "
        "value is a 'string', a number, TRUE/FALSE or NULL."
    )


def _option_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return _string(str(value))


def using_clause(options: dict[str, Any]) -> str:
    """`` USING k = v, ...`` (nothing for no options); keys are words (``a.b`` too)."""
    if not options:
        return ""
    for key in options:
        if not _OPTION.fullmatch(key):
            raise InvalidOption(
                f"Option name '{key}' is not a word; option names are like 'topk'.", option=key
            )
    return " USING " + ", ".join(f"{k} = {_option_value(v)}" for k, v in options.items())
