"""The signatures a governed chain transaction needs, as the gateway derives them (a convenience:
every node derives its own and signs only those), and the broadcastable transaction it assembles
from them with the same chain package."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from tholos.chains.base import ChainError, ParsedTransaction, WalletRef
from tholos.chains.registry import chain_for
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.errors import GatewayError
from tholos.gateway.store import KeyRow
from tholos.governance import SigningRequest
from tholos.schemes import SCHEMES
from tholos.schemes.wallets import wallet_ref


def wallet_of(row: KeyRow, request: SigningRequest) -> WalletRef:
    """The wallet of a transaction request, from the gateway's copy of the key's public side."""
    intent = request.intent
    assert intent.transaction is not None
    try:
        return wallet_ref(
            row.key_id,
            SCHEMES[row.scheme],
            PublicKeyPackage.from_dict(row.package),
            row.meta,
            chain=intent.chain,
            network=intent.transaction.network,
            address_type=intent.transaction.address_type,
        )
    except ChainError as exc:
        raise GatewayError(422, "bad_request", f"wallet: {exc}") from None


def parse(row: KeyRow, request: SigningRequest) -> tuple[WalletRef, ParsedTransaction]:
    """The gateway's parse of a transaction request (400 naming the field if refused)."""
    chain = chain_for(request.intent.chain)
    if chain is None:
        raise GatewayError(422, "bad_request", f"no chain package for {request.intent.chain!r}")
    wallet = wallet_of(row, request)
    try:
        parsed = chain.parse(wallet, request.payload_bytes())
    except ChainError as exc:
        raise GatewayError(422, "bad_request", f"transaction refused: {exc}") from None
    if not parsed.targets:
        raise GatewayError(422, "bad_request", "the transaction needs no signature of this key")
    return wallet, parsed


def finalize(
    wallet: WalletRef, request: SigningRequest, signatures: Sequence[bytes]
) -> dict[str, Any]:
    """The signed transaction as a request's result: `raw` (hex, or base64 for solana), `txid`,
    `encoding`, and for bitcoin the finalised `psbt`; the signatures in target order."""
    chain = chain_for(request.intent.chain)
    assert chain is not None
    signed = chain.finalize(wallet, request.payload_bytes(), signatures)
    raw = signed.raw.hex() if signed.encoding == "hex" else base64.b64encode(signed.raw).decode()
    return {
        "raw": raw,
        "encoding": signed.encoding,
        "txid": signed.txid,
        **dict(signed.extra),
        "signatures": [s.hex() for s in signatures],
    }
