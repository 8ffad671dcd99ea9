"""Background training of predictors: one asyncio task per predictor, never in a request.

``CREATE PREDICTOR`` returns at once with status ``generating``; the task reads the rows
(``generating``), calls the train endpoint (``training``) and ends ``complete`` or ``error``
with the endpoint's message. Every way out - success, a gateway error, a bug, cancellation by
``DROP MODEL`` or shutdown - ends the job and leaves the catalog consistent.
"""

from __future__ import annotations

import asyncio
import logging

from byom.errors import GatewayError, InvalidInput
from catalog.records import PredictorRecord
from catalog.repository import INTERRUPTED_MESSAGE
from gateway.executor.services import Services

log = logging.getLogger("byom.training")


class Trainer:
    """Runs and tracks the training tasks of one gateway process."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, record: PredictorRecord) -> None:
        """Train ``record`` in the background."""
        task = asyncio.get_running_loop().create_task(self._train(record))
        self._tasks[record.name] = task
        task.add_done_callback(lambda _t, n=record.name: self._tasks.pop(n, None))

    def cancel(self, name: str) -> None:
        """Stop the training of ``name`` if it runs here (the job ends as interrupted)."""
        task = self._tasks.get(name)
        if task is not None:
            task.cancel()

    def in_flight(self) -> list[str]:
        """Names of predictors whose training task is running now."""
        return sorted(self._tasks)

    async def wait(self) -> None:
        """Return once every training task has ended (successfully or not)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        """Cancel training still running; each task marks its predictor as interrupted."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _train(self, record: PredictorRecord) -> None:
        """Train one predictor; never raises (but re-raises cancellation), always ends the job."""
        catalog = self._services.catalog
        job = catalog.start_job(record.name)
        rows_read: int | None = None
        try:
            source = record.training_datasource or self._services.default_datasource
            ds = self._services.datasource(source)
            columns, rows = await asyncio.to_thread(ds.query, record.training_query or "")
            rows_read = len(rows)
            if not rows:
                raise InvalidInput(
                    f"Model '{record.name}': the training query returned no rows: "
                    f"{record.training_query}"
                )
            catalog.set_predictor_status(record.name, "training")
            adapter, endpoint = self._services.adapter_for(record)
            await adapter.train(endpoint, columns, rows)
        except asyncio.CancelledError:
            self._end(record.name, job.id, "error", INTERRUPTED_MESSAGE, rows_read)
            raise
        except GatewayError as exc:
            self._end(record.name, job.id, "error", exc.message, rows_read)
        except Exception as exc:  # a bug; still leave the catalog consistent
            log.exception("training %s failed", record.name)
            message = f"internal error while training: {type(exc).__name__}: {exc}"
            self._end(record.name, job.id, "error", message, rows_read)
        else:
            self._end(record.name, job.id, "complete", None, rows_read)

    def _end(
        self, name: str, job_id: int, status: str, error: str | None, rows: int | None
    ) -> None:
        catalog = self._services.catalog
        catalog.finish_job(job_id, status, error=error, rows=rows)
        if catalog.find_predictor(name) is not None:  # it may have been dropped meanwhile
            catalog.set_predictor_status(name, status, error=error)
