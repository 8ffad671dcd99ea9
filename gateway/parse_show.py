"""The SHOW statements:

    SHOW [FULL] DATABASES|SCHEMAS               datasources (FULL: and projects)
    SHOW [FULL] TABLES [FROM|IN ds|project]     a datasource's tables (a project's models)
    SHOW MODELS|PREDICTORS [FROM|IN project]
    SHOW PROJECTS
    SHOW ENGINES|HANDLERS                       datasource engines and model formats

each followed by ``[LIKE 'pattern'] [WHERE condition]``; ``SHOW TABLES FROM
ML_SCHEMA_<user>`` is MySQL HeatWave's model catalog (``parse_heatwave.show_tables``).
MySQL's other SHOW statements (``SHOW COLUMNS``, ``SHOW VARIABLES`` ...) are refused by
name (UNSUPPORTED_STATEMENT); any other ``SHOW x`` is plain SQL for the datasource
(PostgreSQL's ``SHOW search_path``).

To sqlglot's tokenizer SHOW is a "command": the rest of the statement comes as one string
token, so that text is tokenized again here, its positions moved back into the script.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from byom.errors import UnsupportedStatement
from gateway import parse_heatwave
from gateway import statements as st
from gateway.parse_foreign import heatwave_schema
from gateway.parse_query import query, tidy
from gateway.parse_tokens import DIALECT, Cursor, line_col, name, near_miss, or_words, word

OURS = ("DATABASES", "TABLES", "MODELS", "PREDICTORS", "PROJECTS", "ENGINES", "HANDLERS")
# MySQL's synonyms (SQLAlchemy's MySQL dialect lists schemas with SHOW SCHEMAS).
SYNONYMS = {"SCHEMAS": "DATABASES"}
# MySQL's (and MindsDB's) other SHOW statements: known, and refused by name.
OTHERS = (
    "COLUMNS", "FIELDS", "VIEWS", "TABLE STATUS", "INDEX", "INDEXES", "KEYS", "VARIABLES",
    "STATUS", "CREATE", "WARNINGS", "ERRORS", "TRIGGERS", "PROCESSLIST", "GRANTS",
    "PLUGINS", "PRIVILEGES", "EVENTS", "COLLATION", "CHARACTER", "CHARSET", "FUNCTION",
    "PROCEDURE", "ML_ENGINES", "JOBS", "AGENTS", "SKILLS", "CHATBOTS", "KNOWLEDGE_BASES",
)  # fmt: skip
_FULL = ("TABLES", "DATABASES")
_FROM = ("TABLES", "MODELS", "PREDICTORS")
SUPPORTED = (
    "SHOW [FULL] DATABASES, SHOW [FULL] TABLES [FROM ds], SHOW MODELS [FROM project], "
    "SHOW PROJECTS and SHOW ENGINES"
)


def show(sql: str, toks: list[Token]) -> st.Statement:
    """A SHOW statement from its tokens (``SHOW`` and the rest as one string token)."""
    start = toks[0].end + 1
    text = sql[start : toks[-1].end + 1]
    try:
        rest = DIALECT.tokenize(text)
    except TokenError:
        return query(sql, toks)
    c = Cursor(sql, [_moved(sql, t, start) for t in rest])
    if c.done:
        raise c.error_at(f"Expected {or_words(OURS)} after SHOW.", start)
    full = c.accept_word("FULL")
    tok = c.peek()
    kind = word(tok)
    kind = SYNONYMS.get(kind, kind) if kind is not None else None
    if tok is None or kind is None:
        raise c.unexpected(or_words(_FULL if full else OURS))
    after = word(c.peek(1))
    if kind == "TABLE" and after == "STATUS":  # MySQL's; a bare SHOW TABLE is a typo
        kind = "TABLE STATUS"
    if kind in OTHERS:
        shown = f"SHOW {'FULL ' if full else ''}{kind}"
        if kind == "CREATE" and after is not None:  # SHOW CREATE TABLE, VIEW, ...
            shown += f" {after}"
        raise UnsupportedStatement(f"{shown} is not supported; the gateway answers {SUPPORTED}.")
    if kind not in OURS:
        suggestion = near_miss(kind, _FULL if full else OURS + OTHERS)
        if suggestion or full:
            shown = f"SHOW {'FULL ' if full else ''}{tok.text}"
            raise c.error(f"Unknown statement {shown}.", tok, suggestion)
        return query(sql, toks)  # plain SQL for the datasource (PostgreSQL's SHOW x)
    if full and kind not in _FULL:
        raise c.error(f"SHOW FULL takes {or_words(_FULL)}, not {kind}.", tok)
    c.pos += 1
    source = _from(c) if kind in _FROM else None
    like = _like(c)
    where = _where(c, rest)
    if not c.done:
        expected = ("LIKE", "WHERE")
        if kind in _FROM and source is None:
            expected = ("FROM", *expected)
        raise c.unexpected(or_words([*expected, "the end of the statement"]), expected)
    if source is not None and parse_heatwave.is_ml_schema(source):
        if kind == "TABLES":
            return parse_heatwave.show_tables(source, bool(full), like, where)
        refusal = heatwave_schema(source)
        assert refusal is not None
        raise refusal
    source = source.lower() if source is not None else None
    if kind == "TABLES":
        return st.ShowTables(source=source, full=bool(full), like=like, where=where)
    if kind == "DATABASES":
        return st.ShowDatabases(full=bool(full), like=like, where=where)
    if kind in ("MODELS", "PREDICTORS"):
        return st.ShowModels(project=source, like=like, where=where)
    if kind == "PROJECTS":
        return st.ShowProjects(like=like, where=where)
    return st.ShowEngines(like=like, where=where)


def _moved(sql: str, tok: Token, offset: int) -> Token:
    """``tok`` (of text that starts at ``offset`` in ``sql``) with its place in ``sql``."""
    line, col = line_col(sql, tok.start + offset)
    return Token(tok.token_type, tok.text, line, col, tok.start + offset, tok.end + offset)


def _from(c: Cursor) -> str | None:
    """``FROM|IN name`` (one part, as written) when present."""
    if not (c.accept(TokenType.FROM) or c.accept(TokenType.IN)):
        return None
    tok = name(c, "a datasource or project name after FROM", reserved=("LIKE", "WHERE"))
    if c.peek() is not None and c.peek().token_type == TokenType.DOT:
        raise c.error("SHOW ... FROM takes one name: a datasource or a project.")
    return tok.text


def _like(c: Cursor) -> str | None:
    if not c.accept(TokenType.LIKE):
        return None
    tok = c.peek()
    if tok is None or tok.token_type != TokenType.STRING:
        raise c.unexpected("a 'pattern' after LIKE, such as 'sales%'")
    c.pos += 1
    return tok.text


def _where(c: Cursor, rest: list[Token]) -> str | None:
    """``WHERE condition`` to the end of the statement, as SQLite SQL."""
    if not c.accept(TokenType.WHERE):
        return None
    if c.done:
        raise c.error("Expected a condition after WHERE.")
    first = c.pos
    c.pos = len(c.toks)
    try:
        trees = DIALECT.parser().parse_into(exp.Condition, rest[first:], c.sql)
    except SqlglotParseError as e:
        info = e.errors[0] if e.errors else {}
        at = next(
            (
                c.toks[i]
                for i in range(first, len(rest))
                if (rest[i].line, rest[i].col) == (info.get("line"), info.get("col"))
            ),
            c.toks[first],
        )
        description = tidy(info.get("description") or "cannot read it").rstrip(".")
        raise c.error(f"Cannot read the condition after WHERE: {description}.", at) from e
    if len(trees) != 1 or trees[0] is None:
        raise c.error("Expected one condition after WHERE.", c.toks[first])
    return trees[0].sql(dialect="sqlite")


__all__ = ["OTHERS", "OURS", "SUPPORTED", "show"]
