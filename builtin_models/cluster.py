"""Ray for the built-in models: start a local Ray (or join ``RAY_ADDRESS``) and Serve.

The gateway calls :func:`connect` on its first built-in statement, never before: a gateway
that only reaches external models never imports Ray. Everything here is synchronous and
slow (seconds); the gateway calls it in a worker thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from byom.errors import GatewayError

__all__ = ["RayOptions", "ServeInfo", "connect", "disconnect", "resource_options"]

log = logging.getLogger("byom.ray")
_lock = threading.Lock()
_owned = False  # True when connect() started the (local) Ray it is connected to
_initialized = False  # True when connect() called ray.init (so disconnect detaches)
_info: ServeInfo | None = None


@dataclass(frozen=True)
class RayOptions:
    """Where Ray runs and where Serve answers.

    ``address``: a cluster to join (``RAY_ADDRESS`` when None; neither: a local Ray is
    started with ``num_cpus`` CPUs, no dashboard). ``serve_host``/``serve_port``: where
    Serve's HTTP proxy listens when this call starts Serve (a running Serve keeps its own).
    """

    address: str | None = None
    num_cpus: float | None = None
    serve_host: str = "127.0.0.1"
    serve_port: int = 8000


@dataclass(frozen=True)
class ServeInfo:
    """Serve's HTTP proxy: the base URL the model deployments answer under."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


def connect(options: RayOptions) -> ServeInfo:
    """Connect to Ray and make sure Serve runs; idempotent (later calls are free)."""
    global _owned, _initialized, _info
    with _lock:
        if _info is not None:
            import ray

            if ray.is_initialized():
                return _info
        import ray
        from ray import serve

        address = options.address or os.environ.get("RAY_ADDRESS") or None
        try:
            if not ray.is_initialized():
                _initialized = True
                if address:
                    ray.init(address=address, include_dashboard=False, log_to_driver=False)
                else:
                    # A private local cluster: no token (Ray 2.60 enables token auth by
                    # default), no dashboard (about 1 GB of memory on a small box).
                    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
                    cpus = options.num_cpus or os.cpu_count() or 1
                    ray.init(
                        address="local",
                        num_cpus=int(max(1, cpus)),
                        include_dashboard=False,
                        log_to_driver=False,
                    )
                    _owned = True
            serve.start(http_options={"host": options.serve_host, "port": options.serve_port})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise GatewayError(
                f"Could not start {where} for the built-in models: {exc}. Check RAY_ADDRESS "
                "(unset it for a local Ray) and that the Serve port "
                f"{options.serve_port} is free (BYOM_SERVE_PORT).",
                code="RAY_UNAVAILABLE",
            ) from exc
        _info = _serve_info(options)
        log.info("built-in models on Ray; Serve at %s", _info.url)
        return _info


def _serve_info(options: RayOptions) -> ServeInfo:
    """Where the running Serve's proxy listens (it may predate this process)."""
    try:
        # Not public API: the only way to learn the HTTP options of a Serve that another
        # driver started. Falls back to what we asked for.
        from ray.serve.context import _get_global_client

        config = _get_global_client().http_config
        return ServeInfo(host=str(config.host), port=int(config.port))
    except Exception:  # noqa: BLE001 - any change in that private API
        return ServeInfo(host=options.serve_host, port=options.serve_port)


def resource_options(resources: Mapping[str, float] | None) -> dict[str, Any]:
    """Ray options (of a task, or a Serve replica's ``ray_actor_options``) that reserve
    ``resources``: ``GPU`` as ``num_gpus`` (Ray refuses it among custom resources), the
    others as custom ``resources`` (``{"trainer": 1}``: a node started with ``ray start
    --resources '{"trainer": 1}'``). Empty: nothing to add."""
    custom = dict(resources or {})
    options: dict[str, Any] = {}
    if "GPU" in custom:
        options["num_gpus"] = custom.pop("GPU")
    if custom:
        options["resources"] = custom
    return options


def disconnect() -> None:
    """Shut Serve and Ray down if :func:`connect` started them; else just detach."""
    global _owned, _initialized, _info
    with _lock:
        if _info is None:
            return
        import ray
        from ray import serve

        try:
            if _owned:
                serve.shutdown()
            if _initialized:
                ray.shutdown()
        finally:
            _owned = _initialized = False
            _info = None
