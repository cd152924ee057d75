"""The gateway's REST API (FastAPI; OpenAPI at /docs, checked in as docs/openapi.json). Every
error is the envelope of gateway/http_errors.py with a 4xx/5xx status; bad requests change nothing.

Input limits: JSON bodies are strict (gateway/request_body.py); fields are strictly typed (no
"2" for 2, no true for 1); labels are 1-200 characters of letters, digits, space and
`._:@/+#()=,-` (no control, format or markup characters); messages are non-empty hex without a
0x prefix, at most 64 KiB; derivation paths are at most 16 levels deep."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from tholos import __version__
from tholos.gateway import (
    attestation,
    committee,
    console,
    http_errors,
    key_lifecycle,
    monitoring_api,
    openapi,
    repair,
    scheme_routes,
    vault_gate,
    wallets,
)
from tholos.gateway.access import charge_keys
from tholos.gateway.front import ApiFront
from tholos.gateway.http_errors import responses
from tholos.gateway.idempotency import Idempotency
from tholos.gateway.identities import ApiClients
from tholos.gateway.json_number import JsonInt
from tholos.gateway.limits import Limiter
from tholos.gateway.observe import gateway_registry
from tholos.gateway.rounds import SchemeJob
from tholos.gateway.service import Gateway, GatewayError, check_options
from tholos.gateway.signing import job_result
from tholos.gateway.store import KeyFilter
from tholos.observability import metrics
from tholos.schemes import MAX_MESSAGE

log = logging.getLogger("tholos.gateway")
Scheme = Literal["bip340", "ed25519", "secp256k1", "ecdsa", "bls12381", "dise"]
KEY_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_BATCH = 4096
MAX_PAGE = 1000
MAX_PATH_DEPTH = 16
HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
LABEL_PATTERN = r"^[\w .:@/+#()=,-]{1,200}$"
Label = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=LABEL_PATTERN,
        description="letters, digits, space and ._:@/+#()=,- (no control or markup characters)",
    ),
]
PATH_SCHEMA: JsonDict = {"pattern": r"^(m(/[0-9]{1,9}){0,16})?$"}
DERIVE_PATH = r"^m(/[0-9]{1,9}){0,16}$"
MESSAGE_SCHEMA: JsonDict = {"pattern": HEX.pattern}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateKey(Strict):
    scheme: Scheme
    label: Label | None = None
    count: JsonInt = Field(
        default=1, ge=1, le=1000, description="keys to create in one call (batched DKG)"
    )


class SealedShare(Strict):
    ephemeral: str = Field(max_length=64)
    ciphertext: str = Field(max_length=8192)


NodeKey = Annotated[str, Field(pattern="^[1-9][0-9]?$")]
NO_OTHER_KEYS: JsonDict = {"additionalProperties": False}


class ImportKey(Strict):
    scheme: Scheme
    label: Label | None = None
    public: dict[str, Any]
    meta: dict[str, str] = Field(default_factory=dict)
    sealed: dict[NodeKey, SealedShare] = Field(
        description="one sealed share per node, by node id", json_schema_extra=NO_OTHER_KEYS
    )


class SignBody(Strict):
    message: str = Field(
        description="hex, 1 byte to 64 KiB, no 0x prefix",
        max_length=2 * MAX_MESSAGE,
        json_schema_extra=MESSAGE_SCHEMA,
    )
    path: str = Field(
        default="",
        max_length=512,
        description="BIP32 non-hardened path, e.g. m/0/1 (at most 16 levels)",
        pattern=str(PATH_SCHEMA["pattern"]),
    )
    taproot_tweak: bool = False
    merkle_root: str | None = Field(
        default=None, description="hex, 32 bytes (BIP341 script tree)", pattern="^[0-9a-fA-F]{64}$"
    )


class BatchItem(SignBody):
    key_id: str = Field(json_schema_extra={"pattern": KEY_ID.pattern})


class BatchSign(Strict):
    requests: list[BatchItem] = Field(max_length=MAX_BATCH)


def _hex(value: str, what: str, *, max_len: int | None = None, exact: int | None = None) -> bytes:
    if max_len is not None and len(value) > 2 * max_len:
        raise GatewayError(413, "too_large", f"{what} longer than {max_len} bytes")
    if not value:
        raise GatewayError(400, "bad_length", f"{what} is empty")
    if not HEX.match(value):
        raise GatewayError(
            400, "malformed_hex", f"{what} is not hex (pairs of 0-9a-f, no 0x prefix)"
        )
    b = bytes.fromhex(value)
    if exact is not None and len(b) != exact:
        raise GatewayError(400, "bad_length", f"{what} must be {exact} bytes, got {len(b)}")
    return b


def _key_id(key_id: str) -> str:
    if not KEY_ID.match(key_id):
        raise GatewayError(404, "unknown_key", f"unknown key {key_id[:64]!r}")
    return key_id


def _path(path: str) -> str:
    """Refuse derivation paths deeper than MAX_PATH_DEPTH (the nodes check the rest)."""
    if path.count("/") > MAX_PATH_DEPTH:
        raise GatewayError(
            400, "bad_request", f"derivation path deeper than {MAX_PATH_DEPTH} levels"
        )
    return path


KeyIdParam = Annotated[str, openapi.key_id_param()]
ERRORS = responses(400, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503)
KEY_ERRORS = responses(404, 409, 503)


def create_app(
    make_gateway: Callable[[], Gateway],
    clients: ApiClients | None = None,
    metrics_listen: tuple[str, int] | None = None,
) -> FastAPI:
    """`clients`: who may call the API (gateway/identities.py); None: open access, for
    plain-HTTP test gateways only. `metrics_listen`: (host, port) of a plain-HTTP /metrics
    listener for Prometheus scrapers without client certificates (None: only GET /metrics)."""
    state: dict[str, Gateway] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = make_gateway()
        await gw.start()
        state["gw"] = gw
        app.state.gateway = gw  # for the governance router (gateway/governance_api.py)
        app.state.metrics = gateway_registry(gw)
        scraper = None
        if metrics_listen is not None:
            host, port = metrics_listen
            scraper = await metrics.serve(app.state.metrics, port, host)
            log.info("metrics on http://%s:%d/metrics", host, port)
        yield
        if scraper is not None:
            scraper.close()
        await gw.stop()

    app = FastAPI(
        title="tholos gateway",
        version=__version__,
        description="Distributed HSM: threshold key generation and signing across independent nodes.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.state.limiter = Limiter()
    app.add_middleware(Idempotency)  # inside the front: it needs the client the front named
    # request id, client, body, role (gateway/front.py): every answer has an id and counts
    app.add_middleware(ApiFront, clients=clients or ApiClients.open(), limiter=app.state.limiter)
    http_errors.install(app)
    vault_gate.install(app, clients or ApiClients.open())  # /v1/transit, X-Vault-Token

    def gw() -> Gateway:
        return state["gw"]

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        nodes = gw().nodes.status()
        up = sum(1 for n in nodes if n["state"] == "up")
        return {
            "ok": up >= gw().threshold,
            "nodes_up": up,
            "nodes": len(nodes),
            "threshold": gw().threshold,
        }

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus text format (any API client with the read permission)."""
        body, content_type = metrics.exposition(app.state.metrics)
        return Response(body, media_type=content_type)

    @app.get("/v1/cluster")
    async def cluster() -> dict[str, Any]:
        g = gw()
        return {
            "threshold": g.threshold,
            "nodes": g.nodes.status(),
            "attestation": attestation.of(g).summary(),
            "shares": repair.share_health(g),
            "protections": repair.protections(g),
            "roster": [p.to_dict() for p in g.roster.values()],
            "keys": g.store.count_keys(),
        }

    @app.post("/v1/keys", status_code=201, responses=responses(503))
    async def create_key(body: CreateKey, request: Request) -> dict[str, Any]:
        charge_keys(request, body.count)
        rows = await gw().create_keys(body.scheme, body.count, body.label)
        if body.count == 1:
            return rows[0].summary()
        return {"keys": [r.summary() for r in rows]}

    @app.post("/v1/keys/import", status_code=201, responses=responses(409, 503))
    async def import_key(body: ImportKey, request: Request) -> dict[str, Any]:
        charge_keys(request, 1)
        sealed = {int(k): v.model_dump() for k, v in body.sealed.items()}
        row = await gw().import_key(body.scheme, body.label, body.public, body.meta, sealed)
        return row.summary()

    @app.get("/v1/keys")
    async def list_keys(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="keys per page")] = MAX_PAGE,
        offset: Annotated[int, Query(ge=0, le=2**31, description="keys to skip")] = 0,
        scheme: Scheme | None = None,
        label: Annotated[str | None, Query(max_length=200)] = None,
        public_key: Annotated[str | None, Query(max_length=200, pattern=HEX.pattern)] = None,
        created_after: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        created_before: Annotated[float | None, Query(ge=0, le=1e11)] = None,
    ) -> dict[str, Any]:
        """One page of keys (oldest first) matching every filter given, with the total that
        match: `next_offset` is the offset of the next page, null on the last one."""
        page = gw().store.page_keys(
            limit,
            offset,
            KeyFilter(
                scheme, label, public_key and public_key.lower(), created_after, created_before
            ),
        )
        nxt = offset + len(page.rows)
        return {
            "keys": [r.summary() for r in page.rows],
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "next_offset": nxt if nxt < page.total else None,
        }

    @app.get("/v1/keys/import", include_in_schema=False)
    async def import_is_post() -> None:
        """Without this, GET /v1/keys/import would look for a key called "import" (404)."""
        raise GatewayError(
            405,
            "method_not_allowed",
            "GET is not allowed on /v1/keys/import",
            allowed=["POST"],
            headers={"Allow": "POST"},
        )

    @app.get("/v1/keys/{key_id}", responses=responses(404))
    async def show_key(key_id: KeyIdParam) -> dict[str, Any]:
        row = gw().key(_key_id(key_id))
        return {
            **row.summary(),
            "public_key_package": row.package,
            "xpub_root": row.meta.get("xpub"),
            "epoch": repair.epoch(row),  # refreshes so far
            "uncommitted": repair.waiting(row),  # nodes that missed the last refresh commit
        }

    @app.get("/v1/keys/{key_id}/derive", responses=responses(404))
    async def derive(
        key_id: KeyIdParam,
        path: Annotated[str, Query(max_length=512, pattern=DERIVE_PATH)],
    ) -> dict[str, Any]:
        return gw().derive(_key_id(key_id), _path(path))

    @app.post("/v1/keys/{key_id}/refresh", responses=KEY_ERRORS)
    async def refresh(key_id: KeyIdParam) -> dict[str, Any]:
        row = await gw().refresh(_key_id(key_id))
        return {**row.summary(), "refreshed": True, "uncommitted": repair.waiting(row)}

    def _job(key_id: str, body: SignBody) -> SchemeJob:
        if scheme_routes.is_round_key(gw(), _key_id(key_id)):
            raise GatewayError(
                409, "unsupported", "ecdsa, bls12381 and dise keys: use POST /v1/keys/{id}/..."
            )
        msg = _hex(body.message, "message", max_len=MAX_MESSAGE)
        root = _hex(body.merkle_root, "merkle_root", exact=32) if body.merkle_root else None
        return gw().sign_job(_key_id(key_id), msg, _path(body.path), body.taproot_tweak, root)

    def _result(j: SchemeJob) -> dict[str, Any]:
        return job_result(j, gw().public_key_for)

    @app.post("/v1/keys/{key_id}/sign", responses=KEY_ERRORS)
    async def sign(key_id: KeyIdParam, body: SignBody) -> JSONResponse:
        if scheme_routes.is_round_key(gw(), _key_id(key_id)):  # ecdsa, bls12381 (and dise)
            msg = _hex(body.message, "message", max_len=MAX_MESSAGE)  # 400 before any 409
            check_options(
                gw().key(key_id).scheme,
                path=body.path,
                taproot_tweak=body.taproot_tweak,
                merkle_root=body.merkle_root,
            )
            return await scheme_routes.sign(gw(), key_id, msg, _path(body.path))
        job = _job(key_id, body)
        await gw().sign([job])
        res = _result(job)
        if job.signature is None:
            return JSONResponse(
                status_code=job.status or 503,
                content={
                    "error": {
                        **res["error"],
                        "excluded": res["excluded"],
                        "request_id": job.request_id,
                    }
                },
            )
        return JSONResponse(content=res)

    @app.post("/v1/sign", responses=responses(404, 503))
    async def sign_batch(body: BatchSign) -> dict[str, Any]:
        jobs = [_job(it.key_id, it) for it in body.requests]
        await gw().sign(jobs)
        return {"results": [_result(j) for j in jobs]}

    scheme_routes.register(app, gw, _key_id)

    @app.get("/v1/requests/{request_id}", responses=responses(404))
    async def get_request(
        request_id: Annotated[str, openapi.id_param("request id")],
    ) -> dict[str, Any]:
        r = gw().store.get_request(request_id[:64])
        if r is None:
            raise GatewayError(404, "unknown_request", "unknown request")
        return r

    from tholos.gateway.governance_api import router as governance_router

    app.include_router(governance_router)
    app.include_router(repair.router, responses=KEY_ERRORS)
    app.include_router(committee.router, responses=KEY_ERRORS)
    app.include_router(wallets.router)
    from tholos.gateway.outbox_api import router as outbox_router

    app.include_router(outbox_router)  # the chain outbox and ethereum nonces
    app.include_router(monitoring_api.router)
    app.include_router(key_lifecycle.router, responses=KEY_ERRORS)
    console.install(app)  # the web console at /console (gateway/console/)
    openapi.install(app)
    return app


def write_spec() -> None:
    """`make openapi`: write docs/openapi.json from the live app (a test fails when it is stale)."""
    app = create_app(lambda: None)  # type: ignore[arg-type,return-value]
    openapi.SPEC_FILE.parent.mkdir(exist_ok=True)
    openapi.SPEC_FILE.write_text(openapi.render(app))
    print(f"wrote {openapi.SPEC_FILE}")


if __name__ == "__main__":
    write_spec()
