"""Model statements: CREATE PREDICTOR (register, then train in the background), DROP MODEL."""

from __future__ import annotations

from byom.errors import ModelExists
from gateway import statements as st
from gateway.executor.catalog_tables import models_table
from gateway.executor.services import Services
from gateway.executor.training import Trainer
from gateway.plans import RegisterPlan
from gateway.result import Result


def register(services: Services, trainer: Trainer, p: RegisterPlan) -> Result:
    """Store the predictor; start its training when it has a train URL and a query."""
    spec = p.spec
    if services.catalog.find_predictor(spec.name) is not None:
        raise ModelExists(
            f"Model '{spec.name}' already exists; DROP MODEL {spec.name} first or pick "
            "another name.",
            model=spec.name,
        )
    if spec.training_datasource is not None:
        services.datasource_record(spec.training_datasource)  # fail now, not in the background
    trains = spec.url_train is not None
    record = services.catalog.add_predictor(spec, status="generating" if trains else "complete")
    if trains:
        trainer.start(record)
    return models_table([record])


def drop(services: Services, trainer: Trainer, p: st.DropModel) -> Result:
    """Forget a predictor, stopping its training if it runs here."""
    if services.catalog.find_predictor(p.name) is None:
        if p.if_exists:
            return Result(message=f"Model '{p.name}' does not exist; nothing dropped.")
        raise services.model_not_found(p.name)
    trainer.cancel(p.name)
    services.catalog.drop_predictor(p.name)
    return Result(message=f"Model '{p.name}' dropped.")
