"""What built-in models cost a gateway that does not use them: start-up time and memory.

Starts ``byom serve`` ``--repeat`` times (time until ``/healthz`` answers), runs statements
that reach only external things (CREATE DATABASE, plain SQL, SHOW MODELS, the catalog), and
reads the server's VmRSS and whether torch or Ray are mapped into it (``/proc/<pid>/maps``).
Then one built-in statement (a tiny fine-tune of the packaged MiniLM) and the same readings:
the baseline, measured in the same run, is what the gateway weighs once built-ins are used.

    .venv/bin/python benchmarks/gateway_footprint.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common
import httpx

LIBS = {"torch": "libtorch", "ray": "_raylet"}


def loaded(pid: int) -> dict[str, bool]:
    """Which heavy libraries are mapped into process ``pid``."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name: marker in maps for name, marker in LIBS.items()}


def start(home: Path, log_dir: Path) -> tuple[_common.Service, float]:
    began = time.monotonic()
    service = _common.start_gateway_server(home, log_dir)
    return service, time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="byom-bench-footprint-"))
    data = root / "reviews.sqlite"
    with sqlite3.connect(data) as conn:
        conn.execute("CREATE TABLE reviews (text TEXT, labels TEXT)")
        rows = [(f"a {w} film", "pos") for w in ("great", "fine", "warm", "fun", "superb")]
        rows += [(f"a {w} film", "neg") for w in ("dull", "bad", "bland", "awful", "stale")]
        conn.executemany("INSERT INTO reviews VALUES (?, ?)", rows * 3)

    starts: list[float] = []
    for i in range(args.repeat):
        service, seconds = start(root / f"home{i}", root)
        starts.append(seconds)
        if i < args.repeat - 1:
            service.stop()
    pid = service.process.pid
    rss_idle = _common.proc_status(pid, "VmRSS")
    with httpx.Client(base_url=service.url, timeout=600) as client:
        params = json.dumps({"path": str(data)})
        _common.sql(client, f"CREATE DATABASE d WITH ENGINE='sqlite', PARAMETERS={params}")
        _common.sql(client, "SELECT COUNT(*) FROM d.reviews")
        _common.sql(client, "SHOW MODELS")
        _common.sql(client, "SELECT * FROM mindsdb.models_versions")
        rss_external = _common.proc_status(pid, "VmRSS")
        libs_external = loaded(pid)
        began = time.monotonic()
        _common.sql(
            client,
            "CREATE MODEL tiny FROM d (SELECT text, labels FROM reviews) PREDICT labels USING "
            "task = 'text_classification', test_size = 0, hyperparams = "
            '\'{"num_train_epochs": 1, "max_length": 8}\'',
        )
        while True:
            rows = _common.sql(client, "SELECT status, error FROM mindsdb.models_versions")
            status, error = rows["rows"][0]
            if status in ("complete", "error"):
                break
            time.sleep(0.5)
        first_builtin_s = time.monotonic() - began
        rss_builtin = _common.proc_status(pid, "VmRSS")
        libs_builtin = loaded(pid)
    service.stop()
    if status != "complete":
        print(f"the built-in model failed: {error}", file=sys.stderr)
        return 1

    start_s = statistics.median(starts)
    print(_common.machine_line())
    _common.print_table(
        ["gateway", "start s (median)", "VmRSS", "torch loaded", "Ray loaded"],
        [
            ["idle, just started", f"{start_s:.2f}", _common.mib(rss_idle), "-", "-"],
            [
                "after external statements",
                "",
                _common.mib(rss_external),
                libs_external["torch"],
                libs_external["ray"],
            ],
            [
                "after one built-in CREATE MODEL (baseline)",
                "",
                _common.mib(rss_builtin),
                libs_builtin["torch"],
                libs_builtin["ray"],
            ],
        ],
    )
    print(
        f"\nexternal-only RSS / built-in RSS: {rss_external / rss_builtin:.2f}; "
        f"first built-in statement to a served version: {first_builtin_s:.1f} s "
        f"(starts Ray and Serve, trains, deploys); start-up runs: "
        + ", ".join(f"{s:.2f}" for s in starts)
    )
    met = not libs_external["torch"] and not libs_external["ray"]
    print(f"target (no torch, no Ray without a built-in statement): {'MET' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
