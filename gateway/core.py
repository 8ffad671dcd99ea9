"""The gateway as one object: owns the catalog, the HTTP client and the executor.

``Gateway.sql`` is the whole data path of a statement: parse -> plan -> execute. The HTTP
server, the CLI (embedded mode) and the demo all go through this class and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from adapters.http import HttpSettings, make_client
from adapters.registry import AdapterRegistry
from catalog.db import catalog_url as default_catalog_url
from catalog.db import default_home
from catalog.repository import Catalog
from gateway import statements as st
from gateway.datasources import DatasourcePool
from gateway.errors import GatewayError, InvalidOption, NotFound
from gateway.executor import ExecSettings, Executor
from gateway.parser import parse
from gateway.progress import QueryProgress
from gateway.result import Result, StreamResult

log = logging.getLogger("byom.gateway")

# Fields of the JSON twin of CREATE PREDICTOR (POST /api/predictors).
_SPEC_FIELDS = {
    "name", "namespace", "format", "url_predict", "url_train", "dtype_dict", "target",
    "datasource", "query", "options",
}  # fmt: skip


class Gateway:
    """A running gateway. Create with ``await Gateway.start(...)``; end with ``await close()``."""

    def __init__(self, executor: Executor, catalog: Catalog, client: Any, home: Path) -> None:
        self.executor = executor
        self.catalog = catalog
        self.home = home
        self._client = client
        self._started = time.time()

    @classmethod
    async def start(
        cls,
        home: Path | None = None,
        catalog_url: str | None = None,
        http: HttpSettings | None = None,
        settings: ExecSettings | None = None,
    ) -> Gateway:
        """Open the catalog (``$BYOM_HOME``), mark interrupted jobs as error, make the client."""
        home = Path(home) if home is not None else default_home()
        home.mkdir(parents=True, exist_ok=True)
        catalog = await asyncio.to_thread(Catalog, catalog_url or default_catalog_url(home))
        interrupted = catalog.fail_interrupted()
        if interrupted:
            log.warning("marked interrupted training as error: %s", ", ".join(interrupted))
        http = http or HttpSettings.from_env()
        client = make_client(http)
        executor = Executor(
            catalog, DatasourcePool(), AdapterRegistry(client, http), home, settings
        )
        return cls(executor, catalog, client, home)

    async def close(self) -> None:
        """Cancel background training, then close the client, the pools and the catalog."""
        await self.executor.close()
        await self._client.aclose()
        self.executor.datasources.close_all()
        self.catalog.close()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def sql(self, text: str) -> Result:
        """Run a script of one or more statements; return the last statement's result."""
        result = await self.sql_stream(text)
        return await result.collect() if isinstance(result, StreamResult) else result

    async def sql_stream(self, text: str, query_id: str | None = None) -> Result | StreamResult:
        """Like ``sql``, but a JOIN's rows come as a ``StreamResult`` (flat memory).

        ``query_id`` names the progress entry of a streaming statement so a client can poll
        ``query_progress(query_id)`` while it runs. Earlier statements of a script that stream
        are read to the end (and dropped) before the next one starts.
        """
        statements = parse(text)
        result: Result | StreamResult = Result()
        for i, statement in enumerate(statements):
            last = i == len(statements) - 1
            result = await self.executor.execute(statement, query_id=query_id if last else None)
            if isinstance(result, StreamResult) and not last:
                async for _ in result.batches:
                    pass
        return result

    def queries(self) -> list[QueryProgress]:
        """Running and recently finished streaming statements, oldest first."""
        return self.executor.progress.list()

    def query_progress(self, query_id: str) -> QueryProgress:
        """One statement's progress, or ``NotFound`` (code QUERY_NOT_FOUND)."""
        entry = self.executor.progress.get(query_id)
        if entry is None:
            raise NotFound(
                f"No query '{query_id}' is running or recently finished.", code="QUERY_NOT_FOUND"
            )
        return entry

    async def register_predictor(self, spec: dict[str, Any]) -> Result:
        """The JSON twin of CREATE PREDICTOR (keys: name, format, url_predict, url_train,
        dtype_dict, target, datasource, query, namespace, options)."""
        unknown = set(spec) - _SPEC_FIELDS
        if unknown:
            raise InvalidOption(
                f"Unknown predictor field(s): {', '.join(sorted(unknown))}. "
                f"Known: {', '.join(sorted(_SPEC_FIELDS))}."
            )
        if not spec.get("name"):
            raise InvalidOption("A predictor needs a name.")
        options = dict(spec.get("options") or {})
        for key, field in (
            ("url.predict", "url_predict"),
            ("url.train", "url_train"),
            ("format", "format"),
            ("dtype_dict", "dtype_dict"),
        ):
            if spec.get(field) is not None:
                options[key] = spec[field]
        statement = st.CreatePredictor(
            name=str(spec["name"]).lower(),
            namespace=spec.get("namespace"),
            datasource=spec.get("datasource"),
            query=spec.get("query"),
            target=spec.get("target"),
            options=options,
        )
        return await self.executor.execute(statement)

    async def describe_predictor(self, name: str) -> Result:
        return self.executor.describe(name.lower())

    async def list_predictors(self) -> Result:
        return await self.executor.execute(st.ShowModels())

    async def drop_predictor(self, name: str) -> Result:
        return await self.executor.execute(st.DropModel(name=name.lower()))

    async def predict(self, name: str, rows: list[dict[str, Any]]) -> Result:
        """Predict JSON rows with a model: input columns + prediction (+ extra) per row."""
        return await self.executor.predict_rows(name.lower(), rows)

    async def wait_for_training(self, name: str, timeout: float = 120.0) -> Result:
        """Block until the predictor leaves generating/training; return its DESCRIBE row."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.executor.describe(name.lower())
            status = result.records()[0]["status"]
            if status not in ("generating", "training"):
                return result
            if time.monotonic() > deadline:
                raise GatewayError(
                    f"Model '{name}' is still '{status}' after {timeout:.0f}s.",
                    code="TRAINING_TIMEOUT",
                )
            await asyncio.sleep(0.1)

    async def wait_idle(self) -> list[str]:
        """Wait until no training runs in the background; return the names that were trained."""
        names = self.executor.training_in_flight()
        await self.executor.wait_training()
        return names

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "uptime_s": round(time.time() - self._started, 1),
            "catalog_schema_version": self.catalog.schema_version,
            "training_in_flight": self.executor.training_in_flight(),
        }
