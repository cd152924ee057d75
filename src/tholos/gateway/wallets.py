"""REST routes for wallets: a threshold key as one chain's account (`POST /v1/wallets`, list,
show) and its addresses, derived on demand from the key's public side (`.../addresses/{index}`).
A bad chain, network, address type, key scheme or index is a 4xx in the envelope and stores
nothing."""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tholos.chains.base import ChainError, WalletRef
from tholos.chains.ethereum.wallet import NETWORK_NAMES
from tholos.chains.registry import chain_for
from tholos.chains.wallet_kinds import (
    BITCOIN_NETWORKS,
    SOLANA_NETWORKS,
    root_node,
    wallet_kind,
)
from tholos.crypto import bip32
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway import openapi
from tholos.gateway.access import charge_keys
from tholos.gateway.http_errors import responses
from tholos.gateway.schemas import KeyId, Label
from tholos.gateway.service import Gateway, GatewayError
from tholos.gateway.store import KeyRow
from tholos.gateway.wallet_store import WalletRow
from tholos.schemes import SCHEMES, chain_code_for

WALLET_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_PAGE = 1000
MAX_INDEX = bip32.HARDENED - 1
ETHEREUM_NETWORK = "^([1-9][0-9]{0,18}|" + "|".join(NETWORK_NAMES) + ")$"
# ChainError field -> error code
CODES = {
    "chain": "unknown_chain",
    "network": "bad_network",
    "address_type": "bad_address_type",
    "key_id": "wrong_scheme",
    "index": "bad_index",
    "change": "bad_index",
}

router = APIRouter(tags=["wallets"])


class _WalletBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    key_id: KeyId | None = Field(
        default=None,
        description="an existing key of the scheme the address type needs; none: a new key",
    )
    label: Label | None = None


class BitcoinWallet(_WalletBody):
    chain: Literal["bitcoin"]
    network: Literal[BITCOIN_NETWORKS]  # type: ignore[valid-type]
    address_type: Literal["p2tr", "p2wpkh"] | None = Field(
        default=None, description="p2tr (bip340 key) | p2wpkh (ecdsa key); none: the key's"
    )


class EthereumWallet(_WalletBody):
    chain: Literal["ethereum"]
    network: str = Field(
        pattern=ETHEREUM_NETWORK,
        description="a chain id in decimal (1 .. 10^19-1) or " + "|".join(NETWORK_NAMES),
    )
    address_type: Literal["eoa"] | None = None


class SolanaWallet(_WalletBody):
    chain: Literal["solana"]
    network: Literal[SOLANA_NETWORKS]  # type: ignore[valid-type]
    address_type: Literal["account"] | None = None


CreateWallet = Annotated[
    BitcoinWallet | EthereumWallet | SolanaWallet, Field(discriminator="chain")
]


def _gw(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _refused(exc: ChainError) -> GatewayError:
    """409 for what the wallet's chain or key cannot do (a key of another scheme, a change
    address on ethereum, an index past 0 on solana); 400 for the rest."""
    status = 409 if exc.field in ("key_id", "change", "index") else 400
    return GatewayError(status, CODES.get(exc.field, "bad_wallet"), str(exc))


def wallet_ref(key: KeyRow, row: WalletRow) -> WalletRef:
    """What the chain packages need of a wallet: the key's root public key and chain code (the
    stored xpub for imported keys, `chain_code_for` for DKG keys); Solana: the ed25519 key."""
    scheme = SCHEMES[key.scheme]
    chain_code = None
    public_key = bytes.fromhex(key.public_key)
    if scheme.supports_derivation:
        if key.meta.get("xpub"):
            root = bip32.ExtendedPublicKey.from_xpub(str(key.meta["xpub"]))
        else:
            public = PublicKeyPackage.from_dict(key.package)
            root = bip32.ExtendedPublicKey.from_public_package(public, chain_code_for(public))
        public_key, chain_code = root.key_bytes, root.chain_code
    return WalletRef(
        wallet_id=row.wallet_id,
        chain=row.chain,
        network=row.network,
        scheme=key.scheme,
        address_type=row.address_type,
        public_key=public_key,
        chain_code=chain_code,
    )


def _address(ref: WalletRef, index: int, change: bool) -> dict[str, Any]:
    chain = chain_for(ref.chain)
    assert chain is not None  # wallet_kind admitted the chain
    try:
        a = chain.address(ref, index, change=change)
    except ChainError as exc:
        raise _refused(exc) from None
    return {
        "wallet_id": ref.wallet_id,
        "address": a.address,
        "index": a.index,
        "path": a.path,
        "public_key": a.public_key.hex(),
        "change": a.change,
    }


def _shown(ref: WalletRef, row: WalletRow) -> dict[str, Any]:
    out = {
        **row.summary(),
        "scheme": ref.scheme,
        "address": _address(ref, 0, False)["address"],
        "public_key": ref.public_key.hex(),
    }
    node = root_node(ref)
    if node is not None:
        out["xpub"] = node.to_xpub()
        out["master_fingerprint"] = node.fingerprint.hex()
    return out


def _wallet(gw: Gateway, wallet_id: str) -> tuple[WalletRef, WalletRow]:
    row = gw.store.wallets.get(wallet_id) if WALLET_ID.match(wallet_id) else None
    if row is None:
        raise GatewayError(404, "unknown_wallet", f"unknown wallet {wallet_id[:64]!r}")
    return wallet_ref(gw.key(row.key_id), row), row


WalletIdParam = Annotated[str, openapi.id_param("wallet id: 32 lowercase hex digits")]


@router.post("/v1/wallets", status_code=201, responses=responses(400, 404, 429, 503))
async def create_wallet(body: CreateWallet, request: Request) -> dict[str, Any]:
    """A wallet on an existing key (`key_id`) or on a new key of the scheme its address type
    needs; answers as `GET /v1/wallets/{id}` does."""
    gw = _gw(request)
    try:
        if body.key_id is not None:
            key = gw.key(body.key_id)
            kind = wallet_kind(body.chain, body.network, body.address_type, key.scheme)
        else:
            kind = wallet_kind(body.chain, body.network, body.address_type)
            charge_keys(request, 1)
            key = (await gw.create_keys(kind.scheme, 1, body.label))[0]
    except ChainError as exc:
        raise _refused(exc) from None
    row = WalletRow(
        uuid.uuid4().hex,
        key.key_id,
        kind.chain,
        kind.network,
        kind.address_type,
        time.time(),
        body.label,
    )
    ref = wallet_ref(key, row)
    shown = _shown(ref, row)  # derives address 0: a key the chain refuses is never stored
    gw.store.wallets.put(row)
    return shown


@router.get("/v1/wallets")
async def list_wallets(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="wallets per page")] = MAX_PAGE,
    offset: Annotated[int, Query(ge=0, le=2**31, description="wallets to skip")] = 0,
    chain: Annotated[str | None, Query(max_length=32)] = None,
    key_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """One page of wallets (oldest first) with the total that match; `next_offset` is the offset
    of the next page, null on the last one. Addresses: `GET /v1/wallets/{id}/addresses/{i}`."""
    page = _gw(request).store.wallets.page(limit, offset, chain, key_id)
    nxt = offset + len(page.rows)
    return {
        "wallets": [r.summary() for r in page.rows],
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "next_offset": nxt if nxt < page.total else None,
    }


@router.get("/v1/wallets/{wallet_id}", responses=responses(404))
async def show_wallet(wallet_id: WalletIdParam, request: Request) -> dict[str, Any]:
    """The wallet, its address 0, and (bitcoin, ethereum) its xpub: the key's root node, receive
    addresses at m/0/i, change at m/1/i."""
    ref, row = _wallet(_gw(request), wallet_id)
    return _shown(ref, row)


@router.get("/v1/wallets/{wallet_id}/addresses/{index}", responses=responses(400, 404))
async def wallet_address(
    wallet_id: WalletIdParam,
    index: Annotated[int, Path(ge=0, le=MAX_INDEX, description="address index, 0 .. 2^31-1")],
    request: Request,
    change: Annotated[bool, Query(description="the change branch m/1/i (bitcoin)")] = False,
) -> dict[str, Any]:
    """Address `index` (receive m/0/i, or change m/1/i), derived now from the public side;
    `public_key` is the child key (taproot: the x-only internal key before the BIP341 tweak)."""
    ref, _ = _wallet(_gw(request), wallet_id)
    return _address(ref, index, change)
