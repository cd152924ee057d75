"""The client's role is checked against the template of the route the router picks, without a
FastAPI dependency: every documented route is found, with the permission of the table."""

from __future__ import annotations

import re

from tholos.gateway.access import RouteRoles
from tholos.gateway.api import create_app
from tholos.gateway.identities import PERMISSIONS, permission_for

APP = create_app(lambda: None)  # type: ignore[arg-type,return-value]


def _needed(method: str, path: str) -> tuple[str, str] | None:
    return RouteRoles().needed({"type": "http", "app": APP, "method": method, "path": path})


def test_every_documented_route_is_checked() -> None:
    spec = APP.openapi()
    seen = 0
    for template, ops in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x" * 32, template)
        for method in ops:
            m = method.upper()
            assert _needed(m, concrete) == (permission_for(m, template), template), (m, template)
            seen += 1
    assert seen > 40


def test_the_table_names_real_routes() -> None:
    for (method, template), permission in PERMISSIONS.items():
        concrete = re.sub(r"\{[^}]+\}", "x" * 32, template)
        assert _needed(method, concrete) == (permission, template)


def test_unrouted_requests_are_left_to_the_router() -> None:
    assert _needed("POST", "/v1/no-such-route") is None
    assert _needed("DELETE", "/v1/keys") is None  # 405 from the router, not 403
    assert _needed("GET", "/console/static/app.js") is None  # static files: no API route


def test_a_literal_route_wins_over_a_template_registered_after_it() -> None:
    assert _needed("GET", "/v1/keys/import") == ("read", "/v1/keys/import")
    assert _needed("POST", "/v1/keys/import") == ("operate", "/v1/keys/import")
