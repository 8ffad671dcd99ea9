"""Small pure helpers over sqlglot trees, shared by the planners and the output filters.

Nothing here knows the catalog: names are checked through the planner's ``Resolver``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlglot
import sqlglot.errors
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from byom.errors import DatasourceNotFound, UnsupportedStatement
from gateway.plans import Resolver


def select_sources(tree: exp.Select) -> list[exp.Expression]:
    """The FROM item and every JOIN item of a SELECT, in order."""
    from_ = tree.args.get("from_") or tree.args.get("from")
    items: list[exp.Expression] = [from_.this] if from_ is not None else []
    items += [j.this for j in tree.args.get("joins") or []]
    return items


def alias_of(source: exp.Expression) -> str:
    """The lower-cased alias of a FROM/JOIN item (its table name when it has none)."""
    return (source.alias or (source.name if isinstance(source, exp.Table) else "")).lower()


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


def conjuncts(node: exp.Expression) -> list[exp.Expression]:
    """The AND-ed conditions of a WHERE, parentheses removed."""
    if isinstance(node, exp.And):
        return conjuncts(node.this) + conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return conjuncts(node.this)
    return [node]


def datasource_of(table: exp.Table, resolver: Resolver) -> tuple[str, bool]:
    """(datasource name, whether the name was written) for a table reference."""
    if table.catalog:
        name = table.catalog.lower()
        if resolver.datasource_dialect(name) is None:
            raise DatasourceNotFound.named(name, resolver.datasource_names())
        return name, True
    if table.db and resolver.datasource_dialect(table.db.lower()) is not None:
        return table.db.lower(), True
    return resolver.default_datasource, False


def strip_datasource(table: exp.Table, resolver: Resolver) -> None:
    """``ds.schema.t`` -> ``schema.t`` and ``ds.t`` -> ``t``: the datasource sees its own names."""
    if table.catalog:
        table.set("catalog", None)
    elif table.db and resolver.datasource_dialect(table.db.lower()) is not None:
        table.set("db", None)


def strip_datasource_columns(tree: exp.Expression, datasource: str) -> bool:
    """``ds.t.c`` -> ``t.c`` and ``ds.schema.t.c`` -> ``schema.t.c`` in every column of ``tree``.

    The column counterpart of ``strip_datasource``, for a statement sent to ``datasource``:
    only a leading part that names that datasource (case-insensitive) is removed, so
    ``schema.t.c`` - legal on PostgreSQL - reaches the database as written. The select list,
    ``WHERE``, ``ORDER BY``, ``GROUP BY``, ``ON`` and subqueries are all columns of the tree.
    True when a name was changed.
    """
    return _strip_leading(tree.find_all(exp.Column), datasource.lower())


def strip_own_datasource(tree: exp.Expression, datasource: str) -> bool:
    """Remove ``datasource``'s own name from every table and column of ``tree``.

    For SQL already addressed to ``datasource`` (the training query of ``CREATE PREDICTOR
    ... FROM ds (SELECT ... FROM ds.t)``): other qualifiers are kept. True when a name was
    changed.
    """
    ds = datasource.lower()
    tables = _strip_leading(tree.find_all(exp.Table), ds)
    return strip_datasource_columns(tree, ds) or tables


def _strip_leading(nodes: Iterable[exp.Expression], ds: str) -> bool:
    """Drop the leading part (``catalog``, else ``db`` when there is no catalog) of each
    table or column whose leading part is ``ds``."""
    changed = False
    for node in nodes:
        key = "catalog" if node.args.get("catalog") is not None else "db"
        part = node.args.get(key)
        if part is not None and part.name.lower() == ds:
            node.set(key, None)
            changed = True
    return changed


def sql_for_datasource(sql: str, datasource: str, dialect: str) -> str:
    """``sql`` (written for ``datasource``) with that datasource's own name removed from its
    tables and columns, in ``dialect``; the text exactly as written when it does not name
    the datasource (or when sqlglot cannot read it: the database will say what is wrong).
    """
    if datasource.lower() not in sql.lower():
        return sql
    try:
        trees = sqlglot.parse(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return sql
    if len(trees) != 1 or trees[0] is None:
        return sql
    tree = trees[0]
    if not strip_own_datasource(tree, datasource):
        return sql
    return tree.sql(dialect=dialect)


_BOUND_DIALECTS: dict[str, type[Dialect]] = {}


def bound_dialect(name: str) -> type[Dialect]:
    """A subclass of dialect ``name`` that writes placeholders as SQLAlchemy's ``:name``."""
    if name not in _BOUND_DIALECTS:
        base = type(Dialect.get_or_raise(name))

        class Generator(base.Generator):  # type: ignore[name-defined,misc]
            def placeholder_sql(self, expression: exp.Placeholder) -> str:
                return f":{expression.name}"

        _BOUND_DIALECTS[name] = type(f"Bound{base.__name__}", (base,), {"Generator": Generator})
    return _BOUND_DIALECTS[name]
