"""``byom demo``: the whole product on the embedded default, printed statement by statement.

Starts the example Ray Serve model and a real ``mlflow models serve`` as separate processes
(the models "already run behind HTTP"), loads generated ``home_rentals`` and ``reviews``
tables into the embedded datasource, then registers, trains and predicts with SQL - and
fine-tunes a small built-in text classifier (the packaged all-MiniLM-L6-v2) on Ray, served
on Ray Serve, predicted through the same SQL.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from catalog.db import default_home
from datasources import embedded_schema_path
from gateway import processes
from gateway.core import Gateway
from gateway.formatting import format_table
from gateway.result import Result

SHOW_ROWS = 10  # long results are cut in the printout, never in the data


def main(home: Path | None = None) -> int:
    """Run the demo in ``<home>/demo`` (wiped first); return a process exit code."""
    root = (Path(home) if home else default_home()) / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.monotonic()
    _say(f"byom demo - working in {root}")
    _load_home_rentals(root)
    services: list[processes.Service] = []
    try:
        with ThreadPoolExecutor(2) as pool:  # both services boot in parallel
            ray_future = pool.submit(processes.start_ray_serve_example, log_dir=root)
            mlflow_future = pool.submit(_start_mlflow, root)
            for future in (ray_future, mlflow_future):
                services.append(future.result())
        ray_url, mlflow_url = services[0].url, services[1].url
        _say(f"Ray Serve example model at {ray_url}; MLflow model at {mlflow_url}")
        asyncio.run(_run_statements(root, ray_url, mlflow_url))
    finally:
        for service in services:
            service.stop()
    _say(f"demo finished in {time.monotonic() - started:.0f}s")
    return 0


def _load_home_rentals(root: Path) -> None:
    frame = processes.load_example("home_rentals").generate(500)
    path = embedded_schema_path(root, "test_data")
    with sqlite3.connect(path) as conn:
        frame.to_sql("home_rentals", conn, index=False, if_exists="replace")
    _say(f"loaded {len(frame)} rows into local.test_data.home_rentals ({path})")
    reviews = processes.load_example("reviews").generate(80)
    with sqlite3.connect(path) as conn:
        reviews.to_sql("reviews", conn, index=False, if_exists="replace")
    _say(f"loaded {len(reviews)} rows into local.test_data.reviews")


def _start_mlflow(root: Path) -> processes.Service:
    model_path = processes.load_example("mlflow_model").train_and_log(root / "mlflow_model")
    return processes.start_mlflow_example(model_path, log_dir=root)


async def _run_statements(root: Path, ray_url: str, mlflow_url: str) -> None:
    statements = [
        "SHOW DATABASES;",
        f"""CREATE PREDICTOR byom
FROM local (
    SELECT number_of_rooms, initial_price, rental_price
    FROM test_data.home_rentals
) PREDICT number_of_rooms
USING
url.train = '{ray_url}/train',
url.predict = '{ray_url}/predict',
dtype_dict={{"number_of_rooms": "categorical", "initial_price": "integer", "rental_price": "integer"}},
format='ray_server';""",
        "WAIT byom",
        "SELECT * FROM byom WHERE initial_price=3000 AND rental_price=3000;",
        """SELECT tb.number_of_rooms, t.rental_price
FROM local.test_data.home_rentals AS t JOIN mindsdb.byom AS tb
WHERE t.rental_price > 5300;""",
        f"""CREATE PREDICTOR byom2 PREDICT number_of_rooms
USING url.predict='{mlflow_url}', format='mlflow',
data_dtype={{"initial_price": "integer", "rental_price": "integer", "number_of_rooms": "integer"}};""",
        "SELECT number_of_rooms FROM byom2 WHERE initial_price=3000 AND rental_price=3000;",
        """SELECT t.initial_price, t.rental_price, a.number_of_rooms AS ray_rooms,
       a.confidence, b.number_of_rooms AS mlflow_rooms
FROM local.test_data.home_rentals AS t JOIN byom AS a JOIN models.byom2 AS b
WHERE t.location = 'great' LIMIT 5;""",
        # A built-in model: fine-tuned on Ray from the rows, served on Ray Serve. Small
        # settings keep the demo short (a few seconds of training on 2 cores).
        """CREATE MODEL sentiment
FROM local (SELECT review AS text, sentiment FROM test_data.reviews)
PREDICT sentiment
USING task = 'text_classification',
      hyperparams = '{"num_train_epochs": 3, "max_length": 16, "learning_rate": 1e-4}',
      test_size = 0.25;""",
        "WAIT sentiment",
        "SELECT sentiment, sentiment_proba FROM sentiment WHERE text = 'a warm and funny story';",
        """SELECT t.review, p.sentiment, p.confidence
FROM (SELECT review AS text, review FROM local.test_data.reviews) AS t JOIN sentiment AS p
LIMIT 4;""",
        "SHOW MODELS;",
    ]
    gateway = await Gateway.start(home=root)
    try:
        for text in statements:
            if text.startswith("WAIT "):
                name = text.split()[1]
                _say(f"-- waiting for {name} to finish training ...")
                result = await gateway.wait_for_training(name, timeout=600)
                if "phase" in result.columns:  # a built-in model: its versions
                    _print(_columns(result, ["name", "version", "status", "metrics", "error"]))
                else:
                    _print(_columns(result, ["name", "status", "error", "updated_at"]))
                continue
            _say("\n" + text)
            result = await gateway.sql(text)
            if text.startswith(("CREATE PREDICTOR", "CREATE MODEL")):  # the row is wide
                result = _columns(result, ["name", "kind", "status", "target", "url_predict"])
            _print(result)
    finally:
        await gateway.close()


def _columns(result: Result, keep: list[str]) -> Result:
    index = [result.columns.index(c) for c in keep]
    return Result(columns=keep, rows=[[row[i] for i in index] for row in result.rows])


def _print(result: Result) -> None:
    shown = Result(result.columns, result.rows[:SHOW_ROWS], result.message)
    text = format_table(shown)
    if len(result.rows) > SHOW_ROWS:
        text += f"\n... {len(result.rows)} rows in all, first {SHOW_ROWS} shown"
    print(text, flush=True)


def _say(text: str) -> None:
    print(text, flush=True)
