"""FROST-BIP340-v1: BIP340 vectors, even-Y handling, BIP341 taproot tweak, libsecp256k1 verification."""

from __future__ import annotations

import csv
import secrets
from typing import Any

import pytest
from coincurve import PrivateKey, PublicKeyXOnly
from embit import ec

from tests.conftest import vector_path
from tests.crypto.helpers import trusted_dealer_keygen, verify_bip340
from tholos.crypto.errors import (
    InvalidElement,
    InvalidInput,
    InvalidSignature,
    InvalidSignatureShare,
)
from tholos.crypto.frost import (
    FROST_BIP340,
    Ciphersuite,
    SigningPackage,
    aggregate,
    commit,
    sign,
    signing_public_key,
    taproot_tweak,
    tweak_for_signing,
)
from tholos.crypto.frost.ciphersuite import tagged_hash
from tholos.crypto.groups import SECP256K1
from tholos.crypto.keys import KeyShare, PublicKeyPackage

G = SECP256K1


def _rows() -> list[dict[str, str]]:
    with vector_path("bip340", "bip340_test_vectors_rows_00-09.csv").open() as f:
        return list(csv.DictReader(f))


def _frost_sign(
    shares: dict[int, KeyShare[Any]],
    public: PublicKeyPackage[Any],
    signers: list[int],
    msg: bytes,
    **kw: Any,
) -> bytes:
    r1 = {i: commit(FROST_BIP340, shares[i]) for i in signers}
    pkg = SigningPackage({i: c for i, (_, c) in r1.items()}, msg)
    zs = {i: sign(FROST_BIP340, pkg, r1[i][0], shares[i], **kw) for i in signers}
    return aggregate(FROST_BIP340, pkg, zs, public, **kw)


def test_bip340_vectors_verify() -> None:
    """Every row: our verifier (libsecp) and the generic group-arithmetic verifier agree with it."""
    rows = _rows()
    assert len(rows) == 10
    generic = Ciphersuite.verify  # the RFC-style path: lift_x, tagged challenge, z·G == R + c·P
    for row in rows:
        pk, msg, sig = (bytes.fromhex(row[k]) for k in ("public key", "message", "signature"))
        if row["verification result"] == "TRUE":
            FROST_BIP340.verify(msg, sig, pk)
            generic(FROST_BIP340, msg, sig, pk)
        else:
            with pytest.raises((InvalidSignature, InvalidElement)):
                FROST_BIP340.verify(msg, sig, pk)
            with pytest.raises((InvalidSignature, InvalidElement)):
                generic(FROST_BIP340, msg, sig, pk)


@pytest.mark.parametrize("t_n", [(1, 1), (2, 3), (3, 5)])
def test_bip340_vector_keys_imported_and_threshold_signed(t_n: tuple[int, int]) -> None:
    """Import each vector's secret key as a t-of-n sharing and sign the vector's message: the key is
    the vector's x-only key and libsecp256k1 accepts our signatures (FROST nonces are random, so
    the vector signatures themselves cannot be reproduced)."""
    t, n = t_n
    for row in _rows():
        if not row["secret key"]:
            continue
        sk = int(row["secret key"], 16)
        msg = bytes.fromhex(row["message"])
        shares, public = trusted_dealer_keygen(G, t, n, secret=sk)
        pk = signing_public_key(FROST_BIP340, public)
        assert pk.hex().upper() == row["public key"]
        signers = sorted(secrets.SystemRandom().sample(range(1, n + 1), t))
        sig = _frost_sign(shares, public, signers, msg)
        verify_bip340(msg, sig, pk)
        FROST_BIP340.verify(msg, sig, pk)
        # Single-key reference signature under the same key (libsecp) verifies with our verifier.
        ref = PrivateKey(sk.to_bytes(32, "big")).sign_schnorr(msg, bytes(32))
        FROST_BIP340.verify(msg, ref, pk)


def test_odd_y_group_key_and_commitment_both_handled() -> None:
    """Keys with odd Y (shares negated) and many signatures (R with odd Y half the time)."""
    seen_odd_key = seen_even_key = False
    for _ in range(12):
        shares, public = trusted_dealer_keygen(G, 2, 3)
        if G.has_even_y(public.group_public_key):
            seen_even_key = True
        else:
            seen_odd_key = True
        pk = signing_public_key(FROST_BIP340, public)
        assert pk == G.x_only(public.group_public_key)
        for signers in ([1, 2], [2, 3], [1, 2, 3]):
            msg = secrets.token_bytes(32)
            verify_bip340(msg, _frost_sign(shares, public, signers, msg), pk)
    assert seen_odd_key and seen_even_key


@pytest.mark.parametrize("merkle_root", [b"", bytes(range(32))])
def test_taproot_output_key_matches_bip341_and_signs(merkle_root: bytes) -> None:
    for _ in range(6):
        shares, public = trusted_dealer_keygen(G, 2, 3)
        internal = G.x_only(public.group_public_key)
        # BIP341 output key, three independent ways.
        t = taproot_tweak(internal, merkle_root)
        assert t == int.from_bytes(tagged_hash("TapTweak", internal + merkle_root), "big")
        q_coincurve = PublicKeyXOnly(internal)
        q_coincurve.tweak_add(t.to_bytes(32, "big"))  # in place
        q_embit = ec.PublicKey.from_xonly(internal).taproot_tweak(merkle_root).xonly()
        out = signing_public_key(FROST_BIP340, public, merkle_root=merkle_root)
        assert out == q_coincurve.format() == q_embit
        msg = secrets.token_bytes(32)
        sig = _frost_sign(shares, public, [1, 3], msg, merkle_root=merkle_root)
        verify_bip340(msg, sig, out)
        with pytest.raises(InvalidSignature):  # not valid under the internal key
            FROST_BIP340.verify(msg, sig, internal)
        # The other route: tweaked key packages, then plain signing.
        t_public = tweak_for_signing(FROST_BIP340, public, merkle_root=merkle_root)
        t_shares = {
            i: tweak_for_signing(FROST_BIP340, ks, merkle_root=merkle_root)
            for i, ks in shares.items()
        }
        verify_bip340(msg, _frost_sign(t_shares, t_public, [2, 3], msg), out)


def test_bip32_child_then_taproot() -> None:
    """An additive (BIP32 non-hardened) tweak on the full key, then BIP86-style taproot."""
    shares, public = trusted_dealer_keygen(G, 2, 4)
    tweak = G.random_scalar()
    child = G.add(public.group_public_key, G.base_mul(tweak))
    out = signing_public_key(FROST_BIP340, public, tweak=tweak, merkle_root=b"")
    assert out == ec.PublicKey.from_xonly(G.x_only(child)).taproot_tweak(b"").xonly()
    msg = secrets.token_bytes(32)
    sig = _frost_sign(shares, public, [2, 4], msg, tweak=tweak, merkle_root=b"")
    verify_bip340(msg, sig, out)
    # Signers and coordinator must agree on the tweak: a share made for another key is caught.
    r1 = {i: commit(FROST_BIP340, shares[i]) for i in (1, 2)}
    pkg = SigningPackage({i: c for i, (_, c) in r1.items()}, msg)
    z = {
        1: sign(FROST_BIP340, pkg, r1[1][0], shares[1], tweak=tweak, merkle_root=b""),
        2: sign(FROST_BIP340, pkg, r1[2][0], shares[2], tweak=tweak),
    }
    with pytest.raises(InvalidSignatureShare) as exc:
        aggregate(FROST_BIP340, pkg, z, public, tweak=tweak, merkle_root=b"")
    assert exc.value.culprits == (2,)


def test_long_and_empty_messages_verify_with_libsecp() -> None:
    shares, public = trusted_dealer_keygen(G, 2, 3)
    pk = signing_public_key(FROST_BIP340, public)
    for msg in (b"", b"x", secrets.token_bytes(100)):
        sig = _frost_sign(shares, public, [1, 2], msg)
        assert len(sig) == 64
        verify_bip340(msg, sig, pk)


def test_taproot_tweak_rejects_bad_input() -> None:
    with pytest.raises(InvalidInput):
        taproot_tweak(b"\x01" * 31)
    with pytest.raises(InvalidInput):
        taproot_tweak(b"\x01" * 32, b"\x00" * 16)


def test_bip32_child_key_from_embit() -> None:
    """The additive tweak of a BIP32 non-hardened path (computed here by embit from the root secret)
    makes FROST sign for embit's child key, plain BIP340 and BIP86 taproot."""
    from embit.bip32 import HDKey

    root_secret = G.random_scalar()
    root = HDKey(ec.PrivateKey(root_secret.to_bytes(32, "big")), secrets.token_bytes(32))
    child = root.derive("m/0/7/1")
    tweak = (int.from_bytes(child.key.secret, "big") - root_secret) % G.order
    shares, public = trusted_dealer_keygen(G, 2, 3, secret=root_secret)
    child_xonly = child.key.get_public_key().xonly()
    assert signing_public_key(FROST_BIP340, public, tweak=tweak) == child_xonly
    msg = secrets.token_bytes(32)
    verify_bip340(msg, _frost_sign(shares, public, [1, 2], msg, tweak=tweak), child_xonly)
    out = child.key.get_public_key().taproot_tweak(b"").xonly()
    sig = _frost_sign(shares, public, [1, 3], msg, tweak=tweak, merkle_root=b"")
    verify_bip340(msg, sig, out)
