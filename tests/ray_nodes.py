"""A real multi-node Ray cluster on this machine, made with Ray's own ``ray start``.

The head and each extra node are separate raylets with their own resources, as on a real
cluster, all under one private temp dir so the cluster can be told apart from any other
Ray on the machine (``ray stop`` would stop them all): stopping kills exactly the processes
whose command line names that dir, and a node is killed (SIGKILL) by the pids it added.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.processes import free_port


def _ray() -> str:
    return str(Path(sys.executable).parent / "ray")


def _pids_under(temp_dir: str) -> set[int]:
    """Pids of the processes whose command line names ``temp_dir``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if temp_dir.encode() in cmdline:
            found.add(int(entry.name))
    return found


def _with_descendants(pids: set[int]) -> set[int]:
    """``pids`` and every process below them (Ray's workers rename themselves ``ray::X``,
    so only their parent ties them to the cluster)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = set(pids)
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


def _kill(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class RayNodes:
    """A ``ray start`` cluster: ``address`` (host:port of its GCS) and its nodes' pids."""

    address: str
    temp_dir: str
    env: dict[str, str]
    nodes: dict[str, set[int]] = field(default_factory=dict)

    @classmethod
    def start_head(cls, num_cpus: float = 2, resources: dict[str, float] | None = None) -> RayNodes:
        # Unix socket paths live under the temp dir: keep it short.
        temp_dir = tempfile.mkdtemp(prefix="rn", dir="/tmp")
        port = free_port()
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)
        cluster = cls(address=f"127.0.0.1:{port}", temp_dir=temp_dir, env=env)
        cluster._start("head", ["--head", f"--port={port}", f"--temp-dir={temp_dir}",
                                "--include-dashboard=false"], num_cpus, resources)  # fmt: skip
        return cluster

    def add_node(self, name: str, num_cpus: float, resources: dict[str, float]) -> None:
        """Start another node (its own raylet) that joins the cluster."""
        self._start(name, [f"--address={self.address}"], num_cpus, resources)

    def _start(
        self, name: str, args: list[str], num_cpus: float, resources: dict[str, float] | None
    ) -> None:
        before = _pids_under(self.temp_dir)
        command = [_ray(), "start", *args, f"--num-cpus={num_cpus}", "--disable-usage-stats"]
        if resources:
            command.append(f"--resources={json.dumps(resources)}")
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"ray start ({name}) failed:\n{done.stdout}\n{done.stderr}")
        time.sleep(1.0)  # the node's helper processes start right after `ray start` returns
        self.nodes[name] = _pids_under(self.temp_dir) - before - set().union(*self.nodes.values())

    def kill_node(self, name: str) -> None:
        """SIGKILL a node's raylet, its helpers and its workers."""
        _kill(_with_descendants(self.nodes.pop(name)))

    def stop(self) -> None:
        """Kill every process of this cluster and remove its temp dir."""
        for _ in range(3):
            pids = _pids_under(self.temp_dir)
            if not pids:
                break
            _kill(_with_descendants(pids))
            time.sleep(0.5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
