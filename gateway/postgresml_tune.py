"""``pgml.tune`` as the gateway's ``CREATE MODEL`` (or ``RETRAIN``): see ``gateway.postgresml``.

Columns. The built-in tasks read fixed input columns (``text``; ``question``, ``context``;
``source``), PostgresML any: the relation's columns are asked of the datasource (no rows
read). A task's input column present in the relation is read as it is; the one input that
is not is the one column left besides ``y_column_name`` (``en AS source``); any other
shape is an INVALID_INPUT that shows the native form to write. ``y_column_name`` stays the
model's target (``PREDICT es``): the answer column of the native forms. For text
generation ``y_column_name`` names the text itself. Translation takes ``source_lang`` /
``target_lang`` from ``hyperparams`` when given there (taken out of them), else from the
input and target columns' names when they are language codes (``en`` -> ``es``); else the
task's INVALID_OPTION naming ``source_lang`` stands.

In ``relation_name``, ``'schema.table'`` names datasource ``schema`` when one has that
name, else a table of the session's datasource (as in the HeatWave forms). Names go to the
datasource as they are when plain, else in double quotes (standard SQL).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from adapters.urls import redact_url
from builtin_models.tasks import Task, get_task
from byom.errors import InvalidInput, InvalidOption, did_you_mean
from catalog.records import PredictorRecord
from gateway import statements as st
from gateway.heatwave import ident, table_parts, using_clause
from gateway.parse_postgresml import USAGE, json_object_arg, model_name, text_arg
from gateway.plans import Resolver

# Column names read as language codes for translation (ISO 639-1, optional region).
_LANGUAGE = re.compile(r"([a-z]{2})(?:[-_][a-z]{2})?", re.IGNORECASE)
_PLAIN_COLUMN = re.compile(r"[a-z_][a-z0-9_]*")
# A relation name left unquoted, as PostgresML reads it (PostgreSQL folds its case).
_PLAIN_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ColumnResolver(Resolver, Protocol):
    """The planner's resolver, and the columns of a datasource's table (no rows read)."""

    def relation_columns(self, datasource: str, table: str) -> list[str]: ...


def tune_sql(call: st.PostgresMLCall, resolver: ColumnResolver) -> str:
    """``CREATE MODEL`` (a new project) or ``RETRAIN`` (one that exists) as SQL text."""
    args = call.args
    name = model_name(args["project_name"], "tune")
    existing = resolver.model(name)
    task = _task(args.get("task"), existing, name)
    options: dict[str, Any] = {"task": task.name}
    if args.get("model_name") is not None:
        options["model_name"] = text_arg(args["model_name"], "tune", "model_name")
    hyperparams = json_object_arg(args.get("hyperparams"), "hyperparams")
    options["hyperparams"] = hyperparams  # the languages may be taken out of it below
    if args.get("test_size") is not None:
        options["test_size"] = _number(args["test_size"], "test_size")
    if args.get("test_sampling") is not None:
        options["test_sampling"] = text_arg(args["test_sampling"], "tune", "test_sampling")
    for key in ("automatic_deploy", "materialize_snapshot"):
        if args.get(key) is not None and not isinstance(args[key], bool):
            raise InvalidOption(
                f"pgml.tune: {key} is true or false, got {args[key]!r}.", option=key
            )
    sql = f"{'RETRAIN' if existing is not None else 'CREATE MODEL'} {ident(name)}"
    relation = args.get("relation_name")
    if relation is None:
        if existing is None:
            raise InvalidInput(
                f"pgml.tune: project '{args['project_name']}' is new: name its rows with "
                f"relation_name and y_column_name: {USAGE['tune']}."
            )
    else:
        relation = text_arg(relation, "tune", "relation_name")
        y = args.get("y_column_name")
        y = None if y is None else text_arg(y, "tune", "y_column_name")
        datasource, table = _relation(relation, resolver)
        columns = resolver.relation_columns(datasource, table)
        items, target, sources = _training_columns(task, columns, y, relation)
        sql += f" FROM {ident(datasource)} (SELECT {', '.join(items)} FROM {table})"
        if target is not None:
            sql += f" PREDICT {ident(target)}"
        if "source_lang" in task.options:
            options.update(sorted(_languages(hyperparams, sources, target).items()))
    if not hyperparams:
        del options["hyperparams"]
    if args.get("automatic_deploy") is False:
        options["active"] = False
    return sql + using_clause(options)


def _task(given: Any, existing: PredictorRecord | None, name: str) -> Task:
    """The task ``pgml.tune`` names (PostgresML's spelling or ours), else the project's."""
    if given is not None:
        return get_task(text_arg(given, "tune", "task"))
    if existing is None:
        raise InvalidOption(
            f"pgml.tune: project '{name}' does not exist; name its task to create it: task "
            "=> 'text-classification' (or question-answering, summarization, translation, "
            "text-generation).",
            option="task",
        )
    if existing.kind != "builtin" or not existing.task:
        raise InvalidInput(
            f"pgml.tune: '{name}' is an external model served at "
            f"{redact_url(existing.url_predict)}; "
            "tune fine-tunes the built-in tasks (train it where it runs).",
            model=name,
        )
    return get_task(existing.task)


def _relation(relation: str, resolver: Resolver) -> tuple[str, str]:
    """The datasource and the table reference it knows ``relation`` by."""
    parts = table_parts(relation)
    datasource = resolver.default_datasource
    if len(parts) > 1 and resolver.datasource_dialect(parts[0].lower()) is not None:
        datasource, parts = parts[0].lower(), parts[1:]
    return datasource, ".".join(_column(p, _PLAIN_TABLE) for p in parts)


def _training_columns(
    task: Task, columns: list[str], y: str | None, relation: str
) -> tuple[list[str], str | None, dict[str, str]]:
    """The training SELECT's items, the PREDICT column, and which relation column each
    input is read from."""
    by_lower = {c.lower(): c for c in columns}
    y_col = None
    if y is not None:
        y_col = by_lower.get(y.lower())
        if y_col is None:
            hint = did_you_mean(y, columns)
            raise InvalidInput(
                f"pgml.tune: y_column_name '{y}' is not a column of {relation}."
                + (f" Did you mean {hint}?" if hint else "")
                + f" Its columns: {', '.join(columns) or 'none'}."
            )
    elif task.target_required:
        raise InvalidInput(
            f"pgml.tune: a {task.name} model learns a column: name it with y_column_name "
            f"=> '...' ({relation} has {', '.join(columns) or 'no columns'})."
        )
    inputs = list(task.input_columns)
    reads_target = getattr(task, "target_in_rows", True)
    if y_col is not None and (not reads_target or y_col.lower() in inputs):
        # Text generation: the y column is the text the model learns to continue.
        if reads_target and task.target_required or len(inputs) != 1:
            raise InvalidInput(
                f"pgml.tune: y_column_name '{y}' is the name of a {task.name} model's input "
                f"({', '.join(inputs)}); the target is another column."
            )
        return [_column(y_col) + _as(y_col, inputs[0])], None, {inputs[0]: y_col}
    sources: dict[str, str] = {}
    for name in inputs:
        found = by_lower.get(name)
        if found is not None and found != y_col:
            sources[name] = found
    left = [c for c in columns if c != y_col and c not in sources.values()]
    missing = [n for n in inputs if n not in sources]
    if len(missing) == 1 and len(left) == 1:
        sources[missing[0]] = left[0]
    elif missing:
        shape = f"{', '.join(inputs)}" + (f" and y_column_name '{y_col}'" if y_col else "")
        example = ", ".join(f"... AS {n}" for n in inputs) + (f", {y_col}" if y_col else "")
        predict = f" PREDICT {y_col}" if y_col else ""
        raise InvalidInput(
            f"pgml.tune: a {task.name} model reads {shape}; {relation} has "
            f"{', '.join(columns) or 'no columns'}, so which column is "
            f"{' and '.join(missing)} is not clear. Make a view of just those columns, or "
            f"write the native form: CREATE MODEL m FROM ds (SELECT {example} FROM "
            f"{relation}){predict} USING task = '{task.name}'."
        )
    items = [_column(sources[n]) + _as(sources[n], n) for n in inputs]
    if y_col is not None:
        items.append(_column(y_col))
    return items, y_col, sources


def _languages(
    hyperparams: dict[str, Any], sources: dict[str, str], target: str | None
) -> dict[str, Any]:
    """Translation's source_lang / target_lang: from hyperparams (taken out of them), else
    the source and target columns' names when they are language codes."""
    found = {k: hyperparams.pop(k) for k in ("source_lang", "target_lang") if k in hyperparams}
    guesses = {"source_lang": sources.get("source"), "target_lang": target}
    for key, column in guesses.items():
        if key not in found and column is not None and _LANGUAGE.fullmatch(column):
            found[key] = column
    return found


def _number(value: Any, key: str) -> int | float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOption(f"pgml.tune: {key} is a number, got {value!r}.", option=key)
    return value


def _column(name: str, pattern: re.Pattern[str] = _PLAIN_COLUMN) -> str:
    """A column (or table) name for the datasource's own SQL: as it is when plain, else in
    double quotes (standard SQL: PostgreSQL keeps the case of a quoted name)."""
    if pattern.fullmatch(name) and ident(name) == name:
        return name
    return '"' + name.replace('"', '""') + '"'


def _as(found: str, name: str) -> str:
    return "" if found == name else f" AS {name}"
