"""Model URLs as they may be shown, and as endpoints are told apart.

* ``redact_url``: a URL without ``user:password@`` and with secret-looking query values
  (``token=``, ``key=``, ``password=``, ``api_key=``, ...) masked. Every URL that reaches an
  error message, DESCRIBE/``mindsdb.models`` or a log line goes through it: the catalog keeps
  the real URL (the gateway needs it to call the model), nobody reading answers sees it.
* ``endpoint_key``: ``scheme://host:port/path`` of a URL, what a circuit breaker is keyed by
  (the query string is per-call, e.g. ``?target=`` of binary payloads).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = ["MASK", "endpoint_key", "redact_url", "secret_name"]

MASK = "***"
# Parameter names that hold a secret by their words; ``key`` alone and ``*_key`` too.
_SECRET_WORDS = ("token", "secret", "password", "passwd", "apikey", "api_key", "api-key",
                 "credential", "signature", "auth", "session")  # fmt: skip
_SECRET_NAMES = frozenset({"key", "pwd", "pass", "sig", "code", "jwt"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def secret_name(name: str) -> bool:
    """Whether a query parameter called ``name`` looks like it holds a secret."""
    lowered = unquote_plus(name).strip().lower()
    return (
        lowered in _SECRET_NAMES
        or lowered.endswith(("_key", "-key", ".key"))
        or any(word in lowered for word in _SECRET_WORDS)
    )


def _mask_params(text: str) -> str:
    """``a=1&token=x`` -> ``a=1&token=***``; other parameters are kept byte for byte."""
    parts = []
    for part in text.split("&"):
        name, sep, value = part.partition("=")
        parts.append(f"{name}={MASK}" if sep and value and secret_name(name) else part)
    return "&".join(parts)


@lru_cache(maxsize=1024)
def redact_url(url: str | None) -> str | None:
    """``url`` safe to show: no userinfo, secret-looking query (and fragment) values masked.

    None stays None; text that does not parse as a URL still loses anything that looks like
    ``//user:password@``.
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]  # userinfo is everything up to the last @
        query = _mask_params(parts.query) if parts.query else ""
        fragment = _mask_params(parts.fragment) if "=" in parts.fragment else parts.fragment
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:  # e.g. an unbalanced IPv6 bracket: redact by pattern instead
        return re.sub(r"//[^/?#]*@", "//", url)


@lru_cache(maxsize=1024)
def endpoint_key(url: str) -> str:
    """``scheme://host:port/path`` of ``url`` (host lower-cased, default port filled in)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return redact_url(url) or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    where = f"{host}:{port}" if port else host
    return f"{parts.scheme.lower()}://{where}{parts.path or '/'}"
