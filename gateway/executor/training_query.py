"""The training query of ``CREATE PREDICTOR ... FROM ds (SELECT ...)``, checked at CREATE time.

Training runs in the background, so a query that cannot run would only show up later as an
``error`` status. Instead, before the predictor is stored, the query is rewritten for its
datasource (``ds.t`` -> ``t``, ``ds.t.c`` -> ``t.c``: the datasource sees its own names) and
probed wrapped to return no rows::

    SELECT * FROM (
    <query>
    ) AS q LIMIT 0

which runs on SQLite and PostgreSQL alike, reads no rows, and cannot change data (a
subquery cannot be an INSERT or DELETE). The probe's columns must include the target and
every ``dtype_dict`` column, exactly as named there (what training sends is what predicting
reads).
"""

from __future__ import annotations

from dataclasses import replace

from byom.errors import DatasourceError, InvalidInput, did_you_mean
from catalog.records import PredictorSpec
from gateway.executor.services import Services
from gateway.sql_tree import sql_for_datasource


def probe_sql(query: str) -> str:
    """``query`` wrapped to return its columns and no rows."""
    inner = query.strip().rstrip(";").rstrip()
    # The query on lines of its own: a trailing "-- comment" must not swallow the ")".
    return f"SELECT * FROM (\n{inner}\n) AS q LIMIT 0"


def checked_training_spec(services: Services, spec: PredictorSpec) -> PredictorSpec:
    """``spec`` with its training query rewritten for its datasource, once the query ran
    (wrapped, no rows) and returned the columns the model needs.

    ``DatasourceError`` when the datasource refuses the query (or cannot be reached);
    ``InvalidInput`` naming the missing columns. ``spec`` unchanged when it does not train.
    """
    if spec.url_train is None or not spec.training_query:
        return spec
    name = spec.training_datasource or services.default_datasource
    ds = services.datasource(name)
    sql = sql_for_datasource(spec.training_query, name, ds.dialect)
    try:
        columns, _ = ds.query(probe_sql(sql))
    except DatasourceError as exc:
        raise DatasourceError(
            f"Model '{spec.name}': the training query cannot run: {exc.message}",
            model=spec.name,
            datasource=name,
        ) from exc
    needed = [c for c in (spec.target, *spec.dtype_dict) if c is not None]
    missing = [c for c in dict.fromkeys(needed) if c not in columns]
    if missing:
        hints = [
            f"{c} (did you mean {hint}?)" if (hint := did_you_mean(c, columns)) else c
            for c in missing
        ]
        raise InvalidInput(
            f"Model '{spec.name}': the training query returns {', '.join(columns) or 'no columns'}"
            f" but not {', '.join(hints)}, which the model needs (its target and dtype_dict "
            "columns). Select them, or alias them: SELECT x AS name.",
            model=spec.name,
            datasource=name,
            missing=missing,
        )
    return spec if sql == spec.training_query else replace(spec, training_query=sql)
