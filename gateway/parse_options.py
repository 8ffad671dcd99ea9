"""Readers of option lists and their values: ``USING k = v, ...``, the built-in form's
``WHERE k = v AND ...`` and ``PARAMETERS = {...}`` (strings, numbers, booleans, JSON)."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlglot.tokens import Token, TokenType

from gateway.parse_tokens import Cursor, name

_INT = re.compile(r"\d+")


def merge(c: Cursor, into: dict[str, Any], more: dict[str, tuple[Token, Any]]) -> None:
    """Add options read by ``options``/``where_options``; a key given before is an error."""
    for key, (tok, value) in more.items():
        if key in into:
            raise c.error(f"Option '{key}' is given twice.", tok)
        into[key] = value


def option_key(c: Cursor) -> tuple[Token, str]:
    """A possibly dotted option name (``url.predict``), lower-cased and normalised."""
    first = name(c, "an option name", reserved=())
    parts = [first.text]
    while c.accept(TokenType.DOT):
        parts.append(name(c, "an option name after '.'", reserved=()).text)
    key = ".".join(parts).lower()
    if key == "data_dtype":  # MindsDB's older spelling of dtype_dict
        key = "dtype_dict"
    return first, key


def options(c: Cursor, clause: str) -> dict[str, tuple[Token, Any]]:
    """``k = v, k = v ...`` of a USING clause; a key twice is an error."""
    out: dict[str, tuple[Token, Any]] = {}
    while True:
        tok, key = option_key(c)
        c.expect(TokenType.EQ, f"'=' after option '{key}'")
        val = value(c, key)
        if key in out:
            raise c.error(f"Option '{key}' is given twice in {clause}.", tok)
        out[key] = (tok, val)
        if not c.accept(TokenType.COMMA):
            return out


def where_options(c: Cursor) -> dict[str, tuple[Token, Any]]:
    """``WHERE k = v [AND k = v ...]`` of the built-in form (``MODEL_NAME = '...'``)."""
    out: dict[str, tuple[Token, Any]] = {}
    while True:
        tok, key = option_key(c)
        c.expect(TokenType.EQ, f"'=' after '{tok.text}'")
        val = value(c, key)
        if key in out:
            raise c.error(f"Option '{key}' is given twice in WHERE.", tok)
        out[key] = (tok, val)
        if not c.accept_word("AND"):
            return out


def value(c: Cursor, key: str) -> Any:
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
        return json_value(c, key)
    raise c.unexpected(what)


def _number(text: str) -> int | float:
    return int(text) if _INT.fullmatch(text) else float(text)


def json_value(c: Cursor, key: str) -> Any:
    """A JSON literal starting at the current ``{`` or ``[``, read from the source text."""
    start = c.peek().start
    try:
        parsed, end = json.JSONDecoder().raw_decode(c.sql, start)
    except json.JSONDecodeError as e:
        raise c.error_at(f"Invalid JSON for option '{key}': {e.msg}.", e.pos) from e
    # Step over the tokens the JSON text covered.
    while c.peek() is not None and c.peek().start < end:
        c.pos += 1
    return parsed
