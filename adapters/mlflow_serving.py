"""The ``mlflow`` wire format: the scoring server of ``mlflow models serve`` (predict only).

Predict: ``POST url.predict`` (normally ``.../invocations``) with
``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``; the answer is
``{"predictions": P}`` (MLflow 2+/3) or a bare ``P`` (MLflow 1.x), where ``P`` is

* a list of values, one per row;
* a list of objects, one per row (a model returning a DataFrame): multi-output;
* an object of lists, column name -> one value per row: multi-output.

For multi-output answers the prediction is the target column's output when the model has a
target of that name, else the first output; every output is also returned in ``extra``.
(Named ``mlflow_serving`` so it cannot shadow the ``mlflow`` package.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.base import Endpoint, Predictions
from adapters.http import HttpAdapter, post_json
from adapters.urls import redact_url
from adapters.wire import (
    JSON,
    check_columns,
    check_dtype,
    check_widths,
    dumps,
    json_kind,
    payload_option,
    show,
)
from byom.errors import EndpointBadResponse, InvalidOption

PREDICTIONS_KEY = "predictions"


class MlflowAdapter(HttpAdapter):
    """Adapter for MLflow scoring servers (``/invocations``)."""

    name = "mlflow"
    # MLflow's scoring server reads JSON and CSV only; CSV loses types (everything is
    # re-inferred) and is 10-30x slower to write than orjson (benchmarks/profile_payload.py).
    payloads = (JSON,)
    trains = False  # `mlflow models serve` only scores

    async def train(
        self, endpoint: Endpoint, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        """Always an error: MLflow scoring servers have no training route."""
        raise InvalidOption(
            f"Model '{endpoint.model}': format 'mlflow' is predict-only; train the model "
            "outside and register it without url.train.",
            model=endpoint.model,
        )

    async def predict(
        self, endpoint: Endpoint, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Predictions:
        """Predict one batch with a ``dataframe_split`` request; one value per row back."""
        if not rows:
            return Predictions(values=[])
        model, url = endpoint.model, endpoint.url_predict
        payload_option(endpoint.options, format=self.name, allowed=self.payloads, model=model)
        cols = check_columns(columns, model=model)
        check_widths(cols, rows, model=model)
        # Rows go as they are: orjson writes tuples and lists as arrays itself, and the
        # fallback turns other sequences (SQLAlchemy Row, namedtuples) into arrays.
        split = {"columns": cols, "data": rows}
        request: dict[str, Any] = {"dataframe_split": split}
        if endpoint.params:
            request["params"] = endpoint.params  # MLflow's scoring server passes them on
        body = dumps(request, model=model)
        answer = await post_json(
            self.client,
            url,
            body,
            model=model,
            settings=self.settings,
            retry=True,
            breakers=self.breakers,
        )
        return parse_predictions(answer, endpoint, len(rows))


def parse_predictions(answer: Any, endpoint: Endpoint, n_rows: int) -> Predictions:
    """Check an MLflow scoring answer and turn it into ``Predictions`` (see module doc)."""
    model, url = endpoint.model, redact_url(endpoint.url_predict)

    def bad(message: str) -> EndpointBadResponse:
        return EndpointBadResponse(f"Model '{model}': {url} {message}", model=model, url=url)

    if isinstance(answer, dict):
        if PREDICTIONS_KEY not in answer:
            keys = ", ".join(sorted(answer)) or "none"
            raise bad(f"returned no predictions: missing key '{PREDICTIONS_KEY}' (keys: {keys}).")
        preds = answer[PREDICTIONS_KEY]
    elif isinstance(answer, list):  # MLflow 1.x answered the bare list
        preds = answer
    else:
        raise bad(
            f"returned a JSON {json_kind(answer)}, expected an object with key "
            f"'{PREDICTIONS_KEY}': {show(answer)}"
        )

    if isinstance(preds, dict):
        outputs = _columns_form(preds, n_rows, bad)
    elif isinstance(preds, list):
        if len(preds) != n_rows:
            raise bad(f"returned {len(preds)} predictions for {n_rows} rows.")
        if any(isinstance(p, dict) for p in preds):
            outputs = _records_form(preds, bad)
        else:
            check_dtype(preds, endpoint)
            return Predictions(values=preds)
    else:
        raise bad(
            f"returned '{PREDICTIONS_KEY}' as a JSON {json_kind(preds)}, expected a list with "
            f"one value per row: {show(preds, 80)}"
        )

    key = endpoint.target if endpoint.target in outputs else next(iter(outputs))
    values = outputs[key]
    check_dtype(values, endpoint)
    return Predictions(values=values, extra=outputs)


def _columns_form(preds: dict[str, Any], n_rows: int, bad: Any) -> dict[str, list[Any]]:
    """``{"col": [v0, v1, ...], ...}``: every value a list of ``n_rows`` items."""
    if not preds:
        raise bad(f"returned '{PREDICTIONS_KEY}' as an empty object.")
    for key, values in preds.items():
        if not isinstance(values, list):
            raise bad(
                f"returned '{PREDICTIONS_KEY}.{key}' as a JSON {json_kind(values)}, expected a "
                f"list with one value per row: {show(values, 80)}"
            )
        if len(values) != n_rows:
            raise bad(f"returned {len(values)} values of '{key}' for {n_rows} rows.")
    return dict(preds)


def _records_form(preds: list[Any], bad: Any) -> dict[str, list[Any]]:
    """``[{"col": v0, ...}, {"col": v1, ...}]``: every row an object with the same keys."""
    first = preds[0]
    if not isinstance(first, dict) or not first:
        raise bad(
            f"returned row 0 as {show(first, 80)}; expected every prediction to be an object "
            "with the same keys when any is."
        )
    keys = list(first)
    for i, row in enumerate(preds):
        if not isinstance(row, dict):
            raise bad(
                f"returned prediction {i} as {show(row, 80)} while prediction 0 is an object; "
                "expected every prediction to be an object with the same keys."
            )
        if set(row) != set(keys):
            raise bad(
                f"returned prediction {i} with keys {sorted(row)}; prediction 0 has {sorted(keys)}."
            )
    return {key: [row[key] for row in preds] for key in keys}
