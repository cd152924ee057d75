"""The console's actions (POST, JSON from the page script, CSRF-checked): log in, create a wallet,
submit a transfer, approve, reject, cancel, engage or release the kill switch, sign a proposal, read the
audit chains. Whatever a person authorises arrives here already signed by their browser; the
server builds the exact bytes to sign and relays the result: it never holds a user key."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from tholos.audit.verify import verify_chain
from tholos.gateway.console import transfers
from tholos.gateway.console.sessions import SESSION_TTL, login_message
from tholos.gateway.console.web import (
    COOKIE,
    PREFIX,
    Refused,
    answer,
    checked_post,
    console_state,
    gateway,
    governed_doc,
    require_role,
    sessions,
    signing,
    templates,
)
from tholos.gateway.errors import GatewayError
from tholos.gateway.wallets import CreateWallet, create_wallet
from tholos.governance import _keys
from tholos.governance._canonical import parse_canonical_json
from tholos.governance.audit_export import audit_export_message
from tholos.governance.documents import GovernanceDocument
from tholos.governance.errors import InvalidSignature
from tholos.governance.killswitch import KillSwitchEngage, SignedKillSwitch
from tholos.governance.rejections import Rejection
from tholos.governance.requests import (
    APPROVAL_TAG,
    INITIATION_TAG,
    Approval,
    SigningRequest,
    request_digest,
)

router = APIRouter()
WALLET_BODY: TypeAdapter[CreateWallet] = TypeAdapter(CreateWallet)
DRAFT_TTL = 900
Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]{1,64}$")
Sig = Field(pattern="^[0-9a-f]{128}$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChallengeBody(_Body):
    user: str = Name


class LoginBody(_Body):
    user: str = Name
    challenge: str = Field(pattern="^[0-9a-f]{64}$")
    signature: str = Sig


class Signed(_Body):
    signature: str = Sig


class DraftSigned(Signed):
    draft_id: str = Field(pattern="^[0-9a-f]{32}$")


class TransferForm(_Body):
    wallet_id: str = Field(max_length=64)
    mode: str = Field(pattern="^(build|upload)$")
    to: str = Field(default="", max_length=256)
    amount: str = Field(default="", max_length=80)
    blockhash: str = Field(default="", max_length=64)
    nonce: str = Field(default="", max_length=20)
    gas: str = Field(default="", max_length=20)
    max_fee: str = Field(default="", max_length=80)
    priority_fee: str = Field(default="", max_length=80)
    payload: str = Field(default="", max_length=3 * 1024 * 1024)


class WalletForm(_Body):
    chain: str = Field(max_length=32)
    network: str = Field(min_length=1, max_length=64)
    address_type: str = Field(default="", max_length=32)
    label: str = Field(default="", max_length=200)


class EngageForm(_Body):
    reason: str = Field(default="", max_length=500)


class EngageSigned(Signed):
    engage: str = Field(max_length=4096)
    """The engage document as the canonical JSON text the browser hashed and signed."""


class ProposalSigned(Signed):
    proposal_id: str = Field(max_length=64)


class AuditSigned(Signed):
    issued_at: int = Field(ge=0, le=2**40)


async def _body(request: Request, model: type[_Body]) -> Any:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise Refused(400, f"{where}: {first['msg']}") from None


def _public_key(doc: GovernanceDocument, user: str) -> bytes:
    for u in doc.users:
        if u.user_id == user:
            return _keys.public_key_from_hex(u.public_key)
    raise Refused(403, f"{user} is not a user of this cluster")


def _check(doc: GovernanceDocument, user: str, signature: str, message: bytes) -> None:
    """Refuse a signature that does not verify here before relaying it (the nodes check too)."""
    try:
        _keys.verify(_public_key(doc, user), signature, message, user)
    except InvalidSignature as exc:
        raise Refused(400, str(exc)) from None


def _relayed(exc: GatewayError) -> Refused:
    return Refused(exc.status, str(exc))


# -- login -----------------------------------------------------------------------------------------
@router.post("/login/challenge")
async def challenge(request: Request) -> JSONResponse:
    body: ChallengeBody = await _body(request, ChallengeBody)
    doc = await governed_doc(request)
    _public_key(doc, body.user)
    raw = sessions(request).challenge(body.user)
    message = login_message(doc.cluster_id, raw).hex()
    return answer({"challenge": raw.hex(), "cluster_id": doc.cluster_id, "message": message})


@router.post("/login")
async def login(request: Request) -> JSONResponse:
    body: LoginBody = await _body(request, LoginBody)
    doc = await governed_doc(request)
    try:
        token, _ = sessions(request).login(
            doc.cluster_id, body.user, _public_key(doc, body.user), body.challenge, body.signature
        )
    except ValueError as exc:
        raise Refused(401, str(exc)) from None
    out = answer({"redirect": f"{PREFIX}/"})
    out.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_TTL),
        path=PREFIX,
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return out


@router.post("/logout")
async def logout(request: Request) -> JSONResponse:
    checked_post(request)
    sessions(request).logout(request.cookies.get(COOKIE))
    out = answer({"redirect": f"{PREFIX}/login"})
    out.delete_cookie(COOKIE, path=PREFIX, secure=True, httponly=True, samesite="strict")
    return out


# -- wallets and transfers -------------------------------------------------------------------------
@router.post("/wallets")
async def new_wallet(request: Request) -> JSONResponse:
    s = checked_post(request)
    form: WalletForm = await _body(request, WalletForm)
    require_role(await governed_doc(request), s.user, "initiator", "admin")
    try:
        body = WALLET_BODY.validate_python(
            {
                "chain": form.chain,
                "network": form.network,
                "address_type": form.address_type or None,
                "label": form.label or None,
            }
        )
    except ValidationError as exc:
        raise Refused(400, f"wallet: {exc.errors()[0]['msg']}") from None
    try:
        shown = await create_wallet(body, request)
    except GatewayError as exc:
        raise _relayed(exc) from None
    return answer({"redirect": f"{PREFIX}/wallets/{shown['wallet_id']}"}, 201)


@router.post("/transfers/prepare")
async def prepare_transfer(request: Request) -> JSONResponse:
    """Build or take the transaction, parse it, and return the request to sign: the parts of its
    digest as JSON text (the browser shows the intent from it, rehashes it and signs
    INITIATION_TAG || digest only if it gets this digest)."""
    s = checked_post(request)
    form: TransferForm = await _body(request, TransferForm)
    doc = await governed_doc(request)
    require_role(doc, s.user, "initiator")
    ref, key_id = transfers.wallet(gateway(request), form.wallet_id)
    fields = form.model_dump()
    if form.mode == "build":
        payload = transfers.build(ref, fields)
    else:
        payload = transfers.decode_upload(ref.chain, form.payload)
    intent = transfers.declared_intent(ref, key_id, s.user, payload)
    digest = request_digest(doc.cluster_id, intent, payload)
    drafts = console_state(request).drafts.items
    for k in [k for k, d in drafts.items() if d[3] < time.time()]:
        del drafts[k]
    draft_id = secrets.token_hex(16)
    drafts[draft_id] = (s.user, intent, payload, time.time() + DRAFT_TTL)
    req = {"cluster_id": doc.cluster_id, "intent": intent.model_dump(mode="json")}
    signed = json.dumps({**req, "payload": payload.hex()})  # text: amounts exceed 2^53
    return answer({"draft_id": draft_id, "digest": digest.hex(), "request": signed})


@router.post("/transfers/submit")
async def submit_transfer(request: Request) -> JSONResponse:
    s = checked_post(request)
    body: DraftSigned = await _body(request, DraftSigned)
    draft = console_state(request).drafts.items.pop(body.draft_id, None)
    if draft is None or draft[0] != s.user or draft[3] < time.time():
        raise Refused(404, "unknown or expired draft: prepare the transfer again")
    doc = await governed_doc(request)
    _, intent, payload, _ = draft
    req = SigningRequest(
        cluster_id=doc.cluster_id,
        intent=intent,
        payload=payload.hex(),
        initiator_signature=body.signature,
    )
    _check(doc, s.user, body.signature, INITIATION_TAG + req.digest())
    try:
        (t,) = await signing(request).create([(req, [])])
    except GatewayError as exc:
        raise _relayed(exc) from None
    return answer({"redirect": f"{PREFIX}/requests/{t.request_id}"}, 201)


# -- approvals, rejections and cancellation --------------------------------------------------------------------
@router.post("/requests/{request_id}/approve")
async def approve(request: Request, request_id: str) -> JSONResponse:
    s = checked_post(request)
    body: Signed = await _body(request, Signed)
    g = signing(request)
    try:
        t = g.get(request_id[:64])
        approval = Approval(
            request_id=t.request_id, approver=s.user, digest=t.digest, signature=body.signature
        )
        _check(
            await governed_doc(request),
            s.user,
            body.signature,
            APPROVAL_TAG + bytes.fromhex(t.digest),
        )
        await g.approve(t.request_id, approval)
    except GatewayError as exc:
        raise _relayed(exc) from None
    return answer({"redirect": f"{PREFIX}/requests/{request_id[:64]}"})


@router.post("/requests/{request_id}/reject")
async def reject(request: Request, request_id: str) -> JSONResponse:
    """An approver's rejection, signed in the browser over REJECTION_TAG || digest."""
    s = checked_post(request)
    body: Signed = await _body(request, Signed)
    g = signing(request)
    try:
        t = g.get(request_id[:64])
        rejection = Rejection(
            request_id=t.request_id, approver=s.user, digest=t.digest, signature=body.signature
        )
        _check(await governed_doc(request), s.user, body.signature, rejection.signing_message())
        await g.reject(t.request_id, rejection)
    except GatewayError as exc:
        raise _relayed(exc) from None
    return answer({"redirect": f"{PREFIX}/requests/{request_id[:64]}"})


@router.post("/requests/{request_id}/cancel")
async def cancel(request: Request, request_id: str) -> JSONResponse:
    s = checked_post(request)
    body: Signed = await _body(request, Signed)
    try:
        await signing(request).cancel(request_id[:64], s.user, body.signature, admin=False)
    except GatewayError as exc:
        raise _relayed(exc) from None
    return answer({"redirect": f"{PREFIX}/requests/{request_id[:64]}"})


# -- kill switch and governance proposals ----------------------------------------------------------
@router.post("/killswitch/prepare")
async def prepare_engage(request: Request) -> JSONResponse:
    s = checked_post(request)
    form: EngageForm = await _body(request, EngageForm)
    doc = await governed_doc(request)
    require_role(doc, s.user, *doc.policy.kill_switch_roles)
    engage = KillSwitchEngage(
        cluster_id=doc.cluster_id,
        governance_version=doc.version,
        signer=s.user,
        issued_at=int(time.time()),
        reason=form.reason,
    )
    text = engage.canonical().decode("utf-8")
    return answer({"engage": text, "message": engage.signing_message().hex()})


@router.post("/killswitch/engage")
async def engage(request: Request) -> JSONResponse:
    s = checked_post(request)
    body: EngageSigned = await _body(request, EngageSigned)
    try:
        engage_doc = parse_canonical_json(body.engage.encode("utf-8"))
    except ValueError as exc:
        raise Refused(400, f"kill switch: {exc}") from None
    try:
        signed = SignedKillSwitch.model_validate_json(
            json.dumps({"engage": engage_doc, "signature": body.signature})
        )
    except ValidationError as exc:
        raise Refused(400, f"kill switch: {exc.errors()[0]['msg']}") from None
    if signed.engage.signer != s.user:
        raise Refused(403, "the kill switch is engaged in your own name only")
    _check(await governed_doc(request), s.user, body.signature, signed.engage.signing_message())
    result = await signing(request).kill_switch(signed.model_dump(mode="json"))
    if result["engaged_on"] == 0:
        raise Refused(409, f"no node engaged it: {result['nodes']}")
    return answer({"redirect": f"{PREFIX}/killswitch"})


@router.post("/killswitch/release")
async def propose_release(request: Request) -> JSONResponse:
    """Propose the next governance document with release_kill_switch; admins then sign it."""
    s = checked_post(request)
    doc = await governed_doc(request)
    require_role(doc, s.user, "admin")
    nxt = GovernanceDocument(
        kind="governance",
        cluster_id=doc.cluster_id,
        version=doc.version + 1,
        prev_hash=doc.digest().hex(),
        issued_at=int(time.time()),
        users=doc.users,
        admin_quorum=doc.admin_quorum,
        policy=doc.policy,
        release_kill_switch=True,
        note=f"release the kill switch (proposed by {s.user} in the console)",
    )
    prop = signing(request).propose(nxt.model_dump(mode="json"), [])
    return answer(
        {
            "proposal_id": prop["proposal_id"],
            "document": nxt.canonical().decode("utf-8"),
            "message": nxt.signing_message().hex(),
        },
        201,
    )


@router.post("/proposals/sign")
async def sign_proposal(request: Request) -> JSONResponse:
    s = checked_post(request)
    body: ProposalSigned = await _body(request, ProposalSigned)
    g = signing(request)
    doc = await governed_doc(request)
    require_role(doc, s.user, "admin")
    try:
        prop = g.proposal(body.proposal_id)
        proposed = GovernanceDocument.model_validate_json(json.dumps(prop["document"]))
        _check(doc, s.user, body.signature, proposed.signing_message())
        out = await g.sign_proposal(
            body.proposal_id, {"signer": s.user, "signature": body.signature}
        )
    except GatewayError as exc:
        raise _relayed(exc) from None
    return answer({"status": out["status"], "redirect": f"{PREFIX}/policies"})


# -- audit -----------------------------------------------------------------------------------------
@router.post("/audit/prepare")
async def prepare_audit(request: Request) -> JSONResponse:
    s = checked_post(request)
    doc = await governed_doc(request)
    require_role(doc, s.user, "auditor", "admin")
    now = int(time.time())
    message = audit_export_message(doc.cluster_id, now).hex()
    return answer({"issued_at": now, "cluster_id": doc.cluster_id, "message": message})


@router.post("/audit")
async def read_audit(request: Request) -> JSONResponse:
    """Every node's chain, verified here against that node's identity key from the roster."""
    s = checked_post(request)
    body: AuditSigned = await _body(request, AuditSigned)
    gw = gateway(request)
    replies = await signing(request).broadcast(
        "audit", {"user": s.user, "issued_at": body.issued_at, "signature": body.signature}
    )
    results = []
    for i, reply in sorted(replies.items()):
        name = f"node-{i}"
        if "error" in reply:
            results.append({"node": name, "ok": False, "error": str(reply["error"])})
            continue
        peer = gw.roster.get(i)
        if peer is None:
            results.append({"node": name, "ok": False, "error": "not in the roster"})
            continue
        rep = verify_chain(reply["lines"], peer.signing_key, node_id=name)
        results.append(
            {
                "node": name,
                "ok": rep.ok,
                "entries": len(rep.entries),
                "checkpoints": len(rep.checkpoints),
                "issues": [f"{x.code} at seq {x.seq}: {x.detail}" for x in rep.issues[:20]],
                "recent": [
                    {"seq": e.seq, "kind": e.kind, "time": e.time} for e in rep.entries[-10:]
                ],
            }
        )
    html = templates.get_template("audit_results.html").render(results=results)
    return answer({"html": html})
