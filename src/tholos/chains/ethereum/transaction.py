"""Unsigned Ethereum transactions: strict decoding and signed encoding.

Accepted (the bytes a wallet signs, nothing else):
- EIP-1559 (type 2): 0x02 || rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to,
  value, data, accessList]);
- EIP-2930 (type 1): 0x01 || rlp([chainId, nonce, gasPrice, gas, to, value, data, accessList]);
- legacy with EIP-155 replay protection: rlp([nonce, gasPrice, gas, to, value, data, chainId, 0, 0]).
Refused: pre-EIP-155 legacy (no chain id), other types (blobs, EIP-7702 authorisations), signed
transactions, trailing bytes and any non-canonical RLP (the bytes must re-encode identically, so
the digest Keccak-256(payload) has one meaning).
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from rlp.exceptions import RLPException

from tholos.chains.base import ChainError
from tholos.chains.ethereum.wallet import keccak256

MAX_TRANSACTION_BYTES = 128 * 1024  # geth's txMaxSize
_U256 = 2**256
_U64 = 2**64

Item = bytes | list["Item"]


@dataclass(frozen=True)
class UnsignedTransaction:
    """The fields of an unsigned transaction; `to` is None for a contract creation."""

    type: int  # 0 legacy (EIP-155), 1 EIP-2930, 2 EIP-1559
    chain_id: int
    nonce: int
    gas: int
    to: bytes | None
    value: int
    data: bytes
    gas_price: int = 0  # types 0 and 1
    max_fee_per_gas: int = 0  # type 2
    max_priority_fee_per_gas: int = 0  # type 2
    access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...] = ()
    fields: tuple[Item, ...] = ()  # the decoded RLP items, for re-encoding with the signature
    payload: bytes = b""  # the signing payload, exactly as received (canonical, checked)

    @property
    def max_fee(self) -> int:
        """The most the transaction can pay in fees (wei): gas x maxFeePerGas, or gas x gasPrice."""
        return self.gas * (self.max_fee_per_gas if self.type == 2 else self.gas_price)

    def digest(self) -> bytes:
        """Keccak-256 of the signing payload: what the key signs."""
        return keccak256(self.payload)


def _int(item: Item, field: str, bound: int = _U256) -> int:
    if not isinstance(item, bytes):
        raise ChainError("an integer was expected, got a list", field=field)
    if item[:1] == b"\x00":
        raise ChainError("integer with leading zero bytes (non-canonical RLP)", field=field)
    value = int.from_bytes(item, "big")
    if value >= bound:
        raise ChainError(f"integer too large (must be < 2^{bound.bit_length() - 1})", field=field)
    return value


def _bytes(item: Item, field: str) -> bytes:
    if not isinstance(item, bytes):
        raise ChainError("a byte string was expected, got a list", field=field)
    return item


def _to(item: Item) -> bytes | None:
    raw = _bytes(item, "to")
    if raw == b"":
        return None
    if len(raw) != 20:
        raise ChainError("a destination is 20 bytes (or empty for a contract creation)", field="to")
    return raw


def _access_list(item: Item) -> tuple[tuple[bytes, tuple[bytes, ...]], ...]:
    if not isinstance(item, list):
        raise ChainError("the access list is a list", field="access_list")
    out = []
    for i, entry in enumerate(item):
        where = f"access_list[{i}]"
        if not isinstance(entry, list) or len(entry) != 2:
            raise ChainError("each entry is [address, [storage keys]]", field=where)
        address, keys = entry
        if not isinstance(address, bytes) or len(address) != 20:
            raise ChainError("a 20-byte address", field=f"{where}.address")
        if not isinstance(keys, list) or not all(
            isinstance(k, bytes) and len(k) == 32 for k in keys
        ):
            raise ChainError("storage keys are 32 bytes each", field=f"{where}.storage_keys")
        out.append((address, tuple(k for k in keys if isinstance(k, bytes))))
    return tuple(out)


def _rlp_list(body: bytes) -> list[Item]:
    """Strict decoding: pyrlp refuses trailing bytes and non-minimal length prefixes (tested);
    integers with leading zeros are refused field by field."""
    try:
        items = rlp.decode(body, strict=True)
    except (RLPException, RecursionError) as exc:
        raise ChainError(f"not canonical RLP: {exc}", field="payload") from None
    if not isinstance(items, list):
        raise ChainError("a transaction is an RLP list", field="payload")
    return items


def decode_unsigned(payload: bytes) -> UnsignedTransaction:
    """Decode the unsigned transaction bytes; ChainError naming the field on anything else."""
    if not isinstance(payload, bytes) or not payload:
        raise ChainError("empty transaction", field="payload")
    if len(payload) > MAX_TRANSACTION_BYTES:
        raise ChainError(f"larger than {MAX_TRANSACTION_BYTES} bytes", field="payload")
    first = payload[0]
    if first >= 0xC0:
        return _legacy(_rlp_list(payload), payload)
    if first in (1, 2):
        return _typed(first, _rlp_list(payload[1:]), payload)
    if first <= 0x7F:
        raise ChainError(f"unsupported transaction type {first}", field="type")
    raise ChainError("neither a typed transaction nor an RLP list", field="payload")


def _legacy(items: list[Item], payload: bytes) -> UnsignedTransaction:
    if len(items) == 6:
        raise ChainError(
            "legacy transaction without EIP-155 chain id (replayable on every chain)",
            field="chain_id",
        )
    if len(items) != 9:
        raise ChainError(
            f"a legacy EIP-155 transaction has 9 fields, not {len(items)}", field="payload"
        )
    if items[7] != b"" or items[8] != b"":
        raise ChainError(
            "a signed transaction; the EIP-155 signing form ends in 0, 0", field="signature"
        )
    chain_id = _int(items[6], "chain_id", _U64)
    if chain_id == 0:
        raise ChainError("chain id 0", field="chain_id")
    return UnsignedTransaction(
        type=0,
        chain_id=chain_id,
        nonce=_int(items[0], "nonce", _U64 - 1),
        gas_price=_int(items[1], "gas_price"),
        gas=_int(items[2], "gas", _U64),
        to=_to(items[3]),
        value=_int(items[4], "value"),
        data=_bytes(items[5], "data"),
        fields=tuple(items[:6]),
        payload=payload,
    )


def _typed(tx_type: int, items: list[Item], payload: bytes) -> UnsignedTransaction:
    want = 9 if tx_type == 2 else 8
    if len(items) != want:
        raise ChainError(
            f"an unsigned type-{tx_type} transaction has {want} fields, not {len(items)}"
            + (" (signed?)" if len(items) == want + 3 else ""),
            field="payload",
        )
    chain_id = _int(items[0], "chain_id", _U64)
    nonce = _int(items[1], "nonce", _U64 - 1)
    if tx_type == 2:
        priority = _int(items[2], "max_priority_fee_per_gas")
        max_fee = _int(items[3], "max_fee_per_gas")
        if priority > max_fee:
            raise ChainError("exceeds max_fee_per_gas", field="max_priority_fee_per_gas")
        rest = items[4:]
        fees = {"max_priority_fee_per_gas": priority, "max_fee_per_gas": max_fee}
    else:
        fees = {"gas_price": _int(items[2], "gas_price")}
        rest = items[3:]
    return UnsignedTransaction(
        type=tx_type,
        chain_id=chain_id,
        nonce=nonce,
        gas=_int(rest[0], "gas", _U64),
        to=_to(rest[1]),
        value=_int(rest[2], "value"),
        data=_bytes(rest[3], "data"),
        access_list=_access_list(rest[4]),
        fields=tuple(items),
        payload=payload,
        **fees,
    )


def _uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def encode_signed(tx: UnsignedTransaction, recovery_id: int, r: int, s: int) -> bytes:
    """The broadcastable transaction: typed with y_parity, legacy with v = 2*chainId + 35 + id."""
    if tx.type == 0:
        v = tx.chain_id * 2 + 35 + recovery_id
        return bytes(rlp.encode([*tx.fields, _uint(v), _uint(r), _uint(s)]))
    return bytes([tx.type]) + bytes(
        rlp.encode([*tx.fields, _uint(recovery_id), _uint(r), _uint(s)])
    )
