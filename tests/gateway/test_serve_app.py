"""The gateway's Ray Serve application without a cluster: its options, the deploy/ files,
``byom serve --ray``'s checks and ``byom status``'s text. tests/e2e/test_ray_cluster.py runs
it for real on a two-node Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from byom.errors import InvalidOption
from catalog.migrations import SCHEMA_VERSION
from gateway import serve_app
from gateway.cli import main
from gateway.status import render

ROOT = Path(__file__).resolve().parents[2]


def test_build_deploys_the_replicas_with_their_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BYOM_BATCH_SIZE", "77")
    monkeypatch.setenv("UNRELATED", "x")
    app = serve_app.build(
        {"replicas": 3, "catalog_url": "postgresql://h/db", "replica_cpus": 0.5,
         "env": {"BYOM_TRAIN_RESOURCES": '{"trainer": 1}'}}
    )  # fmt: skip
    # Not public API: the deployment an Application binds (what serve.run deploys).
    deployment = app._bound_deployment
    assert deployment.num_replicas == 3
    assert deployment.max_ongoing_requests == serve_app.MAX_ONGOING_REQUESTS
    assert deployment.ray_actor_options["num_cpus"] == 0.5
    env = deployment.ray_actor_options["runtime_env"]["env_vars"]
    assert env["BYOM_BATCH_SIZE"] == "77"  # the deploying shell's knobs reach the replicas
    assert env["BYOM_TRAIN_RESOURCES"] == '{"trainer": 1}'
    assert "UNRELATED" not in env


def test_autoscaling_replaces_the_replica_count() -> None:
    app = serve_app.build({"autoscaling": {"min_replicas": 1, "max_replicas": 4}})
    config = app._bound_deployment._deployment_config.autoscaling_config
    assert (config.min_replicas, config.max_replicas) == (1, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"replicas": 0}, "replicas must be a positive number"),
        ({"replicas": "two"}, "replicas must be a positive number"),
        ({"replica_cpus": -1}, "replica_cpus must be a positive number"),
        ({"autoscaling": 4}, "autoscaling must be a mapping"),
        ({"replica": 2}, "Unknown gateway application arg(s): replica"),
    ],
)
def test_bad_application_args_are_refused(args: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        serve_app.build(args)
    assert message in caught.value.message


def test_the_kuberay_manifest_embeds_the_serve_config() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "serve_config.yaml").read_text())
    manifest = yaml.safe_load((ROOT / "deploy" / "rayservice.yaml").read_text())
    assert manifest["kind"] == "RayService"
    assert yaml.safe_load(manifest["spec"]["serveConfigV2"]) == config
    app = config["applications"][0]
    assert app["import_path"] == "gateway.serve_app:build"
    serve_app.AppOptions.from_args(app["args"])  # the args the builder accepts
    # the resource the training tasks ask for is one a worker group declares
    groups = manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    declared = [yaml.safe_load(g["rayStartParams"]["resources"]) for g in groups]
    assert any('"trainer"' in d for d in declared), declared
    assert app["args"]["env"]["BYOM_TRAIN_RESOURCES"] == '{"trainer": 1}'


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--replicas", "0"], "replicas must be a positive number"),
        (["--autoscaling", "{max"], "--autoscaling is not JSON"),
        (["--batch-size", "zero"], "--batch-size must be an integer"),
    ],
)
def test_serve_ray_checks_its_flags_before_deploying(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--ray", *flags]) == 2
    assert message in capsys.readouterr().err


def test_status_renders_nodes_apps_and_jobs() -> None:
    text = render(
        {
            "gateway": {"status": "ok", "replica": "h:1:ab", "uptime_s": 3.0,
                        "catalog_schema_version": 5},
            "cluster": {
                "nodes": [
                    {"node_id": "n1" * 8, "address": "10.0.0.1", "alive": True,
                     "resources": {"CPU": 2.0, "memory": 1e9}},
                    {"node_id": "n2" * 8, "address": "10.0.0.2", "alive": False,
                     "resources": {"CPU": 4.0, "trainer": 1.0}},
                ],
                "applications": {"byom-gateway": {"status": "RUNNING",
                                                  "deployments": {"Gateway": {"RUNNING": 2}}}},
            },
            "jobs": [{"id": 7, "model": "m", "version": 2, "started_at": "2026-12-02T00:00:00",
                      "owner": "h:1:ab", "heartbeat_at": None}],
        }
    )  # fmt: skip
    assert "replica h:1:ab" in text
    assert "1 of 2 Ray node(s) alive" in text
    assert "trainer=1" in text and "memory" not in text
    assert "deployment Gateway: 2 running" in text
    assert "#7 m v2 since 2026-12-02T00:00:00 owner h:1:ab" in text


def test_embedded_status_reads_the_homes_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--home", str(tmp_path), "--json"]) == 0
    body = yaml.safe_load(capsys.readouterr().out)  # JSON is YAML
    assert body["jobs"] == []  # (cluster: whatever Ray this test process is connected to)
    assert "cluster" in body
    assert body["gateway"]["catalog_schema_version"] == SCHEMA_VERSION
