"""Built-in models on Ray: train a version as a Ray task, serve it on Ray Serve, cancel,
drop, and bring deployments back after a restart.

Training never runs in a request: ``CREATE MODEL ... USING task=...`` and ``RETRAIN`` store a
version (``generating``), start one asyncio task here and answer at once. That task starts
Ray on first use (``builtin_models.cluster``), hands a ``QueryReader`` - the datasource and
query, not the rows - to a Ray training task, copies its progress into the catalog, deploys
the logged model as a Serve application and records its URL. From then on the model is
reached like any external ``ray_serve`` model: the executor's one predict path.

Every way out - success, a user error, a crashed worker, cancellation, shutdown - ends the
job and the version in the catalog (``complete`` or ``error`` with the reason).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from byom.errors import GatewayError
from catalog.records import ModelVersionRecord, PredictorRecord
from catalog.repository import INTERRUPTED_MESSAGE
from datasources.reader import QueryReader
from gateway.executor.builtin_tables import drop_tables, write_tables
from gateway.executor.services import Services
from gateway.settings import Settings

if TYPE_CHECKING:  # Ray and friends load on the first built-in statement, not here
    from builtin_models.deployments import DeployOptions

log = logging.getLogger("byom.builtin")

CANCELLED_MESSAGE = "training cancelled (CANCEL TRAINING or DROP MODEL)"
# How often the progress of a training task is copied into the catalog.
PROGRESS_INTERVAL_S = 1.0
# A training task that sent no progress this long after submission is reported ``queued``
# (Ray has not started it: usually no node has the resources it asks for).
QUEUED_AFTER_S = 5.0


def proba_column(target: str | None) -> str:
    """The SQL column of per-label probabilities (PostgresML's predict_proba)."""
    return f"{target or 'labels'}_proba"


class BuiltinModels:
    """The built-in models of one gateway: their training tasks and deployments."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_reason: dict[str, str] = {}
        self._serve_url: str | None = None
        self._ray_lock = asyncio.Lock()
        self._deploy_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._live: set[tuple[str, int]] = set()  # versions known to be deployed

    # ------------------------------------------------------------------ Ray

    async def serve_url(self) -> str:
        """Ray (local, or RAY_ADDRESS) and Serve, started on first use; Serve's base URL."""
        async with self._ray_lock:
            if self._serve_url is None:
                from builtin_models import cluster

                options = cluster.RayOptions(serve_port=self._services.settings.serve_port)
                info = await asyncio.to_thread(cluster.connect, options)
                self._serve_url = info.url
            return self._serve_url

    @property
    def started(self) -> bool:
        """Whether this gateway connected to Ray."""
        return self._serve_url is not None

    # ------------------------------------------------------------------ training

    def start(self, record: PredictorRecord, version: ModelVersionRecord, activate: bool) -> None:
        """Train ``version`` of ``record`` in the background."""
        task = asyncio.get_running_loop().create_task(self._train(record, version, activate))
        self._tasks[record.name] = task
        task.add_done_callback(lambda _t, n=record.name: self._tasks.pop(n, None))

    def training(self, name: str) -> bool:
        """Whether model ``name`` has a training task running in this gateway."""
        return name in self._tasks

    def in_flight(self) -> list[str]:
        """Names of the models training in this gateway now."""
        return sorted(self._tasks)

    async def cancel(self, name: str, reason: str = CANCELLED_MESSAGE) -> bool:
        """Stop the training of ``name`` and wait until its task has recorded the end."""
        task = self._tasks.get(name)
        if task is None:
            return False
        self._cancel_reason[name] = reason
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def close(self) -> None:
        """Cancel every training (recorded as interrupted) and leave Ray."""
        for name in list(self._tasks):
            await self.cancel(name, INTERRUPTED_MESSAGE)
        if self._serve_url is not None:
            from builtin_models import cluster

            await asyncio.to_thread(cluster.disconnect)
            self._serve_url = None
            self._live.clear()

    async def wait(self) -> None:
        """Return once every training task has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _train(
        self, record: PredictorRecord, version: ModelVersionRecord, activate: bool
    ) -> None:
        """One version's training, from Ray task to deployment; never raises (but
        re-raises cancellation) and always ends the job and the version."""
        from builtin_models import training

        name, number = record.name, version.version
        ref: Any = None
        box: Any = None
        try:
            serve_url = await self.serve_url()
            request, reader = self._request(record, version)
            box, progress = await asyncio.to_thread(training.start_progress_box)
            settings = self._services.settings
            ref = training.submit(
                reader,
                request,
                progress,
                num_cpus=settings.train_cpus,
                resources=train_resources(settings, version.options),
            )
            self._set_status(record, number, "training")
            asked = {"CPU": settings.train_cpus, **train_resources(settings, version.options)}
            result = await self._follow(ref, box, name, number, asked)
            ref = None
            self._services.catalog.update_version(
                name,
                number,
                metrics=result.metrics,
                hyperparams=result.hyperparams,
                run_id=result.run_id,
                model_uri=result.model_uri,
                tracking_uri=result.tracking_uri,
                progress={"phase": "deploying", "percent": 100.0},
            )
            url = await self._deploy(record, version, result.model_uri, result.tracking_uri)
            self._end(record, version, "complete", None, result.rows_used, url, serve_url)
            if activate or self._active_version(name) is None:
                self._services.catalog.activate_version(name, number)
                if result.tables:  # e.g. a recommender's <model>_users/_items/_interactions
                    await asyncio.to_thread(write_tables, self._services, name, result.tables)
        except asyncio.CancelledError:
            if ref is not None:
                _cancel_ray(ref)
            reason = self._cancel_reason.pop(name, INTERRUPTED_MESSAGE)
            self._end(record, version, "error", reason)
            raise
        except GatewayError as exc:
            self._end(record, version, "error", exc.message)
        except Exception as exc:  # a Ray failure (worker died, OOM) or a bug
            self._end(record, version, "error", _explain(exc))
        finally:
            if box is not None:
                _kill_actor(box)

    def _request(self, record: PredictorRecord, version: ModelVersionRecord) -> Any:
        """The TrainingRequest and QueryReader of ``version``."""
        from builtin_models import artifacts
        from builtin_models.tasks import get_task
        from builtin_models.training import TrainingRequest

        services = self._services
        source = version.training_datasource or services.default_datasource
        reader = QueryReader(services.datasource_record(source), version.training_query or "")
        options = version.options
        task = get_task(version.task)
        task_options = {k: v for k, v in options.items() if k in task.options}
        rename = column_renames(task, record.target, task_options)
        request = TrainingRequest(
            task=version.task,
            model_name=options.get("model_name"),
            hyperparams=dict(options.get("hyperparams") or {}),
            test_size=options.get("test_size"),
            test_sampling=options.get("test_sampling"),
            tracking_uri=services.settings.tracking_uri
            or artifacts.default_tracking_uri(services.home),
            artifact_root=services.settings.artifact_root,
            run_name=f"{record.name}-v{version.version}",
            tags={"byom.model": record.name, "byom.version": str(version.version)},
            rename=rename,
            task_options=task_options,
            side_readers=self._side_readers(source, task_options),
        )
        return request, reader

    def _side_readers(self, source: str, task_options: dict[str, Any]) -> dict[str, Any]:
        """Readers of the metadata tables a task option names (``item_metadata =
        '{"table_name": "ds.items"}'``): ``ds`` a datasource, else the training one's."""
        readers = {}
        for key in ("item_metadata", "user_metadata"):
            spec = task_options.get(key)
            if not spec:
                continue
            table = str(spec["table_name"])
            first, _, rest = table.partition(".")
            datasource = source
            if rest and first.lower() in self._services.catalog_datasource_names():
                datasource, table = first.lower(), rest
            record = self._services.datasource_record(datasource)
            readers[key] = QueryReader(record, f"SELECT * FROM {table}")
        return readers

    async def _follow(
        self, ref: Any, box: Any, name: str, number: int, asked: dict[str, float]
    ) -> Any:
        """Await the training task, copying its progress into the catalog meanwhile.

        Until the task's first event the version says ``queued``, with the resources it
        waits for: a cluster without them (a ``trainer`` node that is gone, CPUs held by
        other deployments) would otherwise leave it silently ``training`` at 0%."""
        future = asyncio.wrap_future(ref.future())
        last: Any = None
        waiting = ", ".join(f"{k}={v:g}" for k, v in sorted(asked.items()))
        started = time.monotonic()
        queued = False
        while True:
            done, _ = await asyncio.wait({future}, timeout=PROGRESS_INTERVAL_S)
            if last is None and not queued and time.monotonic() - started > QUEUED_AFTER_S:
                queued = True
                log.warning("%s v%d: Ray has not started its training; waiting for %s",
                            name, number, waiting)  # fmt: skip
                self._services.catalog.update_version(
                    name, number, progress={"phase": "queued", "percent": 0.0,
                                            "message": f"waiting for Ray resources {waiting}"}
                )  # fmt: skip
            try:
                event = await asyncio.wrap_future(box.get.remote().future())
            except Exception:  # noqa: BLE001 - progress is best effort
                event = None
            if event is not None and event != last:
                last = event
                self._services.catalog.update_version(
                    name, number, progress=dataclasses.asdict(event)
                )
            if done:
                return future.result()

    async def _deploy(
        self,
        record: PredictorRecord,
        version: ModelVersionRecord,
        model_uri: str,
        tracking_uri: str | None,
    ) -> str:
        """Deploy a version on Serve (in a thread: seconds), with the replicas and
        resources its options ask for; its predict URL."""
        from builtin_models import deployments

        number = version.version
        serve_url = await self.serve_url()
        options = deploy_options(self._services.settings, version.options)
        url = await asyncio.to_thread(
            deployments.deploy,
            record.name,
            number,
            model_uri,
            serve_url=serve_url,
            tracking_uri=tracking_uri,
            outputs={"probabilities": proba_column(record.target)},
            options=options,
        )
        self._live.add((record.name, number))
        return url

    def _active_version(self, name: str) -> int | None:
        current = self._services.catalog.find_predictor(name)
        return current.version if current is not None else None

    def _set_status(self, record: PredictorRecord, number: int, status: str) -> None:
        catalog = self._services.catalog
        catalog.update_version(record.name, number, status=status)
        if self._active_version(record.name) is None:
            catalog.set_predictor_status(record.name, status)

    def _end(
        self,
        record: PredictorRecord,
        version: ModelVersionRecord,
        status: str,
        error: str | None,
        rows: int | None = None,
        url: str | None = None,
        serve_url: str | None = None,
    ) -> None:
        """Record the end of a version's training: job, version, and (no active version
        yet) the model's own status."""
        from builtin_models import deployments

        catalog = self._services.catalog
        if version.job_id is not None:
            catalog.finish_job(version.job_id, status, error=error, rows=rows)
        if catalog.find_version(record.name, version.version) is None:
            return  # dropped meanwhile
        fields: dict[str, Any] = {"status": status, "error": error}
        if url is not None:
            fields["url_predict"] = url
            fields["deployment"] = deployments.app_name(record.name, version.version)
            fields["progress"] = {"phase": "done", "percent": 100.0}
        catalog.update_version(record.name, version.version, **fields)
        if status == "error":
            log.warning("model %s version %s: %s", record.name, version.version, error)
            if self._active_version(record.name) is None:
                catalog.set_predictor_status(record.name, "error", error=error)

    # ------------------------------------------------------------------ serving

    async def ensure_served(self, record: PredictorRecord) -> PredictorRecord:
        """``record`` (a built-in model as of one version) with a running deployment: after
        a restart the version is deployed again from its logged model (no retraining)."""
        if record.kind != "builtin" or record.version is None:
            return record
        key = (record.name, record.version)
        if key in self._live:
            return record
        lock = self._deploy_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._live:
                return record
            return await self._redeploy(record, record.version)

    async def _redeploy(self, record: PredictorRecord, number: int) -> PredictorRecord:
        from builtin_models import deployments

        catalog = self._services.catalog
        version = catalog.find_version(record.name, number)
        if version is None or version.status != "complete" or not version.model_uri:
            return record  # the predict path says why it cannot predict
        serve_url = await self.serve_url()
        running = await asyncio.to_thread(deployments.is_running, record.name, number)
        if running:
            url = deployments.predict_url(serve_url, record.name, number)
            self._live.add((record.name, number))
        else:
            log.info("deploying model %s version %s again", record.name, number)
            url = await self._deploy(record, version, version.model_uri, version.tracking_uri)
        if url != version.url_predict:
            catalog.update_version(record.name, number, url_predict=url)
            if self._active_version(record.name) == number:
                catalog.activate_version(record.name, number)
        return dataclasses.replace(record, url_predict=url)

    async def restore(self) -> None:
        """Deploy the active version of every built-in model (at start-up, in the
        background); a failure is logged and left to the first prediction to report."""
        for record in self._services.catalog.list_predictors():
            if record.kind == "builtin" and record.version is not None:
                try:
                    await self.ensure_served(record)
                except GatewayError as exc:
                    log.warning("could not restore model %s: %s", record.name, exc.message)

    async def remove_deployments(self, name: str) -> None:
        """Delete the Serve applications of every version of ``name``, and its tables."""
        await asyncio.to_thread(drop_tables, self._services, name)
        versions = [v for v in self._services.catalog.list_versions(name) if v.deployment]
        if not versions:
            return
        from builtin_models import deployments

        await self.serve_url()
        for v in versions:
            await asyncio.to_thread(deployments.remove, name, v.version)
            self._live.discard((name, v.version))


def train_resources(settings: Settings, options: Mapping[str, Any]) -> dict[str, float]:
    """Custom Ray resources of a version's training (and EVALUATE) task: its ``USING
    train_resources``, else the gateway's ``train_resources`` ($BYOM_TRAIN_RESOURCES)."""
    given = options.get("train_resources")
    return dict(settings.train_resources if given is None else given)


def deploy_options(settings: Settings, options: Mapping[str, Any]) -> DeployOptions:
    """The ``DeployOptions`` of a version: the gateway's CPUs per replica and batch wait,
    the version's ``replicas`` (default 1) and its ``replica_resources`` (else the
    gateway's)."""
    from builtin_models.deployments import DeployOptions

    given = options.get("replica_resources")
    return DeployOptions(
        num_cpus=settings.replica_cpus,
        num_replicas=int(options.get("replicas") or 1),
        resources=dict(settings.replica_resources if given is None else given),
        batch_wait_timeout_s=settings.batch_wait_ms / 1000,
    )


def column_renames(task: Any, target: str | None, task_options: dict[str, Any]) -> dict[str, str]:
    """Query column -> task column: the PREDICT column to the task's target, and the
    columns named by ``users``/``items`` options to ``user_id``/``item_id``."""
    rename = {}
    if target and target != task.target_column:
        rename[target] = task.target_column
    for option, column in (("users", "user_id"), ("items", "item_id")):
        given = task_options.get(option)
        if given and given != column:
            rename[str(given)] = column
    return rename


def _cancel_ray(ref: Any) -> None:
    import ray

    try:
        ray.cancel(ref, force=True)
    except Exception as exc:  # noqa: BLE001 - the task may have ended meanwhile
        log.debug("ray.cancel: %s", exc)


def _kill_actor(actor: Any) -> None:
    import ray

    try:
        ray.kill(actor)
    except Exception as exc:  # noqa: BLE001 - Ray may be gone at shutdown
        log.debug("ray.kill: %s", exc)


def _explain(exc: BaseException) -> str:
    """The message of a failed Ray task (our GatewayError inside, or what killed it)."""
    try:
        from builtin_models.training import explain_ray_failure

        return explain_ray_failure(exc).message
    except Exception:  # noqa: BLE001 - not a Ray error: a bug
        log.exception("training failed")
        return f"internal error while training: {type(exc).__name__}: {exc}"
