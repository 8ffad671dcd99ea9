"""SQuAD exact match and token F1 against hand-checked examples."""

from __future__ import annotations

import pytest

from builtin_models.qa_metrics import exact_match, normalize_answer, qa_metrics, token_f1


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The  Eiffel Tower!", "eiffel tower"),
        ("An apple, a day", "apple day"),
        ("theater", "theater"),  # an article only as a whole word
        ("  U.S.A.\n", "usa"),
        ("the", ""),
    ],
)
def test_normalize_answer(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


def test_exact_match() -> None:
    assert exact_match("the Eiffel Tower", "Eiffel tower.") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0
    assert exact_match(None, "Paris") == 0.0
    assert exact_match("the", "a") == 1.0  # both normalise to nothing


@pytest.mark.parametrize(
    ("prediction", "truth", "f1"),
    [
        ("Paris", "paris", 1.0),
        # tokens cat sat on mat vs cat sat: precision 2/4, recall 2/2
        ("the cat sat on the mat", "a cat sat", 2 / 3),
        ("Denver Broncos", "Broncos", 2 / 3),
        # a bag of tokens: one 'new' in common, not two -> precision 2/3, recall 1
        ("new new york", "new york", 0.8),
        ("London", "Paris", 0.0),
        (None, "Paris", 0.0),
        ("the", "a", 0.0),  # SQuAD v1.1: no token in common
    ],
)
def test_token_f1(prediction: str | None, truth: str, f1: float) -> None:
    assert token_f1(prediction, truth) == pytest.approx(f1)


def test_qa_metrics_average_the_rows() -> None:
    metrics = qa_metrics(["Paris", "the Louvre", None], ["paris", "Louvre museum", "x"])
    # exact: 1, 0, 0; F1: 1, 2*1*0.5/1.5, 0
    assert metrics == {"exact_match": 0.333333, "f1": 0.555556, "test_rows": 3}


def test_qa_metrics_edge_cases() -> None:
    assert qa_metrics([], []) == {"exact_match": None, "f1": None, "test_rows": 0}
    with pytest.raises(ValueError, match="2 predictions for 1 answers"):
        qa_metrics(["a", "b"], ["a"])
