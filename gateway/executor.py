"""Runs plans. The only module that talks to the catalog, the datasources and the adapters.

Training runs as a background task per predictor: the CREATE statement returns at once with
status ``generating``; the task reads the rows (``generating``), calls the train endpoint
(``training``) and ends ``complete`` or ``error`` with the endpoint's message.

A JOIN streams: the datasource yields chunks of ``batch_size`` rows from a worker thread,
each chunk goes to every joined model as one batch, at most ``concurrency`` batches are in
flight, and results are emitted in source order (the oldest batch is always awaited first).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlglot import exp

from adapters.base import Endpoint, Predictions
from adapters.registry import AdapterRegistry
from catalog.records import DatasourceRecord, PredictorRecord
from catalog.repository import INTERRUPTED_MESSAGE, Catalog
from gateway import datasources as dsmod
from gateway import statements as st
from gateway.batching import aiter_thread, ordered_map
from gateway.errors import (
    DatasourceError,
    DatasourceExists,
    DatasourceNotFound,
    EndpointError,
    EndpointTimeout,
    GatewayError,
    InvalidInput,
    InvalidOption,
    ModelExists,
    ModelNotFound,
    ModelNotReady,
    did_you_mean,
)
from gateway.filters import compile_condition
from gateway.planner import (
    MODEL_SIDE,
    TABLE_SIDE,
    CatalogQueryPlan,
    JoinPlan,
    NativePlan,
    OutputColumn,
    PredictRowPlan,
    RegisterPlan,
    WriteBackPlan,
    plan,
)
from gateway.progress import ProgressRegistry, QueryProgress
from gateway.result import Result, StreamResult

log = logging.getLogger("byom.executor")

# sqlglot dialect of each datasource engine.
ENGINE_DIALECTS = {"sqlite": "sqlite", "postgres": "postgres"}
PREDICTION_COLUMN = "prediction"  # the output column of a model registered without PREDICT
MODEL_CACHE_S = 2.0  # how long another gateway's change to a model may go unseen here


@dataclass(frozen=True)
class ExecSettings:
    """Global defaults; a JOIN may override them with ``USING batch_size=..., concurrency=...``."""

    batch_size: int = 1000
    concurrency: int = 4
    timeout: float | None = None  # seconds per JOIN batch (all models); None: the HTTP timeouts

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExecSettings:
        """Defaults overridden by ``BYOM_BATCH_SIZE``, ``BYOM_CONCURRENCY`` and
        ``BYOM_BATCH_TIMEOUT`` (the global knobs; a JOIN may override them in USING)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field_name, var, kind in (
            ("batch_size", "BYOM_BATCH_SIZE", int),
            ("concurrency", "BYOM_CONCURRENCY", int),
            ("timeout", "BYOM_BATCH_TIMEOUT", float),
        ):
            if env.get(var):
                try:
                    values[field_name] = kind(env[var])
                except ValueError:
                    raise InvalidOption(f"{var} must be a number, got {env[var]!r}") from None
                if values[field_name] <= 0:
                    raise InvalidOption(f"{var} must be positive, got {env[var]!r}")
        return cls(**values)


class Executor:
    """Executes statements against one catalog; also the planner's name ``Resolver``."""

    def __init__(
        self,
        catalog: Catalog,
        datasources: dsmod.DatasourcePool,
        adapters: AdapterRegistry,
        home: Path,
        settings: ExecSettings | None = None,
    ) -> None:
        self.catalog = catalog
        self.datasources = datasources
        self.adapters = adapters
        self.home = home
        self.settings = settings or ExecSettings()
        self.default_datasource = dsmod.EMBEDDED_NAME
        self._training: dict[str, asyncio.Task[None]] = {}
        self._models: dict[str, tuple[float, PredictorRecord | None]] = {}
        self.progress = ProgressRegistry()

    # ------------------------------------------------------------------ Resolver

    def model(self, name: str) -> PredictorRecord | None:
        """The predictor ``name`` (or None), from a short-lived cache.

        A one-row prediction looks its model up twice (plan, then readiness); the cache
        saves a catalog round trip each time. Changes made here invalidate it at once;
        changes by another gateway sharing the catalog show within ``MODEL_CACHE_S``.
        """
        now = time.monotonic()
        hit = self._models.get(name)
        if hit is not None and now - hit[0] < MODEL_CACHE_S:
            return hit[1]
        record = self.catalog.find_predictor(name)
        self._models[name] = (now, record)
        return record

    def _forget(self, name: str) -> None:
        self._models.pop(name, None)

    def model_names(self) -> list[str]:
        return [p.name for p in self.catalog.list_predictors()]

    def datasource_dialect(self, name: str) -> str | None:
        if name == dsmod.EMBEDDED_NAME:
            return "sqlite"
        try:
            record = self.catalog.get_datasource(name)
        except DatasourceNotFound:
            return None
        return ENGINE_DIALECTS.get(record.engine, record.engine)

    def datasource_names(self) -> list[str]:
        return [dsmod.EMBEDDED_NAME] + [d.name for d in self.catalog.list_datasources()]

    # ------------------------------------------------------------------ entry point

    async def execute(
        self, statement: st.Statement, query_id: str | None = None
    ) -> Result | StreamResult:
        """Plan and run one statement; a prediction JOIN answers a ``StreamResult``."""
        p = plan(statement, self)
        label = statement.sql if isinstance(statement, st.Query) else type(statement).__name__
        match p:
            case RegisterPlan():
                return await self._register(p)
            case PredictRowPlan():
                return await self._predict_row(p)
            case JoinPlan():
                return await self._join(p, label, query_id)
            case WriteBackPlan():
                return await self._write_back(p, label, query_id)
            case NativePlan():
                return await self._native(p)
            case CatalogQueryPlan():
                return self._catalog_query(p)
            case st.CreateDatabase():
                return await self._create_database(p)
            case st.DropDatabase():
                return self._drop_database(p)
            case st.DropModel():
                return self._drop_model(p)
            case st.ShowDatabases():
                return self._show_databases()
            case st.ShowModels():
                return self._show_models()
            case st.Describe():
                return self.describe(p.name)
        raise GatewayError(f"no executor for plan {type(p).__name__}")  # a bug, not user input

    def training_in_flight(self) -> list[str]:
        """Names of predictors whose training task is running now."""
        return sorted(self._training)

    async def wait_training(self) -> None:
        """Return once every background training task has ended (successfully or not)."""
        while self._training:
            await asyncio.gather(*self._training.values(), return_exceptions=True)

    async def close(self) -> None:
        """Cancel training still running; each task marks its predictor as interrupted."""
        tasks = list(self._training.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ models

    async def _register(self, p: RegisterPlan) -> Result:
        if self.catalog.find_predictor(p.name) is not None:
            raise ModelExists(
                f"Model '{p.name}' already exists; DROP MODEL {p.name} first or pick another name.",
                model=p.name,
            )
        if p.datasource is not None:
            self._datasource_record(p.datasource)  # fail now, not in the background
        trains = p.url_train is not None
        self._forget(p.name)
        record = self.catalog.add_predictor(
            name=p.name,
            namespace=p.namespace,
            format=p.format,
            url_predict=p.url_predict,
            url_train=p.url_train,
            dtype_dict=p.dtype_dict,
            target=p.target,
            training_datasource=p.datasource,
            training_query=p.query,
            options=p.options,
            status="generating" if trains else "complete",
        )
        if trains:
            task = asyncio.get_running_loop().create_task(self._train(record))
            self._training[record.name] = task
            task.add_done_callback(lambda _t, n=record.name: self._training.pop(n, None))
        return self._predictor_result([record])

    async def _train(self, record: PredictorRecord) -> None:
        """Background training of one predictor; never raises, always ends the job."""
        job = self.catalog.start_job(record.name)
        rows_read: int | None = None
        try:
            ds = self._datasource(record.training_datasource or self.default_datasource)
            columns, rows = await asyncio.to_thread(ds.query, record.training_query or "")
            rows_read = len(rows)
            if not rows:
                raise InvalidInput(
                    f"Model '{record.name}': the training query returned no rows: "
                    f"{record.training_query}"
                )
            self.catalog.set_predictor_status(record.name, "training")
            self._forget(record.name)
            adapter = self.adapters.get(record.format)
            await adapter.train(self._endpoint(record), columns, rows)
        except asyncio.CancelledError:
            self._end_training(record.name, job.id, "error", INTERRUPTED_MESSAGE, rows_read)
            raise
        except GatewayError as exc:
            self._end_training(record.name, job.id, "error", exc.message, rows_read)
        except Exception as exc:  # a bug; still leave the catalog consistent
            log.exception("training %s failed", record.name)
            message = f"internal error while training: {type(exc).__name__}: {exc}"
            self._end_training(record.name, job.id, "error", message, rows_read)
        else:
            self._end_training(record.name, job.id, "complete", None, rows_read)

    def _end_training(
        self, name: str, job_id: int, status: str, error: str | None, rows: int | None
    ) -> None:
        self.catalog.finish_job(job_id, status, error=error, rows=rows)
        if self.catalog.find_predictor(name) is not None:  # it may have been dropped meanwhile
            self.catalog.set_predictor_status(name, status, error=error)
        self._forget(name)

    def _drop_model(self, p: st.DropModel) -> Result:
        if self.catalog.find_predictor(p.name) is None:
            if p.if_exists:
                return Result(message=f"Model '{p.name}' does not exist; nothing dropped.")
            raise self._model_not_found(p.name)
        task = self._training.get(p.name)
        if task is not None:
            task.cancel()
        self.catalog.drop_predictor(p.name)
        self._forget(p.name)
        return Result(message=f"Model '{p.name}' dropped.")

    def _show_models(self) -> Result:
        columns = ["name", "namespace", "format", "status", "target", "error"]
        rows = [
            [m.name, m.namespace, m.format, m.status, m.target, m.error]
            for m in self.catalog.list_predictors()
        ]
        return Result(columns=columns, rows=rows)

    def describe(self, name: str) -> Result:
        """DESCRIBE: one row with everything the catalog knows about a predictor."""
        record = self.catalog.find_predictor(name)
        if record is None:
            raise self._model_not_found(name)
        return self._predictor_result([record])

    def _predictor_result(self, records: Sequence[PredictorRecord]) -> Result:
        columns = [
            "name", "namespace", "format", "status", "target", "url_predict", "url_train",
            "dtype_dict", "training_datasource", "training_query", "error", "created_at",
            "updated_at",
        ]  # fmt: skip
        rows = [
            [
                r.name, r.namespace, r.format, r.status, r.target, r.url_predict, r.url_train,
                json.dumps(r.dtype_dict), r.training_datasource, r.training_query, r.error,
                r.created_at.isoformat(), r.updated_at.isoformat(),
            ]
            for r in records
        ]  # fmt: skip
        return Result(columns=columns, rows=rows)

    def _model_not_found(self, name: str) -> ModelNotFound:
        return ModelNotFound.named(name, self.model_names())

    def _ready(self, name: str) -> PredictorRecord:
        """The current record of a predictor that can predict, or a clear error."""
        record = self.model(name)
        if record is None:
            raise self._model_not_found(name)
        if record.status != "complete":
            detail = f": {record.error}" if record.error else ""
            advice = (
                "Re-create it after fixing the cause"
                if record.status == "error"
                else f"Wait for training to finish (DESCRIBE {name})"
            )
            raise ModelNotReady(
                f"Model '{name}' cannot predict: its status is '{record.status}'{detail}. "
                f"{advice}.",
                model=name,
                status=record.status,
            )
        return record

    def _endpoint(self, record: PredictorRecord) -> Endpoint:
        return Endpoint(
            model=record.name,
            url_predict=record.url_predict,
            url_train=record.url_train,
            target=record.target,
            dtype_dict=dict(record.dtype_dict),
            options=dict(record.options),
        )

    # ------------------------------------------------------------------ predictions

    async def predict_rows(self, name: str, rows: list[dict[str, Any]]) -> Result:
        """Predict JSON rows (the HTTP API's predict endpoint): inputs + outputs per row."""
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise InvalidInput('Send rows as a non-empty list of objects: {"rows": [{...}]}')
        record = self._ready(name)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        values = [tuple(r.get(c) for c in columns) for r in rows]
        predictions = await self._predict_batch(record, columns, values)
        out_columns, out_names = self._model_output_names(record, predictions)
        result_columns = [c for c in columns if c not in out_names] + out_columns
        keep = [i for i, c in enumerate(columns) if c not in out_names]
        result_rows = [
            [row[i] for i in keep] + self._model_values(predictions, j)
            for j, row in enumerate(values)
        ]
        return Result(columns=result_columns, rows=result_rows)

    async def _predict_row(self, p: PredictRowPlan) -> Result:
        record = self._ready(p.model.name)
        columns = list(p.inputs)
        predictions = await self._predict_batch(record, columns, [tuple(p.inputs.values())])
        out_columns, out_names = self._model_output_names(record, predictions)
        available = {c: v for c, v in p.inputs.items() if c not in out_names}
        available.update(zip(out_columns, self._model_values(predictions, 0), strict=True))
        labels: list[str] = []
        row: list[Any] = []
        for col in p.outputs:
            if col.name == "*":
                labels += list(available)
                row += list(available.values())
            elif col.name in available:
                labels.append(col.label)
                row.append(available[col.name])
            else:
                hint = did_you_mean(col.name, available)
                raise InvalidInput(
                    f"Column '{col.name}' is neither an input nor an output of model "
                    f"'{record.name}'."
                    + (f" Did you mean {hint}?" if hint else "")
                    + f" Available: {', '.join(available)}.",
                    model=record.name,
                )
        return Result(columns=labels, rows=[row])

    async def _predict_batch(
        self, record: PredictorRecord, columns: list[str], rows: Sequence[Sequence[Any]]
    ) -> Predictions:
        """One batch to one model: send only the model's features when it declared them."""
        features = [c for c in record.dtype_dict if c != record.target]
        if features:
            missing = [c for c in features if c not in columns]
            if missing:
                raise InvalidInput(
                    f"Model '{record.name}' needs column(s) {', '.join(missing)} "
                    f"(from its dtype_dict) but the input has {', '.join(columns) or 'none'}.",
                    model=record.name,
                )
            if features != list(columns):
                rows = _project(rows, [columns.index(c) for c in features])
                columns = features
        adapter = self.adapters.get(record.format)
        predictions = await adapter.predict(self._endpoint(record), columns, rows)
        if len(predictions.values) != len(rows):  # adapters check this too; never trust blindly
            raise EndpointError(
                f"Model '{record.name}' returned {len(predictions.values)} predictions for "
                f"{len(rows)} rows from {record.url_predict}",
                model=record.name,
                url=record.url_predict,
            )
        return predictions

    @staticmethod
    def _model_output_names(
        record: PredictorRecord, predictions: Predictions
    ) -> tuple[list[str], set[str]]:
        """Output column names of a model: its target (or 'prediction'), then extra keys."""
        target = record.target or PREDICTION_COLUMN
        names = [target] + [k for k in predictions.extra if k != target]
        return names, set(names)

    @staticmethod
    def _model_values(predictions: Predictions, i: int) -> list[Any]:
        target_value = predictions.values[i]
        return [target_value] + [v[i] for v in predictions.extra.values()]

    # ------------------------------------------------------------------ JOIN

    async def _join(self, p: JoinPlan, label: str, query_id: str | None) -> StreamResult:
        """Start a streaming JOIN; its first batch is computed before this returns."""
        entry = self.progress.start(label, "join", query_id)
        stream = self._join_batches(p, entry)
        return await _first_batch_then_rest(stream, entry, self.progress)

    async def _join_batches(
        self, p: JoinPlan, entry: QueryProgress
    ) -> AsyncIterator[tuple[list[str], list[Sequence[Any]]]]:
        """Yield (labels, output rows) per batch, in source order; updates ``entry``."""
        models = [self._ready(m.name) for m in p.models]
        ds = self._datasource(p.datasource)
        batch_size = int(p.options.get("batch_size", self.settings.batch_size))
        concurrency = int(p.options.get("concurrency", self.settings.concurrency))
        timeout = p.options.get("timeout", self.settings.timeout)
        counting = asyncio.ensure_future(asyncio.to_thread(ds.count, p.source_sql, p.params))
        counting.add_done_callback(lambda f: _set_total(entry, f))

        async def predict_all(columns: list[str], rows: list[tuple[Any, ...]]) -> list[Predictions]:
            calls = [self._predict_batch(m, columns, rows) for m in models]
            if timeout is None:
                return list(await asyncio.gather(*calls))
            try:
                return list(await asyncio.wait_for(asyncio.gather(*calls), float(timeout)))
            except TimeoutError:
                raise EndpointTimeout(
                    f"Predicting a batch of {len(rows)} rows took longer than the JOIN's "
                    f"timeout of {timeout}s; raise USING timeout=... or lower batch_size.",
                    models=[m.name for m in models],
                ) from None

        remaining = p.limit
        chunks = aiter_thread(ds.stream(p.source_sql, p.params, chunk_rows=batch_size))
        done = ordered_map(chunks, predict_all, concurrency)
        try:
            async for batch in done:
                values, labels = self._join_projection(
                    p.outputs, batch.columns, batch.rows, models, batch.answer
                )
                out = list(zip(*values, strict=True))  # column lists -> row tuples (JSON arrays)
                keep = self._post_filter(p, batch.columns, batch.answer)
                if keep is not None:
                    out = [
                        r
                        for j, (r, row) in enumerate(zip(out, batch.rows, strict=True))
                        if keep(row, j)
                    ]
                if remaining is not None:
                    out = out[:remaining]
                    remaining -= len(out)
                entry.rows_done += len(batch.rows)
                yield labels, out
                if remaining == 0:
                    return
            if entry.rows_total is None:  # the source ran out before count() answered
                entry.rows_total = entry.rows_done
            # No rows at all: still name the columns, from the source's columns.
            if entry.rows_done == 0:
                yield [c.label for c in p.outputs if c.name != "*"], []
        finally:
            # The row count runs on its own pooled connection in a thread that cannot be
            # cancelled; wait for it so the statement leaves no connection in use behind it.
            if not counting.done():
                await asyncio.wait([counting])
            await done.aclose()
            await chunks.aclose()

    def _post_filter(
        self, p: JoinPlan, columns: list[str], answers: list[Predictions]
    ) -> Any | None:
        """The WHERE part on model outputs as ``(row, j) -> bool``, or None when there is none."""
        if p.post_filter is None:
            return None

        def column(node: exp.Column) -> Any:
            if node.table == TABLE_SIDE:
                if node.name not in columns:
                    raise InvalidInput(f"Column '{node.name}' is not in the table's rows.")
                i = columns.index(node.name)
                return lambda rj: rj[0][i]
            index = int(node.table[len(MODEL_SIDE) :])
            record, answer = p.models[index], answers[index]
            names, _ = self._model_output_names(record, answer)
            if node.name == names[0]:
                return lambda rj: answer.values[rj[1]]
            if node.name in answer.extra:
                values = answer.extra[node.name]
                return lambda rj: values[rj[1]]
            raise InvalidInput(
                f"Model '{record.name}' has no output column '{node.name}' to filter on; "
                f"its outputs: {', '.join(names)}.",
                model=record.name,
            )

        check = compile_condition(p.post_filter, column)
        return lambda row, j: check((row, j)) is True

    async def _write_back(self, p: WriteBackPlan, label: str, query_id: str | None) -> Result:
        """Stream a JOIN's rows into a datasource table, one transaction per batch."""
        entry = self.progress.start(label, "write", query_id)
        target = self._datasource(p.datasource)
        writer = None
        written = 0
        stream = self._join_batches(p.join, entry)
        try:
            async for labels, rows in stream:
                if writer is None:
                    names = p.columns or labels
                    if len(set(names)) != len(names):
                        raise InvalidInput(
                            "Write-back needs distinct column names; rename with AS: "
                            + ", ".join(names)
                        )
                    writer = target.open_writer(p.table, names, schema=p.schema, mode=p.mode)
                if rows:
                    written += await asyncio.to_thread(writer.write, rows)
            if writer is not None:
                await asyncio.to_thread(writer.finish)  # an empty result still makes its table
        except GatewayError as exc:
            if written and "rows_written" not in exc.details:  # the writer already says so
                exc.message += (
                    f" ({written} rows were already written to {p.table} and stay there: "
                    "each batch is its own transaction)"
                )
                exc.args = (exc.message,)
            self.progress.finish(entry, "error", exc.message)
            raise
        except BaseException:
            self.progress.finish(entry, "cancelled")
            raise
        finally:
            await stream.aclose()
            if writer is not None:
                writer.close()
        self.progress.finish(entry, "done")
        where = f"{p.datasource}.{p.schema + '.' if p.schema else ''}{p.table}"
        return Result(
            columns=["rows_written", "table"],
            rows=[[written, where]],
            message=f"{written} rows written to {where}",
        )

    def _join_projection(
        self,
        outputs: list[OutputColumn],
        columns: list[str],
        rows: list[tuple[Any, ...]],
        models: list[PredictorRecord],
        answers: list[Predictions],
    ) -> tuple[list[list[Any]], list[str]]:
        """Per output column, its values for the batch (a list per column) and its label.

        Working column by column keeps the per-row cost to one C-level zip at the end.
        """
        values: list[list[Any]] = []
        labels: list[str] = []
        for col in outputs:
            if col.side == "table":
                names = columns if col.name == "*" else [col.name]
                for name in names:
                    if name not in columns:
                        raise InvalidInput(f"Column '{name}' is not in the table's rows.")
                    values.append(list(map(itemgetter(columns.index(name)), rows)))
                    labels.append(name if col.name == "*" else col.label)
                continue
            record, answer = models[col.model], answers[col.model]
            out_names, _ = self._model_output_names(record, answer)
            names = out_names if col.name == "*" else [col.name]
            for name in names:
                if name not in out_names:
                    hint = did_you_mean(name, out_names)
                    raise InvalidInput(
                        f"Model '{record.name}' has no output column '{name}'."
                        + (f" Did you mean {hint}?" if hint else "")
                        + f" Its outputs: {', '.join(out_names)}.",
                        model=record.name,
                    )
                values.append(answer.values if name == out_names[0] else answer.extra[name])
                labels.append(name if col.name == "*" else col.label)
        return values, labels

    # ------------------------------------------------------------------ catalog as tables

    def _catalog_query(self, p: CatalogQueryPlan) -> Result:
        """Run a SELECT over snapshots of the catalog tables in a private in-memory SQLite.

        The catalog may live in any database; a snapshot keeps user SQL away from it, and the
        catalog is small (one row per model, database and job).
        """
        models = self._predictor_result(self.catalog.list_predictors())
        jobs = Result(
            columns=["id", "model", "status", "error", "rows", "started_at", "finished_at"],
            rows=[
                [j.id, j.predictor, j.status, j.error, j.rows, j.started_at.isoformat(),
                 j.finished_at.isoformat() if j.finished_at else None]
                for j in self.catalog.list_jobs()
            ],
        )  # fmt: skip
        queries = Result(columns=list(ProgressRegistry.COLUMNS), rows=self.progress.rows())
        tables = {
            "models": models,
            "jobs": jobs,
            "databases": self._show_databases(),
            "queries": queries,
        }
        conn = sqlite3.connect(":memory:")
        try:
            for table, data in tables.items():
                names = ", ".join(f'"{c}"' for c in data.columns)
                conn.execute(f"CREATE TABLE {table} ({names})")
                marks = ", ".join("?" for _ in data.columns)
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", data.rows)
            try:
                cursor = conn.execute(p.sql)
            except sqlite3.Error as exc:
                raise InvalidInput(f"Catalog query failed: {exc}") from exc
            columns = [d[0] for d in cursor.description or []]
            return Result(columns=columns, rows=[list(r) for r in cursor.fetchall()])
        finally:
            conn.close()

    # ------------------------------------------------------------------ datasources

    def _datasource_record(self, name: str) -> DatasourceRecord:
        if name == dsmod.EMBEDDED_NAME:
            return dsmod.embedded_record(self.home)
        return self.catalog.get_datasource(name)

    def _datasource(self, name: str) -> dsmod.Datasource:
        return self.datasources.get(self._datasource_record(name))

    async def _native(self, p: NativePlan) -> Result:
        ds = self._datasource(p.datasource)
        try:
            columns, rows = await asyncio.to_thread(ds.query, p.sql)
        except DatasourceError as exc:
            hint = self._misspelt_model(p.bare_tables)
            if hint is not None:
                raise hint from exc
            raise
        return Result(columns=list(columns), rows=[list(r) for r in rows])

    def _misspelt_model(self, tables: Sequence[str]) -> ModelNotFound | None:
        """A failed bare-table query whose table name is close to a model name."""
        names = self.model_names()
        for table in tables:
            hint = did_you_mean(table, names)
            if hint is not None:
                return ModelNotFound(
                    f"No model or table '{table}'. Did you mean model {hint}?",
                    model=table,
                    suggestion=hint,
                )
        return None

    async def _create_database(self, p: st.CreateDatabase) -> Result:
        if p.name == dsmod.EMBEDDED_NAME or self.datasource_dialect(p.name) is not None:
            if p.if_not_exists:
                return Result(message=f"Datasource '{p.name}' already exists.")
            raise DatasourceExists(
                f"Datasource '{p.name}' already exists; DROP DATABASE {p.name} first or pick "
                "another name.",
                datasource=p.name,
            )
        engine, parameters = dsmod.validate(p.engine, dict(p.parameters))
        record = DatasourceRecord(
            name=p.name, engine=engine, parameters=parameters, created_at=_now()
        )
        probe = dsmod.open_datasource(record)
        try:  # refuse a datasource we cannot reach, rather than fail at first use
            await asyncio.to_thread(probe.check)
        finally:
            probe.close()
        record = self.catalog.add_datasource(p.name, engine, parameters)
        return Result(
            columns=["name", "engine", "parameters"],
            rows=[[record.name, record.engine, json.dumps(record.public_parameters())]],
        )

    def _drop_database(self, p: st.DropDatabase) -> Result:
        if p.name == dsmod.EMBEDDED_NAME:
            raise InvalidOption(f"'{p.name}' is the embedded datasource and cannot be dropped.")
        if self.datasource_dialect(p.name) is None:
            if p.if_exists:
                return Result(message=f"Datasource '{p.name}' does not exist; nothing dropped.")
            self.catalog.get_datasource(p.name)  # raises DatasourceNotFound with a hint
        self.catalog.drop_datasource(p.name)
        self.datasources.drop(p.name)
        return Result(message=f"Datasource '{p.name}' dropped.")

    def _show_databases(self) -> Result:
        embedded = dsmod.embedded_record(self.home)
        records = [embedded, *self.catalog.list_datasources()]
        rows = [[r.name, r.engine, json.dumps(r.public_parameters())] for r in records]
        return Result(columns=["name", "engine", "parameters"], rows=rows)


async def _first_batch_then_rest(
    stream: AsyncIterator[tuple[list[str], list[Sequence[Any]]]],
    entry: QueryProgress,
    progress: ProgressRegistry,
) -> StreamResult:
    """Run the stream up to its first batch, so early errors are ordinary errors and the
    column names are known; the rest is read when the caller iterates."""
    try:
        labels, first = await anext(stream)
    except BaseException as exc:
        await stream.aclose()
        status = "error" if isinstance(exc, GatewayError) else "cancelled"
        progress.finish(entry, status, getattr(exc, "message", None))
        raise

    async def rows() -> AsyncIterator[list[Sequence[Any]]]:
        try:
            if first:
                yield first
            async for _, batch in stream:
                yield batch
        except GatewayError as exc:
            progress.finish(entry, "error", exc.message)
            raise
        except BaseException:
            progress.finish(entry, "cancelled")
            raise
        finally:
            await stream.aclose()
        progress.finish(entry, "done")

    return StreamResult(columns=labels, batches=rows(), query_id=entry.id)


def _project(rows: Sequence[Sequence[Any]], index: list[int]) -> list[tuple[Any, ...]]:
    """The columns ``index`` of every row, as tuples (itemgetter runs the loop in C)."""
    if len(index) == 1:  # itemgetter of one index returns the bare value, not a tuple
        i = index[0]
        return [(r[i],) for r in rows]
    return list(map(itemgetter(*index), rows))


def _set_total(entry: QueryProgress, future: asyncio.Future[int | None]) -> None:
    if not future.cancelled() and future.exception() is None:
        entry.rows_total = future.result()


def _now() -> datetime:
    return datetime.now(UTC)
