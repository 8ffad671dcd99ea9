"""Other products' SQL forms, recognised and refused by name until their own issues
implement them: PostgresML's ``pgml.*(...)`` functions that ``gateway.postgresml`` does not
translate (``pgml.train``, ``pgml.embed``, ``pgml.transform``, ``pgml.deploy``,
``pgml.load_dataset``, ...) and the translated ones written where they do not translate
(inside another statement or expression), MySQL HeatWave's ``sys.ML_*``
routines that ``gateway.heatwave`` does not translate (and the translated ones written where
they do not translate: ``sys.ML_PREDICT_ROW`` inside another query, a procedure called as a
function), and any other ``CALL``.

Each is an ``UnsupportedStatement`` (UNSUPPORTED_STATEMENT) that names the product's form
and the gateway's statement that does the same, raised while the script is parsed, so that
a script holding one runs nothing - never a datasource's syntax error for SQL it was not
meant to see.
"""

from __future__ import annotations

import re

from sqlglot.tokens import Token, TokenType

from byom.errors import UnsupportedStatement

_CREATE = (
    "CREATE MODEL m FROM ds (SELECT ...) PREDICT y USING url.train = 'http://...', "
    "url.predict = 'http://...', format = 'ray_serve'"
)
_ONE_ROW = "SELECT * FROM m WHERE col = value"
_A_TABLE = "SELECT t.*, p.y FROM ds.t AS t JOIN m AS p"
_PREDICT = f"here: {_ONE_ROW} for one row, or {_A_TABLE} for a table"

_TRANSLATED = (
    "it translates only as a column of its own in a SELECT: SELECT pgml.{name}('project', "
    "'text') [AS name] [FROM ...] (the gateway translates pgml.tune, pgml.predict, "
    "pgml.predict_proba and pgml.generate)"
)
_PGML = {
    "tune": _TRANSLATED,
    "predict": _TRANSLATED,
    "predict_proba": _TRANSLATED,
    "generate": _TRANSLATED,
    "train": (
        "here: pgml.tune(...) fine-tunes a built-in task (CREATE MODEL m FROM ds (SELECT "
        "...) PREDICT y USING task = 'text_classification'), and a model that runs elsewhere "
        f"is registered by URL: {_CREATE}"
    ),
    "predict_batch": _PREDICT,
    "predict_joint": _PREDICT,
    "embed": (
        "it has no equivalent here: the built-in tasks are text_classification, "
        "question_answering, summarization, translation and recommendation; a model that "
        f"embeds can be registered by URL and read with {_ONE_ROW}"
    ),
    "transform": (
        "here a model is trained on your rows first, then used: SELECT pgml.tune(...) then "
        f"SELECT pgml.generate('project', 'text') or pgml.predict(...), or {_ONE_ROW}"
    ),
    "deploy": (
        "here the version that training makes is deployed when it completes (pgml.tune's "
        "automatic_deploy => false trains it without switching to it), and UPDATE models SET "
        "active = true WHERE name = 'm' AND version = n switches versions"
    ),
    "load_dataset": (
        "here: load the rows into a table of a datasource (CREATE TABLE, INSERT) and read "
        "them from there"
    ),
}
_PGML_OTHER = (
    "it has no equivalent here; models are registered with CREATE MODEL (or fine-tuned with "
    f"pgml.tune) and used with {_ONE_ROW}, a JOIN, or pgml.predict / pgml.generate"
)

_PROCEDURE = "it is a procedure here too: CALL sys.{name}(...) (the gateway translates it)"
_HEATWAVE = {
    "ML_TRAIN": _PROCEDURE,
    "ML_PREDICT_ROW": (
        "it translates as a statement of its own, SELECT sys.ML_PREDICT_ROW(JSON_OBJECT("
        f"'col', value, ...), @model, JSON_OBJECT(...)) ({_ONE_ROW}); for a table's rows "
        f"use {_A_TABLE}"
    ),
    "ML_PREDICT_TABLE": _PROCEDURE,
    "ML_MODEL_LOAD": _PROCEDURE,
    "ML_MODEL_UNLOAD": _PROCEDURE,
}
_HEATWAVE_OTHER = (
    "it has no equivalent here yet (the gateway translates ML_TRAIN, ML_PREDICT_ROW, "
    "ML_PREDICT_TABLE, ML_MODEL_LOAD and ML_MODEL_UNLOAD)"
)
_HEATWAVE_SCHEMA = re.compile(r"ML_SCHEMA_\w+", re.IGNORECASE)
_CALLED = re.compile(r"\s*([\w$]+(?:\s*\.\s*[\w$]+)*)")


def heatwave_schema(name: str) -> UnsupportedStatement | None:
    """The refusal of HeatWave's model catalog schema ``ML_SCHEMA_<user>`` where it does
    not translate (``SHOW MODELS FROM ML_SCHEMA_x``), else None."""
    if not _HEATWAVE_SCHEMA.fullmatch(name):
        return None
    return UnsupportedStatement(
        f"{name} is MySQL HeatWave's model catalog schema; here it answers SHOW TABLES FROM "
        f"{name} and SELECT ... FROM {name}.MODEL_CATALOG, and the catalog is SHOW MODELS or "
        "SELECT * FROM mindsdb.models."
    )


def refuse_call(rest: str) -> UnsupportedStatement:
    """``CALL <rest>``: HeatWave's ``sys.ML_*`` procedures by name, any other procedure too."""
    match = _CALLED.match(rest)
    called = re.sub(r"\s+", "", match.group(1)) if match else ""
    schema, _, procedure = called.rpartition(".")
    if schema.lower() == "sys" and procedure.upper().startswith("ML_"):
        return _heatwave_function(procedure)
    shown = f"CALL {called}" if called else "CALL"
    return UnsupportedStatement(
        f"{shown} runs a stored procedure, which the gateway does not support; run the "
        "procedure's statements themselves."
    )


def check(toks: list[Token]) -> None:
    """Raise the refusal of the first foreign form in a statement's tokens, if any."""
    for i, tok in enumerate(toks):
        text = _name(tok)
        if text is None:
            continue
        after = toks[i + 1 : i + 4]
        dot_call = (
            len(after) == 3
            and after[0].token_type == TokenType.DOT
            and _name(after[1]) is not None
            and after[2].token_type == TokenType.L_PAREN
        )
        if dot_call and text.lower() == "pgml":
            raise pgml_refusal(after[1].text)
        if dot_call and text.lower() == "sys" and after[1].text.upper().startswith("ML_"):
            raise _heatwave_function(after[1].text)


def pgml_refusal(function: str) -> UnsupportedStatement:
    """The refusal of ``pgml.<function>`` where it does not translate."""
    name = function.lower()
    hint = _PGML.get(name, _PGML_OTHER).replace("{name}", name)
    return UnsupportedStatement(f"pgml.{name} is PostgresML's; {hint}.")


def _heatwave_function(function: str) -> UnsupportedStatement:
    name = function.upper()
    hint = _HEATWAVE.get(name, _HEATWAVE_OTHER).replace("{name}", name)
    return UnsupportedStatement(f"sys.{name} is MySQL HeatWave's; {hint}.")


def _name(tok: Token) -> str | None:
    """The text of a name token (a word or a quoted identifier), else None."""
    if tok.token_type == TokenType.IDENTIFIER:
        return tok.text
    if tok.token_type in (TokenType.STRING, TokenType.NUMBER):
        return None
    return tok.text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", tok.text) else None
