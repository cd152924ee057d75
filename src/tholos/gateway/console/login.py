"""The login page (no session needed): the user names themself and picks their key file once;
the browser keeps the key in IndexedDB as a non-extractable WebCrypto key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tholos.gateway.console.web import COOKIE, page, sessions

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    session = sessions(request).get(request.cookies.get(COOKIE))
    return page(request, "login.html", session)
