"""A model behind Ray Serve that speaks the ``ray_serve`` wire format (train and predict).

Routes, under the application's route prefix (``/my_model`` by default):

* ``POST /train``   ``{"df": "<JSON records>", "target": "<column>"}`` -> ``{"status": "ok"}``.
  Fits a logistic regression on every column but the target (numbers are scaled, text
  columns one-hot encoded) and remembers those feature columns.
* ``POST /predict`` ``{"df": "<JSON records>"}`` ->
  ``{"prediction": [...], "confidence": [...]}``, the confidence being the probability of the
  predicted class. Extra columns in ``df`` are ignored; a missing feature column is a 400.
* ``GET /``         ``{"status": "ready", "trained": bool}``, for health checks.

``df`` may also be columnar JSON (``{"col": [...]}``). Besides JSON, /train and /predict take
the batch as a binary body, picked by ``Content-Type`` (the gateway's ``payload`` option):
``application/vnd.apache.parquet`` (a Parquet file) or ``application/vnd.apache.arrow.stream``
(an Arrow IPC stream); /train then reads the target from the query: ``/train?target=col``.

Run it (Ray 2.60 API: ``serve.run(..., route_prefix=...)``; the decorator's route_prefix and
``Deployment.deploy()`` no longer exist)::

    python examples/ray_serve_model.py --host 127.0.0.1 --port 8000

It prints ``READY http://127.0.0.1:8000/my_model`` once the routes answer, and shuts Serve and
Ray down cleanly on SIGTERM or Ctrl-C. ``serve run ray_serve_model:app`` works as well.
"""

# No `from __future__ import annotations` here: run as a script, this module is __main__ and
# Ray pickles the deployment class by value, so FastAPI could not resolve string annotations
# such as "Request" on the replica and would treat `request` as a required query parameter.
import argparse
import asyncio
import io
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from ray import serve
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

APP_NAME = "my_model"
ROUTE_PREFIX = "/my_model"

api = FastAPI(title="home rentals example model")


@dataclass(frozen=True)
class Trained:
    """A fitted model and the feature columns it was fitted on, replaced as one unit."""

    features: list[str]
    target: str
    pipeline: Pipeline


PARQUET = "application/vnd.apache.parquet"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def read_binary(content_type: str, data: bytes) -> pd.DataFrame:
    """A Parquet or Arrow IPC stream body as a DataFrame (ValueError when unreadable)."""
    import pyarrow as pa  # only binary payloads need it

    try:
        if content_type == PARQUET:
            return pd.read_parquet(io.BytesIO(data))
        with pa.ipc.open_stream(data) as reader:
            return reader.read_pandas()
    except pa.ArrowException as exc:
        raise ValueError(str(exc)) from exc


async def parse_frame(request: Request) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The batch of a request as a DataFrame, plus the other fields (``target``).

    JSON bodies carry them in the body (``{"df": ..., "target": ...}``); binary bodies
    (Parquet, Arrow) are the batch itself and carry ``target`` in the query string.
    """
    content_type = request.headers.get("content-type", "application/json")
    content_type = content_type.split(";")[0].strip().lower()
    if content_type in (PARQUET, ARROW_STREAM):
        try:
            frame = read_binary(content_type, await request.body())
        except ValueError as exc:
            raise HTTPException(400, f"body is not a readable {content_type}: {exc}") from exc
        if frame.empty:
            raise HTTPException(400, "the batch holds no rows")
        return frame, dict(request.query_params)
    # Anything else is read as JSON, whatever it claims (curl -d sends form-urlencoded).
    try:
        body = await request.json()
    except ValueError as exc:
        raise HTTPException(400, f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("df"), str):
        raise HTTPException(400, 'expected a JSON object with "df": a JSON string of records')
    try:
        frame = pd.DataFrame(json.loads(body["df"]))
    except ValueError as exc:
        raise HTTPException(400, f'"df" is not a JSON table: {exc}') from exc
    if frame.empty:
        raise HTTPException(400, '"df" holds no rows')
    return frame, body


def build_pipeline(features: pd.DataFrame) -> Pipeline:
    """Scale numeric columns, one-hot encode the others, then a logistic regression."""
    numeric = list(features.select_dtypes(include=["number", "bool"]).columns)
    other = [c for c in features.columns if c not in numeric]
    encode = ColumnTransformer(
        [
            ("numeric", StandardScaler(), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), other),
        ]
    )
    # Prices are in the thousands: without scaling lbfgs does not converge in 1000 steps.
    return Pipeline([("encode", encode), ("classify", LogisticRegression(max_iter=1000))])


def fit(frame: pd.DataFrame, target: str) -> Trained:
    """Fit on every column of ``frame`` except ``target`` (ValueError for unusable data)."""
    features = [c for c in frame.columns if c != target]
    if not features:
        raise ValueError(f"no feature columns besides the target '{target}'")
    labels = frame[target]
    if labels.isna().any():
        raise ValueError(f"the target column '{target}' has missing values")
    if labels.nunique() < 2:
        raise ValueError(f"the target column '{target}' needs at least two distinct values")
    pipeline = build_pipeline(frame[features])
    pipeline.fit(frame[features], labels)
    return Trained(features=features, target=target, pipeline=pipeline)


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
@serve.ingress(api)
class MyModel:
    """One logistic regression, trained and queried over HTTP."""

    def __init__(self) -> None:
        self.trained: Trained | None = None

    @api.get("/")
    async def health(self) -> dict[str, Any]:
        return {"status": "ready", "trained": self.trained is not None}

    @api.post("/train")
    async def train(self, request: Request) -> dict[str, Any]:
        frame, body = await parse_frame(request)
        target = body.get("target")
        if not isinstance(target, str) or not target:
            raise HTTPException(400, 'expected "target": the name of the column to predict')
        if target not in frame.columns:
            raise HTTPException(
                400, f"target column '{target}' is not in df (columns: {', '.join(frame.columns)})"
            )
        try:
            # Off the event loop, so health checks and predictions keep being answered.
            trained = await asyncio.to_thread(fit, frame, target)
        except ValueError as exc:
            raise HTTPException(400, f"cannot train: {exc}") from exc
        self.trained = trained  # swapped in one assignment: a predict sees old or new
        return {"status": "ok", "rows": len(frame), "features": trained.features}

    @api.post("/predict")
    async def predict(self, request: Request) -> dict[str, Any]:
        trained = self.trained
        if trained is None:
            raise HTTPException(409, "model is not trained yet: POST /train first")
        frame, _ = await parse_frame(request)
        missing = [c for c in trained.features if c not in frame.columns]
        if missing:
            raise HTTPException(
                400,
                f"missing feature column(s) {', '.join(missing)}; "
                f"the model was trained on {', '.join(trained.features)}",
            )
        features = frame[trained.features]
        try:
            labels = trained.pipeline.predict(features)
            confidence = trained.pipeline.predict_proba(features).max(axis=1)
        except ValueError as exc:  # e.g. text where a number was trained
            raise HTTPException(400, f"cannot predict: {exc}") from exc
        # tolist() turns numpy scalars into plain ints/floats/strings JSON can carry.
        return {"prediction": labels.tolist(), "confidence": confidence.round(6).tolist()}


app = MyModel.bind()


def main(argv: list[str] | None = None) -> int:
    """Start Ray and Serve, deploy the model, print READY, wait for SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="Serve the example model with Ray Serve.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--route-prefix", default=ROUTE_PREFIX)
    parser.add_argument(
        "--ray-address",
        default=None,
        help="an existing Ray cluster to deploy to (default: start a private local Ray)",
    )
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from examples
    import ray

    if args.ray_address:
        ray.init(address=args.ray_address)
    else:
        # "local" so that a RAY_ADDRESS or a `ray start` cluster is not picked up by accident;
        # no dashboard saves about 1 GB of memory.
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app, name=APP_NAME, route_prefix=args.route_prefix, blocking=False)
        print(f"READY http://{args.host}:{args.port}{args.route_prefix}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        print("shutting down", flush=True)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
