"""The statements of a built-in model's life after CREATE: ``RETRAIN``, ``EVALUATE`` and
``CANCEL TRAINING``.

Model names are ``[project.]name`` as in ``parse_models``; RETRAIN reads the clauses after
the name with CREATE MODEL's reader (``parse_models.training_clauses``), so both take the
same FROM / PREDICT / USING / WHERE, each once and in that order.
"""

from __future__ import annotations

import re
from typing import Any

from sqlglot.tokens import TokenType

from gateway import statements as st
from gateway.parse_models import MODEL_KINDS, from_clause, model_name, training_clauses
from gateway.parse_options import merge, options
from gateway.parse_tokens import CLAUSES, Cursor, or_words, word

# The clauses of EVALUATE after the model's name, in their order.
_EVALUATE_CLAUSES = ("VERSION", "FROM", "USING")

_POSITIVE = re.compile(r"[0-9]*[1-9][0-9]*")


def retrain(c: Cursor) -> st.Retrain:
    """``RETRAIN [MODEL|PREDICTOR] [project.]name [FROM ...] [PREDICT col] [USING ...]
    [WHERE ...]`` (the cursor is on RETRAIN)."""
    c.pos = 1
    _skip_kind(c, CLAUSES)
    namespace, model = model_name(c)
    clauses = training_clauses(c)
    return st.Retrain(
        name=model,
        namespace=namespace,
        datasource=clauses.datasource,
        query=clauses.query,
        target=clauses.target,
        options=clauses.options,
    )


def evaluate(c: Cursor) -> st.Evaluate:
    """``EVALUATE [MODEL|PREDICTOR] [project.]name [VERSION n] FROM ds (query) | FROM (query)
    [AS alias] [USING ...]`` (the cursor is on EVALUATE)."""
    c.pos = 1
    _skip_kind(c, _EVALUATE_CLAUSES)
    namespace, model = model_name(c)
    version: int | None = None
    if c.accept_word("VERSION"):
        version = _version(c)
    if not c.at_word("FROM"):
        if c.done or c.at_word("USING"):
            raise c.error("EVALUATE needs labelled rows: EVALUATE m FROM mydb (SELECT ...).")
        expected = ("FROM",) if version is not None else ("VERSION", "FROM")
        raise c.unexpected(or_words(expected), expected)
    c.pos += 1
    datasource, query = from_clause(c)
    found: dict[str, Any] = {}
    if c.accept_word("USING"):
        merge(c, found, options(c, "USING"))
    c.expect_end(() if found else ("USING",))
    return st.Evaluate(
        name=model,
        namespace=namespace,
        version=version,
        datasource=datasource,
        query=query,
        options=found,
    )


def _version(c: Cursor) -> int:
    """The positive whole number after VERSION; anything else is an error naming it."""
    tok = c.next("a version number after VERSION")
    if tok.token_type == TokenType.NUMBER and _POSITIVE.fullmatch(tok.text):
        return int(tok.text)
    found = tok.text
    nxt = c.peek()
    if tok.token_type == TokenType.DASH and nxt is not None and nxt.start == tok.end + 1:
        found = c.sql[tok.start : nxt.end + 1]  # VERSION -1: name the number, not the '-'
    raise c.error(f"VERSION takes a positive whole number (VERSION 2) but found '{found}'.", tok)


def cancel_training(c: Cursor) -> st.CancelTraining:
    """``CANCEL TRAINING [OF] [MODEL|PREDICTOR] [project.]name`` (the cursor is on CANCEL)."""
    c.pos = 1
    c.expect_word("TRAINING")
    c.accept_word("OF")
    _skip_kind(c, ())
    namespace, model = model_name(c)
    c.expect_end()
    return st.CancelTraining(name=model, namespace=namespace)


def _skip_kind(c: Cursor, clauses: tuple[str, ...]) -> None:
    """Step over an optional ``MODEL|PREDICTOR`` before a model's name. As in DESCRIBE, the
    word is the name itself when nothing that could be a name follows it (``RETRAIN model``,
    ``RETRAIN model FROM ...``) and a project when a ``.`` does (``RETRAIN model.m``)."""
    nxt = c.peek(1)
    if not c.at_word(*MODEL_KINDS) or nxt is None or nxt.token_type == TokenType.DOT:
        return
    if word(nxt) in clauses:
        return
    c.pos += 1
