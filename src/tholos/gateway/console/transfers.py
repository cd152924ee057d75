"""New transfers from the console: build an unsigned transaction for a wallet (Solana, Ethereum)
or take an uploaded one (any chain), parse it with the wallet's chain package, and declare the
intent the initiator will sign, as `tholos tx build` and the SDK do."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any

from tholos.chains.base import ChainError, WalletRef
from tholos.chains.registry import chain_for
from tholos.gateway.console.web import Refused
from tholos.gateway.service import Gateway, GatewayError
from tholos.gateway.wallets import wallet_ref
from tholos.governance.requests import Intent
from tholos.governance.transactions import declare

LIFETIME = 3600
ENCODINGS = {"bitcoin": "base64 PSBT", "ethereum": "hex", "solana": "base64"}


def wallet(gw: Gateway, wallet_id: str) -> tuple[WalletRef, str]:
    """The wallet's reference for its chain package, and its key id."""
    row = gw.store.wallets.get(wallet_id) if len(wallet_id) <= 64 else None
    if row is None:
        raise Refused(404, f"unknown wallet {wallet_id[:64]!r}")
    try:
        key = gw.key(row.key_id)
    except GatewayError as exc:
        raise Refused(404, str(exc)) from None
    return wallet_ref(key, row), row.key_id


def _int(form: dict[str, Any], name: str, default: int | None = None) -> int:
    raw = str(form.get(name, "")).strip()
    if not raw:
        if default is None:
            raise Refused(400, f"{name}: required (a whole number)")
        return default
    if not raw.isdigit() or len(raw) > 78:
        raise Refused(400, f"{name}: a whole number of base units, not {raw[:40]!r}")
    return int(raw)


def build(ref: WalletRef, form: dict[str, Any]) -> bytes:
    """An unsigned transaction from the form's destination, amount and chain fields."""
    to = str(form.get("to", "")).strip()
    if not to:
        raise Refused(400, "to: the destination address is required")
    amount = _int(form, "amount")
    try:
        if ref.chain == "solana":
            return _solana(ref, to, amount, str(form.get("blockhash", "")).strip())
        if ref.chain == "ethereum":
            from tholos.chains.ethereum import build_transaction

            return build_transaction(
                to=to,
                value=amount,
                chain_id=ref.network,
                nonce=_int(form, "nonce"),
                gas=_int(form, "gas", 21_000),
                max_fee_per_gas=_int(form, "max_fee", 0),
                max_priority_fee_per_gas=_int(form, "priority_fee", 0),
            )
    except (ChainError, ValueError) as exc:
        raise Refused(400, f"cannot build the transaction: {exc}") from None
    raise Refused(400, f"{ref.chain}: upload an unsigned transaction (needs inputs chosen)")


def _solana(ref: WalletRef, to: str, amount: int, blockhash: str) -> bytes:
    from solders.hash import Hash
    from solders.pubkey import Pubkey

    from tholos.chains.solana import system_transfer
    from tholos.chains.solana import unsigned as unsigned_tx

    if not blockhash:
        raise Refused(400, "blockhash: a recent blockhash (base58) is required for Solana")
    payer = Pubkey.from_bytes(ref.public_key)
    return unsigned_tx(
        payer, [system_transfer(payer, Pubkey.from_string(to), amount)], Hash.from_string(blockhash)
    )


def decode_upload(chain: str, text: str) -> bytes:
    """An uploaded unsigned transaction: hex (Ethereum) or base64 (Bitcoin PSBT, Solana)."""
    text = text.strip()
    if not text:
        raise Refused(400, "payload: paste or upload the unsigned transaction")
    try:
        if chain == "ethereum":
            return bytes.fromhex(text.removeprefix("0x"))
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise Refused(400, f"payload: not {ENCODINGS.get(chain, 'base64')}") from None


def declared_intent(ref: WalletRef, key_id: str, initiator: str, payload: bytes) -> Intent:
    """The request intent for `payload`, from the chain package's own parse of it."""
    chain = chain_for(ref.chain)
    if chain is None:
        raise Refused(400, f"no chain package for {ref.chain!r}")
    try:
        derived = chain.parse(ref, payload).intent
    except ChainError as exc:
        raise Refused(400, f"the {ref.chain} package refuses this transaction: {exc}") from None
    now = int(time.time())
    return Intent(
        request_id=f"console-{secrets.token_hex(8)}",
        initiator=initiator,
        key_id=key_id,
        chain=ref.chain,
        created_at=now,
        expires_at=now + LIFETIME,
        transaction=declare(derived, ref.address_type),
    )
