"""Circuit breakers, one per model endpoint: stop calling an endpoint that keeps failing.

Pure bookkeeping (no I/O, an injectable clock), used by ``adapters.http.post_json``:

* **closed**: calls go through; each failed call (connect error, timeout, HTTP 5xx, a
  dropped connection - after its retries) adds one to a run of consecutive failures, a
  successful one ends the run;
* **open**: after ``threshold`` consecutive failures calls fail fast, without touching the
  network, for ``cooldown`` seconds - a dead endpoint costs nothing per call, and an
  overloaded one gets room to recover;
* **half-open**: after the cool-down one call (the probe) goes through while the others
  still fail fast; its success closes the breaker, its failure opens it for another
  cool-down. A probe that ends without a verdict (cancelled, or a user error such as 4xx)
  frees the slot for the next call.

``threshold`` 0 disables the breakers. Only endpoints with a failure on record have an
entry, so the table stays as small as the set of failing endpoints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "Admission", "Breakers", "Snapshot"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(frozen=True)
class Snapshot:
    """One breaker's state; ``retry_in_s``: seconds until the next probe (open only)."""

    state: str
    failures: int = 0
    retry_in_s: float | None = None
    probing: bool = False  # half-open: a probe call is in flight

    def describe(self) -> str:
        """In words, for DESCRIBE: ``open (5 failures; next try in 27s)``."""
        if self.state == CLOSED:
            return CLOSED if not self.failures else f"{CLOSED} ({_failures(self.failures)})"
        if self.state == OPEN:
            return f"{OPEN} ({_failures(self.failures)}; next try in {self.retry_in_s:.0f}s)"
        probe = "a probe call is in flight" if self.probing else "the next call probes"
        return f"{HALF_OPEN} ({_failures(self.failures)}; {probe})"

    def to_dict(self) -> dict[str, Any]:
        """As JSON, for ``GET /healthz``."""
        answer: dict[str, Any] = {"state": self.state, "failures": self.failures}
        if self.retry_in_s is not None:
            answer["retry_in_s"] = round(self.retry_in_s, 1)
        return answer


@dataclass(frozen=True)
class Admission:
    """Whether a call may go: ``refused`` is the breaker's state when it may not; ``probe``
    says the call is the half-open breaker's one probe."""

    refused: Snapshot | None = None
    probe: bool = False


GO = Admission()


@dataclass
class _Entry:
    failures: int = 0
    opened_at: float | None = None  # when the breaker (last) opened; None: closed
    probing: bool = False


class Breakers:
    """The breakers of all endpoints, by key (``adapters.urls.endpoint_key``)."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def admit(self, key: str) -> Admission:
        """May a call to ``key`` go now? Claims the probe slot of a half-open breaker."""
        entry = self._entries.get(key)
        if entry is None or entry.opened_at is None:
            return GO  # closed: the usual case, one dict lookup
        snapshot = self._snapshot(entry)
        if snapshot.state == HALF_OPEN and not entry.probing:
            entry.probing = True
            return Admission(probe=True)
        return Admission(refused=snapshot)

    def done(self, key: str, admission: Admission, ok: bool | None) -> None:
        """Record how an admitted call ended: True succeeded, False failed (an endpoint
        fault), None no verdict (cancelled, or the caller's own mistake)."""
        if ok is None:
            entry = self._entries.get(key)
            if entry is not None and admission.probe:
                entry.probing = False
            return
        if ok:
            self._entries.pop(key, None)
            return
        if self.threshold <= 0:
            return
        entry = self._entries.setdefault(key, _Entry())
        entry.failures += 1
        if admission.probe:
            entry.probing = False
            entry.opened_at = self.clock()  # the probe failed: another cool-down
        elif entry.opened_at is None and entry.failures >= self.threshold:
            entry.opened_at = self.clock()
        # A call admitted before the breaker opened and failing after: counted, but the
        # cool-down is not pushed back by it.

    def state(self, key: str) -> Snapshot:
        """The breaker of ``key`` now (closed when it has no failure on record)."""
        entry = self._entries.get(key)
        return Snapshot(CLOSED) if entry is None else self._snapshot(entry)

    def not_closed(self) -> dict[str, Snapshot]:
        """Endpoints whose breaker is open or half-open, by key (for ``GET /healthz``)."""
        states = {key: self._snapshot(entry) for key, entry in self._entries.items()}
        return {key: s for key, s in sorted(states.items()) if s.state != CLOSED}

    def _snapshot(self, entry: _Entry) -> Snapshot:
        if entry.opened_at is None:
            return Snapshot(CLOSED, entry.failures)
        left = entry.opened_at + self.cooldown - self.clock()
        if left > 0:
            return Snapshot(OPEN, entry.failures, retry_in_s=left)
        return Snapshot(HALF_OPEN, entry.failures, probing=entry.probing)


def _failures(n: int) -> str:
    return f"{n} failure{'s' if n != 1 else ''}"
