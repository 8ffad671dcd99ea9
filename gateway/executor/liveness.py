"""A gateway's owner id, and what it does about the work of gateways that are gone.

Replicas share one catalog, so at start-up a gateway must not mark every running training
job as interrupted: most may be another live replica's. Each gateway has an owner id,
``host:pid:tag`` (``make_owner``), recorded on the jobs it starts and the statements it
runs (``catalog.liveness``). ``recover`` (at start-up) marks ``error`` what surely belongs
to no live gateway: jobs from before owners were recorded, jobs of a process of this host
that is dead (a restarted single gateway marks its predecessor's at once), and jobs and
statements whose owner stopped beating. ``heartbeat`` (a background task, every
``settings.heartbeat_interval`` seconds) beats for this gateway's jobs and statements and
marks those of owners silent for ``settings.heartbeat_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from catalog.repository import Catalog

log = logging.getLogger("byom.gateway")


def make_owner() -> str:
    """A new owner id: ``<hostname>:<pid>:<8 hex digits>`` (unique per gateway object)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dead_here(owner: str) -> bool:
    """Whether ``owner`` was a process of this host that no longer runs. False when it may
    live: another host's, this process's own, or an id of another form."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, as another user's
        return False
    return False


def _stale_before(timeout: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=timeout)


def recover(catalog: Catalog, owner: str, timeout: float) -> list[str]:
    """At start-up: mark ``error`` the jobs and statements that belong to no live gateway,
    with the predictors and versions they were training; return those predictors' names."""
    dead = [o for o in catalog.running_owners() if o is not None and dead_here(o)]
    stale = _stale_before(timeout)
    names = catalog.fail_lost(dead_owners=dead, unowned=True, stale_before=stale, alive=owner)
    return sorted({*names, *catalog.fail_orphans(stale)})


def sweep(catalog: Catalog, owner: str, timeout: float) -> list[str]:
    """One heartbeat: beat for ``owner``'s jobs and statements, then mark ``error`` those of
    owners silent for ``timeout`` seconds; return the predictors marked."""
    catalog.beat(owner)
    stale = _stale_before(timeout)
    names = catalog.fail_lost(stale_before=stale, alive=owner)
    return sorted({*names, *catalog.fail_orphans(stale)})


async def heartbeat(
    catalog: Catalog,
    owner: str,
    interval: float,
    timeout: float,
    on_cancel: Callable[[str], Awaitable[object]] | None = None,
) -> None:
    """``sweep`` every ``interval`` seconds, in a worker thread, until cancelled. A failed
    sweep (the catalog unreachable for a while) is logged and tried again next time. Then
    ``on_cancel(name)`` for each of this owner's jobs another replica asked to cancel
    (CANCEL TRAINING answered by a replica that does not run the job)."""
    while True:
        await asyncio.sleep(interval)
        running = asyncio.ensure_future(asyncio.to_thread(sweep, catalog, owner, timeout))
        try:
            lost = await asyncio.shield(running)
        except asyncio.CancelledError:
            # Let the sweep's transaction end before the caller closes the catalog.
            await asyncio.gather(running, return_exceptions=True)
            raise
        except Exception:  # noqa: BLE001 - transient catalog errors must not end the loop
            log.warning(
                "heartbeat of %s failed; trying again in %ss", owner, interval, exc_info=True
            )
            continue
        if lost:
            log.warning("marked training of lost gateways as error: %s", ", ".join(lost))
        if on_cancel is not None:
            try:
                asked = await asyncio.to_thread(catalog.cancel_requests, owner)
            except Exception:  # noqa: BLE001 - as a failed sweep: next time
                log.warning("reading cancel requests failed", exc_info=True)
                continue
            for name in asked:
                log.info("cancelling the training of %s, as another replica was asked", name)
                await on_cancel(name)
