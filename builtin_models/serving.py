"""A Ray Serve deployment per model version, speaking the ``ray_serve`` predict protocol.

Routes under the application's route prefix (e.g. ``/my_model``):

* ``POST /predict`` ``{"df": "<records JSON string>"}`` -> ``{"prediction": [...],
  <more per-row lists>}``: the logged MLflow model's output columns, one list each (for
  text classification ``prediction``, ``confidence``, ``probabilities``; see
  ``text_classifier_model.py``). ``df`` may also be columnar JSON. An empty ``df`` answers
  empty lists; a body that is not ``{"df": <JSON string>}``, rows the model cannot read,
  or ``params`` its signature does not declare (or values it refuses) answer 400 with
  ``{"detail": ...}``.
* ``GET /`` ``{"status": "ready", "model_uri": ...}`` for health checks.

Concurrent requests are merged by ``@serve.batch`` (up to ``max_batch_size`` requests or
``batch_wait_timeout_s``) into one model call per distinct ``params``: requests are never
answered with another request's settings (e.g. generation options). The weights are
loaded from MLflow (:func:`builtin_models.artifacts.load_model`) when the replica starts.

    serve.run(build_app(model_uri, "my_model"), name="my_model", route_prefix="/my_model")
"""

# No `from __future__ import annotations`: Serve pickles the ingress app, and on the replica
# FastAPI could not resolve the string annotation "Request", so it would take `request` for a
# required query parameter (every POST answered 422).
import asyncio
import bisect
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from mlflow.exceptions import MlflowException
from ray import serve
from ray.serve import Application

from builtin_models import artifacts
from builtin_models.cluster import resource_options

__all__ = [
    "DEFAULT_NUM_CPUS",
    "ModelDeployment",
    "ModelServer",
    "answer_lists",
    "build_app",
    "declared_params",
    "parse_body",
    "replica_actor_options",
]

#: CPUs a replica reserves: small, so many versions fit next to training on a small box.
DEFAULT_NUM_CPUS = 0.2
ROW = "row"  # one-to-many answers: the input row of each output row
DEFAULT_MAX_BATCH_SIZE = 16
# No wait for a lone request (as Triton's default queue delay): what arrives while the
# model works on a batch is queued and goes in the next one (``BYOM_BATCH_WAIT_MS``).
DEFAULT_BATCH_WAIT_S = 0.0
#: Environment a replica needs wherever Ray starts it (no model hub, no telemetry).
_REPLICA_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MLFLOW_DISABLE_TELEMETRY")

api = FastAPI(title="byom built-in model")


def parse_body(body: Any) -> pd.DataFrame:
    """The ``df`` of a ray_serve predict body as a DataFrame (ValueError with the reason)."""
    if not isinstance(body, dict) or not isinstance(body.get("df"), str):
        raise ValueError('expected a JSON object with "df": a JSON string of records')
    try:
        return pd.DataFrame(json.loads(body["df"]))
    except ValueError as exc:
        raise ValueError(f'"df" is not a JSON table: {exc}') from exc


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def answer_lists(output: Any, rows: int) -> dict[str, list[Any]]:
    """A pyfunc output (DataFrame, Series, list) as the protocol's per-row lists.

    An output with a ``row`` column is one-to-many (a recommender's top-k per input row):
    its lists have one item per output row, ``row`` naming the input row, ascending.
    """
    if isinstance(output, pd.DataFrame):
        answer = {str(c): [_json_value(v) for v in output[c].tolist()] for c in output.columns}
    elif isinstance(output, pd.Series):
        answer = {"prediction": [_json_value(v) for v in output.tolist()]}
    else:
        answer = {"prediction": [_json_value(v) for v in list(output)]}
    if "prediction" not in answer:
        raise ValueError(f"the model answered no 'prediction' column: {sorted(answer)}")
    length = len(answer[ROW]) if ROW in answer else rows
    wrong = [k for k, v in answer.items() if len(v) != length]
    if wrong:
        raise ValueError(f"the model answered {len(answer[wrong[0]])} values for {length} rows")
    if ROW in answer and answer[ROW] != sorted(answer[ROW]):
        raise ValueError("the model's 'row' column is not in input order")
    return answer


def split_answer(merged: dict[str, list[Any]], lengths: list[int]) -> list[dict[str, list[Any]]]:
    """The answer of one model call over several requests' rows, cut back per request
    (``lengths``: rows per request, in order); ``row`` indexes become per request."""
    answers: list[dict[str, list[Any]]] = []
    start = 0
    for length in lengths:
        end = start + length
        if ROW in merged:
            rows = merged[ROW]
            a, b = bisect.bisect_left(rows, start), bisect.bisect_left(rows, end)
            answer = {k: v[a:b] for k, v in merged.items()}
            answer[ROW] = [r - start for r in answer[ROW]]
        else:
            answer = {k: v[start:end] for k, v in merged.items()}
        answers.append(answer)
        start = end
    return answers


def declared_params(model: Any) -> list[str] | None:
    """The params a loaded MLflow model's signature declares ([] for none); None for a
    stand-in without MLflow metadata (anything goes). MLflow itself would drop undeclared
    params with a log warning only: a misspelt ``USING max_new_token`` must be an error."""
    metadata = getattr(model, "metadata", None)
    if metadata is None or not hasattr(metadata, "get_params_schema"):
        return None
    schema = metadata.get_params_schema()
    return [] if schema is None else [param.name for param in schema.params]


class ModelServer:
    """The protocol without HTTP: one logged MLflow model (a model version), batched.

    :class:`ModelDeployment` adds the routes; tests and other front ends can use this.
    """

    def __init__(
        self,
        model_uri: str,
        tracking_uri: str | None = None,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S,
        num_threads: int | None = None,
        outputs: dict[str, str] | None = None,
    ) -> None:
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        self.model_uri = model_uri
        # Output renames, e.g. {"probabilities": "labels_proba"}: the SQL column names.
        self.outputs = dict(outputs or {})
        self.model = artifacts.load_model(model_uri, tracking_uri)
        self.param_names = declared_params(self.model)
        # Batched per instance (Serve's decorator on the class would share one queue, and
        # its event loop, between every ModelServer of a process).
        self.predict_frames = serve.batch(
            max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s
        )(self._predict_requests)

    async def answer(self, body: Any) -> dict[str, list[Any]]:
        """``{"df": ..., "params": {...}}`` -> per-row lists; HTTPException 400 for what
        cannot be read."""
        try:
            frame = parse_body(body)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise HTTPException(400, '"params" must be a JSON object of model parameters')
        declared = self.param_names
        unknown = sorted(set(params) - set(declared)) if declared is not None else []
        if unknown:
            takes = ", ".join(declared or ()) or "none"
            raise HTTPException(
                400, f"unknown parameter(s) {', '.join(unknown)}; this model takes: {takes}"
            )
        if frame.empty:
            return {"prediction": []}
        try:
            return await self.predict_frames((frame, params))
        except (ValueError, TypeError, MlflowException) as exc:  # rows or params it refuses
            raise HTTPException(400, f"cannot predict: {exc}") from exc

    async def _predict_requests(
        self, requests: list[tuple[pd.DataFrame, dict[str, Any]]]
    ) -> list[dict[str, list[Any]]]:
        """One model call per distinct ``params`` for the frames of several requests; one
        answer per request, in order."""
        groups: dict[str, list[int]] = {}
        for i, (_, params) in enumerate(requests):
            groups.setdefault(json.dumps(params, sort_keys=True), []).append(i)
        answers: list[dict[str, list[Any]]] = [{} for _ in requests]
        for members in groups.values():
            frames = [requests[i][0] for i in members]
            params = requests[members[0]][1]
            combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            # Off the event loop, so health checks and new requests are taken meanwhile.
            output = await asyncio.to_thread(self._predict, combined, params)
            merged = {
                self.outputs.get(k, k): v for k, v in answer_lists(output, len(combined)).items()
            }
            cut = split_answer(merged, [len(f) for f in frames])
            for i, answer in zip(members, cut, strict=True):
                answers[i] = answer
        return answers

    def _predict(self, frame: pd.DataFrame, params: dict[str, Any]) -> Any:
        return self.model.predict(frame, params=params) if params else self.model.predict(frame)


@serve.deployment(ray_actor_options={"num_cpus": DEFAULT_NUM_CPUS})
@serve.ingress(api)
class ModelDeployment(ModelServer):
    """The HTTP routes of :class:`ModelServer` as a Ray Serve deployment."""

    @api.get("/")
    async def health(self) -> dict[str, Any]:
        return {"status": "ready", "model_uri": self.model_uri}

    @api.post("/predict")
    async def predict(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise HTTPException(400, f"request body is not JSON: {exc}") from exc
        return await self.answer(body)


def build_app(
    model_uri: str,
    name: str,
    *,
    tracking_uri: str | None = None,
    num_cpus: float = DEFAULT_NUM_CPUS,
    num_replicas: int = 1,
    resources: Mapping[str, float] | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S,
    num_threads: int | None = None,
    outputs: dict[str, str] | None = None,
) -> Application:
    """The Serve application of one model version, for ``serve.run(app, name=...,
    route_prefix=...)``. ``name`` names the deployment (unique per version); each of its
    ``num_replicas`` replicas reserves ``num_cpus`` and the custom Ray ``resources``."""
    deployment = ModelDeployment.options(
        name=name,
        num_replicas=num_replicas,
        # Serve's default (5 requests at once per replica) would cap every batch at 5.
        max_ongoing_requests=max(2 * max_batch_size, 32),
        ray_actor_options=replica_actor_options(num_cpus, resources),
    )
    return deployment.bind(
        model_uri,
        tracking_uri,
        max_batch_size=max_batch_size,
        batch_wait_timeout_s=batch_wait_timeout_s,
        num_threads=num_threads,
        outputs=outputs,
    )


def replica_actor_options(
    num_cpus: float, resources: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Serve's ``ray_actor_options`` of a replica: its CPUs, its custom Ray resources (if
    any) and the environment it needs wherever Ray starts it."""
    options: dict[str, Any] = {"num_cpus": num_cpus, **resource_options(resources)}
    env = {k: os.environ[k] for k in _REPLICA_ENV if k in os.environ}
    if env:
        options["runtime_env"] = {"env_vars": env}
    return options
