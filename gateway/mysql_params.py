"""A prepared statement's parameters as the gateway's SQL literals (COM_STMT_EXECUTE).

mysql-mimic 3.0.5 fills a prepared statement's ``?`` with ``'<value>'`` as it is: a value
with a quote ends the string early (a parse error, or other SQL than the client sent), and,
as it substitutes with ``re.sub``, a backslash in a value is read as a regex escape. Here
the values it decodes from the packet are written as literals of the gateway's SQL (strings
ANSI-quoted, ``'`` doubled, a backslash itself) into the ``?`` places of the statement as
prepared, found once (later values are never searched for ``?``).
"""

from __future__ import annotations

import io
import math
from typing import Any

from mysql_mimic import packets
from mysql_mimic.charset import CharacterSet
from mysql_mimic.prepared import REGEX_PARAM, PreparedStatement
from mysql_mimic.types import Capabilities, read_uint_4, read_uint_len

from byom.errors import InvalidInput


def sql_literal(value: Any) -> str:
    """``value`` (what mysql-mimic decodes a parameter as: str, int, float or None) as a
    literal of the gateway's SQL."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(
                f"A parameter is {value}: SQL has no literal for it; send NULL or a number."
            )
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def bind(sql: str, values: list[Any]) -> str:
    """``sql`` (a statement as prepared) with its ``?`` places, as mysql-mimic counted them
    at prepare time, replaced by ``values`` as literals."""
    places = [m.start() for m in REGEX_PARAM.finditer(sql)]
    if len(places) != len(values):  # the packet and the statement disagree: say so
        raise InvalidInput(
            f"The statement has {len(places)} parameters and {len(values)} values were sent."
        )
    parts: list[str] = []
    end = 0
    for place, value in zip(places, values, strict=True):
        parts += [sql[end:place], sql_literal(value)]
        end = place + 1
    parts.append(sql[end:])
    return "".join(parts)


def bound_statement(
    data: bytes, capabilities: Capabilities, charset: CharacterSet, stmt: PreparedStatement
) -> str:
    """The SQL a COM_STMT_EXECUTE packet (``data``) runs: ``stmt``'s with its parameters.

    Reads the packet as mysql-mimic's ``parse_com_stmt_execute`` does (id, cursor flags,
    iteration count, then the parameters, long data included)."""
    reader = io.BytesIO(data)
    read_uint_4(reader)  # the statement id: the caller looked ``stmt`` up with it
    _, count_available = packets._read_cursor_flags(reader)
    read_uint_4(reader)  # iteration count, always 1
    count = stmt.num_params
    attributes = Capabilities.CLIENT_QUERY_ATTRIBUTES in capabilities
    if attributes and (count > 0 or count_available):
        count = read_uint_len(reader)  # parameters, then query attributes (named)
    if count == 0 or stmt.num_params == 0:
        return stmt.sql
    params = packets._read_params(capabilities, charset, reader, count, stmt.param_buffers)
    return bind(stmt.sql, [value for _, value in params[: stmt.num_params]])
