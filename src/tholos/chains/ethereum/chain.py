"""The ethereum `Chain`: addresses, the intent a payload really carries, the signed result."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import rlp

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
from tholos.chains.ethereum.calldata import decode_erc20
from tholos.chains.ethereum.payload import Request, decode_payload
from tholos.chains.ethereum.transaction import UnsignedTransaction, decode_unsigned, encode_signed
from tholos.chains.ethereum.typed_data import decode_permit, domain_details, parse_typed_data
from tholos.chains.ethereum.wallet import (
    CHAIN,
    address_path,
    check_wallet,
    checksum_address,
    derive_address,
    keccak256,
    public_key_address,
)
from tholos.crypto.ecdsa.signature import HALF_N, EcdsaSignature, recover
from tholos.crypto.errors import InvalidInput, InvalidSignature
from tholos.crypto.groups.secp256k1 import N

ETH = "ETH"


@dataclass(frozen=True)
class _Parsed:
    parsed: ParsedTransaction
    request: Request
    sender: bytes
    tx: UnsignedTransaction | None


def created_address(sender: bytes, nonce: int) -> bytes:
    """The address a contract creation from `sender` at `nonce` deploys to (Yellow Paper eq. 86)."""
    nonce_bytes = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
    return keccak256(rlp.encode([sender, nonce_bytes]))[12:]


def _transaction_intent(
    tx: UnsignedTransaction, chain_id: int, sender: bytes
) -> tuple[tuple[Transfer, ...], tuple[ContractCall, ...], dict[str, str | int]]:
    if tx.chain_id != chain_id:
        raise ChainError(
            f"transaction for chain {tx.chain_id}, the wallet is on {chain_id}", field="chain_id"
        )
    transfers: list[Transfer] = []
    calls: list[ContractCall] = []
    details: dict[str, str | int] = {
        "type": tx.type,
        "chain_id": tx.chain_id,
        "nonce": tx.nonce,
        "gas": tx.gas,
        "data_size": len(tx.data),
    }
    if tx.type == 2:
        details["max_fee_per_gas"] = tx.max_fee_per_gas
        details["max_priority_fee_per_gas"] = tx.max_priority_fee_per_gas
    else:
        details["gas_price"] = tx.gas_price
    if tx.type != 0:
        details["access_list_size"] = len(tx.access_list)
        details["access_list_storage_keys"] = sum(len(keys) for _, keys in tx.access_list)
    if tx.to is None:
        new = checksum_address(created_address(sender, tx.nonce))
        transfers.append(Transfer(ETH, new, tx.value, action="contract_creation"))
        details["init_code_hash"] = "0x" + keccak256(tx.data).hex()
        return tuple(transfers), tuple(calls), details
    to = checksum_address(tx.to)
    erc20 = decode_erc20(tx.data)
    if tx.value or not tx.data:
        transfers.append(Transfer(ETH, to, tx.value))
    if erc20 is not None:
        transfers.append(
            Transfer(
                f"erc20:{to}", erc20.to, erc20.amount, action=erc20.action, source=erc20.source
            )
        )
    elif tx.data:
        calls.append(ContractCall(contract=to, selector="0x" + tx.data[:4].hex(), value=tx.value))
    return tuple(transfers), tuple(calls), details


def _personal_message_digest(message: bytes) -> bytes:
    """EIP-191 version 0x45 (personal_sign)."""
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)


class Ethereum:
    """Ethereum and EVM chains (network = chain id) on threshold ECDSA wallets."""

    name = CHAIN

    def address(self, wallet: WalletRef, index: int, *, change: bool = False) -> AddressInfo:
        if change:
            raise ChainError("ethereum accounts have no change addresses", field="change")
        address, key = derive_address(wallet, index)
        return AddressInfo(
            address=checksum_address(address), index=index, path=address_path(index), public_key=key
        )

    def parse(self, wallet: WalletRef, payload: bytes) -> ParsedTransaction:
        return self._parse(wallet, payload).parsed

    def _parse(self, wallet: WalletRef, payload: bytes) -> _Parsed:
        chain_id = check_wallet(wallet)
        request = decode_payload(payload)
        sender, _ = derive_address(wallet, request.index)
        if request.sender is not None and request.sender != sender:
            raise ChainError(
                f"address {request.index} of this wallet is {checksum_address(sender)}",
                field="from",
            )
        base: dict[str, str | int] = {
            "from": checksum_address(sender),
            "index": request.index,
            "path": address_path(request.index),
        }
        network = str(chain_id)
        tx: UnsignedTransaction | None = None
        if request.kind == "transaction":
            tx = decode_unsigned(request.body)
            transfers, calls, details = _transaction_intent(tx, chain_id, sender)
            digest = tx.digest()
            intent = DerivedIntent(
                chain=CHAIN,
                network=network,
                kind="transaction",
                transfers=transfers,
                fee=tx.max_fee,
                fee_asset=ETH,
                calls=calls,
                details={**base, **details},
            )
        elif request.kind == "eip712":
            td = parse_typed_data(request.body, chain_id)
            digest = td.digest
            details = {**base, **domain_details(td)}
            transfers = ()
            permit = decode_permit(td)
            if permit is not None:
                details.update(
                    owner=permit.owner, deadline=permit.deadline, permit_nonce=permit.nonce
                )
                source = "" if permit.owner == base["from"] else permit.owner
                transfers = (
                    Transfer(
                        f"erc20:{permit.token}",
                        permit.spender,
                        permit.value,
                        action="permit",
                        source=source,
                    ),
                )
            intent = DerivedIntent(
                chain=CHAIN,
                network=network,
                kind="typed_data",
                transfers=transfers,
                details=details,
            )
        elif request.kind == "proof_of_reserves":
            address = checksum_address(sender)
            text = proof_of_control.message_text(CHAIN, network, address, request.body)
            digest = _personal_message_digest(text.encode())
            details = {
                **base,
                **proof_of_control.details(
                    "eip191",
                    address,
                    address_path(request.index),
                    request.index,
                    request.body,
                    text,
                ),
            }
            intent = DerivedIntent(
                chain=CHAIN, network=network, kind=proof_of_control.INTENT_KIND, details=details
            )
        else:
            message: bytes = request.body
            digest = _personal_message_digest(message)
            details = {**base, "message_hex": "0x" + message.hex(), "message_size": len(message)}
            with contextlib.suppress(UnicodeDecodeError):
                details["message_text"] = message.decode("utf-8")
            intent = DerivedIntent(chain=CHAIN, network=network, kind="message", details=details)
        target = SigningTarget(message=digest, path=address_path(request.index))
        return _Parsed(ParsedTransaction(intent, (target,)), request, sender, tx)

    def finalize(
        self, wallet: WalletRef, payload: bytes, signatures: Sequence[bytes]
    ) -> SignedTransaction:
        """Check the one signature recovers to the signing address, then assemble the result."""
        p = self._parse(wallet, payload)
        if len(signatures) != 1:
            raise ChainError(f"one signature expected, got {len(signatures)}", field="signatures")
        recovery_id, r, s = recover_signature(p.parsed.targets[0].message, signatures[0], p.sender)
        sender = checksum_address(p.sender)
        if p.tx is not None:
            raw = encode_signed(p.tx, recovery_id, r, s)
            return SignedTransaction(
                raw=raw, encoding="hex", txid="0x" + keccak256(raw).hex(), extra={"from": sender}
            )
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + recovery_id])
        return SignedTransaction(raw=raw, encoding="hex", extra={"from": sender})


def recover_signature(digest: bytes, signature: bytes, expected: bytes) -> tuple[int, int, int]:
    """(recovery id, r, s) of r||s (64 bytes, both ids tried) or r||s||v (65, v 0/1 or 27/28)
    that recovers to `expected`; low-S only (EIP-2)."""
    field = "signatures[0]"
    if not isinstance(signature, bytes) or len(signature) not in (64, 65):
        raise ChainError("r||s (64 bytes) or r||s||v (65 bytes)", field=field)
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < N and 0 < s < N):
        raise ChainError("r or s out of range", field=field)
    if s > HALF_N:
        raise ChainError("high-S signature (EIP-2 requires s <= n/2)", field=field)
    if len(signature) == 65:
        v = signature[64]
        if v not in (0, 1, 27, 28):
            raise ChainError(f"recovery id {v} (0, 1, 27 or 28)", field=field)
        candidates: tuple[int, ...] = (v % 27,)
    else:
        candidates = (0, 1)
    for recovery_id in candidates:
        try:
            key = recover(digest, EcdsaSignature(r, s, recovery_id))
        except (InvalidSignature, InvalidInput):
            continue
        if public_key_address(key.format(compressed=False)[1:]) == expected:
            return recovery_id, r, s
    raise ChainError(f"the signature does not recover to {checksum_address(expected)}", field=field)
