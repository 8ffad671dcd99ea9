"""Datasource and project statements: ``CREATE/DROP DATABASE``, ``CREATE/DROP PROJECT`` and
``USE``."""

from __future__ import annotations

from typing import Any

from sqlglot.tokens import TokenType

from gateway import statements as st
from gateway.parse_options import json_value
from gateway.parse_tokens import Cursor, if_exists, name, word


def create_database(c: Cursor) -> st.CreateDatabase:
    """``CREATE DATABASE [IF NOT EXISTS] name WITH ENGINE = 'x'[,] [PARAMETERS = {...}]``."""
    c.pos = 2
    if_not_exists = if_exists(c, with_not=True)
    db = name(c, "a database name", reserved=("WITH", "ENGINE")).text.lower()
    c.accept(TokenType.WITH)
    c.expect_word("ENGINE")
    c.accept(TokenType.EQ)
    tok = c.peek()
    if tok is not None and tok.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
        engine = c.next("an engine").text
    elif word(tok) is not None:
        engine = c.next("an engine").text
    else:
        raise c.unexpected("an engine name such as 'sqlite' or 'postgres'")
    parameters: dict[str, Any] = {}
    comma = c.accept(TokenType.COMMA)
    if c.accept_word("PARAMETERS"):
        c.accept(TokenType.EQ)
        if c.peek() is None or c.peek().token_type != TokenType.L_BRACE:
            raise c.unexpected('a JSON object such as {"path": "/data/my.db"}')
        parameters = json_value(c, "PARAMETERS")
    elif comma:
        raise c.unexpected("PARAMETERS", ("PARAMETERS",))
    c.expect_end(() if parameters or comma else ("PARAMETERS",))
    return st.CreateDatabase(
        name=db, engine=engine.lower(), parameters=parameters, if_not_exists=if_not_exists
    )


def drop_database(c: Cursor) -> st.DropDatabase:
    c.pos = 2
    exists = if_exists(c, with_not=False)
    db = name(c, "a database name").text.lower()
    c.expect_end()
    return st.DropDatabase(name=db, if_exists=exists)


def create_project(c: Cursor) -> st.CreateProject:
    """``CREATE PROJECT [IF NOT EXISTS] name``."""
    c.pos = 2
    if_not_exists = if_exists(c, with_not=True)
    project = _one_part(c, "a project name")
    return st.CreateProject(name=project, if_not_exists=if_not_exists)


def drop_project(c: Cursor) -> st.DropProject:
    """``DROP PROJECT [IF EXISTS] name``."""
    c.pos = 2
    exists = if_exists(c, with_not=False)
    project = _one_part(c, "a project name")
    return st.DropProject(name=project, if_exists=exists)


def use(c: Cursor) -> st.Use:
    """``USE name`` (a datasource or a project)."""
    c.pos = 1
    return st.Use(name=_one_part(c, "a datasource or project name"))


def _one_part(c: Cursor, what: str) -> str:
    """A name of one part (lower-cased), then the end of the statement."""
    found = name(c, what, reserved=()).text.lower()
    if c.peek() is not None and c.peek().token_type == TokenType.DOT:
        raise c.error(f"Expected {what} of one part, without '.'.")
    c.expect_end()
    return found
