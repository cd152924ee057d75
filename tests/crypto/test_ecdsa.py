"""Threshold ECDSA secp256k1: presign, one-round signing, culprits, Ethereum, BIP32, vectors."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from coincurve import PrivateKey, PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from eth_account import Account
from eth_account._utils.legacy_transactions import (
    encode_transaction,
    serializable_unsigned_transaction_from_dict,
)
from eth_account.messages import _hash_eip191_message, encode_defunct
from eth_keys import keys as eth_keys
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_json_vector
from tests.crypto.threshold_keys import deal, dkg_shares, refreshed
from tholos.crypto import ecdsa
from tholos.crypto.ecdsa.signature import HALF_N, EcdsaSignature, finish_signature
from tholos.crypto.errors import (
    InvalidInput,
    InvalidParticipants,
    InvalidProof,
    InvalidShare,
    InvalidSignature,
    InvalidSignatureShare,
    NonceReuse,
    ProtocolAbort,
    StateError,
)
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.groups.secp256k1 import N


def _digest(msg: bytes) -> bytes:
    return hashlib.sha256(msg).digest()


def _eth_address(point: PublicKey) -> str:
    return str(eth_keys.PublicKey(point.format(compressed=False)[1:]).to_checksum_address())


# -- plain ECDSA helpers against the RFC 6979 community vectors -----------------------------------
def test_rfc6979_vectors_verify_normalise_and_recover() -> None:
    data = load_json_vector(
        "ecdsa_secp256k1", "rfc6979_secp256k1_sha256_deterministic_ecdsa_vectors.json"
    )
    vectors = data["signature_vectors"]["vectors"]
    with_nonce = 0
    for v in vectors:
        d = int(v["private_key"], 16)
        pub = SECP256K1.base_mul(d)
        assert pub is not None
        digest = bytes.fromhex(v["message_sha256"])
        if v["message"] is not None:
            assert digest == _digest(v["message"].encode())
        r, s_low = int(v["signature_r"], 16), int(v["signature_s_low"], 16)
        assert s_low <= HALF_N
        # Find the recovery id by recovery, then check our verify and recover agree.
        sigs = [EcdsaSignature(r, s_low, rid) for rid in (0, 1)]
        good = [s for s in sigs if ecdsa.recover(digest, s).format() == pub.format()]
        assert len(good) == 1
        ecdsa.verify(pub, digest, good[0])
        ecdsa.verify(pub.format(), digest, good[0])
        # DER against the vector where it gives one, else against `cryptography`'s encoder.
        der = v.get("signature_der") or encode_dss_signature(r, s_low).hex()
        assert good[0].to_der().hex() == der
        assert decode_dss_signature(bytes.fromhex(der)) == (r, s_low)
        high = EcdsaSignature(r, N - s_low, good[0].recovery_id ^ 1)
        with pytest.raises(InvalidSignature):
            ecdsa.verify(pub, digest, high)
        assert high.normalized() == good[0]
        with pytest.raises(InvalidSignature):
            ecdsa.verify(pub, _digest(b"other"), good[0])
        # eth_keys agrees on recovery with our recovery id.
        eth_sig = eth_keys.Signature(vrs=(good[0].recovery_id, r, s_low))
        assert (
            eth_sig.recover_public_key_from_msg_hash(digest).to_bytes()
            == pub.format(compressed=False)[1:]
        )
        if "nonce_k" in v:
            # Our combiner's finishing step (R, raw s) -> low-S (r, s, recid) reproduces the vector.
            with_nonce += 1
            k = int(v["nonce_k"], 16)
            big_r = SECP256K1.base_mul(k)
            assert big_r is not None
            raw_s = pow(k, -1, N) * (int.from_bytes(digest, "big") + r * d) % N
            assert (raw_s > HALF_N) == v["s_was_normalized_to_low_s"]
            assert finish_signature(big_r, raw_s, pub, digest) == good[0]
    assert with_nonce >= 7


def test_signature_encodings() -> None:
    sig = EcdsaSignature(5, N - 3, 1)
    assert not sig.is_low_s and sig.normalized() == EcdsaSignature(5, 3, 0)
    assert EcdsaSignature.from_recoverable(sig.to_recoverable()) == sig
    assert EcdsaSignature.from_recoverable(EcdsaSignature(5, 3, 1).to_eth_bytes()).recovery_id == 1
    with pytest.raises(InvalidInput):
        EcdsaSignature(0, 1, 0)
    with pytest.raises(InvalidInput):
        EcdsaSignature(1, 1, 4)
    with pytest.raises(InvalidInput):
        EcdsaSignature(1, 1, 2).to_eth_bytes()
    with pytest.raises(InvalidInput):
        ecdsa.verify(SECP256K1.generator(), b"short", EcdsaSignature(1, 1, 0))


# -- threshold signing -------------------------------------------------------------------------------
@pytest.mark.parametrize(("t", "n"), [(1, 1), (2, 3), (2, 4), (3, 5), (3, 7)])
def test_threshold_sign(t: int, n: int) -> None:
    shares = deal(SECP256K1, t, n)
    presigs, public = ecdsa.run_presign(shares)
    assert ecdsa.min_participants(t) == 2 * t - 1
    digest = _digest(b"tx %d %d" % (t, n))
    signers = shares[n - (2 * t - 1) :]  # the last 2t-1 parties
    sig = ecdsa.sign(signers, presigs, public, digest)
    assert sig.is_low_s
    ecdsa.verify(shares[0].public.group_public_key, digest, sig)
    assert ecdsa.recover(digest, sig).format() == shares[0].public.group_public_key.format()


def test_known_key_eth_message_and_random_nonces() -> None:
    d = 0x4C0883A69102937D6231471B5DBB6204FE5129617082792AE468D01A3F362318
    acct = Account.from_key(d)
    shares = deal(SECP256K1, 2, 4, secret=d)
    assert _eth_address(shares[0].public.group_public_key) == acct.address
    msg = encode_defunct(text="tholos threshold ECDSA")
    digest = _hash_eip191_message(msg)
    presigs, public = ecdsa.run_presign(shares)
    sig = ecdsa.sign(shares[1:], presigs, public, digest)
    eth = sig.to_eth_bytes()
    assert len(eth) == 65 and eth[64] in (27, 28)
    assert Account.recover_message(msg, signature=eth) == acct.address
    # Threshold nonces are random: RFC 6979's deterministic signature is a different one.
    det = PrivateKey(d.to_bytes(32, "big")).sign_recoverable(digest, hasher=None)
    assert det[:64] != sig.to_compact()


def test_eip1559_transaction_recovers_sender() -> None:
    shares = deal(SECP256K1, 3, 7)
    address = _eth_address(shares[0].public.group_public_key)
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": 1,
        "nonce": 7,
        "maxPriorityFeePerGas": 2_000_000_000,
        "maxFeePerGas": 30_000_000_000,
        "gas": 21_000,
        "to": "0x3535353535353535353535353535353535353535",
        "value": 10**18,
        "data": b"",
        "accessList": [],
    }
    unsigned = serializable_unsigned_transaction_from_dict(tx)
    digest = unsigned.hash()
    presigs, public = ecdsa.run_presign(shares)
    sig = ecdsa.sign(shares[:5], presigs, public, digest)
    raw = encode_transaction(unsigned, vrs=(sig.recovery_id, sig.r, sig.s))
    assert Account.recover_transaction(raw) == address


def _ckd_pub_tweak(parent: PublicKey, chain_code: bytes, index: int) -> tuple[int, bytes]:
    """BIP32 CKDpub: (IL, child chain code) for a non-hardened index."""
    assert index < 2**31
    i = hmac.new(chain_code, parent.format() + index.to_bytes(4, "big"), hashlib.sha512).digest()
    return int.from_bytes(i[:32], "big"), i[32:]


def test_bip32_non_hardened_derivation() -> None:
    from embit import bip32

    data = load_json_vector("bip32", "bip32_test_vectors_1-3.json")
    chain = {c["path"]: c for c in data["test_vectors"][0]["chains"]}
    parent = bip32.HDKey.from_string(chain["m/0'"]["ext_prv"])
    child = bip32.HDKey.from_string(chain["m/0'/1"]["ext_pub"])
    shares = deal(SECP256K1, 2, 4, secret=int.from_bytes(parent.key.secret, "big"))
    y = shares[0].public.group_public_key
    tweak, cc = _ckd_pub_tweak(y, parent.chain_code, 1)
    assert cc == child.chain_code
    derived = SECP256K1.add(y, SECP256K1.base_mul(tweak))
    assert derived is not None and derived.format() == child.key.sec()
    presigs, public = ecdsa.run_presign(shares)
    digest = _digest(b"spend from m/0'/1")
    sig = ecdsa.sign(shares[:3], presigs, public, digest, tweak=tweak)
    ecdsa.verify(child.key.sec(), digest, sig)
    with pytest.raises(InvalidSignature):
        ecdsa.verify(y, digest, sig)
    # KeyShare.tweaked gives the same key package the combiner signs for.
    assert shares[0].tweaked(tweak).public.group_public_key.format() == child.key.sec()


def test_nonce_reuse_refused_and_presig_single_use() -> None:
    shares = deal(SECP256K1, 2, 3)
    presigs, public = ecdsa.run_presign(shares)
    p1 = presigs[1]
    assert "redacted" in repr(p1) and "fresh" in repr(p1)
    exported = p1.export_secret()
    ecdsa.sign_share(p1, shares[0], _digest(b"a"))
    assert p1.used and "used" in repr(p1)
    with pytest.raises(NonceReuse):
        ecdsa.sign_share(p1, shares[0], _digest(b"b"))
    with pytest.raises(NonceReuse):
        p1.export_secret()
    # Sealed copies restore (the node store must mark them used before the share leaves).
    restored = ecdsa.Presignature.import_secret(exported)
    assert restored.public == public and not restored.used
    # Input errors are raised before the presignature is consumed.
    fresh = presigs[2]
    with pytest.raises(InvalidInput):
        ecdsa.sign_share(fresh, shares[1], b"short")
    with pytest.raises(InvalidInput):
        ecdsa.sign_share(fresh, shares[0], _digest(b"a"))  # wrong participant
    assert not fresh.used


def test_bad_signature_share_named_and_excluded() -> None:
    shares = deal(SECP256K1, 2, 4)
    presigs, public = ecdsa.run_presign(shares)
    digest = _digest(b"pay")
    sig_shares = [ecdsa.sign_share(presigs[k.identifier], k, digest) for k in shares]
    bad = ecdsa.SignatureShare(public.session, 3, (sig_shares[2].s + 1) % N)
    sig_shares[2] = bad
    with pytest.raises(InvalidSignatureShare) as exc:
        ecdsa.combine(public, digest, sig_shares)
    assert exc.value.culprits == (3,)
    with pytest.raises(InvalidSignatureShare):
        ecdsa.verify_signature_share(public, digest, bad)
    ecdsa.verify_signature_share(public, digest, sig_shares[0])
    result = ecdsa.combine_robust(public, digest, sig_shares)
    assert result.excluded == (3,)
    ecdsa.verify(shares[0].public.group_public_key, digest, result.signature)
    # The gateway drops the culprit and completes with the other 2t-1 = 3.
    good = [s for s in sig_shares if s.identifier != 3]
    assert ecdsa.combine(public, digest, good) == result.signature
    # With only 2t-1 shares, one of them bad: named, no signature.
    with pytest.raises(InvalidSignatureShare) as exc2:
        ecdsa.combine_robust(public, digest, [sig_shares[0], sig_shares[1], bad])
    assert exc2.value.culprits == (3,)
    # Shares of another message or another tweak are caught too.
    with pytest.raises(InvalidSignatureShare):
        ecdsa.verify_signature_share(public, _digest(b"other"), sig_shares[0])
    with pytest.raises(InvalidSignatureShare):
        ecdsa.verify_signature_share(public, digest, sig_shares[0], tweak=5)


def test_participant_counts_enforced() -> None:
    shares = deal(SECP256K1, 3, 7)
    with pytest.raises(InvalidParticipants):
        ecdsa.run_presign(shares[:4])  # 2t-1 = 5 needed
    presigs, public = ecdsa.run_presign(shares[:5])
    digest = _digest(b"x")
    sig_shares = [ecdsa.sign_share(presigs[k.identifier], k, digest) for k in shares[:4]]
    with pytest.raises(InvalidParticipants):
        ecdsa.combine(public, digest, sig_shares)
    with pytest.raises(InvalidParticipants):
        ecdsa.combine(public, digest, [sig_shares[0], sig_shares[0], *sig_shares[1:]])
    other = ecdsa.SignatureShare(b"\x00" * 32, 1, 1)
    with pytest.raises(InvalidInput):
        ecdsa.combine(public, digest, [other, *sig_shares])
    with pytest.raises(InvalidParticipants):
        ecdsa.PresignParticipant(shares[0], ecdsa.new_session_id(), [1, 2, 3, 4, 9])
    with pytest.raises(InvalidInput):
        ecdsa.PresignParticipant(shares[0], b"short", [1, 2, 3, 4, 5])
    with pytest.raises(InvalidParticipants):
        ecdsa.PresignParticipant(shares[0], ecdsa.new_session_id(), [2, 3, 4, 5, 6])
    with pytest.raises(InvalidInput):
        ecdsa.run_presign(deal(ED25519, 1, 1))


def _start(shares: list[Any]) -> tuple[dict[int, Any], list[Any], dict[int, list[Any]]]:
    session = ecdsa.new_session_id()
    ids = [k.identifier for k in shares]
    parties = {k.identifier: ecdsa.PresignParticipant(k, session, ids) for k in shares}
    deals, private = [], {i: [] for i in ids}
    for p in parties.values():
        deal_msg, sh = p.round1()
        deals.append(deal_msg)
        for j, s in sh.items():
            private[j].append(s)
    return parties, deals, private


def test_presign_bad_dealer_named() -> None:
    shares = deal(SECP256K1, 2, 3)
    parties, deals, private = _start(shares)
    # Dealer 2 sends party 1 a wrong k share.
    private[1] = [
        ecdsa.PresignShares(
            s.session, s.dealer, s.recipient, ((s.values[0] + 1) % N, *s.values[1:])
        )
        if s.dealer == 2
        else s
        for s in private[1]
    ]
    with pytest.raises(InvalidShare) as exc:
        parties[1].round2(deals, private[1])
    assert exc.value.culprits == (2,)
    assert parties[1].state is ecdsa.PresignState.FAILED
    with pytest.raises(StateError):
        parties[1].round2(deals, private[1])
    # A missing deal names the silent dealer.
    with pytest.raises(ProtocolAbort) as exc2:
        parties[2].round2(deals[:2], private[2])
    assert exc2.value.culprits == (3,)


def test_presign_bad_opening_named() -> None:
    shares = deal(SECP256K1, 2, 4)
    parties, deals, private = _start(shares)
    opens = [parties[i].round2(deals, private[i]) for i in (1, 2, 3, 4)]
    o = opens[3]
    opens[3] = ecdsa.PresignOpen(o.session, o.identifier, (o.mu + 1) % N, o.u, o.v, o.z, o.proof)
    with pytest.raises(InvalidProof) as exc:
        parties[1].finish(opens)
    assert exc.value.culprits == (4,)
    with pytest.raises(InvalidProof):
        ecdsa.verify_transcript(shares[0].public, deals[0].session, [1, 2, 3, 4], deals, opens)
    # A party that swaps in another key share (V_i for a different x_i) is caught as well.
    o2 = opens[1]
    forged_v = SECP256K1.mul(o2.u, 12345)
    bad = ecdsa.PresignOpen(o2.session, o2.identifier, o2.mu, o2.u, forged_v, o2.z, o2.proof)
    with pytest.raises(InvalidProof) as exc2:
        parties[3].finish([opens[0], bad, opens[2], o])
    assert exc2.value.culprits == (2,)
    # A party does not re-check its own proof, but refuses its own opening changed in transit.
    with pytest.raises(ProtocolAbort, match="own opening"):
        parties[2].finish([opens[0], bad, opens[2], o])
    assert parties[2].state is ecdsa.PresignState.FAILED


def test_state_machine_order() -> None:
    shares = deal(SECP256K1, 1, 1)
    p = ecdsa.PresignParticipant(shares[0], ecdsa.new_session_id(), [1])
    with pytest.raises(StateError):
        p.finish([])
    deal_msg, sh = p.round1()
    with pytest.raises(StateError):
        p.round1()
    opened = p.round2([deal_msg], list(sh.values()))
    presig = p.finish([opened])
    assert p.state is ecdsa.PresignState.DONE
    with pytest.raises(StateError):
        p.finish([opened])
    assert "PresignParticipant(identifier=1" in repr(p)
    for a, b in ecdsa.presign.TRANSITIONS.items():
        assert a not in b
    assert not presig.used


def test_wire_round_trips_and_rejections() -> None:
    shares = deal(SECP256K1, 2, 3)
    parties, deals, private = _start(shares)
    opens = [parties[i].round2(deals, private[i]) for i in (1, 2, 3)]
    presigs = {i: parties[i].finish(opens) for i in (1, 2, 3)}
    public = presigs[1].public
    assert ecdsa.PresignDeal.from_dict(deals[0].to_dict(), 2) == deals[0]
    sh = private[2][0]
    back = ecdsa.PresignShares.from_dict(sh.to_dict())
    assert back.values == sh.values and back.dealer == sh.dealer
    assert "redacted" in repr(sh) and str(sh.values[0]) not in repr(sh)
    assert ecdsa.PresignOpen.from_dict(opens[0].to_dict()) == opens[0]
    assert ecdsa.PresignaturePublic.from_dict(public.to_dict()) == public
    digest = _digest(b"w")
    s1 = ecdsa.sign_share(presigs[1], shares[0], digest)
    assert ecdsa.SignatureShare.from_dict(s1.to_dict()) == s1
    for obj, parse in (
        (deals[0].to_dict(), lambda d: ecdsa.PresignDeal.from_dict(d, 2)),
        (opens[0].to_dict(), ecdsa.PresignOpen.from_dict),
        (s1.to_dict(), ecdsa.SignatureShare.from_dict),
        (public.to_dict(), ecdsa.PresignaturePublic.from_dict),
    ):
        for bad in (
            {**obj, "version": 9},
            {**obj, "scheme": "x"},
            {**obj, "kind": "x"},
            {**obj, "x": 1},
        ):
            with pytest.raises(InvalidInput):
                parse(bad)
    with pytest.raises(InvalidInput):
        ecdsa.PresignDeal.from_dict(deals[0].to_dict(), 3)  # wrong commitment lengths
    with pytest.raises(InvalidInput):
        ecdsa.PresignOpen.from_dict({**opens[0].to_dict(), "proof": "00" * 10})
    with pytest.raises(InvalidInput):
        ecdsa.SignatureShare.from_dict({**s1.to_dict(), "s": "ff" * 32})
    with pytest.raises(InvalidInput):
        ecdsa.PresignaturePublic.from_dict({**public.to_dict(), "participants": [1, 2]})


def test_refresh_invalidates_presignatures_but_not_the_key() -> None:
    shares = deal(SECP256K1, 2, 3)
    presigs, _ = ecdsa.run_presign(shares)
    new = refreshed(shares)
    with pytest.raises(StateError):
        ecdsa.sign_share(presigs[1], new[0], _digest(b"r"))
    assert not presigs[1].used
    presigs2, public2 = ecdsa.run_presign(new)
    sig = ecdsa.sign(new, presigs2, public2, _digest(b"r"))
    ecdsa.verify(shares[0].public.group_public_key, _digest(b"r"), sig)


def test_over_dkg_key() -> None:
    shares = dkg_shares(SECP256K1, 2, 3)
    presigs, public = ecdsa.run_presign(shares)
    sig = ecdsa.sign(shares, presigs, public, _digest(b"dkg"))
    ecdsa.verify(shares[0].public.group_public_key, _digest(b"dkg"), sig)


_KEY = deal(SECP256K1, 2, 3)


@settings(max_examples=10, deadline=None)
@given(msg=st.binary(max_size=100), other=st.binary(max_size=100), tweak=st.integers(0, N - 1))
def test_property_sign_verify_and_tamper(msg: bytes, other: bytes, tweak: int) -> None:
    presigs, public = ecdsa.run_presign(_KEY)
    digest = _digest(msg)
    sig = ecdsa.sign(_KEY, presigs, public, digest, tweak=tweak)
    key = SECP256K1.add(_KEY[0].public.group_public_key, SECP256K1.base_mul(tweak))
    ecdsa.verify(key, digest, sig)
    if other != msg:
        with pytest.raises(InvalidSignature):
            ecdsa.verify(key, _digest(other), sig)
    with pytest.raises(InvalidSignature):
        ecdsa.verify(SECP256K1.add(key, SECP256K1.generator()), digest, sig)
