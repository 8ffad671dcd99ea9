"""A real HTTP server for an ASGI app, in a thread of the test process.

The gateway reaches it over real TCP, just like a user's model server; tests keep a handle
on what the app saw.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serving(app: Any, what: str = "test server") -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL ``http://127.0.0.1:<port>``.

    The socket is bound here and handed to uvicorn, so no other process can take the port
    between choosing it and listening on it.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # A request still running at the end (a test's hanging route) is cancelled after 1 s;
    # uvicorn would wait for it, and the join below would give up only after 30 s.
    config = uvicorn.Config(app, log_level="error", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start on port {port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
