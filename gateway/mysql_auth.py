"""Logging in over the MySQL protocol with the gateway's API tokens.

Authentication mirrors the HTTP API's bearer tokens (``gateway.auth``). Only a SHA-256 of
each token is stored, and mysql_native_password would need SHA1(SHA1(token)) on this side;
caching_sha2_password's fast path could be checked against the stored hash, but then that
hash alone would log in (a leaked catalog would be a key). So with tokens the server asks
for ``mysql_clear_password``: user = the token's name, password = the token, sent as the
HTTP API sends it in its ``Authorization`` header (no TLS here either: keep it on loopback,
a private network or a tunnel). Without tokens any user and password are accepted, as HTTP
is open then.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

from mysql_mimic.auth import (
    AbstractClearPasswordAuthPlugin,
    AuthPlugin,
    IdentityProvider,
    NativePasswordAuthPlugin,
    User,
)

from byom.errors import Unauthorized
from gateway import auth

# The token a connection logged in with, set by ``TokenPassword`` while it authenticates in
# the connection's task and read by ``gateway.mysql_server.GatewaySession.init`` in that
# same task: mysql-mimic hands the session only the user name, and statements must re-check
# the token (revoked tokens stop working on open connections too, as over HTTP).
login: ContextVar[str | None] = ContextVar("byom_mysql_login", default=None)


class TokenPassword(AbstractClearPasswordAuthPlugin):
    """``mysql_clear_password`` checked against the gateway's tokens (see the module doc)."""

    name = "mysql_clear_password"

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    async def check(self, username: str, password: str) -> str | None:
        try:
            principal = await asyncio.to_thread(
                self.gateway.authenticator.authenticate, f"Bearer {password}"
            )
        except Unauthorized as exc:
            self._denied(exc.code)
            return None
        if principal is None:  # authentication was turned off meanwhile: open, as HTTP
            return username
        if principal.name.lower() != username.strip().lower():
            self._denied("UNAUTHORIZED")  # the token of another name
            return None
        login.set(password)
        return principal.name

    def _denied(self, code: str) -> None:
        self.gateway.audit.record("AUTHENTICATE", "mysql", "denied", code=code,
                                  client=auth.client.get())  # fmt: skip


class OpenPassword(NativePasswordAuthPlugin):
    """Any password, while the gateway has no tokens (and only then)."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def password_matches(self, user: User, scramble: bytes, nonce: bytes) -> bool:
        return not self.gateway.authenticator.enabled()


class TokenIdentities(IdentityProvider):
    """Every user name exists; with tokens its password is checked by ``TokenPassword``."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self._plugins: list[AuthPlugin] = [OpenPassword(gateway), TokenPassword(gateway)]

    def get_plugins(self) -> list[AuthPlugin]:
        return self._plugins

    async def get_user(self, username: str) -> User:
        enabled = await asyncio.to_thread(self.gateway.authenticator.enabled)
        plugin = TokenPassword.name if enabled else OpenPassword.name
        return User(name=username, auth_plugin=plugin)
