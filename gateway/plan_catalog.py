"""Planning the statements about names: where ``CREATE MODEL`` puts its model, ``USE``,
``DESCRIBE``, ``DROP MODEL``, the SHOW statements, and the checks that keep project and
datasource names apart (``CREATE/DROP PROJECT``, ``CREATE/DROP DATABASE``).

Pure, like the rest of the planner: every name is looked up through the ``Resolver``. The
rules for projects are in ``gateway.projects``.
"""

from __future__ import annotations

from dataclasses import replace

import sqlglot
import sqlglot.errors
from sqlglot import exp

from byom.errors import (
    DatasourceNotFound,
    InvalidInput,
    ModelNotFound,
    ProjectNotFound,
    UnsupportedStatement,
)
from catalog.records import PredictorRecord, project_key
from gateway import statements as st
from gateway.parse_show import SUPPORTED as SUPPORTED_SHOW
from gateway.parse_tokens import DIALECT
from gateway.plans import DescribePlan, DescribeTablePlan, Resolver, ShowTablesPlan, UsePlan
from gateway.projects import DEFAULT_PROJECT, not_in_project
from gateway.sql_tree import datasource_of

# What ``DESCRIBE m.<attribute>`` answers.
ATTRIBUTES = ("features", "model", "training_loss")


def is_project(name: str, resolver: Resolver) -> bool:
    """Whether ``name`` (lower-case) names a project: ``mindsdb`` and its other names, or
    one made with CREATE PROJECT."""
    return name in st.MODEL_NAMESPACES or resolver.project(name) is not None


def require_project(name: str, resolver: Resolver) -> str:
    """The canonical name of project ``name``; PROJECT_NOT_FOUND with a did-you-mean."""
    if is_project(name, resolver):
        return project_key(name)
    raise ProjectNotFound.named(name, resolver.project_names())


def model_in(name: str, project: str, resolver: Resolver) -> PredictorRecord | None:
    """Model ``name`` when it is in ``project`` (canonical); None when there is no model of
    that name; ModelNotFound naming its project when it lives in another one."""
    record = resolver.model(name)
    if record is not None and project_key(record.namespace) != project:
        raise not_in_project(record, project)
    return record


def plan_model_target(stmt: st.CreatePredictor, resolver: Resolver) -> st.CreatePredictor:
    """``stmt`` with its project resolved (no prefix: the session's default project) and,
    for ``FROM (query)`` without a datasource, the session's default datasource."""
    project = require_project(stmt.namespace or resolver.default_project, resolver)
    datasource = stmt.datasource
    if stmt.query is not None and datasource is None:
        datasource = query_datasource(stmt.query, resolver)
    return replace(stmt, namespace=project, datasource=datasource)


def query_datasource(query: str, resolver: Resolver) -> str:
    """The datasource a ``FROM (query)`` without one reads: the one its tables name
    (``SELECT ... FROM mldb.movie`` reads ``mldb``), else the session's default."""
    try:
        tree = sqlglot.parse_one(query, read=DIALECT)
    except sqlglot.errors.SqlglotError:
        return resolver.default_datasource  # the datasource will say what is wrong
    named = {
        name for t in tree.find_all(exp.Table) for name, written in [datasource_of(t, resolver)]
        if written
    }  # fmt: skip
    return named.pop() if len(named) == 1 else resolver.default_datasource


def plan_use(stmt: st.Use, resolver: Resolver) -> UsePlan:
    """``USE ds`` or ``USE project``; neither is DATASOURCE_NOT_FOUND with a did-you-mean."""
    if resolver.datasource_dialect(stmt.name) is not None:
        return UsePlan(datasource=stmt.name)
    if is_project(stmt.name, resolver):
        return UsePlan(project=project_key(stmt.name))
    known = resolver.datasource_names() + resolver.project_names()
    raise DatasourceNotFound.named(stmt.name, known)


def plan_describe(stmt: st.Describe, resolver: Resolver) -> DescribePlan | DescribeTablePlan:
    """``DESCRIBE m``, ``DESCRIBE p.m``, ``DESCRIBE m.features|model``, ``DESCRIBE p.m.x``;
    ``DESCRIBE ds.table`` (a datasource's table: its columns)."""
    if stmt.namespace is None:
        record = resolver.model(stmt.name)
        if record is None:
            raise ModelNotFound.named(stmt.name, resolver.model_names())
        return DescribePlan(record)
    if stmt.attribute is not None:
        project = require_project(stmt.namespace, resolver)
        record = model_in(stmt.name, project, resolver)
        if record is None:
            raise ModelNotFound.named(stmt.name, resolver.model_names())
        return DescribePlan(record, _attribute(record, stmt.attribute))
    # Two parts: project.model, or model.attribute.
    first, second = stmt.namespace, stmt.name
    if is_project(first, resolver):
        record = model_in(second, project_key(first), resolver)
        if record is not None:
            return DescribePlan(record)
        owner = resolver.model(first)
        if owner is not None:  # a model named like a project: DESCRIBE m.features
            return DescribePlan(owner, _attribute(owner, second))
        raise ModelNotFound.named(second, resolver.model_names())
    owner = resolver.model(first)
    if owner is not None:
        return DescribePlan(owner, _attribute(owner, second))
    if resolver.datasource_dialect(first) is not None:
        return DescribeTablePlan(first, second)
    if second in ATTRIBUTES:  # DESCRIBE <misspelt model>.features
        raise ModelNotFound.named(first, resolver.model_names())
    raise ProjectNotFound.named(first, resolver.project_names())


def _attribute(record: PredictorRecord, attribute: str) -> str:
    if attribute in ATTRIBUTES:
        return attribute
    raise InvalidInput(
        f"DESCRIBE {record.name}.{attribute}: a model has no '{attribute}'; DESCRIBE "
        f"{record.name}.features (its columns), DESCRIBE {record.name}.model (its details) "
        f"or DESCRIBE {record.name}.training_loss (a built-in model's loss curve).",
        model=record.name,
    )


def plan_drop_model(stmt: st.DropModel, resolver: Resolver) -> st.DropModel:
    """``DROP MODEL p.m``: p must be a project and m in it (when m exists)."""
    if stmt.namespace is None:
        return stmt
    project = require_project(stmt.namespace, resolver)
    model_in(stmt.name, project, resolver)
    return replace(stmt, namespace=project)


def plan_show_models(stmt: st.ShowModels, resolver: Resolver) -> st.ShowModels:
    if stmt.project is None:
        return stmt
    return replace(stmt, project=require_project(stmt.project, resolver))


def plan_show_tables(stmt: st.ShowTables, resolver: Resolver) -> ShowTablesPlan:
    """``SHOW TABLES [FROM x]``: x is a datasource or a project (its models); no FROM: the
    session's default datasource."""
    source = stmt.source or resolver.default_datasource
    datasource = project = None
    if resolver.datasource_dialect(source) is not None:
        datasource = source
    elif is_project(source, resolver):
        project = project_key(source)
    else:
        known = resolver.datasource_names() + resolver.project_names()
        raise DatasourceNotFound.named(source, known)
    return ShowTablesPlan(
        datasource=datasource, project=project, full=stmt.full, like=stmt.like, where=stmt.where
    )


def plan_create_project(stmt: st.CreateProject, resolver: Resolver) -> st.CreateProject:
    """A project may not take a datasource's name (``x.t`` must mean one thing)."""
    if project_key(stmt.name) != DEFAULT_PROJECT and resolver.datasource_dialect(stmt.name):
        raise InvalidInput(
            f"Cannot create project '{stmt.name}': a datasource has that name, and "
            f"'{stmt.name}.x' must name one thing. Pick another name.",
            project=stmt.name,
        )
    return replace(stmt, name=project_key(stmt.name))


def plan_drop_project(stmt: st.DropProject, resolver: Resolver) -> st.DropProject:
    if project_key(stmt.name) == DEFAULT_PROJECT:
        raise InvalidInput(
            f"Project '{stmt.name}' is the default project and cannot be dropped.",
            project=stmt.name,
        )
    return stmt


def plan_create_database(stmt: st.CreateDatabase, resolver: Resolver) -> st.CreateDatabase:
    """A datasource may not take a project's name (``x.t`` must mean one thing)."""
    if is_project(stmt.name, resolver):
        raise InvalidInput(
            f"Cannot create datasource '{stmt.name}': a project has that name, and "
            f"'{stmt.name}.x' must name one thing. Pick another name.",
            datasource=stmt.name,
        )
    return stmt


def plan_drop_database(
    stmt: st.DropDatabase, resolver: Resolver
) -> st.DropDatabase | st.DropProject:
    """``DROP DATABASE p`` of a project (not a datasource) drops the project, as in MindsDB."""
    if resolver.datasource_dialect(stmt.name) is None and is_project(stmt.name, resolver):
        return plan_drop_project(st.DropProject(stmt.name, stmt.if_exists), resolver)
    return stmt


def refuse_show_command(stmt: st.Query, resolver: Resolver) -> None:
    """A ``SHOW x`` the gateway does not know goes to the default datasource as written;
    SQLite has no SHOW at all, so there it is refused by name instead of coming back as
    SQLite's syntax error."""
    tree = stmt.tree
    if not (isinstance(tree, exp.Command) and str(tree.this).upper() == "SHOW"):
        return
    datasource = resolver.default_datasource
    if resolver.datasource_dialect(datasource) in (None, "sqlite"):
        raise UnsupportedStatement(
            f"{stmt.sql} is not a statement of the gateway, and datasource '{datasource}' "
            f"(SQLite) has no SHOW; the gateway answers {SUPPORTED_SHOW}."
        )
