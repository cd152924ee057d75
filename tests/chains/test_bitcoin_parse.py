"""The node's own parse of a PSBT: the intent it derives and every hostile change it refuses,
naming the field."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from embit.ec import PublicKey as EmbitPublicKey
from embit.psbt import PSBT, DerivationPath
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chains.bitcoin_support import WalletUnderTest, oracle_sighashes, threshold_wallet
from tholos.chains.base import ChainError, WalletRef
from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt, script_of
from tholos.chains.intent_check import check_intent

P2TR = threshold_wallet("p2tr")
P2WPKH = threshold_wallet("p2wpkh")
OTHER = threshold_wallet("p2tr")  # another wallet: its coins and addresses are not ours
DEST = BITCOIN.address(OTHER.wallet, 7).address
TXIDS = ["11" * 32, "22" * 32]


def _prev_tx(script: bytes, amount: int) -> Transaction:
    vin = [TransactionInput(bytes.fromhex("33" * 32), 0)]
    return Transaction(version=2, vin=vin, vout=[TransactionOutput(amount, Script(script))])


def _coins(tw: WalletUnderTest, with_prev: bool = False) -> list[Utxo]:
    out = []
    for i, amount in enumerate((100_000, 50_000)):
        script = script_of(BITCOIN.address(tw.wallet, i).address, "regtest")
        prev = _prev_tx(script, amount)
        txid = prev.txid().hex() if with_prev else TXIDS[i]
        out.append(Utxo(txid, 0, amount, f"m/0/{i}", prev.serialize() if with_prev else None))
    return out


def _psbt(tw: WalletUnderTest = P2TR, version: int = 0, with_prev: bool = False) -> bytes:
    return build_psbt(
        tw.wallet,
        _coins(tw, with_prev),
        [(DEST, 120_000)],
        fee=700,
        change_index=3,
        psbt_version=version,
    )


def _mutate(raw: bytes, change: Callable[[Any], None]) -> bytes:
    psbt = PSBT.parse(raw)
    change(psbt)
    return bytes(psbt.serialize())


def _refused(wallet: WalletRef, payload: bytes, field: str) -> ChainError:
    with pytest.raises(ChainError) as err:
        BITCOIN.parse(wallet, payload)
    assert err.value.field == field, str(err.value)
    return err.value


# -- the intent -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tw", [P2TR, P2WPKH], ids=["p2tr", "p2wpkh"])
@pytest.mark.parametrize("version", [0, 2])
def test_intent_of_a_two_in_two_out_spend(tw: WalletUnderTest, version: int) -> None:
    raw = _psbt(tw, version)
    parsed = BITCOIN.parse(tw.wallet, raw)
    intent = parsed.intent
    change_address = BITCOIN.address(tw.wallet, 3, change=True).address
    assert [(t.asset, t.to, t.amount) for t in intent.transfers] == [("BTC", DEST, 120_000)]
    assert [(t.to, t.amount) for t in intent.change] == [(change_address, 29_300)]
    assert intent.fee == 700 and intent.fee_asset == "BTC"
    assert intent.details["inputs"] == 2 and intent.details["outputs"] == 2
    assert intent.details["psbt_version"] == version and intent.details["version"] == 2
    assert [t.path for t in parsed.targets] == ["m/0/0", "m/0/1"]
    assert all(t.taproot == (tw is P2TR) for t in parsed.targets)
    # The node's sighashes are python-bitcointx's (BIP341 / BIP143).
    assert [t.message for t in parsed.targets] == oracle_sighashes(raw)
    # v0 and v2 encodings of one transaction sign the same digests; base64 text parses too.
    other = _psbt(tw, 2 - version)
    assert BITCOIN.parse(tw.wallet, other).targets == parsed.targets
    assert BITCOIN.parse(tw.wallet, base64.b64encode(raw)).intent == intent
    check_intent(intent, BITCOIN.parse(tw.wallet, raw).intent)


def test_previous_transactions_are_cross_checked() -> None:
    raw = _psbt(P2WPKH, with_prev=True)
    assert BITCOIN.parse(P2WPKH.wallet, raw).intent.fee == 700

    def wrong_prev(p: Any) -> None:
        p.inputs[1].non_witness_utxo = _prev_tx(p.inputs[1].witness_utxo.script_pubkey.data, 1)

    _refused(P2WPKH.wallet, _mutate(raw, wrong_prev), "inputs[1].non_witness_utxo")


# -- hostile changes to an approved transaction -----------------------------------------------------
def _approved_then(change: Callable[[Any], None]) -> ChainError:
    raw = _psbt()
    approved = BITCOIN.parse(P2TR.wallet, raw).intent
    derived = BITCOIN.parse(P2TR.wallet, _mutate(raw, change)).intent
    with pytest.raises(ChainError) as err:
        check_intent(approved, derived)
    return err.value


def _add_output(p: Any) -> None:
    from embit.psbt import OutputScope

    p.outputs.append(OutputScope(vout=TransactionOutput(1_000, Script(script_of(DEST, "regtest")))))
    p.outputs[1].value -= 1_000


def test_an_added_output_is_refused() -> None:
    err = _approved_then(_add_output)
    assert err.field == "transfers" and "has 2, the intent 1" in str(err)


def test_another_destination_is_refused() -> None:
    other = script_of(BITCOIN.address(OTHER.wallet, 8).address, "regtest")
    err = _approved_then(lambda p: setattr(p.outputs[0], "script_pubkey", Script(other)))
    assert err.field == "transfers[0].to"


def test_a_larger_fee_is_refused() -> None:
    def pay_more(p: Any) -> None:
        p.outputs[1].value -= 5_000

    assert _approved_then(pay_more).field == "change[0].amount"
    raw = _mutate(_psbt(), pay_more)
    assert BITCOIN.parse(P2TR.wallet, raw).intent.fee == 5_700


def test_fee_below_zero_is_refused() -> None:
    _refused(P2TR.wallet, _mutate(_psbt(), lambda p: setattr(p.outputs[0], "value", 10**6)), "fee")


@pytest.mark.parametrize("sighash", [0x01, 0x02, 0x03, 0x81, 0x82, 0x83])
def test_taproot_sighash_types_other_than_default_are_refused(sighash: int) -> None:
    raw = _mutate(_psbt(), lambda p: setattr(p.inputs[1], "sighash_type", sighash))
    _refused(P2TR.wallet, raw, "inputs[1].sighash_type")


@pytest.mark.parametrize("sighash", [0x00, 0x02, 0x03, 0x83])
def test_p2wpkh_sighash_types_other_than_all_are_refused(sighash: int) -> None:
    raw = _mutate(_psbt(P2WPKH), lambda p: setattr(p.inputs[0], "sighash_type", sighash))
    _refused(P2WPKH.wallet, raw, "inputs[0].sighash_type")


def test_explicit_default_and_all_are_accepted() -> None:
    BITCOIN.parse(P2TR.wallet, _mutate(_psbt(), lambda p: setattr(p.inputs[0], "sighash_type", 0)))
    raw = _mutate(_psbt(P2WPKH), lambda p: setattr(p.inputs[0], "sighash_type", 1))
    BITCOIN.parse(P2WPKH.wallet, raw)


def _change_is_transfer(raw: bytes, tw: WalletUnderTest = P2TR) -> None:
    intent = BITCOIN.parse(tw.wallet, raw).intent
    assert intent.change == ()
    assert len(intent.transfers) == 2


def test_change_whose_derivation_does_not_lead_to_its_script_is_a_transfer() -> None:
    other = script_of(BITCOIN.address(OTHER.wallet, 0).address, "regtest")
    # Same derivation fields, another script.
    _change_is_transfer(
        _mutate(_psbt(), lambda p: setattr(p.outputs[1], "script_pubkey", Script(other)))
    )

    # Same script, the derivation path pointing elsewhere.
    def other_path(p: Any) -> None:
        for pub, (leaves, der) in p.outputs[1].taproot_bip32_derivations.items():
            p.outputs[1].taproot_bip32_derivations[pub] = (
                leaves,
                DerivationPath(der.fingerprint, [1, 4]),
            )

    _change_is_transfer(_mutate(_psbt(), other_path))

    # Another wallet's fingerprint.
    def other_fingerprint(p: Any) -> None:
        for pub, (leaves, der) in p.outputs[1].taproot_bip32_derivations.items():
            p.outputs[1].taproot_bip32_derivations[pub] = (
                leaves,
                DerivationPath(b"\x00" * 4, der.derivation),
            )

    _change_is_transfer(_mutate(_psbt(), other_fingerprint))

    # P2WPKH: a key that is not the one at the path.
    def other_key(p: Any) -> None:
        ((_pub, der),) = p.outputs[1].bip32_derivations.items()
        p.outputs[1].bip32_derivations = {
            EmbitPublicKey.parse(
                bytes.fromhex(
                    "02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
                )
            ): der
        }

    _change_is_transfer(_mutate(_psbt(P2WPKH), other_key), P2WPKH)


def test_an_input_not_of_the_wallet_is_refused() -> None:
    theirs = script_of(BITCOIN.address(OTHER.wallet, 0).address, "regtest")

    def their_coin(p: Any) -> None:
        p.inputs[1].witness_utxo.script_pubkey = Script(theirs)

    _refused(P2TR.wallet, _mutate(_psbt(), their_coin), "inputs[1].witness_utxo.script")

    def no_derivation(p: Any) -> None:
        p.inputs[0].taproot_bip32_derivations.clear()

    _refused(P2TR.wallet, _mutate(_psbt(), no_derivation), "inputs[0].bip32_derivation")

    def hardened_or_off_layout(p: Any) -> None:
        for pub, (leaves, der) in p.inputs[0].taproot_bip32_derivations.items():
            p.inputs[0].taproot_bip32_derivations[pub] = (
                leaves,
                DerivationPath(der.fingerprint, [5, 0]),
            )

    _refused(P2TR.wallet, _mutate(_psbt(), hardened_or_off_layout), "inputs[0].witness_utxo.script")
    # The other wallet's own PSBT is not this wallet's to sign.
    _refused(P2TR.wallet, _psbt(OTHER), "inputs[0].bip32_derivation")


def test_missing_spent_output_is_refused() -> None:
    raw = _mutate(_psbt(), lambda p: setattr(p.inputs[1], "witness_utxo", None))
    _refused(P2TR.wallet, raw, "inputs[1].witness_utxo")


def test_spending_one_output_twice_is_refused() -> None:
    def twice(p: Any) -> None:
        p.inputs[1].txid, p.inputs[1].vout = p.inputs[0].txid, p.inputs[0].vout

    _refused(P2TR.wallet, _mutate(_psbt(), twice), "inputs[1].previous_output")


def test_wallet_references_are_checked() -> None:
    raw = _psbt()
    w = P2TR.wallet
    for bad, field in [
        (
            WalletRef(w.wallet_id, "ethereum", "1", "ecdsa", "eoa", w.public_key, w.chain_code),
            "wallet.chain",
        ),
        (
            WalletRef(w.wallet_id, "bitcoin", "moon", w.scheme, "p2tr", w.public_key, w.chain_code),
            "wallet.network",
        ),
        (
            WalletRef(
                w.wallet_id, "bitcoin", "regtest", "ecdsa", "p2tr", w.public_key, w.chain_code
            ),
            "wallet.scheme",
        ),
        (
            WalletRef(w.wallet_id, "bitcoin", "regtest", w.scheme, "p2tr", w.public_key, None),
            "wallet.chain_code",
        ),
        (
            WalletRef(
                w.wallet_id, "bitcoin", "regtest", w.scheme, "p2tr", w.public_key[1:], w.chain_code
            ),
            "wallet.public_key",
        ),
    ]:
        _refused(bad, raw, field)


# -- malformed PSBTs --------------------------------------------------------------------------------
def test_malformed_framing_is_refused() -> None:
    raw = _psbt()
    for bad in [b"", b"psbt\xff", raw[:-1], raw + b"\x00", raw[:40], b"not base64 at all"]:
        _refused(P2TR.wallet, bad, "psbt")
    # A v2 PSBT claiming 2^64-1 inputs is refused from the framing, before any allocation.
    v2 = PSBT.parse(_psbt(version=2))
    v2.unknown = {}
    body = bytes(v2.serialize())
    huge = body.replace(b"\x01\x04\x01\x02", b"\x01\x04\x09\xff" + b"\xff" * 8, 1)
    assert huge != body
    _refused(P2TR.wallet, huge, "psbt")


def test_duplicate_keys_are_refused() -> None:
    raw = _psbt()
    psbt = PSBT.parse(raw)
    # A second copy of input 0's TAP_BIP32 field, which embit would drop silently.
    pub, (_leaves, der) = next(iter(psbt.inputs[0].taproot_bip32_derivations.items()))
    psbt.inputs[0].unknown[b"\x16" + pub.xonly()] = b"\x00" + der.serialize()
    _refused(P2TR.wallet, bytes(psbt.serialize()), "psbt")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400))
def test_random_bytes_only_ever_raise_chain_error(data: bytes) -> None:
    for payload in (data, b"psbt\xff" + data):
        with contextlib.suppress(ChainError):
            BITCOIN.parse(P2TR.wallet, payload)


_VALID = _psbt(with_prev=True)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=4
    )
)
def test_mutated_psbts_only_ever_raise_chain_error(edits: list[tuple[int, int]]) -> None:
    """Byte edits of a valid PSBT: refused with a ChainError, or parsed into digests that agree
    with python-bitcointx's for the transaction the edited PSBT states."""
    raw = bytearray(_VALID)
    for pos, value in edits:
        raw[pos] = value
    try:
        parsed = BITCOIN.parse(P2TR.wallet, bytes(raw))
    except ChainError:
        return
    assert [t.message for t in parsed.targets] == oracle_sighashes(bytes(raw))


# -- finalize ---------------------------------------------------------------------------------------
def test_finalize_refuses_bad_signatures() -> None:
    raw = _psbt()
    targets = BITCOIN.parse(P2TR.wallet, raw).targets
    sigs = [P2TR.sign(t) for t in targets]
    with pytest.raises(ChainError) as err:
        BITCOIN.finalize(P2TR.wallet, raw, sigs[:1])
    assert err.value.field == "signatures"
    with pytest.raises(ChainError) as err:
        BITCOIN.finalize(P2TR.wallet, raw, [sigs[1], sigs[0]])
    assert err.value.field == "inputs[0].signature"
    with pytest.raises(ChainError) as err:
        BITCOIN.finalize(P2TR.wallet, raw, [sigs[0], sigs[1] + b"\x01"])
    assert err.value.field == "inputs[1].signature"


def test_finalize_p2wpkh_accepts_rs_and_rsv_and_refuses_high_s() -> None:
    from tholos.crypto.groups.secp256k1 import N

    raw = _psbt(P2WPKH)
    targets = BITCOIN.parse(P2WPKH.wallet, raw).targets
    sigs = [P2WPKH.sign(t) for t in targets]
    a = BITCOIN.finalize(P2WPKH.wallet, raw, sigs)
    b = BITCOIN.finalize(P2WPKH.wallet, raw, [s[:64] for s in sigs])
    assert a.raw == b.raw and a.txid == b.txid
    s = int.from_bytes(sigs[0][32:64], "big")
    high = sigs[0][:32] + (N - s).to_bytes(32, "big")
    with pytest.raises(ChainError) as err:
        BITCOIN.finalize(P2WPKH.wallet, raw, [high, sigs[1]])
    assert err.value.field == "inputs[0].signature"
