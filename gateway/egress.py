"""Where a registered model's URLs may point: the gateway calls them on behalf of whoever
registered them, so an unchecked URL lets a client reach what only the gateway can (SSRF).

Checked when a model is registered (SQL and HTTP both go through ``planner.plan_register``):

* ``http`` or ``https`` only, with a host, and no ``user:password@`` in the URL (a secret
  there would be stored and shown with the model);
* link-local addresses (169.254.0.0/16, fe80::/10) and the cloud metadata endpoints
  (fd00:ec2::254, ``metadata.google.internal``) are refused unless ``BYOM_ALLOWED_HOSTS``
  lists them explicitly;
* when ``BYOM_ALLOWED_HOSTS`` is set (comma-separated host names, ``*`` wildcards such as
  ``*.models.internal``, IP addresses, CIDRs such as ``10.0.0.0/8``), the host must match
  one of its entries.

Host names are compared as written here. The addresses a name resolves to are checked again
each time the gateway connects (``adapters.guard``, against DNS rebinding), with the same
rules (``adapters.addresses``). URLs are shown through ``redact_url`` (``adapters.urls``).
"""

from __future__ import annotations

import os
import re
import socket
from urllib.parse import urlsplit

from adapters.addresses import (
    ALLOWED_HOSTS_ENV,
    explicitly_listed,
    matches,
    parse_address,
    rules,
    sensitive,
)
from adapters.urls import redact_url
from byom.errors import InvalidOption

__all__ = ["ALLOWED_HOSTS_ENV", "check_url"]


def check_url(option: str, url: str, allowed: str | None = None) -> None:
    """Raise InvalidOption naming the rule when ``url`` (the value of USING ``option``) may
    not be registered. ``allowed``: the ``BYOM_ALLOWED_HOSTS`` value (read from the
    environment when None)."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        _refuse(option, url, "holds spaces or control characters (percent-encode them)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        _refuse(option, url, "must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        _refuse(option, url, "must not hold credentials (user:password@): they would be "
                "stored and shown with the model")  # fmt: skip
    host = (parts.hostname or "").lower()
    if not host:
        _refuse(option, url, "has no host")
    entries = rules(os.environ.get(ALLOWED_HOSTS_ENV) if allowed is None else allowed)
    address = parse_address(host)
    if address is None and _legacy_ipv4(host):
        # 2130706433, 0x7f000001, 127.1: resolvers read them as addresses, so a rule
        # written for 127.0.0.1 (or 169.254.169.254) would not see them for what they are.
        _refuse(option, url, f"writes the IPv4 address '{host}' in a non-standard form; "
                "write it as four decimal numbers (a.b.c.d)")  # fmt: skip
    if sensitive(host, address) and not explicitly_listed(host, address, entries):
        _refuse(option, url, f"points at a link-local or cloud metadata address; list "
                f"'{host}' in {ALLOWED_HOSTS_ENV} if it is really meant")  # fmt: skip
    if entries and not any(matches(rule, host, address) for rule in entries):
        _refuse(option, url, f"has host '{host}', which {ALLOWED_HOSTS_ENV} does not list "
                f"({', '.join(entries)})")  # fmt: skip


def _refuse(option: str, url: str, why: str) -> None:
    # The URL is shown redacted: a refused URL may still carry a token in its query.
    raise InvalidOption(
        f"{option} {redact_url(url)!r} {why}.", option=option, value=redact_url(url)
    )


_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


def _legacy_ipv4(host: str) -> bool:
    """Whether ``host`` is an IPv4 address in one of inet_aton's other spellings."""
    if not _NUMERIC_HOST.match(host):
        return False
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True
