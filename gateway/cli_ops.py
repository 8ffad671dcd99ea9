"""The operations commands of ``byom``: ``serve --ray`` (the gateway as a Ray Serve
application) and ``status``.

Kept apart from gateway/cli.py so that ``byom sql`` never imports Ray: only these commands
load it, and only when asked to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from byom.errors import GatewayError
from gateway.settings import KNOBS, Settings


def add_ray_flags(serve: argparse.ArgumentParser) -> None:
    """``byom serve``'s flags for running on Ray Serve."""
    group = serve.add_argument_group("on a Ray cluster (--ray)")
    group.add_argument(
        "--ray",
        action="store_true",
        help="run the gateway as a Ray Serve application (replicas behind Serve's proxy; "
        "--host/--port: where the proxy answers)",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to join (default $RAY_ADDRESS; neither: start a local Ray)",
    )
    group.add_argument("--replicas", type=int, default=2, metavar="N",
                       help="gateway replicas (default 2)")  # fmt: skip
    group.add_argument(
        "--autoscaling",
        metavar="JSON",
        help="Serve autoscaling_config instead of --replicas, e.g. "
        '\'{"min_replicas": 1, "max_replicas": 4}\'',
    )
    group.add_argument(
        "--gateway-cpus",
        type=float,
        default=0.25,
        metavar="N",
        help="CPUs each gateway replica reserves (default 0.25)",
    )


def serve_ray(args: argparse.Namespace) -> int:
    """``byom serve --ray``: deploy, print the URL, block until stopped."""
    from gateway import serve_app

    try:
        settings = Settings.load(flags=args)  # check every knob before deploying anything
        autoscaling = json.loads(args.autoscaling) if args.autoscaling else None
        app = serve_app.AppOptions.from_args(
            {
                "replicas": args.replicas,
                "catalog_url": args.catalog_url,
                "home": str(args.home) if args.home else None,
                "replica_cpus": args.gateway_cpus,
                "autoscaling": autoscaling,
                "env": _flag_env(args),
            }
        )
    except json.JSONDecodeError as exc:
        print(f"ERROR [INVALID_OPTION]: --autoscaling is not JSON: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"ERROR [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    del settings  # the replicas read the same values from the environment handed to them
    try:  # the proxy on a non-loopback host: only with tokens in the catalog, or --insecure
        asyncio.run(_check_exposure(args))
    except GatewayError as exc:
        print(f"ERROR [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    options = serve_app.RunOptions(
        app=app, ray_address=args.ray_address, host=args.host, port=args.port
    )
    try:
        serve_app.run(options)
    except GatewayError as exc:
        print(f"ERROR [{exc.code}]: {exc.message}", file=sys.stderr)
        return 1
    return 0


async def _check_exposure(args: argparse.Namespace) -> None:
    from gateway.auth_middleware import check_exposure, is_loopback
    from gateway.core import Gateway

    if is_loopback(args.host) or args.insecure:
        check_exposure(None, args.host, args.insecure)  # the warning, when insecure
        return
    async with await Gateway.start(args.home, args.catalog_url, serving=False) as gateway:
        check_exposure(gateway, args.host, args.insecure)


def _flag_env(args: argparse.Namespace) -> dict[str, str]:
    """The knob flags given on the command line, as the variables the replicas read."""
    return {k.env: str(getattr(args, k.field)) for k in KNOBS
            if getattr(args, k.field, None) is not None}  # fmt: skip


def add_status_parser(commands: Any) -> None:
    """``byom status``."""
    status = commands.add_parser(
        "status",
        help="the gateway, its Ray cluster, Serve deployments and running training jobs",
    )
    status.add_argument(
        "--url",
        default=None,
        help="a running gateway (default $BYOM_URL); without it: the embedded home's catalog",
    )
    status.add_argument("--home", help="data directory of the embedded gateway")
    status.add_argument("--token", help="API token for --url (default $BYOM_TOKEN)")
    status.add_argument("--json", action="store_true", help="print the JSON document")


def status(args: argparse.Namespace) -> int:
    """``byom status``: ask a running gateway (``--url``), else read the embedded catalog."""
    import os

    from gateway.status import render

    url = args.url or os.environ.get("BYOM_URL")
    try:
        if url:
            from gateway.client import Client

            with Client(url, token=args.token) as client:
                body = client.status()
        else:
            body = _embedded_status(args.home)
    except GatewayError as exc:
        print(f"ERROR [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2 if exc.code == "GATEWAY_UNREACHABLE" else 1
    print(json.dumps(body, indent=2, default=str) if args.json else render(body))
    return 0


def _embedded_status(home: str | None) -> dict[str, Any]:
    """The embedded gateway's report: its catalog's running jobs; Ray when on it."""
    import asyncio
    from pathlib import Path

    from gateway.core import Gateway

    async def report() -> dict[str, Any]:
        async with await Gateway.start(Path(home) if home else None, serving=False) as gateway:
            return gateway.status_report()

    return asyncio.run(report())
