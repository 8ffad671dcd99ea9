"""Which hosts and addresses the gateway may call: the rules of ``BYOM_ALLOWED_HOSTS``.

Shared by the registration check (``gateway.egress.check_url``, on the host as written) and
the connection-time check (``adapters.guard``, on the addresses a name resolves to, against
DNS rebinding); they live here because adapters may not import the gateway.

* link-local addresses (169.254.0.0/16, fe80::/10) and the cloud metadata endpoints
  (fd00:ec2::254, ``metadata.google.internal``) are *sensitive*: refused unless
  ``BYOM_ALLOWED_HOSTS`` lists them explicitly (the name or address itself, or a CIDR of
  /16 or narrower holding it - ``*`` or ``0.0.0.0/0`` do not open them by accident);
* ``BYOM_ALLOWED_HOSTS`` entries: host names, ``*`` wildcards, IP addresses, CIDRs.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from collections.abc import Iterable

__all__ = [
    "ALLOWED_HOSTS_ENV",
    "Address",
    "explicitly_listed",
    "matches",
    "parse_address",
    "refused_addresses",
    "rules",
    "sensitive",
]

ALLOWED_HOSTS_ENV = "BYOM_ALLOWED_HOSTS"
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA_ADDRESSES = (ipaddress.ip_address("fd00:ec2::254"),)
_METADATA_NAMES = ("metadata.google.internal", "metadata")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def rules(text: str | None) -> list[str]:
    """The entries of a ``BYOM_ALLOWED_HOSTS`` value, lower-cased."""
    return [item.strip().lower() for item in (text or "").split(",") if item.strip()]


def parse_address(host: str) -> Address | None:
    """``host`` as an IP address (brackets and an IPv6 zone allowed), None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return None


def sensitive(host: str, address: Address | None) -> bool:
    """A link-local or cloud metadata host (by name) or address."""
    if address is None:
        return host in _METADATA_NAMES
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:169.254.169.254 is the same endpoint
    return address in _METADATA_ADDRESSES or any(address in net for net in _LINK_LOCAL)


def explicitly_listed(host: str, address: Address | None, entries: list[str]) -> bool:
    """A rule naming this host or address itself (not a wildcard), or a CIDR inside the
    link-local range that holds it."""
    for rule in entries:
        if rule == host or (address is not None and rule == str(address)):
            return True
        if address is not None and "/" in rule:
            network = _network(rule)
            if network is not None and address in network and network.prefixlen >= 16:
                return True
    return False


def matches(rule: str, host: str, address: Address | None) -> bool:
    """Whether one ``BYOM_ALLOWED_HOSTS`` entry admits ``host``."""
    if address is not None:
        network = _network(rule)
        if network is not None:
            return address in network
    return fnmatch.fnmatchcase(host, rule)


def refused_addresses(host: str, addresses: Iterable[str], allowed: str | None = None) -> list[str]:
    """The addresses ``host`` resolved to that may not be called: sensitive ones that
    neither the name ``host`` nor the address is explicitly listed for. ``allowed``: the
    ``BYOM_ALLOWED_HOSTS`` value (read from the environment when None, and only when a
    sensitive address is found: the usual case costs one range test per address)."""
    host = host.lower()
    flagged = [a for a in addresses if sensitive(host, parse_address(a))]
    if not flagged:
        return []
    entries = rules(os.environ.get(ALLOWED_HOSTS_ENV) if allowed is None else allowed)
    if explicitly_listed(host, None, entries):
        return []
    return [a for a in flagged if not explicitly_listed(a, parse_address(a), entries)]


def _network(rule: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(rule, strict=False)
    except ValueError:
        return None
