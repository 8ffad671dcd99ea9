"""The ``ray_serve`` wire format (MindsDB BYOM): ``{"df": "<records JSON>"}`` in, lists out.

Train: ``POST url.train`` ``{"df": ..., "target": ...}`` -> ``{"status": "ok", ...}``.
Predict: ``POST url.predict`` ``{"df": ...}`` -> ``{"prediction": [...], "<extra>": [...]}``.
``df`` is a JSON *string* holding a list of row objects, so the endpoint can do
``pd.DataFrame(json.loads(df))``.

The predictor option ``payload`` (``USING payload='...'``) picks another request body for
endpoints that accept it; answers are JSON in every case:

* ``json`` (default): the format above;
* ``json_columns``: the same, but ``df`` holds ``{"col": [values...]}`` (still read by
  ``pd.DataFrame(json.loads(df))``, and cheaper to write and to read);
* ``parquet``: the batch as a Parquet file, ``Content-Type: application/vnd.apache.parquet``;
* ``arrow``: an Arrow IPC stream, ``Content-Type: application/vnd.apache.arrow.stream``.

With ``parquet``/``arrow`` the train target travels as the query parameter ``?target=col``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import httpx
import orjson

from adapters.base import Endpoint, Predictions
from adapters.http import HttpAdapter, post_json
from adapters.urls import redact_url
from adapters.wire import (
    ARROW,
    CONTENT_TYPES,
    JSON,
    JSON_COLUMNS,
    PARQUET,
    arrow_stream_bytes,
    check_dtype,
    columns_json,
    dumps,
    json_kind,
    json_string,
    parquet_bytes,
    payload_option,
    records_json,
    show,
)
from byom.errors import EndpointBadResponse, InvalidInput, InvalidOption

PREDICTION_KEY = "prediction"
ROW_KEY = "row"  # one-to-many answers: the input row of each output row
PAYLOADS = (JSON, JSON_COLUMNS, PARQUET, ARROW)


class Request(NamedTuple):
    """One request's body and how to send it."""

    body: bytes
    content_type: str
    params: dict[str, str]  # query parameters (the train target of binary payloads)
    hint: str | None  # appended to HTTP 4xx errors: the endpoint may not read this payload


def build_request(
    payload: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    model: str,
    target: str | None = None,
    params: dict[str, Any] | None = None,
) -> Request:
    """The request for a batch in ``payload`` (one of ``PAYLOADS``); ``target`` for train,
    ``params`` the query's model parameters (JSON: ``"params": {...}``; binary payloads: the
    query parameter ``params``, JSON text)."""
    if payload in (JSON, JSON_COLUMNS):
        encode = records_json if payload == JSON else columns_json
        # The outer object is written by hand: dumping {"df": text} needs the same
        # JSON-string pass plus a dict, and gives the same bytes.
        parts = [b'{"df":', json_string(encode(columns, rows, model=model))]
        if target is not None:
            parts += [b',"target":', orjson.dumps(target)]
        if params:
            parts += [b',"params":', dumps(params, model=model)]
        parts.append(b"}")
        body = b"".join(parts)  # one copy of a body that can be megabytes
        hint = None
        if payload == JSON_COLUMNS:
            hint = "The endpoint may not read a columnar df; register it with payload='json'."
        return Request(body, CONTENT_TYPES[payload], {}, hint)
    if payload not in PAYLOADS:
        raise ValueError(f"unknown payload {payload!r}")  # payload_option() screens users
    encode = parquet_bytes if payload == PARQUET else arrow_stream_bytes
    hint = (
        f"The endpoint may not accept payload='{payload}' "
        f"({CONTENT_TYPES[payload]}); register it with payload='json'."
    )
    query = {} if target is None else {"target": target}
    if params:
        query["params"] = dumps(params, model=model).decode()
    return Request(encode(columns, rows, model=model), CONTENT_TYPES[payload], query, hint)


class RayServeAdapter(HttpAdapter):
    """Adapter for endpoints that speak the MindsDB ``ray_serve`` protocol."""

    name = "ray_serve"
    payloads = PAYLOADS
    trains = True

    def _payload(self, endpoint: Endpoint) -> str:
        return payload_option(
            endpoint.options, format=self.name, allowed=self.payloads, model=endpoint.model
        )

    async def train(
        self, endpoint: Endpoint, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        """Send all training rows in one call (never retried: training is not idempotent)."""
        model = endpoint.model
        if endpoint.url_train is None:
            raise InvalidOption(
                f"Model '{model}' has no url.train, so it cannot be trained through the "
                "gateway; register it with url.train = '<http://host/.../train>'.",
                model=model,
            )
        if endpoint.target is None:
            raise InvalidOption(
                f"Model '{model}': training needs a target column (PREDICT <column>).",
                model=model,
            )
        if endpoint.target not in columns:
            raise InvalidInput(
                f"Model '{model}': the target column '{endpoint.target}' is not among the "
                f"training columns ({', '.join(columns)}).",
                model=model,
            )
        if not rows:
            raise InvalidInput(
                f"Model '{model}': the training query returned no rows.", model=model
            )
        request = build_request(
            self._payload(endpoint), columns, rows, model=model, target=endpoint.target
        )
        url = endpoint.url_train
        if request.params:
            # merged, not replaced: url.train may carry its own query string
            url = str(httpx.URL(url).copy_merge_params(request.params))
        answer = await post_json(
            self.client,
            url,
            request.body,
            model=model,
            settings=self.settings,
            retry=False,
            timeout=self.settings.train_timeout,
            url_option="url.train",
            content_type=request.content_type,
            client_error_hint=request.hint,
            breakers=self.breakers,
        )
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            got = show(answer)
            url = redact_url(url) or ""
            raise EndpointBadResponse(
                f"Model '{model}': {url} did not confirm training; expected a JSON object with "
                f'"status": "ok", got: {got}',
                model=model,
                url=url,
                answer=got,
            )
        return answer

    async def predict(
        self, endpoint: Endpoint, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Predictions:
        """Predict one batch; the answer must hold one ``prediction`` per row, in order."""
        if not rows:
            return Predictions(values=[])
        model, url = endpoint.model, endpoint.url_predict
        request = build_request(
            self._payload(endpoint), columns, rows, model=model, params=endpoint.params
        )
        if request.params:
            url = str(httpx.URL(url).copy_merge_params(request.params))
        answer = await post_json(
            self.client,
            url,
            request.body,
            model=model,
            settings=self.settings,
            retry=True,
            content_type=request.content_type,
            client_error_hint=request.hint,
            breakers=self.breakers,
        )
        return parse_prediction(answer, endpoint, len(rows))


def parse_prediction(answer: Any, endpoint: Endpoint, n_rows: int) -> Predictions:
    """Check a ``ray_serve`` predict answer and turn it into ``Predictions``.

    Keys other than ``prediction`` whose values are lists of ``n_rows`` items become
    ``extra`` (e.g. ``confidence``); other keys (scalars, lists of another length such as a
    class list) are metadata and ignored. A one-to-many answer (top-k items per user) also
    has ``row``: the input row of each output row, ascending; every list then has its length.
    """
    model, url = endpoint.model, redact_url(endpoint.url_predict)

    def bad(message: str) -> EndpointBadResponse:
        return EndpointBadResponse(f"Model '{model}': {url} {message}", model=model, url=url)

    if not isinstance(answer, dict):
        raise bad(
            f"returned a JSON {json_kind(answer)}, expected an object with key "
            f'"{PREDICTION_KEY}": {show(answer)}'
        )
    if PREDICTION_KEY not in answer:
        keys = ", ".join(sorted(answer)) or "none"
        raise bad(f"returned no predictions: missing key '{PREDICTION_KEY}' (keys: {keys}).")
    values = answer[PREDICTION_KEY]
    if not isinstance(values, list):
        raise bad(
            f"returned '{PREDICTION_KEY}' as a JSON {json_kind(values)}, expected a list with "
            f"one value per row: {show(values, 80)}"
        )
    if ROW_KEY in answer:
        return _one_to_many(answer, values, n_rows, bad)
    if len(values) != n_rows:
        raise bad(f"returned {len(values)} predictions for {n_rows} rows.")
    check_dtype(values, endpoint)
    extra = {
        key: value
        for key, value in answer.items()
        if key != PREDICTION_KEY and isinstance(value, list) and len(value) == n_rows
    }
    return Predictions(values=values, extra=extra)


def _one_to_many(answer: dict[str, Any], values: list[Any], n_rows: int, bad: Any) -> Predictions:
    """A ``row``-indexed answer: each index an input row, ascending, lists of one length."""
    rows = answer[ROW_KEY]
    if not isinstance(rows, list) or len(rows) != len(values):
        raise bad(f"returned '{ROW_KEY}' that is not a list of one input row per prediction.")
    last = -1
    for index in rows:
        if isinstance(index, bool) or not isinstance(index, int) or not last <= index < n_rows:
            raise bad(
                f"returned '{ROW_KEY}' {show(index)}: expected ascending input row numbers "
                f"from 0 to {n_rows - 1}."
            )
        last = index
    extra = {
        key: value
        for key, value in answer.items()
        if key not in (PREDICTION_KEY, ROW_KEY) and isinstance(value, list)
        and len(value) == len(rows)
    }  # fmt: skip
    return Predictions(values=values, extra=extra, rows=rows)
