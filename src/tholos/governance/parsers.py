"""Payload parsers: a chain's parser derives the intent from the bytes that will be signed.

The node picks the parser by the declared chain (never by a name the gateway chooses), parses the
payload itself and refuses the request if any derived field differs from the declared intent. Chain
parsers (Bitcoin PSBT, Ethereum RLP, ...) implement `PayloadParser`; `RawParser` is the trivial one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tholos.governance._canonical import canonical_json, parse_canonical_json
from tholos.governance.errors import PayloadError

BINDABLE_FIELDS = frozenset({"chain", "asset", "destination", "amount", "memo"})
"""Intent fields a parser may derive; `REQUIRED_FIELDS` must always be derived."""
REQUIRED_FIELDS = frozenset({"chain", "asset", "destination", "amount"})


@dataclass(frozen=True)
class ParsedPayload:
    """What a parser found in a payload: intent fields, and the message the signers sign."""

    fields: Mapping[str, str | int]
    message: bytes


@runtime_checkable
class PayloadParser(Protocol):
    """Implemented once per chain. `parse` raises PayloadError on anything it does not understand."""

    def parse(self, payload: bytes) -> ParsedPayload: ...


class RawParser:
    """Payload = canonical JSON {"kind":"raw_payload","format":1,chain,asset,destination,amount,
    memo,"data":hex}. Binds the intent to the payload by encoding; `data` is what gets signed.
    """

    def parse(self, payload: bytes) -> ParsedPayload:
        try:
            obj: Any = parse_canonical_json(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PayloadError(f"raw payload is not canonical JSON: {exc}") from exc
        expected = BINDABLE_FIELDS | {"kind", "format", "data"}
        if not isinstance(obj, dict) or set(obj) != expected:
            raise PayloadError(f"raw payload must have exactly the fields {sorted(expected)}")
        if obj["kind"] != "raw_payload" or obj["format"] != 1:
            raise PayloadError("raw payload: wrong kind or format")
        amount = obj["amount"]
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise PayloadError("raw payload: amount must be a non-negative integer")
        for name in ("chain", "asset", "destination", "memo", "data"):
            if not isinstance(obj[name], str):
                raise PayloadError(f"raw payload: {name} must be a string")
        try:
            data = bytes.fromhex(obj["data"])
        except ValueError as exc:
            raise PayloadError("raw payload: data must be hex") from exc
        fields = {name: obj[name] for name in BINDABLE_FIELDS}
        return ParsedPayload(fields=fields, message=data)


def raw_payload(
    chain: str, asset: str, destination: str, amount: int, memo: str = "", data: bytes = b""
) -> bytes:
    """Encode a raw payload (the client side of RawParser)."""
    return canonical_json(
        {
            "kind": "raw_payload",
            "format": 1,
            "chain": chain,
            "asset": asset,
            "destination": destination,
            "amount": amount,
            "memo": memo,
            "data": data.hex(),
        }
    )


class ParserRegistry:
    """Parsers by chain name, configured by the node at start."""

    def __init__(self, parsers: Mapping[str, PayloadParser] | None = None) -> None:
        self._parsers: dict[str, PayloadParser] = dict(parsers or {})

    def register(self, chain: str, parser: PayloadParser) -> None:
        if chain in self._parsers:
            raise ValueError(f"a parser for {chain} is registered already")
        self._parsers[chain] = parser

    def for_chain(self, chain: str) -> PayloadParser | None:
        return self._parsers.get(chain)

    def chains(self) -> frozenset[str]:
        return frozenset(self._parsers)
