"""REST endpoints of governance (included by api.py): documents, proposals, kill switch, governed
signing requests, audit collection. Bodies are the signed governance objects themselves
(tholos.governance models); the gateway validates shapes, the nodes verify signatures."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tholos.gateway import openapi
from tholos.gateway.access import client_of
from tholos.gateway.documents import json_body, parse_json
from tholos.gateway.http_errors import responses
from tholos.gateway.json_number import JsonInt
from tholos.gateway.requests import GovernedSigning, governed
from tholos.gateway.service import Gateway, GatewayError
from tholos.governance import Approval, SigningRequest
from tholos.governance.documents import DocumentSignature, GovernanceDocument
from tholos.governance.killswitch import SignedKillSwitch
from tholos.governance.rejections import Rejection

router = APIRouter(responses=responses(404, 409, 503))
MAX_BATCH = 4096
IdParam = Annotated[str, openapi.id_param("id")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewRequest(_Body):
    request: SigningRequest
    approvals: tuple[Approval, ...] = Field(default=(), max_length=64)


class ApprovalBody(_Body):
    approval: Approval


class RejectionBody(_Body):
    """An approver's signature over "tholos/rejection/v1" || digest: every node checks it and
    then refuses the request for good."""

    rejection: Rejection


class DocumentBody(_Body):
    """A governance document with the admin signatures collected so far (none to start)."""

    document: GovernanceDocument
    signatures: tuple[DocumentSignature, ...] = Field(default=(), max_length=64)


class SignedDocumentBody(_Body):
    document: GovernanceDocument
    signatures: tuple[DocumentSignature, ...] = Field(max_length=64)


class SignatureBody(_Body):
    signer: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    signature: str = Field(pattern="^[0-9a-f]{128}$", description="Ed25519, hex")


class CancelBody(_Body):
    """Withdraw a request: the initiator's signature over "tholos/cancel/v1" || digest; an admin
    API client may leave both empty."""

    user: str = Field(default="", max_length=64, pattern=r"^([A-Za-z0-9._@-]{1,64})?$")
    signature: str = Field(default="", pattern="^([0-9a-f]{128})?$", description="Ed25519, hex")


class AuditBody(_Body):
    user: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    issued_at: JsonInt = Field(ge=0, le=2**40)
    signature: str = Field(pattern="^[0-9a-f]{128}$", description="Ed25519, hex")


M = TypeVar("M", bound=BaseModel)


async def _read(request: Request, model: type[M], what: str) -> M:
    """The body as `model`, parsed once from its JSON (400/422 as `documents.refusal` says)."""
    return parse_json(model, await request.body(), what)


def _json(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json")
    return out


async def _require_governed(g: GovernedSigning) -> None:
    """409 in a development (ungoverned) cluster: there is no governance to change."""
    states = await g.broadcast("state", {})
    if any(s.get("mode") in ("governed", "pending-genesis") for s in states.values()):
        return
    if all(str(s.get("error", "")).startswith("unavailable") for s in states.values()):
        raise GatewayError(503, "unavailable", "no node answered")
    raise GatewayError(
        409, "not_governed", "this cluster runs without governance (development mode)"
    )


def _refused(result: dict[str, Any], counted: str) -> None:
    """409 when no node took the document: a refused relay is not a success."""
    if result[counted] == 0:
        raise GatewayError(409, "refused", "no node accepted it", nodes=result.get("nodes", {}))


def _g(request: Request) -> GovernedSigning:
    gw: Gateway = request.app.state.gateway
    return governed(gw)


@router.get("/v1/governance")
async def governance_state(request: Request) -> dict[str, Any]:
    return await _g(request).state()


@router.post("/v1/governance/documents", openapi_extra=json_body(SignedDocumentBody))
async def submit_document(request: Request) -> dict[str, Any]:
    """A governance document signed by an admin quorum, for every node to adopt."""
    body = await _read(request, SignedDocumentBody, "signed governance document")
    g = _g(request)
    await _require_governed(g)
    result = await g.submit_document(_json(body))
    _refused(result, "adopted_by")
    return result


@router.get("/v1/governance/proposals")
async def list_proposals(request: Request) -> dict[str, Any]:
    return {"proposals": _g(request).proposals()}


@router.post("/v1/governance/proposals", status_code=201, openapi_extra=json_body(DocumentBody))
async def propose(request: Request) -> dict[str, Any]:
    body = await _read(request, DocumentBody, "governance document")
    g = _g(request)
    await _require_governed(g)
    signatures = [_json(x) for x in body.signatures]
    prop = g.propose(_json(body.document), signatures)
    if signatures:
        return await g.sign_proposal(prop["proposal_id"], signatures[-1])
    return prop


@router.get("/v1/governance/proposals/{proposal_id}")
async def show_proposal(request: Request, proposal_id: IdParam) -> dict[str, Any]:
    return _g(request).proposal(proposal_id[:64])


@router.post("/v1/governance/proposals/{proposal_id}/signatures")
async def sign_proposal(
    request: Request, proposal_id: IdParam, body: SignatureBody
) -> dict[str, Any]:
    return await _g(request).sign_proposal(proposal_id[:64], body.model_dump())


@router.post("/v1/killswitch", openapi_extra=json_body(SignedKillSwitch))
async def kill_switch(request: Request) -> dict[str, Any]:
    """Engage the kill switch on every node (a signed engage order of an admin)."""
    body = await _read(request, SignedKillSwitch, "signed kill switch")
    g = _g(request)
    await _require_governed(g)
    result = await g.kill_switch(_json(body))
    _refused(result, "engaged_on")
    return result


@router.post("/v1/signing-requests", status_code=201, openapi_extra=json_body(NewRequest))
async def create_request(request: Request) -> dict[str, Any]:
    body = await _read(request, NewRequest, "signing request")
    tracked = await _g(request).create([(body.request, list(body.approvals))])
    return tracked[0].summary()


class _Item(_Body):
    request: SigningRequest
    approvals: tuple[Approval, ...] = ()


class _Batch(_Body):
    requests: list[_Item] = Field(max_length=MAX_BATCH)


@router.post(
    "/v1/signing-requests/batch",
    openapi_extra=json_body(_Batch),
)
async def create_requests(request: Request) -> Response:
    """Many requests in one call (one reservation / one SignBatch round trip per node).
    Body: {"requests": [{"request": SigningRequest, "approvals": [Approval]}]}. Each result is
    that request's own: one whose transaction's nonce another request holds is `refused` with
    `code` `nonce_in_use` and `http_status` 409 (never stored), and the others go on."""
    body = await _read(request, _Batch, "batch")  # one parse, in Rust
    tracked = await _g(request).create(
        [(b.request, list(b.approvals)) for b in body.requests], each=True
    )
    out = {"results": [t.brief() for t in tracked]}
    return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")


@router.get("/v1/signing-requests")
async def list_requests(
    request: Request,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return {"requests": _g(request).list_requests(status, limit)}


@router.get("/v1/signing-requests/{request_id}")
async def show_request(request: Request, request_id: IdParam) -> dict[str, Any]:
    return _g(request).get(request_id[:64]).summary()


@router.get("/v1/signing-requests/{request_id}/raw")
async def raw_request(request: Request, request_id: IdParam) -> dict[str, Any]:
    """The signed request itself, for approvers to check and sign its digest."""
    t = _g(request).get(request_id[:64])
    return {"request": t.request.model_dump(mode="json")}


@router.post("/v1/signing-requests/{request_id}/approvals", openapi_extra=json_body(ApprovalBody))
async def approve(request: Request, request_id: IdParam) -> dict[str, Any]:
    body = await _read(request, ApprovalBody, "approval")
    return (await _g(request).approve(request_id[:64], body.approval)).summary()


@router.post(
    "/v1/signing-requests/{request_id}/reject",
    openapi_extra=json_body(RejectionBody),
    responses=responses(403),
)
async def reject(request: Request, request_id: IdParam) -> dict[str, Any]:
    """Reject a request not signed yet (an approver of it, signed with their own key); the
    nodes refuse it from then on, whatever approvals follow."""
    body = await _read(request, RejectionBody, "rejection")
    return (await _g(request).reject(request_id[:64], body.rejection)).summary()


@router.post("/v1/signing-requests/{request_id}/sign")
async def retry(request: Request, request_id: IdParam) -> dict[str, Any]:
    return (await _g(request).execute(request_id[:64])).summary()


@router.post("/v1/signing-requests/{request_id}/cancel")
async def cancel(request: Request, request_id: IdParam, body: CancelBody) -> dict[str, Any]:
    """Cancel a request not signed yet (its initiator, or an admin client without a signature)."""
    admin = not body.signature and client_of(request).may("admin")
    if not admin and not (body.user and body.signature):
        raise GatewayError(
            422, "invalid_request", "cancel needs the initiator's user and signature"
        )
    t = await _g(request).cancel(request_id[:64], body.user, body.signature, admin=admin)
    return t.summary()


@router.get("/v1/audit/gateway")
async def gateway_audit(request: Request) -> dict[str, Any]:
    g = _g(request)
    if g.audit is None:
        raise GatewayError(404, "no_audit", "this gateway keeps no audit chain")
    g.audit.checkpoint()
    return {"node_id": "gateway", "lines": list(g.audit.export_lines())}


@router.post("/v1/audit/nodes")
async def node_audit(request: Request, body: AuditBody) -> dict[str, Any]:
    """Every node's chain, relayed as the node sent it (the caller verifies it locally)."""
    replies = await _g(request).broadcast("audit", body.model_dump())
    nodes = {str(i): r for i, r in replies.items()}
    if all("error" in r for r in replies.values()):
        down = all(str(r["error"]).startswith("unavailable") for r in replies.values())
        raise GatewayError(
            503 if down else 403,
            "unavailable" if down else "refused",
            "no node released its audit chain",
            nodes=nodes,
        )
    return {"nodes": {str(i): r for i, r in replies.items()}}
