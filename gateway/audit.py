"""The audit log: one JSON line per DDL statement and per authentication failure.

Written to ``$BYOM_HOME/audit.jsonl`` (each replica its own file, in its own home) and read
back as the table ``mindsdb.audit`` (admin only). A line is ``{"time", "token", "kind",
"object", "outcome", "code", "client"}``: ``token`` is the name of the token that ran the
statement (null when authentication is off or the gateway is embedded), ``outcome`` is
``ok``, ``error`` or ``denied``, ``code`` the error code of an outcome other than ok.
Statement text is not logged: it may hold a datasource's password.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway import plans as p
from gateway import statements as st
from gateway.auth import native_reads_only

log = logging.getLogger("byom.audit")

AUDIT_FILE = "audit.jsonl"
COLUMNS = ["time", "token", "kind", "object", "outcome", "code", "client"]
# Bytes of the log read back for mindsdb.audit: the newest lines when the file is bigger.
READ_LIMIT = 16 * 1024 * 1024


def ddl_event(plan: Any) -> tuple[str, str | None] | None:
    """``(kind, object)`` when ``plan`` changes the catalog or a datasource, else None."""
    match plan:
        case p.RegisterPlan(spec=spec):
            return "CREATE MODEL", spec.name
        case p.TrainBuiltinPlan(spec=spec, retrain=retrain):
            return ("RETRAIN" if retrain else "CREATE MODEL"), spec.name
        case p.ActivateVersionPlan(model=model, version=version):
            return "ACTIVATE VERSION", f"{model.name} v{version}"
        case p.CancelTrainingPlan(model=model):
            return "CANCEL TRAINING", model.name
        case p.WriteBackPlan(datasource=ds, table=table, mode=mode):
            return ("CREATE TABLE" if mode == "create" else "INSERT"), f"{ds}.{table}"
        case st.CreateDatabase(name=name):
            return "CREATE DATABASE", name
        case st.DropDatabase(name=name):
            return "DROP DATABASE", name
        case st.DropModel(name=name):
            return "DROP MODEL", name
        case st.CreateProject(name=name):
            return "CREATE PROJECT", name
        case st.DropProject(name=name):
            return "DROP PROJECT", name
        case p.NativePlan(datasource=ds, sql=sql) if not native_reads_only(sql):
            return "NATIVE WRITE", ds
    return None


class AuditLog:
    """Appends audit lines to one file; safe to call from any thread."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / AUDIT_FILE
        self._lock = threading.Lock()

    def record(
        self,
        kind: str,
        obj: str | None,
        outcome: str,
        *,
        token: str | None = None,
        code: str | None = None,
        client: str | None = None,
    ) -> None:
        """Append one line. A failure to write is logged, never raised: the statement it
        records has already run (or been refused)."""
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "token": token,
            "kind": kind,
            "object": obj,
            "outcome": outcome,
            "code": code,
            "client": client,
        }
        data = json.dumps(line, ensure_ascii=False) + "\n"
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, data.encode("utf-8"))
                finally:
                    os.close(fd)
        except OSError as exc:
            log.error("cannot write the audit log %s: %s (%s)", self.path, exc, line)


def read_rows(home: Path) -> list[list[Any]]:
    """The lines of ``home``'s audit log as rows of ``COLUMNS``, oldest first (the newest
    ``READ_LIMIT`` bytes of it)."""
    path = Path(home) / AUDIT_FILE
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - READ_LIMIT))
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if len(data) >= READ_LIMIT and lines:
        lines = lines[1:]  # the first line was cut in the middle
    rows = []
    for text in lines:
        try:
            item = json.loads(text)
        except json.JSONDecodeError:
            continue  # a line cut by a crash mid-write
        rows.append([item.get(c) for c in COLUMNS])
    return rows
