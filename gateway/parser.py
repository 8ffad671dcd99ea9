"""SQL text -> statements (``gateway.statements``); nothing else.

The gateway's own statements (``CREATE PREDICTOR|MODEL``, ``CREATE/DROP DATABASE``,
``DROP MODEL``, ``SHOW MODELS|DATABASES``, ``DESCRIBE``) are read by a small
recursive-descent parser over sqlglot tokens; everything else is handed to sqlglot and comes
back as a ``Query`` holding its tree. One tokenizer (the ``Byom`` dialect below) serves both,
so positions in errors are always 1-based line/col in the script the user sent.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlglot import exp, tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.errors import TokenError
from sqlglot.parser import Parser
from sqlglot.tokens import Token, TokenType

from gateway import statements as st
from gateway.errors import ParseError, did_you_mean

__all__ = ["DIALECT", "Byom", "parse", "parse_one", "query_options"]


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

# Key under which ``... USING k=v`` of a SELECT is kept in ``Query.tree.meta``.
_USING_META = "byom_using"

_CLAUSES = ("FROM", "PREDICT", "USING", "WHERE")
_MODEL_KINDS = ("MODEL", "PREDICTOR")
_OPENERS = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSERS = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_INT = re.compile(r"\d+")

# Words that may follow CREATE / DROP / SHOW; a misspelling of one of them is reported
# with a suggestion instead of being passed on to sqlglot (which would make a Command of it).
_CREATE_KINDS = ("PREDICTOR", "MODEL", "DATABASE", "TABLE", "VIEW", "INDEX", "SCHEMA")
_DROP_KINDS = ("PREDICTOR", "MODEL", "DATABASE", "TABLE", "VIEW", "INDEX", "SCHEMA")
_SHOW_OURS = ("DATABASES", "MODELS", "PREDICTORS")
_SHOW_OTHERS = (
    "TABLES",
    "FULL",
    "COLUMNS",
    "SCHEMAS",
    "VIEWS",
    "INDEX",
    "INDEXES",
    "VARIABLES",
    "STATUS",
    "CREATE",
    "ENGINES",
    "WARNINGS",
    "ERRORS",
)
_STATEMENT_WORDS = (
    "SELECT",
    "WITH",
    "VALUES",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
    "SHOW",
    "DESCRIBE",
    "DESC",
    "USE",
    "SET",
    "TRUNCATE",
    "EXPLAIN",
    "MERGE",
)
_STATEMENT_TOKENS = set(Parser.STATEMENT_PARSERS) | {
    TokenType.SELECT,
    TokenType.WITH,
    TokenType.VALUES,
    TokenType.L_PAREN,
    TokenType.COMMAND,
    TokenType.SHOW,
    TokenType.EXECUTE,
    TokenType.REPLACE,
}
# Keywords a misspelt word in a plain SQL statement is compared with (3+ letters only:
# shorter ones would match every short alias).
_SQL_KEYWORDS = (
    "SELECT",
    "FROM",
    "WHERE",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "OUTER",
    "CROSS",
    "FULL",
    "GROUP",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "UNION",
    "DISTINCT",
    "AND",
    "NOT",
    "NULL",
    "LIKE",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "INTO",
    "VALUES",
    "USING",
    "EXISTS",
    "DESC",
    "WITH",
)


# ---------------------------------------------------------------------------- public API


def parse(sql: str) -> list[st.Statement]:
    """Parse a script of one or more ``;``-separated statements.

    Raises ``ParseError`` (with 1-based ``line``/``col`` and, for a misspelt keyword, a
    ``suggestion``) when any statement does not parse, or when the script holds none.
    """
    toks = _tokenize(sql)
    groups = _split(toks)
    if not groups:
        raise ParseError("Empty statement: there is nothing to run.", line=1, col=1)
    return [_statement(sql, group) for group in groups]


def parse_one(sql: str) -> st.Statement:
    """Parse exactly one statement (a trailing ``;`` is fine); anything else is a ParseError."""
    toks = _tokenize(sql)
    groups = _split(toks)
    if not groups:
        raise ParseError("Empty statement: there is nothing to run.", line=1, col=1)
    if len(groups) > 1:
        line, col = _line_col(sql, groups[1][0].start)
        raise ParseError(
            f"Expected one statement, found {len(groups)}; send them one at a time.",
            line=line,
            col=col,
        )
    return _statement(sql, groups[0])


def query_options(query: st.Query) -> dict[str, Any]:
    """The ``USING k=v, ...`` options written after a SELECT (e.g. after a prediction JOIN).

    They are not SQL, so the parser cuts them out before sqlglot sees the statement and keeps
    them in the tree's ``meta``; keys are lower-cased, values are Python values.
    """
    return dict(query.tree.meta.get(_USING_META) or {})


# ---------------------------------------------------------------------------- tokens


def _line_col(sql: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` of ``sql``."""
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    col = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, col


def _tokenize(sql: str) -> list[Token]:
    try:
        return DIALECT.tokenize(sql)
    except TokenError as e:
        # The cause says "Missing <delimiter> from <line>:<offset of the opening quote>".
        match = re.search(r"Missing (.+) from \d+:(\d+)", str(e.__cause__ or ""))
        if match:
            line, col = _line_col(sql, int(match.group(2)))
            raise ParseError(
                f"Unterminated quoted text: missing the closing {match.group(1)}.",
                line=line,
                col=col,
            ) from e
        start = e.start if e.start is not None else 0
        line, col = _line_col(sql, start)
        raise ParseError(f"Cannot read the statement: {e}", line=line, col=col) from e


def _split(toks: list[Token]) -> list[list[Token]]:
    """Token groups of the statements of a script: split on ``;`` outside brackets."""
    groups: list[list[Token]] = []
    current: list[Token] = []
    depth = 0
    for tok in toks:
        if tok.token_type in _OPENERS:
            depth += 1
        elif tok.token_type in _CLOSERS:
            depth = max(0, depth - 1)
        elif tok.token_type == TokenType.SEMICOLON and depth == 0:
            if current:
                groups.append(current)
            current = []
            continue
        current.append(tok)
    if current:
        groups.append(current)
    return groups


def _word(tok: Token | None) -> str | None:
    """The upper-cased text of an unquoted word token (keyword or name), else None."""
    if tok is None or tok.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
        return None
    return tok.text.upper() if _WORD.fullmatch(tok.text) else None


class _Cursor:
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
        return _word(self.peek(ahead)) in words

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
            raise self.unexpected(_or(words), words)
        return tok

    def expect(self, kind: TokenType, what: str) -> Token:
        tok = self.accept(kind)
        if tok is None:
            raise self.unexpected(what)
        return tok

    def expect_end(self, expected: tuple[str, ...] = ()) -> None:
        if not self.done:
            what = _or(expected) if expected else "the end of the statement"
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
        line, col = _line_col(self.sql, offset)
        return ParseError(message, line=line, col=col, suggestion=suggestion)

    def unexpected(self, expected: str, words: tuple[str, ...] = ()) -> ParseError:
        """An error at the current token naming what was expected; a near miss of one of
        ``words`` (a misspelt keyword) comes with a suggestion."""
        tok = self.peek()
        if tok is None:
            return self.error(f"Unexpected end of statement: expected {expected}.")
        found = _word(tok)
        suggestion = did_you_mean(found, words) if found and words else None
        return self.error(f"Expected {expected} but found '{tok.text}'.", tok, suggestion)


def _or(words: tuple[str, ...] | list[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


# ---------------------------------------------------------------------------- statements


def _statement(sql: str, toks: list[Token]) -> st.Statement:
    """One statement from its tokens: ours by recursive descent, the rest through sqlglot."""
    c = _Cursor(sql, toks)
    first = toks[0]
    second = _word(c.peek(1))
    kind = first.token_type
    if kind == TokenType.CREATE:
        if second in _MODEL_KINDS:
            return _create_predictor(c)
        if second == "DATABASE":
            return _create_database(c)
        _check_misspelt(c, 1, _CREATE_KINDS, "CREATE")
    elif kind == TokenType.DROP:
        if second in _MODEL_KINDS:
            return _drop_model(c)
        if second == "DATABASE":
            return _drop_database(c)
        _check_misspelt(c, 1, _DROP_KINDS, "DROP")
    elif kind == TokenType.SHOW:
        return _show(sql, toks)
    elif kind in (TokenType.DESCRIBE, TokenType.DESC):
        return _describe(c)
    if kind not in _STATEMENT_TOKENS:
        found = _word(first)
        suggestion = did_you_mean(found, _STATEMENT_WORDS) if found else None
        raise c.error(f"Unknown statement starting with '{first.text}'.", first, suggestion)
    return _query(sql, toks)


def _show(sql: str, toks: list[Token]) -> st.Statement:
    """``SHOW DATABASES|MODELS|PREDICTORS``; other SHOW statements go to sqlglot.

    SHOW is a "command" to sqlglot's tokenizer: the rest of the statement comes as one
    string token, comments included, so that text is tokenized again here.
    """
    start = toks[0].end + 1
    try:
        rest = DIALECT.tokenize(sql[start : toks[-1].end + 1])
    except TokenError:
        return _query(sql, toks)
    words = [(t.text, start + t.start) for t in rest]
    c = _Cursor(sql, toks)
    if not words:
        raise c.error_at(f"Expected {_or(_SHOW_OURS)} after SHOW.", start)
    written, offset = words[0]
    word = written.upper()
    if word in _SHOW_OURS:
        if len(words) > 1:
            raise c.error_at(f"Expected the end of the statement after SHOW {word}.", words[1][1])
        return st.ShowDatabases() if word == "DATABASES" else st.ShowModels()
    if word not in _SHOW_OTHERS:
        suggestion = did_you_mean(word, _SHOW_OURS + _SHOW_OTHERS)
        if suggestion:
            raise c.error_at(f"Unknown statement SHOW {written}.", offset, suggestion)
    return _query(sql, toks)


def _check_misspelt(c: _Cursor, ahead: int, kinds: tuple[str, ...], verb: str) -> None:
    """Reject ``VERB <near miss of a kind>`` (``CREATE PREDICTR``, ``DROP MODL``)."""
    tok = c.peek(ahead)
    found = _word(tok)
    # Keywords sqlglot knows (TABLE, VIEW, OR REPLACE, TEMPORARY ...) are left to sqlglot.
    if tok is None or found is None or tok.token_type != TokenType.VAR or found in kinds:
        return
    suggestion = did_you_mean(found, kinds)
    if suggestion:
        raise c.error(f"Unknown statement {verb} {tok.text}.", tok, suggestion)


def _name(c: _Cursor, what: str, reserved: tuple[str, ...] = _CLAUSES) -> Token:
    """A (possibly quoted) name token; clause keywords are not names unless quoted."""
    tok = c.peek()
    if tok is not None and tok.token_type == TokenType.IDENTIFIER:
        return c.next(what)
    word = _word(tok)
    if word is None or word in reserved:
        raise c.unexpected(what)
    return c.next(what)


def _model_name(c: _Cursor) -> tuple[str | None, str]:
    """``[namespace.]name`` of a model, both lower-cased."""
    first = _name(c, "a model name")
    if not c.accept(TokenType.DOT):
        return None, first.text.lower()
    name = _name(c, "a model name after the namespace")
    if c.peek() is not None and c.peek().token_type == TokenType.DOT:
        raise c.error(
            "A model name has at most two parts: [namespace.]name, e.g. mindsdb.my_model."
        )
    namespace = first.text.lower()
    if namespace not in st.MODEL_NAMESPACES:
        raise c.error(
            f"Unknown model namespace '{first.text}': use {_or(st.MODEL_NAMESPACES)} "
            "(or no namespace).",
            first,
            did_you_mean(namespace, st.MODEL_NAMESPACES),
        )
    return namespace, name.text.lower()


def _if_exists(c: _Cursor, with_not: bool) -> bool:
    """Consume ``IF [NOT] EXISTS`` when present."""
    if not (c.at_word("IF") and c.at_word("NOT" if with_not else "EXISTS", ahead=1)):
        return False
    c.pos += 1
    if with_not:
        c.expect_word("NOT")
    c.expect_word("EXISTS")
    return True


def _create_predictor(c: _Cursor) -> st.CreatePredictor:
    """``CREATE PREDICTOR|MODEL [ns.]name [FROM ...] [PREDICT col] [USING ...] [WHERE ...]``."""
    c.pos = 2
    namespace, name = _model_name(c)
    datasource: str | None = None
    query: str | None = None
    target: str | None = None
    options: dict[str, Any] = {}
    done = -1  # index in _CLAUSES of the last clause read: each comes once, in order
    while not c.done:
        tok = c.peek()
        word = _word(tok)
        if word not in _CLAUSES:
            raise c.unexpected(_or(_CLAUSES[done + 1 :]), _CLAUSES[done + 1 :])
        index = _CLAUSES.index(word)
        if index == done:
            raise c.error(f"{word} is given twice.", tok)
        if index < done:
            raise c.error(f"{word} must come before {_CLAUSES[done]}.", tok)
        done = index
        c.pos += 1
        if word == "FROM":
            datasource, query = _from_clause(c)
        elif word == "PREDICT":
            target = _name(c, "the column to predict").text
            if c.peek() is not None and c.peek().token_type == TokenType.COMMA:
                raise c.error("PREDICT takes one column.")
        elif word == "USING":
            _merge(c, options, _options(c, "USING"))
        else:
            _merge(c, options, _where_options(c))
    return st.CreatePredictor(
        name=name,
        namespace=namespace,
        datasource=datasource,
        query=query,
        target=target,
        options=options,
    )


def _from_clause(c: _Cursor) -> tuple[str | None, str]:
    """``FROM ds (query)`` or ``FROM (query) [AS alias]`` -> (datasource, query text)."""
    datasource: str | None = None
    if c.peek() is None or c.peek().token_type != TokenType.L_PAREN:
        datasource = _name(c, "a datasource name or '('").text.lower()
        if c.peek() is not None and c.peek().token_type == TokenType.DOT:
            raise c.error(
                "FROM takes a datasource and a query in parentheses: FROM mydb (SELECT ...)."
            )
    query = _paren_text(c)
    if datasource is None:
        # The MindsDB built-in form names the subquery (``AS training_data``); the name is
        # not needed for anything, so it is read and dropped.
        if c.accept(TokenType.ALIAS):
            _name(c, "an alias after AS")
        elif c.peek() is not None and _word(c.peek()) not in _CLAUSES:
            _name(c, "an alias")
    return datasource, query


def _paren_text(c: _Cursor) -> str:
    """The source text between ``(`` and its matching ``)``, stripped, verbatim otherwise."""
    opening = c.expect(TokenType.L_PAREN, "'(' and a query")
    depth = 1
    while True:
        tok = c.peek()
        if tok is None:
            raise c.error("This '(' is never closed.", opening)
        c.pos += 1
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                text = c.sql[opening.end + 1 : tok.start].strip()
                if not text:
                    raise c.error("The query in parentheses is empty.", opening)
                return text


def _merge(c: _Cursor, into: dict[str, Any], more: dict[str, tuple[Token, Any]]) -> None:
    for key, (tok, value) in more.items():
        if key in into:
            raise c.error(f"Option '{key}' is given twice.", tok)
        into[key] = value


def _option_key(c: _Cursor) -> tuple[Token, str]:
    """A possibly dotted option name (``url.predict``), lower-cased and normalised."""
    first = _name(c, "an option name", reserved=())
    parts = [first.text]
    while c.accept(TokenType.DOT):
        parts.append(_name(c, "an option name after '.'", reserved=()).text)
    key = ".".join(parts).lower()
    if key == "data_dtype":  # MindsDB's older spelling of dtype_dict
        key = "dtype_dict"
    return first, key


def _options(c: _Cursor, clause: str) -> dict[str, tuple[Token, Any]]:
    """``k = v, k = v ...`` of a USING clause; a key twice is an error."""
    out: dict[str, tuple[Token, Any]] = {}
    while True:
        tok, key = _option_key(c)
        c.expect(TokenType.EQ, f"'=' after option '{key}'")
        value = _value(c, key)
        if key in out:
            raise c.error(f"Option '{key}' is given twice in {clause}.", tok)
        out[key] = (tok, value)
        if not c.accept(TokenType.COMMA):
            return out


def _where_options(c: _Cursor) -> dict[str, tuple[Token, Any]]:
    """``WHERE k = v [AND k = v ...]`` of the built-in form (``MODEL_NAME = '...'``)."""
    out: dict[str, tuple[Token, Any]] = {}
    while True:
        tok, key = _option_key(c)
        c.expect(TokenType.EQ, f"'=' after '{tok.text}'")
        value = _value(c, key)
        if key in out:
            raise c.error(f"Option '{key}' is given twice in WHERE.", tok)
        out[key] = (tok, value)
        if not c.accept_word("AND"):
            return out


def _value(c: _Cursor, key: str) -> Any:
    """An option value: 'string', number, true/false/null, or a JSON object/array."""
    what = f"a value for '{key}' (a 'string', a number, true/false/null or JSON)"
    tok = c.peek()
    if tok is None:
        raise c.unexpected(what)
    kind = tok.token_type
    if kind == TokenType.STRING:
        c.pos += 1
        return tok.text
    if kind == TokenType.IDENTIFIER and c.sql[tok.start] == '"':
        # "..." is an identifier in SQL, but in value position nothing else is meant.
        c.pos += 1
        return tok.text
    if kind == TokenType.NUMBER:
        c.pos += 1
        return _number(tok.text)
    if kind == TokenType.DASH and c.peek(1) is not None:
        if c.peek(1).token_type == TokenType.NUMBER:
            c.pos += 2
            return -_number(c.toks[c.pos - 1].text)
    if kind in (TokenType.TRUE, TokenType.FALSE, TokenType.NULL):
        c.pos += 1
        return {TokenType.TRUE: True, TokenType.FALSE: False, TokenType.NULL: None}[kind]
    if kind in (TokenType.L_BRACE, TokenType.L_BRACKET):
        return _json(c, key)
    raise c.unexpected(what)


def _number(text: str) -> int | float:
    return int(text) if _INT.fullmatch(text) else float(text)


def _json(c: _Cursor, key: str) -> Any:
    """A JSON literal starting at the current ``{`` or ``[``, read from the source text."""
    start = c.peek().start
    try:
        value, end = json.JSONDecoder().raw_decode(c.sql, start)
    except json.JSONDecodeError as e:
        raise c.error_at(f"Invalid JSON for option '{key}': {e.msg}.", e.pos) from e
    # Step over the tokens the JSON text covered.
    while c.peek() is not None and c.peek().start < end:
        c.pos += 1
    return value


def _create_database(c: _Cursor) -> st.CreateDatabase:
    """``CREATE DATABASE [IF NOT EXISTS] name WITH ENGINE = 'x'[,] [PARAMETERS = {...}]``."""
    c.pos = 2
    if_not_exists = _if_exists(c, with_not=True)
    name = _name(c, "a database name", reserved=("WITH", "ENGINE")).text.lower()
    c.accept(TokenType.WITH)
    c.expect_word("ENGINE")
    c.accept(TokenType.EQ)
    tok = c.peek()
    if tok is not None and tok.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
        engine = c.next("an engine").text
    elif _word(tok) is not None:
        engine = c.next("an engine").text
    else:
        raise c.unexpected("an engine name such as 'sqlite' or 'postgres'")
    parameters: dict[str, Any] = {}
    comma = c.accept(TokenType.COMMA)
    if c.accept_word("PARAMETERS"):
        c.accept(TokenType.EQ)
        if c.peek() is None or c.peek().token_type != TokenType.L_BRACE:
            raise c.unexpected('a JSON object such as {"path": "/data/my.db"}')
        parameters = _json(c, "PARAMETERS")
    elif comma:
        raise c.unexpected("PARAMETERS", ("PARAMETERS",))
    c.expect_end(() if parameters or comma else ("PARAMETERS",))
    return st.CreateDatabase(
        name=name, engine=engine.lower(), parameters=parameters, if_not_exists=if_not_exists
    )


def _drop_database(c: _Cursor) -> st.DropDatabase:
    c.pos = 2
    if_exists = _if_exists(c, with_not=False)
    name = _name(c, "a database name").text.lower()
    c.expect_end()
    return st.DropDatabase(name=name, if_exists=if_exists)


def _drop_model(c: _Cursor) -> st.DropModel:
    c.pos = 2
    if_exists = _if_exists(c, with_not=False)
    namespace, name = _model_name(c)
    c.expect_end()
    return st.DropModel(name=name, namespace=namespace, if_exists=if_exists)


def _describe(c: _Cursor) -> st.Describe:
    """``DESCRIBE|DESC [MODEL|PREDICTOR] [ns.]name``."""
    c.pos = 1
    # ``DESCRIBE model`` names a model called "model"; ``DESCRIBE model.x`` a namespace.
    nxt = c.peek(1)
    if c.at_word(*_MODEL_KINDS) and nxt is not None and nxt.token_type != TokenType.DOT:
        c.pos += 1
    namespace, name = _model_name(c)
    c.expect_end()
    return st.Describe(name=name, namespace=namespace)


# ---------------------------------------------------------------------------- plain SQL


def _query(sql: str, toks: list[Token]) -> st.Query:
    """Any other statement, parsed by sqlglot from the same tokens."""
    text = sql[toks[0].start : toks[-1].end + 1]
    toks, using = _cut_using(sql, toks)
    try:
        trees = DIALECT.parser().parse(toks, sql)
    except SqlglotParseError as e:
        raise _from_sqlglot(sql, toks, e) from e
    tree = trees[0] if len(trees) == 1 else None
    if not isinstance(tree, exp.Expression):
        raise _Cursor(sql, toks).error("Cannot read this statement.", toks[0])
    if using:
        tree.meta[_USING_META] = using
    return st.Query(tree=tree, sql=text)


def _cut_using(sql: str, toks: list[Token]) -> tuple[list[Token], dict[str, Any]]:
    """Cut a MindsDB-style ``USING k = v, ...`` (not SQL's ``JOIN ... USING (cols)``) out of
    the statement's tokens, returning the remaining tokens and the options."""
    depth = 0
    for i, tok in enumerate(toks):
        if tok.token_type in _OPENERS:
            depth += 1
        elif tok.token_type in _CLOSERS:
            depth -= 1
        elif depth == 0 and tok.token_type == TokenType.USING:
            after = toks[i + 2] if i + 2 < len(toks) else None
            if _word(toks[i + 1] if i + 1 < len(toks) else None) is None or after is None:
                continue
            if after.token_type not in (TokenType.EQ, TokenType.DOT):
                continue
            c = _Cursor(sql, toks, i + 1)
            options = {k: v for k, (_, v) in _options(c, "USING").items()}
            return toks[:i] + toks[c.pos :], options
    return toks, {}


def _from_sqlglot(sql: str, toks: list[Token], e: SqlglotParseError) -> ParseError:
    """Our ParseError for sqlglot's, at the token sqlglot stopped on; a misspelt keyword
    just before it (``SELECT * FORM t``: FORM became an alias, t is unexpected) is named."""
    info = e.errors[0] if e.errors else {}
    line, col = info.get("line"), info.get("col")
    # sqlglot reports the line and the *last* column of the offending token.
    index = next((i for i, t in enumerate(toks) if t.line == line and t.col == col), len(toks) - 1)
    c = _Cursor(sql, toks)
    for j in range(index, max(index - 3, -1), -1):
        word = _word(toks[j])
        if word is None or len(word) < 3 or word in _SQL_KEYWORDS:
            continue
        near = [k for k in _SQL_KEYWORDS if abs(len(k) - len(word)) <= 1]
        suggestion = did_you_mean(word, near)
        if suggestion:
            return c.error(f"Unexpected '{toks[j].text}'.", toks[j], suggestion)
    description = _tidy(info.get("description") or str(e))
    tok = toks[index] if toks else None
    near_text = f" near '{tok.text}'" if tok is not None else ""
    return c.error(f"{description}{near_text}.", tok)


def _tidy(message: str) -> str:
    """sqlglot's messages without Python reprs (``<class '...Where'>``, ``<Token ...>``)."""
    message = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", message)
    message = re.sub(r"<Token [^>]*SENTINEL[^>]*>", "the end of the statement", message)
    return re.sub(r"<Token [^>]*text: ([^,]*),[^>]*>", r"'\1'", message)
