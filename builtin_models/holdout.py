"""Hold out a test split, as PostgresML's ``test_size`` / ``test_sampling`` do.

``test_sampling``:

* ``last``: the last rows, in query order, are the test set (a time-ordered query
  evaluates on the newest rows);
* ``first``: the first rows;
* ``random``: a seeded shuffle (the same rows every time for the same ``seed``);
* ``stratified``: random, keeping each class's share in both splits (needs at least two
  rows of every class).

``test_size`` is a fraction of the rows in ``[0, 1)`` or a whole number of rows; ``0`` holds
nothing out (no metrics). Splitting works on row indices so it fits every task.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from byom.errors import InvalidOption, did_you_mean

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_TEST_SAMPLING",
    "DEFAULT_TEST_SIZE",
    "SAMPLINGS",
    "Split",
    "split",
    "validate",
]

SAMPLINGS = ("last", "first", "random", "stratified")
DEFAULT_TEST_SIZE = 0.25  # PostgresML's default
DEFAULT_TEST_SAMPLING = "random"
DEFAULT_SEED = 42


@dataclass(frozen=True)
class Split:
    """Row indices of the training and test sets (each in its own order)."""

    train: list[int]
    test: list[int]


def validate(test_size: float | int | None, test_sampling: str | None) -> tuple[float | int, str]:
    """Checked ``(test_size, test_sampling)``, defaults filled in; InvalidOption otherwise."""
    size: float | int = DEFAULT_TEST_SIZE if test_size is None else test_size
    if isinstance(size, bool) or not isinstance(size, int | float) or math.isnan(size):
        raise InvalidOption(
            f"test_size must be a number: a fraction in [0, 1) or a row count, got {size!r}.",
            option="test_size",
        )
    if isinstance(size, float) and size.is_integer() and size >= 1:
        size = int(size)
    if size < 0 or (isinstance(size, float) and size >= 1):
        raise InvalidOption(
            f"test_size must be a fraction in [0, 1) or a whole number of rows, got {size!r}.",
            option="test_size",
        )
    sampling = (test_sampling or DEFAULT_TEST_SAMPLING).strip().lower()
    if sampling not in SAMPLINGS:
        hint = did_you_mean(sampling, SAMPLINGS)
        raise InvalidOption(
            f"Unknown test_sampling '{test_sampling}'."
            + (f" Did you mean {hint}?" if hint else "")
            + f" Use one of: {', '.join(SAMPLINGS)}.",
            option="test_sampling",
            suggestion=hint,
        )
    return size, sampling


def held_out_count(n_rows: int, test_size: float | int) -> int:
    """How many of ``n_rows`` rows ``test_size`` holds out (a fraction rounds up, as sklearn)."""
    if isinstance(test_size, int):
        return test_size
    return math.ceil(n_rows * test_size) if test_size > 0 else 0


def split(
    n_rows: int,
    test_size: float | int | None = None,
    test_sampling: str | None = None,
    *,
    classes: Sequence[Hashable] | None = None,
    seed: int = DEFAULT_SEED,
) -> Split:
    """Split ``range(n_rows)`` into training and test indices.

    ``classes`` (one per row) is needed for ``stratified``. Raises InvalidOption when the
    options cannot be met (a test set that would take every row, a class too small to
    stratify).
    """
    size, sampling = validate(test_size, test_sampling)
    n_test = held_out_count(n_rows, size)
    if n_test == 0:
        return Split(list(range(n_rows)), [])
    if n_test >= n_rows:
        raise InvalidOption(
            f"test_size {size!r} holds out {n_test} of {n_rows} rows, leaving none to train "
            "on: lower test_size.",
            option="test_size",
        )
    indices = list(range(n_rows))
    if sampling == "last":
        return Split(indices[: n_rows - n_test], indices[n_rows - n_test :])
    if sampling == "first":
        return Split(indices[n_test:], indices[:n_test])

    from sklearn.model_selection import train_test_split

    stratify = None
    if sampling == "stratified":
        if classes is None or len(classes) != n_rows:
            raise InvalidOption(
                "test_sampling 'stratified' needs a class per row; this task has none: use "
                "'random'.",
                option="test_sampling",
            )
        stratify = [str(c) for c in classes]
    try:
        train, test = train_test_split(
            indices, test_size=n_test, random_state=seed, shuffle=True, stratify=stratify
        )
    except ValueError as exc:  # a class with one row, or fewer test rows than classes
        raise InvalidOption(
            f"test_sampling 'stratified' cannot split these rows: {exc} Use 'random', or "
            "give every class at least two rows.",
            option="test_sampling",
        ) from exc
    return Split(list(train), list(test))
