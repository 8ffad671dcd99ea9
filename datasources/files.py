"""Which files a SQLite datasource may open: the gateway's file policy.

A datasource's ``path``, each ``attach`` path and the ``attach_dir`` directory must resolve
(``os.path.realpath``: symlinks and ``..`` cannot escape) under the gateway's home
(``$BYOM_HOME``) or under a directory listed in ``$BYOM_DATA_DIRS`` (``os.pathsep``
separated, like PATH). The gateway's own files - the catalog (which holds every datasource's
password and every model's URL), MLflow's tracking database and artifacts - are never a
datasource, even though they live under the home. Files must exist: the gateway never
creates a database file for a user (see ``engines``, which opens them with ``mode=rw``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from byom.errors import InvalidOption
from catalog.db import catalog_url, default_home
from catalog.records import DatasourceRecord

DATA_DIRS_ENV = "BYOM_DATA_DIRS"
# Files of a SQLite database besides the database itself.
_SIDECARS = ("", "-wal", "-shm", "-journal")
# The gateway's own files under its home (catalog.db, builtin_models.artifacts, the audit
# log).
_HOME_FILES = ("catalog.sqlite", "mlflow.db", "audit.jsonl", "secret.key")
_HOME_DIRS = ("mlartifacts",)
_WHAT_TO_DO = (
    "Put the file under the gateway's home ($BYOM_HOME) or add its directory to "
    "BYOM_DATA_DIRS (directories separated by ':', like PATH) where the gateway runs"
)


class PathNotAllowed(InvalidOption):
    """A datasource file outside the gateway's home and BYOM_DATA_DIRS."""

    code = "PATH_NOT_ALLOWED"


class CatalogNotADatasource(InvalidOption):
    """The gateway's own catalog (or another internal file) named as a datasource."""

    code = "CATALOG_NOT_A_DATASOURCE"


class PathNotFound(InvalidOption):
    """A datasource file that does not exist (the gateway never creates one)."""

    code = "PATH_NOT_FOUND"


def data_dirs(value: str | None = None) -> list[Path]:
    """The directories of ``$BYOM_DATA_DIRS`` (or ``value``), empty entries skipped."""
    raw = os.environ.get(DATA_DIRS_ENV, "") if value is None else value
    return [Path(os.path.expanduser(p.strip())) for p in raw.split(os.pathsep) if p.strip()]


def _sqlite_file(url: str | None) -> str | None:
    """The database file of a SQLite URL; None for other backends and in-memory ones."""
    if not url:
        return None
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):  # a URI filename: drop the scheme and the query
        database = database[len("file:") :].split("?", 1)[0]
        if database.startswith(":memory:") or not database:
            return None
    return database


def _under(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows)
        return False


@dataclass(frozen=True)
class FilePolicy:
    """Where SQLite datasource files may be (``roots``) and which never (``internal``)."""

    roots: tuple[str, ...]  # resolved directories: the home first, then BYOM_DATA_DIRS
    internal_files: tuple[str, ...]  # resolved paths of the gateway's own files
    internal_dirs: tuple[str, ...]  # resolved directories of the gateway's own files

    @classmethod
    def for_gateway(
        cls, home: Path, catalog: str | None = None, extra_dirs: Iterable[Path] | None = None
    ) -> FilePolicy:
        """The policy of a gateway on ``home`` whose catalog is at the URL ``catalog``
        (default: the one ``catalog.db`` would pick); ``extra_dirs`` default to
        ``$BYOM_DATA_DIRS``, read now."""
        home = Path(home).expanduser().absolute()
        dirs = data_dirs() if extra_dirs is None else list(extra_dirs)
        roots = [os.path.realpath(home), *(os.path.realpath(os.path.abspath(d)) for d in dirs)]
        files = [home / name for name in _HOME_FILES]
        catalog_file = _sqlite_file(catalog or catalog_url(home))
        if catalog_file is not None:
            files.append(Path(catalog_file).expanduser().absolute())
        internal = {os.path.realpath(f"{f}{suffix}") for f in files for suffix in _SIDECARS}
        return cls(
            roots=tuple(dict.fromkeys(roots)),
            internal_files=tuple(sorted(internal)),
            internal_dirs=tuple(os.path.realpath(home / d) for d in _HOME_DIRS),
        )

    @classmethod
    def from_environment(cls) -> FilePolicy:
        """The policy of a gateway started from the environment alone (``$BYOM_HOME``,
        ``$BYOM_CATALOG_URL``, ``$BYOM_DATA_DIRS``)."""
        return cls.for_gateway(default_home())

    # -- checks

    def check_record(self, record: DatasourceRecord, parameters: Mapping[str, Any]) -> None:
        """Refuse a datasource whose (validated) ``parameters`` name a file it may not open."""
        if record.engine != "sqlite":
            return
        self.check_file(record.name, "path", parameters["path"])
        for schema, path in (parameters.get("attach") or {}).items():
            self.check_file(record.name, f"attach.{schema}", path)
        if parameters.get("attach_dir"):
            self.check_dir(record.name, "attach_dir", parameters["attach_dir"])

    def _internal(self, real: str) -> bool:
        return real in self.internal_files or any(_under(real, d) for d in self.internal_dirs)

    def _allowed(self, name: str, key: str, given: str, real: str) -> None:
        shown = given if real == given else f"{given} (resolves to {real})"
        if self._internal(real):
            raise CatalogNotADatasource(
                f"Parameter '{key}' of datasource '{name}' names {shown}, a file of the "
                "gateway itself (its catalog holds every datasource's password and every "
                "model's URL); it can never be a datasource. Copy the data you need into a "
                "database file of its own",
                datasource=name,
                path=given,
            )
        if not any(_under(real, root) for root in self.roots):
            raise PathNotAllowed(
                f"Parameter '{key}' of datasource '{name}' names {shown}, which is outside "
                f"the directories a datasource may use ({', '.join(self.roots)}): a SQLite "
                "file must be under the gateway's home or a directory of BYOM_DATA_DIRS. "
                f"{_WHAT_TO_DO}",
                datasource=name,
                path=given,
            )

    def check_file(self, name: str, key: str, given: str) -> None:
        """``given`` is an existing file that datasource ``name`` may open."""
        real = os.path.realpath(given)
        self._allowed(name, key, given, real)
        if not os.path.isfile(real):
            what = "is a directory, not" if os.path.isdir(real) else "does not exist; it must be"
            raise PathNotFound(
                f"Parameter '{key}' of datasource '{name}': {given} {what} an existing SQLite "
                "database file (the gateway never creates one). Create the database first, "
                "e.g. with the sqlite3 tool, or point at an existing file",
                datasource=name,
                path=given,
            )

    def check_dir(self, name: str, key: str, given: str) -> None:
        """``given`` is an existing directory whose files datasource ``name`` may attach,
        and none of the gateway's own files is directly in it (scans are not recursive)."""
        real = os.path.realpath(given)
        self._allowed(name, key, given, real)
        if not os.path.isdir(real):
            raise PathNotFound(
                f"Parameter '{key}' of datasource '{name}': directory {given} does not exist. "
                "Create it first",
                datasource=name,
                path=given,
            )
        for internal in self.internal_files:
            if os.path.dirname(internal) == real and internal.endswith(".sqlite"):
                raise CatalogNotADatasource(
                    f"Parameter '{key}' of datasource '{name}' names {given}, which holds "
                    f"{internal}, a file of the gateway itself that would be attached as a "
                    "schema; it can never be a datasource. Use a directory of its own",
                    datasource=name,
                    path=given,
                )
