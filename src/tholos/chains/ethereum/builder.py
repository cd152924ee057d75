"""Unsigned transactions for tests and the CLI: native and ERC-20 transfers (EIP-1559 by default,
EIP-2930 or EIP-155 legacy on request). The node never trusts these; it parses what it is sent."""

from __future__ import annotations

import rlp

from tholos.chains.base import ChainError
from tholos.chains.ethereum.calldata import encode_erc20
from tholos.chains.ethereum.wallet import normalise_network, parse_address


def _uint(value: int, field: str) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
        raise ChainError("a non-negative integer below 2^256", field=field)
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def build_transaction(
    *,
    chain_id: int | str,
    nonce: int,
    to: str | None,
    value: int = 0,
    data: bytes = b"",
    gas: int = 21_000,
    max_fee_per_gas: int = 0,
    max_priority_fee_per_gas: int = 0,
    gas_price: int = 0,
    tx_type: int = 2,
) -> bytes:
    """The unsigned transaction bytes (what `Ethereum.parse` takes); `to` None deploys `data`."""
    cid = _uint(int(normalise_network(chain_id)), "chain_id")
    dest = b"" if to is None else parse_address(to, "to")
    common = [_uint(gas, "gas"), dest, _uint(value, "value"), data]
    if tx_type == 2:
        fields = [
            cid,
            _uint(nonce, "nonce"),
            _uint(max_priority_fee_per_gas, "max_priority_fee_per_gas"),
            _uint(max_fee_per_gas, "max_fee_per_gas"),
            *common,
            [],
        ]
        return b"\x02" + bytes(rlp.encode(fields))
    if tx_type == 1:
        fields = [cid, _uint(nonce, "nonce"), _uint(gas_price, "gas_price"), *common, []]
        return b"\x01" + bytes(rlp.encode(fields))
    if tx_type == 0:
        fields = [_uint(nonce, "nonce"), _uint(gas_price, "gas_price"), *common, cid, b"", b""]
        return bytes(rlp.encode(fields))
    raise ChainError("type 0 (legacy EIP-155), 1 or 2", field="type")


def build_erc20_transfer(
    *,
    chain_id: int | str,
    nonce: int,
    token: str,
    to: str,
    amount: int,
    gas: int = 100_000,
    max_fee_per_gas: int = 0,
    max_priority_fee_per_gas: int = 0,
    gas_price: int = 0,
    tx_type: int = 2,
) -> bytes:
    """An ERC-20 `transfer(to, amount)` call on `token`."""
    _uint(amount, "amount")
    data = encode_erc20("transfer", parse_address(to, "to"), amount)
    return build_transaction(
        chain_id=chain_id,
        nonce=nonce,
        to=token,
        data=data,
        gas=gas,
        max_fee_per_gas=max_fee_per_gas,
        max_priority_fee_per_gas=max_priority_fee_per_gas,
        gas_price=gas_price,
        tx_type=tx_type,
    )
