"""Proof of control for proof of reserves: the request a node is asked to sign, and the text.

A wallet proves it controls an address by signing, in its chain's standard message format
(BIP322 "simple" for Bitcoin, EIP-191 personal_sign for Ethereum, a Solana off-chain message),
one fixed text that names the chain, network, address and the auditor's challenge. The node
never signs a hash it is handed: the payload is this JSON envelope, and the node builds the text
and the chain's digest itself from the challenge and its own derivation of the address:

    {"kind": "proof_of_reserves", "challenge": "C", "index": 0}      (+ "change": true, bitcoin)

The derived intent is of kind `proof_of_control` (one policy item of action `proof_of_control`,
destination = the address, amount 0): a policy rule must name that action to allow it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tholos.chains.base import ChainError

KIND = "proof_of_reserves"
INTENT_KIND = "proof_of_control"
MAX_CHALLENGE = 256
HEADER = "tholos proof of reserves"


@dataclass(frozen=True)
class ProofRequest:
    challenge: str
    index: int
    change: bool = False


def check_challenge(value: object) -> str:
    """A challenge is 1..256 printable ASCII characters (no line breaks: the text stays one
    unambiguous line per field)."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CHALLENGE:
        raise ChainError(f"a string of 1 to {MAX_CHALLENGE} characters", field="challenge")
    if not all(" " <= c <= "~" for c in value):
        raise ChainError("printable ASCII only (0x20-0x7e)", field="challenge")
    return value


def message_text(chain: str, network: str, address: str, challenge: str) -> str:
    """The text every chain signs in its own format; an auditor rebuilds it from the proof."""
    return (
        f"{HEADER}\nchain: {chain}\nnetwork: {network}\naddress: {address}\n"
        f"challenge: {check_challenge(challenge)}"
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ChainError(f"duplicate key {key!r}", field="payload")
        out[key] = value
    return out


def is_envelope(payload: bytes) -> bool:
    """Whether a payload is a JSON envelope (no PSBT, wire transaction or RLP starts with "{")."""
    return payload[:1] == b"{"


def decode(payload: bytes, *, allow_change: bool = False) -> ProofRequest:
    """The proof-of-control request in `payload`; ChainError naming the field otherwise."""
    if len(payload) > 4096:
        raise ChainError("a proof-of-control request is at most 4096 bytes", field="payload")
    try:
        obj = json.loads(payload.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ChainError(f"not a JSON object: {exc.__class__.__name__}", field="payload") from None
    if not isinstance(obj, dict) or obj.get("kind") != KIND:
        raise ChainError(f"a JSON payload here is a {KIND} request", field="kind")
    allowed = {"kind", "challenge", "index"} | ({"change"} if allow_change else set())
    if not {"kind", "challenge", "index"} <= set(obj) or not set(obj) <= allowed:
        raise ChainError(f"a {KIND} request has the keys {sorted(allowed)}", field="payload")
    index = obj["index"]
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**31:
        raise ChainError("an address index 0 <= i < 2**31", field="index")
    change = obj.get("change", False)
    if not isinstance(change, bool):
        raise ChainError("true or false", field="change")
    return ProofRequest(check_challenge(obj["challenge"]), index, change)


def envelope(challenge: str, index: int = 0, *, change: bool = False) -> bytes:
    """The payload asking a wallet to prove control of its address `index` (receive, or change)."""
    obj: dict[str, Any] = {"kind": KIND, "challenge": check_challenge(challenge), "index": index}
    if change:
        obj["change"] = True
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def details(
    fmt: str, address: str, path: str, index: int, challenge: str, text: str
) -> dict[str, str | int]:
    """What the derived intent shows of a proof of control (the approvers read it)."""
    return {
        "purpose": KIND,
        "format": fmt,
        "address": address,
        "path": path,
        "index": index,
        "challenge": challenge,
        "message_text": text,
    }
