"""The Solana chain: the wallet's one address, the intent a wire transaction really carries, and the
signed transaction."""

from __future__ import annotations

import math
from collections.abc import Sequence

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from solders.pubkey import Pubkey

from tholos.chains import proof_of_control
from tholos.chains.base import (
    AddressInfo,
    ChainError,
    ContractCall,
    DerivedIntent,
    ParsedTransaction,
    SignedTransaction,
    SigningTarget,
    Transfer,
    WalletRef,
)
from tholos.chains.solana import offchain, programs, wire

NETWORKS = frozenset(("mainnet-beta", "devnet", "testnet", "localnet"))
LAMPORTS_PER_SIGNATURE = 5000
# Without SetComputeUnitLimit the runtime allots 200 000 units per instruction (3 000 per builtin
# since the feature reserve_minimal_cus_for_builtin_instructions, compute-budget ones included);
# the fee bound takes 200 000 for every other instruction and 3 000 per compute-budget one, which
# bounds both rules.
DEFAULT_INSTRUCTION_COMPUTE_UNITS = 200_000
BUILTIN_INSTRUCTION_COMPUTE_UNITS = 3_000
MAX_COMPUTE_UNITS = 1_400_000
MICRO_LAMPORTS = 1_000_000


def wallet_key(wallet: WalletRef) -> Pubkey:
    """The wallet's account key, after checking the wallet is a Solana ed25519 wallet."""
    if wallet.chain != "solana":
        raise ChainError(f"wallet is on {wallet.chain!r}, not solana", field="chain")
    if wallet.network not in NETWORKS:
        raise ChainError(
            f"unknown network {wallet.network!r} (one of {sorted(NETWORKS)})", field="network"
        )
    if wallet.scheme != "ed25519":
        raise ChainError(f"solana accounts are ed25519 keys, not {wallet.scheme}", field="scheme")
    if wallet.address_type != "account":
        raise ChainError(
            f"address type {wallet.address_type!r} (solana has 'account')", field="address_type"
        )
    if len(wallet.public_key) != 32:
        raise ChainError("an ed25519 public key is 32 bytes", field="public_key")
    return Pubkey.from_bytes(wallet.public_key)


class Solana:
    """`Chain` for Solana (see the package docstring for addresses and networks)."""

    name = "solana"

    def address(self, wallet: WalletRef, index: int, *, change: bool = False) -> AddressInfo:
        key = wallet_key(wallet)
        if change:
            raise ChainError(
                "solana has no change addresses: value stays in the account", field="change"
            )
        if index != 0:
            raise ChainError(
                "a threshold ed25519 key has one solana address (index 0): standard wallets "
                "derive more with hardened SLIP-10, which needs the whole secret key; a wallet "
                "that needs more addresses uses more keys",
                field="index",
            )
        return AddressInfo(address=str(key), index=0, path="m", public_key=wallet.public_key)

    def parse(self, wallet: WalletRef, payload: bytes) -> ParsedTransaction:
        if proof_of_control.is_envelope(payload):
            return _proof(wallet, payload)
        tx, _ = self._decode(wallet, payload)
        return ParsedTransaction(
            intent(wallet, tx), (SigningTarget(message=tx.message_bytes, path="m"),)
        )

    def finalize(
        self, wallet: WalletRef, payload: bytes, signatures: Sequence[bytes]
    ) -> SignedTransaction:
        if proof_of_control.is_envelope(payload):
            (target,) = _proof(wallet, payload).targets
            sig = _checked_signature(wallet, target.message, signatures)
            return SignedTransaction(
                raw=sig, encoding="hex", extra={"address": str(wallet_key(wallet))}
            )
        tx, slot = self._decode(wallet, payload)
        intent(wallet, tx)  # refuses exactly what parse refuses
        sig = _checked_signature(wallet, tx.message_bytes, signatures)
        signed = tx.with_signature(slot, sig)
        first = bytes(signed.signatures[0])
        # The txid is the first (fee payer's) signature; unknown while that slot is empty.
        txid = "" if first == wire.EMPTY_SIGNATURE else str(signed.signatures[0])
        return SignedTransaction(raw=bytes(signed), encoding="base64", txid=txid)

    @staticmethod
    def _decode(wallet: WalletRef, payload: bytes) -> tuple[wire.WireTransaction, int]:
        """The checked transaction and the wallet's signature slot in it."""
        key = wallet_key(wallet)
        tx = wire.decode(payload)
        signers = tx.signer_keys
        if key not in signers:
            raise ChainError(
                f"the wallet {key} is not a signer of this transaction", field="signers"
            )
        slot = signers.index(key)
        if tx.signatures[slot] != wire.EMPTY_SIGNATURE:
            raise ChainError(
                "the wallet's signature slot is not empty", field=f"signatures[{slot}]"
            )
        return tx, slot


def _checked_signature(wallet: WalletRef, message: bytes, signatures: Sequence[bytes]) -> bytes:
    if len(signatures) != 1:
        raise ChainError(f"one signature expected, got {len(signatures)}", field="signatures")
    sig = bytes(signatures[0])
    if len(sig) != 64:
        raise ChainError("an ed25519 signature is 64 bytes", field="signatures[0]")
    try:
        VerifyKey(wallet.public_key).verify(message, sig)
    except (BadSignatureError, ValueError):
        raise ChainError(
            "the signature does not verify under the wallet key over this message",
            field="signatures[0]",
        ) from None
    return sig


def _proof(wallet: WalletRef, payload: bytes) -> ParsedTransaction:
    """A proof of control of the wallet's account, as a Solana off-chain message (version 0)."""
    key = wallet_key(wallet)
    request = proof_of_control.decode(payload)
    if request.index != 0:
        raise ChainError("a solana wallet has one address (index 0)", field="index")
    address = str(key)
    text = proof_of_control.message_text("solana", wallet.network, address, request.challenge)
    details = proof_of_control.details(offchain.FORMAT, address, "m", 0, request.challenge, text)
    intent = DerivedIntent(
        chain="solana", network=wallet.network, kind=proof_of_control.INTENT_KIND, details=details
    )
    return ParsedTransaction(intent, (SigningTarget(offchain.serialize(text.encode()), "m"),))


def intent(wallet: WalletRef, tx: wire.WireTransaction) -> DerivedIntent:
    """Transfers, calls and the fee the transaction carries; raises ChainError on what it refuses."""
    keys = tx.account_keys
    transfers: list[Transfer] = []
    calls: list[ContractCall] = []
    budget: dict[str, int] = {}
    details: dict[str, str | int] = {}
    precompile_sigs = 0
    non_budget = 0
    for i, ix in enumerate(tx.message.instructions):
        where = f"instructions[{i}]"
        program = keys[ix.program_id_index]
        accounts = [keys[a] for a in bytes(ix.accounts)]
        data = bytes(ix.data)
        if i == 0 and programs.is_nonce_advance(program, data):
            if len(accounts) < 1:
                raise ChainError(
                    "advance_nonce_account names no nonce account", field=f"{where}.accounts"
                )
            details["durable_nonce_account"] = str(accounts[0])
            non_budget += 1
            continue
        decoded = programs.decode(where, program, accounts, data)
        if isinstance(decoded, programs.BudgetSetting):
            if decoded.name in budget:
                raise ChainError(
                    f"a second {decoded.name} (the runtime refuses duplicates)", field=where
                )
            budget[decoded.name] = decoded.value
            continue
        non_budget += 1
        precompile_sigs += programs.precompile_signatures(program, data)
        if isinstance(decoded, Transfer):
            transfers.append(decoded)
        else:
            calls.append(decoded)
    cu_limit = min(
        budget.get(
            "compute_unit_limit",
            DEFAULT_INSTRUCTION_COMPUTE_UNITS * non_budget
            + BUILTIN_INSTRUCTION_COMPUTE_UNITS * len(budget),
        ),
        MAX_COMPUTE_UNITS,
    )
    cu_price = budget.get("compute_unit_price", 0)
    priority_fee = math.ceil(cu_limit * cu_price / MICRO_LAMPORTS)
    base_fee = LAMPORTS_PER_SIGNATURE * (len(tx.signatures) + precompile_sigs)
    key = str(Pubkey.from_bytes(wallet.public_key))
    signers = [str(k) for k in tx.signer_keys]
    details.update(
        {
            "message_version": tx.version,
            "recent_blockhash": str(tx.message.recent_blockhash),
            "signer_count": len(signers),
            "fee_payer": signers[0],
            "co_signers": ",".join(s for s in signers if s != key),
            "co_signers_signed": ",".join(
                s
                for s, sig in zip(signers, tx.signatures, strict=True)
                if s != key and sig != wire.EMPTY_SIGNATURE
            ),
            "base_fee": base_fee,
            "priority_fee": priority_fee,
            "compute_unit_limit": cu_limit,
            "compute_unit_price": cu_price,
            **{
                k: v
                for k, v in budget.items()
                if k not in ("compute_unit_limit", "compute_unit_price")
            },
        }
    )
    return DerivedIntent(
        chain="solana",
        network=wallet.network,
        kind="transaction",
        transfers=tuple(transfers),
        fee=base_fee + priority_fee,
        fee_asset="SOL",
        calls=tuple(calls),
        details=details,
    )
