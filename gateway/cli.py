"""The ``byom`` command: ``serve``, ``sql`` and ``demo``.

``byom sql`` talks to a running gateway when given ``--url`` (or ``$BYOM_URL``) and otherwise
runs the statement on an embedded gateway over the home directory (``--home`` or
``$BYOM_HOME``). Exit codes: 0 success, 1 the gateway refused the statement, 2 usage errors
and an unreachable ``--url``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from importlib import metadata
from pathlib import Path

from gateway.errors import GatewayError
from gateway.formatting import dumps_json, format_table
from gateway.result import Result

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 47334


def _version() -> str:
    try:
        return metadata.version("byom-gateway")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``byom`` (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="byom", description="Bring-your-own-model ML gateway: train and predict with SQL."
    )
    parser.add_argument("--version", action="version", version=f"byom {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="start the gateway's HTTP API")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    serve.add_argument("--home", type=Path, help="data directory (default $BYOM_HOME or ~/.byom)")
    serve.add_argument("--catalog-url", help="SQLAlchemy URL of a shared catalog database")

    sql = commands.add_parser("sql", help="run SQL against a running gateway or embedded")
    sql.add_argument("statement", help="the SQL text, or - to read it from stdin")
    sql.add_argument(
        "--url",
        default=os.environ.get("BYOM_URL"),
        help="a running gateway, e.g. http://127.0.0.1:47334 (default $BYOM_URL); "
        "without it the statement runs embedded",
    )
    sql.add_argument("--home", type=Path, help="data directory of the embedded gateway")
    sql.add_argument("--json", action="store_true", help="print the result as JSON")

    demo = commands.add_parser("demo", help="run the end-to-end scenario on the embedded default")
    demo.add_argument("--home", type=Path, help="data directory (default $BYOM_HOME or ~/.byom)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.server import create_app

    # uvicorn configures only its own loggers; the gateway's (tracebacks of 500s, training
    # job errors) need a handler too.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per model call
    app = create_app(home=args.home, catalog_url=args.catalog_url)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


async def _sql_embedded(statement: str, home: Path | None) -> Result:
    # Imported here so `byom --version` and remote `byom sql` stay quick.
    from gateway.core import Gateway

    gateway = await Gateway.start(home)
    try:
        result = await gateway.sql(statement)
        # No server outlives this process, so training started here must finish here; the
        # printed row is then the final one (complete or error), not a stale 'generating'.
        trained = await gateway.wait_idle()
        created = result.rows[0][0] if result.columns[:1] == ["name"] and result.rows else None
        if created in trained:
            result = await gateway.describe_predictor(created)
        return result
    finally:
        await gateway.close()


def _sql(args: argparse.Namespace) -> int:
    statement = sys.stdin.read() if args.statement == "-" else args.statement
    try:
        if args.url:
            from gateway.client import Client

            with Client(args.url) as client:
                result = client.sql(statement)
        else:
            result = asyncio.run(_sql_embedded(statement, args.home))
    except GatewayError as exc:
        print(f"ERROR [{exc.code}]: {exc.message}", file=sys.stderr)
        # An unreachable --url is a setup problem, not an answer to the statement.
        return 2 if exc.code == "GATEWAY_UNREACHABLE" else 1
    if args.json:
        print(dumps_json(result.to_dict()).decode())
    else:
        print(format_table(result))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import main as demo_main

    return int(demo_main(args.home) or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``byom`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "sql" and args.url and args.home is not None:
            parser.error("--home applies to the embedded gateway only; drop --url or --home")
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 2
    handlers = {"serve": _serve, "sql": _sql, "demo": _demo}
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
