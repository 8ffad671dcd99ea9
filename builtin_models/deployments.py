"""Model versions as Ray Serve applications: deploy, check, remove.

Each version of a built-in model is its own Serve application named
``byom-<model>-v<version>`` under the route ``/byom/<model>/v<version>``; its predict URL
(``.../predict``) speaks the ``ray_serve`` wire format, so the gateway reaches it through the
ordinary ``ray_serve`` adapter. Call :func:`builtin_models.cluster.connect` first; every
function here blocks (seconds for a deploy) and belongs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from byom.errors import GatewayError

__all__ = ["DeployOptions", "app_name", "deploy", "is_running", "predict_url", "remove"]


@dataclass(frozen=True)
class DeployOptions:
    """How a version is served: CPUs and custom Ray resources per replica (``{"serving":
    1}`` places replicas on the nodes that declare it), replicas, batching."""

    num_cpus: float = 0.2
    num_replicas: int = 1
    resources: Mapping[str, float] = field(default_factory=dict)
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.0
    num_threads: int | None = 1


def app_name(model: str, version: int) -> str:
    """The Serve application (and deployment) name of a model version."""
    return f"byom-{model}-v{version}"


def route_prefix(model: str, version: int) -> str:
    return f"/byom/{model}/v{version}"


def predict_url(serve_url: str, model: str, version: int) -> str:
    """The ``url.predict`` of a deployed version under Serve's base URL."""
    return f"{serve_url}{route_prefix(model, version)}/predict"


def deploy(
    model: str,
    version: int,
    model_uri: str,
    *,
    serve_url: str,
    tracking_uri: str | None = None,
    outputs: dict[str, str] | None = None,
    options: DeployOptions | None = None,
) -> str:
    """Serve ``model_uri`` as version ``version`` of ``model``; return its predict URL.

    Waits until the replicas are healthy (the weights are loaded). Deploying a version that
    runs already replaces it in place.
    """
    from ray import serve

    from builtin_models.serving import build_app

    opts = options or DeployOptions()
    name = app_name(model, version)
    app = build_app(
        model_uri,
        name,
        tracking_uri=tracking_uri,
        num_cpus=opts.num_cpus,
        num_replicas=opts.num_replicas,
        resources=opts.resources,
        max_batch_size=opts.max_batch_size,
        batch_wait_timeout_s=opts.batch_wait_timeout_s,
        num_threads=opts.num_threads,
        outputs=outputs,
    )
    try:
        serve.run(app, name=name, route_prefix=route_prefix(model, version))
    except Exception as exc:  # Serve raises RuntimeError / RayTaskError for a bad replica
        raise GatewayError(
            f"Could not deploy model '{model}' version {version} on Ray Serve: "
            f"{type(exc).__name__}: {exc}",
            code="DEPLOYMENT_FAILED",
        ) from exc
    return predict_url(serve_url, model, version)


def is_running(model: str, version: int) -> bool:
    """Whether the version's application is deployed and RUNNING."""
    from ray import serve

    app = serve.status().applications.get(app_name(model, version))
    return app is not None and str(app.status).endswith("RUNNING")


def remove(model: str, version: int) -> None:
    """Delete the version's application (no error when it does not exist)."""
    from ray import serve

    if app_name(model, version) in serve.status().applications:
        serve.delete(app_name(model, version))
