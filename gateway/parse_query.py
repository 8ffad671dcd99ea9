"""Plain SQL (anything that is not one of the gateway's own statements), read by sqlglot from
the same tokens, with a MindsDB-style trailing ``USING k = v, ...`` cut out first, a model
version as a table (``FROM m.2``) made a quoted name, and sqlglot's errors mapped back to the
script's positions."""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.tokens import Token, TokenType

from byom.errors import ParseError, did_you_mean
from gateway import statements as st
from gateway.parse_options import options
from gateway.parse_tokens import CLOSERS, DIALECT, OPENERS, Cursor, word

# Key under which ``... USING k=v`` of a SELECT is kept in ``Query.tree.meta``.
USING_META = "byom_using"

# Keywords a misspelt word in a plain SQL statement is compared with (3+ letters only:
# shorter ones would match every short alias).
_SQL_KEYWORDS = (
    "SELECT", "FROM", "WHERE", "JOIN", "INNER", "LEFT", "RIGHT", "OUTER", "CROSS", "FULL",
    "GROUP", "ORDER", "HAVING", "LIMIT", "OFFSET", "UNION", "DISTINCT", "AND", "NOT", "NULL",
    "LIKE", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "END", "INTO", "VALUES", "USING",
    "EXISTS", "DESC", "WITH",
)  # fmt: skip

# A table is named after FROM or a JOIN, or after a comma of a FROM list; the commas of these
# clauses are not a FROM list's.
_JOINS = {TokenType.JOIN, TokenType.STRAIGHT_JOIN}
_NOT_FROM_LIST = {
    TokenType.SELECT, TokenType.WHERE, TokenType.ON, TokenType.USING, TokenType.GROUP_BY,
    TokenType.ORDER_BY, TokenType.HAVING, TokenType.LIMIT, TokenType.SET, TokenType.VALUES,
    TokenType.RETURNING, TokenType.WINDOW, TokenType.QUALIFY, TokenType.UNION,
    TokenType.EXCEPT, TokenType.INTERSECT, TokenType.INTO,
}  # fmt: skip
_DIGITS = re.compile(r"[0-9]+")


def query(sql: str, toks: list[Token]) -> st.Query:
    """Any other statement, parsed by sqlglot from the same tokens."""
    text = sql[toks[0].start : toks[-1].end + 1]
    if any(tok.token_type == TokenType.SEMICOLON for tok in toks):
        # A compound statement the script splitter kept whole (``CREATE TRIGGER ... BEGIN
        # ...; END``: one statement to the database). sqlglot reads up to the first ';' only,
        # so it is kept as written, a Command, and passed through unchanged.
        tree = exp.Command(this=toks[0].text.upper(), expression=text[len(toks[0].text) :])
        return st.Query(tree=tree, sql=text)
    toks, using = _cut_using(sql, toks)
    toks = _version_tables(toks)
    try:
        trees = DIALECT.parser().parse(toks, sql)
    except SqlglotParseError as e:
        raise _from_sqlglot(sql, toks, e) from e
    tree = trees[0] if len(trees) == 1 else None
    if not isinstance(tree, exp.Expression):
        raise Cursor(sql, toks).error("Cannot read this statement.", toks[0])
    if using:
        tree.meta[USING_META] = using
    return st.Query(tree=tree, sql=text)


def _cut_using(sql: str, toks: list[Token]) -> tuple[list[Token], dict[str, Any]]:
    """Cut a MindsDB-style ``USING k = v, ...`` (not SQL's ``JOIN ... USING (cols)``) out of
    the statement's tokens, returning the remaining tokens and the options."""
    depth = 0
    for i, tok in enumerate(toks):
        if tok.token_type in OPENERS:
            depth += 1
        elif tok.token_type in CLOSERS:
            depth -= 1
        elif depth == 0 and tok.token_type == TokenType.USING:
            after = toks[i + 2] if i + 2 < len(toks) else None
            if word(toks[i + 1] if i + 1 < len(toks) else None) is None or after is None:
                continue
            if after.token_type not in (TokenType.EQ, TokenType.DOT):
                continue
            c = Cursor(sql, toks, i + 1)
            found = {k: v for k, (_, v) in options(c, "USING").items()}
            return toks[:i] + toks[c.pos :], found
    return toks, {}


def _version_tables(toks: list[Token]) -> list[Token]:
    """The tokens with each model version named as a table (``FROM m.2``, ``JOIN
    proj.m.2 AS p``, ``FROM `m`.2``) made a quoted name, as if written ``m.`2```: sqlglot
    takes a number there for the start of a decimal and fails ("Expected table name").

    The number must follow a name and a ``.`` with no space between them, and the name chain
    must stand where a table does; numbers elsewhere (``1.5``, ``t.2`` in an expression,
    strings, comments) are left as they are. Positions are kept, so errors still point at
    the script; the statement's text (``Query.sql``) is not changed.
    """
    out = toks
    for i, tok in enumerate(toks):
        if _is_version_ref(toks, i):
            if out is toks:
                out = list(toks)
            out[i] = Token(
                TokenType.IDENTIFIER, tok.text, tok.line, tok.col, tok.start, tok.end, tok.comments
            )
    return out


def _is_version_ref(toks: list[Token], i: int) -> bool:
    """Whether ``toks[i]`` is the ``2`` of a table name ``[db.]m.2``."""
    tok = toks[i]
    if tok.token_type != TokenType.NUMBER or not _DIGITS.fullmatch(tok.text) or i < 2:
        return False
    dot, owner = toks[i - 1], toks[i - 2]
    if dot.token_type != TokenType.DOT or not _adjacent(dot, tok) or not _adjacent(owner, dot):
        return False
    if not _is_name(owner):
        return False
    after = toks[i + 1] if i + 1 < len(toks) else None
    if after is not None and _adjacent(tok, after) and (_is_name(after) or after.text == "."):
        return False  # m.2a, m.2.x: not a version
    j = i - 2  # the first part of the dotted name
    while j >= 2 and toks[j - 1].token_type == TokenType.DOT and _is_name(toks[j - 2]):
        j -= 2
    return j >= 1 and _is_table_position(toks, j - 1)


def _is_table_position(toks: list[Token], k: int) -> bool:
    """Whether a table name may follow ``toks[k]``: FROM (of a SELECT or DELETE, not of
    ``EXTRACT(x FROM y)``), a JOIN, or a comma of a FROM list."""
    kind = toks[k].token_type
    if kind == TokenType.COMMA:
        clause = _clause_before(toks, k, _NOT_FROM_LIST | _JOINS | {TokenType.FROM})
        if clause is None or clause.token_type not in _JOINS | {TokenType.FROM}:
            return False
        kind = clause.token_type
        k = toks.index(clause)
    if kind in _JOINS:
        return True
    if kind != TokenType.FROM:
        return False
    clause = _clause_before(toks, k, {TokenType.SELECT, TokenType.DELETE})
    return clause is None or clause.token_type not in OPENERS


def _clause_before(toks: list[Token], k: int, kinds: set[TokenType]) -> Token | None:
    """The nearest token before ``toks[k]`` at its bracket depth whose type is one of
    ``kinds``, or the bracket that opens first; None: neither, up to the start."""
    depth = 0
    for tok in reversed(toks[:k]):
        if tok.token_type in CLOSERS:
            depth += 1
        elif tok.token_type in OPENERS:
            if depth == 0:
                return tok
            depth -= 1
        elif depth == 0 and tok.token_type in kinds:
            return tok
    return None


def _is_name(tok: Token) -> bool:
    return tok.token_type == TokenType.IDENTIFIER or word(tok) is not None


def _adjacent(first: Token, second: Token) -> bool:
    return first.end + 1 == second.start


def _from_sqlglot(sql: str, toks: list[Token], e: SqlglotParseError) -> ParseError:
    """Our ParseError for sqlglot's, at the token sqlglot stopped on; a misspelt keyword
    just before it (``SELECT * FORM t``: FORM became an alias, t is unexpected) is named."""
    info = e.errors[0] if e.errors else {}
    line, col = info.get("line"), info.get("col")
    # sqlglot reports the line and the *last* column of the offending token.
    index = next((i for i, t in enumerate(toks) if t.line == line and t.col == col), len(toks) - 1)
    c = Cursor(sql, toks)
    for j in range(index, max(index - 3, -1), -1):
        found = word(toks[j])
        if found is None or len(found) < 3 or found in _SQL_KEYWORDS:
            continue
        near = [k for k in _SQL_KEYWORDS if abs(len(k) - len(found)) <= 1]
        suggestion = did_you_mean(found, near)
        if suggestion:
            return c.error(f"Unexpected '{toks[j].text}'.", toks[j], suggestion)
    description = tidy(info.get("description") or str(e))
    tok = toks[index] if toks else None
    near_text = f" near '{tok.text}'" if tok is not None else ""
    return c.error(f"{description}{near_text}.", tok)


def tidy(message: str) -> str:
    """sqlglot's messages without Python reprs (``<class '...Where'>``, ``<Token ...>``)."""
    message = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", message)
    message = re.sub(r"<Token [^>]*SENTINEL[^>]*>", "the end of the statement", message)
    return re.sub(r"<Token [^>]*text: ([^,]*),[^>]*>", r"'\1'", message)
