"""The gateway's built-in TwoTower recommender versus in-process baselines (issue 9).

MovieLens 100k, the standard ``ua.base`` / ``ua.test`` split (943 users, 1682 items;
``ua.test`` holds exactly 10 ratings per user). Protocol, the same for every model:

* implicit feedback: an interaction is **positive when rating >= 4**; every model trains on
  the ``ua.base`` positives only (the gateway gets all ``ua.base`` rows with
  ``feedback = 'implicit', feedback_threshold = 3.5``: rating > 3.5, the same positives);
* scored users: every user with at least one positive in ``ua.test`` (934 users);
* each model ranks **all items except the user's ``ua.base`` items** (seen, any rating) and
  keeps the top 10 (ties: lower item id first for the baselines);
* **Recall@10 = hits / min(10, |test positives|)**, **NDCG@10** with binary relevance (DCG
  of the hit ranks, 1/log2(rank+1), over the ideal DCG of min(10, |test positives|) hits at
  the top), **HR@10** = share of users with at least one hit; means over the scored users,
  all computed by ONE function (``recommender_baselines.ranking_metrics``) from the ranked
  lists of each model.

Models, all trained in the same run: **popularity** (count of positives per item in
``ua.base``), **ALS** (``implicit.als.AlternatingLeastSquares``, factors 64, regularization
0.05, iterations 15, 2 threads, on the binary user x item positives matrix) and the
gateway's **TwoTower** (``CREATE MODEL ... USING task = 'recommendation'``, default
hyperparams), whose top 10 of every scored user come from ONE streamed JOIN of a
``test_users`` table with the model (``remove_seen`` left at its default, true; any seen
item in its answer is counted as a protocol violation and scored as a miss).

Targets: TwoTower's NDCG@10 above popularity's and at least ALS's; training (CREATE MODEL
to status ``complete``) under 60 s (ALS's fit time is reported, not compared); the JOIN in
seconds, not minutes; p50 of a one-user top 10 over 100,000 synthetic items at the
deployment (direct POST to its ``url_predict``) <= 5 ms. One-user latency through the gateway
and directly is reported for MovieLens too.

    .venv/bin/python benchmarks/recommender.py --data ../shared/data/movielens-100k
    .venv/bin/python benchmarks/recommender.py --data ... --baselines-only
    .venv/bin/python benchmarks/recommender.py --data ... --skip-100k --json out.json

``--baselines-only`` runs popularity and ALS only (seconds, no gateway). Use a fresh
``--home``: the benchmark creates the datasource and the models by name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
import httpx
import orjson
import recommender_baselines as baselines
from recommender_baselines import JoinRun, K, Latency, Results, Training, report, to_json

# =========================================================================================
# The gateway's SQL surface for the recommender, and how its answers are read. Everything
# that depends on the statements' exact shape is here, in one place.
# =========================================================================================

DATASOURCE = "ml"
MODEL = "ml_rec"
SYNTH_MODEL = "synth_rec"
STATUS_DONE, STATUS_FAILED = ("complete",), ("error",)
FEEDBACK_THRESHOLD = 3.5  # implicit: rating > threshold is positive, so >= 4
SYNTH_HYPERPARAMS = {"epochs": 1}  # builtin_models.recommendation.DEFAULT_HYPERPARAMS key
POLL_SECONDS = 0.5
WARMUP_USERS = 20
LATENCY_USER = "1"
SYNTH_LATENCY_USER = "s1"  # recommender_baselines.synthetic_interactions ids


def sql_create_datasource(db_path: Path) -> str:
    params = json.dumps({"path": str(db_path)})
    return f"CREATE DATABASE {DATASOURCE} WITH ENGINE = 'sqlite', PARAMETERS = {params}"


def sql_create_model(model: str, table: str, hyperparams: dict[str, Any]) -> str:
    """Every row of ``table`` (``test_size = 0``: no holdout, the baselines' rows too)."""
    using = [
        "task = 'recommendation'",
        "feedback = 'implicit'",
        f"feedback_threshold = {FEEDBACK_THRESHOLD}",
        "test_size = 0",
    ]
    if hyperparams:
        using.append(f"hyperparams = '{json.dumps(hyperparams)}'")
    return (
        f"CREATE MODEL {model} FROM {DATASOURCE} (SELECT user_id, item_id, rating FROM {table}) "
        f"PREDICT rating USING {', '.join(using)}"
    )


def sql_status(model: str) -> str:
    return f"DESCRIBE {model}"


#: The recommended id's column in a built-in model's answer. The deployment answers
#: ``prediction`` and ``item_id`` (the same id); the gateway names ``prediction`` after the
#: PREDICT column (``rating`` here), so the SQL reads ``item_id``.
RECOMMENDED_COLUMN = "item_id"


def sql_recommend_join(users_table: str) -> str:
    return (
        f"SELECT u.user_id, p.{RECOMMENDED_COLUMN} AS item_id, p.score, p.rank "
        f"FROM {DATASOURCE}.{users_table} AS u JOIN {MODEL} AS p "
        f"USING recommend = 'items', topk = {K}"
    )


def sql_recommend_one(user: str) -> str:
    return (
        f"SELECT {RECOMMENDED_COLUMN} FROM {MODEL} WHERE user_id = '{user}' "
        f"USING recommend = 'items', topk = {K}"
    )


def direct_body(user: str) -> dict[str, Any]:
    """What the deployment's predict URL takes for the same one-user top 10."""
    return {"df": json.dumps([{"user_id": user}]), "params": {"recommend": "items", "topk": K}}


def records(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``/api/sql`` JSON answer (``columns``, ``rows``) as one dict per row."""
    columns = answer.get("columns") or []
    return [dict(zip(columns, row, strict=True)) for row in answer.get("rows") or []]


@dataclass
class Status:
    status: str
    error: str | None
    record: dict[str, Any]


def read_status(model: str, answer: dict[str, Any]) -> Status:
    """DESCRIBE's row of the newest version (one row per version): ``status``, ``error``."""
    rows = records(answer)
    if not rows:
        raise RuntimeError(f"{sql_status(model)} answered no row: {answer}")
    record = max(rows, key=lambda r: int(r.get("version") or 0))
    return Status(str(record.get("status", "")).lower(), record.get("error"), record)


def read_progress(status: Status) -> str:
    keys = ("phase", "percent", "epoch", "step", "total_steps")
    return " ".join(f"{k}={status.record[k]}" for k in keys if status.record.get(k) is not None)


def read_predict_url(record: dict[str, Any]) -> str:
    """The deployment's predict URL, from the version's DESCRIBE row."""
    url = record.get("url_predict")
    if not url or not str(url).startswith("http"):
        raise RuntimeError(f"DESCRIBE gave no http url_predict: {record}")
    return str(url)


def read_model_uri(record: dict[str, Any], home: Path) -> tuple[str, str]:
    """``(model_uri, tracking_uri)`` of the version: DESCRIBE's ``model_uri``, logged to
    ``$BYOM_TRACKING_URI``, else the SQLite store in ``home``
    (``builtin_models.artifacts.default_tracking_uri``)."""
    uri = record.get("model_uri")
    if not uri:
        raise RuntimeError(f"DESCRIBE gave no model_uri: {record}")
    tracking = os.environ.get("BYOM_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    return str(uri), tracking


def read_ranked(columns: list[str], rows: list[list[Any]]) -> dict[int, list[int]]:
    """The JOIN's rows (one per user and item) as ``{user: [item, ...]}`` in rank order
    (the ``rank`` column when there is one, else the answer's order). Ids are ints."""
    at = {name: columns.index(name) for name in ("user_id", "item_id", "rank") if name in columns}
    if "user_id" not in at or "item_id" not in at:
        raise RuntimeError(f"the JOIN answered columns {columns}, not user_id and item_id")
    pairs: dict[int, list[tuple[float, int]]] = {}
    for n, row in enumerate(rows):
        rank = float(row[at["rank"]]) if "rank" in at and row[at["rank"]] is not None else n
        pairs.setdefault(int(row[at["user_id"]]), []).append((rank, int(row[at["item_id"]])))
    return {user: [item for _, item in sorted(items)] for user, items in pairs.items()}


# =========================================================================================


# -- data ------------------------------------------------------------------------------------


def write_database(path: Path, data: baselines.MovieLens, synthetic: bool) -> None:
    """``ratings_base``/``ratings_test`` (ids as TEXT), ``test_users`` (the scored users),
    ``warmup_users`` (the first of them) and, unless skipped, the 100k-item ``synthetic``."""
    path.unlink(missing_ok=True)
    users = [(str(u),) for u in data.relevant()]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for table, rows in (("ratings_base", data.base), ("ratings_test", data.test)):
            conn.execute(f"CREATE TABLE {table} (user_id TEXT, item_id TEXT, rating INTEGER)")
            conn.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)",
                             ((str(u), str(i), int(r)) for u, i, r in rows.tolist()))  # fmt: skip
        for table, rows in (("test_users", users), ("warmup_users", users[:WARMUP_USERS])):
            conn.execute(f"CREATE TABLE {table} (user_id TEXT)")
            conn.executemany(f"INSERT INTO {table} VALUES (?)", rows)
        if synthetic:
            user_ids, item_ids = baselines.synthetic_interactions()
            conn.execute("CREATE TABLE synthetic (user_id TEXT, item_id TEXT, rating INTEGER)")
            conn.executemany("INSERT INTO synthetic VALUES (?, ?, 5)",
                             zip(user_ids, item_ids, strict=True))  # fmt: skip
        conn.commit()


# -- the gateway -----------------------------------------------------------------------------


def train(client: httpx.Client, model: str, statement: str, timeout: float) -> Training:
    """Send CREATE MODEL, then poll DESCRIBE until the status is final; timed from the CREATE."""
    print(f"  {statement}", flush=True)
    started = time.perf_counter()
    _common.sql(client, statement)
    timeline: list[tuple[float, str]] = []
    last_print = started
    while True:
        status = read_status(model, _common.sql(client, sql_status(model)))
        now = time.perf_counter()
        phase = str(status.record.get("phase") or f"status {status.status}")
        if not timeline or timeline[-1][1] != phase:
            timeline.append((round(now - started, 1), phase))
            print(f"  {now - started:6.1f} s  {status.status} {read_progress(status)}", flush=True)
            last_print = now
        elif now - last_print >= 15:
            print(f"  {now - started:6.1f} s  {status.status} {read_progress(status)}", flush=True)
            last_print = now
        if status.status in STATUS_DONE:
            print(f"  complete after {now - started:.1f} s", flush=True)
            return Training(now - started, status.record, timeline)
        if status.status in STATUS_FAILED:
            raise RuntimeError(f"training {model} failed: {status.error}")
        if now - started > timeout:
            raise RuntimeError(f"training {model} still '{status.status}' after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def run_join(client: httpx.Client, users_table: str, users: int) -> tuple[JoinRun, dict]:
    """Stream the JOIN as ndjson; time it from the POST to the last row."""
    columns: list[str] = []
    rows: list[list[Any]] = []
    done: int | None = None
    body = {"query": sql_recommend_join(users_table), "format": "ndjson"}
    started = time.perf_counter()
    with client.stream("POST", "/api/sql", json=body) as answer:
        if answer.is_error:
            answer.read()
            raise RuntimeError(f"the JOIN failed: HTTP {answer.status_code} {answer.text}")
        for line in answer.iter_lines():
            if not line:
                continue
            message = orjson.loads(line)
            if "error" in message:
                raise RuntimeError(f"the JOIN failed part-way: {message['error']}")
            if message.get("done"):
                done = message.get("rows")
            elif "rows" in message:
                rows.extend(message["rows"])
            elif "columns" in message:
                columns = message["columns"]
    seconds = time.perf_counter() - started
    if done is not None and done != len(rows):
        raise RuntimeError(f"the JOIN streamed {len(rows)} rows, its done line says {done}")
    return JoinRun(users, len(rows), seconds), read_ranked(columns, rows)


def measure_latency(
    gateway: _common.Service, url: str, user: str, args: argparse.Namespace, *, via_gateway: bool
) -> tuple[list[Latency], float | None]:
    """One-user top 10: direct POSTs to ``url`` and (``via_gateway``) the same through
    ``/api/sql``, alternating, each on its own keep-alive client, after ``warmup`` untimed."""
    direct_ms: list[float] = []
    gateway_ms: list[float] = []
    sql_body = {"query": sql_recommend_one(user)}
    body = direct_body(user)
    warmup, requests = args.warmup, args.requests
    cpu: float | None = None
    with httpx.Client(base_url=gateway.url) as gw, httpx.Client() as direct:
        first = direct.post(url, json=body)
        if first.is_error:
            raise RuntimeError(f"POST {url} {body}: HTTP {first.status_code} {first.text}")
        print(f"  direct answer: {first.text[:160]}", flush=True)
        if via_gateway:
            answer = _common.sql(gw, sql_body["query"])
            if len(answer.get("rows") or []) != K:
                raise RuntimeError(f"{sql_body['query']!r} answered {answer}")
        for i in range(warmup + requests):
            if i == warmup:
                cpu = _common.cpu_seconds(gateway.process.pid)
            started = time.perf_counter()
            direct.post(url, json=body).raise_for_status()
            elapsed = (time.perf_counter() - started) * 1000
            if i >= warmup:
                direct_ms.append(elapsed)
            if via_gateway:
                started = time.perf_counter()
                gw.post("/api/sql", json=sql_body).raise_for_status()
                elapsed = (time.perf_counter() - started) * 1000
                if i >= warmup:
                    gateway_ms.append(elapsed)
        assert cpu is not None
        cpu_ms = (_common.cpu_seconds(gateway.process.pid) - cpu) / requests * 1000
    out = [Latency("direct", direct_ms)]
    if via_gateway:
        out.append(Latency("gateway", gateway_ms))
    return out, cpu_ms if via_gateway else None


def measure_model_predict(
    record: dict[str, Any], home: Path, user: str, args: argparse.Namespace
) -> Latency:
    """The logged model's own ``predict`` (what a replica calls), loaded here with
    ``mlflow.pyfunc``: a one-row frame and the same params, no HTTP, no Serve batching."""
    import mlflow
    import pandas as pd

    from builtin_models.artifacts import tracking

    model_uri, tracking_uri = read_model_uri(record, home)
    with tracking(tracking_uri):
        model = mlflow.pyfunc.load_model(model_uri)
    frame = pd.DataFrame([{"user_id": user}])
    params = direct_body(user)["params"]
    if len(model.predict(frame, params=params)) != K:
        raise RuntimeError(f"{model_uri} answered {model.predict(frame, params=params)}")
    ms = []
    for i in range(args.warmup + args.requests):
        started = time.perf_counter()
        model.predict(frame, params=params)
        if i >= args.warmup:
            ms.append((time.perf_counter() - started) * 1000)
    return Latency("model predict", ms)


def run_gateway(args: argparse.Namespace, data: baselines.MovieLens, r: Results, home: Path,
                scratch: Path) -> None:  # fmt: skip
    relevant = data.relevant()
    os.environ["BYOM_HOME"] = str(home)  # any default location lands in home
    db_path = home / "ml.db"
    write_database(db_path, data, synthetic=not args.skip_100k)
    print(f"starting byom serve on {home} ...", flush=True)
    with contextlib.ExitStack() as stack:
        gateway = _common.start_gateway_server(home, scratch / "logs")
        stack.callback(gateway.stop)
        client = stack.enter_context(httpx.Client(base_url=gateway.url, timeout=3600.0))
        _common.sql(client, sql_create_datasource(db_path))
        print("training TwoTower through the gateway ...", flush=True)
        statement = sql_create_model(MODEL, "ratings_base", args.hyperparams)
        r.training = train(client, MODEL, statement, args.train_timeout)
        print("JOIN (warm-up, then timed) ...", flush=True)
        run_join(client, "warmup_users", WARMUP_USERS)
        r.join, ranked = run_join(client, "test_users", len(relevant))
        print(f"  {r.join.rows:,} rows in {r.join.seconds:.2f} s", flush=True)
        r.metrics["TwoTower (gateway)"] = baselines.ranking_metrics(ranked, relevant)
        r.violations = baselines.violations(ranked, data.seen(), relevant, K)
        print(f"one-user top {K}: {args.requests} requests after {args.warmup} ...", flush=True)
        url = read_predict_url(r.training.record)
        r.latency, r.gateway_cpu_ms = measure_latency(
            gateway, url, LATENCY_USER, args, via_gateway=True
        )
        r.latency.append(measure_model_predict(r.training.record, home, LATENCY_USER, args))
        if not args.skip_100k:
            print("training on 100,000 synthetic items ...", flush=True)
            statement = sql_create_model(SYNTH_MODEL, "synthetic", SYNTH_HYPERPARAMS)
            r.synth_training = train(client, SYNTH_MODEL, statement, args.train_timeout)
            url = read_predict_url(r.synth_training.record)
            latency, _ = measure_latency(gateway, url, SYNTH_LATENCY_USER, args, via_gateway=False)
            r.synth_latency = latency[0]
            r.synth_predict = measure_model_predict(
                r.synth_training.record, home, SYNTH_LATENCY_USER, args
            )


# -- driver ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=_common.REPO_ROOT.parent / "shared" / "data"
                        / "movielens-100k", help="folder of ua.base / ua.test")  # fmt: skip
    parser.add_argument("--baselines-only", action="store_true",
                        help="popularity and ALS only, no gateway")  # fmt: skip
    parser.add_argument("--skip-100k", action="store_true",
                        help="no synthetic 100k-item model and latency")  # fmt: skip
    parser.add_argument("--hyperparams", type=json.loads, default={},
                        help="JSON hyperparams of the MovieLens TwoTower")  # fmt: skip
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2, help="ALS threads")
    parser.add_argument("--home", type=Path, help="the gateway's home (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--train-timeout", type=float, default=1800.0)
    parser.add_argument("--keep-logs", action="store_true", help="keep the gateway's log")
    return parser.parse_args(argv)


@contextlib.contextmanager
def work_dirs(args: argparse.Namespace) -> Iterator[tuple[Path, Path]]:
    """``(home, scratch)``: the gateway's home (``--home`` is kept) and a scratch folder."""
    scratch = Path(tempfile.mkdtemp(prefix="byom-bench-rec-"))
    try:
        home = args.home.expanduser().absolute() if args.home else scratch / "home"
        home.mkdir(parents=True, exist_ok=True)
        yield home, scratch
    finally:
        if args.keep_logs:
            print(f"logs kept in {scratch / 'logs'}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    data = baselines.load_movielens(args.data)
    relevant = data.relevant()
    users = list(relevant)
    print(f"ua.base {len(data.base):,} ratings ({len(data.base_positives):,} positives), "
          f"ua.test {len(data.test):,} ({len(data.test_positives):,} positives); "
          f"{data.n_users} users, {data.n_items} items; {len(users)} users scored",
          flush=True)  # fmt: skip
    results = Results(len(users), {}, {}, {}, environment=_common.machine_line())
    results.settings = {
        "poll_seconds": POLL_SECONDS,
        "warmup_users": WARMUP_USERS,
        "latency_user": LATENCY_USER,
        "synth_hyperparams": SYNTH_HYPERPARAMS,
    }
    results.synth_rows = 0 if args.skip_100k else 2_000 * 60
    for run in (baselines.popularity(data, users),
                baselines.als(data, users, threads=args.threads)):  # fmt: skip
        results.metrics[run.name] = baselines.ranking_metrics(run.ranked, relevant)
        results.fit_seconds[run.name] = run.fit_seconds
        results.rank_seconds[run.name] = run.rank_seconds
        m = results.metrics[run.name]
        print(f"{run.name}: NDCG@{K} {m.ndcg:.4f} (fit {run.fit_seconds:.2f} s)", flush=True)
    if not args.baselines_only:
        with work_dirs(args) as (home, scratch):
            run_gateway(args, data, results, home, scratch)
    print()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(to_json(results), indent=2, default=str))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as exc:  # a failed statement or training: its message, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
