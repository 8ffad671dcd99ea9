"""``byom token create|list|revoke``: API tokens, on the embedded catalog or a running gateway.

Without ``--url`` the command opens the catalog itself (``--home``/``$BYOM_HOME``, or
``--catalog-url`` for a shared one): whoever can open the catalog is its admin, so no token
is needed, and this is how the first token is made. With ``--url`` it asks a running gateway,
with an admin token (``--token`` or ``$BYOM_TOKEN``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from byom.errors import GatewayError

ROLE_CHOICES = ("reader", "writer", "admin")


def add_token_parser(commands: Any) -> None:
    """The ``token`` command and its three subcommands."""
    token = commands.add_parser(
        "token",
        help="create, list and revoke API tokens (the first one turns authentication on)",
        description="API tokens for the HTTP API. The first token created turns "
        "authentication on for every gateway on this catalog (running ones within a "
        "second). Roles: reader (SELECT, predictions, SHOW, DESCRIBE), writer (also "
        "create, retrain and drop models), admin (also datasources and tokens).",
    )
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token; it is printed once")
    create.add_argument("name")
    create.add_argument("--role", choices=ROLE_CHOICES, default="reader", help="default reader")
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = actions.add_parser("revoke", help="revoke a token (it stops working at once)")
    revoke.add_argument("name")
    for sub in (create, listing, revoke):
        sub.add_argument(
            "--url",
            default=os.environ.get("BYOM_URL"),
            help="a running gateway (default $BYOM_URL; needs an admin token); "
            "without it: the embedded catalog",
        )
        sub.add_argument("--token", help="admin token for --url (default $BYOM_TOKEN)")
        sub.add_argument("--home", type=Path, help="data directory of the embedded catalog")
        sub.add_argument("--catalog-url", help="SQLAlchemy URL of a shared catalog")


def token_command(args: argparse.Namespace) -> int:
    """Run ``byom token ...``; 0 on success, 1 when the gateway refused."""
    try:
        if args.url:
            answer = _remote(args)
        else:
            answer = asyncio.run(_embedded(args))
    except GatewayError as exc:
        print(f"ERROR [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2 if exc.code == "GATEWAY_UNREACHABLE" else 1
    _print(args, answer)
    return 0


def _remote(args: argparse.Namespace) -> Any:
    from gateway.client import Client

    with Client(args.url, token=args.token) as client:
        if args.token_command == "create":
            return client.create_token(args.name, args.role)
        if args.token_command == "list":
            return client.list_tokens()
        return client.revoke_token(args.name)


async def _embedded(args: argparse.Namespace) -> Any:
    from gateway.api_bodies import token_dict
    from gateway.core import Gateway

    async with await Gateway.start(args.home, args.catalog_url, serving=False) as gateway:
        if args.token_command == "create":
            record, secret = gateway.create_token(args.name, args.role)
            return {"name": record.name, "role": record.role, "token": secret}
        if args.token_command == "list":
            return [token_dict(t) for t in gateway.list_tokens()]
        return token_dict(gateway.revoke_token(args.name))


def _print(args: argparse.Namespace, answer: Any) -> None:
    if args.token_command == "create":
        print(answer["token"])
        print(
            f"token '{answer['name']}' (role {answer['role']}) created; it is shown only "
            "now. Send it as 'Authorization: Bearer <token>', or set BYOM_TOKEN.",
            file=sys.stderr,
        )
    elif args.token_command == "list":
        if args.json:
            print(json.dumps(answer, indent=2))
            return
        print(f"{'NAME':<24} {'ROLE':<7} {'PREFIX':<10} {'STATE':<8} LAST USED")
        for t in answer:
            state = "active" if t["active"] else "revoked"
            print(
                f"{t['name']:<24} {t['role']:<7} {t['prefix']:<10} {state:<8} "
                f"{t['last_used_at'] or '-'}"
            )
    else:
        print(f"token '{answer['name']}' revoked", file=sys.stderr)
