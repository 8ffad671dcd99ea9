"""Small pure helpers over sqlglot trees, shared by the planners and the output filters.

Nothing here knows the catalog: names are checked through the planner's ``Resolver``.
"""

from __future__ import annotations

from typing import Any

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
