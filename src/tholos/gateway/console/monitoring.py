"""The console's monitoring view: per wallet its deposits (confirmations, status) and balances
per asset, the webhook subscriptions with their delivery log, and the chain outbox. It reads
what the REST routes read (monitoring_api's monitor, the store's outbox) and the page polls two
fragments with htmx: the stored state every few seconds, the balances (chain reads) less often.
A gateway without a monitor says so (the routes' 409 `no_monitor`) and still shows its outbox."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tholos.connectors.base import ConnectorError
from tholos.gateway.console.web import gateway, page, session_of
from tholos.gateway.errors import GatewayError
from tholos.gateway.monitoring_api import Monitor, monitor_of
from tholos.gateway.wallets import wallet_ref

router = APIRouter()
WALLETS_SHOWN = 100
DEPOSITS_SHOWN = 20
DELIVERIES_SHOWN = 20
OUTBOX_SHOWN = 50


def _monitor(request: Request) -> tuple[Monitor | None, str]:
    """The gateway's monitor, or None and the message its REST routes answer with."""
    try:
        return monitor_of(request), ""
    except GatewayError as exc:
        return None, f"{exc} ({exc.status} {exc.code})"


def _wallet_rows(request: Request) -> list[Any]:
    return list(gateway(request).store.wallets.page(WALLETS_SHOWN).rows)


def live_view(request: Request) -> dict[str, Any]:
    """What the database holds: deposits per wallet, webhooks with their log, the outbox."""
    monitor, off = _monitor(request)
    wallets = []
    hooks = []
    if monitor is not None:
        for row in _wallet_rows(request):
            connector = monitor.watcher.connectors.get(row.chain)
            wallets.append(
                {
                    **row.summary(),
                    "watched": connector is not None,
                    "required": 0 if connector is None else monitor.watcher.required(connector),
                    "deposits": monitor.watcher.deposits(row.wallet_id, DEPOSITS_SHOWN),
                }
            )
        hooks = [
            {
                **h.summary(),
                "deliveries": monitor.webhooks.deliveries(h.webhook_id, DELIVERIES_SHOWN),
            }
            for h in monitor.webhooks.subscriptions()
        ]
    rows, total = gateway(request).store.outbox.page(OUTBOX_SHOWN, 0, None, None, None)
    return {
        "no_monitor": off,
        "wallets": wallets,
        "webhooks": hooks,
        "outbox": [r.summary() for r in rows],
        "outbox_total": total,
    }


def _balances(monitor: Monitor, refs: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Each wallet's balances per asset, read now from its chain's connector (or why not)."""
    out = []
    for ref, row in refs:
        entry: dict[str, Any] = {**row.summary(), "balances": [], "height": None, "error": ""}
        try:
            got = monitor.watcher.balances(ref)
            entry["balances"], entry["height"] = got["balances"], got["height"]
        except LookupError as exc:
            entry["error"] = str(exc)
        except ConnectorError as exc:
            entry["error"] = f"chain backend: {exc}"
        out.append(entry)
    return out


async def balances_view(request: Request) -> dict[str, Any]:
    monitor, off = _monitor(request)
    if monitor is None:
        return {"no_monitor": off, "balances": []}
    gw = gateway(request)
    refs = [(wallet_ref(gw.key(r.key_id), r), r) for r in _wallet_rows(request)]
    # connectors block on the network: off the event loop
    return {"no_monitor": "", "balances": await asyncio.to_thread(_balances, monitor, refs)}


@router.get("/monitoring", response_class=HTMLResponse)
async def monitoring_page(request: Request) -> HTMLResponse:
    s = session_of(request)
    return page(
        request, "monitoring.html", s, **{**live_view(request), **await balances_view(request)}
    )


@router.get("/monitoring/live", response_class=HTMLResponse)
async def monitoring_live(request: Request) -> HTMLResponse:
    """The deposits, webhooks and outbox section alone (the page polls it)."""
    s = session_of(request)
    return page(request, "monitoring_live.html", s, **live_view(request))


@router.get("/monitoring/balances", response_class=HTMLResponse)
async def monitoring_balances(request: Request) -> HTMLResponse:
    """The balances section alone (polled less often: it reads every chain)."""
    s = session_of(request)
    return page(request, "monitoring_balances.html", s, **await balances_view(request))
