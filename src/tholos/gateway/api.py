"""The gateway's REST API (FastAPI; OpenAPI at /docs). Every error is a JSON object
`{"error": {"code", "message", ...}}` with a 4xx/5xx status; bad requests change nothing."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tholos import __version__
from tholos.gateway import repair, scheme_routes
from tholos.gateway.service import Gateway, GatewayError
from tholos.gateway.signing import SignJob, job_result
from tholos.schemes import MAX_MESSAGE

log = logging.getLogger("tholos.gateway")
Scheme = Literal["bip340", "ed25519", "secp256k1", "ecdsa", "bls12381", "dise"]
KEY_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_BATCH = 4096


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateKey(Strict):
    scheme: Scheme
    label: str | None = Field(default=None, max_length=200)
    count: int = Field(
        default=1, ge=1, le=1000, description="keys to create in one call (batched DKG)"
    )


class SealedShare(Strict):
    ephemeral: str = Field(max_length=64)
    ciphertext: str = Field(max_length=8192)


class ImportKey(Strict):
    scheme: Scheme
    label: str | None = Field(default=None, max_length=200)
    public: dict[str, Any]
    meta: dict[str, str] = Field(default_factory=dict)
    sealed: dict[str, SealedShare]


class SignBody(Strict):
    message: str = Field(description="hex", max_length=2 * MAX_MESSAGE + 2)
    path: str = Field(default="", max_length=512, description="BIP32 non-hardened path, e.g. m/0/1")
    taproot_tweak: bool = False
    merkle_root: str | None = Field(default=None, description="hex, 32 bytes (BIP341 script tree)")


class BatchItem(SignBody):
    key_id: str


class BatchSign(Strict):
    requests: list[BatchItem] = Field(max_length=MAX_BATCH)


def _hex(value: str, what: str, *, max_len: int | None = None, exact: int | None = None) -> bytes:
    v = value[2:] if value.startswith(("0x", "0X")) else value
    if max_len is not None and len(v) > 2 * max_len:
        raise GatewayError(413, "too_large", f"{what} longer than {max_len} bytes")
    try:
        b = bytes.fromhex(v)
    except ValueError:
        raise GatewayError(400, "malformed_hex", f"{what} is not valid hex") from None
    if exact is not None and len(b) != exact:
        raise GatewayError(400, "bad_length", f"{what} must be {exact} bytes, got {len(b)}")
    return b


def _key_id(key_id: str) -> str:
    if not KEY_ID.match(key_id):
        raise GatewayError(404, "unknown_key", f"unknown key {key_id[:64]!r}")
    return key_id


def create_app(make_gateway: Callable[[], Gateway]) -> FastAPI:
    state: dict[str, Gateway] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = make_gateway()
        await gw.start()
        state["gw"] = gw
        app.state.gateway = gw  # for the governance router (gateway/governance_api.py)
        yield
        await gw.stop()

    app = FastAPI(
        title="tholos gateway",
        version=__version__,
        description="Distributed HSM: threshold key generation and signing across independent nodes.",
        lifespan=lifespan,
    )

    def gw() -> Gateway:
        return state["gw"]

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status,
            content={"error": {"code": exc.code, "message": str(exc), **exc.extra}},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg"))}
            for e in exc.errors()
        ]
        too_large = any("at most" in e["msg"] and "message" in e["loc"] for e in errs)
        return JSONResponse(
            status_code=413 if too_large else 400,
            content={
                "error": {
                    "code": "too_large" if too_large else "invalid_request",
                    "message": "request validation failed",
                    "details": errs,
                }
            },
        )

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

    @app.get("/v1/cluster")
    async def cluster() -> dict[str, Any]:
        g = gw()
        return {
            "threshold": g.threshold,
            "nodes": g.nodes.status(),
            "shares": repair.share_health(g),
            "roster": [p.to_dict() for p in g.roster.values()],
            "keys": g.store.count_keys(),
        }

    @app.post("/v1/keys", status_code=201)
    async def create_key(body: CreateKey) -> dict[str, Any]:
        rows = await gw().create_keys(body.scheme, body.count, body.label)
        if body.count == 1:
            return rows[0].summary()
        return {"keys": [r.summary() for r in rows]}

    @app.post("/v1/keys/import", status_code=201)
    async def import_key(body: ImportKey) -> dict[str, Any]:
        try:
            sealed = {int(k): v.model_dump() for k, v in body.sealed.items()}
        except ValueError:
            raise GatewayError(
                400, "bad_request", "sealed shares must be keyed by node id"
            ) from None
        row = await gw().import_key(body.scheme, body.label, body.public, body.meta, sealed)
        return row.summary()

    @app.get("/v1/keys")
    async def list_keys(limit: int = 1000, offset: int = 0) -> dict[str, Any]:
        limit = max(1, min(limit, 10_000))
        return {"keys": [r.summary() for r in gw().store.list_keys(limit, max(0, offset))]}

    @app.get("/v1/keys/{key_id}")
    async def show_key(key_id: str) -> dict[str, Any]:
        row = gw().key(_key_id(key_id))
        return {
            **row.summary(),
            "public_key_package": row.package,
            "xpub_root": row.meta.get("xpub"),
            "epoch": repair.epoch(row),  # refreshes so far
            "uncommitted": repair.waiting(row),  # nodes that missed the last refresh commit
        }

    @app.get("/v1/keys/{key_id}/derive")
    async def derive(key_id: str, path: str) -> dict[str, Any]:
        return gw().derive(_key_id(key_id), path)

    @app.post("/v1/keys/{key_id}/refresh")
    async def refresh(key_id: str) -> dict[str, Any]:
        row = await gw().refresh(_key_id(key_id))
        return {**row.summary(), "refreshed": True, "uncommitted": repair.waiting(row)}

    def _job(key_id: str, body: SignBody) -> SignJob:
        if scheme_routes.is_round_key(gw(), _key_id(key_id)):
            raise GatewayError(
                400, "unsupported", "ecdsa, bls12381 and dise keys: use POST /v1/keys/{id}/..."
            )
        msg = _hex(body.message, "message", max_len=MAX_MESSAGE)
        root = _hex(body.merkle_root, "merkle_root", exact=32) if body.merkle_root else None
        return gw().sign_job(_key_id(key_id), msg, body.path, body.taproot_tweak, root)

    def _result(j: SignJob) -> dict[str, Any]:
        return job_result(j, gw().public_key_for)

    @app.post("/v1/keys/{key_id}/sign")
    async def sign(key_id: str, body: SignBody) -> JSONResponse:
        if scheme_routes.is_round_key(gw(), _key_id(key_id)):  # ecdsa, bls12381 (and dise)
            msg = _hex(body.message, "message", max_len=MAX_MESSAGE)
            return await scheme_routes.sign(gw(), key_id, msg, body.path)
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

    @app.post("/v1/sign")
    async def sign_batch(body: BatchSign) -> dict[str, Any]:
        jobs = [_job(it.key_id, it) for it in body.requests]
        await gw().sign(jobs)
        return {"results": [_result(j) for j in jobs]}

    scheme_routes.register(app, gw, _key_id)

    @app.get("/v1/requests/{request_id}")
    async def get_request(request_id: str) -> dict[str, Any]:
        r = gw().store.get_request(request_id[:64])
        if r is None:
            raise GatewayError(404, "unknown_request", "unknown request")
        return r

    from tholos.gateway.governance_api import router as governance_router

    app.include_router(governance_router)
    app.include_router(repair.router)
    return app
