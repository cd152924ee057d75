"""Threshold BLS12-381 (min-pk, Ethereum POP): group, single-key vectors, threshold signing."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_ecc.bls import G2ProofOfPossession as PyEccBls

from tests.conftest import load_json_vector
from tests.crypto.threshold_keys import deal, dkg_shares, refreshed
from tholos.crypto import bls
from tholos.crypto.bls import basic
from tholos.crypto.errors import (
    InvalidElement,
    InvalidInput,
    InvalidParticipants,
    InvalidScalar,
    InvalidSignature,
    InvalidSignatureShare,
)
from tholos.crypto.groups.bls12381 import BLS12_381_G1, BLS12_381_G2, R
from tholos.crypto.hazmat.shamir import interpolate_elements
from tholos.crypto.keys import KeyShare, PublicKeyPackage, group_by_name

FIELD_P = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)


def _h(s: str) -> bytes:
    return bytes.fromhex(s.removeprefix("0x"))


# -- the group ------------------------------------------------------------------------------------
@pytest.mark.parametrize("group", [BLS12_381_G1, BLS12_381_G2])
def test_group_laws(group: Any) -> None:
    g = group.generator()
    assert not group.is_identity(g)
    assert group.is_identity(group.base_mul(0))
    assert group.is_identity(group.base_mul(R))
    assert group.eq(group.base_mul(R + 5), group.base_mul(5))
    assert group.eq(group.add(group.base_mul(2), group.base_mul(3)), group.base_mul(5))
    assert group.eq(group.sub(group.base_mul(2), group.base_mul(3)), group.neg(g))
    assert group.eq(group.mul(group.base_mul(7), 3), group.base_mul(21))
    assert group.is_identity(group.add(g, group.neg(g)))
    enc = group.serialize_element(group.base_mul(12345))
    assert len(enc) == group.element_length
    assert group.eq(group.deserialize_element(enc), group.base_mul(12345))
    with pytest.raises(InvalidElement):
        group.serialize_element(group.identity())
    with pytest.raises(InvalidElement):
        group.deserialize_element(b"\xc0" + b"\x00" * (group.element_length - 1))
    with pytest.raises(InvalidElement):
        group.deserialize_element(enc[:-1])
    with pytest.raises(InvalidElement):
        group.deserialize_element(b"\x00" * group.element_length)
    assert group.deserialize_scalar(group.serialize_scalar(R - 1)) == R - 1
    with pytest.raises(InvalidScalar):
        group.deserialize_scalar(R.to_bytes(32, "big"))


def test_g1_generator_and_registration() -> None:
    # The standard G1 generator encoding, and the group is known to key-package deserialization.
    assert BLS12_381_G1.serialize_element(BLS12_381_G1.generator()).hex().startswith("97f1d3a7")
    assert group_by_name(BLS12_381_G1.name) is BLS12_381_G1


def test_g1_rejects_point_outside_subgroup() -> None:
    # A point on y^2 = x^3 + 4 over Fp that is (overwhelmingly likely) not in the r-order subgroup.
    x = 5
    while True:
        rhs = (pow(x, 3, FIELD_P) + 4) % FIELD_P
        y = pow(rhs, (FIELD_P + 1) // 4, FIELD_P)
        if y * y % FIELD_P == rhs:
            break
        x += 1
    enc = bytearray(x.to_bytes(48, "big"))
    enc[0] |= 0x80
    with pytest.raises(InvalidElement):
        BLS12_381_G1.deserialize_element(bytes(enc))


def test_g1_key_package_round_trip() -> None:
    shares = deal(BLS12_381_G1, 2, 3)
    d = shares[0].public.to_dict()
    back = PublicKeyPackage.from_dict(d)
    assert back.to_dict() == d
    back.check_consistent()
    exported = KeyShare.import_secret(shares[1].export_secret())
    assert exported.identifier == 2


# -- single key, Ethereum vectors ------------------------------------------------------------------
def test_sign_vectors() -> None:
    data = load_json_vector("bls", "eth_bls12381_pop_sign_vectors.json")
    assert data["ciphersuite"].encode() == basic.SIG_DST
    for case in data["cases"]:
        sk = int(case["input"]["privkey"], 16)
        msg = _h(case["input"]["message"])
        if case["output"] is None:
            with pytest.raises(InvalidInput):
                basic.sign(sk, msg)
            continue
        sig = basic.sign(sk, msg)
        assert sig == _h(case["output"]), case["name"]
        basic.verify(basic.sk_to_pk(sk), msg, sig)


def test_verify_vectors() -> None:
    data = load_json_vector("bls", "eth_bls12381_pop_verify_vectors.json")
    for case in data["cases"]:
        inp = case["input"]
        args = (_h(inp["pubkey"]), _h(inp["message"]), _h(inp["signature"]))
        if case["output"]:
            basic.verify(*args)
        else:
            with pytest.raises((InvalidSignature, InvalidInput)):
                basic.verify(*args)


def test_single_key_pop_matches_py_ecc() -> None:
    sk = 0x263DBD792F5B1BE47ED85F8938C0F29586AF0D3AC7B977F21C278FE1462040E3
    proof = basic.pop_prove(sk)
    assert proof == PyEccBls.PopProve(sk)
    basic.pop_verify(basic.sk_to_pk(sk), proof)
    with pytest.raises(InvalidSignature):
        basic.pop_verify(basic.sk_to_pk(sk + 1), proof)
    with pytest.raises(InvalidScalar):
        basic.sign(0, b"m")


# -- threshold --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("t", "n"), [(1, 1), (2, 4), (3, 7)])
def test_threshold_sign_every_subset_shape(t: int, n: int) -> None:
    shares = deal(BLS12_381_G1, t, n)
    pk = bls.public_key_bytes(shares[0].public)
    msg = b"tholos bls " + bytes([t, n])
    sig = bls.sign(shares[:t], msg)
    assert len(sig) == 96 and len(pk) == 48
    bls.verify(pk, msg, sig)
    # Any other t-subset gives the same (unique) signature.
    assert bls.sign(shares[-t:], msg) == sig


def test_known_key_import_matches_single_key_signature_and_py_ecc() -> None:
    sk = 0x47B8192D77BF871B62E87859D653922725724A5C031AFEABC60BCEF5FF665138
    shares = deal(BLS12_381_G1, 3, 5, secret=sk)
    msg = b"\x00" * 32
    sig = bls.sign([shares[4], shares[0], shares[2]], msg)
    assert sig == basic.sign(sk, msg)
    assert bls.public_key_bytes(shares[0].public) == basic.sk_to_pk(sk)
    assert PyEccBls.Verify(basic.sk_to_pk(sk), msg, sig)


def test_threshold_pop_verifies_with_py_ecc() -> None:
    shares = deal(BLS12_381_G1, 2, 4)
    pk = bls.public_key_bytes(shares[0].public)
    proof = bls.prove_possession(shares[1:3])
    bls.pop_verify(pk, proof)
    assert PyEccBls.PopVerify(pk, proof)
    # A POP is not a signature over the key bytes with the signature DST.
    with pytest.raises(InvalidSignature):
        bls.verify(pk, pk, proof)


def test_bad_partial_is_named_and_excluded() -> None:
    shares = deal(BLS12_381_G1, 3, 5)
    public = shares[0].public
    msg = b"pay 1 ETH"
    partials = [bls.sign_share(ks, msg) for ks in shares]
    # Node 2 signs another message; node 4 sends a random G2 point.
    partials[1] = bls.sign_share(shares[1], b"other")
    partials[3] = bls.PartialSignature(4, BLS12_381_G2.base_mul(987654321))
    with pytest.raises(InvalidSignatureShare) as exc:
        bls.combine(public, msg, partials)
    assert exc.value.culprits == (2, 4)
    with pytest.raises(InvalidSignatureShare) as exc1:
        bls.verify_share(public, msg, partials[1])
    assert exc1.value.culprits == (2,)
    bls.verify_share(public, msg, partials[0])
    result = bls.combine_robust(public, msg, partials)
    assert result.excluded == (2, 4)
    bls.verify(bls.public_key_bytes(public), msg, result.signature)
    # Excluding the culprits and combining again gives the same signature.
    good = [p for p in partials if p.identifier not in exc.value.culprits]
    assert bls.combine(public, msg, good) == result.signature
    # Too many bad partials: still named.
    with pytest.raises(InvalidSignatureShare) as exc2:
        bls.combine_robust(public, msg, [partials[0], partials[1], partials[3]])
    assert exc2.value.culprits == (2, 4)


def test_combine_input_validation() -> None:
    shares = deal(BLS12_381_G1, 2, 3)
    public = shares[0].public
    p1 = bls.sign_share(shares[0], b"m")
    with pytest.raises(InvalidParticipants):
        bls.combine(public, b"m", [p1])
    with pytest.raises(InvalidParticipants):
        bls.combine(public, b"m", [p1, p1])
    with pytest.raises(InvalidParticipants):
        bls.combine(public, b"m", [p1, bls.PartialSignature(9, p1.signature)])
    with pytest.raises(InvalidInput):
        bls.combine(public, b"m", [p1, bls.pop_sign_share(shares[1])])
    from tholos.crypto.groups import SECP256K1

    with pytest.raises(InvalidInput):
        bls.sign_share(deal(SECP256K1, 1, 1)[0], b"m")


def test_partial_wire_round_trip_and_validation() -> None:
    shares = deal(BLS12_381_G1, 2, 3)
    p = bls.sign_share(shares[2], b"wire")
    d = p.to_dict()
    assert d["version"] == 1 and d["scheme"] == bls.SCHEME
    assert bls.PartialSignature.from_dict(d) == p
    for bad in (
        {**d, "version": 2},
        {**d, "scheme": "frost"},
        {**d, "extra": 1},
        {k: v for k, v in d.items() if k != "purpose"},
        {**d, "purpose": "other"},
        {**d, "identifier": 0},
        {**d, "identifier": True},
        {**d, "signature": d["signature"][:-2]},
        {**d, "signature": "zz" * 96},
        {**d, "signature": "c0" + "00" * 95},
        [],
    ):
        with pytest.raises(InvalidInput):
            bls.PartialSignature.from_dict(bad)


def test_refresh_keeps_key_and_signatures() -> None:
    shares = deal(BLS12_381_G1, 2, 4)
    msg = b"refresh"
    new = refreshed(shares)
    assert bls.sign(new[2:], msg) == bls.sign(shares[:2], msg)
    # Mixing old and new shares fails (old shares are useless after a refresh).
    with pytest.raises(InvalidSignatureShare):
        bls.combine(
            new[0].public, msg, [bls.sign_share(shares[0], msg), bls.sign_share(new[1], msg)]
        )


def test_over_dkg_key() -> None:
    shares = dkg_shares(BLS12_381_G1, 2, 3)
    public = shares[0].public
    assert BLS12_381_G1.eq(
        interpolate_elements(BLS12_381_G1, {i: public.verifying_shares[i] for i in (1, 3)}),
        public.group_public_key,
    )
    sig = bls.sign(shares[:2], b"dkg")
    bls.verify(bls.public_key_bytes(public), b"dkg", sig)


_SHARES = deal(BLS12_381_G1, 2, 3)


@settings(max_examples=15, deadline=None)
@given(msg=st.binary(max_size=64), other=st.binary(max_size=64))
def test_property_changed_message_fails(msg: bytes, other: bytes) -> None:
    pk = bls.public_key_bytes(_SHARES[0].public)
    sig = bls.sign(_SHARES[1:], msg)
    bls.verify(pk, msg, sig)
    if other != msg:
        with pytest.raises(InvalidSignature):
            bls.verify(pk, other, sig)
    other_pk = basic.sk_to_pk(int.from_bytes(hashlib.sha256(msg).digest(), "big") % R or 1)
    with pytest.raises(InvalidSignature):
        bls.verify(other_pk, msg, sig)


# -- partials checked before combining: one batched pairing check ----------------------------------
_T5 = deal(BLS12_381_G1, 3, 5)


def _pairs(public: Any, partials: list[Any]) -> list[Any]:
    return [(public.verifying_shares[p.identifier], p.signature) for p in partials]


def test_batch_check_accepts_valid_partials_and_names_one_bad() -> None:
    public = _T5[0].public
    partials = [bls.sign_share(ks, b"batch") for ks in _T5]
    hashed = basic.hash_to_g2(b"batch")
    assert bls.batch_holds(hashed, _pairs(public, partials))
    bls.verify_shares(public, b"batch", partials)
    assert not bls.batch_holds(hashed, [])
    partials[2] = bls.sign_share(_T5[2], b"other")
    assert not bls.batch_holds(hashed, _pairs(public, partials))
    with pytest.raises(InvalidSignatureShare) as exc:
        bls.verify_shares(public, b"batch", partials)
    assert exc.value.culprits == (3,)


@settings(max_examples=25, deadline=None)
@given(
    bad=st.integers(min_value=0, max_value=4),
    error=st.integers(min_value=1, max_value=R - 1),
    count=st.integers(min_value=1, max_value=5),
)
def test_property_one_wrong_partial_among_many_is_always_caught(
    bad: int, error: int, count: int
) -> None:
    """σ_bad + E for any E ≠ 0: the batch fails, the culprit alone is named and left out."""
    public = _T5[0].public
    msg = b"one bad among many"
    partials = [bls.sign_share(ks, msg) for ks in _T5[:count]]
    bad %= count
    wrong = BLS12_381_G2.add(partials[bad].signature, BLS12_381_G2.base_mul(error))
    if BLS12_381_G2.is_identity(wrong):  # pragma: no cover - E = -σ_bad, probability ~2^-255
        return
    partials[bad] = bls.PartialSignature(bad + 1, wrong)
    assert not bls.batch_holds(basic.hash_to_g2(msg), _pairs(public, partials))
    with pytest.raises(InvalidSignatureShare) as exc:
        bls.verify_shares(public, msg, partials)
    assert exc.value.culprits == (bad + 1,)
    if count > public.threshold:
        result = bls.combine_robust(public, msg, partials)
        assert result.excluded == (bad + 1,)
        bls.verify(bls.public_key_bytes(public), msg, result.signature)
    elif count == public.threshold:
        with pytest.raises(InvalidSignatureShare) as exc2:
            bls.combine_robust(public, msg, partials)
        assert exc2.value.culprits == (bad + 1,)


@settings(max_examples=25, deadline=None)
@given(error=st.integers(min_value=1, max_value=R - 1), pair=st.sampled_from([(0, 1), (1, 4)]))
def test_property_pair_with_cancelling_errors_is_caught(error: int, pair: tuple[int, int]) -> None:
    """σ_a + E and σ_b − E sum to the right value: an unweighted sum check would accept them, the
    random coefficients do not."""
    public = _T5[0].public
    msg = b"cancelling"
    partials = [bls.sign_share(ks, msg) for ks in _T5]
    e = BLS12_381_G2.base_mul(error)
    a, b = pair
    partials[a] = bls.PartialSignature(a + 1, BLS12_381_G2.add(partials[a].signature, e))
    partials[b] = bls.PartialSignature(b + 1, BLS12_381_G2.sub(partials[b].signature, e))
    pairs = _pairs(public, partials)
    # The plain sum still verifies (the errors cancel), so only the weighting catches this.
    assert basic.core_verify_points(
        BLS12_381_G1.sum(pk for pk, _ in pairs),
        basic.hash_to_g2(msg),
        BLS12_381_G2.sum(sig for _, sig in pairs),
    )
    assert not bls.batch_holds(basic.hash_to_g2(msg), pairs)
    with pytest.raises(InvalidSignatureShare) as exc:
        bls.verify_shares(public, msg, partials)
    assert exc.value.culprits == (a + 1, b + 1)
    result = bls.combine_robust(public, msg, partials)
    assert result.excluded == (a + 1, b + 1)


@settings(max_examples=10, deadline=None)
@given(error=st.integers(min_value=1, max_value=R - 1))
def test_property_errors_cancelling_in_the_combination_are_caught(error: int) -> None:
    """Errors chosen so that the Lagrange combination of t partials is still the valid signature:
    checking only the combined signature (the earlier optimistic path) accepted these; the partials
    are invalid, so both nodes are named and no signature is made from them."""
    shares = deal(BLS12_381_G1, 2, 4)
    public = shares[0].public
    msg = b"cancel in the combination"
    p1, p2 = (bls.sign_share(ks, msg) for ks in shares[:2])
    # λ_1 = 2, λ_2 = -1 at 0 for identifiers {1, 2}: 2·E + (-1)·(2·E) = 0.
    e = BLS12_381_G2.base_mul(error)
    bad1 = bls.PartialSignature(1, BLS12_381_G2.add(p1.signature, e))
    bad2 = bls.PartialSignature(2, BLS12_381_G2.add(p2.signature, BLS12_381_G2.mul(e, 2)))
    combined = interpolate_elements(BLS12_381_G2, {1: bad1.signature, 2: bad2.signature})
    basic.verify(bls.public_key_bytes(public), msg, BLS12_381_G2.serialize_element(combined))
    with pytest.raises(InvalidSignatureShare) as exc:
        bls.combine_robust(public, msg, [bad1, bad2])
    assert exc.value.culprits == (1, 2)
    others = [bls.sign_share(ks, msg) for ks in shares[2:]]
    result = bls.combine_robust(public, msg, [bad1, bad2, *others])
    assert result.excluded == (1, 2)
    bls.verify(bls.public_key_bytes(public), msg, result.signature)


def test_inconsistent_package_is_refused_not_signed() -> None:
    """Valid partials under verifying shares that do not interpolate to the group key: the batch
    (which covers the released signature) fails, every partial passes alone, so the package is
    blamed and nothing is returned."""
    shares = deal(BLS12_381_G1, 2, 3)
    public = shares[0].public
    wrong = PublicKeyPackage(
        group=public.group,
        threshold=public.threshold,
        group_public_key=BLS12_381_G1.base_mul(12345),
        verifying_shares=public.verifying_shares,
    )
    partials = [bls.sign_share(ks, b"m") for ks in shares[:2]]
    bls.verify_shares(wrong, b"m", partials)
    with pytest.raises(InvalidInput, match="group public key"):
        bls.combine_robust(wrong, b"m", partials)
