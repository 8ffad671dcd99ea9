"""Statement -> plan: decide what a statement does, without doing any I/O.

The parser knows no names; the planner resolves them through a ``Resolver`` the executor
hands in (the executor is the only one that talks to the catalog). A ``SELECT`` becomes one
of three plans:

- ``PredictRowPlan``: ``SELECT ... FROM model WHERE a=1 AND b='x'`` (one row from literals);
- ``JoinPlan``: ``SELECT ... FROM ds.table AS t JOIN model AS p ...`` (batch prediction);
- ``NativePlan``: plain SQL for one datasource, passed through.

The plans are in ``gateway.plans``; planning a JOIN is ``gateway.join_planner``'s job, and
planning the statements about names (USE, SHOW, DESCRIBE, projects) ``gateway.plan_catalog``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlglot import exp

from adapters.registry import FORMATS, normalize_format, validate_options
from byom.errors import (
    InvalidInput,
    InvalidOption,
    ModelNotFound,
    UnsupportedStatement,
    did_you_mean,
)
from catalog.records import PredictorRecord, PredictorSpec, project_key
from gateway import builtin_planner as builtin
from gateway import egress
from gateway import plan_catalog as names
from gateway import statements as st
from gateway.join_planner import join_options, plan_join
from gateway.plans import (
    CatalogQueryPlan,
    JoinPlan,
    NativePlan,
    OutputColumn,
    Plan,
    PredictRowPlan,
    RegisterPlan,
    Resolver,
    WriteBackPlan,
)
from gateway.sql_tree import (
    conjuncts,
    datasource_of,
    literal_value,
    select_sources,
    strip_datasource,
    strip_datasource_columns,
)

DTYPES = ("integer", "float", "categorical", "binary", "text", "date", "datetime")
# USING options of CREATE PREDICTOR that the gateway itself understands.
KNOWN_OPTIONS = ("url.train", "url.predict", "format", "dtype_dict")
# First words of a training query: it must read rows, never change them (it is committed).
QUERY_WORDS = ("SELECT", "WITH", "VALUES", "(")
# Catalog tables a SELECT can read as ``mindsdb.<table>`` (or ``model.``/``models.``).
CATALOG_TABLES = (
    "models", "models_versions", "databases", "jobs", "queries", "projects", "model_catalog",
    "audit", "tokens",
)  # fmt: skip


def plan(statement: st.Statement, resolver: Resolver) -> Plan:
    """Turn one parsed statement into a plan; raises ``UserError`` subclasses."""
    match statement:
        case st.CreatePredictor():
            target = names.plan_model_target(statement, resolver)
            if builtin.is_builtin(target):
                return builtin.plan_create(target, target.namespace or resolver.default_project)
            return replace(
                plan_register(target),
                or_replace=statement.or_replace,
                if_not_exists=statement.if_not_exists,
            )
        case st.Retrain():
            return builtin.plan_retrain(statement, resolver)
        case st.Evaluate():
            return builtin.plan_evaluate(statement, resolver)
        case st.CancelTraining():
            return builtin.plan_cancel(statement, resolver)
        case st.Query() if builtin.is_version_switch(statement.tree):
            return builtin.plan_version_switch(statement.tree, resolver)  # type: ignore[arg-type]
        case st.Query():
            names.refuse_show_command(statement, resolver)
            return _plan_query(statement, resolver)
        case st.Use():
            return names.plan_use(statement, resolver)
        case st.SetVariables():
            return statement
        case st.Describe():
            return names.plan_describe(statement, resolver)
        case st.DropModel():
            return names.plan_drop_model(statement, resolver)
        case st.ShowModels():
            return names.plan_show_models(statement, resolver)
        case st.ShowTables():
            return names.plan_show_tables(statement, resolver)
        case st.CreateProject():
            return names.plan_create_project(statement, resolver)
        case st.DropProject():
            return names.plan_drop_project(statement, resolver)
        case st.CreateDatabase():
            return names.plan_create_database(statement, resolver)
        case st.DropDatabase():
            return names.plan_drop_database(statement, resolver)
    return statement


# ---------------------------------------------------------------------------- CREATE PREDICTOR


def plan_register(stmt: st.CreatePredictor) -> RegisterPlan:
    """Validate the USING options of an external predictor: everything that can be checked
    without a call to the model or the datasource (the executor runs the training query's
    probe)."""
    options = dict(stmt.options)
    url_predict = options.pop("url.predict", None)
    url_train = options.pop("url.train", None)
    fmt = options.pop("format", None)
    dtype_dict = options.pop("dtype_dict", None) or {}
    if not url_predict:
        raise InvalidOption(
            f"Model '{stmt.name}' needs url.predict: add USING url.predict='http://host:port/...'"
        )
    for key, url in (("url.predict", url_predict), ("url.train", url_train)):
        if url is not None and not isinstance(url, str):
            raise InvalidOption(f"{key} must be an http:// or https:// URL, got {url!r}")
        if url is not None:
            egress.check_url(key, url)  # scheme, credentials, metadata, BYOM_ALLOWED_HOSTS
    if not fmt:
        raise InvalidOption(
            f"Model '{stmt.name}' needs a format: add USING format='ray_serve' or format='mlflow'"
        )
    fmt = normalize_format(str(fmt))
    if url_train and not FORMATS[fmt].trains:
        raise InvalidOption(
            f"Model '{stmt.name}': format '{fmt}' is predict-only (its server has no training "
            "route), so it cannot take url.train: train the model outside and register it "
            "with url.predict only (no url.train, no FROM clause).",
            model=stmt.name,
            option="url.train",
            format=fmt,
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
        if not str(column).strip():
            raise InvalidOption(
                f"Model '{stmt.name}': dtype_dict has an empty column name; every key must "
                'name a column, e.g. {"x": "integer"}.',
                model=stmt.name,
                option="dtype_dict",
            )
    if url_train and not (stmt.query or "").strip():
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
    if url_train and dtype_dict and stmt.target not in dtype_dict:
        hint = did_you_mean(str(stmt.target), [str(k) for k in dtype_dict])
        raise InvalidOption(
            f"Model '{stmt.name}': the target '{stmt.target}' (PREDICT) is not in dtype_dict"
            + (f"; did you mean {hint}?" if hint else ".")
            + f' Add its type, e.g. "{stmt.target}": "categorical" (dtype_dict has '
            + ", ".join(str(k) for k in dtype_dict)
            + ").",
            model=stmt.name,
            option="dtype_dict",
        )
    if stmt.query and not _reads_rows(stmt.query):
        raise InvalidInput(
            f"Model '{stmt.name}': the training query must be a SELECT (it only reads rows); "
            f"got: {stmt.query.strip()[:80]}",
            model=stmt.name,
        )
    options = validate_options(fmt, options, model=stmt.name)  # e.g. payload='parquet'
    spec = PredictorSpec(
        name=stmt.name,
        namespace=stmt.namespace or "mindsdb",
        kind="external",
        format=fmt,
        url_predict=url_predict,
        url_train=url_train,
        dtype_dict={str(k): str(v).lower() for k, v in dtype_dict.items()},
        target=stmt.target,
        training_datasource=stmt.datasource,
        training_query=stmt.query,
        options=options,
    )
    return RegisterPlan(spec=spec)


def _reads_rows(query: str) -> bool:
    """True when ``query`` starts like a query (SELECT, WITH, VALUES or a parenthesis),
    comments skipped."""
    text = query
    while True:
        text = text.lstrip()
        if text.startswith("--"):
            text = text.partition("\n")[2]
        elif text.startswith("/*"):
            text = text.partition("*/")[2]
        else:
            break
    return text.upper().startswith(QUERY_WORDS)


# ---------------------------------------------------------------------------- SELECT & co


def _plan_query(stmt: st.Query, resolver: Resolver) -> Plan:
    tree = stmt.tree
    write = _plan_write_back(stmt, resolver)
    if write is not None:
        return write
    if isinstance(tree, exp.Select):
        sources = select_sources(tree)
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
                row = _plan_predict_row(tree, model_sources[0][1])
                return replace(row, model_params=join_options(stmt)[1])
            if len(table_sources) > 1:
                raise UnsupportedStatement(
                    "A prediction JOIN reads from exactly one table (or subquery); "
                    f"found {len(table_sources)}."
                )
            join = plan_join(tree, table_sources[0], model_sources, resolver)
            knobs, params = join_options(stmt)
            return replace(join, options=knobs, model_params=params)
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
    datasource, _ = datasource_of(target, resolver)
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
    knobs, params = join_options(stmt)
    return WriteBackPlan(
        datasource=datasource,
        table=target.name,
        schema=schema,
        mode=mode,
        join=replace(inner, options=knobs, model_params=params),
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


def _as_model(source: exp.Expression, resolver: Resolver) -> PredictorRecord | None:
    """The predictor a FROM/JOIN item names, or None when it is a table or subquery.

    ``byom``, ``mindsdb.byom``, ``model.byom`` and ``models.byom`` all name model ``byom``
    (in project mindsdb), ``proj.byom`` model ``byom`` of project ``proj`` (ModelNotFound
    when it lives in another project); ``ds.byom`` where ``ds`` is a datasource names a table.
    """
    if not isinstance(source, exp.Table):
        return None
    if source.name.isdigit() and source.db:  # m.2 / proj.m.2: version 2 of model m
        return _as_model_version(source, resolver)
    if source.catalog:
        return None
    qualifier = source.db.lower() if source.db else ""
    if not qualifier:
        return resolver.model(source.name.lower())
    if qualifier not in st.MODEL_NAMESPACES and (
        resolver.datasource_dialect(qualifier) is not None
        or not names.is_project(qualifier, resolver)
    ):
        return None  # a datasource's table, or a schema's of the default datasource
    return names.model_in(source.name.lower(), project_key(qualifier), resolver)


def _as_model_version(source: exp.Table, resolver: Resolver) -> PredictorRecord | None:
    """``m.2`` or ``proj.m.2``: model m as of version 2 (None when ``m`` is no model, e.g.
    a datasource's schema)."""
    name = source.db.lower()
    project = source.catalog.lower() if source.catalog else ""
    if project and resolver.datasource_dialect(project) is not None:
        return None
    if project:
        record = names.model_in(name, names.require_project(project, resolver), resolver)
    else:
        record = resolver.model(name)
    if record is None:
        if resolver.datasource_dialect(name) is not None:
            return None
        raise ModelNotFound.named(name, resolver.model_names())
    return resolver.model_version(record.name, int(source.name))


def _check_unknown_model(sources: Sequence[exp.Expression], resolver: Resolver) -> None:
    """``FROM mindsdb.byomm`` or ``FROM proj.byomm``: a project was given but no such model;
    say so clearly."""
    for source in sources:
        if isinstance(source, exp.Table) and not source.catalog and source.db:
            qualifier = source.db.lower()
            if resolver.datasource_dialect(qualifier) is None and names.is_project(
                qualifier, resolver
            ):
                raise ModelNotFound.named(source.name.lower(), resolver.model_names())


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
        for cond in conjuncts(where.this):
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


# ---------------------------------------------------------------------------- pass-through


def _plan_native(stmt: st.Query, resolver: Resolver) -> NativePlan:
    """Plain SQL: find the one datasource it addresses and strip that prefix from its tables
    and columns."""
    tables = list(stmt.tree.find_all(exp.Table))
    named = {}
    for t in tables:
        name, written = datasource_of(t, resolver)
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
        strip_datasource(t, resolver)
    strip_datasource_columns(tree, datasource)  # mydb.t.c -> t.c, as the table lost mydb.
    dialect = resolver.datasource_dialect(datasource) or "sqlite"
    return NativePlan(datasource=datasource, sql=tree.sql(dialect=dialect))


__all__ = [
    "CATALOG_TABLES",
    "CatalogQueryPlan",
    "JoinPlan",
    "NativePlan",
    "OutputColumn",
    "Plan",
    "PredictRowPlan",
    "RegisterPlan",
    "Resolver",
    "WriteBackPlan",
    "literal_value",
    "plan",
    "plan_register",
]
