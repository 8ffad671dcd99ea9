"""A trivial Ray Serve model for the benchmarks, speaking the ``ray_serve`` wire format.

Routes, under the route prefix (``/bench`` by default):

* ``POST /predict`` ``{"df": "<JSON records>"}`` -> ``{"prediction": [...]}``: column ``a``
  times two (the first numeric column when there is no ``a``). The body is parsed the way
  users' models do it, ``pd.DataFrame(json.loads(df))``, so the endpoint's cost is realistic
  but tiny and the benchmarks see the gateway's own cost.
* ``GET /`` ``{"status": "ready"}``, for health checks.

Run it (it prints ``READY http://host:port/bench`` and stops cleanly on SIGTERM/Ctrl-C)::

    python benchmarks/trivial_model.py --host 127.0.0.1 --port 8001 --replicas 2
"""

# No `from __future__ import annotations` here: run as a script this module is __main__ and
# Ray pickles the deployment class by value (see examples/ray_serve_model.py).
import argparse
import json
import os
import signal
import sys
import threading
from typing import Any

import orjson
import pandas as pd
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

APP_NAME = "bench"
ROUTE_PREFIX = "/bench"


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def predict_frame(frame: pd.DataFrame) -> list[Any]:
    """Column ``a`` (or the first numeric column) times two, as plain Python numbers."""
    if "a" in frame.columns:
        column = frame["a"]
    else:
        numeric = frame.select_dtypes(include="number").columns
        if len(numeric) == 0:
            raise ValueError("no numeric column to predict from")
        column = frame[numeric[0]]
    return (column * 2).tolist()


# Fractional CPUs: Ray reserves 1 CPU per replica by default, and a 2-CPU Ray could then
# not place two replicas next to the Serve controller and proxy.
@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=16)
class TrivialModel:
    """Stateless: every replica answers every request the same way."""

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        if request.method == "GET":
            return _json(200, {"status": "ready"})
        if request.method != "POST" or not path.endswith("/predict"):
            return _json(404, {"detail": f"no route {request.method} {request.url.path}"})
        try:
            body = json.loads(await request.body())
            frame = pd.DataFrame(json.loads(body["df"]))
            return _json(200, {"prediction": predict_frame(frame)})
        except (ValueError, KeyError, TypeError) as exc:
            return _json(400, {"detail": f"bad request: {type(exc).__name__}: {exc}"})


def main(argv: list[str] | None = None) -> int:
    """Start a private Ray and Serve, deploy, print READY, wait for SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="Serve the trivial benchmark model.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--route-prefix", default=ROUTE_PREFIX)
    parser.add_argument("--replicas", type=int, default=1, help="num_replicas (default 1)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    # "local": never join a RAY_ADDRESS cluster by accident; no dashboard saves ~1 GB.
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        app = TrivialModel.options(num_replicas=args.replicas).bind()
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
