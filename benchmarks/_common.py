"""Shared helpers of the benchmark scripts: start the servers, read memory, print tables.

The scripts run from the repository root (``.venv/bin/python benchmarks/<script>.py``), so
this module is imported as a sibling (``import _common``) and ``gateway`` is the installed
package of the checkout.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from gateway import processes
from gateway.processes import Service, free_port, wait_http

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
READY_PREFIX = "READY "
MIB = 1024 * 1024


# -- processes ---------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONUNBUFFERED"] = "1"  # the READY line must reach the log at once
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def spawn(name: str, args: list[str], url: str, log_dir: Path) -> Service:
    """Start ``args`` in its own process group, logging to ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=REPO_ROOT,
            start_new_session=True,  # Service.stop() then reaches Ray's workers too
        )
    return Service(name, url, process, log_path)


def _wait_ready(service: Service, timeout: float) -> None:
    """Wait for the READY line, then for ``GET url/`` to answer 200 (the app is deployed)."""
    deadline = time.monotonic() + timeout
    while READY_PREFIX not in service.log_path.read_text(errors="replace"):
        if not service.running:
            raise RuntimeError(f"{service.name} exited early:\n{service.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service.name} printed no READY line:\n{service.log_tail()}")
        time.sleep(0.2)
    while True:
        try:
            if httpx.get(service.url + "/", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service.name} never answered 200:\n{service.log_tail()}")
        time.sleep(0.2)


def start_trivial_model(log_dir: Path, *, replicas: int = 1, timeout: float = 180.0) -> Service:
    """``benchmarks/trivial_model.py`` on a free port; ``url`` is ``http://host:port/bench``."""
    port = free_port()
    args = [
        sys.executable,
        str(BENCH_DIR / "trivial_model.py"),
        "--port",
        str(port),
        "--replicas",
        str(replicas),
    ]
    service = spawn("trivial_model", args, f"http://127.0.0.1:{port}/bench", log_dir)
    try:
        _wait_ready(service, timeout)
    except BaseException:
        service.stop()
        raise
    return service


def start_gateway_server(home: Path, log_dir: Path, *, timeout: float = 60.0) -> Service:
    """``byom serve`` over ``home`` on a free port; ``Service.process.pid`` is the server.

    Uses ``gateway.processes.start_gateway`` when the package has it, so the benchmarks
    start the gateway exactly as the tests do.
    """
    helper = getattr(processes, "start_gateway", None)
    if helper is not None:
        return helper(home, log_dir=log_dir, timeout=timeout)
    port = free_port()
    args = [sys.executable, "-m", "gateway.cli", "serve"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--home", str(home)]
    service = spawn("gateway", args, f"http://127.0.0.1:{port}", log_dir)
    try:
        wait_http(
            service.url + "/healthz",
            timeout,
            service.process,
            log_path=service.log_path,
            what="byom serve",
        )
    except BaseException:
        service.stop()
        raise
    return service


def sql(client: httpx.Client, query: str) -> dict[str, Any]:
    """POST /api/sql and return the JSON answer; raise with the gateway's message on error."""
    response = client.post("/api/sql", json={"query": query})
    if response.is_error:
        raise RuntimeError(f"{query!r} failed: HTTP {response.status_code} {response.text}")
    return response.json()


@contextlib.contextmanager
def py_spy(pid: int, out: Path, rate: int = 250) -> Iterator[None]:
    """Sample ``pid`` with ``py-spy record`` (collapsed stacks into ``out``) while inside."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    args = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    args += ["--output", str(out), "--nonblocking"]
    recorder = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches before the first timed request
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait(5)
        print(f"py-spy profile of the gateway written to {out}")


# -- memory ------------------------------------------------------------------------------


def proc_status(pid: int | str, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (VmRSS, VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(f"{field} not in /proc/{pid}/status")


def reset_peak_rss(pid: int | str) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if the kernel refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds ``pid`` has used (all its threads), from /proc/<pid>/stat.

    CPU time barely moves when other processes compete for the cores, unlike wall time, so
    it tells the gateway's own cost apart from the machine's load.
    """
    fields = _proc_stat(str(pid))
    if fields is None:
        raise ProcessLookupError(f"no process {pid}")
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the ``(name)``; None if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # the name in (...) may hold spaces


def tree_cpu_seconds(root: int, cmdline_prefixes: Sequence[str] = ()) -> float:
    """CPU seconds of the live descendants of ``root`` (and ``root``) whose command line
    starts with one of ``cmdline_prefixes`` (all of them when empty).

    Ray's actors (``ray::ProxyActor``, ``ray::ServeReplica:...``) run in process groups of
    their own under the raylet, so the process tree, not the group, finds them.
    """
    parent: dict[str, str] = {}
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        fields = _proc_stat(stat_path.parent.name)
        if fields is not None:
            parent[stat_path.parent.name] = fields[1]
    total = 0.0
    for pid in parent:
        ancestor, depth = pid, 0
        while ancestor not in ("0", "1", str(root)) and depth < 64:
            ancestor, depth = parent.get(ancestor, "0"), depth + 1
        if ancestor != str(root):
            continue
        if cmdline_prefixes:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if not cmdline.startswith(tuple(cmdline_prefixes)):
                continue
        fields = _proc_stat(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def mib(n_bytes: float) -> str:
    """``n_bytes`` as MiB with no decimals."""
    return f"{n_bytes / MIB:,.0f} MiB"


# -- statistics and output ---------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean."""
    return statistics.fmean(values)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain text table, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def machine_line() -> str:
    """Cores, Python and the versions that matter for the figures."""
    versions = []
    for package in ("ray", "mlflow", "pandas", "httpx", "orjson"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, {', '.join(versions)}; load average {load}"
    )


def attach_table(table: Path, home: Path, schema: str) -> None:
    """Make ``table`` (an SQLite file) the schema ``schema`` of the gateway's embedded
    datasource: a hard link (or a copy across file systems) into ``<home>/local``. Not a
    symlink: the embedded datasource attaches none that leads out of its folder."""
    attached = home / "local" / f"{schema}.sqlite"
    attached.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(table, attached)
    except OSError:
        shutil.copyfile(table, attached)
