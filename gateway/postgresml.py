"""PostgresML's fine-tuning forms, translated into the gateway's own statements.

- ``SELECT pgml.tune('Project', task => 'translation', relation_name => 's.kde4',
  y_column_name => 'es', model_name => '...', hyperparams => '{...}', test_size => 0.5,
  test_sampling => 'last')`` -> ``CREATE MODEL project FROM s (SELECT en AS source, es FROM
  kde4) PREDICT es USING task = 'translation', model_name = '...', hyperparams = {...},
  test_size = 0.5, test_sampling = 'last', source_lang = 'en', target_lang = 'es'``; on a
  project that exists, ``RETRAIN project ...`` (a new version; without relation_name, the
  last training rows). It answers what those answer (the model's row, training in the
  background) rather than PostgresML's ``(status, task, algorithm, deployed)`` once trained.
  ``automatic_deploy => false`` is ``active = false``; ``materialize_snapshot`` changes
  nothing here (the rows are read when the training starts).
- ``SELECT pgml.predict('Project', 'I love SQL') [AS name]`` -> ``SELECT <answer> AS predict
  FROM project WHERE text = 'I love SQL'``, the answer column named ``predict`` as
  PostgreSQL names it, or the alias. ``pgml.predict_proba`` answers a text classifier's
  ``<target>_proba`` (``{label: probability}``, a JSON object where PostgresML answers an
  array in class order). ``pgml.generate('Project', 'text'[, '{"max_new_tokens": 20}'])``
  is ``pgml.predict`` with the JSON ``config`` as per-query ``USING`` options; ``ARRAY['a',
  'b']`` answers one row per text, in order (PostgresML: one TEXT[]).
- Over a table: ``SELECT t.id, pgml.predict('Project', t.review) AS s FROM ds.t AS t WHERE
  ... LIMIT n`` -> ``SELECT t.id, p.<answer> AS s FROM (SELECT t.id, t.review AS text FROM
  ds.t AS t WHERE ... LIMIT n) AS t JOIN project AS p`` (the native JOIN: batched,
  streamed); every other selected item needs a name (a column, or ``AS``).

Names. A project name is free text in PostgresML; here it is a model name: lower-case,
every run of other characters than ``a-z0-9_`` one ``_`` ('IMDB Review Sentiment' is model
``imdb_review_sentiment``), the same in pgml.tune and the predictions. Task names are
PostgresML's or ours ('text-classification' is ``text_classification``). How pgml.tune
maps a relation's columns to a task's: ``gateway.postgresml_tune``.

A predicted row's values are PostgresML's ``features``: one value for a one-input model,
a JSON object of column -> value for question answering (``'{"question": "...",
"context": "..."}'``; ``::jsonb`` makes any model read it so), ``ARRAY[...]`` values in the
order of an external model's features.

Like ``gateway.heatwave``: ``resolve`` writes the native statement as SQL text
(``native_sql``), parsed like any other, so the native form's plan, rows and errors are
the PostgresML form's (an error names the translation).
"""

from __future__ import annotations

import json
from typing import Any

from sqlglot import exp

from builtin_models.tasks import get_task
from byom.errors import InvalidInput, ModelNotFound, UserError
from catalog.records import PredictorRecord
from gateway import statements as st
from gateway.heatwave import ident, using_clause
from gateway.parse_postgresml import INPUT_ARGUMENT, json_object_arg, model_name
from gateway.parse_tokens import DIALECT
from gateway.plans import Resolver
from gateway.postgresml_tune import ColumnResolver, tune_sql

# The output of a model registered without PREDICT (gateway.executor.predict's).
PREDICTION_COLUMN = "prediction"
# A text classifier's probabilities column (gateway.executor.builtin.proba_column).
PROBA_SUFFIX = "_proba"


def resolve(statement: st.Statement, resolver: ColumnResolver) -> st.Statement:
    """The gateway's own statement for a ``PostgresMLCall``; any other as it is."""
    if not isinstance(statement, st.PostgresMLCall):
        return statement
    return translate(statement, resolver)[0]


def translate(call: st.PostgresMLCall, resolver: ColumnResolver) -> tuple[st.Statement, str]:
    """The native statement of ``call`` parsed, and what to add to an error of it (planning
    it, running it): `` (pgml.f translated to: <native SQL>)``."""
    sql = native_sql(call, resolver)
    note = f" (pgml.{call.function} translated to: {sql})"
    from gateway.parser import parse_one  # the parser imports parse_postgresml

    try:
        return parse_one(sql), note
    except UserError as e:
        e.amend(after=note)
        raise


def native_sql(statement: st.PostgresMLCall, resolver: ColumnResolver) -> str:
    """The gateway's statement that does what ``statement`` does, as SQL text."""
    if statement.function == "tune":
        return tune_sql(statement, resolver)
    return _predict(statement, resolver)


def tuned_model(statement: st.Statement) -> str | None:
    """The model a ``pgml.tune`` call trains (for the CLI, which waits for it), else None."""
    if not isinstance(statement, st.PostgresMLCall) or statement.function != "tune":
        return None
    try:
        return model_name(statement.args.get("project_name"), "tune")
    except UserError:
        return None


# ---------------------------------------------------------- pgml.predict, predict_proba, generate


def _predict(call: st.PostgresMLCall, resolver: Resolver) -> str:
    function = call.function
    name = model_name(call.args["project_name"], function)
    record = resolver.model(name)
    if record is None:
        raise ModelNotFound.named(name, resolver.model_names())
    answer = _answer_column(record, function)
    value = call.args.get(INPUT_ARGUMENT[function])
    options = dict(call.using)
    if function == "generate":
        options.update(json_object_arg(call.args.get("config"), "config", function))
    using = using_clause(options)
    label = ident(call.label)
    if call.query is not None:
        return _over_table(call, record, answer, value) + using
    if function == "generate" and isinstance(value, list):
        return _batch(record, answer, label, value) + using
    row = _input_row(record, value, function)
    where = " AND ".join(f"{ident(c)} = {_sql_value(v, c)}" for c, v in row.items())
    return f"SELECT {ident(answer)} AS {label} FROM {ident(name)} WHERE {where}" + using


def _answer_column(record: PredictorRecord, function: str) -> str:
    """The model's output the function answers."""
    task = get_task(record.task) if record.kind == "builtin" and record.task else None
    if function == "predict_proba":
        if task is None or task.name != "text_classification":
            kind = f"a {task.name}" if task is not None else "an external"
            raise InvalidInput(
                f"pgml.predict_proba answers a text classifier's probabilities; "
                f"'{record.name}' is {kind} model: use pgml.predict.",
                model=record.name,
            )
        return f"{record.target or task.target_column}{PROBA_SUFFIX}"
    if task is not None and not task.answers_target:
        return PREDICTION_COLUMN
    return record.target or PREDICTION_COLUMN


def _inputs(record: PredictorRecord) -> list[str]:
    """The model's input columns: the task's, or an external model's declared features."""
    if record.kind == "builtin" and record.task:
        return list(get_task(record.task).input_columns)
    return [c for c in record.dtype_dict if c != record.target]


def _input_row(record: PredictorRecord, value: Any, function: str) -> dict[str, Any]:
    """PostgresML's features as the native WHERE's column = value pairs."""
    inputs = _inputs(record)
    key = INPUT_ARGUMENT[function]
    if isinstance(value, str) and len(inputs) != 1 and value.lstrip().startswith("{"):
        value = json_object_arg(value, key, function)
    if isinstance(value, dict):
        if not value:
            raise InvalidInput(f"pgml.{function}: {key} is an empty JSON object.")
        return value
    if isinstance(value, list):
        if len(value) != len(inputs):
            raise InvalidInput(
                f"pgml.{function}: {key} has {len(value)} values but model '{record.name}' "
                f"reads {len(inputs)} ({', '.join(inputs) or 'undeclared columns'}); pass "
                "them in that order, or as a JSON object of column -> value.",
                model=record.name,
            )
        return dict(zip(inputs, value, strict=True))
    if len(inputs) != 1:
        wanted = ", ".join(f'"{c}": ...' for c in inputs) or '"column": ...'
        raise InvalidInput(
            f"pgml.{function}: model '{record.name}' reads "
            f"{', '.join(inputs) or 'columns it did not declare'}; pass them as a JSON "
            f"object: '{{{wanted}}}'.",
            model=record.name,
        )
    return {inputs[0]: value}


def _batch(record: PredictorRecord, answer: str, label: str, texts: list[Any]) -> str:
    """``pgml.generate(p, ARRAY[...])``: one row per text, by a JOIN over the texts."""
    (column,) = _single_input(record, "generate")
    if not texts:
        raise InvalidInput("pgml.generate: the ARRAY of inputs is empty.")
    rows = " UNION ALL ".join(f"SELECT {_sql_value(t, column)} AS {ident(column)}" for t in texts)
    return f"SELECT p.{ident(answer)} AS {label} FROM ({rows}) AS t JOIN {ident(record.name)} AS p"


def _over_table(call: st.PostgresMLCall, record: PredictorRecord, answer: str, value: Any) -> str:
    """The form over a table's rows as the native JOIN: the SELECT becomes the table side,
    its call replaced by the input expression named as the model reads it."""
    assert call.query is not None
    (column,) = _single_input(record, call.function)
    inner = call.query.copy()
    inner.meta.clear()
    feature = value if isinstance(value, exp.Expression) else _literal(value, column)
    outer: list[str] = []
    items = []
    for item in inner.expressions:
        holder = item.this if isinstance(item, exp.Alias) else item
        if _is_call(holder):
            items.append(exp.alias_(feature.copy(), column))
            outer.append(f"p.{ident(answer)} AS {ident(call.label)}")
            continue
        items.append(item)
        if isinstance(item, exp.Star) or (
            isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
        ):
            outer.append("t.*")
        elif item.alias_or_name and (isinstance(item, exp.Alias | exp.Column)):
            outer.append(f"t.{ident(item.alias_or_name)}")
        else:
            raise InvalidInput(
                f"pgml.{call.function}: name the selected {item.sql(dialect=DIALECT)} with "
                "AS name: the row is read from the table, then joined with the prediction."
            )
    inner.set("expressions", items)
    return (
        f"SELECT {', '.join(outer)} FROM ({inner.sql(dialect=DIALECT)}) AS t "
        f"JOIN {ident(record.name)} AS p"
    )


def _single_input(record: PredictorRecord, function: str) -> list[str]:
    inputs = _inputs(record)
    if len(inputs) != 1:
        raise InvalidInput(
            f"pgml.{function} over several rows reads one column here, but model "
            f"'{record.name}' reads {', '.join(inputs) or 'columns it did not declare'}: "
            f"write the native JOIN, SELECT t.*, p.{record.target or PREDICTION_COLUMN} FROM "
            f"(SELECT {', '.join(f'... AS {c}' for c in inputs) or '...'} FROM ds.t) AS t JOIN "
            f"{record.name} AS p.",
            model=record.name,
        )
    return inputs


def _is_call(node: exp.Expression) -> bool:
    return (
        isinstance(node, exp.Dot)
        and isinstance(node.expression, exp.Anonymous)
        and node.this.name.lower() == "pgml"
    )


def _literal(value: Any, column: str) -> exp.Expression:
    from sqlglot import parse_one

    return parse_one(_sql_value(value, column), read=DIALECT)


# ------------------------------------------------------------------------------- values


def _sql_value(value: Any, column: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise InvalidInput(
        f"pgml: the value of '{column}' is {json.dumps(value)}; an input value is a "
        "'string', a number, TRUE/FALSE or NULL."
    )
