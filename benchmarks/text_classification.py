"""Built-in text classification through the gateway versus in-process baselines (issue 8).

The default base model (the packaged all-MiniLM-L6-v2) is fine-tuned on the SST-2 train
sentences through ``byom serve``'s SQL with the default hyperparameters, and measured
against baselines run **in the same process and run**:

1. **Quality**: test accuracy and macro F1 of the gateway's model (``EVALUATE`` on the
   official test file) versus TF-IDF + LogisticRegression (scikit-learn) fitted on the same
   train rows (target: the gateway at least 5 points above, both figures).
2. **Training time**: ``CREATE MODEL`` to status ``complete`` versus transformers'
   ``Trainer`` called directly here on the same base model, rows, hyperparameters and
   number of torch threads as the gateway's training task (target: at most 1.2x).
3. **Batch prediction**: rows/s of ``SELECT t.text, p.labels FROM sst.test AS t JOIN
   sst_sentiment AS p`` (streamed as ndjson) versus ``pipeline("text-classification")`` on
   the trained model's directory, fetched from MLflow, on as many torch threads as the
   serving replica gets (target: at least 0.8x).

The train rows are stored in a SQLite datasource ``sst`` (tables ``train``, ``test``,
``warmup``; labels ``negative``/``positive``). The model is created with ``test_size = 0``:
it trains on every train row, exactly the rows the plain loop and TF-IDF get, and is scored
on the official test file instead of a holdout.

    .venv/bin/python benchmarks/text_classification.py --data ../shared/data/sst2-sentences
    .venv/bin/python benchmarks/text_classification.py --data ... --train-rows 2000 --epochs 1
    .venv/bin/python benchmarks/text_classification.py --data ... --baselines-only \\
        --train-rows 300 --test-rows 200

On 2 cores the full run (6920 rows, 3 epochs, trained twice on 1 thread, ~34 rows/s
each) takes about 25 minutes. ``--baselines-only`` runs the in-process parts only (no
gateway); the plain loop's model then stands in for the gateway's in ``pipeline()``. Use a
fresh ``--home``: the benchmark creates the datasource and the model by name.
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
import text_classification_baselines as baselines
from text_classification_report import (
    POLL_SECONDS,
    SERVING_THREADS,
    WARMUP_ROWS,
    GatewayTraining,
    JoinRun,
    Results,
    environment,
    pct,
    report,
    to_json,
)

# =========================================================================================
# The gateway's SQL surface for built-in models, and how its answers are read. Everything
# that depends on the statements' exact shape is here, in one place.
# =========================================================================================

DATASOURCE = "sst"
MODEL = "sst_sentiment"
STATUS_DONE, STATUS_FAILED = ("complete",), ("error",)
#: CPUs of the gateway's training task: the gateway's train_cpus (BYOM_TRAIN_CPUS, default 1),
#: passed to builtin_models.training.submit(num_cpus=...), whose torch threads are
#: max(1, int(num_cpus)). The benchmark sets BYOM_TRAIN_CPUS for the gateway it starts to the
#: plain loop's --train-threads, so both train on as many threads.
TRAINING_THREADS = max(1, int(float(os.environ.get("BYOM_TRAIN_CPUS") or 1)))
#: The served model predicts in batches of text_classifier_model.INFERENCE_BATCH = 64.
PIPELINE_BATCH = 64


def sql_create_datasource(db_path: Path) -> str:
    params = json.dumps({"path": str(db_path)})
    return f"CREATE DATABASE {DATASOURCE} WITH ENGINE = 'sqlite', PARAMETERS = {params}"


def sql_create_model(hyperparams: dict[str, Any]) -> str:
    """The model on every train row: ``test_size = 0`` holds nothing out (holdout.validate
    accepts 0), so the gateway, the plain loop and TF-IDF all train on the same rows."""
    using = ["task = 'text_classification'", "test_size = 0"]
    if hyperparams:
        using.append(f"hyperparams = {json.dumps(hyperparams)}")
    return (
        f"CREATE MODEL {MODEL} FROM {DATASOURCE} (SELECT text, labels FROM train) "
        f"PREDICT labels USING {', '.join(using)}"
    )


def sql_status() -> str:
    return f"DESCRIBE {MODEL}"


def sql_evaluate() -> str:
    return f"EVALUATE {MODEL} FROM {DATASOURCE} (SELECT text, labels FROM test)"


def sql_join(table: str) -> str:
    return f"SELECT t.text, p.labels FROM {DATASOURCE}.{table} AS t JOIN {MODEL} AS p"


def records(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``/api/sql`` JSON answer (``columns``, ``rows``) as one dict per row."""
    columns = answer.get("columns") or []
    return [dict(zip(columns, row, strict=True)) for row in answer.get("rows") or []]


@dataclass
class Status:
    status: str
    error: str | None
    record: dict[str, Any]


def read_status(answer: dict[str, Any]) -> Status:
    """DESCRIBE's row of the newest version (one row per version): ``status``, ``error``."""
    rows = records(answer)
    if not rows:
        raise RuntimeError(f"{sql_status()} answered no row: {answer}")
    record = max(rows, key=lambda r: int(r.get("version") or 0))
    return Status(str(record.get("status", "")).lower(), record.get("error"), record)


def read_phase(status: Status) -> str:
    """The training's phase (reading, training, logging, ...), or ``status <status>``."""
    return str(status.record.get("phase") or f"status {status.status}")


def read_progress(status: Status) -> str:
    """What DESCRIBE says about the training's progress, if anything."""
    keys = ("phase", "percent", "epoch", "step", "total_steps")
    return " ".join(f"{k}={status.record[k]}" for k in keys if status.record.get(k) is not None)


def read_evaluate(answer: dict[str, Any]) -> dict[str, float]:
    """EVALUATE's rows (``model, version, metric, value``) as ``{metric: value}``."""
    metrics = {}
    for row in records(answer):
        metric, value = row.get("metric"), row.get("value")
        if metric is not None and isinstance(value, int | float):
            metrics[str(metric).lower()] = float(value)
    if "accuracy" not in metrics or "f1" not in metrics:
        raise RuntimeError(f"{sql_evaluate()} answered no accuracy/f1: {answer}")
    return metrics


def read_model_location(record: dict[str, Any], home: Path) -> tuple[str, str]:
    """``(model_uri, tracking_uri)`` of the trained version: from DESCRIBE's row (a column,
    or a key of a JSON column such as ``options``), else the newest model logged to the
    gateway's tracking store: ``$BYOM_TRACKING_URI``, else the SQLite store in ``home``
    (``builtin_models.artifacts.default_tracking_uri``)."""
    model_uri = _find_key(record, "model_uri")
    tracking_uri = (
        _find_key(record, "tracking_uri")
        or os.environ.get("BYOM_TRACKING_URI")
        or f"sqlite:///{home / 'mlflow.db'}"
    )
    if model_uri:
        return str(model_uri), str(tracking_uri)
    return _newest_logged_model(str(tracking_uri)), str(tracking_uri)


# =========================================================================================


def _find_key(value: Any, key: str) -> Any:
    """``value[key]`` searched through nested dicts, lists and JSON strings."""
    if isinstance(value, str) and value[:1] in "{[":
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, dict):
        if value.get(key):
            return value[key]
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _find_key(item, key)
            if found:
                return found
    return None


def _newest_logged_model(tracking_uri: str) -> str:
    import mlflow

    from builtin_models.artifacts import DEFAULT_EXPERIMENT, tracking

    with tracking(tracking_uri):
        experiment = mlflow.get_experiment_by_name(DEFAULT_EXPERIMENT)
        models = []
        if experiment is not None:
            models = mlflow.search_logged_models(
                experiment_ids=[experiment.experiment_id],
                order_by=[{"field_name": "creation_time", "ascending": False}],
                max_results=1,
                output_format="list",
            )
    if not models:
        raise RuntimeError(f"no logged model in {tracking_uri} (experiment {DEFAULT_EXPERIMENT})")
    return str(models[0].model_uri)


def fetch_model_dir(model_uri: str, tracking_uri: str, dest: Path) -> Path:
    """Download the logged pyfunc model; return its HF directory (model + tokenizer), the
    artifact ``text_classification.save`` wrote (the ``model`` artifact of the MLmodel)."""
    import mlflow
    import yaml

    from builtin_models.artifacts import MODEL_ARTIFACT, tracking

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    with tracking(tracking_uri):
        downloaded = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dest))
    local = Path(downloaded)
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    relative = mlmodel["flavors"]["python_function"]["artifacts"][MODEL_ARTIFACT]["path"]
    model_dir = local / relative
    if not (model_dir / "config.json").is_file():
        raise RuntimeError(f"{model_dir} (from {model_uri}) holds no config.json")
    return model_dir


# -- data ------------------------------------------------------------------------------------


def write_database(path: Path, train: baselines.Rows, test: baselines.Rows) -> None:
    """``train``, ``test`` and ``warmup`` (the first test rows) tables in file order."""
    path.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for table, rows in (("train", train), ("test", test), ("warmup", test.head(WARMUP_ROWS))):
            conn.execute(f"CREATE TABLE {table} (text TEXT NOT NULL, labels TEXT NOT NULL)")
            conn.executemany(
                f"INSERT INTO {table} (text, labels) VALUES (?, ?)",
                zip(rows.texts, rows.labels, strict=True),
            )
        conn.commit()


# -- the gateway -----------------------------------------------------------------------------


def train_through_gateway(
    client: httpx.Client, hyperparams: dict[str, Any], timeout: float
) -> GatewayTraining:
    """CREATE MODEL, then poll DESCRIBE until the status is final; timed from the CREATE."""
    started = time.perf_counter()
    _common.sql(client, sql_create_model(hyperparams))
    timeline: list[tuple[float, str]] = []
    last_print = started
    while True:
        status = read_status(_common.sql(client, sql_status()))
        now = time.perf_counter()
        phase = read_phase(status)
        if not timeline or timeline[-1][1] != phase:
            timeline.append((round(now - started, 1), phase))
        if status.status in STATUS_DONE:
            return GatewayTraining(now - started, status.record, timeline)
        if status.status in STATUS_FAILED:
            raise RuntimeError(f"training failed: {status.error}")
        if timeline[-1][0] == round(now - started, 1) or now - last_print >= 30:
            print(f"  {now - started:6.0f} s  {status.status} {read_progress(status)}", flush=True)
            last_print = now
        if now - started > timeout:
            raise RuntimeError(f"training still '{status.status}' after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def run_join(client: httpx.Client, table: str, expected: int) -> JoinRun:
    """Stream the JOIN as ndjson; time it from the POST to the last row."""
    columns: list[str] = []
    rows: list[list[Any]] = []
    done: int | None = None
    body = {"query": sql_join(table), "format": "ndjson"}
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
    if done is None or done != len(rows) or len(rows) != expected:
        raise RuntimeError(f"the JOIN returned {len(rows)} rows (done line: {done}), "
                           f"expected {expected}")  # fmt: skip
    at = columns.index("labels") if "labels" in columns else -1
    return JoinRun(len(rows), seconds, [row[at] for row in rows])


# -- driver ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=_common.REPO_ROOT.parent / "shared" / "data"
                        / "sst2-sentences", help="folder of stsa.binary.train/.test")  # fmt: skip
    parser.add_argument("--train-rows", type=int, help="the first N train rows (default all)")
    parser.add_argument("--test-rows", type=int, help="the first N test rows (default all)")
    parser.add_argument("--epochs", type=float,
                        help="hyperparams num_train_epochs (default: the task's, 3)")  # fmt: skip
    parser.add_argument("--home", type=Path, help="the gateway's home (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--baselines-only", action="store_true",
                        help="only the in-process baselines, no gateway")  # fmt: skip
    parser.add_argument("--train-threads", type=int, default=TRAINING_THREADS,
                        help="plain loop threads = gateway BYOM_TRAIN_CPUS")  # fmt: skip
    parser.add_argument("--predict-threads", type=int, default=SERVING_THREADS,
                        help="torch threads of pipeline() (the serving replica's)")  # fmt: skip
    parser.add_argument("--pipeline-batch-size", type=int, default=PIPELINE_BATCH)
    parser.add_argument("--train-timeout", type=float, default=4 * 3600.0)
    parser.add_argument("--keep-logs", action="store_true", help="keep the gateway's log")
    return parser.parse_args(argv)


def hyperparams_of(args: argparse.Namespace) -> dict[str, Any]:
    """What CREATE MODEL passes: only what was given (the task's defaults otherwise)."""
    given: dict[str, Any] = {}
    if args.epochs is not None:
        given["num_train_epochs"] = int(args.epochs) if args.epochs.is_integer() else args.epochs
    return given


@contextlib.contextmanager
def work_dirs(args: argparse.Namespace) -> Iterator[tuple[Path, Path]]:
    """``(home, scratch)``: the gateway's home (``--home`` is kept) and a scratch folder."""
    scratch = Path(tempfile.mkdtemp(prefix="byom-bench-tc-"))
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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from builtin_models import base_models
    from builtin_models.text_classification import DEFAULT_HYPERPARAMS

    train = baselines.load_sst(args.data / "stsa.binary.train", args.train_rows)
    test = baselines.load_sst(args.data / "stsa.binary.test", args.test_rows)
    given = hyperparams_of(args)
    hyperparams = {**DEFAULT_HYPERPARAMS, **given}
    base = base_models.resolve(None)
    print(f"train {len(train):,} rows, test {len(test):,} rows; base model {base.name} "
          f"({base.source}, {base.path})", flush=True)  # fmt: skip

    with work_dirs(args) as (home, scratch):
        print("TF-IDF + LogisticRegression ...", flush=True)
        tfidf = baselines.tfidf_baseline(train, test)
        print(f"  accuracy {pct(tfidf.metrics['accuracy'])}", flush=True)

        with contextlib.ExitStack() as stack:
            client = None
            if not args.baselines_only:
                os.environ["BYOM_HOME"] = str(home)  # any default location lands in home
                os.environ["BYOM_TRAIN_CPUS"] = str(args.train_threads)  # = the plain loop's
                db_path = home / "sst.db"
                write_database(db_path, train, test)
                print(f"starting byom serve on {home} ...", flush=True)
                gateway = _common.start_gateway_server(home, scratch / "logs")
                stack.callback(gateway.stop)
                client = stack.enter_context(httpx.Client(base_url=gateway.url, timeout=3600.0))
                _common.sql(client, sql_create_datasource(db_path))

            # The plain loop runs while the gateway (if any) is idle.
            print(f"plain Trainer loop ({args.train_threads} thread(s)) ...", flush=True)
            plain = baselines.plain_trainer(
                train, base_model=base.path, hyperparams=hyperparams,
                threads=args.train_threads, workdir=scratch / "plain",
            )  # fmt: skip
            print(f"  {plain.seconds:.1f} s", flush=True)
            print("pipeline() on the plain loop's model ...", flush=True)
            plain_pipeline = baselines.pipeline_predict(
                plain.model_dir, test.texts, threads=args.predict_threads,
                batch_size=args.pipeline_batch_size,
            )  # fmt: skip
            results = Results(
                train_rows=len(train),
                test_rows=len(test),
                hyperparams=hyperparams,
                tfidf=tfidf,
                plain=plain,
                plain_scores=baselines.scores(test.labels, plain_pipeline.predictions),
                plain_pipeline=plain_pipeline,
                environment=environment(args),
            )

            if client is not None:
                print("training through the gateway ...", flush=True)
                print(f"  {sql_create_model(given)}", flush=True)
                results.gateway_training = train_through_gateway(client, given, args.train_timeout)
                print(f"  {results.gateway_training.seconds:.1f} s", flush=True)
                print("EVALUATE on the test rows ...", flush=True)
                results.gateway_scores = read_evaluate(_common.sql(client, sql_evaluate()))
                print("JOIN (warm-up, then timed) ...", flush=True)
                run_join(client, "warmup", min(WARMUP_ROWS, len(test)))
                results.join = run_join(client, "test", len(test))
                results.join_scores = baselines.scores(test.labels, results.join.predictions)
                print("pipeline() on the gateway's model from MLflow ...", flush=True)
                model_uri, tracking_uri = read_model_location(results.gateway_training.record, home)
                model_dir = fetch_model_dir(model_uri, tracking_uri, scratch / "served")
                results.pipeline = baselines.pipeline_predict(
                    model_dir, test.texts, threads=args.predict_threads,
                    batch_size=args.pipeline_batch_size,
                )  # fmt: skip

        print()
        report(results, gateway_ran=not args.baselines_only)
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
