"""What the executor's modules share: the catalog, the user's databases, the adapters.

The executor package is the only part of the gateway that talks to the catalog, the
datasources and the adapters; each of its modules gets this one object instead of a
handful of arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import datasources as dsmod
from adapters.base import Adapter, Endpoint
from adapters.registry import AdapterRegistry
from byom.errors import ModelNotFound
from catalog.records import DatasourceRecord, PredictorRecord
from catalog.repository import Catalog
from datasources import DatasourcePool
from gateway.progress import ProgressRegistry
from gateway.settings import Settings


class ModelHost(Protocol):
    """Hosts built-in models (``gateway.executor.builtin.BuiltinModels``)."""

    async def ensure_served(self, record: PredictorRecord) -> PredictorRecord:
        """``record`` with a running deployment (deployed again after a restart)."""
        ...

    async def serve_url(self) -> str:
        """Connect to Ray (local, or RAY_ADDRESS) and Serve on first use; Serve's base URL."""
        ...


@dataclass
class Services:
    """The gateway's resources, owned by ``gateway.core.Gateway`` and lent to the executor."""

    catalog: Catalog
    datasources: DatasourcePool
    adapters: AdapterRegistry
    home: Path
    settings: Settings = field(default_factory=Settings)
    progress: ProgressRegistry = field(default_factory=ProgressRegistry)
    default_datasource: str = dsmod.EMBEDDED_NAME
    host: ModelHost | None = None  # set by the Executor

    async def ensure_served(self, record: PredictorRecord) -> PredictorRecord:
        """``record``, its deployment running when the gateway hosts it (built-in)."""
        if record.kind == "builtin" and self.host is not None:
            return await self.host.ensure_served(record)
        return record

    def datasource_record(self, name: str) -> DatasourceRecord:
        """The record of datasource ``name`` (the embedded one included), or
        ``DatasourceNotFound`` with a did-you-mean."""
        if name == dsmod.EMBEDDED_NAME:
            return dsmod.embedded_record(self.home)
        return self.catalog.get_datasource(name)

    def datasource(self, name: str) -> dsmod.Datasource:
        """An open (pooled) datasource by name."""
        return self.datasources.get(self.datasource_record(name))

    def catalog_datasource_names(self) -> list[str]:
        """Every datasource name, the embedded one included."""
        return [self.default_datasource, *(d.name for d in self.catalog.list_datasources())]

    def model_names(self) -> list[str]:
        return [p.name for p in self.catalog.list_predictors()]

    def model_not_found(self, name: str) -> ModelNotFound:
        return ModelNotFound.named(name, self.model_names())

    def adapter_for(self, record: PredictorRecord) -> tuple[Adapter, Endpoint]:
        """The adapter that reaches ``record``'s model, and the endpoint it is called with.

        Every model - external or hosted by the gateway - is reached this way: one predict
        path, whatever runs the model.
        """
        return self.adapters.get(record.format), endpoint_for(record)


def endpoint_for(record: PredictorRecord) -> Endpoint:
    """The adapter's view of a model's catalog record (also built in Ray JOIN workers)."""
    return Endpoint(
        model=record.name,
        url_predict=record.url_predict or "",
        url_train=record.url_train,
        target=record.target,
        dtype_dict=dict(record.dtype_dict),
        options=dict(record.options),
    )
