"""The ``byom`` command: ``serve``, ``sql``, ``status`` and ``demo``.

``byom sql`` talks to a running gateway when given ``--url`` (or ``$BYOM_URL``) and otherwise
runs the statement on an embedded gateway over the home directory (``--home`` or
``$BYOM_HOME``). ``byom sql -f FILE`` (or SQL text of several statements) runs a script,
printing each statement's result in order (``gateway.cli_script``). Exit codes: 0 success,
1 the gateway refused the statement, 2 usage errors and an unreachable ``--url``.

Rows are printed as they arrive (``--format csv`` and ``json`` keep memory flat for any row
count; a table shows the first ``--max-rows``). While a long statement runs, a progress bar
on stderr shows the rows done, polled from the gateway's progress of that statement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from byom.errors import GatewayError
from gateway.cli_ops import add_ray_flags, add_status_parser, serve_ray, status
from gateway.cli_progress import (
    ProgressBar,
    embedded_progress,
    follow_remote_training,
    follow_training,
    stream_remote,
    write_batches,
)
from gateway.cli_tokens import add_token_parser, token_command
from gateway.formatting import (
    CsvWriter,
    JsonWriter,
    ResultWriter,
    TableWriter,
)
from gateway.result import Result, StreamResult
from gateway.settings import Settings, add_flags

if TYPE_CHECKING:
    pass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 47334
DEFAULT_MAX_ROWS = 1000
# How often the progress bar asks for the statement's progress (a module constant so tests
# can make it quick).


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
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per HTTP request (off by default: it costs ~0.1 ms a request)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="serve on a non-loopback --host with no API token (anyone reaching the port "
        "may drop models and datasources); without it such a gateway refuses to start",
    )
    serve.add_argument(
        "--mysql-port",
        metavar="PORT",
        help="also serve the MySQL protocol on --host:PORT, over the same gateway (off by "
        "default; $BYOM_MYSQL_PORT; not with --ray): mysql -h HOST -P PORT -u <token name> -p",
    )
    add_flags(serve)
    add_ray_flags(serve)

    sql = commands.add_parser(
        "sql",
        help="run SQL against a running gateway or embedded",
        description="Run SQL: one statement, or a script of several (-f FILE, or a text "
        "with several ';'-separated statements), printing each statement's result in order. "
        "A script is parsed whole before anything runs, and each statement waits for the "
        "training the statement before it started (CREATE PREDICTOR with url.train), so the "
        "next one can predict with the model.",
    )
    sql.add_argument(
        "statement", nargs="?", help="the SQL text, or - to read it from stdin (or use -f)"
    )
    sql.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="run the script in FILE (- for stdin): each statement's result is printed in "
        "order (table: after a '-- [k] <statement>' line; csv: one block per statement, "
        "the '-- [k]' lines on stderr; json: {\"results\": [...]}); training started by a "
        "statement is waited for before the next statement runs",
    )
    sql.add_argument(
        "--url",
        default=os.environ.get("BYOM_URL"),
        help="a running gateway, e.g. http://127.0.0.1:47334 (default $BYOM_URL); "
        "without it the statement runs embedded",
    )
    sql.add_argument("--home", type=Path, help="data directory of the embedded gateway")
    sql.add_argument(
        "--token", help="API token for --url (default $BYOM_TOKEN; see 'byom token create')"
    )
    sql.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        help="table (default), json, or csv (streams any number of rows)",
    )
    sql.add_argument("--json", action="store_true", help="the same as --format json")
    sql.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        metavar="N",
        help=f"a table shows the first N rows and counts the rest (default {DEFAULT_MAX_ROWS}; "
        "0 shows all)",
    )
    sql.add_argument(
        "--wait",
        action="store_true",
        help="with --url: after CREATE MODEL/RETRAIN of a built-in model, follow its training "
        "(a bar on stderr) and print the final DESCRIBE (the embedded gateway always waits)",
    )
    sql.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw a progress bar on stderr for long statements (default: when stderr is "
        "a terminal)",
    )

    add_status_parser(commands)
    add_token_parser(commands)

    demo = commands.add_parser("demo", help="run the end-to-end scenario on the embedded default")
    demo.add_argument("--home", type=Path, help="data directory (default $BYOM_HOME or ~/.byom)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    if args.ray:
        if args.mysql_port is not None:
            print("ERROR: --mysql-port is not available with --ray", file=sys.stderr)
            return 2
        return serve_ray(args)
    import uvicorn

    from gateway.server import create_app

    # uvicorn configures only its own loggers; the gateway's (tracebacks of 500s, training
    # job errors) need a handler too.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per model call
    try:  # read and check every knob before the server starts, not at the first JOIN
        settings = Settings.load(flags=args)
    except GatewayError as exc:
        print(f"ERROR [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    app = create_app(
        home=args.home,
        catalog_url=args.catalog_url,
        settings=settings,
        host=args.host,
        insecure=args.insecure,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=args.access_log)
    return 0


def _write_result(result: Result, writer: ResultWriter) -> None:
    writer.start(result.columns, result.message)
    writer.write(result.rows)
    writer.finish()


async def _sql_embedded(
    statement: str, home: Path | None, writer: ResultWriter, bar: ProgressBar | None
) -> None:
    # Imported here so `byom --version` and remote `byom sql` stay quick.
    from gateway.core import Gateway
    from gateway.session import Session

    gateway = await Gateway.start(home)
    try:
        query_id = uuid.uuid4().hex
        async with embedded_progress(gateway, query_id, bar):
            # The process is the session: USE holds for the statements of this run.
            result = await gateway.sql_stream(statement, query_id=query_id, session=Session())
            if isinstance(result, StreamResult):
                await write_batches(result, writer)
        if isinstance(result, StreamResult):
            writer.finish()
            return
        # No server outlives this process, so training started here must finish here; the
        # printed row is then the final one (complete or error), not a stale 'generating'.
        training = gateway.training_in_flight()
        await follow_training(gateway, training, bar)
        trained = training + await gateway.wait_idle()
        created = result.rows[0][0] if result.columns[:1] == ["name"] and result.rows else None
        if created in trained:
            result = await gateway.describe_predictor(created)
        _write_result(result, writer)
    finally:
        await gateway.close()


def _sql_remote(
    statement: str,
    url: str,
    token: str | None,
    writer: ResultWriter,
    bar: ProgressBar | None,
    wait: bool = False,
) -> None:
    from gateway.client import Client

    with Client(url, token=token) as client:
        stream_remote(client, statement, writer, bar)
        trained = _trained_model(statement) if wait else None
        if trained is not None:
            final = follow_remote_training(client, trained, bar)
            _write_result(final, writer)


def _trained_model(statement: str) -> str | None:
    """The model a CREATE MODEL / RETRAIN / pgml.tune statement trains (None for others)."""
    from gateway import statements as st
    from gateway.parser import parse_one
    from gateway.postgresml import tuned_model

    parsed = parse_one(statement)
    if isinstance(parsed, st.CreatePredictor | st.Retrain):
        return parsed.name
    return tuned_model(parsed)  # PostgresML's SELECT pgml.tune(...)


def _output_format(args: argparse.Namespace) -> str:
    return args.format or ("json" if args.json else "table")


def _writer(args: argparse.Namespace, out: TextIO) -> ResultWriter:
    fmt = _output_format(args)
    if fmt == "json":
        return JsonWriter(out)
    if fmt == "csv":
        return CsvWriter(out)
    return TableWriter(out, max_rows=args.max_rows or None)


def _progress_bar(args: argparse.Namespace) -> ProgressBar | None:
    enabled = args.progress
    if enabled is None:
        # By default only for a person watching: stderr is a terminal, and rows streamed
        # to that same terminal (csv/json) would tear the bar apart.
        streamed_to_tty = _output_format(args) != "table" and sys.stdout.isatty()
        enabled = sys.stderr.isatty() and not streamed_to_tty
    return ProgressBar(sys.stderr) if enabled else None


def _sql(args: argparse.Namespace) -> int:
    if args.file is not None:
        from gateway.cli_script import read_script

        try:
            text = read_script(args.file)
        except OSError as exc:
            print(f"ERROR: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        return _sql_script(args, text)
    statement = sys.stdin.read() if args.statement == "-" else args.statement
    if ";" in statement.rstrip(" \t\r\n;"):  # else one statement: no parser to import
        from gateway.parser import statement_count

        if statement_count(statement) > 1:
            return _sql_script(args, statement)
    writer = _writer(args, sys.stdout)
    bar = _progress_bar(args)
    try:
        if args.url:
            _sql_remote(statement, args.url, args.token, writer, bar, wait=args.wait)
        else:
            asyncio.run(_sql_embedded(statement, args.home, writer, bar))
    except GatewayError as exc:
        if isinstance(writer, CsvWriter | JsonWriter) and writer.rows:
            sys.stdout.flush()
            print(f"(stopped after {writer.rows:,} rows)", file=sys.stderr)
        return _failed(exc)
    except BrokenPipeError:
        return _reader_left()
    if isinstance(writer, CsvWriter) and writer.message:
        print(writer.message, file=sys.stderr)  # keep stdout pure CSV
    return 0


def _sql_script(args: argparse.Namespace, text: str) -> int:
    """``byom sql`` on a script: see ``gateway.cli_script``."""
    from gateway.cli_script import ScriptOutput, run_embedded, run_remote
    from gateway.scripts import parse_for_run

    output = ScriptOutput(_output_format(args), sys.stdout, sys.stderr, args.max_rows or None)

    def bars() -> ProgressBar | None:
        return _progress_bar(args)

    try:
        script = parse_for_run(text)
        if args.url:
            run_remote(script, args.url, args.token, output, bars)
        else:
            asyncio.run(run_embedded(script, args.home, output, bars))
    except GatewayError as exc:
        return _failed(exc)
    except BrokenPipeError:
        return _reader_left()
    return 0


def _failed(exc: GatewayError) -> int:
    """Print a statement's error on stderr; the exit status of ``byom sql``."""
    sys.stdout.flush()
    print(f"ERROR [{exc.code}]: {exc.message}", file=sys.stderr)
    # An unreachable --url is a setup problem, not an answer to the statement.
    return 2 if exc.code == "GATEWAY_UNREACHABLE" else 1


def _reader_left() -> int:
    """The reader has all it wants (`byom sql ... --format csv | head`); leaving the stream
    already cancelled the statement. Point stdout at /dev/null so the interpreter's final
    flush does not fail again (Python docs, "Note on SIGPIPE")."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1


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
        if args.command == "sql" and args.json and args.format not in (None, "json"):
            parser.error(f"--json and --format {args.format} disagree; give one")
        if args.command == "sql" and args.max_rows < 0:
            parser.error("--max-rows must be 0 (all rows) or more")
        if args.command == "sql" and (args.statement is None) == (args.file is None):
            parser.error("give the SQL text or -f FILE (one of them)")
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 2
    handlers = {
        "serve": _serve,
        "sql": _sql,
        "demo": _demo,
        "status": status,
        "token": token_command,
    }
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
