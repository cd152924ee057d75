"""REST routes of deposit monitoring and webhooks: balances and deposits per wallet, webhook
subscriptions and their delivery log. They answer 409 `no_monitor` on a gateway started
without chain connectors (`attach` has not been called)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from tholos.connectors.base import ConnectorError
from tholos.gateway.deposit_watch import DepositWatcher
from tholos.gateway.http_errors import responses
from tholos.gateway.json_number import WHOLE
from tholos.gateway.service import GatewayError
from tholos.gateway.wallets import WalletIdParam, _gw, _wallet
from tholos.gateway.webhook_key import MAX_GRACE, WebhookKey, retired
from tholos.gateway.webhooks import EVENT_TYPES, Webhooks

router = APIRouter(tags=["monitoring"])
WEBHOOK_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Monitor:
    watcher: DepositWatcher
    webhooks: Webhooks


def attach(app: Any, monitor: Monitor) -> None:
    """Serve `monitor` from this app's routes."""
    app.state.monitor = monitor


def monitor_of(request: Request) -> Monitor:
    """The app's monitor; 409 `no_monitor` when the gateway runs without one."""
    monitor: Monitor | None = getattr(request.app.state, "monitor", None)
    if monitor is None:
        raise GatewayError(
            409,
            "no_monitor",
            "this gateway runs without chain connectors (`monitor` in gateway.json)",
        )
    return monitor


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(max_length=2048, description="http(s) URL that receives the POSTs")
    events: list[str] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description=" | ".join(sorted(EVENT_TYPES))
    )


WebhookIdParam = Annotated[str, Path(max_length=64, description="webhook id (32 hex digits)")]


@router.get("/v1/wallets/{wallet_id}/balances", responses=responses(404, 409, 503))
async def wallet_balances(wallet_id: WalletIdParam, request: Request) -> dict[str, Any]:
    """The wallet's balance per asset over its watched addresses, read from its connector."""
    monitor = monitor_of(request)
    ref, _ = _wallet(_gw(request), wallet_id)
    try:
        return monitor.watcher.balances(ref)
    except LookupError as exc:
        raise GatewayError(503, "no_connector", str(exc)) from None
    except ConnectorError as exc:
        raise GatewayError(503, "connector_error", str(exc)) from None


@router.get("/v1/wallets/{wallet_id}/deposits", responses=responses(404, 409))
async def wallet_deposits(wallet_id: WalletIdParam, request: Request) -> dict[str, Any]:
    """Deposits seen to the wallet's watched addresses, newest first, with confirmations."""
    monitor = monitor_of(request)
    ref, _ = _wallet(_gw(request), wallet_id)
    return {"wallet_id": ref.wallet_id, "deposits": monitor.watcher.deposits(ref.wallet_id)}


@router.post("/v1/webhooks", status_code=201, responses=responses(400, 409))
async def add_webhook(body: NewWebhook, request: Request) -> dict[str, Any]:
    """Subscribe a URL to events; deliveries are signed with the key at /v1/webhooks/key."""
    try:
        return monitor_of(request).webhooks.add(body.url, body.events).summary()
    except ValueError as exc:
        raise GatewayError(400, "bad_request", str(exc)) from None


@router.get("/v1/webhooks", responses=responses(409))
async def list_webhooks(request: Request) -> dict[str, Any]:
    return {"webhooks": [h.summary() for h in monitor_of(request).webhooks.subscriptions()]}


def _published(webhooks: Webhooks) -> dict[str, Any]:
    return {
        "algorithm": "ed25519",
        "public_key": webhooks.public_key.hex(),
        "previous": retired(webhooks.db, time.time()),
    }


@router.get("/v1/webhooks/key", responses=responses(409))
async def webhook_key(request: Request) -> dict[str, Any]:
    """The Ed25519 public key every delivery's X-Tholos-Signature verifies under, and in
    `previous` the keys rotated out that receivers should still accept (until their `until`)."""
    return _published(monitor_of(request).webhooks)


class KeyRotation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    grace_seconds: Annotated[int, Field(ge=0, le=int(MAX_GRACE)), WHOLE] = Field(
        default=7 * 86_400, description="how long the old public key stays listed"
    )


@router.post("/v1/webhooks/key/rotate", responses=responses(409))
async def rotate_webhook_key(body: KeyRotation, request: Request) -> dict[str, Any]:
    """Sign deliveries with a new key from now on; the old public key stays in `previous`
    for `grace_seconds`. 409 `no_key_file` for a monitor whose key is not in a key file."""
    webhooks = monitor_of(request).webhooks
    key = webhooks.signer
    if not isinstance(key, WebhookKey):
        raise GatewayError(409, "no_key_file", "this monitor's webhook key is not in a key file")
    key.rotate(webhooks.db, float(body.grace_seconds), time.time())  # a local file: quick
    return _published(webhooks)


def _hook_id(webhook_id: str, webhooks: Webhooks) -> str:
    if not WEBHOOK_ID.match(webhook_id) or webhooks.get(webhook_id) is None:
        raise GatewayError(404, "unknown_webhook", f"unknown webhook {webhook_id[:64]!r}")
    return webhook_id


@router.delete("/v1/webhooks/{webhook_id}", responses=responses(404, 409))
async def remove_webhook(webhook_id: WebhookIdParam, request: Request) -> dict[str, Any]:
    webhooks = monitor_of(request).webhooks
    webhooks.remove(_hook_id(webhook_id, webhooks))
    return {"webhook_id": webhook_id, "removed": True}


@router.get("/v1/webhooks/{webhook_id}/deliveries", responses=responses(404, 409))
async def webhook_deliveries(webhook_id: WebhookIdParam, request: Request) -> dict[str, Any]:
    """Every delivery attempt of this subscription, newest first (HTTP status or error)."""
    webhooks = monitor_of(request).webhooks
    return {
        "webhook_id": webhook_id,
        "deliveries": webhooks.deliveries(_hook_id(webhook_id, webhooks)),
    }


def poll_once(gw: Any, monitor: Monitor, now: float) -> tuple[int, int]:
    """One round of monitoring: scan every wallet's new blocks, then attempt due deliveries;
    (events emitted, deliveries made). A gateway runs it on a timer."""
    from tholos.gateway.wallets import wallet_ref

    refs, offset = [], 0
    while True:
        page = gw.store.wallets.page(1000, offset)
        refs += [wallet_ref(gw.key(row.key_id), row) for row in page.rows]
        offset += len(page.rows)
        if not page.rows or offset >= page.total:
            break
    events = monitor.watcher.poll(refs, now)
    return events, monitor.webhooks.deliver_due(now)
