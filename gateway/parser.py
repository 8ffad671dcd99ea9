"""SQL text -> statements (``gateway.statements``); nothing else.

The gateway's own statements (``CREATE [OR REPLACE] MODEL|PREDICTOR``, ``DROP MODEL``,
``DESCRIBE``, ``RETRAIN``, ``EVALUATE``, ``CANCEL TRAINING``, ``CREATE/DROP DATABASE``,
``CREATE/DROP PROJECT``, ``USE``, the ``SHOW`` statements) are read by a small
recursive-descent parser over sqlglot tokens; everything else is handed to sqlglot and comes
back as a ``Query`` holding its tree. One tokenizer (the ``Byom`` dialect) serves both, so
positions in errors are always 1-based line/col in the script the user sent. MySQL
HeatWave's recommendation forms (``SET @var``, ``CALL sys.ML_TRAIN(...)``, ``SELECT
sys.ML_PREDICT_ROW(...)``, ``ML_SCHEMA_<user>``) are read by ``parse_heatwave`` and
PostgresML's (``SELECT pgml.tune|predict|predict_proba|generate(...)``) by
``parse_postgresml``, both translated into the gateway's own statements once the session
is known; other products' forms (``pgml.train(...)``, any other ``CALL``) are refused by
name while parsing (UNSUPPORTED_STATEMENT).

This module is the public API and the statement dispatch; the pieces live next to it:
``parse_tokens`` (dialect, cursor, positions), ``parse_options`` (``USING``/``WHERE``
options and their values), ``parse_models`` (model statements), ``parse_builtin``
(RETRAIN, EVALUATE, CANCEL TRAINING), ``parse_ddl`` (datasources, projects, USE),
``parse_show`` (SHOW), ``parse_heatwave`` (MySQL HeatWave's forms), ``parse_postgresml``
(PostgresML's), ``parse_foreign`` (other products' forms), ``parse_query`` (plain SQL
through sqlglot) and ``parse_split`` (where the statements of a script end, with sqlparse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot.parser import Parser
from sqlglot.tokens import Token, TokenType

from byom.errors import ParseError, TooLarge, UserError, did_you_mean
from gateway import (
    parse_builtin,
    parse_ddl,
    parse_foreign,
    parse_heatwave,
    parse_models,
    parse_postgresml,
)
from gateway import statements as st
from gateway.parse_query import USING_META
from gateway.parse_query import query as _query
from gateway.parse_show import show as _show
from gateway.parse_split import split as _split
from gateway.parse_tokens import DIALECT, KNOWN_WORDS, MAX_IDENTIFIER, Byom
from gateway.parse_tokens import Cursor as _Cursor
from gateway.parse_tokens import check_identifier as _check_identifier
from gateway.parse_tokens import line_col as _line_col
from gateway.parse_tokens import near_miss as _near_miss
from gateway.parse_tokens import tokenize as _tokenize
from gateway.parse_tokens import word as _word

__all__ = [
    "DIALECT",
    "MAX_IDENTIFIER",
    "Byom",
    "ParseLimits",
    "ScriptStatement",
    "parse",
    "parse_one",
    "parse_script",
    "query_options",
    "statement_count",
]

_MODEL_KINDS = parse_models.MODEL_KINDS

# Words that may follow CREATE / DROP; a misspelling of one of them is reported with a
# suggestion (``parse_tokens.near_miss``) instead of being passed on to sqlglot (which would
# make a Command of it for the datasource to choke on).
_CREATE_KINDS = (
    "PREDICTOR", "MODEL", "DATABASE", "PROJECT", "TABLE", "VIEW", "INDEX", "SCHEMA",
)  # fmt: skip
_DROP_KINDS = _CREATE_KINDS
# The built-in models' statements after CREATE, by their first word (never a word of SQL).
_BUILTIN = {
    "RETRAIN": parse_builtin.retrain,
    "EVALUATE": parse_builtin.evaluate,
    "CANCEL": parse_builtin.cancel_training,
}
_STATEMENT_WORDS = (
    "SELECT", "WITH", "VALUES", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER",
    "SHOW", "DESCRIBE", "DESC", "USE", "SET", "TRUNCATE", "EXPLAIN", "MERGE", "CALL",
    *_BUILTIN,
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


#: The deepest nesting of parentheses a statement may have (sqlglot's recursive descent
#: reaches Python's recursion limit at about 45 levels; later stages recurse too).
MAX_NESTING = 32


@dataclass(frozen=True)
class ParseLimits:
    """How much SQL one script may hold (``BYOM_MAX_STATEMENT_BYTES``, ``BYOM_MAX_STATEMENTS``):
    parsing costs CPU in proportion, so an oversized script is refused before it is parsed."""

    max_statement_bytes: int = 1024 * 1024
    max_statements: int = 10_000


DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True)
class ScriptStatement:
    """One statement of a script: its 1-based ``index``, its text as written (``sql``,
    without the ``;`` and the comments around it), the ``line`` it starts on in the
    script, and the parsed ``statement``."""

    index: int
    sql: str
    line: int
    statement: st.Statement


def parse_script(sql: str, limits: ParseLimits = DEFAULT_LIMITS) -> list[ScriptStatement]:
    """Parse a script of one or more ``;``-separated statements, all of them before any runs.

    Raises ``ParseError`` (with 1-based ``line``/``col`` in the whole script and, for a
    misspelt keyword, a ``suggestion``) when any statement does not parse, or when the script
    holds none; ``UnsupportedStatement`` when one is another product's form that does not
    translate (``pgml.train``, ``CALL sys.ML_EXPLAIN``) or a SHOW the gateway knows but
    does not answer. In a
    script of several statements the message starts with ``Statement k:`` and the error's
    details carry ``statement: k`` (and, when it is not a ParseError, ``done: []``: nothing
    ran). A statement over ``limits.max_statement_bytes`` or a script of more than
    ``limits.max_statements`` statements is ``TooLarge`` (413), found before parsing.
    """
    groups = _script_groups(sql, limits)
    several = len(groups) > 1
    out: list[ScriptStatement] = []
    line, counted = 1, 0  # counted as we go: line_col per statement would be quadratic
    for index, group in enumerate(groups, start=1):
        try:
            statement = _statement(sql, group)
        except UserError as e:  # a ParseError, or another product's form refused by name
            raise (_in_statement(e, index) if several else e) from e.__cause__
        text = sql[group[0].start : group[-1].end + 1].strip()
        line += sql.count("\n", counted, group[0].start)
        counted = group[0].start
        out.append(ScriptStatement(index, text, line, statement))
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


def _script_groups(sql: str, limits: ParseLimits = DEFAULT_LIMITS) -> list[list[Token]]:
    """The token groups of the statements of ``sql``; none is a ParseError, too many or too
    large ones ``TooLarge``."""
    _check_raw_size(sql, limits.max_statement_bytes)
    try:
        toks = _tokenize(sql)
    except ParseError as e:
        index = _statement_at(sql, e)
        raise (_in_statement(e, index) if index > 1 else e) from e.__cause__
    # Before splitting (sqlparse reads every statement): a ';' too many is refused now.
    separators = sum(1 for tok in toks if tok.token_type == TokenType.SEMICOLON)
    if separators > limits.max_statements:
        _too_many(limits.max_statements, separators, "';'-separated ")
    groups = _split(sql, toks)
    if not groups:
        raise ParseError("Empty statement: there is nothing to run.", line=1, col=1)
    if len(groups) > limits.max_statements:
        _too_many(limits.max_statements, len(groups))
    if len(sql) > limits.max_statement_bytes // 4:  # else no statement can be over (UTF-8)
        for index, group in enumerate(groups, start=1):
            size = len(sql[group[0].start : group[-1].end + 1].encode())
            if size > limits.max_statement_bytes:
                _too_large(limits.max_statement_bytes, size, index if len(groups) > 1 else None)
    return groups


def _check_raw_size(sql: str, limit: int) -> None:
    """Refuse at once, before tokenizing, a script with a run of text between two ';' over
    ``limit`` bytes: the statement holding it can only be longer."""
    if len(sql) <= limit // 4:  # a character is at most 4 bytes in UTF-8
        return
    for piece in sql.split(";"):
        if len(piece) > limit // 4 and len(piece.encode()) > limit:
            _too_large(limit, len(piece.encode()), None, at_least=True)


def _too_large(limit: int, size: int, index: int | None, *, at_least: bool = False) -> None:
    where = f"Statement {index} is" if index is not None else "The statement is"
    raise TooLarge(
        f"{where} {'at least ' if at_least else ''}{size} bytes of SQL; the gateway accepts at "
        f"most {limit} bytes a statement (BYOM_MAX_STATEMENT_BYTES): split it, or pass large "
        "data through a datasource table instead of literals.",
        code="STATEMENT_TOO_LARGE",
        limit=limit,
        statement=index,
    )


def _too_many(limit: int, found: int, kind: str = "") -> None:
    raise TooLarge(
        f"The script holds {found} {kind}statements; the gateway runs at most {limit} in "
        "one script (BYOM_MAX_STATEMENTS): send it in several parts.",
        code="TOO_MANY_STATEMENTS",
        limit=limit,
    )


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


def _in_statement(error: UserError, index: int) -> UserError:
    """``error`` as the error of statement ``index`` of a script."""
    error.amend(before=f"Statement {index}: ")
    error.details["statement"] = index
    if not isinstance(error, ParseError):
        error.details["done"] = []  # the script is refused before any statement runs
    return error


# ---------------------------------------------------------------------------- statements


def _statement(sql: str, toks: list[Token]) -> st.Statement:
    """One statement from its tokens, refused as a ParseError when it nests deeper than the
    parsers' recursion can follow (sqlglot takes ~20 Python frames a level of parentheses:
    a few thousand ``(`` were a RecursionError, answered 500)."""
    _check_nesting(sql, toks)
    try:
        return _parse_statement(sql, toks)
    except RecursionError as exc:  # a deep structure without parentheses
        line, col = _line_col(sql, toks[0].start)
        raise ParseError(
            "The statement is nested too deeply to parse; split it into simpler statements.",
            line=line,
            col=col,
        ) from exc


def _check_nesting(sql: str, toks: list[Token]) -> None:
    """Nesting too deep, or a name too long (a ParseError at it); one pass over the tokens.

    Names are unquoted words and backquoted names here; a name in "double quotes" is checked
    where the gateway's own statements read names (``parse_tokens.name``): elsewhere the
    same quotes may hold a value (``USING x = "..."``, JSON)."""
    depth = 0
    for tok in toks:
        kind = tok.token_type
        if len(tok.text) > MAX_IDENTIFIER and (
            kind == TokenType.VAR or (kind == TokenType.IDENTIFIER and sql[tok.start] == "`")
        ):
            _check_identifier(sql, tok)
        if kind == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_NESTING:
                line, col = _line_col(sql, tok.start)
                raise ParseError(
                    f"Parentheses nest more than {MAX_NESTING} levels deep here; the gateway "
                    f"parses at most {MAX_NESTING}: simplify the expression or split the "
                    "statement.",
                    line=line,
                    col=col,
                )
        elif kind == TokenType.R_PAREN:
            depth -= 1


def _parse_statement(sql: str, toks: list[Token]) -> st.Statement:
    """One statement from its tokens: ours by recursive descent, the rest through sqlglot."""
    c = _Cursor(sql, toks)
    first = toks[0]
    second = _word(c.peek(1))
    kind = first.token_type
    if kind == TokenType.CREATE:
        if second in _MODEL_KINDS:
            c.pos = 1
            return parse_models.create_predictor(c, or_replace=False)
        if second == "OR" and c.at_word("REPLACE", ahead=2) and c.at_word(*_MODEL_KINDS, ahead=3):
            c.pos = 3
            return parse_models.create_predictor(c, or_replace=True)
        if second == "DATABASE":
            return parse_ddl.create_database(c)
        if second == "PROJECT":
            return parse_ddl.create_project(c)
        _check_misspelt(c, 1, _CREATE_KINDS, "CREATE")
    elif kind == TokenType.DROP:
        if second in _MODEL_KINDS:
            return parse_models.drop_model(c)
        if second == "DATABASE":
            return parse_ddl.drop_database(c)
        if second == "PROJECT":
            return parse_ddl.drop_project(c)
        _check_misspelt(c, 1, _DROP_KINDS, "DROP")
    elif kind == TokenType.SHOW:
        return _show(sql, toks)
    elif kind in (TokenType.DESCRIBE, TokenType.DESC):
        return parse_models.describe(c)
    elif kind == TokenType.USE:
        return parse_ddl.use(c)
    elif kind == TokenType.VAR and first.text.upper() in _BUILTIN:
        return _BUILTIN[first.text.upper()](c)
    elif kind == TokenType.COMMAND and first.text.upper() == "CALL":
        return parse_heatwave.call(sql, toks)  # HeatWave's routines; other procedures refused
    elif kind == TokenType.SET and parse_heatwave.is_set_variables(toks):
        return parse_heatwave.set_variables(c)
    elif kind == TokenType.SELECT and parse_heatwave.is_predict_row(toks):
        return parse_heatwave.predict_row(c)
    if kind not in _STATEMENT_TOKENS:
        found = _word(first)
        suggestion = did_you_mean(found, _STATEMENT_WORDS) if found else None
        raise c.error(f"Unknown statement starting with '{first.text}'.", first, suggestion)
    if parse_postgresml.is_pgml(toks):
        return parse_postgresml.statement(sql, toks)  # pgml.tune, pgml.predict, ...
    parse_foreign.check(toks)
    toks = parse_heatwave.fix_tokens(toks)
    return parse_heatwave.rewrite_query(_query(sql, toks), toks)


def _check_misspelt(c: _Cursor, ahead: int, kinds: tuple[str, ...], verb: str) -> None:
    """Reject ``VERB <near miss of a kind>`` (``CREATE PREDICTR``, ``DROP MODL``) and
    ``VERB <keyword of another statement>`` (``CREATE TABLES``): suggestions come only from
    the words that may follow VERB, and a keyword is never turned into another word."""
    tok = c.peek(ahead)
    found = _word(tok)
    # Keywords sqlglot knows (TABLE, VIEW, OR REPLACE, TEMPORARY ...) are left to sqlglot.
    if tok is None or found is None or tok.token_type != TokenType.VAR or found in kinds:
        return
    suggestion = _near_miss(found, kinds)
    if suggestion or found in KNOWN_WORDS:
        raise c.error(f"Unknown statement {verb} {tok.text}.", tok, suggestion)
