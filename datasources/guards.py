"""What pass-through SQL may not do on a datasource, and the errors that say so.

SQLite: an authorizer on every connection refuses ``ATTACH``/``DETACH`` (``VACUUM INTO``
reaches the authorizer as an ATTACH of its target file) and the ``load_extension()``
function: each would open, write or load a file the file policy (``files``) never vetted.
The engine's own configured attaches run with the authorizer lifted (``engines``).

Read-only datasources: SQLite files are opened ``mode=ro``; PostgreSQL sessions start with
``default_transaction_read_only=on``. Since pass-through SQL could switch a PostgreSQL
session back (``SET ... READ WRITE``, ``RESET ALL``), such text is refused up front on a
read-only datasource, and the database's own read-only error is the backstop.
"""

from __future__ import annotations

import re
import sqlite3
import threading

from byom.errors import UserError


class StatementNotAllowed(UserError):
    """Pass-through SQL that would open or write other files (SQLite)."""

    code = "STATEMENT_NOT_ALLOWED"
    status = 403


class DatasourceReadOnly(UserError):
    """A write into a datasource created with ``read_only = true``."""

    code = "DATASOURCE_READ_ONLY"
    status = 403


# The authorizer's last refusal on this thread: the statement fails in the thread that ran
# it, so the error raised there can say what was refused (SQLite only says "not authorized").
_refused = threading.local()


def sqlite_authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
) -> int:
    """SQLite authorizer: deny ATTACH, DETACH (and so VACUUM INTO) and load_extension()."""
    if action == sqlite3.SQLITE_ATTACH:
        # VACUUM INTO '<file>' is authorized as an ATTACH of <file> (SQLite 3.27+).
        _refused.what = f"ATTACH or VACUUM INTO of {arg1!r}"
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_DETACH:
        _refused.what = f"DETACH of schema {arg1!r}"
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() == "load_extension":
        _refused.what = "load_extension()"
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def take_refusal(reason: str) -> str | None:
    """What the authorizer refused on this thread, when ``reason`` (the database's
    message) is its refusal; clears the record either way."""
    what: str | None = getattr(_refused, "what", None)
    _refused.what = None
    if what is not None and "not authorized" not in reason and "authorization" not in reason:
        return None
    return what


def not_allowed(datasource: str, what: str) -> StatementNotAllowed:
    """The error for a refused statement on SQLite datasource ``datasource``."""
    return StatementNotAllowed(
        f"Datasource '{datasource}' (sqlite) refused {what}: pass-through SQL may not open, "
        "write or load other files (ATTACH, DETACH, VACUUM INTO and load_extension are "
        "refused). To query another database file, create a datasource for it (CREATE "
        "DATABASE) or list it in this datasource's 'attach' parameter",
        datasource=datasource,
    )


def read_only(datasource: str, doing: str, reason: str | None = None) -> DatasourceReadOnly:
    """The error for a write into read-only datasource ``datasource``."""
    said = f" ({reason})" if reason else ""
    return DatasourceReadOnly(
        f"Datasource '{datasource}' is read-only (created with read_only = true): {doing} "
        f"was refused{said}. Write into another datasource, or DROP DATABASE and create it "
        "again without read_only",
        datasource=datasource,
    )


# Text that would let a session of a read-only PostgreSQL datasource write again: a new
# transaction mode, the setting itself, or a reset of every setting to the server's default.
_PG_WRITE_SWITCH = re.compile(
    r"\bread\s+write\b|\b(default_)?transaction_read_only\b|\breset\b|\bdiscard\b"
    r"|\bsession_authorization\b",
    re.IGNORECASE,
)


def check_pass_through(datasource: str, engine: str, sql: str) -> None:
    """Refuse pass-through SQL that could turn a read-only PostgreSQL session writable."""
    if engine == "postgres":
        match = _PG_WRITE_SWITCH.search(sql)
        if match is not None:
            raise read_only(
                datasource,
                f"a statement with {match.group(0).upper()!r} (it could make the session writable)",
            )
