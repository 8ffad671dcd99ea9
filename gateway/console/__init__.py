"""The web console: static files (no build step, no CDN) served at ``/`` and ``/console/``.

index.html, console.js and console.css ship in this package. They load without a token
(``gateway.auth_middleware`` leaves ``/`` and ``/console/`` open); the page then asks for
a token and sends it on every API call, so the data stays behind authentication.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

from byom.errors import NotFound

HERE = Path(__file__).parent
PREFIX = "/console/"
# Only these files, by name: not StaticFiles over this directory, which would also serve
# the package's Python source.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


def mount_console(app: FastAPI) -> None:
    """Serve the console's page at ``/`` and its assets under ``/console/``."""

    @app.get("/", include_in_schema=False)
    async def console_page() -> FileResponse:
        return _asset("index.html")

    @app.get(PREFIX + "{name}", include_in_schema=False)
    async def console_asset(name: str) -> FileResponse:
        return _asset(name)


def _asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"The console has no file '{name}'.", code="NOT_FOUND")
    # no-cache: a browser revalidates (ETag), so an upgraded gateway serves its new console
    headers = {"Cache-Control": "no-cache"}
    return FileResponse(HERE / name, media_type=ASSETS[name], headers=headers)
