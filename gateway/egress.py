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

Host names are compared as written: a name that resolves to a refused address is not caught
here (checking the address again at connection time, against DNS rebinding, is still to do).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from urllib.parse import urlsplit

from byom.errors import InvalidOption

__all__ = ["ALLOWED_HOSTS_ENV", "check_url"]

ALLOWED_HOSTS_ENV = "BYOM_ALLOWED_HOSTS"
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA_ADDRESSES = (ipaddress.ip_address("fd00:ec2::254"),)
_METADATA_NAMES = ("metadata.google.internal", "metadata")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_url(option: str, url: str, allowed: str | None = None) -> None:
    """Raise InvalidOption naming the rule when ``url`` (the value of USING ``option``) may
    not be registered. ``allowed``: the ``BYOM_ALLOWED_HOSTS`` value (read from the
    environment when None)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        _refuse(option, url, "must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        _refuse(option, url, "must not hold credentials (user:password@): they would be "
                "stored and shown with the model")  # fmt: skip
    host = (parts.hostname or "").lower()
    if not host:
        _refuse(option, url, "has no host")
    rules = _rules(os.environ.get(ALLOWED_HOSTS_ENV) if allowed is None else allowed)
    address = _address(host)
    if _sensitive(host, address) and not _explicitly_listed(host, address, rules):
        _refuse(option, url, f"points at a link-local or cloud metadata address; list "
                f"'{host}' in {ALLOWED_HOSTS_ENV} if it is really meant")  # fmt: skip
    if rules and not any(_matches(rule, host, address) for rule in rules):
        _refuse(option, url, f"has host '{host}', which {ALLOWED_HOSTS_ENV} does not list "
                f"({', '.join(rules)})")  # fmt: skip


def _refuse(option: str, url: str, why: str) -> None:
    raise InvalidOption(f"{option} {url!r} {why}.", option=option, value=url)


def _rules(text: str | None) -> list[str]:
    return [item.strip().lower() for item in (text or "").split(",") if item.strip()]


def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _sensitive(host: str, address: Address | None) -> bool:
    if address is None:
        return host in _METADATA_NAMES
    return address in _METADATA_ADDRESSES or any(address in net for net in _LINK_LOCAL)


def _explicitly_listed(host: str, address: Address | None, rules: list[str]) -> bool:
    """A rule naming this host or address itself (not a wildcard), or a CIDR inside the
    link-local range that holds it: ``*`` or ``0.0.0.0/0`` do not open the metadata
    endpoint by accident."""
    for rule in rules:
        if rule == host:
            return True
        if address is not None and "/" in rule:
            network = _network(rule)
            if network is not None and address in network and network.prefixlen >= 16:
                return True
    return False


def _network(rule: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(rule, strict=False)
    except ValueError:
        return None


def _matches(rule: str, host: str, address: Address | None) -> bool:
    if address is not None:
        network = _network(rule)
        if network is not None:
            return address in network
    return fnmatch.fnmatchcase(host, rule)
