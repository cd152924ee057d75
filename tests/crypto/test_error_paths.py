"""Error paths of tholos.crypto: bad input gets a clear exception type, and nothing is returned."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from coincurve import PrivateKey

from tests.crypto.threshold_keys import deal
from tholos.crypto import bip32
from tholos.crypto.dkg import run_dkg
from tholos.crypto.ecdsa.signature import EcdsaSignature, recover, verify
from tholos.crypto.errors import (
    InvalidElement,
    InvalidInput,
    InvalidParticipants,
    InvalidShare,
    InvalidSignature,
)
from tholos.crypto.frost import (
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    SignatureShare,
    SigningPackage,
    commit,
)
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.hazmat.dealer import deal_key_shares
from tholos.crypto.hazmat.hash import expand_message_xmd_sha256
from tholos.crypto.repair import (
    RepairSigma,
    repair_step1,
    repair_step2,
    repair_step3,
    run_repair,
)

# -- hazmat ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dst", "length"),
    [(b"d" * 256, 32), (b"d", 0), (b"d", -1), (b"d", 255 * 32 + 1), (b"d", 65536)],
)
def test_expand_message_xmd_refuses_out_of_range(dst: bytes, length: int) -> None:
    with pytest.raises(InvalidInput):
        expand_message_xmd_sha256(b"m", dst, length)


def test_expand_message_xmd_longest_output() -> None:
    assert len(expand_message_xmd_sha256(b"m", b"d", 255 * 32)) == 255 * 32


@pytest.mark.parametrize(
    ("secret", "t", "ids"),
    [(0, 2, [1, 2]), (SECP256K1.order, 2, [1, 2]), (5, 3, [1, 2]), (5, 2, [1, 1]), (5, 2, [0, 1])],
)
def test_deal_key_shares_refuses_bad_input(secret: int, t: int, ids: list[int]) -> None:
    with pytest.raises(InvalidInput):
        deal_key_shares(SECP256K1, secret, t, ids)


# -- ECDSA signature helpers ----------------------------------------------------------------------
def _plain_signature() -> tuple[bytes, bytes, EcdsaSignature]:
    sk = PrivateKey()
    digest = hashlib.sha256(b"error paths").digest()
    sig = EcdsaSignature.from_recoverable(sk.sign_recoverable(digest, hasher=None))
    return sk.public_key.format(), digest, sig


def test_ecdsa_verify_checks_the_recovery_id() -> None:
    pk, digest, sig = _plain_signature()
    verify(pk, digest, sig)
    flipped = EcdsaSignature(sig.r, sig.s, sig.recovery_id ^ 1)
    with pytest.raises(InvalidSignature):
        verify(pk, digest, flipped)


def test_ecdsa_helpers_refuse_malformed_input() -> None:
    pk, digest, sig = _plain_signature()
    with pytest.raises(InvalidInput):
        EcdsaSignature.from_recoverable(sig.to_recoverable()[:64])
    with pytest.raises(InvalidInput):
        EcdsaSignature(0, sig.s, 0)
    with pytest.raises(InvalidElement):
        verify(object(), digest, sig)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        verify(pk, digest[:31], sig)
    with pytest.raises(InvalidInput):
        EcdsaSignature(sig.r, sig.s, 2).to_eth_bytes()
    # r = x of no curve point with this recovery id: nothing recovers.
    with pytest.raises(InvalidSignature):
        recover(digest, EcdsaSignature(5, sig.s, 2))


# -- BIP32 ------------------------------------------------------------------------------------------
def test_bip32_refuses_malformed_keys() -> None:
    with pytest.raises(InvalidInput):
        bip32.base58check_decode("")
    with pytest.raises(InvalidInput):
        bip32.base58check_decode("1111")
    with pytest.raises(InvalidInput):
        bip32.base58check_decode("0OIl")
    root = bip32.ExtendedPublicKey(SECP256K1.generator(), b"c" * 32)
    for bad in (
        {"depth": 256},
        {"parent_fingerprint": b"abc"},
        {"child_number": 2**32},
        {"chain_code": b"short"},
    ):
        kw: dict[str, Any] = {"public_key": root.public_key, "chain_code": b"c" * 32, **bad}
        with pytest.raises(InvalidInput):
            bip32.ExtendedPublicKey(**kw)
    deep = bip32.ExtendedPublicKey(root.public_key, b"c" * 32, depth=255)
    with pytest.raises(InvalidInput):
        deep.child(0)
    ed = deal(ED25519, 2, 3)[0]
    with pytest.raises(InvalidInput):
        bip32.ExtendedPublicKey.from_public_package(ed.public, b"c" * 32)
    with pytest.raises(InvalidInput):
        bip32.derive_key_share(ed, root, "m/0")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        bip32.ExtendedPublicKey.from_xpub(
            bip32.base58check_encode(b"\x04\x88\xb2\x1e" + b"\0" * 10)
        )


# -- FROST wire forms -----------------------------------------------------------------------------
def _package() -> tuple[Any, dict[str, Any]]:
    shares = deal(FROST_SECP256K1_SHA256.group, 2, 3)
    comms = {ks.identifier: commit(FROST_SECP256K1_SHA256, ks)[1] for ks in shares[:2]}
    pkg = SigningPackage(comms, b"msg")
    return pkg, pkg.to_dict()


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d.update(commitments={}), id="commitments-not-list"),
        pytest.param(lambda d: d.update(commitments=[]), id="no-commitments"),
        pytest.param(lambda d: d["commitments"].append([1]), id="entry-not-dict"),
        pytest.param(lambda d: d["commitments"][0].update(identifier="1"), id="str-identifier"),
        pytest.param(lambda d: d["commitments"][0].update(identifier=True), id="bool-identifier"),
        pytest.param(
            lambda d: d["commitments"][1].update(identifier=d["commitments"][0]["identifier"]),
            id="duplicate-identifier",
        ),
        pytest.param(lambda d: d["commitments"][0].update(identifier=0), id="zero-identifier"),
        pytest.param(lambda d: d.update(message="zz"), id="message-not-hex"),
        pytest.param(lambda d: d.update(suite=FROST_ED25519_SHA512.name), id="other-suite"),
        pytest.param(lambda d: d.update(version=2), id="version"),
    ],
)
def test_signing_package_from_dict_refuses_malformed(mutate: Any) -> None:
    _, d = _package()
    mutate(d)
    with pytest.raises(InvalidInput):
        SigningPackage.from_dict(d, FROST_SECP256K1_SHA256)


def test_signing_package_constructor_refuses_wrong_types() -> None:
    pkg, _ = _package()
    with pytest.raises(InvalidInput):
        SigningPackage({1: object()}, b"m")  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        SigningPackage({1: pkg.commitments[1], 2: object()}, b"m")  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        SigningPackage(pkg.commitments, "text")  # type: ignore[arg-type]
    assert "signers=[1, 2]" in repr(pkg)


def test_signature_share_forms() -> None:
    share = SignatureShare(FROST_SECP256K1_SHA256, 7)
    assert SignatureShare.from_bytes(share.to_bytes()) == share
    assert SignatureShare.from_dict(share.to_dict(), FROST_SECP256K1_SHA256) == share
    assert hash(share) == hash(SignatureShare(FROST_SECP256K1_SHA256, 7))
    assert share != 7
    assert "share=" in repr(share)
    with pytest.raises(InvalidInput):
        SignatureShare.from_bytes(share.to_bytes(), FROST_ED25519_SHA512)
    with pytest.raises(InvalidInput):
        SignatureShare.from_bytes(b"\x01")
    with pytest.raises(InvalidInput):
        SignatureShare(FROST_SECP256K1_SHA256, FROST_SECP256K1_SHA256.group.order)


# -- repair -----------------------------------------------------------------------------------------
def _repair_setup() -> tuple[dict[int, Any], list[int], dict[int, Any], dict[int, Any]]:
    shares = run_dkg(ED25519, 2, [1, 2, 3], b"k")
    hs = [1, 2]
    step1 = {i: repair_step1(shares[i], hs, 3, b"ctx") for i in hs}
    commitments = {i: c for i, (c, _) in step1.items()}
    deltas = {j: {i: step1[i][1][j] for i in hs} for j in hs}
    return shares, hs, commitments, deltas


def test_repair_messages_round_trip_and_redact() -> None:
    shares, hs, commitments, deltas = _repair_setup()
    sigma = repair_step2(shares[1], hs, 3, b"ctx", commitments, deltas[1])
    back = RepairSigma.from_dict(sigma.to_dict())
    assert back.value.expose() == sigma.value.expose() and back.sender == 1
    assert "redacted" in repr(sigma) and "redacted" in repr(deltas[1][2])


def test_repair_refuses_bad_setups_and_messages() -> None:
    shares, hs, commitments, deltas = _repair_setup()
    with pytest.raises(InvalidParticipants):
        repair_step1(shares[3], hs, 3, b"ctx")  # the lost participant cannot help
    with pytest.raises(InvalidParticipants):
        repair_step1(shares[1], [2, 3], 1, b"ctx")  # share 1 is the lost one, not a helper
    with pytest.raises(InvalidParticipants):
        repair_step2(shares[3], [1, 2], 4, b"ctx", commitments, deltas[1])  # 4 holds no share
    with pytest.raises(InvalidInput):
        repair_step2(shares[1], hs, 3, b"ctx", {1: commitments[1]}, deltas[1])
    with pytest.raises(InvalidInput):
        repair_step2(shares[1], hs, 3, b"ctx", commitments, {1: deltas[1][1]})
    with pytest.raises(InvalidInput):
        repair_step2(shares[1], hs, 3, b"other", commitments, deltas[1])
    sigmas = {j: repair_step2(shares[j], hs, 3, b"ctx", commitments, deltas[j]) for j in hs}
    with pytest.raises(InvalidInput):
        repair_step3(shares[1].public, hs, 3, b"ctx", commitments, {1: sigmas[1]})
    swapped = {1: sigmas[1], 2: RepairSigma(ED25519, sigmas[2].session, 2, sigmas[1].value)}
    with pytest.raises(InvalidShare) as exc:
        repair_step3(shares[1].public, hs, 3, b"ctx", commitments, swapped)
    assert exc.value.culprits == (2,)
    assert run_repair({1: shares[1], 2: shares[2]}, 3).secret_share.expose() == (
        shares[3].secret_share.expose()
    )


def test_group_base_sum_and_repr() -> None:
    """The generic Group.sum (every shipped group overrides it) agrees with the native one."""
    from tholos.crypto.groups.base import Group

    pts = [SECP256K1.base_mul(k) for k in (3, 5, SECP256K1.order - 8)]
    assert SECP256K1.is_identity(Group.sum(SECP256K1, pts))
    assert SECP256K1.eq(Group.sum(SECP256K1, pts[:2]), SECP256K1.base_mul(8))
    assert repr(ED25519) == "<Group edwards25519>"
