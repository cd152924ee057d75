"""Hostile payloads for the ethereum chain package: each refused with the field named, or shown for
what it really is; random input never raises anything but ChainError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
import rlp
from eth_account.typed_transactions import TypedTransaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chains.ethereum_support import threshold_wallet
from tests.chains.test_ethereum import ALICE, MALLORY, TOKEN, _mail, _permit, _word
from tholos.chains.base import ChainError, WalletRef
from tholos.chains.ethereum import (
    Ethereum,
    build_erc20_transfer,
    build_transaction,
    transaction_payload,
    typed_data_payload,
)

ETH = Ethereum()
GWEI = 10**9
FEES = {"max_fee_per_gas": 30 * GWEI, "max_priority_fee_per_gas": 2 * GWEI}
_TW = threshold_wallet(network="1")
WALLET: WalletRef = _TW.wallet


def refused(payload: bytes, field: str, wallet: WalletRef = WALLET) -> ChainError:
    with pytest.raises(ChainError) as info:
        ETH.parse(wallet, payload)
    assert info.value.field == field, str(info.value)
    return info.value


def _type2(fields: list[Any]) -> bytes:
    return b"\x02" + rlp.encode(fields)


def _fields(**over: Any) -> list[Any]:
    """Type-2 fields: chainId, nonce, priority, maxFee, gas, to, value, data, accessList."""
    base: dict[str, Any] = {
        "chain_id": 1,
        "nonce": 1,
        "priority": GWEI,
        "max_fee": 2 * GWEI,
        "gas": 21_000,
        "to": bytes.fromhex(ALICE[2:]),
        "value": 1,
        "data": b"",
        "access_list": [],
    }
    base.update(over)
    return list(base.values())


def test_other_chain_id_refused() -> None:
    for tx_type, fees in ((2, FEES), (1, {"gas_price": GWEI}), (0, {"gas_price": GWEI})):
        tx = build_transaction(chain_id=137, nonce=0, to=ALICE, value=1, tx_type=tx_type, **fees)  # type: ignore[arg-type]
        refused(tx, "chain_id")
    sepolia = threshold_wallet(network="11155111").wallet
    refused(build_transaction(chain_id=1, nonce=0, to=ALICE, value=1, **FEES), "chain_id", sepolia)
    refused(_type2(_fields(chain_id=0)), "chain_id")


def test_recipient_swapped_in_calldata_shows_another_to() -> None:
    approved = ETH.parse(
        WALLET, build_erc20_transfer(chain_id=1, nonce=2, token=TOKEN, to=ALICE, amount=5, **FEES)
    ).intent.as_dict()
    data = bytes.fromhex("a9059cbb" + _word(MALLORY) + _word(5))
    swapped = ETH.parse(
        WALLET, build_transaction(chain_id=1, nonce=2, to=TOKEN, data=data, gas=100_000, **FEES)
    ).intent.as_dict()
    assert swapped["transfers"][0]["to"] == MALLORY != approved["transfers"][0]["to"]
    swapped["transfers"][0]["to"] = ALICE
    assert swapped == approved  # the recipient is the only difference


def test_approve_instead_of_transfer_shows_another_action() -> None:
    approved = ETH.parse(
        WALLET, build_erc20_transfer(chain_id=1, nonce=2, token=TOKEN, to=ALICE, amount=5, **FEES)
    ).intent.as_dict()
    data = bytes.fromhex("095ea7b3" + _word(ALICE) + _word(5))
    approve = ETH.parse(
        WALLET, build_transaction(chain_id=1, nonce=2, to=TOKEN, data=data, gas=100_000, **FEES)
    ).intent.as_dict()
    assert approve["transfers"][0]["action"] == "approve"
    approve["transfers"][0]["action"] = "transfer"
    assert approve == approved


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("a9059cbb" + _word(ALICE) + _word(5) + "00", "data"),  # one trailing byte
        ("a9059cbb" + _word(ALICE) + _word(5) + _word(MALLORY), "data"),  # a trailing word
        ("a9059cbb" + _word(ALICE) + _word(5)[:-2], "data"),  # short
        ("a9059cbb" + "01" + _word(ALICE)[2:] + _word(5), "data.to"),  # dirty address bits
        ("095ea7b3" + "ff" * 12 + ALICE[2:] + _word(5), "data.spender"),
        ("23b872dd" + "00" * 11 + "01" + MALLORY[2:] + _word(ALICE) + _word(5), "data.from"),
        ("23b872dd" + _word(MALLORY) + "80" + "00" * 11 + ALICE[2:] + _word(5), "data.to"),
    ],
)
def test_malformed_erc20_calldata_refused(data: str, field: str) -> None:
    tx = build_transaction(
        chain_id=1, nonce=0, to=TOKEN, data=bytes.fromhex(data), gas=9**6, **FEES
    )
    refused(tx, field)


def test_transaction_encoding_refusals() -> None:
    good = _type2(_fields())
    ETH.parse(WALLET, good)
    refused(good + b"\x00", "payload")  # trailing bytes
    refused(b"\x02" + bytes([0xF8, len(good) - 2]) + good[2:], "payload")  # long-form list prefix
    refused(_type2(_fields(nonce=b"\x00\x01")), "nonce")  # leading zero
    refused(_type2(_fields(value=b"\x00")), "value")
    refused(_type2(_fields(gas=2**64)), "gas")
    refused(_type2(_fields(value=b"\x01" * 33)), "value")
    refused(_type2(_fields(nonce=2**64 - 1)), "nonce")  # EIP-2681
    refused(_type2(_fields(priority=3 * GWEI)), "max_priority_fee_per_gas")
    refused(_type2(_fields(to=b"\x01" * 19)), "to")
    refused(_type2(_fields(to=[b""])), "to")
    refused(_type2(_fields(data=[b""])), "data")
    refused(_type2(_fields(access_list=b"\x01")), "access_list")
    refused(_type2(_fields(access_list=[[b"\x01" * 19, []]])), "access_list[0].address")
    refused(
        _type2(_fields(access_list=[[b"\x01" * 20, [b"\x00" * 31]]])), "access_list[0].storage_keys"
    )
    refused(_type2([*_fields(), 1, 2, 3]), "payload")  # a signed transaction
    refused(_type2(_fields()[:-1]), "payload")
    refused(b"\x03" + good[1:], "type")  # blob transaction
    refused(b"\x04" + good[1:], "type")  # EIP-7702 set-code authorisation
    refused(b"\x00" + good[1:], "type")
    refused(b"\x80", "payload")
    refused(b"", "payload")
    refused(b"\x02", "payload")
    refused(b"\x02\x05", "payload")  # a string, not a list
    legacy_pre155 = rlp.encode([1, GWEI, 21_000, bytes.fromhex(ALICE[2:]), 1, b""])
    refused(legacy_pre155, "chain_id")
    legacy_signed = rlp.encode([1, GWEI, 21_000, bytes.fromhex(ALICE[2:]), 1, b"", 37, 5, 6])
    refused(legacy_signed, "signature")
    refused(b"\x02" + b"\xc0" * (128 * 1024), "payload")  # oversized


def test_envelope_refusals() -> None:
    tx = build_transaction(chain_id=1, nonce=0, to=ALICE, value=1, **FEES)
    other = ETH.address(WALLET, 1).address
    refused(transaction_payload(tx, 0, sender=other), "from")
    ok = ETH.parse(WALLET, transaction_payload(tx, 1, sender=other))
    assert ok.intent.details["from"] == other and ok.targets[0].path == "m/0/1"
    hexed = "0x" + tx.hex()
    for obj, field in [
        (
            '{"kind":"transaction","index":0,"transaction":"TX","index":1}'.replace("TX", hexed),
            "payload",
        ),
        (
            '{"kind":"transaction","index":0,"transaction":"TX","memo":"x"}'.replace("TX", hexed),
            "payload",
        ),
        ('{"kind":"transaction","index":"0","transaction":"TX"}'.replace("TX", hexed), "index"),
        ('{"kind":"transaction","index":1.0,"transaction":"TX"}'.replace("TX", hexed), "index"),
        ('{"kind":"transaction","index":-1,"transaction":"TX"}'.replace("TX", hexed), "index"),
        ('{"kind":"transaction","index":NaN,"transaction":"TX"}'.replace("TX", hexed), "payload"),
        (
            '{"kind":"transaction","index":0,"transaction":"TX"}'.replace("TX", tx.hex()),
            "transaction",
        ),
        ('{"kind":"transaction","index":0,"transaction":"0x7b7d"}', "transaction"),
        (
            '{"kind":"transaction","index":0,"transaction":"TX","from":"0x12"}'.replace(
                "TX", hexed
            ),
            "from",
        ),
        ('{"kind":"psbt","index":0}', "kind"),
        ('{"kind":"eip191","index":0}', "payload"),
        ("[1]", "type"),
        ("{" * 100_000, "payload"),
        ("{\xff}", "payload"),
    ]:
        refused(obj.encode("utf-8", "surrogateescape") if "\xff" not in obj else b"{\xff}", field)


def test_typed_data_refusals() -> None:
    me = ETH.address(WALLET, 0).address
    refused(typed_data_payload(_mail(5), 0), "domain.chainId")
    refused(typed_data_payload(_permit(137, me, MALLORY, 1), 0), "domain.chainId")
    for mutate, field in [
        (lambda d: d["domain"].pop("chainId"), "domain.chainId"),
        (lambda d: d["domain"].update(chainId="0x01"), None),  # same chain, hex: accepted
        (lambda d: d["domain"].update(salt="0x" + "00" * 32), "domain"),  # undeclared field
        (lambda d: d["types"].pop("EIP712Domain"), "types.EIP712Domain"),
        (lambda d: d["types"]["EIP712Domain"].reverse(), "types.EIP712Domain"),
        (lambda d: d.update(primaryType="EIP712Domain"), "primaryType"),
        (lambda d: d.update(primaryType="Nobody"), "primaryType"),
        (lambda d: d.update(extra=1), "typed_data"),
        (lambda d: d["message"].update(bcc="x"), "message"),
        (lambda d: d["message"].pop("contents"), "message"),
        (lambda d: d["message"].update(flags=[True]), "message.flags"),
        (lambda d: d["message"].update(flags=[1, 0]), "message.flags[0]"),
        (lambda d: d["message"].update(delta=2**63), "message.delta"),
        (lambda d: d["message"].update(delta=True), "message.delta"),
        (lambda d: d["message"].update(id="0x" + "ab" * 31), "message.id"),
        (lambda d: d["message"].update(tag="deadbeef"), "message.tag"),
        (lambda d: d["message"].update(contents=5), "message.contents"),
        (lambda d: d["message"]["from"].update(wallets=[ALICE.lower()[:-1] + "F"]), None),
        (
            lambda d: d["message"]["from"].update(
                wallets=["0x" + ALICE[2:].swapcase()[:2] + ALICE[4:].lower()]
            ),
            None,
        ),
        (
            lambda d: d["message"]["from"].update(
                wallets=["0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8Dd826"]
            ),
            "message.from.wallets[0]",
        ),
        (lambda d: d["types"]["Mail"].append({"name": "x", "type": "Unknown"}), "types.Mail.x"),
        (lambda d: d["types"]["Mail"].append({"name": "to", "type": "string"}), "types.Mail"),
        (lambda d: d["types"]["Mail"].append({"name": "x", "type": "uint7"}), "types.Mail.x"),
        (lambda d: d["types"]["Mail"].append({"name": "x", "type": "uint256[01]"}), "types"),
        (lambda d: d["types"].update(uint256=[]), "types"),
    ]:
        td = _mail(1)
        mutate(td)
        if field is None:
            ETH.parse(WALLET, typed_data_payload(td, 0))
        else:
            refused(typed_data_payload(td, 0), field)
    permit = _permit(1, me, MALLORY, 1)
    permit["domain"].pop("verifyingContract")
    permit["types"]["EIP712Domain"].pop()
    refused(typed_data_payload(permit, 0), "domain.verifyingContract")
    deep: dict[str, Any] = _mail(1)
    deep["types"]["Node"] = [{"name": "next", "type": "Node[]"}]
    deep["types"]["Mail"].append({"name": "tree", "type": "Node"})
    node: dict[str, Any] = {"next": []}
    for _ in range(40):
        node = {"next": [node]}
    deep["message"]["tree"] = node
    refused(typed_data_payload(deep, 0), "message.tree" + ".next[0]" * 8 + ".next")


# -- properties --------------------------------------------------------------------------------------
def _only_chain_errors(payload: bytes) -> None:
    with contextlib.suppress(ChainError):
        ETH.parse(WALLET, payload)
    with contextlib.suppress(ChainError):
        ETH.finalize(WALLET, payload, [payload[:65]])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"", b"\x01", b"\x02", b"\xf8", b"{", b"\xc9"]))
def test_random_bytes_raise_only_chain_errors(data: bytes, prefix: bytes) -> None:
    _only_chain_errors(prefix + data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["transaction", "eip712", "eip191", "x"]),
    body=_json,
    index=st.one_of(st.integers(-2, 2**32), _json),
)
def test_random_envelopes_raise_only_chain_errors(kind: str, body: Any, index: Any) -> None:
    key = {"transaction": "transaction", "eip712": "typed_data", "eip191": "message_hex"}.get(
        kind, "b"
    )
    _only_chain_errors(json.dumps({"kind": kind, "index": index, key: body}).encode())


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_typed_data_mutations_raise_only_chain_errors(data: st.DataObject) -> None:
    td = _mail(1)
    path: list[Any] = []
    node: Any = td
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(
            st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
        )
        path.append(key)
        node = node[key]
    target: Any = td
    for key in path[:-1]:
        target = target[key]
    if path:
        target[path[-1]] = data.draw(_json)
    _only_chain_errors(typed_data_payload(td, 0))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_byte_flips_of_a_valid_transaction_raise_only_chain_errors(data: st.DataObject) -> None:
    tx = bytearray(
        build_erc20_transfer(chain_id=1, nonce=1, token=TOKEN, to=ALICE, amount=7, **FEES)
    )
    for _ in range(data.draw(st.integers(1, 3))):
        tx[data.draw(st.integers(0, len(tx) - 1))] = data.draw(st.integers(0, 255))
    _only_chain_errors(bytes(tx))


@settings(max_examples=100, deadline=None)
@given(
    nonce=st.integers(0, 2**64 - 2),
    gas=st.integers(0, 2**64 - 1),
    max_fee=st.integers(0, 2**256 - 1),
    value=st.integers(0, 2**256 - 1),
    to=st.binary(min_size=20, max_size=20),
    data=st.binary(max_size=80),
    chain_id=st.integers(1, 2**64 - 1),
)
def test_round_trip_and_digest_match_eth_account(
    nonce: int, gas: int, max_fee: int, value: int, to: bytes, data: bytes, chain_id: int
) -> None:
    from eth_utils import to_checksum_address

    wallet = threshold_wallet_for(chain_id)
    dest = to_checksum_address(to)
    raw = build_transaction(
        chain_id=chain_id,
        nonce=nonce,
        to=dest,
        value=value,
        data=data,
        gas=gas,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=max_fee // 2,
    )
    parsed = ETH.parse(wallet, raw)
    assert parsed.intent.fee == gas * max_fee and parsed.intent.details["nonce"] == nonce
    reference = TypedTransaction.from_dict(
        {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": max_fee // 2,
            "gas": gas,
            "to": dest,
            "value": value,
            "data": data,
            "accessList": [],
        }
    )
    assert parsed.targets[0].message == reference.hash()


def threshold_wallet_for(chain_id: int) -> WalletRef:
    from dataclasses import replace

    return replace(WALLET, network=str(chain_id))
