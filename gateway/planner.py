"""Statement -> plan: decide what a statement does, without doing any I/O.

The parser knows no names; the planner resolves them through a ``Resolver`` the executor
hands in (the executor is the only one that talks to the catalog). A ``SELECT`` becomes one
of three plans:

- ``PredictRowPlan``: ``SELECT ... FROM model WHERE a=1 AND b='x'`` (one row from literals);
- ``JoinPlan``: ``SELECT ... FROM ds.table AS t JOIN model AS p ...`` (batch prediction);
- ``NativePlan``: plain SQL for one datasource, passed through.

For a JOIN the planner writes the SQL the datasource will run: only the needed columns,
the table-side ``WHERE``, ``ORDER BY`` and ``LIMIT``, every literal a bound parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from adapters.registry import normalize_format, validate_options
from catalog.records import PredictorRecord
from gateway import statements as st
from gateway.errors import (
    DatasourceNotFound,
    InvalidInput,
    InvalidOption,
    ModelNotFound,
    UnsupportedStatement,
    did_you_mean,
)
from gateway.parser import query_options

DTYPES = ("integer", "float", "categorical", "binary", "text", "date", "datetime")
# USING options of CREATE PREDICTOR that the gateway itself understands.
KNOWN_OPTIONS = ("url.train", "url.predict", "format", "dtype_dict")
# Per-statement tuning knobs of a JOIN (``... JOIN m USING batch_size=5000``).
JOIN_KNOBS = ("batch_size", "concurrency", "timeout")
# Canonical qualifiers of the columns in ``JoinPlan.post_filter``.
TABLE_SIDE = "__table__"
MODEL_SIDE = "__model"
# Catalog tables a SELECT can read as ``mindsdb.<table>`` (or ``model.``/``models.``).
CATALOG_TABLES = ("models", "databases", "jobs", "queries")


class Resolver(Protocol):
    """Name lookups the planner needs; implemented by the executor over the catalog."""

    default_datasource: str

    def model(self, name: str) -> PredictorRecord | None: ...

    def model_names(self) -> list[str]: ...

    def datasource_dialect(self, name: str) -> str | None:
        """sqlglot dialect of datasource ``name``, or None when there is no such datasource."""
        ...

    def datasource_names(self) -> list[str]: ...


# ---------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class RegisterPlan:
    """Register an external predictor (and train it when ``url_train`` and a query are set)."""

    name: str
    namespace: str
    format: str
    url_predict: str
    url_train: str | None
    dtype_dict: dict[str, str]
    target: str | None
    datasource: str | None
    query: str | None
    options: dict[str, Any]


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


@dataclass(frozen=True)
class JoinPlan:
    datasource: str
    source_sql: str  # run on the datasource, with :pN bound parameters
    params: dict[str, Any]
    models: list[PredictorRecord]
    outputs: list[OutputColumn]
    options: dict[str, Any] = field(default_factory=dict)
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
    | WriteBackPlan
    | RegisterPlan
    | PredictRowPlan
    | JoinPlan
    | NativePlan
    | st.CreateDatabase
    | st.DropDatabase
    | st.DropModel
    | st.ShowDatabases
    | st.ShowModels
    | st.Describe
)


def plan(statement: st.Statement, resolver: Resolver) -> Plan:
    """Turn one parsed statement into a plan; raises ``UserError`` subclasses."""
    if isinstance(statement, st.CreatePredictor):
        return plan_register(statement)
    if isinstance(statement, st.Query):
        return _plan_query(statement, resolver)
    return statement


# ---------------------------------------------------------------------------- CREATE PREDICTOR


def plan_register(stmt: st.CreatePredictor) -> RegisterPlan:
    """Validate the USING options of an external predictor."""
    options = dict(stmt.options)
    if "model_name" in options or "task" in options:
        raise UnsupportedStatement(
            f"Model '{stmt.name}': built-in models (model_name/task) are not available in this "
            "release; register an external model with url.predict and format instead."
        )
    url_predict = options.pop("url.predict", None)
    url_train = options.pop("url.train", None)
    fmt = options.pop("format", None)
    dtype_dict = options.pop("dtype_dict", None) or {}
    if not url_predict:
        raise InvalidOption(
            f"Model '{stmt.name}' needs url.predict: add USING url.predict='http://host:port/...'"
        )
    for key, url in (("url.predict", url_predict), ("url.train", url_train)):
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("http://", "https://"))
        ):
            raise InvalidOption(f"{key} must be an http:// or https:// URL, got {url!r}")
    if not fmt:
        raise InvalidOption(
            f"Model '{stmt.name}' needs a format: add USING format='ray_serve' or format='mlflow'"
        )
    if not isinstance(dtype_dict, dict):
        raise InvalidOption(
            'dtype_dict must be a JSON object of column -> type, e.g. {"x": "integer"}'
        )
    for column, dtype in dtype_dict.items():
        if not isinstance(dtype, str) or dtype.lower() not in DTYPES:
            hint = did_you_mean(str(dtype), DTYPES)
            raise InvalidOption(
                f"dtype_dict: column '{column}' has unknown type {dtype!r}"
                + (f"; did you mean {hint}?" if hint else "")
                + f" Known types: {', '.join(DTYPES)}."
            )
    if url_train and not stmt.query:
        raise InvalidOption(
            f"Model '{stmt.name}' has url.train but no training data: add "
            "FROM <datasource> (SELECT ...) before PREDICT, or drop url.train for a "
            "predict-only model."
        )
    if stmt.query and not url_train:
        raise InvalidOption(
            f"Model '{stmt.name}' has FROM (training data) but no url.train to send it to: "
            "add USING url.train='http://...' or remove the FROM clause."
        )
    if url_train and not stmt.target:
        raise InvalidOption(
            f"Model '{stmt.name}' is trained, so it needs a target: add PREDICT <column>."
        )
    fmt = normalize_format(str(fmt))
    options = validate_options(fmt, options, model=stmt.name)  # e.g. payload='parquet'
    return RegisterPlan(
        name=stmt.name,
        namespace=stmt.namespace or "mindsdb",
        format=fmt,
        url_predict=url_predict,
        url_train=url_train,
        dtype_dict={str(k): str(v).lower() for k, v in dtype_dict.items()},
        target=stmt.target,
        datasource=stmt.datasource,
        query=stmt.query,
        options=options,
    )


# ---------------------------------------------------------------------------- SELECT & co


def _plan_query(stmt: st.Query, resolver: Resolver) -> Plan:
    tree = stmt.tree
    write = _plan_write_back(stmt, resolver)
    if write is not None:
        return write
    if isinstance(tree, exp.Select):
        sources = _select_sources(tree)
        models = [(t, _as_model(t, resolver)) for t in sources]
        model_sources = [(t, m) for t, m in models if m is not None]
        if model_sources:
            table_sources = [t for t, m in models if m is None]
            if not table_sources:
                if len(model_sources) > 1:
                    raise UnsupportedStatement(
                        "Joining two models needs a table to read rows from: "
                        "SELECT ... FROM ds.table AS t JOIN m1 AS a JOIN m2 AS b"
                    )
                return _plan_predict_row(tree, model_sources[0][1])
            if len(table_sources) > 1:
                raise UnsupportedStatement(
                    "A prediction JOIN reads from exactly one table (or subquery); "
                    f"found {len(table_sources)}."
                )
            join = _plan_join(tree, table_sources[0], model_sources, resolver)
            return replace(join, options=_join_options(stmt))
        catalog = _plan_catalog_query(tree, resolver)
        if catalog is not None:
            return catalog
        _check_unknown_model(sources, resolver)
    return _plan_native(stmt, resolver)


def _plan_write_back(stmt: st.Query, resolver: Resolver) -> WriteBackPlan | None:
    """CREATE TABLE ... AS / INSERT INTO ... whose SELECT is a prediction JOIN, else None."""
    tree = stmt.tree
    columns: list[str] | None = None
    if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "TABLE":
        mode, target, select = "create", tree.this, tree.expression
    elif isinstance(tree, exp.Insert):
        mode, target, select = "append", tree.this, tree.expression
        if isinstance(target, exp.Schema):
            columns = [c.name for c in target.expressions]
            target = target.this
    else:
        return None
    if not isinstance(select, exp.Select) or not isinstance(target, exp.Table):
        return None
    inner = _plan_query(st.Query(tree=select, sql=select.sql()), resolver)
    if isinstance(inner, NativePlan | CatalogQueryPlan):
        return None  # plain SQL: the datasource does it
    if not isinstance(inner, JoinPlan):
        raise UnsupportedStatement(
            "Write-back takes a prediction JOIN: CREATE TABLE ds.t AS SELECT ... "
            "FROM ds.src AS s JOIN model AS m"
        )
    datasource, _ = _datasource_of(target, resolver)
    schema = None
    if target.catalog:
        schema = target.db or None
    elif target.db and resolver.datasource_dialect(target.db.lower()) is None:
        schema = target.db
    if columns is not None and any(c.name == "*" for c in inner.outputs):
        raise UnsupportedStatement("INSERT INTO t (columns) needs named columns, not *.")
    if columns is not None and len(columns) != len(inner.outputs):
        raise InvalidInput(
            f"INSERT names {len(columns)} column(s) but the SELECT gives {len(inner.outputs)}."
        )
    return WriteBackPlan(
        datasource=datasource,
        table=target.name,
        schema=schema,
        mode=mode,
        join=replace(inner, options=_join_options(stmt)),
        columns=columns,
    )


def _plan_catalog_query(tree: exp.Select, resolver: Resolver) -> CatalogQueryPlan | None:
    """``SELECT ... FROM mindsdb.models`` and friends: the catalog as read-only tables."""
    tables = list(tree.find_all(exp.Table))
    hits = [
        t
        for t in tables
        if not t.catalog
        and (t.db or "").lower() in st.MODEL_NAMESPACES
        and t.name.lower() in CATALOG_TABLES
        and resolver.model(t.name.lower()) is None
    ]
    if not hits:
        return None
    if len(hits) != len(tables):
        raise UnsupportedStatement(
            "A catalog query reads only catalog tables ("
            + ", ".join(f"mindsdb.{t}" for t in CATALOG_TABLES)
            + "); copy them out first to combine them with other tables."
        )
    query = tree.copy()
    for t in query.find_all(exp.Table):
        t.set("db", None)
    return CatalogQueryPlan(sql=query.sql(dialect="sqlite"))


def _select_sources(tree: exp.Select) -> list[exp.Expression]:
    """The FROM item and every JOIN item of a SELECT, in order."""
    from_ = tree.args.get("from_") or tree.args.get("from")
    items: list[exp.Expression] = [from_.this] if from_ is not None else []
    items += [j.this for j in tree.args.get("joins") or []]
    return items


def _as_model(source: exp.Expression, resolver: Resolver) -> PredictorRecord | None:
    """The predictor a FROM/JOIN item names, or None when it is a table or subquery.

    ``byom``, ``mindsdb.byom``, ``model.byom`` and ``models.byom`` all name model ``byom``;
    ``ds.byom`` where ``ds`` is a datasource names a table.
    """
    if not isinstance(source, exp.Table) or source.catalog:
        return None
    qualifier = source.db.lower() if source.db else ""
    if qualifier and qualifier not in st.MODEL_NAMESPACES:
        return None
    return resolver.model(source.name.lower())


def _check_unknown_model(sources: Sequence[exp.Expression], resolver: Resolver) -> None:
    """``FROM mindsdb.byomm``: a namespace was given but no such model; say so clearly."""
    for source in sources:
        if isinstance(source, exp.Table) and not source.catalog:
            qualifier = (source.db or "").lower()
            if qualifier in st.MODEL_NAMESPACES and resolver.datasource_dialect(qualifier) is None:
                raise ModelNotFound.named(source.name.lower(), resolver.model_names())


def _alias(source: exp.Expression) -> str:
    return (source.alias or (source.name if isinstance(source, exp.Table) else "")).lower()


# ---------------------------------------------------------------------------- one row


def _plan_predict_row(tree: exp.Select, model: PredictorRecord) -> PredictRowPlan:
    for key in ("group", "having", "order", "joins"):
        if tree.args.get(key):
            raise UnsupportedStatement(
                f"{key.upper()} is not supported when predicting one row from model "
                f"'{model.name}'; use SELECT ... FROM {model.name} WHERE col=value AND ..."
            )
    where = tree.args.get("where")
    inputs: dict[str, Any] = {}
    if where is not None:
        for cond in _conjuncts(where.this):
            if not (isinstance(cond, exp.EQ) and isinstance(cond.this, exp.Column)):
                raise UnsupportedStatement(
                    f"Predicting one row from model '{model.name}' takes only "
                    f"column = value conditions joined by AND; got: {cond.sql()}"
                )
            inputs[cond.this.name] = literal_value(cond.expression)
    if not inputs:
        raise InvalidInput(
            f"Give the input row in WHERE: SELECT * FROM {model.name} WHERE col1=... AND col2=..."
        )
    outputs = [
        OutputColumn(side="model", name=name, label=label)
        for name, label in _plain_select_items(tree, model.name)
    ]
    return PredictRowPlan(model=model, inputs=inputs, outputs=outputs)


def _plain_select_items(tree: exp.Select, model: str) -> list[tuple[str, str]]:
    items = []
    for item in tree.expressions:
        inner = item.this if isinstance(item, exp.Alias) else item
        if isinstance(inner, exp.Star):
            items.append(("*", "*"))
        elif isinstance(inner, exp.Column) and isinstance(inner.this, exp.Star):
            items.append(("*", "*"))
        elif isinstance(inner, exp.Column):
            items.append((inner.name, item.alias_or_name))
        else:
            raise UnsupportedStatement(
                f"Only column names and * can be selected from model '{model}'; got: {item.sql()}"
            )
    return items


def literal_value(node: exp.Expression) -> Any:
    """The Python value of a literal in a condition; anything else is a clear error."""
    if isinstance(node, exp.Neg):
        value = literal_value(node.this)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value
    elif isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        try:
            return int(text)
        except ValueError:
            return float(text)
    elif isinstance(node, exp.Boolean):
        return bool(node.this)
    elif isinstance(node, exp.Null):
        return None
    raise UnsupportedStatement(
        f"Expected a literal value (number, 'text', TRUE, NULL), got {node.sql()}"
    )


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


# ---------------------------------------------------------------------------- JOIN


def _plan_join(
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
    model_aliases = {_alias(src): i for i, (src, _) in enumerate(model_sources)}
    for i, (_, m) in enumerate(model_sources):
        model_aliases.setdefault(m.name, i)
    table_alias = _alias(table)
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
    for cond in _conjuncts(where.this) if where is not None else []:
        if any(side_of(c)[0] == "model" for c in cond.find_all(exp.Column)):
            post.append(cond.copy())
        else:
            pushed.append(cond.copy())
    post_filter = exp.and_(*post) if post else None
    post_table_columns: list[str] = []
    if post_filter is not None:
        for column in list(post_filter.find_all(exp.Column)):
            side, index = side_of(column)
            if side == "table":
                post_table_columns.append(column.name)
            canonical = TABLE_SIDE if side == "table" else f"{MODEL_SIDE}{index}"
            column.set("table", exp.to_identifier(canonical))
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
        dialect,
        where=exp.and_(*pushed) if pushed else None,
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


def _join_options(stmt: st.Query) -> dict[str, Any]:
    """``... JOIN m USING batch_size=5000, concurrency=4``: positive integer knobs only."""
    options = query_options(stmt)
    for key, value in options.items():
        if key not in JOIN_KNOBS:
            hint = did_you_mean(key, JOIN_KNOBS)
            raise InvalidOption(
                f"Unknown JOIN option '{key}'."
                + (f" Did you mean {hint}?" if hint else "")
                + f" Known: {', '.join(JOIN_KNOBS)}."
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise InvalidOption(f"JOIN option {key} must be a positive number, got {value!r}.")
    return options


def _table_side(table: exp.Expression, resolver: Resolver) -> tuple[str, exp.Expression]:
    """(datasource, FROM item rewritten for the datasource) of the JOIN's table side."""
    if isinstance(table, exp.Subquery):
        inner_tables = list(table.find_all(exp.Table))
        names = {_datasource_of(t, resolver)[0] for t in inner_tables} or {
            resolver.default_datasource
        }
        if len(names) > 1:
            raise UnsupportedStatement(
                "The JOIN's subquery reads from several datasources: " + ", ".join(sorted(names))
            )
        rewritten = table.copy()
        for t in rewritten.find_all(exp.Table):
            _strip_datasource(t, resolver)
        return names.pop(), rewritten
    if not isinstance(table, exp.Table):
        raise UnsupportedStatement(f"Cannot read rows from {table.sql()}")
    datasource, _ = _datasource_of(table, resolver)
    rewritten = table.copy()
    _strip_datasource(rewritten, resolver)
    return datasource, rewritten


def _datasource_of(table: exp.Table, resolver: Resolver) -> tuple[str, bool]:
    """(datasource name, whether the name was written) for a table reference."""
    if table.catalog:
        name = table.catalog.lower()
        if resolver.datasource_dialect(name) is None:
            raise DatasourceNotFound.named(name, resolver.datasource_names())
        return name, True
    if table.db and resolver.datasource_dialect(table.db.lower()) is not None:
        return table.db.lower(), True
    return resolver.default_datasource, False


def _strip_datasource(table: exp.Table, resolver: Resolver) -> None:
    """``ds.schema.t`` -> ``schema.t`` and ``ds.t`` -> ``t``: the datasource sees its own names."""
    if table.catalog:
        table.set("catalog", None)
    elif table.db and resolver.datasource_dialect(table.db.lower()) is not None:
        table.set("db", None)


def _source_sql(
    tree: exp.Select,
    source: exp.Expression,
    alias: str,
    needed: list[str] | None,
    dialect: str,
    *,
    where: exp.Expression | None,
    push_limit: bool,
) -> tuple[str, dict[str, Any]]:
    """SELECT needed columns FROM source [WHERE] [ORDER BY] [LIMIT], literals bound."""
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
        query = query.where(where)
    order = tree.args.get("order")
    if order is not None:
        query.set("order", order.copy())
    limit = tree.args.get("limit")
    if limit is not None and push_limit:
        query.set("limit", limit.copy())
    params: dict[str, Any] = {}
    for node in list(query.find_all(exp.Literal, exp.Boolean)):
        if node.find_ancestor(exp.Limit) is not None:
            continue  # LIMIT n stays a number: not every database binds it
        name = f"p{len(params)}"
        params[name] = literal_value(node)
        node.replace(exp.Placeholder(this=name))
    return query.sql(dialect=_bound_dialect(dialect)), params


_BOUND_DIALECTS: dict[str, type[Dialect]] = {}


def _bound_dialect(name: str) -> type[Dialect]:
    """A subclass of dialect ``name`` that writes placeholders as SQLAlchemy's ``:name``."""
    if name not in _BOUND_DIALECTS:
        base = type(Dialect.get_or_raise(name))

        class Generator(base.Generator):  # type: ignore[name-defined,misc]
            def placeholder_sql(self, expression: exp.Placeholder) -> str:
                return f":{expression.name}"

        _BOUND_DIALECTS[name] = type(f"Bound{base.__name__}", (base,), {"Generator": Generator})
    return _BOUND_DIALECTS[name]


# ---------------------------------------------------------------------------- pass-through


def _plan_native(stmt: st.Query, resolver: Resolver) -> NativePlan:
    """Plain SQL: find the one datasource it addresses and strip that prefix."""
    tables = list(stmt.tree.find_all(exp.Table))
    named = {}
    for t in tables:
        name, written = _datasource_of(t, resolver)
        if written:
            named[name] = t
    if not named:
        # Nothing qualified: the embedded datasource gets the text exactly as written.
        return NativePlan(
            datasource=resolver.default_datasource,
            sql=stmt.sql,
            bare_tables=tuple(t.name.lower() for t in tables if not t.db),
        )
    if len(named) > 1:
        raise UnsupportedStatement(
            "A pass-through statement must address one datasource; this one names "
            + ", ".join(sorted(named))
        )
    datasource = next(iter(named))
    tree = stmt.tree.copy()
    for t in tree.find_all(exp.Table):
        _strip_datasource(t, resolver)
    dialect = resolver.datasource_dialect(datasource) or "sqlite"
    return NativePlan(datasource=datasource, sql=tree.sql(dialect=dialect))


__all__ = [
    "WriteBackPlan",
    "CATALOG_TABLES",
    "CatalogQueryPlan",
    "JoinPlan",
    "NativePlan",
    "OutputColumn",
    "Plan",
    "PredictRowPlan",
    "RegisterPlan",
    "Resolver",
    "literal_value",
    "plan",
    "plan_register",
]
