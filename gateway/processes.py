"""Start and stop the example model servers as real subprocesses (used by the demo and tests).

Each service runs in its own session (process group), writes stdout and stderr to one log
file, and is stopped with SIGTERM to the leader (so Ray can shut its cluster down cleanly)
followed by SIGKILL to whatever is left in the group (Ray workers, uvicorn children).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import httpx

__all__ = [
    "Service",
    "examples_dir",
    "free_port",
    "load_example",
    "start_gateway",
    "start_mlflow_example",
    "start_ray_serve_example",
    "wait_http",
]

LOG_TAIL_LINES = 40
READY_PREFIX = "READY "
#: What ``byom serve --ray`` prints once the gateway answers through Serve's proxy.
RAY_READY_TEXT = "byom gateway on Ray Serve at "
_POLL_S = 0.2


@dataclass
class Service:
    """A running example server: its base URL, process and log file."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def running(self) -> bool:
        """True while the leader process is alive."""
        return self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the service's log."""
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the leader, SIGKILL it after ``timeout`` s, then kill the group; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        pgid = self.process.pid  # start_new_session=True made the leader its group's id
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait(5)
        _kill_group(pgid)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_group(pgid: int, grace: float = 3.0) -> None:
    """Terminate, then kill, any process still in group ``pgid`` (children of the leader)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return  # the group is empty
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.1)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path`` ('' if it does not exist yet)."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it; another process could take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _died(process: subprocess.Popen[bytes], what: str, log_path: Path | None) -> RuntimeError:
    tail = log_tail(log_path) if log_path else ""
    where = f" (log: {log_path})" if log_path else ""
    return RuntimeError(
        f"{what} exited with code {process.returncode} before it was ready{where}:\n{tail}"
    )


def wait_http(
    url: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    *,
    log_path: Path | None = None,
    what: str | None = None,
) -> None:
    """Poll ``url`` with GET until any HTTP answer comes back (even 404 or 405).

    Fails fast, with the tail of ``log_path``, if ``process`` exits; raises RuntimeError
    after ``timeout`` seconds. ``what`` names the service in those messages.
    """
    what = what or f"the process serving {url}"
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while True:
        if process is not None and process.poll() is not None:
            raise _died(process, what, log_path)
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.HTTPError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            tail = log_tail(log_path) if log_path else ""
            raise RuntimeError(
                f"{what}: {url} did not answer within {timeout:g}s "
                f"(last error: {last_error}):\n{tail}"
            )
        time.sleep(_POLL_S)


def _wait_ready_line(
    process: subprocess.Popen[bytes], log_path: Path, timeout: float, what: str
) -> str:
    """Wait for a ``READY <url>`` line in the log; return the URL it announces."""
    deadline = time.monotonic() + timeout
    while True:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
        if process.poll() is not None:
            raise _died(process, what, log_path)
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"{what} printed no READY line within {timeout:g}s (log: {log_path}):\n"
                f"{log_tail(log_path)}"
            )
        time.sleep(_POLL_S)


def examples_dir() -> Path:
    """The ``examples/`` folder of the source checkout this package runs from."""
    path = Path(__file__).resolve().parent.parent / "examples"
    if not (path / "ray_serve_model.py").is_file():
        raise RuntimeError(
            f"The example models are not at {path}: they ship with the source checkout, not "
            "with the installed package. Run from a clone of the repository (pip install -e .)."
        )
    return path


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (e.g. ``home_rentals``, ``mlflow_model``) as a module."""
    folder = str(examples_dir())
    # The examples import each other as siblings, exactly as when run as scripts.
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def _log_dir(log_dir: Path | None) -> Path:
    path = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="byom-logs-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _spawn(args: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=examples_dir().parent,
            start_new_session=True,  # its own process group: stop() reaches the children
        )


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env["PYTHONUNBUFFERED"] = "1"  # the READY line must reach the log at once
    # The venv's bin holds the `mlflow` and `uvicorn` executables the servers exec.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def start_ray_serve_example(
    port: int | None = None,
    host: str = "127.0.0.1",
    *,
    log_dir: Path | None = None,
    timeout: float = 180.0,
) -> Service:
    """Start ``examples/ray_serve_model.py`` (its own local Ray) and wait until it serves.

    ``Service.url`` is the application's base URL, ``http://host:port/my_model``; the train
    and predict URLs are ``url + "/train"`` and ``url + "/predict"``.
    """
    port = port if port is not None else free_port(host)
    log_path = _log_dir(log_dir) / f"ray_serve_example_{port}.log"
    script = examples_dir() / "ray_serve_model.py"
    args = [sys.executable, str(script), "--host", host, "--port", str(port)]
    process = _spawn(args, log_path, _base_env())
    service = Service("ray_serve_example", f"http://{host}:{port}/my_model", process, log_path)
    try:
        service.url = _wait_ready_line(process, log_path, timeout, "the Ray Serve example")
        wait_http(
            service.url + "/", timeout, process, log_path=log_path, what="the Ray Serve example"
        )
    except BaseException:
        service.stop()
        raise
    return service


def start_mlflow_example(
    model_path: str,
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    log_dir: Path | None = None,
    timeout: float = 120.0,
) -> Service:
    """Serve ``model_path`` with the real ``mlflow models serve``; wait for ``/ping``.

    ``Service.url`` is the scoring URL, ``http://host:port/invocations``.
    """
    port = port if port is not None else free_port(host)
    log_path = _log_dir(log_dir) / f"mlflow_example_{port}.log"
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    # `python -m mlflow` needs no console script; the bin/ one is what a user would type.
    cli = [str(mlflow_bin)] if mlflow_bin.exists() else [sys.executable, "-m", "mlflow"]
    args = [
        *cli,
        "models",
        "serve",
        "-m",
        str(model_path),
        "-h",
        host,
        "-p",
        str(port),
        "--env-manager",
        "local",
    ]
    process = _spawn(args, log_path, _base_env())
    service = Service("mlflow_example", f"http://{host}:{port}/invocations", process, log_path)
    try:
        wait_http(
            f"http://{host}:{port}/ping",
            timeout,
            process,
            log_path=log_path,
            what=f"mlflow models serve -m {model_path}",
        )
    except BaseException:
        service.stop()
        raise
    return service


def _wait_log_line(
    log_path: Path, text: str, timeout: float, process: subprocess.Popen[bytes], what: str
) -> None:
    """Until ``text`` appears in the log; fails fast when ``process`` exits."""
    deadline = time.monotonic() + timeout
    while text not in log_tail(log_path, 10_000):
        if process.poll() is not None:
            raise _died(process, what, log_path)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: no {text!r} within {timeout:g} s:\n{log_tail(log_path)}")
        time.sleep(_POLL_S)


def start_gateway(
    home: Path,
    port: int | None = None,
    host: str = "127.0.0.1",
    *,
    log_dir: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
) -> Service:
    """Start ``byom serve`` on ``home`` as a real process; wait until ``/healthz`` is ok.

    ``env`` entries override the inherited environment; ``extra_args`` are more ``byom
    serve`` flags. ``Service.url`` is the gateway's base URL, ``http://host:port``.
    """
    port = port if port is not None else free_port(host)
    log_path = _log_dir(log_dir) / f"gateway_{port}.log"
    # `-m gateway.cli` runs this interpreter's package, whatever `byom` is first on PATH.
    args = [sys.executable, "-m", "gateway.cli", "serve", "--host", host, "--port", str(port)]
    args += ["--home", str(home), *extra_args]
    process = _spawn(args, log_path, {**_base_env(), **(env or {})})
    service = Service("gateway", f"http://{host}:{port}", process, log_path)
    what = f"byom serve --home {home}"
    try:
        if "--ray" in extra_args:
            # Serve's proxy answers 404 until the app's routes reach it: the command's own
            # line says when the gateway answers through it.
            _wait_log_line(log_path, RAY_READY_TEXT, timeout, process, what)
        # uvicorn binds its socket only after the lifespan started the Gateway, so the
        # first answer comes from a gateway that is ready; it must also say it is ok.
        wait_http(f"{service.url}/healthz", timeout, process, log_path=log_path, what=what)
        answer = httpx.get(f"{service.url}/healthz", timeout=10.0)
        if answer.status_code != 200:
            raise RuntimeError(
                f"{what}: /healthz answered HTTP {answer.status_code} {answer.text[:200]!r}:\n"
                f"{service.log_tail()}"
            )
    except BaseException:
        service.stop()
        raise
    return service
