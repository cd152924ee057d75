"""Proofs of control in each chain's standard format, made by the chain packages from the
envelope alone and judged by code nobody here wrote: Bitcoin Core's script interpreter
(py-bitcoinkernel runs the BIP322 to_sign witness against to_spend's output), python-bitcointx
(to_spend / to_sign and their sighash built independently), eth-account (EIP-191 recovery) and
libsodium (the Solana off-chain message)."""

from __future__ import annotations

import base64
import hashlib

import pbk
import pytest
from bitcointx.core import COutPoint, CTransaction, CTxIn, CTxOut
from bitcointx.core.script import (
    SIGHASH_ALL,
    SIGVERSION_WITNESS_V0,
    CScript,
    SignatureHash,
    SignatureHashSchnorr,
)
from embit.script import Witness
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from tests.chains.bitcoin_support import plain_wallet, threshold_wallet
from tests.chains.ethereum_support import threshold_wallet as eth_wallet
from tholos.chains import proof_of_control as poc
from tholos.chains.base import ChainError, WalletRef
from tholos.chains.bitcoin import BITCOIN, bip322
from tholos.chains.bitcoin.wallet import script_of
from tholos.chains.ethereum import Ethereum
from tholos.chains.solana import SOLANA, offchain
from tholos.reserves.control import ProofError, check_control

CHALLENGE = "audit 2026-12-03 nonce 7f3a"


def _entry(chain: str, network: str, address: str, signature: str) -> dict[str, str]:
    return {
        "chain": chain,
        "network": network,
        "address": address,
        "format": {"bitcoin": "bip322-simple", "ethereum": "eip191"}.get(
            chain, "solana-offchain-v0"
        ),
        "message": poc.message_text(chain, network, address, CHALLENGE),
        "signature": signature,
    }


def _kernel_accepts(script: bytes, message: bytes, witness: bytes) -> bool:
    """Bitcoin Core's interpreter on to_sign (with the proof as its witness) spending to_spend."""
    spend = bip322.to_spend(script, message)
    tx = bip322.to_sign(spend)
    signed = tx.serialize()[:4] + b"\x00\x01" + tx.serialize()[4:-4] + witness + b"\x00" * 4
    ktx = pbk.Transaction(signed)
    out = pbk.TransactionOutput(pbk.ScriptPubkey(script), 0)
    flags = (
        pbk.ScriptVerificationFlags.P2SH
        | pbk.ScriptVerificationFlags.WITNESS
        | pbk.ScriptVerificationFlags.TAPROOT
        | pbk.ScriptVerificationFlags.DERSIG
        | pbk.ScriptVerificationFlags.NULLDUMMY
    )
    data = pbk.script.PrecomputedTransactionData(ktx, [out])
    try:
        return bool(pbk.ScriptPubkey(script).verify(0, ktx, data, 0, flags))
    except pbk.ScriptVerifyException:
        return False


def _bitcointx_sighash(script: bytes, message: bytes) -> tuple[str, str, bytes]:
    """to_spend txid, to_sign txid and the sighash, built with python-bitcointx from BIP322."""
    tag = hashlib.sha256(b"BIP0322-signed-message").digest()
    msg_hash = hashlib.sha256(tag + tag + message).digest()
    spend = CTransaction(
        [CTxIn(COutPoint(b"\x00" * 32, 0xFFFFFFFF), CScript(b"\x00\x20" + msg_hash), 0)],
        [CTxOut(0, CScript(script))],
        0,
        0,
    )
    sign = CTransaction(
        [CTxIn(COutPoint(spend.GetTxid(), 0), nSequence=0)], [CTxOut(0, CScript(b"\x6a"))], 0, 0
    )
    spent = [CTxOut(0, CScript(script))]
    if script[0] == 0x51:
        digest = bytes(SignatureHashSchnorr(sign, 0, spent))
    else:
        code = CScript(b"\x76\xa9\x14" + script[2:] + b"\x88\xac")
        digest = bytes(
            SignatureHash(code, sign, 0, SIGHASH_ALL, amount=0, sigversion=SIGVERSION_WITNESS_V0)
        )
    return spend.GetTxid()[::-1].hex(), sign.GetTxid()[::-1].hex(), digest


@pytest.mark.parametrize("address_type", ["p2tr", "p2wpkh"])
@pytest.mark.parametrize("make", [plain_wallet, threshold_wallet])
def test_bip322_simple_proof_runs_in_bitcoin_core_script(address_type: str, make: object) -> None:
    w = make(address_type)  # type: ignore[operator]
    payload = poc.envelope(CHALLENGE, 3)
    parsed = BITCOIN.parse(w.wallet, payload)
    details = parsed.intent.details
    address = BITCOIN.address(w.wallet, 3).address
    assert parsed.intent.kind == "proof_of_control"
    assert (details["address"], details["challenge"], details["path"]) == (
        address,
        CHALLENGE,
        "m/0/3",
    )
    text = str(details["message_text"])
    assert text == poc.message_text("bitcoin", "regtest", address, CHALLENGE)
    script = script_of(address, "regtest")
    (target,) = parsed.targets
    spend_id, sign_id, digest = _bitcointx_sighash(script, text.encode())
    assert target.message == digest
    assert bip322.to_spend(script, text.encode()).txid().hex() == spend_id
    assert bip322.to_sign(bip322.to_spend(script, text.encode())).txid().hex() == sign_id
    signed = BITCOIN.finalize(w.wallet, payload, [w.sign(target)])
    assert signed.encoding == "base64"
    assert _kernel_accepts(script, text.encode(), signed.raw)
    check_control(
        _entry("bitcoin", "regtest", address, base64.b64encode(signed.raw).decode()), CHALLENGE
    )
    # The same witness proves nothing for another challenge or another address.
    assert not _kernel_accepts(script, text.encode() + b"x", signed.raw)
    other = BITCOIN.address(w.wallet, 4).address
    with pytest.raises(ProofError):
        check_control(
            _entry("bitcoin", "regtest", other, base64.b64encode(signed.raw).decode()), CHALLENGE
        )


def test_a_change_address_proof() -> None:
    w = plain_wallet("p2tr")
    payload = poc.envelope(CHALLENGE, 1, change=True)
    parsed = BITCOIN.parse(w.wallet, payload)
    assert parsed.intent.details["path"] == "m/1/1"
    assert parsed.intent.details["address"] == BITCOIN.address(w.wallet, 1, change=True).address


def test_a_bitcoin_signature_over_another_digest_is_refused_by_finalize() -> None:
    w = plain_wallet("p2tr")
    payload = poc.envelope(CHALLENGE)
    (target,) = BITCOIN.parse(w.wallet, payload).targets
    from dataclasses import replace

    bad = w.sign(replace(target, message=b"\x01" * 32))
    with pytest.raises(ChainError, match="does not verify"):
        BITCOIN.finalize(w.wallet, payload, [bad])


def test_eip191_proof_recovers_with_eth_account() -> None:
    w = eth_wallet("1")
    payload = poc.envelope(CHALLENGE, 2)
    parsed = Ethereum().parse(w.wallet, payload)
    (target,) = parsed.targets
    address = str(parsed.intent.details["address"])
    text = str(parsed.intent.details["message_text"])
    assert parsed.intent.kind == "proof_of_control" and target.path == "m/0/2"
    sig = w.sign(target.message, target.path)
    raw = Ethereum().finalize(w.wallet, payload, [sig.to_recoverable()]).raw
    assert Account.recover_message(encode_defunct(text=text), signature=raw) == address
    check_control(_entry("ethereum", "1", address, "0x" + raw.hex()), CHALLENGE)
    with pytest.raises(ProofError, match="not the text"):
        check_control(
            {**_entry("ethereum", "1", address, "0x" + raw.hex()), "network": "5"}, CHALLENGE
        )


def test_solana_offchain_proof_verifies_with_libsodium() -> None:
    key = SigningKey(bytes(range(32)))
    wallet = WalletRef("w", "solana", "devnet", "ed25519", "account", bytes(key.verify_key))
    payload = poc.envelope(CHALLENGE)
    parsed = SOLANA.parse(wallet, payload)
    (target,) = parsed.targets
    text = str(parsed.intent.details["message_text"]).encode()
    # the v0 header: signing domain, version 0, format 1 (the text has line breaks), u16 length
    assert target.message == b"\xffsolana offchain\x00\x01" + len(text).to_bytes(2, "little") + text
    sig = key.sign(target.message).signature
    signed = SOLANA.finalize(wallet, payload, [sig])
    key.verify_key.verify(target.message, signed.raw)
    address = str(parsed.intent.details["address"])
    check_control(_entry("solana", "devnet", address, signed.raw.hex()), CHALLENGE)
    with pytest.raises(ChainError, match="does not verify"):
        SOLANA.finalize(wallet, payload, [key.sign(b"other").signature])


def test_offchain_formats() -> None:
    assert offchain.serialize(b"hello")[17] == 0
    assert offchain.serialize("h\u00e9".encode())[17] == 1
    assert offchain.serialize(b"a" * 2000)[17] == 2
    for bad in (b"", b"\xff\xfe", b"a" * 70000):
        with pytest.raises(ValueError):
            offchain.serialize(bad)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"kind":"proof_of_reserves","challenge":"c"}', "payload"),
        (b'{"kind":"proof_of_reserves","challenge":"c","index":0,"x":1}', "payload"),
        (b'{"kind":"proof_of_reserves","challenge":"a\\nb","index":0}', "challenge"),
        (b'{"kind":"proof_of_reserves","challenge":"","index":0}', "challenge"),
        (b'{"kind":"proof_of_reserves","challenge":"c","index":-1}', "index"),
        (b'{"kind":"proof_of_reserves","challenge":"c","index":true}', "index"),
        (b'{"kind":"proof_of_reserves","kind":"x","challenge":"c","index":0}', "payload"),
        (b'{"kind":"sign_hash","challenge":"c","index":0}', "kind"),
        (b"{not json", "payload"),
    ],
)
def test_malformed_envelopes_are_refused_naming_the_field(payload: bytes, field: str) -> None:
    w = plain_wallet("p2tr").wallet
    with pytest.raises(ChainError) as info:
        BITCOIN.parse(w, payload)
    assert info.value.field == field, info.value


def test_solana_has_one_address_and_bitcoin_change_only() -> None:
    key = SigningKey(bytes(range(32)))
    wallet = WalletRef("w", "solana", "devnet", "ed25519", "account", bytes(key.verify_key))
    with pytest.raises(ChainError) as info:
        SOLANA.parse(wallet, poc.envelope(CHALLENGE, 1))
    assert info.value.field == "index"
    with pytest.raises(ChainError) as info:
        SOLANA.parse(wallet, poc.envelope(CHALLENGE, change=True))
    assert info.value.field == "payload"


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=256
    )
)
def test_any_printable_challenge_gives_a_text_that_names_it(challenge: str) -> None:
    text = poc.message_text("ethereum", "1", "0xabc", challenge)
    assert text.endswith("\nchallenge: " + challenge) and text.count("\n") == 4
    assert poc.decode(poc.envelope(challenge)).challenge == challenge


def test_a_witness_from_bytes_round_trips() -> None:
    w = plain_wallet("p2wpkh")
    payload = poc.envelope(CHALLENGE)
    (target,) = BITCOIN.parse(w.wallet, payload).targets
    raw = BITCOIN.finalize(w.wallet, payload, [w.sign(target)]).raw
    items = Witness.parse(raw).items
    assert len(items) == 2 and items[1] == BITCOIN.address(w.wallet, 0).public_key
