"""Single-row prediction latency: through the gateway versus straight to the model endpoint.

For each endpoint kind, K requests (default 300, after 30 warm-up requests) of

* the gateway: ``POST /api/sql {"query": "SELECT * FROM m WHERE a = 1.5 AND b = 2"}`` to
  ``byom serve``, which posts the row to the model and answers the row with its prediction;
* direct: a ``POST`` of the same row, in the same wire format, to the same model URL;

each over one keep-alive ``httpx.Client``, alternating gateway and direct requests so that
load from other processes hits both alike. The gateway's overhead is its p50 minus the
direct p50 (target <= 1 ms). Endpoints:

* ``ray_serve``: ``benchmarks/trivial_model.py`` on a real Ray Serve (``{"df": ...}``);
* ``mlflow``: the example scikit-learn model of ``examples/mlflow_model.py`` behind a real
  ``mlflow models serve`` (``{"dataframe_split": ...}``).

    .venv/bin/python benchmarks/single_row_latency.py
    .venv/bin/python benchmarks/single_row_latency.py --requests 1000 --only ray_serve
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
import httpx
import orjson

from gateway.processes import load_example, start_mlflow_example


@dataclass
class Case:
    """One endpoint: how to register it, the SQL to time and the equivalent direct call."""

    name: str
    register: str
    query: str
    url: str
    direct_body: dict[str, Any]
    check: Callable[[Any], None]


def ray_serve_case(model_url: str) -> Case:
    """The trivial Ray Serve model: ``y = 2 * a``."""
    dtypes = orjson.dumps({"a": "float", "b": "integer", "y": "float"}).decode()
    predict_url = model_url + "/predict"

    def check(answer: Any) -> None:
        if answer.get("prediction") != [3.0]:
            raise RuntimeError(f"unexpected direct answer {answer}")

    return Case(
        name="ray_serve",
        register=f"CREATE PREDICTOR m PREDICT y USING url.predict='{predict_url}', "
        f"format='ray_serve', dtype_dict={dtypes}",
        query="SELECT * FROM m WHERE a = 1.5 AND b = 2",
        url=predict_url,
        direct_body={"df": json.dumps([{"a": 1.5, "b": 2}])},
        check=check,
    )


def mlflow_case(scoring_url: str) -> Case:
    """The example MLflow model: ``number_of_rooms`` from the two prices."""
    dtypes = orjson.dumps(
        {"initial_price": "float", "rental_price": "float", "number_of_rooms": "integer"}
    ).decode()

    def check(answer: Any) -> None:
        if not isinstance(answer, dict) or len(answer.get("predictions", [])) != 1:
            raise RuntimeError(f"unexpected direct answer {answer}")

    return Case(
        name="mlflow",
        register=f"CREATE PREDICTOR mlm PREDICT number_of_rooms USING "
        f"url.predict='{scoring_url}', format='mlflow', dtype_dict={dtypes}",
        query="SELECT * FROM mlm WHERE initial_price = 3000 AND rental_price = 3000",
        url=scoring_url,
        direct_body={
            "dataframe_split": {
                "columns": ["initial_price", "rental_price"],
                "data": [[3000, 3000]],
            }
        },
        check=check,
    )


@dataclass
class Timings:
    """Milliseconds per request of both paths, and the gateway's CPU per request."""

    gateway: list[float]
    direct: list[float]
    gateway_cpu_ms: float


def measure(case: Case, gateway: _common.Service, warmup: int, requests: int) -> Timings:
    """Time ``requests`` calls of each path, alternating, after ``warmup`` untimed ones."""
    times = Timings([], [], 0.0)
    gateway_url, pid = gateway.url, gateway.process.pid
    sql_body = {"query": case.query}
    with httpx.Client(base_url=gateway_url) as gw, httpx.Client() as direct:
        # The first gateway answer is checked in full; later ones only for their status.
        first = _common.sql(gw, case.query)
        if len(first["rows"]) != 1:
            raise RuntimeError(f"{case.query!r} answered {first}")
        case.check(direct.post(case.url, json=case.direct_body).json())
        for i in range(warmup + requests):
            if i == warmup:
                cpu = _common.cpu_seconds(pid)
            started = time.perf_counter()
            answer = direct.post(case.url, json=case.direct_body)
            direct_ms = (time.perf_counter() - started) * 1000
            answer.raise_for_status()
            started = time.perf_counter()
            answer = gw.post("/api/sql", json=sql_body)
            gateway_ms = (time.perf_counter() - started) * 1000
            answer.raise_for_status()
            if i >= warmup:
                times.direct.append(direct_ms)
                times.gateway.append(gateway_ms)
        times.gateway_cpu_ms = (_common.cpu_seconds(pid) - cpu) / requests * 1000
    return times


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per side")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests first")
    parser.add_argument(
        "--only", choices=["ray_serve", "mlflow"], help="one endpoint kind (default both)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' log folder")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the gateway with py-spy (pip install py-spy) during the timed requests "
        "into this file (collapsed stacks; idle time excluded)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the model servers and the gateway, time both paths, print the table."""
    args = parse_args(argv)
    kinds = [args.only] if args.only else ["ray_serve", "mlflow"]
    work = Path(tempfile.mkdtemp(prefix="byom-latency-"))
    logs = work / "logs"
    results: list[tuple[str, Timings]] = []
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: None if args.keep_logs else shutil.rmtree(work, ignore_errors=True))
        cases: list[Case] = []
        if "ray_serve" in kinds:
            print("starting the trivial Ray Serve model ...", flush=True)
            model = _common.start_trivial_model(logs, replicas=1)
            stack.callback(model.stop)
            cases.append(ray_serve_case(model.url))
        if "mlflow" in kinds:
            print("training the example MLflow model and starting mlflow models serve ...")
            mlflow_model = load_example("mlflow_model")
            path = mlflow_model.train_and_log(work / "models")
            scoring = start_mlflow_example(path, log_dir=logs)
            stack.callback(scoring.stop)
            cases.append(mlflow_case(scoring.url))
        print("starting byom serve ...", flush=True)
        gateway = _common.start_gateway_server(work / "home", logs)
        stack.callback(gateway.stop)
        with httpx.Client(base_url=gateway.url) as client:
            for case in cases:
                _common.sql(client, case.register)
        print(_common.machine_line())
        if args.profile:
            stack.enter_context(_common.py_spy(gateway.process.pid, args.profile))
        for case in cases:
            print(f"{case.name}: {args.warmup} warm-up + {args.requests} timed requests each ...")
            results.append((case.name, measure(case, gateway, args.warmup, args.requests)))
        if args.keep_logs:
            print(f"logs kept in {logs}")

    print()
    report(results)
    return 0


def report(results: list[tuple[str, Timings]]) -> None:
    """Latency table and the p50 overhead per endpoint."""
    rows = []
    for name, times in results:
        for side, values in (("direct", times.direct), ("gateway", times.gateway)):
            rows.append([
                name,
                side,
                len(values),
                f"{_common.mean(values):.2f}",
                f"{_common.percentile(values, 50):.2f}",
                f"{_common.percentile(values, 99):.2f}",
                f"{times.gateway_cpu_ms:.2f}" if side == "gateway" else "",
            ])  # fmt: skip
    headers = ["endpoint", "path", "n", "mean ms", "p50 ms", "p99 ms", "gateway CPU ms/req"]
    _common.print_table(headers, rows)
    print()
    for name, times in results:
        direct, gateway = (_common.percentile(v, 50) for v in (times.direct, times.gateway))
        print(f"{name}: gateway overhead at p50 {gateway - direct:.2f} ms "
              f"(gateway/direct {gateway / direct:.2f}x; target <= 1.00 ms); "
              f"gateway CPU {times.gateway_cpu_ms:.2f} ms per request")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
