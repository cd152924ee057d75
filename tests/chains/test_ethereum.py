"""Ethereum chain package: addresses, parse, finalize, cross-checked with eth-account, eth-keys and
embit (independent implementations), signed by a threshold ECDSA key computed in-process."""

from __future__ import annotations

import json
from typing import Any

import pytest
from embit import bip32 as embit_bip32
from eth_account import Account
from eth_account._utils.legacy_transactions import (
    encode_transaction,
    serializable_unsigned_transaction_from_dict,
)
from eth_account.messages import _hash_eip191_message, encode_defunct, encode_typed_data
from eth_account.typed_transactions import TypedTransaction
from eth_keys import keys as eth_keys
from eth_utils import keccak, to_checksum_address

from tests.chains.ethereum_flow import eip712_domain, permit_typed_data
from tests.chains.ethereum_support import ThresholdWallet, threshold_wallet
from tholos.chains.base import Chain, ChainError
from tholos.chains.ethereum import (
    Ethereum,
    build_erc20_transfer,
    build_transaction,
    message_payload,
    normalise_network,
    transaction_payload,
    typed_data_payload,
)

ETH = Ethereum()
TOKEN = "0x1f9840a85d5aF5bf1D1762F925BDADdC4201F984"
ALICE = "0x3535353535353535353535353535353535353535"
MALLORY = "0x000000000000000000000000000000000000dEaD"
GWEI = 10**9


@pytest.fixture(scope="module")
def tw() -> ThresholdWallet:
    return threshold_wallet(network="1")


def _fees() -> dict[str, int]:
    return {"max_fee_per_gas": 30 * GWEI, "max_priority_fee_per_gas": 2 * GWEI}


def _eth_account_dict(raw_fields: dict[str, Any]) -> dict[str, Any]:
    return {**raw_fields, "accessList": []}


def _refused(wallet: Any, payload: bytes, field: str) -> ChainError:
    with pytest.raises(ChainError) as info:
        ETH.parse(wallet, payload)
    assert info.value.field == field, str(info.value)
    return info.value


# -- wallet and addresses ------------------------------------------------------------------------
def test_is_a_chain_and_networks_normalise() -> None:
    assert isinstance(ETH, Chain) and ETH.name == "ethereum"
    assert normalise_network("mainnet") == "1"
    assert normalise_network("Sepolia") == "11155111"
    assert normalise_network("holesky") == "17000"
    assert normalise_network("anvil") == normalise_network("devnet") == "31337"
    assert normalise_network(137) == "137" and normalise_network("137") == "137"
    for bad in ("goerli-ish", "", "0", "-1", "1.0", True, 2**64):
        with pytest.raises(ChainError) as info:
            normalise_network(bad)  # type: ignore[arg-type]
        assert info.value.field == "network"


def test_addresses_match_embit_derivation_and_eth_keys(tw: ThresholdWallet) -> None:
    xpub = embit_bip32.HDKey.from_string(tw.root.to_xpub())
    for i in (0, 1, 7, 2**31 - 1):
        info = ETH.address(tw.wallet, i)
        child = xpub.derive([0, i]).key.sec()
        expected = eth_keys.PublicKey.from_compressed_bytes(child).to_checksum_address()
        assert info.address == expected and info.path == f"m/0/{i}" and info.public_key == child
    with pytest.raises(ChainError) as info_change:
        ETH.address(tw.wallet, 0, change=True)
    assert info_change.value.field == "change"
    for bad in (-1, 2**31, True):
        with pytest.raises(ChainError) as info_idx:
            ETH.address(tw.wallet, bad)
        assert info_idx.value.field == "index"


def test_wallet_refused_naming_the_field(tw: ThresholdWallet) -> None:
    from dataclasses import replace

    tx = build_transaction(chain_id=1, nonce=0, to=ALICE, value=1, **_fees())
    for change, field in [
        ({"chain": "bitcoin"}, "chain"),
        ({"scheme": "bip340"}, "scheme"),
        ({"address_type": "p2tr"}, "address_type"),
        ({"network": "mainnet"}, "network"),
        ({"network": "01"}, "network"),
        ({"public_key": b"\x02" * 32}, "public_key"),
        ({"public_key": b"\x05" + b"\x01" * 32}, "public_key"),
        ({"chain_code": None}, "chain_code"),
    ]:
        _refused(replace(tw.wallet, **change), tx, field)


# -- transactions ----------------------------------------------------------------------------------
def test_eip1559_native_transfer_intent_and_digest(tw: ThresholdWallet) -> None:
    tx = build_transaction(chain_id=1, nonce=7, to=ALICE, value=10**18, gas=21_000, **_fees())
    parsed = ETH.parse(tw.wallet, tx)
    intent = parsed.intent
    assert intent.kind == "transaction" and intent.network == "1"
    assert [t.__dict__ for t in intent.transfers] == [
        {"asset": "ETH", "to": ALICE, "amount": 10**18, "action": "transfer", "source": ""}
    ]
    assert intent.fee == 21_000 * 30 * GWEI and intent.fee_asset == "ETH"
    assert intent.details["from"] == ETH.address(tw.wallet, 0).address
    assert intent.details["nonce"] == 7 and intent.details["type"] == 2
    assert intent.details["max_priority_fee_per_gas"] == 2 * GWEI
    assert intent.details["access_list_size"] == 0
    json.dumps(intent.as_dict())
    reference = TypedTransaction.from_dict(
        {
            "type": 2,
            "chainId": 1,
            "nonce": 7,
            "maxFeePerGas": 30 * GWEI,
            "maxPriorityFeePerGas": 2 * GWEI,
            "gas": 21_000,
            "to": ALICE,
            "value": 10**18,
            "data": b"",
            "accessList": [],
        }
    )
    (target,) = parsed.targets
    assert target.message == reference.hash() and target.path == "m/0/0" and not target.taproot


def test_eip2930_and_legacy_digests_match_eth_account(tw: ThresholdWallet) -> None:
    common = {"nonce": 3, "gas": 50_000, "to": ALICE, "value": 5, "data": b"\x12\x34"}
    t1 = build_transaction(chain_id=1, tx_type=1, gas_price=9 * GWEI, **common)  # type: ignore[arg-type]
    p1 = ETH.parse(tw.wallet, t1)
    ref1 = TypedTransaction.from_dict(
        {"type": 1, "chainId": 1, "gasPrice": 9 * GWEI, "accessList": [], **common}
    )
    assert p1.targets[0].message == ref1.hash()
    assert p1.intent.fee == 50_000 * 9 * GWEI and p1.intent.details["gas_price"] == 9 * GWEI
    assert [c.__dict__ for c in p1.intent.calls] == [
        {"contract": ALICE, "selector": "0x1234", "value": 5}
    ]
    assert p1.intent.transfers[0].amount == 5  # value sent with a call is a transfer too
    t0 = build_transaction(chain_id=1, tx_type=0, gas_price=9 * GWEI, **common)  # type: ignore[arg-type]
    ref0 = serializable_unsigned_transaction_from_dict(
        {"chainId": 1, "gasPrice": 9 * GWEI, **common}
    )
    assert ETH.parse(tw.wallet, t0).targets[0].message == ref0.hash()


def test_erc20_calls_decoded(tw: ThresholdWallet) -> None:
    me = ETH.address(tw.wallet, 0).address
    tx = build_erc20_transfer(chain_id=1, nonce=1, token=TOKEN, to=ALICE, amount=123, **_fees())
    intent = ETH.parse(tw.wallet, tx).intent
    assert [t.__dict__ for t in intent.transfers] == [
        {"asset": f"erc20:{TOKEN}", "to": ALICE, "amount": 123, "action": "transfer", "source": ""}
    ]
    assert intent.calls == () and intent.fee == 100_000 * 30 * GWEI
    for action, data, source in [
        ("approve", "095ea7b3" + _word(ALICE) + _word(2**256 - 1), ""),
        ("transfer_from", "23b872dd" + _word(MALLORY) + _word(ALICE) + _word(2**256 - 1), MALLORY),
    ]:
        raw = build_transaction(
            chain_id=1, nonce=1, to=TOKEN, data=bytes.fromhex(data), gas=90_000, **_fees()
        )
        (t,) = ETH.parse(tw.wallet, raw).intent.transfers
        assert (t.action, t.to, t.amount, t.source) == (action, ALICE, 2**256 - 1, source)
        assert t.asset == f"erc20:{TOKEN}"
    assert me not in (ALICE, MALLORY)


def _word(value: str | int) -> str:
    if isinstance(value, str):
        return value[2:].lower().rjust(64, "0")
    return value.to_bytes(32, "big").hex()


def test_contract_creation_shows_the_deployed_address(tw: ThresholdWallet) -> None:
    from eth._utils.address import generate_contract_address

    sender = bytes.fromhex(ETH.address(tw.wallet, 4).address[2:])
    tx = build_transaction(
        chain_id=1, nonce=9, to=None, value=3, data=b"\x60\x00", gas=60_000, **_fees()
    )
    payload = transaction_payload(tx, 4)
    intent = ETH.parse(tw.wallet, payload).intent
    (t,) = intent.transfers
    assert t.action == "contract_creation" and t.amount == 3
    assert t.to == to_checksum_address(generate_contract_address(sender, 9))
    assert intent.details["init_code_hash"] == "0x" + keccak(b"\x60\x00").hex()
    assert intent.details["path"] == "m/0/4"


# -- finalize ------------------------------------------------------------------------------------
@pytest.mark.parametrize("tx_type", [2, 1, 0])
def test_finalize_is_byte_identical_to_eth_account(tw: ThresholdWallet, tx_type: int) -> None:
    fees = _fees() if tx_type == 2 else {"gas_price": 12 * GWEI}
    tx = build_erc20_transfer(
        chain_id=1, nonce=5, token=TOKEN, to=ALICE, amount=10**6, tx_type=tx_type, **fees
    )
    payload = transaction_payload(tx, 2)
    (target,) = ETH.parse(tw.wallet, payload).targets
    sig = tw.sign(target.message, target.path)
    signed = ETH.finalize(tw.wallet, payload, [sig.to_compact() + bytes([sig.recovery_id])])
    data = bytes.fromhex("a9059cbb" + _word(ALICE) + _word(10**6))
    fields: dict[str, Any] = {"nonce": 5, "gas": 100_000, "to": TOKEN, "value": 0, "data": data}
    if tx_type == 0:
        unsigned = serializable_unsigned_transaction_from_dict(
            {"chainId": 1, "gasPrice": 12 * GWEI, **fields}
        )
        expected = encode_transaction(unsigned, vrs=(1 * 2 + 35 + sig.recovery_id, sig.r, sig.s))
    else:
        fee_fields = (
            {"maxFeePerGas": 30 * GWEI, "maxPriorityFeePerGas": 2 * GWEI}
            if tx_type == 2
            else {"gasPrice": 12 * GWEI}
        )
        expected = TypedTransaction.from_dict(
            {
                "type": tx_type,
                "chainId": 1,
                **fee_fields,
                **fields,
                "accessList": [],
                "v": sig.recovery_id,
                "r": sig.r,
                "s": sig.s,
            }
        ).encode()
    assert signed.raw == bytes(expected) and signed.encoding == "hex"
    assert signed.txid == "0x" + keccak(signed.raw).hex()
    assert Account.recover_transaction(signed.raw) == ETH.address(tw.wallet, 2).address
    # r||s alone: the recovery id is found by trying both against the signing address.
    assert ETH.finalize(tw.wallet, payload, [sig.to_compact()]).raw == signed.raw
    assert ETH.finalize(tw.wallet, payload, [sig.to_eth_bytes()]).raw == signed.raw


def test_finalize_refuses_signatures_that_do_not_recover(tw: ThresholdWallet) -> None:
    from tholos.crypto.groups.secp256k1 import N

    tx = build_transaction(chain_id=1, nonce=0, to=ALICE, value=1, **_fees())
    (target,) = ETH.parse(tw.wallet, tx).targets
    sig = tw.sign(target.message, "m/0/1")  # the key of another address of the same wallet
    good = tw.sign(target.message, target.path)
    high_s = good.r.to_bytes(32, "big") + (N - good.s).to_bytes(32, "big")
    flipped = good.to_compact() + bytes([good.recovery_id ^ 1])
    for sigs, why in [
        ([sig.to_compact()], "does not recover"),
        ([flipped], "does not recover"),
        ([high_s], "high-S"),
        ([good.to_compact() + b"\x02"], "recovery id"),
        ([b"\x00" * 64], "out of range"),
        ([good.to_compact()[:63]], "64 bytes"),
        ([good.to_compact(), good.to_compact()], "one signature"),
        ([], "one signature"),
    ]:
        with pytest.raises(ChainError, match=why) as info:
            ETH.finalize(tw.wallet, tx, sigs)
        assert info.value.field.startswith("signatures")


# -- typed data and messages ---------------------------------------------------------------------
def _mail(chain_id: int) -> dict[str, Any]:
    """The example of EIP-712 itself, with an array and a bytes field added."""
    return {
        "types": {
            "EIP712Domain": eip712_domain(),
            "Person": [
                {"name": "name", "type": "string"},
                {"name": "wallets", "type": "address[]"},
            ],
            "Mail": [
                {"name": "from", "type": "Person"},
                {"name": "to", "type": "Person[]"},
                {"name": "contents", "type": "string"},
                {"name": "tag", "type": "bytes"},
                {"name": "flags", "type": "bool[2]"},
                {"name": "delta", "type": "int64"},
                {"name": "id", "type": "bytes32"},
            ],
        },
        "primaryType": "Mail",
        "domain": {
            "name": "Ether Mail",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
        },
        "message": {
            "from": {"name": "Cow", "wallets": ["0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"]},
            "to": [
                {"name": "Bob", "wallets": ["0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB", ALICE]},
                {"name": "Émile", "wallets": []},
            ],
            "contents": "Hello, Bob!",
            "tag": "0xdeadbeef",
            "flags": [True, False],
            "delta": -42,
            "id": "0x" + "ab" * 32,
        },
    }


def _permit(chain_id: int, owner: str, spender: str, value: int) -> dict[str, Any]:
    return permit_typed_data(chain_id, TOKEN, owner, spender, value)


def test_typed_data_digest_matches_eth_account_and_signature_recovers(tw: ThresholdWallet) -> None:
    mail = _mail(1)
    payload = typed_data_payload(mail, 3)
    parsed = ETH.parse(tw.wallet, payload)
    signable = encode_typed_data(full_message=mail)
    assert parsed.targets[0].message == _hash_eip191_message(signable)
    intent = parsed.intent
    assert intent.kind == "typed_data" and intent.transfers == ()
    assert intent.details["primary_type"] == "Mail"
    assert intent.details["domain.chainId"] == 1 and intent.details["domain.name"] == "Ether Mail"
    assert (
        intent.details["domain.verifyingContract"] == "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
    )
    assert json.loads(str(intent.details["message"])) == mail["message"]
    sig = tw.sign(parsed.targets[0].message, "m/0/3")
    signed = ETH.finalize(tw.wallet, payload, [sig.to_compact()])
    assert len(signed.raw) == 65 and signed.raw[64] in (27, 28) and signed.txid == ""
    assert (
        Account.recover_message(signable, signature=signed.raw) == ETH.address(tw.wallet, 3).address
    )


def test_permit_decoded_as_an_allowance(tw: ThresholdWallet) -> None:
    me = ETH.address(tw.wallet, 0).address
    td = _permit(1, me, MALLORY, 10**24)
    parsed = ETH.parse(tw.wallet, typed_data_payload(td, 0))
    assert parsed.targets[0].message == _hash_eip191_message(encode_typed_data(full_message=td))
    (t,) = parsed.intent.transfers
    assert (t.asset, t.to, t.amount, t.action, t.source) == (
        f"erc20:{TOKEN}",
        MALLORY,
        10**24,
        "permit",
        "",
    )
    assert parsed.intent.details["owner"] == me and parsed.intent.details["deadline"] == 2**40
    # A Permit with another layout is not shown as something else: refused.
    odd = _permit(1, me, MALLORY, 1)
    odd["types"]["Permit"] = [*odd["types"]["Permit"][:4], {"name": "expiry", "type": "uint256"}]
    odd["message"]["expiry"] = odd["message"].pop("deadline")
    _refused(tw.wallet, typed_data_payload(odd, 0), "types.Permit")


def test_personal_message(tw: ThresholdWallet) -> None:
    payload = message_payload("I agree ☺".encode(), 1)
    parsed = ETH.parse(tw.wallet, payload)
    assert parsed.targets[0].message == _hash_eip191_message(encode_defunct(text="I agree ☺"))
    assert parsed.intent.kind == "message" and parsed.intent.details["message_text"] == "I agree ☺"
    sig = tw.sign(parsed.targets[0].message, "m/0/1")
    signed = ETH.finalize(tw.wallet, payload, [sig.to_compact() + bytes([sig.recovery_id])])
    recovered = Account.recover_message(encode_defunct(text="I agree ☺"), signature=signed.raw)
    assert recovered == ETH.address(tw.wallet, 1).address
    binary = ETH.parse(tw.wallet, message_payload(b"\xff\x00", 0)).intent.details
    assert "message_text" not in binary and binary["message_hex"] == "0xff00"
