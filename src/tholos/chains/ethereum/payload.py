"""What a node is asked to sign for an ethereum wallet, and from which address.

Two forms (the first byte tells them apart; transaction types are < 0x7f or >= 0xc0, "{" is 0x7b):
- the bare unsigned transaction bytes (EIP-2718 type byte || RLP, or EIP-155 legacy RLP): signed
  by the wallet's first address, index 0 (`m/0/0`);
- a JSON object (UTF-8, no duplicate keys, no other keys) naming the address index that signs:
    {"kind": "transaction", "index": 3, "transaction": "0x02f8..."}
    {"kind": "eip712", "index": 0, "typed_data": {"types": ..., "primaryType": ..., "domain": ..., "message": ...}}
    {"kind": "eip191", "index": 0, "message_hex": "0x..."}   (personal_sign, version 0x45)
    {"kind": "proof_of_reserves", "index": 0, "challenge": "..."}   (`chains/proof_of_control.py`:
        the node writes the text itself and signs it with EIP-191 personal_sign)
  with an optional "from": the EIP-55 address the requester expects; the node refuses when its own
  derivation of `m/0/index` gives another address. The index is the only thing the node takes on
  trust from the request, and the address it implies is shown in the intent (`details.from`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tholos.chains.base import ChainError
from tholos.chains.ethereum.wallet import check_index, parse_address
from tholos.chains.proof_of_control import check_challenge

MAX_ENVELOPE_BYTES = 512 * 1024
MAX_MESSAGE_BYTES = 64 * 1024
_BODY = {
    "transaction": "transaction",
    "eip712": "typed_data",
    "eip191": "message_hex",
    "proof_of_reserves": "challenge",
}


@dataclass(frozen=True)
class Request:
    kind: str  # transaction | eip712 | eip191 | proof_of_reserves
    index: int
    body: Any  # transaction bytes, typed-data object, message bytes
    sender: bytes | None = None  # the address the requester expects, if it said


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ChainError(f"duplicate key {key!r}", field="payload")
        out[key] = value
    return out


def _no_constants(name: str) -> None:
    raise ChainError(f"{name} is not JSON", field="payload")


def _hex(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ChainError("a 0x-hex string", field=field)
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ChainError("a 0x-hex string", field=field) from None


def decode_payload(payload: bytes) -> Request:
    if not isinstance(payload, bytes) or not payload:
        raise ChainError("empty payload", field="payload")
    if payload[:1] != b"{":
        return Request(kind="transaction", index=0, body=payload)
    if len(payload) > MAX_ENVELOPE_BYTES:
        raise ChainError(f"larger than {MAX_ENVELOPE_BYTES} bytes", field="payload")
    try:
        obj = json.loads(
            payload.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ChainError(f"not a JSON object: {exc.__class__.__name__}", field="payload") from None
    if not isinstance(obj, dict):
        raise ChainError("a JSON object", field="payload")
    kind = obj.get("kind")
    if kind not in _BODY:
        raise ChainError("kind is transaction, eip712, eip191 or proof_of_reserves", field="kind")
    body_key = _BODY[kind]
    allowed = {"kind", "index", body_key, "from"}
    if not {"kind", "index", body_key} <= set(obj) or not set(obj) <= allowed:
        raise ChainError(
            f"a {kind} request has keys {sorted(allowed)} ('from' optional)", field="payload"
        )
    index = check_index(obj["index"])
    sender = parse_address(obj["from"], "from") if "from" in obj else None
    body: Any = obj[body_key]
    if kind == "transaction":
        body = _hex(body, "transaction")
        if body[:1] == b"{":
            raise ChainError("a transaction, not another envelope", field="transaction")
    elif kind == "eip191":
        body = _hex(body, "message_hex")
        if len(body) > MAX_MESSAGE_BYTES:
            raise ChainError(f"longer than {MAX_MESSAGE_BYTES} bytes", field="message_hex")
    elif kind == "proof_of_reserves":
        body = check_challenge(body)
    return Request(kind=kind, index=index, body=body, sender=sender)


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def transaction_payload(transaction: bytes, index: int, sender: str | None = None) -> bytes:
    obj: dict[str, Any] = {
        "kind": "transaction",
        "index": index,
        "transaction": "0x" + transaction.hex(),
    }
    return _canonical({**obj, "from": sender} if sender else obj)


def typed_data_payload(typed_data: dict[str, Any], index: int, sender: str | None = None) -> bytes:
    obj: dict[str, Any] = {"kind": "eip712", "index": index, "typed_data": typed_data}
    return _canonical({**obj, "from": sender} if sender else obj)


def message_payload(message: bytes, index: int, sender: str | None = None) -> bytes:
    obj: dict[str, Any] = {"kind": "eip191", "index": index, "message_hex": "0x" + message.hex()}
    return _canonical({**obj, "from": sender} if sender else obj)
