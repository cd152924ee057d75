"""REST routes for the chain outbox and Ethereum nonces: `GET /v1/outbox` (filters: state, chain,
request id), `GET /v1/outbox/{tx_hash}` (with the raw signed transaction), and
`POST /v1/wallets/{wallet_id}/nonces`: the next nonce of one of an Ethereum wallet's addresses
for a request id, at or above the caller's floor and the chain's own next nonce when the gateway
has an Ethereum connector (gateway/chain_nonces.py); or, with `replaces`, the nonce of a stuck
transaction for its fee bump, itself a new signing request that needs its approvals."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tholos.chains.base import ChainError
from tholos.chains.ethereum.wallet import normalise_network
from tholos.chains.registry import chain_for
from tholos.gateway import chain_nonces
from tholos.gateway.http_errors import responses
from tholos.gateway.json_number import WHOLE
from tholos.gateway.outbox import STATES
from tholos.gateway.service import Gateway, GatewayError
from tholos.gateway.wallets import WALLET_ID, wallet_ref

TX_HASH = r"^((0x)?[0-9a-fA-F]{64}|[1-9A-HJ-NP-Za-km-z]{64,90})$"  # hex (btc, eth), base58 (sol)
REQUEST_ID = r"^[A-Za-z0-9_-]{8,64}$"

router = APIRouter(tags=["outbox"])


def _gw(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


@router.get("/v1/outbox", responses=responses(400))
async def list_outbox(
    request: Request,
    state: Annotated[Literal[STATES] | None, Query()] = None,  # type: ignore[valid-type]
    chain: Annotated[Literal["bitcoin", "ethereum", "solana"] | None, Query()] = None,
    request_id: Annotated[str | None, Query(pattern=REQUEST_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, lt=2**62)] = 0,
) -> dict[str, Any]:
    """Signed chain transactions, newest first: state, attempts, confirmations (no raw bytes)."""
    rows, total = _gw(request).store.outbox.page(limit, offset, state, chain, request_id)
    return {"items": [r.summary() for r in rows], "total": total}


@router.get("/v1/outbox/{tx_hash}", responses=responses(404))
async def show_outbox(
    request: Request, tx_hash: Annotated[str, Path(pattern=TX_HASH, max_length=90)]
) -> dict[str, Any]:
    """One transaction of the outbox, with its raw signed bytes (hex, or base64 for Solana)."""
    outbox = _gw(request).store.outbox
    entry = outbox.get(tx_hash) or outbox.get(tx_hash.lower())
    if entry is None:
        raise GatewayError(404, "unknown_transaction", f"no transaction {tx_hash} in the outbox")
    return entry.summary(with_raw=True)


class NonceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(pattern=REQUEST_ID, description="the signing request to come")
    # bounds first, then WHOLE (json_number.bounded_int): 2.0 is an integer in JSON Schema
    index: Annotated[int, Field(ge=0, lt=2**31), WHOLE] = Field(
        default=0, description="the wallet's address m/0/index"
    )
    floor: Annotated[int, Field(ge=0, le=2**53), WHOLE] = Field(  # exact as a float bound
        default=0, description="the chain's next nonce for the address"
    )
    replaces: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-fA-F]{64}$",
        description="a stuck transaction in the outbox: its nonce, for a fee bump",
    )
    seconds: float = Field(default=600.0, gt=0, le=86_400, description="held this long unused")


@router.post("/v1/wallets/{wallet_id}/nonces", status_code=201, responses=responses(404, 409, 503))
async def allocate_nonce(
    request: Request,
    wallet_id: Annotated[str, Path(pattern=WALLET_ID.pattern)],
    body: NonceBody,
) -> dict[str, Any]:
    """The nonce `request_id` holds for the address: the lowest one nobody holds at or above
    `floor` and, with an Ethereum connector, the chain's pending nonce of the address (the reply
    says which: `floor`, `floor_from` caller | chain, `chain_next`); freed if the request ends
    without a signature."""
    gw = _gw(request)
    row = gw.store.wallets.get(wallet_id)
    if row is None:
        raise GatewayError(404, "unknown_wallet", f"unknown wallet {wallet_id}")
    if row.chain != "ethereum":
        raise GatewayError(409, "not_ethereum", f"wallet {wallet_id} is on {row.chain}: no nonces")
    chain = chain_for(row.chain)
    assert chain is not None
    try:
        address = chain.address(wallet_ref(gw.key(row.key_id), row), body.index).address
    except ChainError as exc:
        raise GatewayError(409, "bad_index", str(exc)) from None
    book, chain_id = gw.store.nonces, normalise_network(row.network)
    if body.replaces is None:
        floor = await run_in_threadpool(
            chain_nonces.of(gw).floor, chain_id, address, body.floor
        )  # JSON-RPC: off the event loop
        got = book.allocate(
            chain_id, address, body.request_id, floor=floor.value, seconds=body.seconds
        )
        return {**got.summary(), **floor.summary()}
    stuck = gw.store.outbox.get(body.replaces.lower())
    if stuck is None or stuck.chain != "ethereum" or stuck.sender.lower() != address.lower():
        raise GatewayError(
            404, "unknown_transaction", f"replaces: no transaction {body.replaces} of {address}"
        )
    if stuck.state not in ("queued", "sent") or stuck.nonce is None:
        raise GatewayError(
            409, "not_stuck", f"replaces: {body.replaces} is {stuck.state}, nothing to replace"
        )
    got = book.allocate_replacement(
        body.request_id, chain_id, address, stuck.nonce, stuck.tx_hash, seconds=body.seconds
    )
    return got.summary()
