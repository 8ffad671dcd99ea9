"""Where the statements of a script end: ``sqlparse`` decides, our tokens check.

``sqlparse.split`` knows what a hand-written ``;`` splitter does not: a compound statement
such as ``CREATE TRIGGER ... BEGIN ...; ...; END`` is one statement although it holds
semicolons (it tracks BEGIN/END, IF, CASE and loop blocks). Two things it cannot be trusted
with alone, which is why our own tokens (``gateway.parse_tokens``) stay in charge of them:

* What is quoted or commented. Its lexer is not ours: it takes ``\\'`` as an escaped quote
  (in our SQL, as in SQLite and PostgreSQL, ``'C:\\'`` is a complete string), knows ``#``
  comments only when a space follows, and does not know our ``\\"`` escapes in JSON
  literals. So it is run on a copy of the script in which every string, quoted name and
  comment our tokenizer found is blanked out (same length, same lines) - it sees only the
  code, and every ``;`` it sees is one we see too.
* Its block tracking is keyword-based, so a column named ``begin`` (``SELECT begin FROM t;
  SELECT 2``) opens a "block" and glues the next statements to it. A run of statements it
  keeps together is therefore accepted as one statement only when it has the shape of a
  compound statement (``CREATE ... BEGIN ... ; ... END``); anything else is split at our
  top-level ``;`` as before, since the SQL parser reads one statement at a time anyway.

A script without a top-level ``;`` between two statements - almost every request - never
reaches sqlparse.
"""

from __future__ import annotations

import re

import sqlparse
from sqlglot.tokens import Token, TokenType

from gateway.parse_tokens import CLOSERS, OPENERS

_NOT_NEWLINE = re.compile(r"[^\n]")


def split(sql: str, toks: list[Token]) -> list[list[Token]]:
    """The token groups of the statements of a script, without their ``;`` and without
    empty statements (``;;``, a lone comment)."""
    cuts = _top_level_semicolons(toks)
    groups = _between(toks, cuts)
    if len(groups) <= 1:
        return groups
    ends = _sqlparse_ends(sql, toks)
    out: list[list[Token]] = []
    start = 0
    for i in cuts + [len(toks)]:
        if i < len(toks) and toks[i].start not in ends:
            continue  # sqlparse reads on: the statement may be a compound one
        piece = toks[start:i]
        start = i + 1
        if _is_compound(piece):
            out.append(_strip_semicolons(piece))
        else:
            out.extend(_between(piece, _top_level_semicolons(piece)))
    return [group for group in out if group]


def _top_level_semicolons(toks: list[Token]) -> list[int]:
    """Indices of the ``;`` tokens outside brackets."""
    found: list[int] = []
    depth = 0
    for i, tok in enumerate(toks):
        if tok.token_type in OPENERS:
            depth += 1
        elif tok.token_type in CLOSERS:
            depth = max(0, depth - 1)
        elif tok.token_type == TokenType.SEMICOLON and depth == 0:
            found.append(i)
    return found


def _between(toks: list[Token], cuts: list[int]) -> list[list[Token]]:
    """The non-empty runs of ``toks`` between the indices ``cuts``."""
    groups: list[list[Token]] = []
    start = 0
    for i in cuts + [len(toks)]:
        if i > start:
            groups.append(toks[start:i])
        start = i + 1
    return groups


def _strip_semicolons(toks: list[Token]) -> list[Token]:
    while toks and toks[-1].token_type == TokenType.SEMICOLON:
        toks = toks[:-1]
    while toks and toks[0].token_type == TokenType.SEMICOLON:
        toks = toks[1:]
    return toks


def _is_compound(toks: list[Token]) -> bool:
    """``CREATE ... BEGIN ...; ... END``: a body of statements that is part of one statement
    (a ``BEGIN`` outside brackets before the first ``;``, ``END`` last)."""
    toks = _strip_semicolons(toks)
    inner = _top_level_semicolons(toks)
    if not inner or toks[0].token_type != TokenType.CREATE or toks[-1].token_type != TokenType.END:
        return False
    depth = 0
    for tok in toks[: inner[0]]:
        if tok.token_type in OPENERS:
            depth += 1
        elif tok.token_type in CLOSERS:
            depth = max(0, depth - 1)
        elif tok.token_type == TokenType.BEGIN and depth == 0:
            return True
    return False


def _masked(sql: str, toks: list[Token]) -> str:
    """``sql`` with everything but our code tokens (strings, quoted names, comments, the
    whitespace between tokens) turned into spaces; newlines and every offset are kept."""
    chars = list(_NOT_NEWLINE.sub(" ", sql))
    for tok in toks:
        kind = tok.token_type
        if kind == TokenType.IDENTIFIER or kind.name.endswith("STRING"):
            continue
        chars[tok.start : tok.end + 1] = sql[tok.start : tok.end + 1]
    return "".join(chars)


def _sqlparse_ends(sql: str, toks: list[Token]) -> set[int]:
    """Offsets of the ``;`` at which ``sqlparse.split`` ends a statement."""
    masked = _masked(sql, toks)
    ends: set[int] = set()
    pos = 0
    for piece in sqlparse.split(masked):
        # split() strips each statement; find it again to know its offset.
        start = masked.find(piece, pos)
        if start < 0:  # never expected: then trust our own ';' alone
            return {tok.start for tok in toks if tok.token_type == TokenType.SEMICOLON}
        pos = start + len(piece)
        if piece.endswith(";"):
            ends.add(pos - 1)
    return ends
