"""Many clients at once: throughput, latency, errors and memory of ``byom serve`` under load.

``--clients`` (32) asyncio tasks share one ``httpx.AsyncClient`` and send statements back
to back for ``--duration`` (60) seconds to a real ``byom serve`` process, each task cycling
through the mix (staggered so the kinds overlap):

* ``predict``: ``SELECT * FROM m WHERE a = <n>`` (one row; the answer ``y = 2 * a`` checked);
* ``join``: ``SELECT t.id, p.y FROM local.load.t AS t JOIN m AS p`` over a 50-row SQLite
  table (all 50 rows checked);
* ``show``: ``SHOW MODELS`` (the catalog alone, no model call).

The model is a small uvicorn endpoint in its own process answering the ``ray_serve`` wire
format at once (``y = 2 * a``, as ``trivial_model.py`` does, without Ray's proxy: the
figures are the gateway's). The first ``--warmup`` seconds (10, at most a third of the run)
are not timed. Printed: requests/s overall and per kind, p50/p99 latency per kind, errors by
code (target: none), and the gateway's VmRSS after start, after the warm-up and at the end
(target: no growth beyond the warm-up figure, ``--rss-slack`` MiB for allocator noise).

All clients come from 127.0.0.1, which the gateway counts as one client: the per-client
in-flight limit (``BYOM_MAX_IN_FLIGHT_PER_CLIENT``, default 16) is raised for the run to
``--per-client-limit``, by default twice ``--clients``. Not just ``--clients``: the gateway
frees a request's slot only after the answer was sent, so a client that sends its next
statement the moment it has read an answer briefly holds one slot more (at exactly
``--clients`` a 15 s smoke run saw ~6% of requests refused with 429 TOO_MANY_REQUESTS).

    .venv/bin/python benchmarks/load.py                            # 32 clients, 60 s
    .venv/bin/python benchmarks/load.py --clients 32 --duration 15 # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common
import httpx

from gateway.processes import Service, free_port, start_gateway, wait_http

TABLE_ROWS = 50
KINDS = ("predict", "join", "show")
# One client's cycle: mostly single-row predictions, as dashboards send them.
CYCLE = ("predict", "join", "predict", "show")

MODEL_APP = """
import json, sys
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn

async def predict(request):
    rows = json.loads((await request.json())["df"])
    return JSONResponse({"prediction": [2 * r["a"] for r in rows]})

async def ping(request):
    return JSONResponse({"ok": True})

app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/ping", ping)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@dataclass
class Tally:
    """What the clients saw: latencies (ms) of the timed part per kind, error codes."""

    timed_from: float  # time.perf_counter() when the warm-up ends
    latencies: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    errors_by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    sent: int = 0


def start_model(log_dir: Path) -> Service:
    """The uvicorn model endpoint on a free port; ``url`` is its base URL."""
    port = free_port()
    args = [sys.executable, "-c", MODEL_APP, str(port)]
    service = _common.spawn("model", args, f"http://127.0.0.1:{port}", log_dir)
    try:
        wait_http(f"{service.url}/ping", 60, service.process, log_path=service.log_path)
    except BaseException:
        service.stop()
        raise
    return service


def make_table(home: Path) -> None:
    """``<home>/local/load.sqlite``: table t(id, a), attached as schema ``load``."""
    (home / "local").mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(home / "local" / "load.sqlite")) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, i % 7) for i in range(TABLE_ROWS)])


def statement(kind: str, n: int) -> tuple[str, Callable[[dict[str, Any]], bool]]:
    """The SQL of one request of ``kind`` and the check of its answer."""
    if kind == "predict":
        a = n % 100
        return f"SELECT a, y FROM m WHERE a = {a}", lambda body: body["rows"] == [[a, 2 * a]]
    if kind == "join":
        expected = [[i, 2 * (i % 7)] for i in range(TABLE_ROWS)]
        sql = "SELECT t.id, p.y FROM local.load.t AS t JOIN m AS p"
        return sql, lambda body: body["rows"] == expected
    return "SHOW MODELS", lambda body: [r[0] for r in body["rows"]] == ["m"]


async def client_task(http: httpx.AsyncClient, index: int, deadline: float, tally: Tally) -> None:
    """One client: statements back to back until ``deadline``, staggered by ``index``."""
    n = index
    while time.perf_counter() < deadline:
        kind = CYCLE[n % len(CYCLE)]
        sql, check = statement(kind, n)
        n += 1
        start = time.perf_counter()
        code: str | None = None
        try:
            response = await http.post("/api/sql", json={"query": sql})
            body = response.json()
            if response.status_code != 200:
                code = str(body.get("error", {}).get("code", f"HTTP_{response.status_code}"))
            elif not check(body):
                code = "WRONG_ANSWER"
        except (httpx.HTTPError, ValueError) as exc:
            code = type(exc).__name__
        took = (time.perf_counter() - start) * 1000
        tally.sent += 1
        if code is not None:
            tally.errors[code] += 1
            tally.errors_by_kind[kind] += 1
        elif start >= tally.timed_from:
            tally.latencies[kind].append(took)


async def run_load(url: str, pid: int, args: argparse.Namespace) -> tuple[Tally, dict[str, int]]:
    """The clients for ``args.duration`` s; RSS after the warm-up and at the end (bytes)."""
    rss: dict[str, int] = {}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as http:
        start = time.perf_counter()
        tally = Tally(timed_from=start + args.warmup)
        deadline = start + args.duration
        tasks = [
            asyncio.create_task(client_task(http, i, deadline, tally)) for i in range(args.clients)
        ]
        peak = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, _common.proc_status(pid, "VmRSS"))
                if "warm" not in rss and time.perf_counter() >= tally.timed_from:
                    rss["warm"] = _common.proc_status(pid, "VmRSS")
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        try:
            await asyncio.gather(*tasks)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        rss.setdefault("warm", _common.proc_status(pid, "VmRSS"))
        rss["end"] = _common.proc_status(pid, "VmRSS")
        rss["peak"] = peak
    return tally, rss


def report(tally: Tally, rss: dict[str, int], args: argparse.Namespace) -> bool:
    """Print the result table and the targets; True when every target is met."""
    timed_s = args.duration - args.warmup
    rows = []
    every: list[float] = []
    for kind in KINDS:
        values = tally.latencies[kind]
        every.extend(values)
        rows.append([
            kind,
            len(values),
            f"{len(values) / timed_s:,.1f}",
            f"{_common.percentile(values, 50):.1f}" if values else "-",
            f"{_common.percentile(values, 99):.1f}" if values else "-",
            tally.errors_by_kind[kind],
        ])  # fmt: skip
    rows.append([
        "all",
        len(every),
        f"{len(every) / timed_s:,.1f}",
        f"{_common.percentile(every, 50):.1f}" if every else "-",
        f"{_common.percentile(every, 99):.1f}" if every else "-",
        sum(tally.errors.values()),
    ])  # fmt: skip
    print(
        f"{args.clients} clients, {args.duration:g} s ({args.warmup:g} s warm-up, "
        f"{timed_s:g} s timed), {tally.sent} requests in all; per-client in-flight limit "
        f"{args.per_client_limit}"
    )
    _common.print_table(["kind", "ok (timed)", "req/s", "p50 ms", "p99 ms", "errors (all)"], rows)
    print()
    _common.print_table(
        ["gateway VmRSS", "after start", "after warm-up", "at the end", "peak"],
        [["", *(_common.mib(rss[k]) for k in ("start", "warm", "end", "peak"))]],
    )
    print()
    errors = sum(tally.errors.values())
    growth = rss["end"] - rss["warm"]
    slack = args.rss_slack * _common.MIB
    seen = ", ".join(f"{code} x{n}" for code, n in tally.errors.most_common()) or "none"
    met_errors = errors == 0
    met_rss = growth <= slack
    print(f"errors: {errors} (codes: {seen}); target 0: {'met' if met_errors else 'MISSED'}")
    print(
        f"RSS growth after warm-up: {growth / _common.MIB:+.1f} MiB; target <= "
        f"{args.rss_slack:g} MiB: {'met' if met_rss else 'MISSED'}"
    )
    return met_errors and met_rss


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds in all (60)")
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="untimed seconds first (10; at most 1/3)"
    )
    parser.add_argument(
        "--rss-slack", type=float, default=5.0, help="MiB of RSS growth still counted as flat"
    )
    parser.add_argument(
        "--per-client-limit",
        type=int,
        default=None,
        help="BYOM_MAX_IN_FLIGHT_PER_CLIENT of the gateway (default: 2 x --clients)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    args = parser.parse_args(argv)
    if args.per_client_limit is None:
        args.per_client_limit = 2 * args.clients
    args.warmup = min(args.warmup, args.duration / 3)
    return args


def main(argv: list[str] | None = None) -> int:
    """Start the model and the gateway, run the clients, print the tables."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="byom-load-"))
    logs = work / "logs"
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: None if args.keep_logs else shutil.rmtree(work, ignore_errors=True))
        print("starting the model endpoint ...", flush=True)
        model = start_model(logs)
        stack.callback(model.stop)
        home = work / "home"
        make_table(home)
        print("starting byom serve ...", flush=True)
        # One address, many clients: the per-client limit would refuse most of them.
        env = {"BYOM_MAX_IN_FLIGHT_PER_CLIENT": str(args.per_client_limit)}
        gateway = start_gateway(home, log_dir=logs, env=env)
        stack.callback(gateway.stop)
        with httpx.Client(base_url=gateway.url, timeout=60.0) as client:
            _common.sql(
                client,
                f"CREATE MODEL m PREDICT y USING url.predict='{model.url}/predict', "
                'format=\'ray_serve\', dtype_dict={"a": "integer", "y": "integer"}',
            )
        start_rss = _common.proc_status(gateway.process.pid, "VmRSS")
        print(_common.machine_line())
        print(f"{args.clients} clients for {args.duration:g} s ...", flush=True)
        tally, rss = asyncio.run(run_load(gateway.url, gateway.process.pid, args))
        rss["start"] = start_rss
        if not gateway.running:
            print(f"the gateway died:\n{gateway.log_tail()}")
            return 1
        if args.keep_logs:
            print(f"logs kept in {logs}")
    print()
    return 0 if report(tally, rss, args) else 1


if __name__ == "__main__":
    sys.exit(main())
