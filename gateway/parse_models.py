"""The model statements: ``CREATE [OR REPLACE] MODEL|PREDICTOR [IF NOT EXISTS] ...``,
``DROP MODEL|PREDICTOR`` and ``DESCRIBE``.

Model names are ``[project.]name``; the parser knows no catalog, so whether a project exists
(and whether ``DESCRIBE a.b`` is project ``a``'s model ``b`` or model ``a``'s attribute
``b``) is the planner's question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot.tokens import Token, TokenType

from gateway import statements as st
from gateway.parse_options import merge, options, where_options
from gateway.parse_tokens import CLAUSES, Cursor, if_exists, name, or_words, word

MODEL_KINDS = ("MODEL", "PREDICTOR")


def dotted(c: Cursor, what: str, most: int, too_many: str) -> list[Token]:
    """A name of one to ``most`` dot-separated parts (each possibly quoted); a further
    ``.`` is the error ``too_many``."""
    parts = [name(c, f"a {what}")]
    while c.peek() is not None and c.peek().token_type == TokenType.DOT:
        if len(parts) == most:
            raise c.error(too_many)
        c.pos += 1
        parts.append(name(c, f"a {what} after '.'"))
    return parts


def model_name(c: Cursor) -> tuple[str | None, str]:
    """``[project.]name`` of a model, both lower-cased."""
    parts = dotted(
        c,
        "model name",
        2,
        "A model name has at most two parts: [project.]name, e.g. mindsdb.my_model.",
    )
    if len(parts) == 1:
        return None, parts[0].text.lower()
    return parts[0].text.lower(), parts[1].text.lower()


@dataclass(frozen=True)
class TrainingClauses:
    """What the clauses after a model's name said (CREATE MODEL's and RETRAIN's)."""

    datasource: str | None = None
    query: str | None = None  # the SQL inside FROM ds ( ... ), verbatim
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def create_predictor(c: Cursor, or_replace: bool) -> st.CreatePredictor:
    """``CREATE [OR REPLACE] PREDICTOR|MODEL [IF NOT EXISTS] [project.]name [FROM ...]
    [PREDICT col] [USING ...] [WHERE ...]`` (the cursor is on MODEL|PREDICTOR)."""
    c.pos += 1
    if_not_exists = if_exists(c, with_not=True)
    if or_replace and if_not_exists:
        raise c.error("CREATE OR REPLACE and IF NOT EXISTS contradict each other; give one.")
    namespace, model = model_name(c)
    clauses = training_clauses(c)
    return st.CreatePredictor(
        name=model,
        namespace=namespace,
        datasource=clauses.datasource,
        query=clauses.query,
        target=clauses.target,
        options=clauses.options,
        or_replace=or_replace,
        if_not_exists=if_not_exists,
    )


def training_clauses(c: Cursor) -> TrainingClauses:
    """``[FROM ...] [PREDICT col] [USING ...] [WHERE ...]`` up to the end of the statement:
    each clause at most once and in that order; USING and WHERE options are merged (a key
    in both is an error)."""
    datasource: str | None = None
    query: str | None = None
    target: str | None = None
    found: dict[str, Any] = {}
    done = -1  # index in CLAUSES of the last clause read: each comes once, in order
    while not c.done:
        tok = c.peek()
        clause = word(tok)
        if clause not in CLAUSES:
            raise c.unexpected(or_words(CLAUSES[done + 1 :]), CLAUSES[done + 1 :])
        index = CLAUSES.index(clause)
        if index == done:
            raise c.error(f"{clause} is given twice.", tok)
        if index < done:
            raise c.error(f"{clause} must come before {CLAUSES[done]}.", tok)
        done = index
        c.pos += 1
        if clause == "FROM":
            datasource, query = from_clause(c)
        elif clause == "PREDICT":
            target = name(c, "the column to predict").text
            if c.peek() is not None and c.peek().token_type == TokenType.COMMA:
                raise c.error("PREDICT takes one column.")
        elif clause == "USING":
            merge(c, found, options(c, "USING"))
        else:
            merge(c, found, where_options(c))
    return TrainingClauses(datasource, query, target, found)


def from_clause(c: Cursor) -> tuple[str | None, str]:
    """``FROM ds (query)`` or ``FROM (query) [AS alias]`` -> (datasource, query text)."""
    datasource: str | None = None
    if c.peek() is None or c.peek().token_type != TokenType.L_PAREN:
        datasource = name(c, "a datasource name or '('").text.lower()
        if c.peek() is not None and c.peek().token_type == TokenType.DOT:
            raise c.error(
                "FROM takes a datasource and a query in parentheses: FROM mydb (SELECT ...)."
            )
    query = _paren_text(c)
    if datasource is None:
        # The MindsDB built-in form names the subquery (``AS training_data``); the name is
        # not needed for anything, so it is read and dropped.
        if c.accept(TokenType.ALIAS):
            name(c, "an alias after AS")
        elif c.peek() is not None and word(c.peek()) not in CLAUSES:
            name(c, "an alias")
    return datasource, query


def _paren_text(c: Cursor) -> str:
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


def drop_model(c: Cursor) -> st.DropModel:
    """``DROP MODEL|PREDICTOR [IF EXISTS] [project.]name``."""
    c.pos = 2
    exists = if_exists(c, with_not=False)
    namespace, model = model_name(c)
    c.expect_end()
    return st.DropModel(name=model, namespace=namespace, if_exists=exists)


def describe(c: Cursor) -> st.Describe:
    """``DESCRIBE|DESC [MODEL|PREDICTOR] [project.]name[.features|.model]``."""
    c.pos = 1
    # ``DESCRIBE model`` names a model called "model"; ``DESCRIBE model.x`` a project.
    nxt = c.peek(1)
    if c.at_word(*MODEL_KINDS) and nxt is not None and nxt.token_type != TokenType.DOT:
        c.pos += 1
    too_many = "DESCRIBE takes at most three parts: [project.]model[.features|.model]."
    parts = [t.text.lower() for t in dotted(c, "model name", 3, too_many)]
    c.expect_end()
    if len(parts) == 1:
        return st.Describe(name=parts[0])
    if len(parts) == 2:
        return st.Describe(name=parts[1], namespace=parts[0])
    return st.Describe(name=parts[1], namespace=parts[0], attribute=parts[2])
