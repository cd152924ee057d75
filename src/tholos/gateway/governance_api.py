"""REST endpoints of governance (included by api.py): documents, proposals, kill switch, governed
signing requests, audit collection. Bodies are the signed governance objects themselves
(tholos.governance models); the gateway validates shapes, the nodes verify signatures."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tholos.gateway import openapi
from tholos.gateway.access import client_of
from tholos.gateway.http_errors import responses
from tholos.gateway.json_number import JsonInt
from tholos.gateway.requests import GovernedSigning, governed
from tholos.gateway.service import Gateway, GatewayError
from tholos.governance import Approval, SigningRequest
from tholos.governance.documents import DocumentSignature, GovernanceDocument, SignedDocument
from tholos.governance.killswitch import SignedKillSwitch

router = APIRouter(responses=responses(404, 409, 503))
MAX_BATCH = 4096
IdParam = Annotated[str, openapi.id_param("id")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


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


def _model(cls: type[BaseModel], value: Any, what: str) -> Any:
    """Validate a JSON value as a governance model (their JSON strictness rules)."""
    try:
        return cls.model_validate_json(json.dumps(value))
    except ValidationError as exc:
        raise GatewayError(
            400,
            "invalid_request",
            f"malformed {what}",
            details=[{"loc": [str(x) for x in e["loc"]], "msg": e["msg"]} for e in exc.errors()],
        ) from None


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


def _parse(body: NewRequest) -> tuple[SigningRequest, list[Approval]]:
    try:
        req = SigningRequest.model_validate_json(json.dumps(body.request))
        approvals = [Approval.model_validate_json(json.dumps(a)) for a in body.approvals]
    except ValidationError as exc:
        raise GatewayError(
            400,
            "invalid_request",
            "malformed signing request",
            details=[{"loc": [str(x) for x in e["loc"]], "msg": e["msg"]} for e in exc.errors()],
        ) from None
    return req, approvals


@router.get("/v1/governance")
async def governance_state(request: Request) -> dict[str, Any]:
    return await _g(request).state()


@router.post("/v1/governance/documents")
async def submit_document(request: Request, body: DocumentBody) -> dict[str, Any]:
    g = _g(request)
    _model(SignedDocument, body.model_dump(), "signed governance document")
    await _require_governed(g)
    result = await g.submit_document(body.model_dump())
    _refused(result, "adopted_by")
    return result


@router.get("/v1/governance/proposals")
async def list_proposals(request: Request) -> dict[str, Any]:
    return {"proposals": _g(request).proposals()}


@router.post("/v1/governance/proposals", status_code=201)
async def propose(request: Request, body: DocumentBody) -> dict[str, Any]:
    g = _g(request)
    _model(GovernanceDocument, body.document, "governance document")
    for s in body.signatures:
        _model(DocumentSignature, s, "document signature")
    await _require_governed(g)
    prop = g.propose(body.document, body.signatures)
    if body.signatures:
        return await g.sign_proposal(prop["proposal_id"], body.signatures[-1])
    return prop


@router.get("/v1/governance/proposals/{proposal_id}")
async def show_proposal(request: Request, proposal_id: IdParam) -> dict[str, Any]:
    return _g(request).proposal(proposal_id[:64])


@router.post("/v1/governance/proposals/{proposal_id}/signatures")
async def sign_proposal(
    request: Request, proposal_id: IdParam, body: SignatureBody
) -> dict[str, Any]:
    return await _g(request).sign_proposal(proposal_id[:64], body.model_dump())


@router.post("/v1/killswitch")
async def kill_switch(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Body: a SignedKillSwitch (tholos.governance.killswitch)."""
    g = _g(request)
    _model(SignedKillSwitch, body, "signed kill switch")
    await _require_governed(g)
    result = await g.kill_switch(body)
    _refused(result, "engaged_on")
    return result


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
            "required": True,
            "content": {
                "application/json": {"schema": _Batch.model_json_schema(mode="validation")}
            },
        }
    },
)
async def create_requests(request: Request) -> Response:
    """Many requests in one call (one reservation / one SignBatch round trip per node).
    Body: {"requests": [{"request": SigningRequest, "approvals": [Approval]}]}."""
    try:
        body = _Batch.model_validate_json(await request.body())  # one parse, in Rust
    except ValidationError as exc:
        raise GatewayError(
            400,
            "invalid_request",
            "malformed batch",
            details=[{"loc": [str(x) for x in e["loc"]], "msg": e["msg"]} for e in exc.errors()],
        ) from None
    tracked = await _g(request).create([(b.request, list(b.approvals)) for b in body.requests])
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


@router.post("/v1/signing-requests/{request_id}/approvals")
async def approve(request: Request, request_id: IdParam, body: ApprovalBody) -> dict[str, Any]:
    try:
        approval = Approval.model_validate_json(json.dumps(body.approval))
    except ValidationError as exc:
        raise GatewayError(
            400,
            "invalid_request",
            "malformed approval",
            details=[{"loc": [str(x) for x in e["loc"]], "msg": e["msg"]} for e in exc.errors()],
        ) from None
    return (await _g(request).approve(request_id[:64], approval)).summary()


@router.post("/v1/signing-requests/{request_id}/sign")
async def retry(request: Request, request_id: IdParam) -> dict[str, Any]:
    return (await _g(request).execute(request_id[:64])).summary()


@router.post("/v1/signing-requests/{request_id}/cancel", responses=responses(400, 403))
async def cancel(request: Request, request_id: IdParam, body: CancelBody) -> dict[str, Any]:
    """Cancel a request not signed yet (its initiator, or an admin client without a signature)."""
    admin = not body.signature and client_of(request).may("admin")
    if not admin and not (body.user and body.signature):
        raise GatewayError(
            400, "invalid_request", "cancel needs the initiator's user and signature"
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
