"""DiSE threshold symmetric encryption: round trips, tampering, culprits, threshold, refresh."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.crypto.threshold_keys import deal, dkg_shares, refreshed
from tholos.crypto import dise
from tholos.crypto.errors import (
    InvalidInput,
    InvalidParticipants,
    InvalidProof,
    StateError,
)
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.keys import PublicKeyPackage

SHARES = deal(ED25519, 2, 4)
PUBLIC = SHARES[0].public


def test_hash_to_group_in_prime_order_subgroup() -> None:
    pts = {dise.hash_to_group(b"x%d" % i) for i in range(20)}
    assert len(pts) == 20
    for p in pts:
        assert ED25519.deserialize_element(p) == p  # canonical, subgroup, not identity
        assert ED25519.is_identity(ED25519.mul(p, ED25519.order))
    assert dise.hash_to_group(b"abc") == dise.hash_to_group(b"abc")


@pytest.mark.parametrize("size", [0, 1, 100, 10 * 1024 * 1024])
def test_round_trip_sizes(size: int) -> None:
    data = os.urandom(size)
    ct = dise.encrypt(SHARES[:2], "alice", data)
    assert len(ct) == len(data) + 4 + 2 + 32 + 1 + 5 + 32 + 32 + 16
    assert dise.decrypt(SHARES[2:], ct) == data
    assert dise.decrypt([SHARES[3], SHARES[0], SHARES[1]], ct) == data


@pytest.mark.parametrize(("t", "n"), [(1, 1), (3, 7)])
def test_other_thresholds(t: int, n: int) -> None:
    shares = deal(ED25519, t, n)
    ct = dise.encrypt(shares[:t], "node-gw", b"secret")
    assert dise.decrypt(shares[-t:], ct) == b"secret"


def test_same_plaintext_encrypts_differently() -> None:
    a = dise.encrypt(SHARES[:2], "alice", b"same")
    b = dise.encrypt(SHARES[:2], "alice", b"same")
    assert a != b


def test_every_flipped_bit_is_refused() -> None:
    ct = dise.encrypt(SHARES[:2], "alice", b"attack at dawn")
    for pos in range(len(ct)):
        for bit in (0, 7) if pos > 60 else range(8):
            bad = bytearray(ct)
            bad[pos] ^= 1 << bit
            with pytest.raises(InvalidInput):
                dise.decrypt(SHARES[:2], bytes(bad))
    for cut in (0, 10, len(ct) - 1):
        with pytest.raises(dise.InvalidCiphertext):
            dise.decrypt(SHARES[:2], ct[:cut])
    with pytest.raises(dise.InvalidCiphertext):
        dise.decrypt(SHARES[:2], ct + b"\x00")


def test_wrong_partial_named_and_excludable() -> None:
    ct = dise.encrypt(SHARES[:2], "alice", b"payload")
    request = dise.decrypt_begin(PUBLIC, ct)
    partials = [dise.evaluate(ks, request) for ks in SHARES[:3]]
    # Node 2 answers with a point for another input (its proof then fails).
    other = dise.EvalRequest(request.key_id, "mallory", request.alpha, "decrypt")
    wrong = dise.evaluate(SHARES[1], other)
    partials[1] = dise.PartialEval(2, wrong.point, partials[1].proof)
    with pytest.raises(InvalidProof) as exc:
        dise.decrypt_finish(PUBLIC, ct, partials)
    assert exc.value.culprits == (2,)
    with pytest.raises(InvalidProof) as exc1:
        dise.verify_partial(PUBLIC, request, partials[1])
    assert exc1.value.culprits == (2,)
    dise.verify_partial(PUBLIC, request, partials[0])
    # A correct point with a proof from someone else is refused as well.
    swapped = dise.PartialEval(3, partials[2].point, partials[0].proof)
    with pytest.raises(InvalidProof):
        dise.verify_partial(PUBLIC, request, swapped)
    # Leaving the culprit out (explicitly) completes with t valid partials.
    assert dise.decrypt_finish(PUBLIC, ct, partials, exclude_invalid=True) == b"payload"
    w, excluded = dise.combine_evaluations(PUBLIC, request, partials, exclude_invalid=True)
    assert excluded == (2,) and len(w) == 32
    with pytest.raises(InvalidProof):
        dise.decrypt_finish(PUBLIC, ct, partials[:2], exclude_invalid=True)


def test_fewer_than_t_cannot_decrypt() -> None:
    ct = dise.encrypt(SHARES[:2], "alice", b"x")
    with pytest.raises(InvalidParticipants):
        dise.decrypt(SHARES[:1], ct)
    request = dise.decrypt_begin(PUBLIC, ct)
    p1 = dise.evaluate(SHARES[0], request)
    with pytest.raises(InvalidParticipants):
        dise.decrypt_finish(PUBLIC, ct, [p1, p1])
    # A package that lies about the threshold lets t-1 partials through combination, but they
    # interpolate to the wrong value: the AEAD refuses, nothing is returned.
    liar = PublicKeyPackage(
        group=ED25519,
        threshold=1,
        group_public_key=PUBLIC.group_public_key,
        verifying_shares=dict(PUBLIC.verifying_shares),
    )
    with pytest.raises(dise.InvalidCiphertext):
        dise.decrypt_finish(liar, ct, [p1])


def test_refresh_keeps_ciphertexts_decryptable() -> None:
    ct = dise.encrypt(SHARES[:2], "alice", b"long-lived secret")
    new = refreshed(SHARES)
    assert dise.key_id(new[0].public) == dise.key_id(PUBLIC)
    assert dise.decrypt(new[1:3], ct) == b"long-lived secret"
    # An old share mixed with new ones yields an invalid partial, named by its proof check.
    request = dise.decrypt_begin(new[0].public, ct)
    mixed = [dise.evaluate(SHARES[0], request), dise.evaluate(new[1], request)]
    with pytest.raises(InvalidProof) as exc:
        dise.decrypt_finish(new[0].public, ct, mixed)
    assert exc.value.culprits == (1,)


def test_other_key_refused() -> None:
    ct = dise.encrypt(SHARES[:2], "alice", b"x")
    other = deal(ED25519, 2, 3)
    with pytest.raises(dise.InvalidCiphertext):
        dise.decrypt(other, ct)
    with pytest.raises(InvalidInput):
        dise.evaluate(other[0], dise.decrypt_begin(PUBLIC, ct))
    with pytest.raises(InvalidInput):
        dise.encrypt(deal(SECP256K1, 1, 1), "a", b"x")


def test_api_validation_and_messages() -> None:
    with pytest.raises(InvalidInput):
        dise.encrypt(SHARES[:2], "", b"x")
    with pytest.raises(InvalidInput):
        dise.encrypt(SHARES[:2], "a" * 256, b"x")
    with pytest.raises(InvalidInput):
        dise.encrypt_begin(PUBLIC, "a", "text")  # type: ignore[arg-type]
    ctx, request = dise.encrypt_begin(PUBLIC, "alice", b"m")
    assert "redacted" in repr(ctx)
    assert dise.EvalRequest.from_dict(request.to_dict()) == request
    partials = [dise.evaluate(ks, request) for ks in SHARES[:2]]
    for p in partials:
        assert dise.PartialEval.from_dict(p.to_dict()) == p
    ct = dise.encrypt_finish(PUBLIC, ctx, partials)
    with pytest.raises(StateError):
        dise.encrypt_finish(PUBLIC, ctx, partials)
    parsed = dise.Ciphertext.from_bytes(ct)
    meta = parsed.to_dict()
    assert meta["version"] == 1 and meta["scheme"] == dise.SCHEME and meta["encryptor"] == "alice"
    assert parsed.to_bytes() == ct
    d = request.to_dict()
    for bad in (
        {**d, "version": 2},
        {**d, "purpose": "sign"},
        {**d, "alpha": "00"},
        {**d, "encryptor": 5},
        {**d, "more": 1},
    ):
        with pytest.raises(InvalidInput):
            dise.EvalRequest.from_dict(bad)
    pd = partials[0].to_dict()
    for bad in ({**pd, "point": "01" + "00" * 31}, {**pd, "proof": "00"}, {**pd, "identifier": -1}):
        with pytest.raises(InvalidInput):
            dise.PartialEval.from_dict(bad)


def test_over_dkg_key() -> None:
    shares = dkg_shares(ED25519, 2, 3)
    ct = dise.encrypt(shares[:2], "dkg", b"data")
    assert dise.decrypt(shares[1:], ct) == b"data"


@settings(max_examples=20, deadline=None)
@given(data=st.binary(max_size=300), encryptor=st.text(min_size=1, max_size=20))
def test_property_round_trip(data: bytes, encryptor: str) -> None:
    if len(encryptor.encode()) > 255:
        return
    ct = dise.encrypt(SHARES[1:3], encryptor, data)
    assert dise.decrypt([SHARES[3], SHARES[0]], ct) == data


def test_decrypt_is_optimistic_encrypt_is_not() -> None:
    """Decryption checks proofs only when the AEAD fails (the commitment fixes the plaintext);
    encryption always checks them (a wrong w would lose the data or hand it to a liar)."""
    ct = dise.encrypt(SHARES[:2], "alice", b"optimistic")
    request = dise.decrypt_begin(PUBLIC, ct)
    p1, p2 = (dise.evaluate(ks, request) for ks in SHARES[:2])
    right_point_bad_proof = dise.PartialEval(2, p2.point, p1.proof)
    assert dise.decrypt_finish(PUBLIC, ct, [p1, right_point_bad_proof]) == b"optimistic"
    ctx, ereq = dise.encrypt_begin(PUBLIC, "alice", b"m")
    e1, e2 = (dise.evaluate(ks, ereq) for ks in SHARES[:2])
    with pytest.raises(InvalidProof) as exc:
        dise.encrypt_finish(PUBLIC, ctx, [e1, dise.PartialEval(2, e2.point, e1.proof)])
    assert exc.value.culprits == (2,)
    # A malformed point is named too (not a libsodium error), on the optimistic path as well.
    junk = dise.PartialEval(2, b"\x01" * 32, p2.proof)
    with pytest.raises(InvalidProof) as exc2:
        dise.decrypt_finish(PUBLIC, ct, [p1, junk])
    assert exc2.value.culprits == (2,)


def test_commitment_is_checked_after_the_aead() -> None:
    """An encryptor that seals (ρ', m) under the right key but with α ≠ Com(m; ρ'): the AEAD
    opens, the commitment does not, nothing is returned."""
    _ctx, request = dise.encrypt_begin(PUBLIC, "mallory", b"claimed")
    w, _ = dise.combine_evaluations(
        PUBLIC, request, [dise.evaluate(ks, request) for ks in SHARES[:2]]
    )
    header = dise.Ciphertext(request.key_id, request.encryptor, request.alpha, b"").header()
    aead, nonce = dise._aead(w, header)
    forged = header + aead.encrypt(nonce, os.urandom(dise.RHO_LENGTH) + b"claimed", header)
    with pytest.raises(dise.InvalidCiphertext, match="commitment"):
        dise.decrypt(SHARES[:2], forged)
