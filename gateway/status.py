"""``byom status`` and ``GET /api/status``: the gateway, the Ray cluster, Serve, the jobs.

One JSON-ready dict, built from what this replica can see: its own health, the running
training jobs of the shared catalog (any replica's), and - when this process is connected
to Ray (a gateway deployed on Ray always is; a plain ``byom serve`` once a built-in model
was used) - the cluster's nodes and Serve's applications with their replica states. Ray is
never imported here unless something else already loaded it.
"""

from __future__ import annotations

import sys
from typing import Any

from catalog.records import TrainingJobRecord

_BYTES = ("memory", "object_store_memory")  # sizes in bytes: noise in a one-line summary


def running_jobs(jobs: list[TrainingJobRecord]) -> list[dict[str, Any]]:
    """The running ones of the catalog's training ``jobs`` (of every replica), JSON-ready."""
    return [_job(j) for j in jobs if j.status == "running"]


def _job(job: TrainingJobRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": job.id,
        "model": job.predictor,
        "started_at": job.started_at.isoformat(),
        "owner": job.owner,
        "heartbeat_at": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
    }
    if job.extra.get("version") is not None:
        body["version"] = job.extra["version"]
    return body


def cluster_status() -> dict[str, Any] | None:
    """Ray's nodes and Serve's applications, or None when this process is not on Ray."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    nodes = [
        {
            "node_id": n["NodeID"],
            "address": n.get("NodeManagerAddress"),
            "alive": bool(n.get("Alive")),
            "resources": {k: v for k, v in n.get("Resources", {}).items()
                          if not k.startswith("node:")},
        }
        for n in ray.nodes()
    ]  # fmt: skip
    return {"nodes": nodes, "applications": _serve_applications()}


def _serve_applications() -> dict[str, Any]:
    from ray import serve

    try:
        status = serve.status()
    except Exception as exc:  # noqa: BLE001 - Serve not started is not an error of status
        return {"error": str(exc)}
    return {
        name: {
            "status": str(app.status.value if hasattr(app.status, "value") else app.status),
            "deployments": {
                dname: {str(k.value if hasattr(k, "value") else k): v
                        for k, v in d.replica_states.items()}
                for dname, d in app.deployments.items()
            },
        }
        for name, app in status.applications.items()
    }  # fmt: skip


def render(status: dict[str, Any]) -> str:
    """``byom status`` as text: the gateway, the cluster, Serve and the running jobs."""
    gw = status.get("gateway", {})
    lines = [f"gateway   {gw.get('status', '?')}  replica {gw.get('replica', '-')}  "
             f"uptime {gw.get('uptime_s', '?')} s  catalog schema v"
             f"{gw.get('catalog_schema_version', '?')}"]  # fmt: skip
    cluster = status.get("cluster")
    if cluster is None:
        lines.append("cluster   not on Ray (plain byom serve, no built-in model used yet)")
    else:
        alive = [n for n in cluster["nodes"] if n["alive"]]
        lines.append(f"cluster   {len(alive)} of {len(cluster['nodes'])} Ray node(s) alive")
        for node in cluster["nodes"]:
            state = "alive" if node["alive"] else "dead"
            resources = ", ".join(f"{k}={v:g}" for k, v in sorted(node["resources"].items())
                                  if k not in _BYTES)  # fmt: skip
            lines.append(f"  node {node['node_id'][:12]} {node['address']} {state}  {resources}")
        apps = cluster.get("applications", {})
        if "error" in apps:
            lines.append(f"serve     {apps['error']}")
        for name, app in sorted(apps.items()):
            if name == "error":
                continue
            lines.append(f"app       {name}  {app['status']}")
            for dname, states in sorted(app["deployments"].items()):
                counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(states.items()))
                lines.append(f"  deployment {dname}: {counts or 'no replicas'}")
    jobs = status.get("jobs", [])
    lines.append(f"jobs      {len(jobs)} running")
    for job in jobs:
        version = f" v{job['version']}" if "version" in job else ""
        owner = f" owner {job['owner']}" if job.get("owner") else ""
        lines.append(f"  #{job['id']} {job['model']}{version} since {job['started_at']}{owner}")
    return "\n".join(lines)
