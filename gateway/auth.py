"""Who may run what: API tokens, their roles, and the role each plan needs.

Authentication is on as soon as the catalog holds a token (``byom token create``); a running
gateway notices within ``CACHE_S``. The HTTP server's ``AuthMiddleware`` turns the
``Authorization: Bearer <token>`` header into the request's ``Principal`` (a 401 when it is
missing or unknown), and ``Gateway._execute`` asks ``authorize(plan)`` before it runs a plan
(a 403 naming the role needed). Embedded use (``byom sql`` without ``--url``, the Python
API) has no principal: whoever can open the catalog file is its admin anyway.

Roles, each allowed what the ones before it are: ``reader`` (SELECT, predictions, SHOW,
DESCRIBE, USE, SET, EVALUATE), ``writer`` (also create, retrain, drop and activate models,
projects, write-backs and pass-through statements that change a datasource), ``admin``
(also datasources, the audit log and tokens).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import sqlglot
from sqlglot import exp

from byom.errors import Forbidden, Unauthorized
from catalog.records import ROLES, TokenRecord
from gateway import plans as p
from gateway import statements as st

# How long a token lookup and "is authentication on" are trusted before asking the catalog
# again: short enough that a new or revoked token counts within a second on every replica,
# long enough that a busy client costs one catalog read a second, not one a request.
CACHE_S = 1.0
_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    """The token a request came with: its name and role."""

    name: str
    role: str


# The principal of the statement running in this context (None: authentication is off, or
# the gateway is embedded). Set per request by ``AuthMiddleware``; asyncio tasks and
# ``asyncio.to_thread`` inherit it.
current: ContextVar[Principal | None] = ContextVar("byom_principal", default=None)
# The address of the HTTP client of the statement running in this context (for the audit).
client: ContextVar[str | None] = ContextVar("byom_client", default=None)

_WRITER_PLANS = (
    p.RegisterPlan,
    p.TrainBuiltinPlan,
    p.CancelTrainingPlan,
    p.ActivateVersionPlan,
    p.WriteBackPlan,
    st.DropModel,
    st.CreateProject,
    st.DropProject,
)
_ADMIN_PLANS = (st.CreateDatabase, st.DropDatabase)
# Catalog tables only an admin may read.
ADMIN_TABLES = frozenset({"audit", "tokens"})
# sqlglot nodes that change data or schema, or write a file (SELECT ... INTO).
_WRITES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Into,
    exp.Command,
    exp.TruncateTable,
)


def required_role(plan: Any) -> str:
    """The least role that may run ``plan``."""
    if isinstance(plan, _ADMIN_PLANS):
        return "admin"
    if isinstance(plan, _WRITER_PLANS):
        return "writer"
    if isinstance(plan, p.CatalogQueryPlan) and _reads_admin_table(plan.sql):
        return "admin"
    if isinstance(plan, p.NativePlan) and not native_reads_only(plan.sql):
        return "writer"
    return "reader"


@functools.lru_cache(maxsize=256)
def native_reads_only(sql: str) -> bool:
    """Whether pass-through ``sql`` is one statement that only reads (a reader may run it).

    Anything sqlglot cannot read as a single query counts as a write: a reader's statement
    must be provably a read, not merely not provably a write. Cached: authorization and the
    audit log both ask of every pass-through statement.
    """
    try:
        trees = [t for t in sqlglot.parse(sql) if t is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return False
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        return False
    return trees[0].find(*_WRITES) is None


def _reads_admin_table(sql: str) -> bool:
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return True
    return any(t.name.lower() in ADMIN_TABLES for t in tree.find_all(exp.Table))


def authorize(plan: Any) -> None:
    """Raise ``Forbidden`` when the current principal's role may not run ``plan``."""
    principal = current.get()
    if principal is None:
        return
    needed = required_role(plan)
    if _RANK[principal.role] < _RANK[needed]:
        raise Forbidden(
            f"Token '{principal.name}' has role {principal.role}; this statement needs "
            f"role {needed} or above. Ask an admin for a token with role {needed}.",
            role=principal.role,
            required_role=needed,
        )


def require_admin(action: str) -> None:
    """Raise ``Forbidden`` unless the current principal (if any) is an admin."""
    principal = current.get()
    if principal is not None and principal.role != "admin":
        raise Forbidden(
            f"Token '{principal.name}' has role {principal.role}; {action} needs role admin.",
            role=principal.role,
            required_role="admin",
        )


class TokenStore(Protocol):
    """What the authenticator needs of the catalog (``catalog.tokens.TokensMixin``)."""

    def tokens_exist(self) -> bool: ...

    def find_token(self, secret: str) -> TokenRecord | None: ...


class Authenticator:
    """Checks bearer tokens against the catalog, with a short cache (``CACHE_S``)."""

    def __init__(self, catalog: TokenStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._catalog = catalog
        self._clock = clock
        self._lock = threading.Lock()
        self._enabled: tuple[float, bool] | None = None
        self._tokens: dict[str, tuple[float, Principal | None]] = {}

    def enabled(self) -> bool:
        """Whether any token exists in the catalog (authentication is on)."""
        now = self._clock()
        with self._lock:
            cached = self._enabled
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        on = self._catalog.tokens_exist()
        with self._lock:
            self._enabled = (now, on)
        return on

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization`` header value; None when authentication is
        off. Raises ``Unauthorized`` when it is on and the header holds no active token."""
        if not self.enabled():
            return None
        secret = _bearer(authorization)
        now = self._clock()
        with self._lock:
            cached = self._tokens.get(secret)
        if cached is not None and now - cached[0] < CACHE_S:
            principal = cached[1]
        else:
            record = self._catalog.find_token(secret)
            principal = None if record is None else Principal(record.name, record.role)
            with self._lock:
                if len(self._tokens) > 10_000:  # bounded: guessed tokens must not pile up
                    self._tokens.clear()
                self._tokens[secret] = (now, principal)
        if principal is None:
            raise Unauthorized(
                "The token is unknown or revoked. Create one with "
                "'byom token create NAME --role reader|writer|admin'."
            )
        return principal


def _bearer(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or ``Unauthorized``."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Authentication is on: send 'Authorization: Bearer <token>' "
            "(byom sql --token, or $BYOM_TOKEN)."
        )
    return token.strip()
