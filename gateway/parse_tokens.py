"""The parser's tokens: the ``Byom`` dialect, positions, and a cursor with error helpers.

One tokenizer (``DIALECT``) serves the whole parser, so every position in an error is a
1-based line/col in the script the user sent.
"""

from __future__ import annotations

import re

from sqlglot import tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from byom.errors import ParseError, did_you_mean


class Byom(Dialect):
    """The gateway's SQL: ANSI SQL where backticks (MySQL/MindsDB) and double quotes both
    quote identifiers, single quotes quote strings, and ``#`` starts a comment as in MySQL.

    The base dialect is generic rather than MySQL on purpose: MySQL reads ``a || b`` as OR,
    which would silently change SQL passed through to SQLite or PostgreSQL datasources.
    Likewise ``/`` follows its operands' types (integer division stays integer division) so
    that SQL written for a datasource is sent to it with the meaning it had, no casts added.
    """

    TYPED_DIVISION = True

    class Tokenizer(tokens.Tokenizer):
        QUOTES = ["'"]
        IDENTIFIERS = ['"', "`"]
        # JSON literals in USING/PARAMETERS hold "..." strings that may contain \" escapes;
        # they tokenize as identifiers, so the tokenizer must step over the escape.
        IDENTIFIER_ESCAPES = ["\\"]
        COMMENTS = ["--", "#", ("/*", "*/")]


# The dialect to generate SQL with when a tree must be written back in the gateway's syntax.
DIALECT = Byom()


class _PlainTokenizer(Byom.Tokenizer):
    """The same lexing without sqlglot's "commands" (SHOW, CALL, ...), whose rest up to the
    ``;`` the real tokenizer reads as one string: used to find the ``;`` of a long script."""

    COMMANDS: set[TokenType] = set()  # noqa: RUF012 - sqlglot's own class attribute


_PLAIN = _PlainTokenizer(dialect=DIALECT)

#: The longest name (model, datasource, project, table, column) the parser accepts: what the
#: catalog's name columns hold (String(255) in catalog/tables.py); MySQL allows 64.
MAX_IDENTIFIER = 255

# Above this many ';' a script is tokenized one statement at a time (``_tokenize_pieces``).
_PIECEWISE_SEMICOLONS = 64

# The clauses of CREATE PREDICTOR; unquoted, they are not names.
CLAUSES = ("FROM", "PREDICT", "USING", "WHERE")

# The words that name a kind of thing after CREATE, DROP or SHOW in some statement (the
# gateway's or plain SQL's). Did-you-mean never turns one of them into a different word:
# ``CREATE PROJECT`` is not a misspelt ``CREATE PREDICTOR`` (see ``near_miss``).
KNOWN_WORDS = frozenset(
    {
        "PREDICTOR", "PREDICTORS", "MODEL", "MODELS", "DATABASE", "DATABASES", "PROJECT",
        "PROJECTS", "TABLE", "TABLES", "ENGINE", "ENGINES", "HANDLER", "HANDLERS", "FULL",
        "VIEW", "VIEWS", "INDEX", "INDEXES", "SCHEMA", "SCHEMAS", "COLUMNS", "VARIABLES",
    }
)  # fmt: skip
OPENERS = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
CLOSERS = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def line_col(sql: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` of ``sql``."""
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    col = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, col


def tokenize(sql: str) -> list[Token]:
    """The tokens of a whole script; an unreadable script is a ParseError at the culprit."""
    try:
        if sql.count(";") <= _PIECEWISE_SEMICOLONS:
            return DIALECT.tokenize(sql)
        return _tokenize_pieces(sql)
    except TokenError as e:
        # The cause says "Missing <delimiter> from <line>:<offset of the opening quote>".
        match = re.search(r"Missing (.+) from \d+:(\d+)", str(e.__cause__ or ""))
        if match:
            line, col = line_col(sql, int(match.group(2)))
            raise ParseError(
                f"Unterminated quoted text: missing the closing {match.group(1)}.",
                line=line,
                col=col,
            ) from e
        start = e.start if e.start is not None else 0
        line, col = line_col(sql, start)
        raise ParseError(f"Cannot read the statement: {e}", line=line, col=col) from e


def _tokenize_pieces(sql: str) -> list[Token]:
    """``DIALECT.tokenize(sql)``, one statement at a time, positions as in the whole script.

    sqlglot copies its whole token list after each command statement (``SHOW ...;``), so
    tokenizing ``'SHOW MODELS;' * 87000`` at once takes hours; the pieces between the ``;``
    that ``_PLAIN`` finds (its lexing is the same: quotes, comments) are tokenized apart,
    which is linear. A piece starts right after a ``;``: its tokens move by that ``;``'s
    offset, line and column (sqlglot's columns count from 1 after a line break).
    """
    out: list[Token] = []
    start, line, col = 0, 1, 0
    cuts = [t for t in _PLAIN.tokenize(sql) if t.token_type == TokenType.SEMICOLON]
    for end, next_line, next_col in [(t.end, t.line, t.col) for t in cuts] + [(len(sql), 0, 0)]:
        try:
            toks = DIALECT.tokenize(sql[start : end + 1])
        except TokenError:
            return DIALECT.tokenize(sql)  # never expected: the whole script places the error
        for tok in toks:
            if tok.line == 1:
                tok.col += col
            tok.line += line - 1
            tok.start += start
            tok.end += start
        out += toks
        start, line, col = end + 1, next_line, next_col
    return out


def check_identifier(sql: str, tok: Token) -> None:
    """A ParseError at ``tok`` when its name is longer than ``MAX_IDENTIFIER``."""
    if len(tok.text) > MAX_IDENTIFIER:
        line, col = line_col(sql, tok.start)
        raise ParseError(
            f"A name of {len(tok.text)} characters is too long: the gateway accepts names of "
            f"at most {MAX_IDENTIFIER} characters (what its catalog stores).",
            line=line,
            col=col,
        )


def word(tok: Token | None) -> str | None:
    """The upper-cased text of an unquoted word token (keyword or name), else None."""
    if tok is None or tok.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
        return None
    return tok.text.upper() if _WORD.fullmatch(tok.text) else None


def near_miss(found: str, kinds: tuple[str, ...] | list[str]) -> str | None:
    """The suggestion for ``found``, a word that is none of ``kinds`` (the words that may
    stand where it stands): for a keyword of another statement (``KNOWN_WORDS``) only its
    own singular or plural (``SHOW DATABASE`` -> DATABASES), for any other word the
    closest of ``kinds`` (``CREATE PREDICTR`` -> PREDICTOR)."""
    if found in KNOWN_WORDS:
        variants = (found[:-1], found[:-2]) if found.endswith("S") else (found + "S", found + "ES")
        return next((v for v in variants if v in kinds), None)
    return did_you_mean(found, kinds)


def or_words(words: tuple[str, ...] | list[str]) -> str:
    """``A``, ``A or B``, ``A, B or C``."""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


class Cursor:
    """A position in the tokens of one statement, with error helpers that know the source."""

    def __init__(self, sql: str, toks: list[Token], pos: int = 0) -> None:
        self.sql = sql
        self.toks = toks
        self.pos = pos

    @property
    def done(self) -> bool:
        return self.pos >= len(self.toks)

    def peek(self, ahead: int = 0) -> Token | None:
        i = self.pos + ahead
        return self.toks[i] if i < len(self.toks) else None

    def next(self, what: str) -> Token:
        """The next token; at the end of the statement, an error saying ``what`` was due."""
        tok = self.peek()
        if tok is None:
            raise self.error(f"Unexpected end of statement: expected {what}.")
        self.pos += 1
        return tok

    def at_word(self, *words: str, ahead: int = 0) -> bool:
        return word(self.peek(ahead)) in words

    def accept_word(self, *words: str) -> Token | None:
        if self.at_word(*words):
            return self.next(words[0])
        return None

    def accept(self, kind: TokenType) -> Token | None:
        tok = self.peek()
        if tok is not None and tok.token_type == kind:
            self.pos += 1
            return tok
        return None

    def expect_word(self, *words: str) -> Token:
        tok = self.accept_word(*words)
        if tok is None:
            raise self.unexpected(or_words(words), words)
        return tok

    def expect(self, kind: TokenType, what: str) -> Token:
        tok = self.accept(kind)
        if tok is None:
            raise self.unexpected(what)
        return tok

    def expect_end(self, expected: tuple[str, ...] = ()) -> None:
        if not self.done:
            what = or_words(expected) if expected else "the end of the statement"
            raise self.unexpected(what, expected)

    def error(
        self, message: str, tok: Token | None = None, suggestion: str | None = None
    ) -> ParseError:
        """A ParseError at ``tok`` (default: the current token, or just past the last one)."""
        tok = tok if tok is not None else self.peek()
        if tok is not None:
            offset = tok.start
        elif self.toks:
            offset = self.toks[-1].end + 1
        else:
            offset = 0
        return self.error_at(message, offset, suggestion)

    def error_at(self, message: str, offset: int, suggestion: str | None = None) -> ParseError:
        line, col = line_col(self.sql, offset)
        return ParseError(message, line=line, col=col, suggestion=suggestion)

    def unexpected(self, expected: str, words: tuple[str, ...] = ()) -> ParseError:
        """An error at the current token naming what was expected; a near miss of one of
        ``words`` (a misspelt keyword) comes with a suggestion."""
        tok = self.peek()
        if tok is None:
            return self.error(f"Unexpected end of statement: expected {expected}.")
        found = word(tok)
        suggestion = did_you_mean(found, words) if found and words else None
        return self.error(f"Expected {expected} but found '{tok.text}'.", tok, suggestion)


def name(c: Cursor, what: str, reserved: tuple[str, ...] = CLAUSES) -> Token:
    """A (possibly quoted) name token; clause keywords are not names unless quoted."""
    tok = c.peek()
    if tok is not None and tok.token_type == TokenType.IDENTIFIER:
        check_identifier(c.sql, tok)
        return c.next(what)
    found = word(tok)
    if found is None or found in reserved:
        raise c.unexpected(what)
    check_identifier(c.sql, tok)
    return c.next(what)


def if_exists(c: Cursor, with_not: bool) -> bool:
    """Consume ``IF [NOT] EXISTS`` when present."""
    if not (c.at_word("IF") and c.at_word("NOT" if with_not else "EXISTS", ahead=1)):
        return False
    c.pos += 1
    if with_not:
        c.expect_word("NOT")
    c.expect_word("EXISTS")
    return True
