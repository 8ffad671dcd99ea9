"""Holdout splits: test_size and the four test_sampling modes."""

from __future__ import annotations

from collections import Counter

import pytest

from builtin_models import holdout
from byom.errors import InvalidOption


def test_last_and_first_keep_query_order() -> None:
    last = holdout.split(10, 0.3, "last")
    assert (last.train, last.test) == (list(range(7)), [7, 8, 9])
    first = holdout.split(10, 0.3, "first")
    assert (first.train, first.test) == (list(range(3, 10)), [0, 1, 2])


def test_random_is_seeded_and_complete() -> None:
    a = holdout.split(100, 0.25, "random")
    b = holdout.split(100, 0.25, "random")
    assert a == b
    assert len(a.test) == 25
    assert sorted(a.train + a.test) == list(range(100))
    assert a.test != list(range(75, 100))
    assert holdout.split(100, 0.25, "random", seed=7) != a


def test_stratified_keeps_class_shares() -> None:
    classes = ["a"] * 80 + ["b"] * 20
    split = holdout.split(100, 0.25, "stratified", classes=classes)
    assert Counter(classes[i] for i in split.test) == {"a": 20, "b": 5}


def test_stratified_needs_two_rows_per_class() -> None:
    with pytest.raises(InvalidOption, match="Use 'random'"):
        holdout.split(10, 0.3, "stratified", classes=["a"] * 9 + ["b"])


def test_stratified_needs_classes() -> None:
    with pytest.raises(InvalidOption, match="needs a class per row"):
        holdout.split(10, 0.3, "stratified")


def test_defaults_and_counts() -> None:
    assert holdout.validate(None, None) == (0.25, "random")
    assert len(holdout.split(10, 3, "last").test) == 3
    assert len(holdout.split(10, 3.0, "last").test) == 3
    assert holdout.split(10, 0, "last").test == []
    assert len(holdout.split(10, 0.01, "last").test) == 1  # a fraction rounds up


@pytest.mark.parametrize("size", [1.5, -0.1, "0.2", True, float("nan")])
def test_bad_test_size(size: object) -> None:
    with pytest.raises(InvalidOption, match="test_size"):
        holdout.split(10, size, "last")  # type: ignore[arg-type]


def test_a_test_set_of_every_row() -> None:
    with pytest.raises(InvalidOption, match="leaving none to train"):
        holdout.split(5, 5, "last")


def test_unknown_sampling_suggests() -> None:
    with pytest.raises(InvalidOption, match="Did you mean random"):
        holdout.split(10, 0.2, "randon")
