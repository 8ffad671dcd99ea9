"""Runs plans: the only part of the gateway that talks to the catalog, the datasources and
the adapters.

``Executor.run`` is a dispatcher; each kind of plan is one module's job:

    models.py          CREATE [OR REPLACE] PREDICTOR [IF NOT EXISTS], DROP MODEL
    training.py        background training tasks of external models (Trainer)
    builtin.py         built-in models: training on Ray, deployments on Ray Serve
    builtin_statements.py  CREATE ... USING task=..., RETRAIN, EVALUATE, CANCEL, versions
    training_query.py  the training query, rewritten for its datasource and probed at CREATE
    predict.py         one batch to one model; a row from literals; JSON rows
    inputs.py          inputs checked against the model's dtype_dict before any call
    join.py            the streaming prediction JOIN
    write_back.py      a JOIN's rows into a datasource table
    ray_join.py        a JOIN or write-back on Ray Data (USING engine='ray'), the driver
    ray_join_worker.py its Ray side: shard readers, model-calling workers
    datasource_ddl.py  CREATE/DROP DATABASE, plain SQL passed through
    projects.py        CREATE/DROP PROJECT, USE, SET @var (the session's defaults, variables)
    show.py            SHOW MODELS/DATABASES/TABLES/PROJECTS/ENGINES
    catalog_tables.py  DESCRIBE, SELECT ... FROM mindsdb.*, LIKE/WHERE of the SHOWs
    resolver.py        the planner's per-statement view of the catalog (and the session)
    services.py        what they share (catalog, datasources, adapters, settings)
"""

from __future__ import annotations

from typing import Any

from byom.errors import GatewayError
from gateway import statements as st
from gateway.executor import (
    builtin_statements,
    catalog_tables,
    datasource_ddl,
    models,
    predict,
    projects,
    show,
)
from gateway.executor.builtin import BuiltinModels
from gateway.executor.join import run_join
from gateway.executor.resolver import CatalogResolver
from gateway.executor.services import Services
from gateway.executor.training import Trainer
from gateway.executor.write_back import write_back
from gateway.plans import (
    ActivateVersionPlan,
    CancelTrainingPlan,
    CatalogQueryPlan,
    DescribePlan,
    DescribeTablePlan,
    EvaluatePlan,
    JoinPlan,
    NativePlan,
    Plan,
    PredictRowPlan,
    RegisterPlan,
    ShowTablesPlan,
    TrainBuiltinPlan,
    UsePlan,
    WriteBackPlan,
)
from gateway.result import Result, StreamResult
from gateway.session import Session

__all__ = ["CatalogResolver", "Executor", "Services"]


class Executor:
    """Executes plans against the gateway's ``Services``; owns the training tasks."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.trainer = Trainer(services)
        self.builtin = BuiltinModels(services)
        services.host = self.builtin

    def resolver(self, session: Session | None = None) -> CatalogResolver:
        """A fresh name resolver for planning one statement of ``session``."""
        return CatalogResolver(self.services, session)

    async def run(
        self,
        p: Plan,
        *,
        label: str = "",
        query_id: str | None = None,
        session: Session | None = None,
    ) -> Result | StreamResult:
        """Run one plan; a prediction JOIN answers a ``StreamResult``.

        ``label`` (the statement text) and ``query_id`` name the progress entry of a
        streaming statement; ``session`` is the one ``USE`` changes.
        """
        s = self.services
        match p:
            case RegisterPlan():
                return await models.create(s, self.trainer, self.builtin, p)
            case TrainBuiltinPlan():
                return await builtin_statements.train(s, self.trainer, self.builtin, p)
            case EvaluatePlan():
                return await builtin_statements.evaluate(s, self.builtin, p)
            case CancelTrainingPlan():
                return await builtin_statements.cancel(self.services, self.builtin, p)
            case ActivateVersionPlan():
                return await builtin_statements.activate(s, self.builtin, p)
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
                return await models.drop(s, self.trainer, self.builtin, p)
            case st.CreateProject():
                return projects.create(s, p)
            case st.DropProject():
                return projects.drop(s, p)
            case UsePlan():
                return projects.use(session if session is not None else Session(), p)
            case st.SetVariables():
                return projects.set_variables(session if session is not None else Session(), p)
            case st.ShowDatabases():
                return show.databases(s, p)
            case st.ShowModels():
                return show.models(s, p)
            case st.ShowProjects():
                return show.projects(s, p)
            case st.ShowEngines():
                return show.engines(s, p)
            case ShowTablesPlan():
                return await show.tables(s, p)
            case DescribeTablePlan():
                return await show.columns(s, p)
            case DescribePlan(attribute="training_loss"):
                return await builtin_statements.training_loss(s, p)
            case DescribePlan():
                return catalog_tables.describe_plan(s, p)
        raise GatewayError(f"no executor for plan {type(p).__name__}")  # a bug, not user input

    def describe(self, name: str) -> Result:
        """DESCRIBE ``name`` (the HTTP API's GET /api/predictors/{name})."""
        return catalog_tables.describe(self.services, name)

    async def predict_rows(self, name: str, rows: list[dict[str, Any]]) -> Result:
        """Predict JSON rows with model ``name`` (POST /api/predictors/{name}/predict)."""
        return await predict.predict_json_rows(self.services, name, rows)
