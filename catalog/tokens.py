"""API tokens in the catalog: ``TokensMixin`` gives ``catalog.repository.Catalog`` its token
methods.

A token is ``byom_`` + 43 random URL-safe characters, printed once at creation. Only its
SHA-256 is stored: the secret is 256 random bits, so a slow password hash would add nothing
but latency to every request. Authentication is on as soon as the table holds a row, revoked
or not, so revoking the last token never opens the gateway again.
"""

from __future__ import annotations

import hashlib
import secrets
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from byom.errors import AlreadyExists, InvalidOption, NotFound
from catalog.records import ROLES, TokenRecord, name_key
from catalog.tables import TokenRow, utcnow

TOKEN_PREFIX = "byom_"


def token_hash(secret: str) -> str:
    """The stored form of token ``secret``."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _record(row: TokenRow) -> TokenRecord:
    return TokenRecord(
        name=row.name,
        role=row.role,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class TokensMixin:
    """The token methods of ``Catalog``; each is one transaction."""

    if TYPE_CHECKING:  # provided by Catalog

        def _session(self, read_only: bool = False) -> AbstractContextManager[Session]: ...

    def create_token(self, name: str, role: str) -> tuple[TokenRecord, str]:
        """A new token ``name`` with ``role``: its record and its secret (shown only now)."""
        key = name_key(name)
        if not key or len(key) > 255:
            raise InvalidOption("A token needs a name of 1 to 255 characters.", option="name")
        if role not in ROLES:
            raise InvalidOption(
                f"Unknown role '{role}'. Roles: {', '.join(ROLES)}.", option="role", value=role
            )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(
            name=key,
            role=role,
            token_hash=token_hash(secret),
            prefix=secret[: len(TOKEN_PREFIX) + 4],
            created_at=utcnow(),
        )
        try:
            with self._session() as s:
                s.add(row)
                s.flush()
                return _record(row), secret
        except IntegrityError:
            raise AlreadyExists(
                f"A token named '{key}' already exists (revoked tokens keep their name). "
                "Choose another name.",
                code="TOKEN_EXISTS",
            ) from None

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones too, by name."""
        with self._session(read_only=True) as s:
            return [_record(r) for r in s.scalars(select(TokenRow).order_by(TokenRow.name))]

    def revoke_token(self, name: str) -> TokenRecord:
        """Revoke token ``name`` (it stops working at once; its row stays)."""
        key = name_key(name)
        with self._session() as s:
            row = s.scalars(select(TokenRow).where(TokenRow.name == key)).first()
            if row is None:
                raise NotFound(f"No token named '{key}'.", code="TOKEN_NOT_FOUND")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _record(row)

    def tokens_exist(self) -> bool:
        """Whether any token was ever created (authentication is on)."""
        with self._session(read_only=True) as s:
            return bool(s.scalar(select(exists().where(TokenRow.id.is_not(None)))))

    def find_token(self, secret: str) -> TokenRecord | None:
        """The active token whose secret is ``secret`` (its use recorded), or None."""
        with self._session() as s:
            row = s.scalars(
                select(TokenRow).where(TokenRow.token_hash == token_hash(secret))
            ).first()
            if row is None or row.revoked_at is not None:
                return None
            row.last_used_at = utcnow()
            return _record(row)
