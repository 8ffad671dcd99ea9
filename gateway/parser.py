"""SQL text -> statements (``gateway.statements``); nothing else.

The gateway's own statements (``CREATE PREDICTOR|MODEL``, ``CREATE/DROP DATABASE``,
``DROP MODEL``, ``SHOW MODELS|DATABASES``, ``DESCRIBE``) are read by a small
recursive-descent parser over sqlglot tokens; everything else is handed to sqlglot and comes
back as a ``Query`` holding its tree. One tokenizer (the ``Byom`` dialect) serves both, so
positions in errors are always 1-based line/col in the script the user sent.

This module is the public API and the statement dispatch; the pieces live next to it:
``parse_tokens`` (dialect, cursor, positions), ``parse_options`` (``USING``/``WHERE``
options and their values), ``parse_query`` (plain SQL through sqlglot) and ``parse_split``
(where the statements of a script end, with sqlparse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot.errors import TokenError
from sqlglot.parser import Parser
from sqlglot.tokens import Token, TokenType

from byom.errors import ParseError, did_you_mean
from gateway import statements as st
from gateway.parse_options import json_value as _json
from gateway.parse_options import merge as _merge
from gateway.parse_options import options as _options
from gateway.parse_options import where_options as _where_options
from gateway.parse_query import USING_META
from gateway.parse_query import query as _query
from gateway.parse_split import split as _split
from gateway.parse_tokens import CLAUSES as _CLAUSES
from gateway.parse_tokens import DIALECT, Byom
from gateway.parse_tokens import Cursor as _Cursor
from gateway.parse_tokens import line_col as _line_col
from gateway.parse_tokens import name as _name
from gateway.parse_tokens import or_words as _or
from gateway.parse_tokens import tokenize as _tokenize
from gateway.parse_tokens import word as _word

__all__ = [
    "DIALECT",
    "Byom",
    "ScriptStatement",
    "parse",
    "parse_one",
    "parse_script",
    "query_options",
    "statement_count",
]

_MODEL_KINDS = ("MODEL", "PREDICTOR")

# Words that may follow CREATE / DROP / SHOW; a misspelling of one of them is reported
# with a suggestion instead of being passed on to sqlglot (which would make a Command of it).
_CREATE_KINDS = ("PREDICTOR", "MODEL", "DATABASE", "TABLE", "VIEW", "INDEX", "SCHEMA")
_DROP_KINDS = ("PREDICTOR", "MODEL", "DATABASE", "TABLE", "VIEW", "INDEX", "SCHEMA")
_SHOW_OURS = ("DATABASES", "MODELS", "PREDICTORS")
_SHOW_OTHERS = (
    "TABLES", "FULL", "COLUMNS", "SCHEMAS", "VIEWS", "INDEX", "INDEXES", "VARIABLES",
    "STATUS", "CREATE", "ENGINES", "WARNINGS", "ERRORS",
)  # fmt: skip
_STATEMENT_WORDS = (
    "SELECT", "WITH", "VALUES", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER",
    "SHOW", "DESCRIBE", "DESC", "USE", "SET", "TRUNCATE", "EXPLAIN", "MERGE",
)  # fmt: skip
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


# ---------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class ScriptStatement:
    """One statement of a script: its 1-based ``index``, its text as written (``sql``,
    without the ``;`` and the comments around it), the ``line`` it starts on in the
    script, and the parsed ``statement``."""

    index: int
    sql: str
    line: int
    statement: st.Statement


def parse_script(sql: str) -> list[ScriptStatement]:
    """Parse a script of one or more ``;``-separated statements, all of them before any runs.

    Raises ``ParseError`` (with 1-based ``line``/``col`` in the whole script and, for a
    misspelt keyword, a ``suggestion``) when any statement does not parse, or when the script
    holds none. In a script of several statements the message starts with ``Statement k:``
    and the error's details carry ``statement: k``.
    """
    groups = _script_groups(sql)
    several = len(groups) > 1
    out: list[ScriptStatement] = []
    for index, group in enumerate(groups, start=1):
        try:
            statement = _statement(sql, group)
        except ParseError as e:
            raise (_in_statement(e, index) if several else e) from e.__cause__
        text = sql[group[0].start : group[-1].end + 1].strip()
        out.append(ScriptStatement(index, text, _line_col(sql, group[0].start)[0], statement))
    return out


def parse(sql: str) -> list[st.Statement]:
    """The statements of a script (``parse_script`` without the positions)."""
    return [item.statement for item in parse_script(sql)]


def parse_one(sql: str) -> st.Statement:
    """Parse exactly one statement (a trailing ``;`` is fine); anything else is a ParseError."""
    groups = _script_groups(sql)
    if len(groups) > 1:
        line, col = _line_col(sql, groups[1][0].start)
        raise ParseError(
            f"Expected one statement, found {len(groups)}; send them one at a time.",
            line=line,
            col=col,
        )
    return _statement(sql, groups[0])


def statement_count(sql: str) -> int:
    """How many statements ``parse_script`` would find, without parsing them (0 when the
    script cannot even be tokenized: parsing it reports why)."""
    try:
        return len(_split(sql, _tokenize(sql)))
    except ParseError:
        return 0


def query_options(query: st.Query) -> dict[str, Any]:
    """The ``USING k=v, ...`` options written after a SELECT (e.g. after a prediction JOIN).

    They are not SQL, so the parser cuts them out before sqlglot sees the statement and keeps
    them in the tree's ``meta``; keys are lower-cased, values are Python values.
    """
    return dict(query.tree.meta.get(USING_META) or {})


def _script_groups(sql: str) -> list[list[Token]]:
    """The token groups of the statements of ``sql``; none is a ParseError."""
    try:
        toks = _tokenize(sql)
    except ParseError as e:
        index = _statement_at(sql, e)
        raise (_in_statement(e, index) if index > 1 else e) from e.__cause__
    groups = _split(sql, toks)
    if not groups:
        raise ParseError("Empty statement: there is nothing to run.", line=1, col=1)
    return groups


def _statement_at(sql: str, error: ParseError) -> int:
    """Which statement an error of the tokenizer (an unclosed quote) is in: the statements
    before it are counted in the text before it."""
    if error.line is None or error.col is None:
        return 1
    lines = sql.split("\n")
    offset = sum(len(line) + 1 for line in lines[: error.line - 1]) + error.col - 1
    try:
        toks = _tokenize(sql[:offset])
    except ParseError:
        return 1
    before = len(_split(sql[:offset], toks))
    ended = bool(toks) and toks[-1].token_type == TokenType.SEMICOLON
    return before + 1 if ended or not before else before


def _in_statement(error: ParseError, index: int) -> ParseError:
    """``error`` as the error of statement ``index`` of a script."""
    error.message = f"Statement {index}: {error.message}"
    error.args = (error.message,)
    error.details["statement"] = index
    return error


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
