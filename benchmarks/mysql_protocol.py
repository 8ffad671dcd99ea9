"""The MySQL protocol versus the HTTP API of one ``byom serve`` (``--mysql-port``), same model.

Two measurements against the trivial ``ray_serve`` model on a real Ray Serve deployment
(``benchmarks/trivial_model.py``), registered once as predictor ``bench``:

* single-row prediction latency, ``SELECT * FROM bench WHERE a = 1.5 AND b = 2``: K requests
  (default 300, after 30 warm-up ones) over one pymysql connection and over one keep-alive
  ``httpx.Client`` (``POST /api/sql``), alternating, so load from other processes hits both
  alike; p50/p99 of each;
* JOIN streaming, ``SELECT t.id, p.y FROM local.bench_<N>.t AS t JOIN bench AS p USING
  batch_size=B, concurrency=C`` over N rows (``--rows``, default 1,000,000; the table of
  ``benchmarks/join_throughput.py``, reused from ``--data-dir``): read with pymysql's
  unbuffered ``SSCursor`` and over HTTP as ndjson, rows counted, not kept; rows/s of each.

    .venv/bin/python benchmarks/mysql_protocol.py
    .venv/bin/python benchmarks/mysql_protocol.py --rows 20000 --requests 100   # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import _common
import httpx
import join_throughput
import orjson
import pymysql
import pymysql.cursors

from gateway.processes import free_port, start_gateway

QUERY = "SELECT * FROM bench WHERE a = 1.5 AND b = 2"


def latency(
    conn: pymysql.Connection, http: httpx.Client, warmup: int, requests: int
) -> tuple[list[float], list[float]]:
    """Milliseconds per single-row prediction over MySQL and over HTTP, alternating."""
    mysql_ms: list[float] = []
    http_ms: list[float] = []
    body = {"query": QUERY}
    with conn.cursor() as cur:
        cur.execute(QUERY)
        first = cur.fetchall()
        if len(first) != 1:
            raise RuntimeError(f"{QUERY!r} answered {first} over MySQL")
        for i in range(warmup + requests):
            started = time.perf_counter()
            cur.execute(QUERY)
            cur.fetchall()
            took_mysql = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            http.post("/api/sql", json=body).raise_for_status()
            took_http = (time.perf_counter() - started) * 1000
            if i >= warmup:
                mysql_ms.append(took_mysql)
                http_ms.append(took_http)
    return mysql_ms, http_ms


def stream_mysql(conn: pymysql.Connection, query: str, expected: int) -> float:
    """Seconds to read the JOIN over MySQL, unbuffered (rows counted, not kept)."""
    started = time.perf_counter()
    rows = 0
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(query)
        while batch := cur.fetchmany(10_000):
            rows += len(batch)
    seconds = time.perf_counter() - started
    if rows != expected:
        raise RuntimeError(f"MySQL returned {rows} rows, expected {expected}")
    return seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per side")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests first")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the JOIN")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path.home() / ".cache" / "byom-bench",
        help="where the JOIN's SQLite table is written once and reused",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the model and the gateway (HTTP and MySQL), measure both, print the tables."""
    args = parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    table = join_throughput.sqlite_table(args.data_dir, args.rows)
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="byom-mysql-bench-"))
        stack.callback(lambda: shutil.rmtree(work, ignore_errors=True))
        home, logs = work / "home", work / "logs"
        _common.attach_table(table, home, f"bench_{args.rows}")
        print("starting the trivial Ray Serve model and byom serve --mysql-port ...", flush=True)
        model = _common.start_trivial_model(logs, replicas=1)
        stack.callback(model.stop)
        mysql_port = free_port()
        gateway = start_gateway(home, log_dir=logs, extra_args=["--mysql-port", str(mysql_port)])
        stack.callback(gateway.stop)
        http = stack.enter_context(httpx.Client(base_url=gateway.url, timeout=3600.0))
        dtypes = orjson.dumps({"a": "float", "b": "integer", "y": "float"}).decode()
        _common.sql(
            http,
            f"CREATE PREDICTOR {join_throughput.PREDICTOR} PREDICT y USING "
            f"url.predict='{model.url}/predict', format='ray_serve', dtype_dict={dtypes}",
        )
        conn = pymysql.connect(host="127.0.0.1", port=mysql_port, user="bench", password="x")
        stack.callback(conn.close)
        print(_common.machine_line())

        print(f"latency: {args.warmup} warm-up + {args.requests} timed requests each ...")
        mysql_ms, http_ms = latency(conn, http, args.warmup, args.requests)

        # join_throughput's statement over its predictor's name, "bench", as registered here
        query = join_throughput.join_query(
            f"local.bench_{args.rows}.t", args.batch_size, args.concurrency
        )
        print(f"JOIN of {args.rows:,} rows over each protocol (MySQL first, then HTTP) ...")
        mysql_s = stream_mysql(conn, query, args.rows)
        http_run = join_throughput.run_gateway(http, query, args.rows)

    print()
    pct = _common.percentile
    _common.print_table(
        ["single-row prediction", "p50 ms", "p99 ms", "mean ms"],
        [
            [name, f"{pct(ms, 50):.2f}", f"{pct(ms, 99):.2f}", f"{_common.mean(ms):.2f}"]
            for name, ms in (("MySQL (pymysql)", mysql_ms), ("HTTP (httpx)", http_ms))
        ],
    )
    print()
    _common.print_table(
        [f"JOIN {args.rows:,} rows", "seconds", "rows/s"],
        [
            ["MySQL (pymysql SSCursor)", f"{mysql_s:.2f}", f"{args.rows / mysql_s:,.0f}"],
            ["HTTP (ndjson)", f"{http_run.seconds:.2f}", f"{http_run.rate:,.0f}"],
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
