"""Two trainings starting at once on a fresh SQLite tracking store: ``artifacts.store_lock``
lets one process at a time create its tables and the experiment (both at once failed in
Alembic's migrations: the e2e seq2seq test trains two models at once)."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from builtin_models import artifacts


def _try_lock(path: Path) -> bool:
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_the_lock_is_held_for_the_block(tmp_path: Path) -> None:
    uri = artifacts.default_tracking_uri(tmp_path / "home")
    lock = tmp_path / "home" / "mlflow.db.lock"
    with artifacts.store_lock(uri):
        assert lock.exists() and not _try_lock(lock)  # another process would wait here
    assert _try_lock(lock)


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "postgresql://db/mlflow"])
def test_other_stores_take_no_lock(uri: str, tmp_path: Path) -> None:
    with artifacts.store_lock(uri):
        pass
    assert not list(tmp_path.iterdir())
