"""The HTTP side of ``gateway.auth``: the bearer token of each request becomes its principal.

``AuthMiddleware`` answers 401 (with ``WWW-Authenticate: Bearer``) when authentication is on
and the request has no active token, writing the failure to the audit log; otherwise it
puts the principal where the rest of the request sees it: ``gateway.auth.current`` (which the
planner's ``authorize`` reads) and ``request.state.byom_token`` (the token's name, which the
request limits key on). ``/healthz``, the API docs and the web console's static files (``/``,
``/console/...``) stay open: load balancers and browsers load them without a token (the
console's data calls carry one).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from byom.errors import GatewayError, Unauthorized
from gateway import auth
from gateway.error_responses import error_response

log = logging.getLogger("byom.auth")

OPEN_PATHS = frozenset(
    {"/", "/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
# Prefixes of open paths: the console's assets (gateway.console serves only its own files).
OPEN_PREFIXES = ("/console/",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a ``--host`` value) is a loopback address or ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(gateway: Any, host: str, insecure: bool) -> None:
    """Refuse to serve on a non-loopback ``host`` without authentication unless
    ``insecure``; with it, warn loudly. ``gateway`` None: its catalog was not opened (the
    caller knows the answer is "insecure" or loopback)."""
    if is_loopback(host) or (gateway is not None and gateway.authenticator.enabled()):
        return
    if insecure:
        log.warning(
            "INSECURE: serving on %s with authentication OFF - anyone who reaches this port "
            "may read, create and drop models and datasources. Create a token with "
            "'byom token create NAME --role admin' to turn authentication on.",
            host,
        )
        return
    raise GatewayError(
        f"Refusing to serve on {host} without authentication: anyone reaching the port "
        "could drop every model and open any datasource. Create a token first "
        "('byom token create NAME --role admin'), serve on 127.0.0.1, or pass --insecure.",
        code="AUTH_REQUIRED",
    )


class AuthMiddleware:
    """Authenticates every HTTP request of a gateway that has tokens (see module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") or ""
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        gateway = getattr(scope["app"].state, "gateway", None)
        authenticator = getattr(gateway, "authenticator", None)
        client = scope.get("client")
        address = client[0] if client else None
        if authenticator is None:  # not started yet, or a test's fake gateway
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        header = headers.get(b"authorization", b"").decode("latin-1")
        try:
            principal = authenticator.authenticate(header or None)
        except Unauthorized as exc:
            gateway.audit.record(
                "AUTHENTICATE", scope.get("path"), "denied", code=exc.code, client=address
            )
            response = error_response(exc)
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        if principal is not None:
            scope.setdefault("state", {})["byom_token"] = principal.name
        principal_token = auth.current.set(principal)
        client_token = auth.client.set(address)
        try:
            await self.app(scope, receive, send)
        finally:
            auth.current.reset(principal_token)
            auth.client.reset(client_token)
