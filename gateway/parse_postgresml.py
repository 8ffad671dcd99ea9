"""Reading PostgresML's function forms (``gateway.postgresml`` translates them).

Pure and without a session: a ``SELECT`` that calls ``pgml.tune``, ``pgml.predict``,
``pgml.predict_proba`` or ``pgml.generate`` becomes a ``PostgresMLCall``: the function, its
arguments under PostgresML's names (positional ones named by PostgresML's signatures,
``name => value`` as written), the answer's column name (``AS`` alias, else the function's
name, as PostgreSQL names it), and for the form over a table's rows the SELECT itself.

Argument values are Python values: a 'string', a number, TRUE/FALSE, NULL, ``ARRAY[...]`` a
list, ``'{...}'::jsonb`` (or ``::json``) the parsed JSON; an expression that reads a
table's columns (``t.review``, ``title || ' ' || body``) stays a sqlglot expression, for the
form over a table. The call must be a column of its own in a top-level SELECT (``SELECT
pgml.predict(...) [AS name] [FROM ...]``) or the table function of ``SELECT * FROM
pgml.tune(...)``; anywhere else, and PostgresML's other functions (``pgml.train``,
``pgml.embed``, ...), are refused by name (``parse_foreign``). The checks of argument
values that need no session (``text_arg``, ``json_object_arg``, ``model_name``) are here
too, for the translation's use.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from byom.errors import InvalidInput, InvalidOption, UnsupportedStatement, did_you_mean
from gateway import parse_foreign
from gateway import statements as st
from gateway.parse_query import USING_META
from gateway.parse_query import query as _query
from gateway.parse_tokens import word

# PostgresML's signatures (pgml-extension/src/api.rs): the argument names in order.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "tune": (
        "project_name", "task", "relation_name", "y_column_name", "model_name", "hyperparams",
        "test_size", "test_sampling", "automatic_deploy", "materialize_snapshot",
    ),
    "predict": ("project_name", "features"),
    "predict_proba": ("project_name", "features"),
    "generate": ("project_name", "inputs", "config"),
}  # fmt: skip
# Other names of an argument: PostgresML's predict(project_name, row) overload, and
# pgml.transform's ``args`` for generation options.
ALIASES = {"predict": {"row": "features"}, "predict_proba": {"row": "features"},
           "generate": {"args": "config"}}  # fmt: skip
TRANSLATED = tuple(SIGNATURES)
# pgml.train's arguments that pgml.tune has not: fine-tuning here searches no hyperparameters.
TRAIN_ONLY = ("algorithm", "search", "search_params", "search_args", "runtime", "preprocess")
# The argument that holds the model's input, per function (None: pgml.tune).
INPUT_ARGUMENT = {"predict": "features", "predict_proba": "features", "generate": "inputs"}
USAGE = {
    "tune": (
        "SELECT pgml.tune('project', task => 'text-classification', relation_name => "
        "'table', y_column_name => 'label', model_name => '...', hyperparams => '{...}', "
        "test_size => 0.2, test_sampling => 'last')"
    ),
    "predict": "SELECT pgml.predict('project', 'text') [AS name] [FROM ...]",
    "predict_proba": "SELECT pgml.predict_proba('project', 'text') [AS name] [FROM ...]",
    "generate": (
        "SELECT pgml.generate('project', 'text' | ARRAY['a', 'b'], '{\"max_new_tokens\": "
        "32}'::jsonb) [AS name] [FROM ...]"
    ),
}
_JSON_TYPES = (exp.DataType.Type.JSON, exp.DataType.Type.JSONB)


def is_pgml(toks: list[Token]) -> bool:
    """A SELECT that calls one of the translated functions (``pgml . name (``)."""
    if not toks or toks[0].token_type != TokenType.SELECT:
        return False
    for i in range(len(toks) - 3):
        if (
            word(toks[i]) == "PGML"
            and toks[i + 1].token_type == TokenType.DOT
            and toks[i + 2].text.lower() in TRANSLATED
            and toks[i + 3].token_type == TokenType.L_PAREN
        ):
            return True
    return False


def statement(sql: str, toks: list[Token]) -> st.PostgresMLCall:
    """The ``PostgresMLCall`` of a SELECT that calls a translated pgml function."""
    tree = _query(sql, toks).tree
    text = sql[toks[0].start : toks[-1].end + 1]
    calls = _calls(tree)
    other = [name for name, _ in calls if name not in TRANSLATED]
    if other:
        raise parse_foreign.pgml_refusal(other[0])
    if len(calls) > 1:
        raise UnsupportedStatement(
            f"This SELECT calls {len(calls)} pgml functions; here one translates per "
            "statement: send one SELECT per call (or write the native JOIN, which answers "
            "several outputs of a model at once)."
        )
    ((function, call),) = calls
    if not isinstance(tree, exp.Select):
        raise _misplaced(function)
    using = dict(tree.meta.get(USING_META) or {})
    args = _arguments(function, call)
    if isinstance(call.parent, exp.Table):  # SELECT * FROM pgml.tune(...) [AS x]
        table = call.parent
        if (
            table is not tree.args["from_"].this
            or [type(e) for e in tree.expressions] != [exp.Star]
            or any(tree.args.get(k) for k in ("joins", "where", "group", "order", "limit"))
        ):
            raise _misplaced(function)
        label = table.alias or function
        return _checked(st.PostgresMLCall(function, args, label, None, using, text))
    dot = call.parent
    holder = dot.parent if isinstance(dot.parent, exp.Alias) else dot
    label = holder.alias if holder is not dot else function
    if holder.parent is not tree or not any(e is holder for e in tree.expressions):
        raise _misplaced(function)
    if tree.args.get("from_") is None:
        if len(tree.expressions) > 1 or any(
            tree.args.get(k) for k in ("where", "group", "order", "limit", "having")
        ):
            raise UnsupportedStatement(
                f"pgml.{function} without FROM translates as a SELECT of its own: "
                f"{USAGE[function]}."
            )
        return _checked(st.PostgresMLCall(function, args, label, None, using, text))
    if function == "tune":
        raise UnsupportedStatement(
            f"pgml.tune reads its rows from relation_name, not from a FROM clause: {USAGE['tune']}."
        )
    return _checked(st.PostgresMLCall(function, args, label, tree, using, text))


def _calls(tree: exp.Expression) -> list[tuple[str, exp.Anonymous]]:
    """Every ``pgml.<name>(...)`` in ``tree``: as a value (a ``Dot``) or a table function."""
    found = []
    for node in tree.find_all(exp.Anonymous):
        parent = node.parent
        if isinstance(parent, exp.Dot) and parent.expression is node:
            schema = parent.this
            if isinstance(schema, exp.Identifier | exp.Column) and schema.name.lower() == "pgml":
                found.append((node.name.lower(), node))
    for table in tree.find_all(exp.Table):
        node = table.this
        if (table.db or "").lower() == "pgml" and isinstance(node, exp.Func):
            if not isinstance(node, exp.Anonymous):  # sqlglot knows PREDICT(...) (BigQuery's)
                values = [v for v in node.args.values() if v is not None]
                flat = [x for v in values for x in (v if isinstance(v, list) else [v])]
                node = exp.Anonymous(this=node.key, expressions=[x.copy() for x in flat])
                table.set("this", node)
            found.append((node.name.lower(), node))
    return found


def _misplaced(function: str) -> UnsupportedStatement:
    return UnsupportedStatement(
        f"pgml.{function} translates only as a column of its own in a SELECT: {USAGE[function]}."
    )


def _arguments(function: str, call: exp.Anonymous) -> dict[str, Any]:
    """The call's arguments under PostgresML's names; a mistake is an error naming the
    function's signature."""
    names = SIGNATURES[function]
    aliases = ALIASES.get(function, {})
    usage = USAGE[function]
    args: dict[str, Any] = {}
    named = False
    for position, node in enumerate(call.expressions):
        if isinstance(node, exp.Kwarg | exp.PropertyEQ):
            named = True
            given = node.this.name.lower()
            key = aliases.get(given, given)
            if key not in names:
                hint = did_you_mean(given, [*names, *aliases])
                train = function == "tune" and given in TRAIN_ONLY
                raise InvalidOption(
                    f"pgml.{function} has no argument '{given}'."
                    + (f" Did you mean {hint}?" if hint else "")
                    + (
                        " It is pgml.train's: fine-tuning searches no algorithm or "
                        "hyperparameters here."
                        if train
                        else ""
                    )
                    + f" Its arguments: {', '.join(names)}.",
                    option=given,
                    suggestion=hint,
                )
            value_node = node.expression
        else:
            if named:
                raise InvalidInput(
                    f"pgml.{function}: a positional argument follows a named one (name => "
                    f"value); write the positional ones first: {usage}."
                )
            if position >= len(names):
                raise InvalidInput(
                    f"pgml.{function} takes at most {len(names)} arguments but found "
                    f"{len(call.expressions)}: {usage}."
                )
            key = names[position]
            value_node = node
        if key in args:
            raise InvalidInput(f"pgml.{function}: argument {key} is given twice: {usage}.")
        args[key] = _value(value_node, function, key)
    return args


def _value(node: exp.Expression, function: str, key: str) -> Any:
    """A literal argument as a Python value; an expression that reads columns as it is."""
    if isinstance(node, exp.Paren):
        return _value(node.this, function, key)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        return _number(node.this)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return -_number(node.this.this)
    if isinstance(node, exp.Cast):
        inner = _value(node.this, function, key)
        if isinstance(inner, exp.Expression):
            return node  # a column cast: for the form over a table
        if node.to.this in _JSON_TYPES and isinstance(inner, str):
            try:
                return json.loads(inner)
            except ValueError as e:
                raise InvalidInput(f"pgml.{function}: {key} is not JSON ({e}).") from None
        return inner
    if isinstance(node, exp.Array):
        values = [_value(v, function, key) for v in node.expressions]
        if any(isinstance(v, exp.Expression) for v in values):
            raise InvalidInput(
                f"pgml.{function}: {key} is an ARRAY of values here ('a', 'b'); to read a "
                "table's rows, pass the column itself: "
                f"SELECT pgml.{function}('project', t.column) FROM ds.t AS t."
            )
        return values
    if node.find(exp.Column) is not None:
        return node  # reads a table's columns: the form over a table
    raise InvalidInput(
        f"pgml.{function}: {key} must be a 'string', a number, TRUE/FALSE, NULL, ARRAY[...] "
        f"or '{{...}}'::jsonb here, not {node.sql()}: {USAGE[function]}."
    )


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _checked(call: st.PostgresMLCall) -> st.PostgresMLCall:
    """A call whose column references stand only where a row's value may: the model's
    input, in a SELECT with a FROM."""
    if "project_name" not in call.args:
        raise InvalidInput(f"pgml.{call.function} needs project_name: {USAGE[call.function]}.")
    for key, value in call.args.items():
        if not isinstance(value, exp.Expression):
            continue
        if key != INPUT_ARGUMENT.get(call.function):
            raise InvalidInput(
                f"pgml.{call.function}: {key} must be a value, not {value.sql()}: "
                f"{USAGE[call.function]}."
            )
        if call.query is None:
            raise InvalidInput(
                f"pgml.{call.function}: {value.sql()} reads a column, but the SELECT has no "
                f"FROM: SELECT pgml.{call.function}('project', t.column) FROM ds.t AS t."
            )
    return call


def model_name(project: Any, function: str) -> str:
    """The model a PostgresML project name stands for: lower-case, each run of other
    characters than ``a-z0-9_`` one ``_`` ('IMDB Review' is ``imdb_review``)."""
    text = text_arg(project, function, "project_name")
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    if not name:
        raise InvalidInput(f"pgml.{function}: project_name {text!r} has no letter or digit.")
    return name


def text_arg(value: Any, function: str, key: str) -> str:
    """A 'string' argument, stripped; anything else is an InvalidInput naming it."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    shown = "NULL" if value is None else repr(value)
    raise InvalidInput(f"pgml.{function}: {key} is {shown}; it is a 'string': {USAGE[function]}.")


def json_object_arg(value: Any, key: str, function: str = "tune") -> dict[str, Any]:
    """A JSON argument (text or ``::jsonb``): an object, NULL or empty text for none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise InvalidOption(f"pgml.{function}: {key} is not JSON ({e}).", option=key) from None
    if not isinstance(value, dict):
        raise InvalidOption(
            f"pgml.{function}: {key} must be a JSON object, e.g. '{{\"max_new_tokens\": 32}}'.",
            option=key,
        )
    return dict(value)
