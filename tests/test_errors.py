"""The error kernel: every message ends as one sentence, however it was put together."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from byom.errors import GatewayError, InvalidInput, ParseError, finish_sentence
from gateway.core import Gateway


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("Model 'x' not found", "Model 'x' not found."),
        ("Model 'x' not found.", "Model 'x' not found."),
        ("ends twice..  ", "ends twice."),
        ("body: EEEE...", "body: EEEE..."),  # a cut-short snippet keeps its ellipsis
        ("wrong. ", "wrong."),
        ("Did you mean byom?", "Did you mean byom?"),
        ("JSON body: {'a': 1}", "JSON body: {'a': 1}."),
    ],
)
def test_finish_sentence(given: str, shown: str) -> None:
    assert finish_sentence(given) == shown
    assert str(GatewayError(given)) == shown


def test_amend_keeps_one_final_period() -> None:
    error = InvalidInput("Column 'y' is not an output.")
    error.amend(before="Statement 2: ", after=" (statement 1 took effect)")
    assert error.message == "Statement 2: Column 'y' is not an output (statement 1 took effect)."
    assert error.args == (error.message,)
    assert error.to_dict()["error"]["message"] == error.message


def test_parse_error_position_ends_the_sentence() -> None:
    error = ParseError("Unknown statement 'SELEC'.", line=1, col=1, suggestion="SELECT")
    assert error.message == "Unknown statement 'SELEC'. Did you mean SELECT? (line 1, col 1)."


@pytest.mark.parametrize(
    "sql",
    [
        "SELEC 1",
        "SELECT * FROM mindsdb.nope WHERE a = 1",
        "SELECT * FROM no_such_table",
        "CREATE DATABASE x WITH ENGINE = 'oracle', PARAMETERS = {}",
        "DROP DATABASE local",
        "CALL sys.ML_TRAIN('t', 'y', NULL, @m)",
        "SELECT 1; SELECT * FROM nope; SELECT 3",
        "CREATE MODEL m PREDICT y USING url.predict='http://h/p', format='onnx'",
    ],
)
def test_real_errors_end_with_one_period(tmp_path: Path, sql: str) -> None:
    async def go() -> GatewayError:
        gw = await Gateway.start(home=tmp_path, catalog_url=f"sqlite:///{tmp_path / 'c.sqlite'}")
        try:
            with pytest.raises(GatewayError) as caught:
                await gw.sql(sql)
            return caught.value
        finally:
            await gw.close()

    message = asyncio.run(go()).message
    assert message.endswith(".") and not message.endswith(".."), message
