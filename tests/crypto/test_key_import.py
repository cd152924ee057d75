"""Key import: split an existing key into threshold shares; the result signs for the original key."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from coincurve import PrivateKey
from nacl.signing import SigningKey, VerifyKey

from tests.conftest import load_json_vector
from tests.crypto.dkg_support import assert_shares_consistent, frost_sign, secret_of
from tholos.crypto.bip32 import base58check_decode, base58check_encode
from tholos.crypto.errors import InvalidInput, InvalidParticipants
from tholos.crypto.frost import FROST_BIP340, FROST_ED25519_SHA512, FROST_SECP256K1_SHA256
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.key_import import ed25519_seed_to_scalar, import_key, import_xprv

N = SECP256K1.order


def test_import_secp256k1_hex_signs_for_the_original_key() -> None:
    sk = PrivateKey()
    imported = import_key(SECP256K1, sk.secret.hex(), 2, [1, 2, 3])
    shares = imported.shares
    assert_shares_consistent(shares)
    assert imported.xpub is None and imported.chain_code is None
    assert SECP256K1.serialize_element(imported.public.group_public_key) == sk.public_key.format()
    assert secret_of(SECP256K1, shares, [1, 3]) == int.from_bytes(sk.secret, "big")
    sig = frost_sign(FROST_BIP340, [shares[2], shares[3]], b"\x11" * 32)
    from coincurve import PublicKeyXOnly

    xonly = PublicKeyXOnly(sk.public_key.format()[1:])
    assert xonly.verify(sig, b"\x11" * 32)
    frost_sign(FROST_SECP256K1_SHA256, [shares[1], shares[2]], b"msg")


def test_import_ed25519_seed_signs_as_plain_ed25519() -> None:
    seed = hashlib.sha256(b"tholos ed25519 import").digest()
    imported = import_key(ED25519, seed.hex(), 2, [1, 2, 3])
    public_key = bytes(SigningKey(seed).verify_key)
    assert ED25519.serialize_element(imported.public.group_public_key) == public_key
    sig = frost_sign(FROST_ED25519_SHA512, [imported.shares[1], imported.shares[3]], b"hello")
    VerifyKey(public_key).verify(b"hello", sig)  # libsodium's RFC 8032 verifier


def test_ed25519_seed_scalar_rfc8032_vectors() -> None:
    """RFC 8032 section 7.1: the scalar derived from each seed gives the published public key, and
    the imported threshold key signs verifiably under it."""
    v = load_json_vector("ed25519", "rfc8032_ed25519_test_vectors.json")
    for case in v["test_vectors"]:
        seed = bytes.fromhex(case["secret_key"])
        s = ed25519_seed_to_scalar(seed)
        assert ED25519.base_mul(s).hex() == case["public_key"]
        imported = import_key(ED25519, seed, 2, [1, 2, 3])
        msg = bytes.fromhex(case["message"])
        sig = frost_sign(FROST_ED25519_SHA512, [imported.shares[2], imported.shares[3]], msg)
        VerifyKey(bytes.fromhex(case["public_key"])).verify(msg, sig)


def test_import_bytearray_is_zeroed() -> None:
    key = bytearray(PrivateKey().secret)
    imported = import_key(SECP256K1, key, 2, [1, 2])
    assert key == bytearray(32)
    assert_shares_consistent(imported.shares)


def test_import_bytearray_is_zeroed_even_on_error() -> None:
    key = bytearray(N.to_bytes(32, "big"))
    with pytest.raises(InvalidInput):
        import_key(SECP256K1, key, 2, [1, 2])
    assert key == bytearray(32)


def test_repr_is_redacted() -> None:
    sk = PrivateKey()
    imported = import_key(SECP256K1, sk.secret, 2, [1, 2])
    assert sk.secret.hex() not in repr(imported)
    assert "redacted" in repr(imported)
    assert sk.secret.hex() not in repr(imported.shares[1])


@pytest.mark.parametrize(
    "key",
    [
        "00" * 32,  # zero
        N.to_bytes(32, "big").hex(),  # = order
        "ff" * 32,  # > order
        "11" * 31,  # short
        "11" * 33,  # long
        "zz" * 32,  # not hex
    ],
)
def test_bad_secp256k1_keys(key: str) -> None:
    with pytest.raises(InvalidInput):
        import_key(SECP256K1, key, 2, [1, 2, 3])


def test_bad_key_types_and_lengths() -> None:
    with pytest.raises(InvalidInput):
        import_key(SECP256K1, 12345, 2, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        import_key(ED25519, b"\x01" * 31, 2, [1, 2])
    with pytest.raises(InvalidInput):
        import_key(ED25519, "xprv" + "1" * 100, 2, [1, 2])  # an xprv is not an Ed25519 key


@pytest.mark.parametrize(("t", "ids"), [(3, [1, 2]), (0, [1, 2]), (2, [1, 1]), (2, [0, 1])])
def test_bad_parameters(t: int, ids: list[int]) -> None:
    with pytest.raises(InvalidParticipants):
        import_key(SECP256K1, PrivateKey().secret, t, ids)


def _vector_xprvs() -> list[tuple[str, str]]:
    v = load_json_vector("bip32", "bip32_test_vectors_1-3.json")
    return [(c["ext_prv"], c["ext_pub"]) for vec in v["test_vectors"] for c in vec["chains"]]


def test_import_xprv_reproduces_xpub() -> None:
    for xprv, xpub in _vector_xprvs():
        imported = import_xprv(xprv, 2, [1, 2, 3])
        assert imported.xpub is not None
        assert imported.xpub.to_xpub() == xpub
        payload = base58check_decode(xprv)
        assert secret_of(SECP256K1, imported.shares, [1, 2]) == int.from_bytes(payload[46:], "big")
        assert imported.chain_code == payload[13:45]
    # The generic entry point dispatches on the prefix.
    xprv, xpub = _vector_xprvs()[0]
    imported_any: Any = import_key(SECP256K1, xprv, 2, [1, 2, 3])
    assert imported_any.xpub.to_xpub() == xpub


def test_bad_xprvs() -> None:
    xprv, xpub = _vector_xprvs()[1]
    payload = base58check_decode(xprv)
    with pytest.raises(InvalidInput):
        import_xprv(xprv[:-1] + ("1" if xprv[-1] != "1" else "2"), 2, [1, 2])  # checksum
    with pytest.raises(InvalidInput):
        import_xprv(xpub, 2, [1, 2])  # a public key
    with pytest.raises(InvalidInput):  # key byte prefix not 0x00
        import_xprv(base58check_encode(payload[:45] + b"\x01" + payload[46:]), 2, [1, 2])
    with pytest.raises(InvalidInput):  # key = n
        import_xprv(base58check_encode(payload[:46] + N.to_bytes(32, "big")), 2, [1, 2])
    with pytest.raises(InvalidInput):  # truncated
        import_xprv(base58check_encode(payload[:-1]), 2, [1, 2])
    with pytest.raises(InvalidInput):  # depth 0 with a parent fingerprint
        import_xprv(base58check_encode(payload[:4] + b"\x00" + payload[5:]), 2, [1, 2])
    with pytest.raises(InvalidInput):
        import_xprv("xprv0OIl", 2, [1, 2])  # not base58
