"""Where a predict batch's serialisation time goes, per payload, before and after.

Measures, for batches of 1k/5k/20k rows x 3/8 columns (ints, floats, short strings, as a
datasource hands them to the adapter: tuples in column order):

* ``encode``: the adapter building the request body (``adapters.ray_serve.build_request``;
  ``seed`` is the code this replaced: dicts with zip(strict=True), a per-row width loop, JSON
  text decoded and dumped again inside ``{"df": ...}``);
* ``endpoint``: what a pandas endpoint spends turning that body into a DataFrame (stdlib
  ``json.loads`` twice + ``pd.DataFrame`` for JSON bodies, as ``examples/ray_serve_model.py``
  and FastAPI do; ``pd.read_parquet`` / Arrow ``read_pandas`` for binary ones);
* ``answer``: parsing and validating a ``{"prediction": [...], "confidence": [...]}`` answer
  (``orjson.loads`` + ``parse_prediction`` with a categorical dtype) versus the seed's per-value
  dtype loop;
* the MLflow ``dataframe_split`` body, and a ``text/csv`` body for comparison.

    python benchmarks/profile_payload.py            # the tables (about 30 s on 2 cores)
    python benchmarks/profile_payload.py --profile  # plus cProfile of the largest JSON batch

Times are the best of repeated runs in this process (single-threaded); MB/s is body size over
encode time. Nothing here talks to a server.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import datetime as dt
import decimal
import io
import json
import math
import pstats
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import orjson  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from adapters.base import Endpoint  # noqa: E402
from adapters.ray_serve import PAYLOADS, build_request, parse_prediction  # noqa: E402
from adapters.wire import dumps  # noqa: E402

SIZES = [(1_000, 3), (1_000, 8), (5_000, 3), (5_000, 8), (20_000, 3), (20_000, 8)]
MODEL = "bench"


# ---- data ------------------------------------------------------------------------------------


def make_batch(n_rows: int, n_cols: int, seed: int = 0) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Columns cycling int, float, str; values like a home_rentals table's."""
    rng = random.Random(seed)
    kinds = ("int", "float", "str")
    columns = [f"{kinds[i % 3]}_{i}" for i in range(n_cols)]
    makers: list[Callable[[], Any]] = [
        lambda: rng.randint(0, 100_000),
        lambda: round(rng.uniform(0, 10_000), 2),
        lambda: rng.choice(("downtown", "south_side", "westbrae", "berkeley_hills")),
    ]
    rows = [tuple(makers[i % 3]() for i in range(n_cols)) for _ in range(n_rows)]
    return columns, rows


# ---- the seed implementation (before this change), kept here as the baseline --------------


def _seed_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return None if value.is_nan() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return None if value != value else value.isoformat()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    raise TypeError(type(value).__name__)


def _seed_dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_seed_default, option=orjson.OPT_SERIALIZE_NUMPY)


def seed_encode(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    cols = list(columns)
    if len(set(cols)) != len(cols):
        raise ValueError("duplicate columns")
    for i, row in enumerate(rows):
        if len(row) != len(cols):
            raise ValueError(f"row {i}")
    records = [dict(zip(cols, row, strict=True)) for row in rows]
    return _seed_dumps({"df": _seed_dumps(records).decode()})


def seed_answer(content: bytes) -> list[Any]:
    answer = orjson.loads(content)
    values = answer["prediction"]
    for value in values:  # the seed's per-value categorical check
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if not isinstance(value, str | int | float | bool):
            raise ValueError(value)
    return values


def seed_mlflow(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    split = {"columns": list(columns), "data": [list(row) for row in rows]}
    return _seed_dumps({"dataframe_split": split})


# ---- the other side: what a pandas endpoint does with the body ------------------------------


def endpoint_decode(payload: str, body: bytes) -> pd.DataFrame:
    if payload in ("json", "json_columns", "seed"):
        return pd.DataFrame(json.loads(json.loads(body)["df"]))
    if payload == "parquet":
        return pd.read_parquet(io.BytesIO(body))
    with pa.ipc.open_stream(body) as reader:
        return reader.read_pandas()


def csv_body(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().encode()


# ---- timing ----------------------------------------------------------------------------------


def best_ms(fn: Callable[[], Any], budget_s: float = 0.4, max_reps: int = 50) -> float:
    """Best wall time of ``fn`` in ms over runs for about ``budget_s`` (at least 5 runs).

    The minimum, not the mean: other processes on a shared machine only ever add time.
    """
    fn()  # warm-up (imports, caches)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 5 or (len(times) < max_reps and time.perf_counter() - started < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print()


def encode_table() -> None:
    print("ray_serve predict body: encode (gateway) and decode (pandas endpoint), ms per batch")
    headers = ["rows", "cols", "payload", "body MB", "encode ms", "MB/s", "vs seed", "endpoint ms"]
    out: list[list[Any]] = []
    for n_rows, n_cols in SIZES:
        columns, rows = make_batch(n_rows, n_cols)
        reference = pd.DataFrame(rows, columns=columns)
        seed_ms = best_ms(lambda: seed_encode(columns, rows))  # noqa: B023
        methods: list[tuple[str, Callable[[], bytes]]] = [
            ("seed", lambda: seed_encode(columns, rows)),  # noqa: B023
        ]
        for payload in PAYLOADS:
            methods.append(
                (
                    payload,
                    lambda p=payload: build_request(p, columns, rows, model=MODEL).body,  # noqa: B023
                )
            )
        for name, encode in methods:
            body = encode()
            decoded = endpoint_decode(name, body)
            pd.testing.assert_frame_equal(decoded, reference, check_dtype=False)
            ms = seed_ms if name == "seed" else best_ms(encode)
            dec_ms = best_ms(lambda n=name, b=body: endpoint_decode(n, b), budget_s=0.3)
            mb = len(body) / 1e6
            out.append(
                [
                    n_rows,
                    n_cols,
                    name,
                    f"{mb:.2f}",
                    f"{ms:.2f}",
                    f"{mb / (ms / 1e3):.0f}",
                    f"{seed_ms / ms:.2f}x",
                    f"{dec_ms:.2f}",
                ]
            )
    print_table(headers, out)


def stages_table(n_rows: int = 20_000, n_cols: int = 8) -> None:
    """The JSON path split into its steps, to show where the remaining time goes."""
    from itertools import repeat

    columns, rows = make_batch(n_rows, n_cols)
    records = list(map(dict, map(zip, repeat(columns), rows)))
    inner = orjson.dumps(records)
    print(f"records JSON path, {n_rows} rows x {n_cols} columns, by step (ms)")
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("width check: set(map(len, rows))", lambda: set(map(len, rows))),
        ("row dicts: dict(zip(strict=True)) [seed]", lambda: [dict(zip(columns, r, strict=True)) for r in rows]),  # noqa: E501
        ("row dicts: map(dict, map(zip, ...))", lambda: list(map(dict, map(zip, repeat(columns), rows)))),  # noqa: E501
        ("orjson.dumps(records)", lambda: orjson.dumps(records)),
        ("df string: orjson.dumps(inner.decode())", lambda: orjson.dumps(inner.decode())),
        (
            "df string: bytes.replace escaping",
            lambda: b'"' + inner.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"',
        ),
        ("columnar: orjson.dumps({col: column})", lambda: dumps(dict(zip(columns, zip(*rows, strict=True), strict=True)), model=MODEL)),  # noqa: E501
        ("arrow: pa.array per column", lambda: [pa.array(c) for c in zip(*rows, strict=True)]),
    ]  # fmt: skip
    print_table(["step", "ms"], [[name, f"{best_ms(fn):.2f}"] for name, fn in steps])


def answer_table() -> None:
    print("ray_serve answer: parse + validate (categorical target), ms per batch")
    endpoint = Endpoint(
        model=MODEL, url_predict="http://x/predict", target="y", dtype_dict={"y": "categorical"}
    )
    out: list[list[Any]] = []
    for n_rows in (1_000, 5_000, 20_000):
        rng = random.Random(n_rows)
        content = orjson.dumps(
            {
                "prediction": [rng.randint(0, 4) for _ in range(n_rows)],
                "confidence": [round(rng.random(), 6) for _ in range(n_rows)],
            }
        )
        seed_ms = best_ms(lambda c=content: seed_answer(c))
        new_ms = best_ms(lambda c=content, n=n_rows: parse_prediction(orjson.loads(c), endpoint, n))
        out.append([n_rows, f"{seed_ms:.3f}", f"{new_ms:.3f}", f"{seed_ms / new_ms:.2f}x"])
    print_table(["rows", "seed ms", "now ms", "speed-up"], out)


def mlflow_table() -> None:
    print("mlflow request body (dataframe_split JSON; text/csv for comparison), ms per batch")
    out: list[list[Any]] = []
    for n_rows, n_cols in SIZES:
        columns, rows = make_batch(n_rows, n_cols)
        split = {"columns": columns, "data": rows}
        seed_ms = best_ms(lambda c=columns, r=rows: seed_mlflow(c, r))
        new_ms = best_ms(lambda s=split: dumps({"dataframe_split": s}, model=MODEL))
        csv_ms = best_ms(lambda c=columns, r=rows: csv_body(c, r))
        out.append([n_rows, n_cols, f"{seed_ms:.2f}", f"{new_ms:.2f}", f"{csv_ms:.2f}"])
    print_table(["rows", "cols", "seed json ms", "now json ms", "csv ms"], out)


def profile_json(n_rows: int = 20_000, n_cols: int = 8) -> None:
    columns, rows = make_batch(n_rows, n_cols)
    for label, fn in (
        ("seed", lambda: seed_encode(columns, rows)),
        ("now", lambda: build_request("json", columns, rows, model=MODEL)),
    ):
        print(f"cProfile, {label} JSON encode, {n_rows} x {n_cols}, 20 batches (tottime)")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20):
            fn()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="also print cProfile output")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, orjson {orjson.__version__}, "
          f"pyarrow {pa.__version__}, pandas {pd.__version__}\n")  # fmt: skip
    encode_table()
    stages_table()
    answer_table()
    mlflow_table()
    if args.profile:
        profile_json()
    return 0


if __name__ == "__main__":
    sys.exit(main())
