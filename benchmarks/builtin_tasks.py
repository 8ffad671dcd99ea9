"""The built-in generation and extraction tasks on real data, through the gateway's SQL,
against simple baselines scored by the same metric code (issue 11).

For each task a ``byom serve`` on a fresh home gets a SQLite datasource ``bench`` with the
task's ``<task>_train`` and ``<task>_test`` tables, then:

1. ``CREATE MODEL <task>_bench FROM bench (SELECT ... FROM <task>_train) PREDICT ...
   USING task = '...', test_size = 0`` with the default base model and hyperparameters
   (only ``--epochs`` or ``--hyperparams`` change them), timed from the CREATE to status
   ``complete`` (target: under 20 minutes per task on this 2-core machine);
2. ``EVALUATE <task>_bench FROM bench (SELECT ... FROM <task>_test)``: the gateway's metrics
   on the held-out rows;
3. the baseline (``builtin_tasks_data``) on the same held-out rows; target: the gateway's
   model beats it on the task's main metric (QA: F1, summarization: ROUGE-L, translation:
   BLEU and chrF, generation: held-out perplexity below the base model's).

Datasets: ``--data`` (default ``../shared/data``), read by ``builtin_tasks_data``.

    .venv/bin/python benchmarks/builtin_tasks.py --data ../shared/data
    .venv/bin/python benchmarks/builtin_tasks.py --tasks question_answering --json out.json
    .venv/bin/python benchmarks/builtin_tasks.py --tasks translation --train-rows 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _common
import builtin_tasks_data as data
import httpx

DATASOURCE = "bench"
POLL_SECONDS = 5.0
TARGET_MINUTES = 20.0


@dataclass(frozen=True)
class Bench:
    """How one task is benchmarked: its data, SQL and baseline."""

    task: str
    folder: str
    load: Callable[[Path, int | None, int | None], data.Split]
    select: str  # the columns of CREATE MODEL's and EVALUATE's query
    predict: str
    using: str  # task-specific USING options
    main_metrics: tuple[str, ...]
    baseline_name: str
    baseline: Callable[[dict[str, list[str]]], dict[str, float]] | None
    train_rows: int | None = None
    lower_is_better: bool = False


BENCHES = {
    b.task: b
    for b in (
        Bench(
            "question_answering", "xquad-squad-format", data.load_qa,
            "question, context, answer", "answer", "", ("f1", "exact_match"),
            "overlap sentence", data.qa_baseline,
        ),
        Bench(
            "summarization", "scitldr-a", data.load_summaries, "source, summary", "summary", "",
            ("rougeL", "rouge1", "rouge2"), "lead sentence", data.lead_baseline,
        ),
        Bench(
            "translation", "multi30k-en-fr", data.load_translations, "source, target", "target",
            ", source_lang = 'en', target_lang = 'fr'", ("bleu", "chrf"), "copy source",
            data.copy_baseline, train_rows=5000,
        ),
        Bench(
            "text_generation", "multi30k-en-fr", data.load_generation, "text", "continuation",
            "", ("perplexity",), "base model", None, train_rows=5000, lower_is_better=True,
        ),
    )
}  # fmt: skip


@dataclass
class TaskResult:
    task: str
    train_rows: int
    test_rows: int
    create_to_complete_s: float | None = None
    gateway: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    baseline_name: str = ""
    phases: list[tuple[float, str]] = field(default_factory=list)
    error: str | None = None


def records(answer: dict[str, Any]) -> list[dict[str, Any]]:
    columns = answer.get("columns") or []
    return [dict(zip(columns, row, strict=True)) for row in answer.get("rows") or []]


def write_tables(path: Path, bench: Bench, split: data.Split) -> None:
    """``<task>_train`` and ``<task>_test`` with the split's columns (all TEXT)."""
    with sqlite3.connect(path) as conn:
        for part, columns in (("train", split.train), ("test", split.test)):
            table = f"{bench.task}_{part}"
            names = list(columns)
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} ({', '.join(f'{n} TEXT' for n in names)})")
            marks = ", ".join("?" for _ in names)
            rows = zip(*(columns[n] for n in names), strict=True)
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def create_sql(bench: Bench, hyperparams: dict[str, Any]) -> str:
    using = f"task = '{bench.task}', test_size = 0{bench.using}"
    if hyperparams:
        using += f", hyperparams = '{json.dumps(hyperparams)}'"
    return (
        f"CREATE MODEL {bench.task}_bench FROM {DATASOURCE} "
        f"(SELECT {bench.select} FROM {bench.task}_train) PREDICT {bench.predict} USING {using}"
    )


def train(client: httpx.Client, bench: Bench, hyperparams: dict[str, Any], timeout: float,
          result: TaskResult) -> None:  # fmt: skip
    """CREATE MODEL, then DESCRIBE every few seconds until the version is final."""
    query = create_sql(bench, hyperparams)
    if _complete_version(client, bench):  # a --home of an earlier run: evaluate it again
        print(f"  {bench.task}_bench is already trained in this home: not timed", flush=True)
        return
    print(f"  {query[:160]}", flush=True)
    started = time.perf_counter()
    _common.sql(client, query)
    last_print = 0.0
    while True:
        rows = records(_common.sql(client, f"DESCRIBE {bench.task}_bench"))
        record = max(rows, key=lambda r: int(r.get("version") or 0))
        now = time.perf_counter() - started
        status = str(record.get("status", "")).lower()
        phase = str(record.get("phase") or status)
        if not result.phases or result.phases[-1][1] != phase:
            result.phases.append((round(now, 1), phase))
        if status == "complete":
            result.create_to_complete_s = round(now, 1)
            return
        if status == "error":
            raise RuntimeError(f"training failed: {record.get('error')}")
        if now - last_print >= 60:
            progress = {k: record.get(k) for k in ("phase", "percent", "epoch", "step")}
            print(f"  {now:6.0f} s {status} {progress}", flush=True)
            last_print = now
        if now > timeout:
            raise RuntimeError(f"training still '{status}' after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def _complete_version(client: httpx.Client, bench: Bench) -> bool:
    rows = records(_common.sql(client, "SELECT name, status FROM mindsdb.models"))
    return any(r["name"] == f"{bench.task}_bench" and r["status"] == "complete" for r in rows)


def evaluate(client: httpx.Client, bench: Bench) -> dict[str, float]:
    answer = _common.sql(
        client,
        f"EVALUATE {bench.task}_bench FROM {DATASOURCE} "
        f"(SELECT {bench.select} FROM {bench.task}_test)",
    )
    return {
        str(r["metric"]): float(r["value"])
        for r in records(answer)
        if isinstance(r.get("value"), int | float)
    }


def run_task(client: httpx.Client, bench: Bench, args: argparse.Namespace, db: Path,
             hyperparams: dict[str, Any]) -> TaskResult:  # fmt: skip
    train_rows = args.train_rows if args.train_rows is not None else bench.train_rows
    split = bench.load(args.data / bench.folder, train_rows, args.test_rows)
    n_train, n_test = split.sizes
    result = TaskResult(bench.task, n_train, n_test, baseline_name=bench.baseline_name)
    print(f"\n== {bench.task}: {n_train:,} train rows, {n_test:,} test rows", flush=True)
    write_tables(db, bench, split)
    try:
        train(client, bench, hyperparams, args.train_timeout, result)
        print(f"  complete after {result.create_to_complete_s} s", flush=True)
        result.gateway = evaluate(client, bench)
        print(f"  EVALUATE: {result.gateway}", flush=True)
        # Its replica holds part of a CPU: with --train-cpus 2 on 2 CPUs the next task's
        # training would wait for it forever.
        _common.sql(client, f"DROP MODEL {bench.task}_bench")
    except Exception as exc:  # noqa: BLE001 - reported in the table, the next task runs
        result.error = str(exc)
        print(f"  FAILED: {exc}", flush=True)
    if bench.baseline is not None:
        result.baseline = bench.baseline(split.test)
    else:  # generation: the base model's perplexity on the same held-out text
        from builtin_models import text_generation

        result.baseline = {"perplexity": text_generation.perplexity_of(None, split.test["text"])}
    print(f"  baseline ({bench.baseline_name}): {result.baseline}", flush=True)
    return result


def verdict(bench: Bench, result: TaskResult) -> str:
    metric = bench.main_metrics[0]
    ours, theirs = result.gateway.get(metric), result.baseline.get(metric)
    if ours is None or theirs is None:
        return "n/a"
    beats = ours < theirs if bench.lower_is_better else ours > theirs
    return "met" if beats else "MISSED"


def report(results: list[TaskResult]) -> None:
    print(f"\n{_common.machine_line()}")
    rows = []
    for r in results:
        bench = BENCHES[r.task]
        for metric in bench.main_metrics:
            rows.append([
                r.task, f"{r.train_rows:,}/{r.test_rows:,}", metric,
                _fmt(r.gateway.get(metric)), f"{_fmt(r.baseline.get(metric))} ({r.baseline_name})",
                verdict(bench, r) if metric == bench.main_metrics[0] else "",
                "" if r.create_to_complete_s is None else f"{r.create_to_complete_s / 60:.1f}",
            ])  # fmt: skip
    _common.print_table(
        ["task", "train/test", "metric", "gateway", "baseline", "beats", "train min"], rows
    )
    for r in results:
        if r.create_to_complete_s is not None:
            minutes = r.create_to_complete_s / 60
            met = "met" if minutes < TARGET_MINUTES else "MISSED"
            print(f"{r.task}: CREATE -> complete {minutes:.1f} min (< {TARGET_MINUTES:.0f}: {met})")
        if r.error:
            print(f"{r.task}: error: {r.error}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--tasks", default=",".join(BENCHES), help="comma-separated")
    parser.add_argument(
        "--train-rows",
        type=int,
        default=None,
        help="train rows per task (default: all; 5000 for Multi30K tasks)",
    )
    parser.add_argument("--test-rows", type=int, default=None, help="default: all")
    parser.add_argument("--epochs", type=float, default=None, help="num_train_epochs override")
    parser.add_argument("--hyperparams", type=json.loads, default={}, help="JSON overrides")
    parser.add_argument("--train-cpus", default="2", help="BYOM_TRAIN_CPUS of the gateway")
    parser.add_argument("--train-timeout", type=float, default=3600.0)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    unknown = set(args.tasks.split(",")) - set(BENCHES)
    if unknown:
        parser.error(f"unknown tasks {sorted(unknown)}; tasks: {', '.join(BENCHES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for key, value in (("HF_HUB_OFFLINE", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true"),
                       ("TOKENIZERS_PARALLELISM", "false")):  # fmt: skip
        os.environ.setdefault(key, value)
    hyperparams = dict(args.hyperparams)
    if args.epochs is not None:
        hyperparams["num_train_epochs"] = args.epochs
    scratch = Path(tempfile.mkdtemp(prefix="byom-bench-tasks-"))
    home = args.home.expanduser().absolute() if args.home else scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["BYOM_HOME"] = str(home)
    os.environ["BYOM_TRAIN_CPUS"] = str(args.train_cpus)
    results: list[TaskResult] = []
    gateway = _common.start_gateway_server(home, scratch / "logs", timeout=120.0)
    try:
        with httpx.Client(base_url=gateway.url, timeout=3600.0) as client:
            db = home / "bench.sqlite"
            sqlite3.connect(db).close()
            params = json.dumps({"path": str(db)})
            _common.sql(
                client,
                f"CREATE DATABASE IF NOT EXISTS {DATASOURCE} WITH ENGINE = 'sqlite', "
                f"PARAMETERS = {params}",
            )
            for name in args.tasks.split(","):
                results.append(run_task(client, BENCHES[name], args, db, hyperparams))
                if args.json:
                    args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    finally:
        gateway.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    report(results)
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
