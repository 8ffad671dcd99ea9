"""Other products' SQL forms, recognised and refused by name until their own issues
implement them: PostgresML's ``pgml.*(...)`` functions, MySQL HeatWave's ``sys.ML_*``
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

_PGML = {
    "train": f"here: {_CREATE}",
    "predict": _PREDICT,
    "predict_proba": _PREDICT,
    "predict_batch": _PREDICT,
    "embed": _PREDICT,
    "transform": f"here: {_ONE_ROW} with a model that generates text",
    "generate": f"here: {_ONE_ROW} with a model that generates text",
    "tune": (
        "here: CREATE MODEL m FROM ds (SELECT ...) PREDICT y USING task = '...', "
        "model_name = '...' (fine-tuning built-in models is not available in this release)"
    ),
    "deploy": "here a model is used as registered, and CREATE OR REPLACE MODEL m replaces it",
    "load_dataset": (
        "here: load the rows into a table of a datasource (CREATE TABLE, INSERT) and read "
        "them from there"
    ),
}
_PGML_OTHER = (
    "it has no equivalent here; models are registered with CREATE MODEL and used with "
    f"{_ONE_ROW} or a JOIN"
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
            function = after[1].text.lower()
            hint = _PGML.get(function, _PGML_OTHER)
            raise UnsupportedStatement(f"pgml.{function} is PostgresML's; {hint}.")
        if dot_call and text.lower() == "sys" and after[1].text.upper().startswith("ML_"):
            raise _heatwave_function(after[1].text)


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
