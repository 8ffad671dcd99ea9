"""The gateway as a Ray Serve application: N stateless replicas behind Serve's HTTP proxy.

Each replica runs the same FastAPI app as ``byom serve`` (gateway.server.create_app, its
lifespan opening a ``Gateway``), so the HTTP API is identical; what replicas share lives in
the catalog, which must then be one database every replica reaches (PostgreSQL). Serve
spreads requests over the replicas, restarts a replica that dies, and drains a replica's
in-flight requests before stopping it (``graceful_shutdown_timeout_s``).

Three ways in, one builder:

- ``byom serve --ray`` (gateway.cli) calls :func:`run` and blocks until stopped;
- ``serve run gateway.serve_app:build`` / ``serve deploy deploy/serve_config.yaml`` use
  :func:`build` with the ``args`` of the config file;
- Python: ``serve.run(build({"replicas": 2, "catalog_url": ...}))``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from byom.errors import InvalidOption
from gateway.settings import Settings

log = logging.getLogger("byom.serve_app")

APP_NAME = "byom-gateway"
DEPLOYMENT_NAME = "Gateway"
#: Statements (streaming JOINs) one replica runs at once; Serve's default of 5 would queue
#: a sixth client behind five long JOINs.
MAX_ONGOING_REQUESTS = 200
#: How long a stopping replica waits for its in-flight statements to finish.
DRAIN_TIMEOUT_S = 120.0
# Environment variables a replica inherits from whoever deployed it (the knobs, the home,
# the tracking URI, Ray's auth mode), so it reads the same Settings as the deploying shell.
_INHERITED_PREFIXES = ("BYOM_", "MLFLOW_", "HF_")
_INHERITED = ("RAY_AUTH_MODE",)


@dataclass(frozen=True)
class AppOptions:
    """How the gateway application is deployed (the ``args`` of a Serve config file)."""

    replicas: int = 2
    catalog_url: str | None = None
    home: str | None = None
    #: CPUs each gateway replica reserves (it mostly waits on I/O).
    replica_cpus: float = 0.25
    #: Serve's autoscaling_config (min_replicas, max_replicas, ...); replaces ``replicas``.
    autoscaling: Mapping[str, Any] | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> AppOptions:
        """Checked options from a config file's ``args`` (unknown keys are an error)."""
        known = {"replicas", "catalog_url", "home", "replica_cpus", "autoscaling", "env"}
        unknown = sorted(set(args) - known)
        if unknown:
            raise InvalidOption(
                f"Unknown gateway application arg(s): {', '.join(unknown)}. "
                f"Known: {', '.join(sorted(known))}."
            )
        replicas = _positive(args.get("replicas", cls.replicas), "replicas", int)
        cpus = _positive(args.get("replica_cpus", cls.replica_cpus), "replica_cpus", float)
        autoscaling = args.get("autoscaling")
        if autoscaling is not None and not isinstance(autoscaling, Mapping):
            raise InvalidOption("autoscaling must be a mapping such as {max_replicas: 4}.")
        env = {str(k): str(v) for k, v in (args.get("env") or {}).items()}
        return cls(
            replicas=int(replicas),
            catalog_url=args.get("catalog_url") or None,
            home=args.get("home") or None,
            replica_cpus=float(cpus),
            autoscaling=dict(autoscaling) if autoscaling else None,
            env=env,
        )


def _positive(value: Any, name: str, kind: type) -> int | float:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0 or isinstance(value, bool):
        raise InvalidOption(f"{name} must be a positive number, got {value!r}.", option=name)
    return number


def inherited_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``environ`` (default: this process) a replica should see too."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(_INHERITED_PREFIXES) or k in _INHERITED}


@serve.deployment(
    name=DEPLOYMENT_NAME,
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    graceful_shutdown_timeout_s=DRAIN_TIMEOUT_S,
    health_check_period_s=5,
)
@serve.ingress()
class GatewayReplica:
    """One gateway replica: the FastAPI app of ``byom serve``, built inside the replica
    (nothing unpicklable crosses from the deploying process), its ``Gateway`` opened and
    closed by the app's lifespan, which Serve runs."""

    def __init__(self, home: str | None, catalog_url: str | None) -> None:
        # Settings are read here, in the replica, from the environment runtime_env gave it.
        self._settings = Settings.load()
        self._home = Path(home) if home else None
        self._catalog_url = catalog_url
        logging.getLogger("httpx").setLevel(logging.WARNING)

    def __serve_build_asgi_app__(self) -> Any:
        from gateway.server import create_app

        return create_app(home=self._home, catalog_url=self._catalog_url, settings=self._settings)


def build(args: Mapping[str, Any] | None = None) -> Application:
    """The gateway application, for ``serve run``/``serve deploy`` and :func:`run`.

    ``args``: ``replicas`` (2), ``catalog_url`` (required in practice for more than one
    replica: a PostgreSQL URL every replica reaches), ``home``, ``replica_cpus`` (0.25),
    ``autoscaling`` (Serve's autoscaling_config, replaces ``replicas``), ``env`` (extra
    environment variables for the replicas, on top of the BYOM_*/MLFLOW_* of the deploying
    process).
    """
    options = AppOptions.from_args(args or {})
    if (options.replicas > 1 or options.autoscaling) and not _shared(options.catalog_url):
        log.warning(
            "several gateway replicas on a SQLite catalog: they share it only when they run "
            "on one machine; give catalog_url a PostgreSQL URL for a cluster"
        )
    env = {**inherited_env(), **options.env}
    deployment_options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": options.replica_cpus, "runtime_env": {"env_vars": env}}
    }
    if options.autoscaling:
        deployment_options["autoscaling_config"] = dict(options.autoscaling)
    else:
        deployment_options["num_replicas"] = options.replicas
    return GatewayReplica.options(**deployment_options).bind(options.home, options.catalog_url)


def _shared(catalog_url: str | None) -> bool:
    return bool(catalog_url) and not str(catalog_url).startswith("sqlite")


@dataclass(frozen=True)
class RunOptions:
    """``byom serve --ray``: where Ray is, where Serve's proxy answers, the app's options."""

    app: AppOptions
    ray_address: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000


def run(options: RunOptions, stop: threading.Event | None = None) -> None:
    """Deploy the gateway on Ray (joining ``ray_address``/``RAY_ADDRESS`` or starting a
    local Ray), print its URL, block until SIGINT/SIGTERM (or ``stop``), then delete the
    application (Serve drains in-flight statements first) and leave Ray as found."""
    from builtin_models import cluster

    info = cluster.connect(
        cluster.RayOptions(address=options.ray_address, serve_host=options.host,
                           serve_port=options.port)
    )  # fmt: skip
    args: dict[str, Any] = {
        "replicas": options.app.replicas,
        "catalog_url": options.app.catalog_url,
        "home": options.app.home,
        "replica_cpus": options.app.replica_cpus,
        "env": dict(options.app.env),
    }
    if options.app.autoscaling:
        args["autoscaling"] = dict(options.app.autoscaling)
    stop = stop or threading.Event()
    try:
        serve.run(build(args), name=APP_NAME, route_prefix="/", blocking=False)
        _wait_routed(info.url)
        print(f"byom gateway on Ray Serve at {info.url} ({_replicas(options.app)})", flush=True)
        _wait(stop)
    finally:
        print("stopping: draining in-flight statements ...", flush=True)
        try:
            serve.delete(APP_NAME)
        finally:
            cluster.disconnect()


def _wait_routed(url: str, timeout: float = 120.0) -> None:
    """Until Serve's proxy routes the gateway's ``/healthz`` (200 five times in a row):
    ``serve.run`` returns when the replicas run, a moment before the proxy knows the
    app's routes (it answers 404 meanwhile)."""
    import httpx

    deadline = time.monotonic() + timeout
    in_a_row = 0
    while in_a_row < 5 and time.monotonic() < deadline:
        try:
            ok = httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        except httpx.HTTPError:
            ok = False
        in_a_row = in_a_row + 1 if ok else 0
        time.sleep(0.05 if ok else 0.5)
    if in_a_row < 5:
        log.warning("Serve's proxy at %s does not route the gateway yet", url)


def _replicas(app: AppOptions) -> str:
    return "autoscaling" if app.autoscaling else f"{app.replicas} replica(s)"


def _wait(stop: threading.Event) -> None:
    """Block until ``stop`` is set or the process gets SIGINT/SIGTERM."""

    def handle(signum: int, frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handle)
    while not stop.wait(0.5):
        pass
