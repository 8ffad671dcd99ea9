"""The SHOW statements: MODELS, [FULL] DATABASES, [FULL] TABLES, PROJECTS, ENGINES; and
DESCRIBE of a datasource's table.

Each answer is built whole (they are small), then its ``LIKE``/``WHERE`` applied in an
in-memory SQLite (``catalog_tables.filtered``).
"""

from __future__ import annotations

import asyncio
import re

import datasources as dsmod
from adapters.registry import ALIASES, FORMATS
from catalog.records import project_key
from datasources.parameters import ENGINE_ALIASES
from gateway import statements as st
from gateway.executor.catalog_tables import (
    datasources_table,
    filtered,
    projects_table,
    show_models,
)
from gateway.executor.services import Services
from gateway.planner import CATALOG_TABLES
from gateway.plans import DescribeTablePlan, ShowTablesPlan
from gateway.projects import DEFAULT_PROJECT
from gateway.result import Result

ENGINE_COLUMNS = ["name", "type", "aliases", "parameters", "description"]
FULL_DATABASE_COLUMNS = ["name", "type", "engine"]
# MySQL's DESCRIBE columns (MySQL clients read them; SQLAlchemy's has_table runs DESCRIBE).
DESCRIBE_COLUMNS = ["Field", "Type", "Null", "Key", "Default", "Extra"]
_ENGINE_HELP = {
    "sqlite": "A SQLite database file (the embedded datasource 'local' is one).",
    "postgres": "A PostgreSQL database; 'schema' becomes the search_path.",
}
# What every model format takes in USING, besides the payload its adapter may offer.
_MODEL_OPTIONS = "url.predict (required); {optional} (optional)"


def models(services: Services, p: st.ShowModels) -> Result:
    return filtered(show_models(services, p.project), p.like, p.where, "SHOW MODELS")


def databases(services: Services, p: st.ShowDatabases) -> Result:
    """SHOW DATABASES: the datasources; FULL: the projects (type ``project``) and the
    datasources (type ``data``) with their engine, as MindsDB lists them."""
    if not p.full:
        return filtered(datasources_table(services), p.like, p.where, "SHOW DATABASES")
    rows: list[list[object]] = [
        [project.name, "project", None] for project in services.catalog.list_projects()
    ]
    rows += [[name, "data", engine] for name, engine, _ in datasources_table(services).rows]
    answer = Result(columns=list(FULL_DATABASE_COLUMNS), rows=rows)
    return filtered(answer, p.like, p.where, "SHOW FULL DATABASES")


def projects(services: Services, p: st.ShowProjects) -> Result:
    return filtered(projects_table(services), p.like, p.where, "SHOW PROJECTS")


async def tables(services: Services, p: ShowTablesPlan) -> Result:
    """SHOW [FULL] TABLES: a datasource's tables and views (``BASE TABLE``/``VIEW``), or a
    project's models (``MODEL``; project mindsdb also has the catalog's ``SYSTEM VIEW``s)."""
    found: list[tuple[str, str]]
    if p.project is not None:
        found = [
            (m.name, "MODEL")
            for m in services.catalog.list_predictors()
            if project_key(m.namespace) == p.project
        ]
        if p.project == DEFAULT_PROJECT:
            found += [(table, "SYSTEM VIEW") for table in CATALOG_TABLES]
    else:
        assert p.datasource is not None
        ds = services.datasource(p.datasource)
        found = await asyncio.to_thread(ds.tables)
    columns = ["table_name", "table_type"] if p.full else ["table_name"]
    rows = [[name, kind] if p.full else [name] for name, kind in found]
    what = "SHOW FULL TABLES" if p.full else "SHOW TABLES"
    return filtered(Result(columns=columns, rows=rows), p.like, p.where, what)


async def columns(services: Services, p: DescribeTablePlan) -> Result:
    """DESCRIBE ds.table: its columns as MySQL lists them (Field, Type as the datasource
    writes it, Null YES/NO, Key PRI for the primary key, Default, Extra)."""
    ds = services.datasource(p.datasource)
    found = await asyncio.to_thread(ds.columns, p.table)
    rows: list[list[object]] = [
        [c.name, c.type, "YES" if c.nullable else "NO", "PRI" if c.primary_key else "",
         c.default, ""]
        for c in found
    ]  # fmt: skip
    return Result(columns=list(DESCRIBE_COLUMNS), rows=rows)


def engines(services: Services, p: st.ShowEngines) -> Result:
    """SHOW ENGINES / SHOW HANDLERS: the datasource engines (type ``data``: CREATE DATABASE
    ... WITH ENGINE) and the model formats (type ``ml``: CREATE MODEL ... USING format)."""
    rows: list[list[object]] = []
    for name, spec in dsmod.ENGINES.items():
        aliases = [alias for alias, target in ENGINE_ALIASES.items() if target == name]
        description = _ENGINE_HELP.get(name, f"A {name} database.")
        rows.append([name, "data", ", ".join(aliases), spec.expected(), description])
    for name, adapter in FORMATS.items():
        aliases = [alias for alias, target in ALIASES.items() if target == name]
        optional = "url.train, dtype_dict" if adapter.trains else "dtype_dict"
        options = _MODEL_OPTIONS.format(optional=optional)
        parameters = f"{options}; payload: {' | '.join(adapter.payloads)}"
        rows.append([name, "ml", ", ".join(aliases), parameters, _first_line(adapter.__doc__)])
    answer = Result(columns=list(ENGINE_COLUMNS), rows=rows)
    return filtered(answer, p.like, p.where, "SHOW ENGINES")


def _first_line(doc: str | None) -> str:
    """A docstring's first line without its reST markup."""
    line = (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""
    return re.sub(r"``([^`]*)``", r"\1", line)
