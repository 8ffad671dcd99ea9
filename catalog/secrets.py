"""Datasource secrets at rest: the catalog stores them Fernet-encrypted.

A datasource parameter whose name is a secret (``catalog.records.SECRET_KEYS``, any case) is
stored as ``{"$enc": "fernet:v1", "value": "<Fernet token of its JSON>"}``; any other value
of such a parameter is a plain one written before schema version 7 (still read as is).

The key, a Fernet key (url-safe base64 of 32 bytes), is ``$BYOM_SECRET_KEY`` when set, else
the file ``<home>/secret.key``, created with mode 0600 on first use. It is loaded only when a
secret is first encrypted or decrypted, so a catalog without secrets never needs one.
Replicas sharing one catalog (``BYOM_CATALOG_URL``) must share ``BYOM_SECRET_KEY``: each
home's key file is its own.

Errors (``GatewayError``, 500: the gateway's configuration is at fault):
SECRET_KEY_INVALID (a malformed key), SECRET_KEY_UNSAFE (a key file readable by group or
others), SECRET_KEY_UNREADABLE (a key file that cannot be read or created),
SECRET_KEY_MISMATCH (a secret written with another key), SECRET_FORMAT_UNKNOWN (a secret
stored by a newer gateway).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from byom.errors import GatewayError
from catalog.db import default_home
from catalog.records import SECRET_KEYS

log = logging.getLogger(__name__)

ENV_VAR = "BYOM_SECRET_KEY"
KEY_FILE = "secret.key"
MARK = "$enc"
SCHEME = "fernet:v1"
_NEW_KEY_HINT = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def is_secret(name: str) -> bool:
    """True when a parameter called ``name`` holds a secret."""
    return str(name).lower() in SECRET_KEYS


def is_sealed(value: Any) -> bool:
    """True for the stored form of an encrypted value (any scheme)."""
    return isinstance(value, Mapping) and MARK in value


def _fernet(key: str | bytes, source: str) -> Fernet:
    try:
        return Fernet(key.strip())
    except ValueError as exc:  # binascii.Error is one too; never echo the key itself
        raise GatewayError(
            f"{source} is not a valid secret key: it must be a Fernet key (url-safe base64 of "
            f"32 bytes). Generate one with: {_NEW_KEY_HINT}",
            code="SECRET_KEY_INVALID",
        ) from exc


def _check_private(path: Path, mode: int) -> None:
    if mode & 0o077:
        raise GatewayError(
            f"The secret key file {path} is readable by group or others (mode "
            f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}",
            code="SECRET_KEY_UNSAFE",
        )


def _write_new_key(path: Path) -> None:
    """Create ``path`` holding a new key, unless another process already did.

    The key is written to a scratch file opened O_CREAT|O_EXCL with mode 0600, then linked
    to ``path``: the link fails when ``path`` exists, so two gateways starting together
    end up with the one key that got there first, and nobody ever reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(scratch, path)
        except FileExistsError:
            pass  # another gateway won the race: its key is the key
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            # No hard links here: create the file itself exclusively instead.
            _write_exclusive(path, scratch.read_bytes())
    finally:
        scratch.unlink(missing_ok=True)


def _write_exclusive(path: Path, key: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as out:
        out.write(key)


def _read_key_file(path: Path) -> Fernet:
    """The key in ``path``, created first when missing; refused when others may read it."""
    try:
        if not path.exists():
            _write_new_key(path)
            log.info("created the secret key file %s: back it up with the catalog", path)
        with path.open("rb") as src:
            _check_private(path, os.fstat(src.fileno()).st_mode)
            return _fernet(src.read(), f"The secret key file {path}")
    except OSError as exc:  # say, a home this user may not write
        raise GatewayError(
            f"Cannot read or create the secret key file {path}: {exc.strerror or exc}. Fix "
            f"its permissions, or set {ENV_VAR}.",
            code="SECRET_KEY_UNREADABLE",
        ) from exc


class SecretBox:
    """Seals and reveals datasource secrets with one Fernet key, loaded on first use.

    ``key`` (tests, embedding) beats ``$BYOM_SECRET_KEY``, which beats ``<home>/secret.key``
    (``home`` defaults to ``catalog.db.default_home()``, read at first use). ``shared`` is
    set by a catalog other gateways may share: a key from a file then gets a warning.
    """

    def __init__(self, home: Path | None = None, *, key: str | bytes | None = None) -> None:
        self._home = Path(home) if home is not None else None
        self._key = key
        self._cipher: Fernet | None = None
        self._source = ""
        self._lock = threading.Lock()
        self.shared = False

    @property
    def key_path(self) -> Path:
        """Where the key file is (or would be)."""
        return (self._home if self._home is not None else default_home()) / KEY_FILE

    @property
    def source(self) -> str:
        """Which key this box uses, in words (for error messages; never the key)."""
        if self._key is not None:
            return "the key given to the catalog"
        if os.environ.get(ENV_VAR):
            return ENV_VAR
        return f"the key file {self.key_path}"

    def cipher(self) -> Fernet:
        """The Fernet of this box's key, loaded (or the key file created) on first call."""
        with self._lock:
            if self._cipher is None:
                self._source = self.source
                env = os.environ.get(ENV_VAR)
                if self._key is not None:
                    self._cipher = _fernet(self._key, "The key given to the catalog")
                elif env:
                    self._cipher = _fernet(env, ENV_VAR)
                else:
                    self._cipher = _read_key_file(self.key_path)
                    if self.shared:
                        log.warning(
                            "the catalog may be shared by several gateways, but its secrets "
                            "are encrypted with %s: set the same %s on every replica",
                            self.key_path, ENV_VAR,
                        )  # fmt: skip
            return self._cipher

    def seal(self, value: Any) -> dict[str, str]:
        """The stored form of the secret ``value`` (any JSON value)."""
        token = self.cipher().encrypt(json.dumps(value).encode())
        return {MARK: SCHEME, "value": token.decode()}

    def reveal(self, stored: Any, *, datasource: str, parameter: str) -> Any:
        """The secret in ``stored`` (a legacy plain value is returned as is)."""
        if not is_sealed(stored):
            return stored
        if stored.get(MARK) != SCHEME or not isinstance(stored.get("value"), str):
            raise GatewayError(
                f"The secret '{parameter}' of datasource '{datasource}' is stored as "
                f"'{stored.get(MARK)}', which this gateway cannot read: upgrade byom-gateway.",
                code="SECRET_FORMAT_UNKNOWN",
                datasource=datasource,
            )
        cipher = self.cipher()
        try:
            plain = cipher.decrypt(stored["value"].encode())
        except InvalidToken as exc:
            raise GatewayError(
                f"Cannot decrypt the secret '{parameter}' of datasource '{datasource}': it was "
                f"encrypted with another key than {self._source}. Give this gateway the key "
                f"the catalog was written with ({ENV_VAR}, or the secret.key file of the home "
                f"that wrote it); gateways sharing a catalog need the same {ENV_VAR}.",
                code="SECRET_KEY_MISMATCH",
                datasource=datasource,
            ) from exc
        return json.loads(plain)

    def seal_parameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """``parameters`` with every plain secret value sealed (sealed ones left alone)."""
        return {
            k: self.seal(v) if is_secret(k) and v is not None and not is_sealed(v) else v
            for k, v in parameters.items()
        }

    def reveal_parameters(
        self, parameters: Mapping[str, Any], *, datasource: str
    ) -> dict[str, Any]:
        """``parameters`` with every sealed secret decrypted: only for connecting."""
        return {
            k: self.reveal(v, datasource=datasource, parameter=k) if is_secret(k) else v
            for k, v in parameters.items()
        }
