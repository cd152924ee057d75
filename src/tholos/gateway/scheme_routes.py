"""REST routes of the round-signed schemes (gateway/scheme_protocols.py): ECDSA presignature
pools, ECDSA/BLS signing and DiSE evaluation.

- `POST /v1/keys/{id}/sign` for an `ecdsa` or `bls12381` key (dispatched from api.py):
  ECDSA -> `{"signature": r||s hex (low-S), "recovery_id": 0|1, "public_key", ...}` (message: a
  32-byte digest); BLS -> `{"signature": 96-byte hex, "public_key": 48-byte hex, ...}`.
- `POST /v1/keys/{id}/presign {"count"}` fills an ECDSA key's presignature pool; `GET` shows it.
- `POST /v1/keys/{id}/evaluate {"alpha", "encryptor", "purpose"}` (DiSE): t partial evaluations
  for the client to combine (the gateway never sees plaintext or the derived key); in a governed
  cluster with the user's `authorization`, t partials sealed to the client (`exclude`: nodes to
  leave out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tholos.gateway.json_number import WHOLE, JsonInt
from tholos.gateway.rounds import SchemeJob
from tholos.gateway.scheme_protocols import is_round_signed, presignatures, rounds_for
from tholos.gateway.signing import job_result

NodeNumber = Annotated[int, Field(ge=1, le=64), WHOLE]  # bounds first (json_number.bounded_int)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PresignBody(_Strict):
    count: JsonInt = Field(default=100, ge=1, le=20_000)


class EvaluateBody(_Strict):
    alpha: str = Field(
        pattern="^[0-9a-fA-F]{64}$", description="hex, 32 bytes: the DiSE commitment"
    )
    encryptor: str = Field(max_length=255, min_length=1, pattern=r"^[^\x00-\x1f\x7f]+$")
    purpose: Literal["encrypt", "decrypt"]
    verify: bool = Field(
        default=False,
        description="check every partial's DLEQ proof at the gateway, naming and excluding bad "
        "nodes (the client checks them anyway; it asks again with verify=true on a bad proof)",
    )
    authorization: dict[str, Any] | None = Field(
        default=None,
        description="governed clusters: the user's signed DiSE authorization, relayed untouched; "
        "each node then returns its partial sealed to the client key named in it",
    )
    exclude: list[NodeNumber] = Field(
        default_factory=list,
        max_length=64,
        description="nodes the client found misbehaving: left out of this request (not "
        "quarantined)",
    )


_KIND_CACHE: dict[str, bool] = {}


def is_round_key(gw: Any, key_id: str) -> bool:
    """Whether the key's scheme is round-signed (ECDSA, BLS, DiSE), cached: a key's scheme
    never changes."""
    hit = _KIND_CACHE.get(key_id)
    if hit is not None:
        return hit
    row = gw.store.get_key(key_id)
    if row is None:
        return False
    if len(_KIND_CACHE) > 200_000:
        _KIND_CACHE.clear()
    _KIND_CACHE[key_id] = is_round_signed(row.scheme)
    return _KIND_CACHE[key_id]


def result(gw: Any, j: SchemeJob) -> dict[str, Any]:
    out = job_result(j, rounds_for(gw).public_key_for)
    if j.signature is not None and j.recovery_id is not None:
        out["recovery_id"] = j.recovery_id
    elif j.signature is None and j.partials:
        del out["error"]  # a DiSE evaluation: partials, no signature
        out["partials"] = j.partials
    return out


def response(gw: Any, j: SchemeJob) -> JSONResponse:
    res = result(gw, j)
    if "error" in res:
        return JSONResponse(
            status_code=j.status or 503,
            content={
                "error": {**res["error"], "excluded": res["excluded"], "request_id": j.request_id}
            },
        )
    return JSONResponse(content=res)


async def sign(gw: Any, key_id: str, message: bytes, path: str) -> JSONResponse:
    rounds = rounds_for(gw)
    job = rounds.job(key_id, message, path)
    await rounds.submit([job])
    return response(gw, job)


def register(app: FastAPI, gw: Callable[[], Any], check_key: Callable[[str], str]) -> None:
    @app.post("/v1/keys/{key_id}/presign")
    async def presign(key_id: str, body: PresignBody) -> dict[str, Any]:
        pools = presignatures(gw())
        added = await pools.presign(check_key(key_id), body.count)
        return {"key_id": key_id, "added": added, "available": pools.pool_size(key_id)}

    @app.get("/v1/keys/{key_id}/presign")
    async def presign_status(key_id: str) -> dict[str, Any]:
        g = gw()
        row = g.key(check_key(key_id))
        return {"key_id": key_id, "available": presignatures(g).pool_size(key_id, g._public(row))}

    @app.post("/v1/keys/{key_id}/evaluate")
    async def evaluate(key_id: str, body: EvaluateBody) -> JSONResponse:
        g = gw()
        rounds = rounds_for(g)
        job = rounds.job(check_key(key_id), b"", "", body.model_dump())
        await rounds.submit([job])
        return response(g, job)
