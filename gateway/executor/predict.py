"""Predictions: one batch to one model, a row from literals, rows sent as JSON.

Batches are lists in, same-length lists out: adapters check it, and so does this module
(never trust blindly). A model that declared its features (``dtype_dict``) gets exactly those
columns, in that order, whatever else the input has, and their values are checked against
the declared types first (``gateway.executor.inputs``): every value a user typed (one row,
JSON rows), a cheap per-column look at a JOIN's batches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any, Protocol

from adapters.base import Adapter, Endpoint, Predictions
from adapters.urls import redact_url
from byom.errors import (
    EndpointError,
    EndpointHTTPError,
    InvalidInput,
    InvalidOption,
    ModelNotReady,
    UserError,
    did_you_mean,
)
from catalog.records import PredictorRecord
from gateway.executor import inputs
from gateway.executor.services import Services
from gateway.plans import PredictRowPlan
from gateway.result import Result

PREDICTION_COLUMN = "prediction"  # the output column of a model registered without PREDICT


class AdapterSource(Protocol):
    """What ``predict_batch`` needs: ``Services``, or a Ray JOIN worker's own adapters."""

    def adapter_for(self, record: PredictorRecord) -> tuple[Adapter, Endpoint]: ...


def check_ready(record: PredictorRecord) -> PredictorRecord:
    """``record`` if its model can predict now, else a clear ``ModelNotReady``."""
    if record.status == "complete" and record.url_predict:
        return record
    detail = f": {record.error}" if record.error else ""
    advice = (
        "Re-create it after fixing the cause"
        if record.status == "error"
        else f"Wait for training to finish (DESCRIBE {record.name})"
    )
    raise ModelNotReady(
        f"Model '{record.name}' cannot predict: its status is '{record.status}'{detail}. {advice}.",
        model=record.name,
        status=record.status,
    )


def output_names(record: PredictorRecord, predictions: Predictions) -> list[str]:
    """Output column names of a model: its target (or 'prediction'), then extra keys.

    A built-in task whose answers are not its target's values (a recommender answers item
    ids, its target is the rating) names its first output 'prediction'.
    """
    target = record.target or PREDICTION_COLUMN
    if record.kind == "builtin" and record.task and not _answers_target(record.task):
        target = PREDICTION_COLUMN
    return [target] + [k for k in predictions.extra if k != target]


def _answers_target(task: str) -> bool:
    from builtin_models.tasks import get_task  # the registry only: no ML framework

    return get_task(task).answers_target


def row_outputs(predictions: Predictions, i: int) -> list[Any]:
    """Row ``i``'s outputs, in ``output_names`` order."""
    return [predictions.values[i]] + [v[i] for v in predictions.extra.values()]


async def predict_batch(
    services: AdapterSource,
    record: PredictorRecord,
    columns: list[str],
    rows: Sequence[Sequence[Any]],
    *,
    checked: bool = False,
    params: dict[str, Any] | None = None,
) -> Predictions:
    """One batch to one model: send only the model's features when it declared them.

    Their values are checked against ``dtype_dict`` the cheap way of a JOIN batch
    (``inputs.check_batch``) unless the caller ``checked`` them all already.
    """
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
        if not checked:
            rows = inputs.check_batch(record.name, record.dtype_dict, record.target, columns, rows)
    adapter, endpoint = services.adapter_for(record)
    if params:
        endpoint = replace(endpoint, params=dict(params))
    try:
        predictions = await adapter.predict(endpoint, columns, rows)
    except EndpointHTTPError as exc:
        refusal = refused(record, exc, params)
        if refusal is None:
            _name(exc, record)
            raise
        raise refusal from exc
    except EndpointError as exc:
        _name(exc, record)
        raise
    if predictions.rows is not None:  # one-to-many: the adapter checked the row indexes
        return predictions
    if len(predictions.values) != len(rows):  # adapters check this too; never trust blindly
        raise EndpointError(
            f"Model '{record.name}' returned {len(predictions.values)} predictions for "
            f"{len(rows)} rows from {redact_url(record.url_predict)}",
            model=record.name,
            url=redact_url(record.url_predict),
        )
    return predictions


def _name(exc: EndpointError, record: PredictorRecord) -> None:
    """Make ``exc`` name the model and its URL where the adapter's message does not (a JOIN
    of several models must say which one failed), in place."""
    url = redact_url(record.url_predict)  # never a token of the URL in a message
    exc.details.setdefault("model", record.name)
    exc.details.setdefault("url", url)
    parts: list[str] = []
    if f"'{record.name}'" not in exc.message:
        parts.append(f"Model '{record.name}'")
    if url and url not in exc.message:
        parts.append(f"at {url}" if parts else f"(URL {url})")
    if parts:
        exc.amend(before=" ".join(parts) + ": ")


def refused(
    record: PredictorRecord, exc: EndpointHTTPError, params: Mapping[str, Any] | None
) -> UserError | None:
    """A built-in model's HTTP 400/422 as the user's error (the gateway runs its deployment,
    so a refusal is of the query's rows or ``USING`` values, not a broken endpoint):
    ``InvalidOption`` naming the first ``params`` key its reason names, else
    ``InvalidInput``. None for other models and other answers."""
    status = exc.details.get("endpoint_status")
    if record.kind != "builtin" or status not in (400, 422):
        return None
    reason = _reason(str(exc.details.get("body") or ""))
    given = dict(params or {})
    named = [k for k in given if re.search(rf"\b{re.escape(k)}\b", reason)]
    if named:
        key = named[0]
        return InvalidOption(
            f"Model '{record.name}' refused USING {key} = {given[key]!r}: {reason}",
            model=record.name,
            option=key,
        )
    return InvalidInput(f"Model '{record.name}' cannot predict: {reason}", model=record.name)


def _reason(body: str) -> str:
    """The ``detail`` of a FastAPI error body (without the deployment's "cannot predict: "),
    else the body as it is."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = detail if isinstance(detail, str) else body or "no reason given"
    return text.removeprefix("cannot predict: ")


async def predict_row(services: Services, p: PredictRowPlan) -> Result:
    """``SELECT ... FROM model WHERE a=1 AND b=2``: the inputs and the outputs, one row."""
    record = await services.ensure_served(check_ready(p.model))
    columns = list(p.inputs)
    (row,) = inputs.check_rows(
        record.name, record.dtype_dict, record.target, columns, [tuple(p.inputs.values())]
    )
    predictions = await predict_batch(
        services, record, columns, [row], checked=True, params=p.model_params
    )
    out_names = output_names(record, predictions)
    given = {c: v for c, v in zip(columns, row, strict=True) if c not in out_names}
    labels: list[str] = []
    rows: list[list[Any]] = []
    # One row per answer: a recommender's top-k answers k rows (none for an unknown id).
    answers = range(len(predictions.values)) if predictions.rows is not None else [0]
    for j in answers:
        available = dict(given)
        available.update(zip(out_names, row_outputs(predictions, j), strict=True))
        labels, out = _pick(p, record, available)
        rows.append(out)
    if not rows:
        labels, _ = _pick(p, record, dict.fromkeys([*given, *out_names]))
    return Result(columns=labels, rows=rows)


def _pick(
    p: PredictRowPlan, record: PredictorRecord, available: dict[str, Any]
) -> tuple[list[str], list[Any]]:
    """The selected columns' labels and values from one answer row's ``available`` ones."""
    labels: list[str] = []
    out: list[Any] = []
    for col in p.outputs:
        if col.name == "*":
            labels += list(available)
            out += list(available.values())
        elif col.name in available:
            labels.append(col.label)
            out.append(available[col.name])
        else:
            hint = did_you_mean(col.name, available)
            raise InvalidInput(
                f"Column '{col.name}' is neither an input nor an output of model "
                f"'{record.name}'."
                + (f" Did you mean {hint}?" if hint else "")
                + f" Available: {', '.join(available)}.",
                model=record.name,
            )
    return labels, out


async def predict_json_rows(services: Services, name: str, rows: list[dict[str, Any]]) -> Result:
    """Predict JSON rows (the HTTP API's predict endpoint): inputs + outputs per row."""
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise InvalidInput('Send rows as a non-empty list of objects: {"rows": [{...}]}')
    record = services.catalog.find_predictor(name)
    if record is None:
        raise services.model_not_found(name)
    record = await services.ensure_served(check_ready(record))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    values = inputs.check_rows(
        record.name,
        record.dtype_dict,
        record.target,
        columns,
        [tuple(r.get(c) for c in columns) for r in rows],
    )
    predictions = await predict_batch(services, record, columns, values, checked=True)
    out_names = output_names(record, predictions)
    keep = [i for i, c in enumerate(columns) if c not in out_names]
    result_rows = [
        [row[i] for i in keep] + row_outputs(predictions, j) for j, row in enumerate(values)
    ]
    return Result(columns=[columns[i] for i in keep] + out_names, rows=result_rows)


def _project(rows: Sequence[Sequence[Any]], index: list[int]) -> list[tuple[Any, ...]]:
    """The columns ``index`` of every row, as tuples (itemgetter runs the loop in C)."""
    if len(index) == 1:  # itemgetter of one index returns the bare value, not a tuple
        i = index[0]
        return [(r[i],) for r in rows]
    return list(map(itemgetter(*index), rows))
