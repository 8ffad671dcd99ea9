"""JOIN rows/s on Ray Data (``USING engine='ray'``) with 1, 2 and 4 workers vs one process.

The model is latency-bound: a Starlette endpoint (its own uvicorn process) that sleeps
``--latency-ms`` (20) per batch and answers ``y = 2 * a``. The source is a SQLite table
``t(id INTEGER, a INTEGER)`` of ``--rows`` rows attached to an in-process gateway's
embedded datasource; the statement, streamed and counted, is::

    SELECT t.id, p.y FROM local.cj.t AS t JOIN m AS p
    USING batch_size=B, concurrency=C [, engine='ray', workers=W]

The baseline, measured in the same run, is the single-process JOIN (C batches in flight);
a Ray JOIN has W x C in flight. Printed per run: seconds, rows/s end to end, seconds until
the first rows arrive (Ray's actors start per statement), and the ratio to the
single-process JOIN. The benchmark starts a local Ray (``--cpus``, default all).

    .venv/bin/python benchmarks/cluster_join.py                      # 200k rows (~1 min)
    .venv/bin/python benchmarks/cluster_join.py --rows 50000 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _common

from gateway.core import Gateway
from gateway.processes import free_port, wait_http
from gateway.settings import Settings

MODEL_APP = """
import asyncio, json, sys
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn

LATENCY = float(sys.argv[2]) / 1000

async def predict(request):
    rows = json.loads((await request.json())["df"])
    await asyncio.sleep(LATENCY)
    return JSONResponse({"prediction": [2 * r["a"] for r in rows]})

async def ping(request):
    return JSONResponse({"ok": True})

app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/ping", ping)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error")
"""


@dataclass
class Run:
    label: str
    seconds: float
    first_row_s: float  # until the first rows arrive: planning, Ray's actors starting
    rows: int

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def make_source(home: Path, rows: int) -> None:
    (home / "local").mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(home / "local" / "cj.sqlite")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, i % 1000) for i in range(1, rows + 1)))
    conn.commit()
    conn.close()


async def timed(gw: Gateway, label: str, sql: str, expected: int) -> Run:
    start = time.perf_counter()
    result = await gw.sql_stream(sql)
    first = None
    count = 0
    async for batch in result.batches:  # type: ignore[union-attr]
        if first is None and batch:
            first = time.perf_counter()
        count += len(batch)
    end = time.perf_counter()
    assert count == expected, f"{label}: {count} rows, expected {expected}"
    return Run(label, end - start, (first or end) - start, count)


async def measure(args: argparse.Namespace, home: Path, url: str) -> list[Run]:
    gw = await Gateway.start(
        home=home, catalog_url=f"sqlite:///{home / 'catalog.sqlite'}", settings=Settings()
    )
    try:
        await gw.sql(
            f"CREATE MODEL m PREDICT y USING url.predict='{url}/predict', format='ray_serve', "
            'dtype_dict={"a": "integer", "y": "integer"}'
        )
        base = "SELECT t.id, p.y FROM local.cj.t AS t JOIN m AS p"
        knobs = f"batch_size={args.batch_size}, concurrency={args.concurrency}"
        warm = f"{base} WHERE t.id <= 20000 USING {knobs}"
        await timed(gw, "warm-up", warm, min(20000, args.rows))
        await timed(
            gw,
            "warm-up",
            f"{base} WHERE t.id <= 20000 USING {knobs}, engine='ray'",
            min(20000, args.rows),
        )
        runs: list[Run] = []
        for _ in range(args.repeat):
            runs.append(await timed(gw, "single process", f"{base} USING {knobs}", args.rows))
            for workers in (1, 2, 4):
                sql = f"{base} USING {knobs}, engine='ray', workers={workers}"
                runs.append(await timed(gw, f"ray, {workers} worker(s)", sql, args.rows))
        return runs
    finally:
        await gw.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    port = free_port()
    model = subprocess.Popen(
        [sys.executable, "-c", MODEL_APP, str(port), str(args.latency_ms)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=60)
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        with tempfile.TemporaryDirectory(prefix="byom-cluster-join-") as tmp:
            home = Path(tmp)
            make_source(home, args.rows)
            runs = asyncio.run(measure(args, home, f"http://127.0.0.1:{port}"))
    finally:
        model.terminate()
        model.wait(timeout=30)
        if ray.is_initialized():
            ray.shutdown()

    print(_common.machine_line())
    print(
        f"{args.rows:,} rows, batch_size={args.batch_size}, concurrency={args.concurrency}, "
        f"endpoint latency {args.latency_ms:g} ms per batch"
    )
    base = {i: r for i, r in enumerate(runs) if r.label == "single process"}
    rows = []
    for i, run in enumerate(runs):
        ref = base[max(k for k in base if k <= i)]
        rows.append(
            [
                run.label,
                f"{run.seconds:.2f}",
                f"{run.rate:,.0f}",
                f"{run.first_row_s:.2f}",
                f"{run.rate / ref.rate:.2f}",
            ]
        )
    _common.print_table(["engine", "s", "rows/s", "first rows after s", "x single"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
