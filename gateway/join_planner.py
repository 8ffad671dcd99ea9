"""Planning a prediction JOIN: which rows the datasource sends and what the models get.

``SELECT ... FROM ds.table AS t JOIN model AS p [JOIN model2 AS q] WHERE ... LIMIT n`` becomes a
``JoinPlan``. The planner writes the SQL the datasource will run: only the needed columns, the
table-side ``WHERE``, ``ORDER BY`` and ``LIMIT``, every literal a bound parameter. Conditions
that read a model output stay here as a post-filter, checked after prediction.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from byom.errors import InvalidInput, InvalidOption, UnsupportedStatement, did_you_mean
from catalog.records import PredictorRecord
from gateway import statements as st
from gateway.parser import query_options
from gateway.plans import MODEL_SIDE, TABLE_SIDE, JoinPlan, OutputColumn, Resolver
from gateway.sql_tree import (
    alias_of,
    bound_dialect,
    conjuncts,
    datasource_of,
    literal_value,
    strip_datasource,
    strip_datasource_columns,
)

# Per-statement tuning knobs of a JOIN (``... JOIN m USING batch_size=5000``).
JOIN_KNOBS = ("batch_size", "concurrency", "timeout", "engine", "workers")
# Where a JOIN runs (``USING engine='ray'``): in the gateway's process, or on Ray Data.
JOIN_ENGINES = ("local", "ray")


def plan_join(
    tree: exp.Select,
    table: exp.Expression,
    model_sources: list[tuple[exp.Expression, PredictorRecord]],
    resolver: Resolver,
) -> JoinPlan:
    for key in ("group", "having", "distinct"):
        if tree.args.get(key):
            raise UnsupportedStatement(f"{key.upper()} is not supported in a prediction JOIN.")
    for join in tree.args.get("joins") or []:
        if join.args.get("on") or join.args.get("using"):
            raise UnsupportedStatement(
                "A prediction JOIN pairs each row with its prediction: write "
                "`JOIN model AS p` without ON/USING."
            )
    models = [m for _, m in model_sources]
    model_aliases = {alias_of(src): i for i, (src, _) in enumerate(model_sources)}
    for i, (_, m) in enumerate(model_sources):
        model_aliases.setdefault(m.name, i)
    table_alias = alias_of(table)
    datasource, source = _table_side(table, resolver)
    dialect = resolver.datasource_dialect(datasource) or "sqlite"

    def side_of(column: exp.Column) -> tuple[str, int]:
        qualifier = column.table.lower()
        if qualifier:
            if qualifier in model_aliases:
                return "model", model_aliases[qualifier]
            if qualifier == table_alias:
                return "table", 0
            raise InvalidInput(
                f"Unknown table alias '{column.table}' in {column.sql()}; known: "
                + ", ".join(sorted({table_alias, *model_aliases}))
            )
        for i, m in enumerate(models):  # an unqualified name is a model output if it is a target
            if m.target and column.name == m.target:
                return "model", i
        return "table", 0

    outputs: list[OutputColumn] = []
    table_columns: list[str] = []
    star_table = False
    for item in tree.expressions:
        inner = item.this if isinstance(item, exp.Alias) else item
        if isinstance(inner, exp.Star):
            star_table = True
            outputs.append(OutputColumn("table", "*", "*"))
            outputs += [OutputColumn("model", "*", "*", i) for i in range(len(models))]
            continue
        if not isinstance(inner, exp.Column):
            raise UnsupportedStatement(
                f"Only columns and * can be selected in a prediction JOIN; got: {item.sql()}"
            )
        side, index = side_of(inner)
        if isinstance(inner.this, exp.Star):
            star_table |= side == "table"
            outputs.append(OutputColumn(side, "*", "*", index))
            continue
        outputs.append(OutputColumn(side, inner.name, item.alias_or_name, index))
        if side == "table":
            table_columns.append(inner.name)

    # WHERE: conditions on table columns only go to the datasource; the rest (they read a
    # model output) are checked here after prediction, on canonical column names.
    pushed: list[exp.Expression] = []
    post: list[exp.Expression] = []
    where = tree.args.get("where")
    for cond in conjuncts(where.this) if where is not None else []:
        if any(side_of(c)[0] == "model" for c in cond.find_all(exp.Column)):
            post.append(cond.copy())
        else:
            pushed.append(cond.copy())
    # The conditions are copies already: no further copies (each walks the whole tree).
    post_filter = exp.and_(*post, copy=False) if post else None
    post_table_columns: list[str] = []
    if post_filter is not None:
        for column in list(post_filter.find_all(exp.Column)):
            side, index = side_of(column)
            if side == "table":
                post_table_columns.append(column.name)
            canonical = TABLE_SIDE if side == "table" else f"{MODEL_SIDE}{index}"
            column.set("table", exp.to_identifier(canonical))
            column.set("db", None)  # mydb.schema.t.c -> __table__.c
            column.set("catalog", None)
    for ordered in (tree.args.get("order") or exp.Order()).expressions:
        if any(side_of(c)[0] == "model" for c in ordered.find_all(exp.Column)):
            raise UnsupportedStatement(
                "ORDER BY model output columns is not supported: it would hold every row in "
                "memory. ORDER BY table columns (pushed down to the datasource) instead."
            )
    limit = _limit_value(tree)

    # Columns the datasource must return: what is selected plus what each model reads.
    needed: list[str] | None = None
    if not star_table:
        needed = list(table_columns) + post_table_columns
        for m in models:
            features = [c for c in m.dtype_dict if c != m.target]
            if not features:  # the model did not say what it reads: send every column
                needed = None
                break
            needed += features
        if needed is not None:
            needed = list(dict.fromkeys(needed))

    sql, params = _source_sql(
        tree,
        source,
        table_alias,
        needed,
        (datasource, dialect),
        where=exp.and_(*pushed, copy=False) if pushed else None,
        push_limit=post_filter is None,  # a post-filter drops rows: the source can't limit
    )
    return JoinPlan(
        datasource=datasource,
        source_sql=sql,
        params=params,
        models=models,
        outputs=outputs,
        post_filter=post_filter,
        limit=limit,
    )


def _limit_value(tree: exp.Select) -> int | None:
    limit = tree.args.get("limit")
    if limit is None:
        return None
    value = literal_value(limit.expression)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"LIMIT must be a non-negative integer, got {limit.expression.sql()}")
    return value


def join_options(stmt: st.Query) -> tuple[dict[str, Any], dict[str, Any]]:
    """``... USING batch_size=5000, recommend='items', topk=10``: (the JOIN's knobs, the
    model parameters sent with each batch).

    Knobs are positive numbers (``workers`` a whole one), except ``engine``: 'local' or
    'ray'. Any other key goes to the model as a parameter, except one that looks like a
    misspelt knob (``batch_sise``), which is an error.
    """
    knobs: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, value in query_options(stmt).items():
        if key not in JOIN_KNOBS:
            hint = did_you_mean(key, JOIN_KNOBS)
            if hint:
                raise InvalidOption(
                    f"Unknown JOIN option '{key}'. Did you mean {hint}? "
                    f"Known: {', '.join(JOIN_KNOBS)}; other keys are sent to the model."
                )
            params[key] = value
            continue
        if key == "engine":
            knobs[key] = _engine_option(value)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise InvalidOption(f"JOIN option {key} must be a positive number, got {value!r}.")
        if key == "workers" and not isinstance(value, int):
            raise InvalidOption(f"JOIN option workers must be a whole number, got {value!r}.")
        knobs[key] = value
    return knobs, params


def _engine_option(value: Any) -> str:
    """``USING engine = 'local' | 'ray'`` (any case), else InvalidOption with a hint."""
    name = value.strip().lower() if isinstance(value, str) else None
    if name in JOIN_ENGINES:
        return name
    hint = did_you_mean(name, JOIN_ENGINES) if name else None
    raise InvalidOption(
        f"Unknown JOIN engine {value!r}."
        + (f" Did you mean {hint}?" if hint else "")
        + f" Known: {', '.join(JOIN_ENGINES)}.",
        option="engine",
        value=value,
        suggestion=hint,
    )


def _table_side(table: exp.Expression, resolver: Resolver) -> tuple[str, exp.Expression]:
    """(datasource, FROM item rewritten for the datasource) of the JOIN's table side."""
    if isinstance(table, exp.Subquery):
        inner_tables = list(table.find_all(exp.Table))
        names = {datasource_of(t, resolver)[0] for t in inner_tables} or {
            resolver.default_datasource
        }
        if len(names) > 1:
            raise UnsupportedStatement(
                "The JOIN's subquery reads from several datasources: " + ", ".join(sorted(names))
            )
        rewritten = table.copy()
        for t in rewritten.find_all(exp.Table):
            strip_datasource(t, resolver)
        return names.pop(), rewritten
    if not isinstance(table, exp.Table):
        raise UnsupportedStatement(f"Cannot read rows from {table.sql()}")
    datasource, _ = datasource_of(table, resolver)
    rewritten = table.copy()
    strip_datasource(rewritten, resolver)
    return datasource, rewritten


def _source_sql(
    tree: exp.Select,
    source: exp.Expression,
    alias: str,
    needed: list[str] | None,
    target: tuple[str, str],
    *,
    where: exp.Expression | None,
    push_limit: bool,
) -> tuple[str, dict[str, Any]]:
    """SELECT needed columns FROM source [WHERE] [ORDER BY] [LIMIT], literals bound.

    ``target`` is (datasource, dialect): columns written with the datasource's name
    (``mydb.schema.t.c``, in the WHERE, ORDER BY or a subquery) lose it, as tables do.
    """
    datasource, dialect = target
    if needed is None:
        columns: list[exp.Expression] = [
            exp.Column(this=exp.Star(), table=exp.to_identifier(alias))
        ]
    else:
        columns = [
            exp.Column(this=exp.to_identifier(name, quoted=True), table=exp.to_identifier(alias))
            for name in needed
        ]
    query = exp.select(*columns).from_(source.copy())
    if where is not None:
        query = query.where(where, copy=False)
    order = tree.args.get("order")
    if order is not None:
        query.set("order", order.copy())
    limit = tree.args.get("limit")
    if limit is not None and push_limit:
        query.set("limit", limit.copy())
    strip_datasource_columns(query, datasource)
    params = bind_literals(query)
    return query.sql(dialect=bound_dialect(dialect)), params


def bind_literals(query: exp.Expression) -> dict[str, Any]:
    """Replace every literal of ``query`` (but LIMIT's) with a ``:pN`` placeholder, in
    place; returns the values by name.

    Literals in a list (``IN (1, 2, ...)``) are swapped in one ``set`` per list: sqlglot's
    ``replace`` of one list element re-parents the whole list, which made a 20,000-value
    IN list take 20,000 x 20,000 steps (seconds of CPU on the event loop).
    """
    params: dict[str, Any] = {}
    lists: dict[tuple[int, str], tuple[exp.Expression, str, list[Any]]] = {}
    for node in list(query.find_all(exp.Literal, exp.Boolean)):
        if node.find_ancestor(exp.Limit) is not None:
            continue  # LIMIT n stays a number: not every database binds it
        name = f"p{len(params)}"
        params[name] = literal_value(node)
        placeholder = exp.Placeholder(this=name)
        parent, key, index = node.parent, node.arg_key, node.index
        if parent is None or index is None:
            node.replace(placeholder)  # a single child: no list to re-parent
            continue
        found = lists.get((id(parent), key))
        if found is None:
            found = lists[(id(parent), key)] = (parent, key, list(parent.args[key]))
        found[2][index] = placeholder
    for parent, key, items in lists.values():
        parent.set(key, items)
    return params
