"""The connection-time egress check: an httpx transport that refuses sensitive addresses.

``gateway.egress.check_url`` checks a model URL's host *as written* when the model is
registered. A name can resolve elsewhere later (DNS rebinding: a name that answered a
public address at registration answers 169.254.169.254 at call time), so every request is
checked again here, on the addresses the host resolves to now, with the same rules
(``adapters.addresses``): a link-local or cloud metadata address is refused unless
``BYOM_ALLOWED_HOSTS`` lists it (or the name) explicitly.

For ``http://`` the request is then sent to the checked address itself (the ``Host`` header
keeps the name), so a second, different DNS answer between the check and the connection
cannot slip through. ``https://`` is not pinned: certificate verification against the name
already rules out reaching another server, and SNI must carry the name.

Resolutions are cached for ``ttl`` seconds, so a single-row predict pays a dict lookup, not
a DNS round trip.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache

import httpx

from adapters.addresses import ALLOWED_HOSTS_ENV, parse_address, refused_addresses, sensitive

__all__ = ["AddressRefused", "GuardedTransport", "Resolver", "system_resolve"]

#: ``(host, port) -> addresses`` (text, in the order to try them).
Resolver = Callable[[str, int], Awaitable[list[str]]]
DNS_CACHE_SECONDS = 5.0
_CACHE_MAX = 512
_DEFAULT_PORTS = {"http": 80, "https": 443}


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system resolver (the event loop's executor)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressRefused(httpx.TransportError):
    """A model host resolved to an address the egress rules refuse (never retried)."""

    def __init__(self, host: str, addresses: list[str], request: httpx.Request) -> None:
        super().__init__(
            f"host '{host}' resolves to {', '.join(addresses)}, a link-local or cloud "
            f"metadata address; list '{host}' in {ALLOWED_HOSTS_ENV} if it is really meant",
            request=request,
        )
        self.host = host
        self.addresses = addresses


class GuardedTransport(httpx.AsyncBaseTransport):
    """Wraps ``inner`` (normally ``httpx.AsyncHTTPTransport``) with the address check."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        resolve: Resolver = system_resolve,
        ttl: float = DNS_CACHE_SECONDS,
        allowed: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.resolve = resolve
        self.ttl = ttl
        self.allowed = allowed  # None: $BYOM_ALLOWED_HOSTS, read when a check needs it
        self.clock = clock
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        is_ip, is_sensitive = _literal(host)
        if is_ip:  # no DNS: the address is checked as written
            if is_sensitive:
                self._check(host, [host], request)
            return await self.inner.handle_async_request(request)
        port = url.port or _DEFAULT_PORTS.get(url.scheme, 80)
        addresses = await self._addresses(host, port, request)
        if url.scheme != "http":
            return await self.inner.handle_async_request(request)
        last: httpx.ConnectError | None = None
        for address in addresses:  # like a resolver-driven connect: next address on refusal
            pinned = httpx.Request(
                request.method,
                url.copy_with(host=address),
                headers=request.headers,  # keeps Host: <name>
                stream=request.stream,
                extensions=request.extensions,
            )
            try:
                return await self.inner.handle_async_request(pinned)
            except httpx.ConnectError as exc:
                last = exc
        assert last is not None  # resolution never answers an empty list (see _addresses)
        raise last

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _addresses(self, host: str, port: int, request: httpx.Request) -> list[str]:
        """The checked addresses of ``host``, from the cache while fresh."""
        key = (host, port)
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            addresses = await self.resolve(host, port)
        except OSError as exc:  # socket.gaierror: the reason is found on the chain
            raise httpx.ConnectError(f"cannot resolve '{host}': {exc}", request=request) from exc
        if not addresses:
            raise httpx.ConnectError(f"'{host}' resolves to no address", request=request)
        self._check(host, addresses, request)
        if len(self._cache) >= _CACHE_MAX:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[key] = (now + self.ttl, addresses)
        return addresses

    def _check(self, host: str, addresses: list[str], request: httpx.Request) -> None:
        refused = refused_addresses(host, addresses, self.allowed)
        if refused:
            raise AddressRefused(host, refused, request)


@lru_cache(maxsize=1024)
def _literal(host: str) -> tuple[bool, bool]:
    """(is an IP literal, is a sensitive one): parsed once per host, not per request."""
    address = parse_address(host)
    return address is not None, address is not None and sensitive(host, address)
