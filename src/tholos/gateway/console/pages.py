"""The console's pages (GET): server-rendered from the gateway's own state and the nodes'
governance state; nothing here changes anything."""

from __future__ import annotations

import json
from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tholos.chains.base import ChainError
from tholos.chains.registry import chain_for
from tholos.chains.wallet_kinds import ADDRESS_TYPES
from tholos.gateway.console.transfers import ENCODINGS, wallet
from tholos.gateway.console.web import (
    document,
    gateway,
    page,
    session_of,
    signed_request,
    signing,
)
from tholos.gateway.errors import GatewayError
from tholos.governance.documents import GovernanceDocument
from tholos.governance.engine import rules_for
from tholos.governance.requests import Intent
from tholos.governance.transactions import policy_items

router = APIRouter()
ADDRESSES_SHOWN = 5


def qr_svg(text: str) -> str:
    """A deposit address as an inline SVG QR code (rendered here: no image service)."""
    return str(segno.make(text, error="m").svg_inline(scale=4, border=2, title=text))


async def _kill_switch(request: Request) -> dict[str, Any]:
    """Per node: engaged or not, from each node's own governance state."""
    states = await signing(request).broadcast("state", {})
    nodes = {str(i): s for i, s in sorted(states.items())}
    engaged = [i for i, s in nodes.items() if s.get("kill_switch")]
    return {"nodes": nodes, "engaged": engaged, "any": bool(engaged)}


@router.get("/", response_class=HTMLResponse)
@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def dashboard(request: Request) -> HTMLResponse:
    s = session_of(request)
    gw = gateway(request)
    nodes = gw.nodes.status()
    pending = [
        r for r in signing(request).list_requests(None, 200) if r["status"] not in _FINAL_STATES
    ]
    return page(
        request,
        "dashboard.html",
        s,
        nodes=nodes,
        threshold=gw.threshold,
        count={st: sum(1 for n in nodes if n["state"] == st) for st in _NODE_STATES},
        keys=gw.store.count_keys(),
        wallets=gw.store.wallets.page(1).total,
        pending=pending,
        kill=await _kill_switch(request),
    )


_NODE_STATES = ("up", "slow", "down", "excluded")
_FINAL_STATES = frozenset({"signed", "refused", "cancelled", "rejected", "expired", "failed"})


@router.get("/wallets", response_class=HTMLResponse)
async def wallets_page(request: Request) -> HTMLResponse:
    s = session_of(request)
    rows = gateway(request).store.wallets.page(500).rows
    return page(
        request,
        "wallets.html",
        s,
        wallets=[r.summary() for r in rows],
        address_types=ADDRESS_TYPES,
    )


@router.get("/wallets/{wallet_id}", response_class=HTMLResponse)
async def wallet_page(request: Request, wallet_id: str) -> HTMLResponse:
    s = session_of(request)
    gw = gateway(request)
    ref, key_id = wallet(gw, wallet_id)
    chain = chain_for(ref.chain)
    assert chain is not None
    addresses = []
    for i in range(ADDRESSES_SHOWN):
        try:
            a = chain.address(ref, i, change=False)
        except ChainError:  # e.g. a threshold Solana key has address 0 only
            break
        addresses.append(
            {"index": i, "path": a.path, "address": a.address, "qr": qr_svg(a.address)}
        )
    row = gw.store.wallets.get(wallet_id)
    assert row is not None
    return page(request, "wallet.html", s, wallet=row.summary(), key_id=key_id, addresses=addresses)


@router.get("/transfers/new", response_class=HTMLResponse)
async def new_transfer(request: Request, wallet_id: str = "") -> HTMLResponse:
    s = session_of(request)
    rows = gateway(request).store.wallets.page(500).rows
    return page(
        request,
        "transfer_new.html",
        s,
        wallets=[r.summary() for r in rows],
        chosen=wallet_id,
        encodings=ENCODINGS,
    )


@router.get("/requests", response_class=HTMLResponse)
async def requests_page(request: Request) -> HTMLResponse:
    s = session_of(request)
    return page(request, "requests.html", s, requests=signing(request).list_requests(None, 200))


def applying_rules(doc: GovernanceDocument | None, intent: Intent) -> list[dict[str, Any]]:
    """Per policy item (each transfer or call), the rules of the current policy that cover it."""
    if doc is None:
        return []
    wallet_name = doc.policy.wallet_of(intent.key_id)
    return [
        {
            "field": item.field,
            "item": f"{item.action} {item.amount} {item.asset} to {item.destination}",
            "rules": [
                {
                    "rule_id": r.rule_id,
                    "effect": r.effect,
                    "description": r.description,
                    "approvals": [f"{a.count} from {a.group}" for a in r.approvals],
                }
                for r in rules_for(doc.policy, intent, item, wallet_name)
            ],
        }
        for item in policy_items(intent)
    ]


@router.get("/requests/{request_id}", response_class=HTMLResponse)
async def request_page(request: Request, request_id: str) -> HTMLResponse:
    s = session_of(request)
    g = signing(request)
    try:
        t = g.get(request_id[:64])
    except GatewayError as exc:
        return page(request, "error.html", s, message=str(exc), status=exc.status)
    doc = await document(request)
    summary = t.summary()
    users = {u.user_id: u for u in doc.users} if doc else {}
    me = users.get(s.user)
    return page(
        request,
        "request.html",
        s,
        r=summary,
        signed=signed_request(t.request),
        digest=t.digest,
        rules=applying_rules(doc, t.request.intent),
        may_approve=bool(
            me
            and "approver" in me.roles
            and s.user != t.request.intent.initiator
            and s.user not in summary["approvals"]
            and summary["status"] not in _FINAL_STATES
        ),
        may_cancel=s.user == t.request.intent.initiator and summary["status"] not in _FINAL_STATES,
        node_ids=[str(n["node_id"]) for n in gateway(request).nodes.status()],
    )


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request) -> HTMLResponse:
    s = session_of(request)
    doc = await document(request)
    users = list(doc.users) if doc else []
    groups: dict[str, list[str]] = {}
    for u in users:
        for grp in u.groups:
            groups.setdefault(grp, []).append(u.user_id)
    return page(request, "users.html", s, users=users, groups=groups, doc=doc)


@router.get("/policies", response_class=HTMLResponse)
async def policies_page(request: Request) -> HTMLResponse:
    s = session_of(request)
    g = signing(request)
    doc = await document(request)
    proposals = g.proposals()
    return page(
        request,
        "policies.html",
        s,
        doc=doc,
        current=doc.model_dump(mode="json") if doc else None,
        policy=doc.policy.model_dump(mode="json") if doc else None,
        proposals=[_proposal_view(p) for p in proposals],
        is_admin=bool(doc and any(u.user_id == s.user and "admin" in u.roles for u in doc.users)),
    )


def _proposal_view(p: dict[str, Any]) -> dict[str, Any]:
    """A proposal with the document an admin signs and its signing message (None when the
    document does not parse)."""
    try:
        doc = GovernanceDocument.model_validate_json(json.dumps(p["document"]))
    except ValueError:
        return {**p, "message": None, "signed": None, "signers": _signers(p)}
    signed = doc.model_dump(mode="json")  # the page script hashes this and shows it
    return {**p, "message": doc.signing_message().hex(), "signed": signed, "signers": _signers(p)}


def _signers(p: dict[str, Any]) -> list[Any]:
    return [x.get("signer") for x in p["signatures"]]


@router.get("/killswitch", response_class=HTMLResponse)
async def killswitch_page(request: Request) -> HTMLResponse:
    s = session_of(request)
    doc = await document(request)
    return page(
        request,
        "killswitch.html",
        s,
        kill=await _kill_switch(request),
        current=doc.model_dump(mode="json") if doc else None,
        roles=doc.policy.kill_switch_roles if doc else (),
    )


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> HTMLResponse:
    s = session_of(request)
    return page(request, "audit.html", s)
