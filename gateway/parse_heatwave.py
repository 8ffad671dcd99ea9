"""Reading MySQL HeatWave AutoML's forms (``gateway.heatwave`` translates them).

Pure and without a session: ``SET @a = 1, @b = 'x'`` becomes ``SetVariables``; ``CALL
sys.ML_TRAIN|ML_PREDICT_TABLE|ML_MODEL_LOAD|ML_MODEL_UNLOAD(...)`` and ``SELECT
sys.ML_PREDICT_ROW(...)`` a ``HeatWaveRoutine`` (arguments as Python values,
``JSON_OBJECT(...)`` a dict, ``@name`` a ``Variable``: only the session knows its value); a
plain-SQL statement has ``ML_SCHEMA_<user>.MODEL_CATALOG`` read as ``mindsdb.model_catalog``,
``ML_SCHEMA_<user>.<t>`` as the embedded datasource's ``<t>``, and is marked when it reads
``@variables``; ``SHOW TABLES FROM ML_SCHEMA_<user>`` is a query of the catalog. Mistakes
are ParseErrors at their place; HeatWave's routines that do not translate, and any other
procedure, are refused by name (``parse_foreign``).
"""

from __future__ import annotations

import re
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from byom.errors import UnsupportedStatement
from gateway import parse_foreign
from gateway import statements as st
from gateway.parse_tokens import DIALECT, Cursor, line_col, word

# The catalog table ``ML_SCHEMA_<user>.MODEL_CATALOG`` reads (``mindsdb.model_catalog``).
CATALOG_TABLE = "model_catalog"
# The tables a trained recommender has, as ``<model>_<suffix>`` in the embedded datasource.
RECOMMENDER_TABLES = ("users", "items", "interactions")
# The embedded datasource (``datasources.EMBEDDED_NAME``; the parser's side of the gateway
# does not import the datasources): where a recommender's tables live.
EMBEDDED_DATASOURCE = "local"
# Key under which a Query notes, while parsing, that it reads ``@variables``.
VARIABLES_META = "byom_variables"

# The routines translated here: how many arguments each takes, and its form.
PROCEDURES = {"ML_TRAIN": (4, 4), "ML_PREDICT_TABLE": (3, 4), "ML_MODEL_LOAD": (1, 2),
              "ML_MODEL_UNLOAD": (1, 1)}  # fmt: skip
FUNCTIONS = {"ML_PREDICT_ROW": (2, 3)}
USAGE = {
    "ML_TRAIN": (
        "CALL sys.ML_TRAIN('schema.table', 'target' | NULL, JSON_OBJECT('task', "
        "'recommendation', 'users', 'user_id', 'items', 'item_id'), @model)"
    ),
    "ML_PREDICT_ROW": (
        "SELECT sys.ML_PREDICT_ROW(JSON_OBJECT('user_id', '42'), @model, "
        "JSON_OBJECT('recommend', 'items', 'topk', 3))"
    ),
    "ML_PREDICT_TABLE": (
        "CALL sys.ML_PREDICT_TABLE('schema.input', @model, 'schema.output', "
        "JSON_OBJECT('recommend', 'items', 'topk', 3))"
    ),
    "ML_MODEL_LOAD": "CALL sys.ML_MODEL_LOAD(@model, NULL)",
    "ML_MODEL_UNLOAD": "CALL sys.ML_MODEL_UNLOAD(@model)",
}
# What each argument is, for errors.
ARGUMENTS = {
    "ML_TRAIN": ("the training table", "the target column", "the options", "the model handle"),
    "ML_PREDICT_ROW": ("the input row", "the model handle", "the options"),
    "ML_PREDICT_TABLE": ("the input table", "the model handle", "the output table", "the options"),
    "ML_MODEL_LOAD": ("the model handle", "the user"),
    "ML_MODEL_UNLOAD": ("the model handle",),
}
_SCHEMA = re.compile(r"ML_SCHEMA_\w+", re.IGNORECASE)


def is_ml_schema(name: str) -> bool:
    """Whether ``name`` is HeatWave's model catalog schema ``ML_SCHEMA_<user>``."""
    return bool(_SCHEMA.fullmatch(name))


class _Column:
    """A column reference where a value was expected (kept to say what is wrong)."""

    def __init__(self, text: str, tok: Token) -> None:
        self.text = text
        self.tok = tok


def is_set_variables(toks: list[Token]) -> bool:
    """``SET @name ...`` (MySQL user variables; ``SET x = ...`` stays plain SQL)."""
    return (
        len(toks) > 1
        and toks[0].token_type == TokenType.SET
        and toks[1].token_type == TokenType.PARAMETER
    )


def set_variables(c: Cursor) -> st.SetVariables:
    """``SET @a = value [, @b := value ...]``: a value is a 'string', a number, TRUE/FALSE,
    NULL or another @variable."""
    c.pos = 1
    values: list[tuple[str, Any]] = []
    while True:
        at = c.peek()
        if at is None or at.token_type != TokenType.PARAMETER:
            raise c.unexpected("a user variable (@name)")
        name = _variable_name(c)
        if c.accept(TokenType.EQ) is None and c.accept(TokenType.COLON_EQ) is None:
            raise c.unexpected(f"'=' after @{name}")
        value = _arg(c, f"the value of @{name}")
        if isinstance(value, dict | list) or isinstance(value, _Column):
            tok = value.tok if isinstance(value, _Column) else at
            raise c.error(
                f"SET @{name} takes a 'string', a number, TRUE/FALSE, NULL or another @variable.",
                tok,
            )
        values.append((name, value))
        if c.accept(TokenType.COMMA) is None:
            break
    c.expect_end()
    return st.SetVariables(values=tuple(values))


def _variable_name(c: Cursor) -> str:
    """The name after ``@`` (the cursor is on ``@``), lower-case; ``@@x`` is refused."""
    at = c.next("@")
    tok = c.peek()
    if tok is not None and tok.token_type == TokenType.PARAMETER:
        after = c.peek(1)
        shown = f"@@{after.text}" if after is not None else "@@"
        raise UnsupportedStatement(
            f"{shown} is a MySQL system variable; the gateway has none (user variables "
            "@name are kept per session)."
        )
    if tok is None or tok.start != at.end + 1:
        raise c.error("Expected a variable name right after '@'.", at)
    if tok.token_type in (TokenType.IDENTIFIER, TokenType.STRING) or word(tok) is not None:
        c.pos += 1
        return tok.text.lower()
    raise c.error(f"'{tok.text}' is not a variable name.", tok)


def call(sql: str, toks: list[Token]) -> st.HeatWaveRoutine:
    """``CALL sys.ML_TRAIN|ML_PREDICT_TABLE|ML_MODEL_LOAD|ML_MODEL_UNLOAD(...)``; any other
    procedure is refused by name (``parse_foreign.refuse_call``)."""
    start = toks[0].end + 1
    text = sql[start : toks[-1].end + 1] if len(toks) > 1 else ""
    try:
        inner = [_moved(sql, t, start) for t in DIALECT.tokenize(text)]
    except SqlglotError:
        raise parse_foreign.refuse_call(text) from None
    routine = _routine(inner)
    if routine is None or routine not in PROCEDURES:
        if routine in FUNCTIONS:
            raise UnsupportedStatement(
                f"sys.{routine} is a MySQL HeatWave function, not a procedure: {USAGE[routine]}."
            )
        raise parse_foreign.refuse_call(text)
    c = Cursor(sql, inner, pos=4)
    args = _args(c, routine)
    c.expect_end()
    return _routine_statement(routine, args, c, sql[toks[0].start : toks[-1].end + 1])


def is_predict_row(toks: list[Token]) -> bool:
    """A statement that starts ``SELECT sys.ML_PREDICT_ROW(``."""
    return (
        len(toks) > 5
        and toks[0].token_type == TokenType.SELECT
        and _routine(toks[1:]) == "ML_PREDICT_ROW"
    )


def predict_row(c: Cursor) -> st.HeatWaveRoutine:
    """``SELECT sys.ML_PREDICT_ROW(JSON_OBJECT(...), @model[, options]) [[AS] alias]``: one
    row from values. Its column-reference form (``... FROM t``) is a JOIN here."""
    c.pos = 5
    args = _args(c, "ML_PREDICT_ROW")
    if c.accept(TokenType.ALIAS):
        c.next("an alias after AS")
    elif c.peek() is not None and c.peek().token_type in (TokenType.VAR, TokenType.IDENTIFIER):
        c.pos += 1
    if not c.done:
        if c.peek().token_type == TokenType.FROM:
            raise _row_columns()
        c.expect_end()
    text = c.sql[c.toks[0].start : c.toks[-1].end + 1]
    return _routine_statement("ML_PREDICT_ROW", args, c, text)


def _row_columns() -> UnsupportedStatement:
    return UnsupportedStatement(
        "sys.ML_PREDICT_ROW over a table's columns is MySQL HeatWave's per-row form; here "
        "a table's rows are predicted by a JOIN: SELECT t.*, p.* FROM ds.t AS t JOIN m AS p "
        "USING recommend = 'items', topk = 3 (ML_PREDICT_ROW takes values: "
        f"{USAGE['ML_PREDICT_ROW']})."
    )


def _routine(toks: list[Token]) -> str | None:
    """``ML_X`` when ``toks`` start ``sys . ML_X (``, else None."""
    if len(toks) < 4 or word(toks[0]) != "SYS" or toks[1].token_type != TokenType.DOT:
        return None
    name = toks[2].text.upper()
    if not name.startswith("ML_") or toks[3].token_type != TokenType.L_PAREN:
        return None
    return name


def _args(c: Cursor, routine: str) -> list[Any]:
    """The arguments up to the closing ``)`` (the cursor is past ``(``), their count
    checked."""
    opening = c.toks[c.pos - 1]
    args: list[Any] = []
    if c.accept(TokenType.R_PAREN) is None:
        while True:
            args.append(_arg(c, f"argument {len(args) + 1} of sys.{routine}"))
            if c.accept(TokenType.R_PAREN) is not None:
                break
            c.expect(TokenType.COMMA, "',' or ')'")
    least, most = {**PROCEDURES, **FUNCTIONS}[routine]
    if not least <= len(args) <= most:
        count = str(least) if least == most else f"{least} to {most}"
        raise c.error(
            f"sys.{routine} takes {count} arguments but found {len(args)}: {USAGE[routine]}.",
            opening,
        )
    return args


def _arg(c: Cursor, what: str) -> Any:
    """A value: 'string', number, TRUE/FALSE, NULL, @variable, JSON_OBJECT(...),
    JSON_ARRAY(...); a column name comes back as a ``_Column`` for the caller to judge."""
    tok = c.peek()
    expected = f"{what}: a 'string', a number, NULL, an @variable or JSON_OBJECT(...)"
    if tok is None:
        raise c.unexpected(expected)
    kind = tok.token_type
    if kind == TokenType.PARAMETER:
        return st.Variable(_variable_name(c))
    if kind == TokenType.STRING or (kind == TokenType.IDENTIFIER and c.sql[tok.start] == '"'):
        c.pos += 1  # MySQL reads "text" as a string too
        return tok.text
    if kind == TokenType.NUMBER:
        c.pos += 1
        return _number(tok.text)
    nxt = c.peek(1)
    if kind == TokenType.DASH and nxt is not None and nxt.token_type == TokenType.NUMBER:
        c.pos += 2
        return -_number(nxt.text)
    if kind in (TokenType.TRUE, TokenType.FALSE, TokenType.NULL):
        c.pos += 1
        return {TokenType.TRUE: True, TokenType.FALSE: False, TokenType.NULL: None}[kind]
    if word(tok) in ("JSON_OBJECT", "JSON_ARRAY") and nxt is not None:
        if nxt.token_type == TokenType.L_PAREN:
            return _json_object(c) if word(tok) == "JSON_OBJECT" else _json_array(c)
    if kind == TokenType.IDENTIFIER or word(tok) is not None:
        parts = [c.next("a name").text]
        while c.peek() is not None and c.peek().token_type == TokenType.DOT:
            c.pos += 1
            parts.append(c.next("a name after '.'").text)
        return _Column(".".join(parts), tok)
    raise c.unexpected(expected)


def _number(text: str) -> int | float:
    return int(text) if text.isdigit() else float(text)


def _json_object(c: Cursor) -> dict[str, Any]:
    """``JSON_OBJECT(key, value, ...)`` (the cursor is on JSON_OBJECT): keys are strings;
    as in MySQL, a key given twice keeps its last value."""
    head = c.next("JSON_OBJECT")
    c.pos += 1  # (
    items = _items(c, "JSON_OBJECT")
    if len(items) % 2:
        raise c.error(
            f"JSON_OBJECT takes key, value pairs but found an odd number of arguments "
            f"({len(items)}): JSON_OBJECT('key', value, 'key2', value2).",
            head,
        )
    out: dict[str, Any] = {}
    for key, value in zip(items[::2], items[1::2], strict=True):
        if isinstance(key, bool) or not isinstance(key, str | int | float):
            raise c.error("A JSON_OBJECT key is a 'string'.", head)
        out[str(key)] = value
    return out


def _json_array(c: Cursor) -> list[Any]:
    c.pos += 2  # JSON_ARRAY (
    return _items(c, "JSON_ARRAY")


def _items(c: Cursor, function: str) -> list[Any]:
    items: list[Any] = []
    if c.accept(TokenType.R_PAREN) is not None:
        return items
    while True:
        items.append(_arg(c, f"a value of {function}"))
        if c.accept(TokenType.R_PAREN) is not None:
            return items
        c.expect(TokenType.COMMA, f"',' or ')' in {function}(...)")


def _routine_statement(routine: str, args: list[Any], c: Cursor, text: str) -> st.HeatWaveRoutine:
    """The statement, once no argument is a column name (a name where HeatWave wants a
    variable or a value is an error at its position)."""
    for i, arg in enumerate(args):
        for column in _columns(arg):
            if routine == "ML_PREDICT_ROW" and i == 0:
                raise _row_columns()
            raise c.error(
                f"sys.{routine}: {ARGUMENTS[routine][i]} (argument {i + 1}) is a value, not "
                f"the name {column.text}: write an @variable or a 'string' (NULL, a number, "
                f"JSON_OBJECT(...) where they fit): {USAGE[routine]}",
                column.tok,
            )
    return st.HeatWaveRoutine(routine=routine, args=tuple(args), sql=text)


def _columns(value: Any) -> list[_Column]:
    if isinstance(value, _Column):
        return [value]
    if isinstance(value, dict):
        return [c for v in value.values() for c in _columns(v)]
    if isinstance(value, list):
        return [c for v in value for c in _columns(v)]
    return []


def _moved(sql: str, tok: Token, offset: int) -> Token:
    """``tok`` (of text that starts at ``offset`` in ``sql``) with its place in ``sql``."""
    line, col = line_col(sql, tok.start + offset)
    return Token(tok.token_type, tok.text, line, col, tok.start + offset, tok.end + offset)


def fix_tokens(toks: list[Token]) -> list[Token]:
    """``ML_SCHEMA_user1.3e094aa4ba_users``: MySQL reads a name that starts with digits
    after ``ML_SCHEMA_<user>.`` as one name; the tokenizer sees a number and a word. Such
    adjacent tokens become one quoted name (positions kept)."""
    out = toks
    i = 0
    while i + 2 < len(toks):
        first = toks[i + 2]
        if not (
            toks[i + 1].token_type == TokenType.DOT
            and is_ml_schema(toks[i].text)
            and first.token_type == TokenType.NUMBER
        ):
            i += 1
            continue
        j = i + 2
        while (
            j + 1 < len(toks)
            and toks[j + 1].start == toks[j].end + 1
            and (toks[j + 1].token_type in (TokenType.NUMBER, TokenType.VAR))
        ):
            j += 1
        if out is toks:
            out = list(toks)
        text = "".join(t.text for t in toks[i + 2 : j + 1])
        merged = Token(TokenType.IDENTIFIER, text, first.line, first.col, first.start, toks[j].end)
        out[i + 2 : j + 1] = [merged]
        toks = out
        i += 3
    return out


def rewrite_query(query: st.Query, toks: list[Token]) -> st.Query:
    """A parsed plain-SQL statement with HeatWave's catalog schema read as the gateway's:
    ``ML_SCHEMA_<user>.MODEL_CATALOG`` -> ``mindsdb.model_catalog`` (read-only),
    ``ML_SCHEMA_<user>.<t>`` -> the embedded datasource's ``<t>``; a statement that reads
    ``@variables`` is marked for ``resolve``."""
    tree = query.tree
    if any(t.token_type == TokenType.PARAMETER for t in toks):
        tree.meta[VARIABLES_META] = True
    tables = [t for t in tree.find_all(exp.Table) if not t.catalog and is_ml_schema(t.db or "")]
    if not tables:
        return query
    for table in tables:
        if table.name.lower() == CATALOG_TABLE:
            if not isinstance(tree, exp.Query):
                raise UnsupportedStatement(
                    f"{table.db}.{table.name} is MySQL HeatWave's model catalog, read-only "
                    "here: the gateway keeps it (DROP MODEL m forgets a model)."
                )
            table.set("db", exp.to_identifier("mindsdb"))
            table.set("this", exp.to_identifier(CATALOG_TABLE))
        else:
            table.set("db", exp.to_identifier(EMBEDDED_DATASOURCE))
    for column in tree.find_all(exp.Column):
        if is_ml_schema(column.args.get("db").name if column.args.get("db") else ""):
            column.set("db", None)
    return st.Query(tree=tree, sql=tree.sql(dialect=DIALECT))


def show_tables(schema: str, full: bool, like: str | None, where: str | None) -> st.Query:
    """``SHOW [FULL] TABLES FROM ML_SCHEMA_<user>``: ``MODEL_CATALOG`` and each trained
    recommender's ``<model>_users``, ``<model>_items``, ``<model>_interactions`` (in the
    embedded datasource), in one column ``Tables_in_ML_SCHEMA_<user>`` as MySQL names it."""
    column = _quoted(f"Tables_in_{schema}")
    kind = ", 'BASE TABLE' AS table_type" if full else ""
    parts = [f"SELECT 'MODEL_CATALOG' AS {column}{kind}"] + [
        f"SELECT model_handle || '_{suffix}'{kind} FROM mindsdb.{CATALOG_TABLE} "
        "WHERE task = 'recommendation' AND status = 'complete'"
        for suffix in RECOMMENDER_TABLES
    ]
    conditions = []
    if like is not None:
        conditions.append(f"{column} LIKE {_string(like)}")
    if where is not None:
        conditions.append(f"({where})")
    condition = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT * FROM ({' UNION '.join(parts)}) AS ml_schema{condition} ORDER BY 1"
    return st.Query(tree=sqlglot.parse_one(sql, read=DIALECT), sql=sql)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
