"""REST endpoints of governance (included by api.py): documents, proposals, kill switch, governed
signing requests, audit collection. Bodies are the signed governance objects themselves
(tholos.governance models); the gateway validates shapes, the nodes verify signatures."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tholos.gateway.requests import GovernedSigning, governed
from tholos.gateway.service import Gateway, GatewayError
from tholos.governance import Approval, SigningRequest

router = APIRouter()
MAX_BATCH = 4096


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewRequest(_Body):
    request: dict[str, Any]
    approvals: list[dict[str, Any]] = Field(default_factory=list, max_length=64)


class NewRequests(_Body):
    requests: list[NewRequest] = Field(max_length=MAX_BATCH)


class ApprovalBody(_Body):
    approval: dict[str, Any]


class DocumentBody(_Body):
    document: dict[str, Any]
    signatures: list[dict[str, Any]] = Field(default_factory=list, max_length=64)


class SignatureBody(_Body):
    signer: str = Field(max_length=64)
    signature: str = Field(max_length=128)


class AuditBody(_Body):
    user: str = Field(max_length=64)
    issued_at: int
    signature: str = Field(max_length=128)


def _g(request: Request) -> GovernedSigning:
    gw: Gateway = request.app.state.gateway
    return governed(gw)


def _parse(body: NewRequest) -> tuple[SigningRequest, list[Approval]]:
    try:
        req = SigningRequest.model_validate_json(json.dumps(body.request))
        approvals = [Approval.model_validate_json(json.dumps(a)) for a in body.approvals]
    except ValidationError as exc:
        raise GatewayError(400, "invalid_request", f"malformed signing request: {exc}") from None
    return req, approvals


@router.get("/v1/governance")
async def governance_state(request: Request) -> dict[str, Any]:
    return await _g(request).state()


@router.post("/v1/governance/documents")
async def submit_document(request: Request, body: DocumentBody) -> dict[str, Any]:
    return await _g(request).submit_document(body.model_dump())


@router.get("/v1/governance/proposals")
async def list_proposals(request: Request) -> dict[str, Any]:
    return {"proposals": _g(request).proposals()}


@router.post("/v1/governance/proposals", status_code=201)
async def propose(request: Request, body: DocumentBody) -> dict[str, Any]:
    g = _g(request)
    prop = g.propose(body.document, body.signatures)
    if body.signatures:
        return await g.sign_proposal(prop["proposal_id"], body.signatures[-1])
    return prop


@router.get("/v1/governance/proposals/{proposal_id}")
async def show_proposal(request: Request, proposal_id: str) -> dict[str, Any]:
    return _g(request).proposal(proposal_id[:64])


@router.post("/v1/governance/proposals/{proposal_id}/signatures")
async def sign_proposal(request: Request, proposal_id: str, body: SignatureBody) -> dict[str, Any]:
    return await _g(request).sign_proposal(proposal_id[:64], body.model_dump())


@router.post("/v1/killswitch")
async def kill_switch(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return await _g(request).kill_switch(body)


@router.post("/v1/signing-requests", status_code=201)
async def create_request(request: Request, body: NewRequest) -> dict[str, Any]:
    tracked = await _g(request).create([_parse(body)])
    return tracked[0].summary()


class _Item(_Body):
    request: SigningRequest
    approvals: tuple[Approval, ...] = ()


class _Batch(_Body):
    requests: list[_Item] = Field(max_length=MAX_BATCH)


@router.post(
    "/v1/signing-requests/batch",
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": NewRequests.model_json_schema()}}
        }
    },
)
async def create_requests(request: Request) -> Response:
    """Many requests in one call (one reservation / one SignBatch round trip per node).
    Body: {"requests": [{"request": SigningRequest, "approvals": [Approval]}]}."""
    try:
        body = _Batch.model_validate_json(await request.body())  # one parse, in Rust
    except ValidationError as exc:
        raise GatewayError(400, "invalid_request", f"malformed batch: {exc}") from None
    tracked = await _g(request).create([(b.request, list(b.approvals)) for b in body.requests])
    out = {"results": [t.brief() for t in tracked]}
    return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")


@router.get("/v1/signing-requests")
async def list_requests(
    request: Request, status: str | None = None, limit: int = 100
) -> dict[str, Any]:
    return {"requests": _g(request).list_requests(status, max(1, min(limit, 1000)))}


@router.get("/v1/signing-requests/{request_id}")
async def show_request(request: Request, request_id: str) -> dict[str, Any]:
    return _g(request).get(request_id[:64]).summary()


@router.get("/v1/signing-requests/{request_id}/raw")
async def raw_request(request: Request, request_id: str) -> dict[str, Any]:
    """The signed request itself, for approvers to check and sign its digest."""
    t = _g(request).get(request_id[:64])
    return {"request": t.request.model_dump(mode="json")}


@router.post("/v1/signing-requests/{request_id}/approvals")
async def approve(request: Request, request_id: str, body: ApprovalBody) -> dict[str, Any]:
    try:
        approval = Approval.model_validate_json(json.dumps(body.approval))
    except ValidationError as exc:
        raise GatewayError(400, "invalid_request", f"malformed approval: {exc}") from None
    return (await _g(request).approve(request_id[:64], approval)).summary()


@router.post("/v1/signing-requests/{request_id}/sign")
async def retry(request: Request, request_id: str) -> dict[str, Any]:
    return (await _g(request).execute(request_id[:64])).summary()


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
    return {"nodes": {str(i): r for i, r in replies.items()}}
