"""A signing request as a user builds it: intent, raw payload and the initiator's signature."""

from __future__ import annotations

import secrets
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.governance import Intent, SigningRequest, new_request, raw_payload


def build_request(
    cluster_id: str,
    initiator: str,
    key: Ed25519PrivateKey,
    *,
    key_id: str,
    chain: str,
    asset: str,
    destination: str,
    amount: int,
    data: bytes,
    memo: str = "",
    path: str = "m",
    lifetime: int = 3600,
    request_id: str | None = None,
    now: int | None = None,
    taproot: bool = False,
    merkle_root: str | None = None,
) -> SigningRequest:
    now = int(time.time()) if now is None else now
    intent = Intent(
        request_id=request_id or secrets.token_hex(12),
        initiator=initiator,
        key_id=key_id,
        derivation_path=path,
        chain=chain,
        asset=asset,
        destination=destination,
        amount=amount,
        memo=memo,
        created_at=now,
        expires_at=now + lifetime,
        taproot=taproot,
        merkle_root=merkle_root,
    )
    payload = raw_payload(chain, asset, destination, amount, memo, data)
    return new_request(cluster_id, intent, payload, key)
