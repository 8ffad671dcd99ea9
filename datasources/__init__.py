"""The user's databases, reached through SQLAlchemy.

A ``Datasource`` wraps one pooled SQLAlchemy engine and speaks in plain columns and row
tuples; ``DatasourcePool`` keeps one open per name. Every database failure leaves as
``DatasourceError`` naming the datasource and carrying the database's own message;
passwords never appear in messages. Nothing here imports the ``gateway`` package.

Engines (``CREATE DATABASE ... WITH ENGINE = '<name>', PARAMETERS = {...}``):

* ``sqlite``: ``path`` (a file; ``:memory:`` is refused because every pooled connection
  would see its own empty database), ``attach`` (``{schema: path}``, attached on every
  connection, since SQLite's schemas are attached databases) and ``attach_dir`` (every
  ``<dir>/<schema>.sqlite`` is attached as ``<schema>``, rescanned whenever a connection is
  handed out, so a file dropped there later shows up without a restart). Every file is
  switched to WAL journal mode (stored in the file), so a write-back can commit into a file
  that a JOIN is still reading.
* ``postgres`` (alias ``postgresql``): ``host``, ``user``, ``database`` and optionally
  ``port`` (5432), ``password``, ``schema`` (becomes the search_path), ``sslmode`` and
  ``connect_timeout`` (seconds, 10).
* both: ``read_only`` (false): SQLite files opened ``mode=ro``, PostgreSQL sessions
  ``default_transaction_read_only``; a write is ``DATASOURCE_READ_ONLY``.

SQLite files follow the file policy (``files``): under the gateway's home or
``$BYOM_DATA_DIRS``, never the gateway's own catalog, and existing (never created). SQL
passed through may not ATTACH, DETACH, VACUUM INTO or load_extension (``guards``).

The embedded default datasource ``local`` is a SQLite file under the gateway's home whose
``attach_dir`` is ``<home>/local``: ``test_data.home_rentals`` lives in
``<home>/local/test_data.sqlite``.

Write-back (``Datasource.open_writer``) streams rows into a table in chunks, and each
``TableWriter.write`` call is its own transaction: when a chunk fails, the chunks before it
stay committed and the error says how many rows were written. ``CREATE TABLE ... AS SELECT``
creates the table (in its own transaction) from the Python types of the first rows;
``INSERT INTO ... SELECT`` appends to an existing table, matching columns by name.

Modules: ``parameters`` (engines and PARAMETERS checks), ``engines`` (SQLAlchemy engines),
``datasource`` (reading and pass-through), ``writing`` and ``values`` (write-back), ``pool``
and ``embedded``, ``files`` (the file policy) and ``guards`` (refused statements).
"""

from datasources.datasource import DEFAULT_CHUNK_ROWS, Datasource
from datasources.embedded import EMBEDDED_NAME, embedded_record, embedded_schema_path
from datasources.files import (
    DATA_DIRS_ENV,
    CatalogNotADatasource,
    FilePolicy,
    PathNotAllowed,
    PathNotFound,
)
from datasources.guards import DatasourceReadOnly, StatementNotAllowed
from datasources.parameters import ENGINES, validate
from datasources.pool import DatasourcePool, check_files, open_datasource
from datasources.values import infer_column_type
from datasources.writing import WRITE_MODES, TableWriter

__all__ = [
    "DATA_DIRS_ENV",
    "DEFAULT_CHUNK_ROWS",
    "EMBEDDED_NAME",
    "ENGINES",
    "WRITE_MODES",
    "CatalogNotADatasource",
    "Datasource",
    "DatasourcePool",
    "DatasourceReadOnly",
    "FilePolicy",
    "PathNotAllowed",
    "PathNotFound",
    "StatementNotAllowed",
    "TableWriter",
    "check_files",
    "embedded_record",
    "embedded_schema_path",
    "infer_column_type",
    "open_datasource",
    "validate",
]
