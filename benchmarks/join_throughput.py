"""Batch JOIN throughput: the gateway versus a hand-written script, same endpoint, same knobs.

A table ``t(id INTEGER, a REAL, b INTEGER, c TEXT)`` of N rows (embedded SQLite, and
PostgreSQL with ``--pg-url``) is joined with a trivial ``ray_serve`` predictor running on a
real Ray Serve deployment (``benchmarks/trivial_model.py``)::

    SELECT t.id, p.y FROM local.bench_<N>.t AS t JOIN bench AS p
    USING batch_size=B, concurrency=C

sent to ``byom serve`` as ``POST /api/sql`` with ``"format": "ndjson"`` and read as a
stream (rows are counted, not kept). The baseline, measured in the same run against the same
endpoint, is what a user would write by hand: ``pandas.read_sql(..., chunksize=B)`` of the
same columns the gateway reads (``id, a, b``) and ``httpx.AsyncClient`` posts of
``{"df": chunk.to_json(orient="records")}`` with at most C in flight.

Printed: rows, seconds and rows/s of both, the ratio gateway/baseline (target >= 0.9), and
the gateway process's RSS before the run and its peak during it (target: flat from 1M to 10M
rows and under 1 GiB), with the benchmark process's own peak during the baseline for
reference. A small warm-up JOIN runs first so Ray's and the gateway's start-up is not timed.

    .venv/bin/python benchmarks/join_throughput.py                 # 1M rows, SQLite
    .venv/bin/python benchmarks/join_throughput.py --rows 50000 --repeat 3
    .venv/bin/python benchmarks/join_throughput.py --ten-million   # 1M and 10M rows
    .venv/bin/python benchmarks/join_throughput.py \\
        --pg-url postgresql://postgres:postgres@127.0.0.1:5432/postgres

Data files are generated once and reused (``--data-dir``, default ``~/.cache/byom-bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
import httpx
import orjson
import pandas as pd

WARMUP_ROWS = 20_000
LOAD_CHUNK_ROWS = 100_000
PREDICTOR = "bench"
PG_DATASOURCE = "benchpg"
SOURCE_COLUMNS = "id, a, b"  # what the gateway reads: the selected id plus the model's a, b
# The Ray processes that handle requests (the HTTP proxy and the replicas), for their CPU time.
SERVING_PROCESSES = ("ray::ProxyActor", "ray::ServeReplica")
FEATURES = ["a", "b"]  # what the gateway sends to the model (its dtype_dict minus the target)


# -- data ------------------------------------------------------------------------------------


def generate_rows(start: int, stop: int) -> Iterator[tuple[int, float, int, str]]:
    """Deterministic rows ``(id, a, b, c)`` for ids ``start..stop-1``."""
    for i in range(start, stop):
        yield i, (i % 1000) / 8.0, i % 97, f"row-{i % 5000}"


def sqlite_table(data_dir: Path, n_rows: int) -> Path:
    """``data_dir/bench_<n>.sqlite`` holding ``t`` with ``n_rows`` rows (reused if complete)."""
    path = data_dir / f"bench_{n_rows}.sqlite"
    if path.exists():
        with contextlib.closing(sqlite3.connect(path)) as conn:
            try:
                (count,) = conn.execute("SELECT count(*) FROM t").fetchone()
            except sqlite3.Error:
                count = -1
        if count == n_rows:
            return path
        path.unlink()
    print(f"writing {n_rows:,} rows to {path} ...", flush=True)
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(partial)) as conn:
        # A throwaway file: no journal and no fsync make the load several times faster.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a REAL, b INTEGER, c TEXT)")
        for start in range(0, n_rows, LOAD_CHUNK_ROWS):
            rows = generate_rows(start, min(start + LOAD_CHUNK_ROWS, n_rows))
            conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
            conn.commit()
    partial.rename(path)  # only a complete file gets the name that is reused
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def pg_table(pg_url: str, n_rows: int) -> str:
    """Table ``byom_bench_<n>`` in the PostgreSQL database of ``pg_url`` (reused if complete)."""
    import psycopg2
    from sqlalchemy.engine import make_url

    table = f"byom_bench_{n_rows}"
    url = make_url(pg_url)
    conn = psycopg2.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
    )
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is not None:
                cur.execute(f"SELECT count(*) FROM {table}")
                if cur.fetchone()[0] == n_rows:
                    return table
                cur.execute(f"DROP TABLE {table}")
            print(f"loading {n_rows:,} rows into PostgreSQL table {table} ...", flush=True)
            started = time.perf_counter()
            cur.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, a REAL, b INTEGER, c TEXT)")
            for start in range(0, n_rows, LOAD_CHUNK_ROWS):
                buffer = io.StringIO()
                for row in generate_rows(start, min(start + LOAD_CHUNK_ROWS, n_rows)):
                    buffer.write("\t".join(map(str, row)) + "\n")
                buffer.seek(0)
                cur.copy_expert(f"COPY {table} (id, a, b, c) FROM STDIN", buffer)
            print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
        return table
    finally:
        conn.close()


# -- the two contenders ----------------------------------------------------------------------


@dataclass
class Run:
    """One timed JOIN."""

    rows: int
    seconds: float
    rss_before: int = 0
    rss_peak: int = 0
    cpu: float = 0.0  # CPU seconds of the contender's own process during the run
    model_cpu: float = 0.0  # CPU seconds of Serve's proxy and replicas during the run

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def us_per_row(self, seconds: float) -> str:
        return f"{seconds / self.rows * 1e6:.1f}" if self.rows else "-"


def join_query(table: str, batch_size: int, concurrency: int) -> str:
    """The benchmarked statement."""
    return (
        f"SELECT t.id, p.y FROM {table} AS t JOIN {PREDICTOR} AS p "
        f"USING batch_size={batch_size}, concurrency={concurrency}"
    )


def run_gateway(client: httpx.Client, query: str, expected: int) -> Run:
    """Stream the JOIN's answer, counting rows; ndjson if the server speaks it, else JSON."""
    rows = 0
    started = time.perf_counter()
    with client.stream("POST", "/api/sql", json={"query": query, "format": "ndjson"}) as answer:
        if answer.is_error:
            answer.read()
            raise RuntimeError(f"the JOIN failed: HTTP {answer.status_code} {answer.text}")
        if "ndjson" in answer.headers.get("content-type", ""):
            done: int | None = None
            for line in answer.iter_lines():
                if not line:
                    continue
                message = orjson.loads(line)
                if "error" in message:
                    raise RuntimeError(f"the JOIN failed part-way: {message['error']}")
                if message.get("done"):
                    done = message.get("rows")
                elif "rows" in message:
                    rows += len(message["rows"])
            if done is None:
                raise RuntimeError(f"the stream was cut off after {rows} rows (no done line)")
            if done != rows:
                raise RuntimeError(f"the stream announced {done} rows but carried {rows}")
        else:
            # A server without ndjson: one JSON document, parsed whole here.
            document = orjson.loads(answer.read())
            if "error" in document:
                raise RuntimeError(f"the JOIN failed part-way: {document['error']}")
            rows = len(document["rows"])
    seconds = time.perf_counter() - started
    if rows != expected:
        raise RuntimeError(f"the gateway returned {rows} rows, expected {expected}")
    return Run(rows, seconds)


async def _baseline(
    chunks: Callable[[], Iterator[pd.DataFrame]], url: str, concurrency: int
) -> int:
    """The hand-written script: chunked read, at most ``concurrency`` posts in flight."""
    slots = asyncio.Semaphore(concurrency)
    done = 0

    async def post(client: httpx.AsyncClient, chunk: pd.DataFrame) -> None:
        nonlocal done
        try:
            # The same payload as the gateway's: only the model's feature columns.
            answer = await client.post(url, json={"df": chunk[FEATURES].to_json(orient="records")})
            answer.raise_for_status()
            predictions = answer.json()["prediction"]
            if len(predictions) != len(chunk):
                raise RuntimeError(f"{len(predictions)} predictions for {len(chunk)} rows")
            # The join itself: each id with its prediction (then dropped, like the
            # gateway's rows the benchmark only counts).
            joined = pd.DataFrame({"id": chunk["id"].to_numpy(), "y": predictions})
            done += len(joined)
        finally:
            slots.release()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=300.0, limits=limits) as client:
        tasks: set[asyncio.Task[None]] = set()
        for chunk in chunks():
            await slots.acquire()
            task = asyncio.create_task(post(client, chunk))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(0)  # let the post start before the next (blocking) read
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return done


def run_baseline(
    chunks: Callable[[], Iterator[pd.DataFrame]], url: str, concurrency: int, expected: int
) -> Run:
    """Time the hand-written script; ``rss_peak`` is this process's peak while it ran."""
    own_pid = "self"
    rss_before = _common.proc_status(own_pid, "VmRSS")
    _common.reset_peak_rss(own_pid)
    cpu = _common.cpu_seconds(own_pid)
    started = time.perf_counter()
    rows = asyncio.run(_baseline(chunks, url, concurrency))
    seconds = time.perf_counter() - started
    cpu = _common.cpu_seconds(own_pid) - cpu
    if rows != expected:
        raise RuntimeError(f"the baseline predicted {rows} rows, expected {expected}")
    return Run(rows, seconds, rss_before, _common.proc_status(own_pid, "VmHWM"), cpu)


def sqlite_chunks(path: Path, table: str, batch_size: int) -> Callable[[], Iterator[pd.DataFrame]]:
    """Chunked reader of ``path`` for the baseline."""

    def read() -> Iterator[pd.DataFrame]:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            yield from pd.read_sql(
                f"SELECT {SOURCE_COLUMNS} FROM {table}", conn, chunksize=batch_size
            )

    return read


def pg_chunks(pg_url: str, table: str, batch_size: int) -> Callable[[], Iterator[pd.DataFrame]]:
    """Chunked reader of a PostgreSQL table, through a server-side cursor like the gateway."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    if "+" not in url.drivername:  # SQLAlchemy 2.1 would pick psycopg 3, not installed here
        url = url.set(drivername="postgresql+psycopg2")

    def read() -> Iterator[pd.DataFrame]:
        engine = create_engine(url)
        try:
            # pandas does not stream by itself: without stream_results psycopg2 would fetch
            # the whole table into memory before the first chunk.
            with engine.connect().execution_options(stream_results=True) as conn:
                yield from pd.read_sql(
                    f"SELECT {SOURCE_COLUMNS} FROM {table}", conn, chunksize=batch_size
                )
        finally:
            engine.dispose()

    return read


# -- driver ----------------------------------------------------------------------------------


@dataclass
class Servers:
    """The running model and gateway."""

    model: _common.Service
    gateway: _common.Service

    @property
    def predict_url(self) -> str:
        return self.model.url + "/predict"


@dataclass
class Source:
    """One table to join, as the gateway and the baseline each name it."""

    label: str
    rows: int
    gateway_table: str
    chunks: Callable[[], Iterator[pd.DataFrame]]


def measure(
    client: httpx.Client,
    servers: Servers,
    source: Source,
    args: argparse.Namespace,
    *,
    baseline_first: bool = False,
) -> tuple[Run, Run]:
    """One gateway run (with its RSS and CPU) and one baseline run over ``source``."""
    gateway_pid, model_pid = servers.gateway.process.pid, servers.model.process.pid

    def gateway_run() -> Run:
        query = join_query(source.gateway_table, args.batch_size, args.concurrency)
        rss_before = _common.proc_status(gateway_pid, "VmRSS")
        if not _common.reset_peak_rss(gateway_pid):
            print("  (kernel refused to reset VmHWM: the peak is since the gateway started)")
        cpu = _common.cpu_seconds(gateway_pid)
        model_cpu = _common.tree_cpu_seconds(model_pid, SERVING_PROCESSES)
        run = run_gateway(client, query, source.rows)
        run.cpu = _common.cpu_seconds(gateway_pid) - cpu
        run.model_cpu = _common.tree_cpu_seconds(model_pid, SERVING_PROCESSES) - model_cpu
        run.rss_before = rss_before
        run.rss_peak = _common.proc_status(gateway_pid, "VmHWM")
        return run

    def baseline_run() -> Run:
        model_cpu = _common.tree_cpu_seconds(model_pid, SERVING_PROCESSES)
        run = run_baseline(source.chunks, servers.predict_url, args.concurrency, source.rows)
        run.model_cpu = _common.tree_cpu_seconds(model_pid, SERVING_PROCESSES) - model_cpu
        return run

    if baseline_first:  # alternating the order spreads drifting background load evenly
        baseline = baseline_run()
        return gateway_run(), baseline
    gateway = gateway_run()
    return gateway, baseline_run()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="table rows (default 1M)")
    parser.add_argument(
        "--ten-million", action="store_true", help="run 1M and 10M rows (ignores --rows)"
    )
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per table")
    parser.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas (default 2)")
    parser.add_argument("--pg-url", help="also benchmark a PostgreSQL table (SQLAlchemy URL)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path.home() / ".cache" / "byom-bench",
        help="where the generated SQLite tables are kept and reused",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' log folder")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the gateway with py-spy (pip install py-spy) during the timed runs into "
        "this file (collapsed stacks; idle time excluded)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Set up data and servers, warm up, measure, print the table."""
    args = parse_args(argv)
    sizes = [1_000_000, 10_000_000] if args.ten_million else [args.rows]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    paths = {n: sqlite_table(args.data_dir, n) for n in [WARMUP_ROWS, *sizes]}
    pg_tables = {n: pg_table(args.pg_url, n) for n in sizes} if args.pg_url else {}
    if args.pg_url:
        pg_table(args.pg_url, WARMUP_ROWS)

    results: list[tuple[Source, Run, Run]] = []
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="byom-bench-"))
        stack.callback(lambda: None if args.keep_logs else shutil.rmtree(work, ignore_errors=True))
        home, logs = work / "home", work / "logs"
        # The embedded datasource attaches every <home>/local/<schema>.sqlite as <schema>.
        for n_rows, path in paths.items():
            _common.attach_table(path, home, f"bench_{n_rows}")
        print("starting the trivial Ray Serve model and byom serve ...", flush=True)
        model = _common.start_trivial_model(logs, replicas=args.replicas)
        stack.callback(model.stop)
        gateway = _common.start_gateway_server(home, logs)
        stack.callback(gateway.stop)
        servers = Servers(model, gateway)
        predict_url = servers.predict_url
        client = stack.enter_context(httpx.Client(base_url=gateway.url, timeout=3600.0))
        dtypes = orjson.dumps({"a": "float", "b": "integer", "y": "float"}).decode()
        _common.sql(
            client,
            f"CREATE PREDICTOR {PREDICTOR} PREDICT y USING url.predict='{predict_url}', "
            f"format='ray_serve', dtype_dict={dtypes}",
        )
        if args.pg_url:
            _common.sql(client, create_pg_datasource(args.pg_url))

        sources = [
            Source(
                f"sqlite {n:,}",
                n,
                f"local.bench_{n}.t",
                sqlite_chunks(paths[n], "t", args.batch_size),
            )
            for n in sizes
        ]
        for n in sizes if args.pg_url else []:
            chunks = pg_chunks(args.pg_url, pg_tables[n], args.batch_size)
            sources.append(Source(f"postgres {n:,}", n, f"{PG_DATASOURCE}.{pg_tables[n]}", chunks))

        print(_common.machine_line())
        print(
            f"batch_size={args.batch_size} concurrency={args.concurrency} replicas={args.replicas}"
        )
        print("warm-up ...", flush=True)
        warm = Source("warm-up", WARMUP_ROWS, f"local.bench_{WARMUP_ROWS}.t",
                      sqlite_chunks(paths[WARMUP_ROWS], "t", args.batch_size))  # fmt: skip
        measure(client, servers, warm, args)
        if args.profile:
            stack.enter_context(_common.py_spy(gateway.process.pid, args.profile))
        for source in sources:
            for i in range(args.repeat):
                print(f"{source.label} rows, run {i + 1}/{args.repeat} ...", flush=True)
                gw, base = measure(client, servers, source, args, baseline_first=i % 2 == 1)
                print(f"  gateway {gw.rate:,.0f} rows/s, baseline {base.rate:,.0f} rows/s, "
                      f"ratio {gw.rate / base.rate:.2f}", flush=True)  # fmt: skip
                results.append((source, gw, base))
        if args.keep_logs:
            print(f"logs kept in {logs}")

    print()
    report(results)
    return 0


def create_pg_datasource(pg_url: str) -> str:
    """``CREATE DATABASE benchpg ...`` for the gateway, from a SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    params: dict[str, Any] = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username,
        "database": url.database,
    }
    if url.password:
        params["password"] = url.password
    return (
        f"CREATE DATABASE {PG_DATASOURCE} WITH ENGINE = 'postgres', "
        f"PARAMETERS = {orjson.dumps(params).decode()}"
    )


def report(results: list[tuple[Source, Run, Run]]) -> None:
    """The result table and, per source, the best ratio and peak RSS."""
    rows = []
    for source, gw, base in results:
        rows.append([
            source.label,
            f"{gw.seconds:.2f}",
            f"{gw.rate:,.0f}",
            f"{base.seconds:.2f}",
            f"{base.rate:,.0f}",
            f"{gw.rate / base.rate:.2f}",
            gw.us_per_row(gw.cpu),
            base.us_per_row(base.cpu),
            f"{gw.us_per_row(gw.model_cpu)} / {base.us_per_row(base.model_cpu)}",
            _common.mib(gw.rss_before),
            _common.mib(gw.rss_peak),
            _common.mib(base.rss_peak),
        ])  # fmt: skip
    headers = ["table rows", "gw s", "gw rows/s", "base s", "base rows/s", "gw/base",
               "gw CPU us/row", "base CPU us/row", "model CPU us/row gw / base",
               "gw RSS before", "gw RSS peak", "base RSS peak"]  # fmt: skip
    _common.print_table(headers, rows)
    ratios = [gw.rate / base.rate for _, gw, base in results]
    peaks = [gw.rss_peak for _, gw, _ in results]
    print()
    print(f"throughput ratio gateway/baseline: median {_median(ratios):.2f} "
          f"(target >= 0.90)")  # fmt: skip
    print(f"gateway peak RSS: max {_common.mib(max(peaks))} (target: flat, < 1024 MiB)")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


if __name__ == "__main__":
    sys.exit(main())
