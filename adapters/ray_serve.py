"""The ``ray_serve`` wire format (MindsDB BYOM): ``{"df": "<records JSON>"}`` in, lists out.

Train: ``POST url.train`` ``{"df": ..., "target": ...}`` -> ``{"status": "ok", ...}``.
Predict: ``POST url.predict`` ``{"df": ...}`` -> ``{"prediction": [...], "<extra>": [...]}``.
``df`` is a JSON *string* holding a list of row objects, so the endpoint can do
``pd.DataFrame(json.loads(df))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.base import Endpoint, Predictions
from adapters.http import (
    DEFAULT_SETTINGS,
    HttpSettings,
    check_dtype,
    dumps,
    json_kind,
    post_json,
    records,
    show,
)
from gateway.errors import EndpointBadResponse, InvalidInput, InvalidOption

PREDICTION_KEY = "prediction"


class RayServeAdapter:
    """Adapter for endpoints that speak the MindsDB ``ray_serve`` protocol."""

    name = "ray_serve"

    def __init__(
        self, client: httpx.AsyncClient, settings: HttpSettings = DEFAULT_SETTINGS
    ) -> None:
        self.client = client
        self.settings = settings

    def _df(self, endpoint: Endpoint, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
        return dumps(records(columns, rows, model=endpoint.model), model=endpoint.model).decode()

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
        body = dumps(
            {"df": self._df(endpoint, columns, rows), "target": endpoint.target}, model=model
        )
        url = endpoint.url_train
        answer = await post_json(
            self.client,
            url,
            body,
            model=model,
            settings=self.settings,
            retry=False,
            timeout=self.settings.train_timeout,
            url_option="url.train",
        )
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            got = show(answer)
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
        body = dumps({"df": self._df(endpoint, columns, rows)}, model=model)
        answer = await post_json(
            self.client, url, body, model=model, settings=self.settings, retry=True
        )
        return parse_prediction(answer, endpoint, len(rows))


def parse_prediction(answer: Any, endpoint: Endpoint, n_rows: int) -> Predictions:
    """Check a ``ray_serve`` predict answer and turn it into ``Predictions``.

    Keys other than ``prediction`` whose values are lists of ``n_rows`` items become
    ``extra`` (e.g. ``confidence``); other keys (scalars, lists of another length such as a
    class list) are metadata and ignored.
    """
    model, url = endpoint.model, endpoint.url_predict

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
    if len(values) != n_rows:
        raise bad(f"returned {len(values)} predictions for {n_rows} rows.")
    check_dtype(values, endpoint)
    extra = {
        key: value
        for key, value in answer.items()
        if key != PREDICTION_KEY and isinstance(value, list) and len(value) == n_rows
    }
    return Predictions(values=values, extra=extra)
