"""Payload parsers: the raw parser's binding, its refusals, and the registry."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.governance import (
    ParsedPayload,
    ParserRegistry,
    PayloadError,
    PayloadParser,
    RawParser,
    raw_payload,
)


def test_raw_roundtrip() -> None:
    payload = raw_payload("btc", "BTC", "addr-a", 12, "m", b"\xff")
    parsed = RawParser().parse(payload)
    assert parsed.fields == {
        "chain": "btc",
        "asset": "BTC",
        "destination": "addr-a",
        "amount": 12,
        "memo": "m",
    }
    assert parsed.message == b"\xff"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b'{"amount": 1}',  # not canonical
        b'{"amount":1}',  # missing fields
        raw_payload("btc", "BTC", "a", 1).replace(b'"amount":1', b'"amount":1.5'),
        raw_payload("btc", "BTC", "a", 1).replace(b'"amount":1', b'"amount":-1'),
        raw_payload("btc", "BTC", "a", 1).replace(b'"amount":1', b'"amount":true'),
        raw_payload("btc", "BTC", "a", 1).replace(b'"data":""', b'"data":"zz"'),
        raw_payload("btc", "BTC", "a", 1).replace(b'"kind":"raw_payload"', b'"kind":"other"'),
        raw_payload("btc", "BTC", "a", 1).replace(b"}", b',"x":1}'),
        b"\xff\xfe",
    ],
)
def test_raw_refuses(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        RawParser().parse(payload)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=64))
def test_raw_never_crashes(payload: bytes) -> None:
    with contextlib.suppress(PayloadError):
        RawParser().parse(payload)


def test_registry() -> None:
    class Fixed:
        def parse(self, payload: bytes) -> ParsedPayload:
            return ParsedPayload({"chain": "x"}, payload)

    assert isinstance(Fixed(), PayloadParser)
    registry = ParserRegistry({"btc": RawParser()})
    registry.register("x", Fixed())
    assert registry.chains() == {"btc", "x"}
    assert registry.for_chain("nope") is None
    with pytest.raises(ValueError):
        registry.register("btc", RawParser())
