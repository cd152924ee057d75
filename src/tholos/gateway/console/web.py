"""What every console route shares: templates, the session of a request, CSRF, the governance
view (document, users) and JSON answers for the browser's script."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tholos.gateway.console.sessions import Session, Sessions
from tholos.gateway.requests import GovernedSigning, governed
from tholos.gateway.service import Gateway
from tholos.governance.documents import GovernanceDocument
from tholos.governance.requests import Intent, SigningRequest

HERE = Path(__file__).parent
COOKIE = "tholos_console"
PREFIX = "/console"

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)
templates.filters["utc"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


@dataclass
class Drafts:
    """Transfers built but not yet signed by their initiator: draft id -> (user, intent, payload,
    expiry as unix time)."""

    items: dict[str, tuple[str, Intent, bytes, float]] = field(default_factory=dict)


@dataclass
class ConsoleState:
    sessions: Sessions | None = None
    """Opened on the gateway's store at first use (the gateway starts after the app is built)."""
    drafts: Drafts = field(default_factory=Drafts)


class NotLoggedIn(Exception):
    """No live session: pages redirect to the login page, script calls get 401."""


class Refused(Exception):
    """A console action refused with a message for the user (status, text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def console_state(request: Request) -> ConsoleState:
    st: ConsoleState = request.app.state.console
    return st


def sessions(request: Request) -> Sessions:
    """The console's sessions, kept in the gateway's SQLite store (hashed tokens)."""
    st = console_state(request)
    if st.sessions is None:
        st.sessions = Sessions(gateway(request).store.db)
    return st.sessions


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def signing(request: Request) -> GovernedSigning:
    return governed(gateway(request))


def session_of(request: Request) -> Session:
    s = sessions(request).get(request.cookies.get(COOKIE))
    if s is None:
        raise NotLoggedIn
    return s


def checked_post(request: Request) -> Session:
    """The session of a POST whose X-CSRF-Token header matches it (403 otherwise)."""
    s = session_of(request)
    if not Sessions.csrf_ok(s, request.headers.get("x-csrf-token")):
        raise Refused(403, "missing or wrong CSRF token: reload the page")
    return s


async def document(request: Request) -> GovernanceDocument | None:
    """The newest governance document any node holds (None: an ungoverned cluster)."""
    state = await signing(request).state()
    doc = state.get("document")
    if doc is None:
        return None
    return GovernanceDocument.model_validate_json(json.dumps(doc["document"]))


async def governed_doc(request: Request) -> GovernanceDocument:
    doc = await document(request)
    if doc is None:
        raise Refused(409, "this cluster runs without governance: the console needs it")
    return doc


def require_role(doc: GovernanceDocument, user: str, *roles: str) -> None:
    for u in doc.users:
        if u.user_id == user and any(r in u.roles for r in roles):
            return
    raise Refused(403, f"{user} needs the role {' or '.join(roles)} for this")


def page(request: Request, name: str, session: Session | None, **ctx: Any) -> HTMLResponse:
    html = templates.get_template(name).render(
        prefix=PREFIX, session=session, path=request.url.path, **ctx
    )
    return HTMLResponse(
        html,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def signed_request(req: SigningRequest) -> dict[str, Any]:
    """What the page script hashes (and shows the intent from): the parts of the request digest."""
    return {
        "cluster_id": req.cluster_id,
        "intent": req.intent.model_dump(mode="json"),
        "payload": req.payload,
    }


def answer(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def to_login(request: Request) -> Response:
    if request.method == "GET":
        return RedirectResponse(f"{PREFIX}/login", status_code=303)
    return answer({"error": "not logged in (or the session expired): log in again"}, 401)
