"""The web console at /console: server-rendered pages (Jinja2), a small page script that signs
with the user's own Ed25519 key in the browser (WebCrypto, non-extractable), vendored htmx."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from tholos.gateway.console import actions, login, monitoring, pages
from tholos.gateway.console.web import HERE, PREFIX, ConsoleState, NotLoggedIn, Refused, answer
from tholos.gateway.console.web import to_login as _to_login


def install(app: FastAPI) -> None:
    """Serve the console from this app (same TLS, same client-certificate gate)."""
    app.state.console = ConsoleState()
    app.include_router(login.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(pages.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(actions.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(monitoring.router, prefix=PREFIX, include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, exc: NotLoggedIn) -> Response:
        return _to_login(request)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return answer({"error": exc.message}, exc.status)
