"""Runs plans: the only part of the gateway that talks to the catalog, the datasources and
the adapters.

``Executor.run`` is a dispatcher; each kind of plan is one module's job:

    models.py          CREATE PREDICTOR (register), DROP MODEL
    training.py        background training tasks (Trainer)
    predict.py         one batch to one model; a row from literals; JSON rows
    join.py            the streaming prediction JOIN
    write_back.py      a JOIN's rows into a datasource table
    datasource_ddl.py  CREATE/DROP DATABASE, plain SQL passed through
    catalog_tables.py  SHOW MODELS/DATABASES, DESCRIBE, SELECT ... FROM mindsdb.*
    resolver.py        the planner's per-statement view of the catalog
    services.py        what they share (catalog, datasources, adapters, settings)
"""

from __future__ import annotations

from typing import Any

from byom.errors import GatewayError
from gateway import statements as st
from gateway.executor import catalog_tables, datasource_ddl, models, predict
from gateway.executor.join import run_join
from gateway.executor.resolver import CatalogResolver
from gateway.executor.services import Services
from gateway.executor.training import Trainer
from gateway.executor.write_back import write_back
from gateway.plans import (
    CatalogQueryPlan,
    JoinPlan,
    NativePlan,
    Plan,
    PredictRowPlan,
    RegisterPlan,
    WriteBackPlan,
)
from gateway.result import Result, StreamResult

__all__ = ["CatalogResolver", "Executor", "Services"]


class Executor:
    """Executes plans against the gateway's ``Services``; owns the training tasks."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.trainer = Trainer(services)

    def resolver(self) -> CatalogResolver:
        """A fresh name resolver for planning one statement."""
        return CatalogResolver(self.services)

    async def run(
        self, p: Plan, *, label: str = "", query_id: str | None = None
    ) -> Result | StreamResult:
        """Run one plan; a prediction JOIN answers a ``StreamResult``.

        ``label`` (the statement text) and ``query_id`` name the progress entry of a
        streaming statement.
        """
        s = self.services
        match p:
            case RegisterPlan():
                return models.register(s, self.trainer, p)
            case PredictRowPlan():
                return await predict.predict_row(s, p)
            case JoinPlan():
                return await run_join(s, p, label, query_id)
            case WriteBackPlan():
                return await write_back(s, p, label, query_id)
            case NativePlan():
                return await datasource_ddl.pass_through(s, p)
            case CatalogQueryPlan():
                return catalog_tables.catalog_query(s, p)
            case st.CreateDatabase():
                return await datasource_ddl.create_database(s, p)
            case st.DropDatabase():
                return datasource_ddl.drop_database(s, p)
            case st.DropModel():
                return models.drop(s, self.trainer, p)
            case st.ShowDatabases():
                return catalog_tables.show_databases(s)
            case st.ShowModels():
                return catalog_tables.show_models(s)
            case st.Describe():
                return catalog_tables.describe(s, p.name)
        raise GatewayError(f"no executor for plan {type(p).__name__}")  # a bug, not user input

    def describe(self, name: str) -> Result:
        """DESCRIBE ``name`` (the HTTP API's GET /api/predictors/{name})."""
        return catalog_tables.describe(self.services, name)

    async def predict_rows(self, name: str, rows: list[dict[str, Any]]) -> Result:
        """Predict JSON rows with model ``name`` (POST /api/predictors/{name}/predict)."""
        return await predict.predict_json_rows(self.services, name, rows)
