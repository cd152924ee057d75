"""BIP32 public derivation on threshold keys against the BIP32 test vectors 1-3."""

from __future__ import annotations

from typing import Any

import pytest
from coincurve import PublicKeyXOnly

from tests.conftest import load_json_vector
from tests.crypto.dkg_support import frost_sign, secret_of
from tholos.crypto.bip32 import (
    HARDENED,
    ExtendedPublicKey,
    HardenedDerivationError,
    base58check_decode,
    derive,
    derive_key_share,
    hash160,
    parse_path,
)
from tholos.crypto.dkg import run_dkg
from tholos.crypto.errors import InvalidElement, InvalidInput
from tholos.crypto.frost import FROST_BIP340, FROST_SECP256K1_SHA256, signing_public_key
from tholos.crypto.groups import SECP256K1
from tholos.crypto.key_import import import_xprv


def _steps(path: str) -> list[str]:
    return [p for p in path.split("/")[1:]]


def _pairs() -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """(ancestor, descendant, relative non-hardened path) for every pair in the vectors where the
    descendant is reached from the ancestor by >= 1 non-hardened steps only."""
    v = load_json_vector("bip32", "bip32_test_vectors_1-3.json")
    out = []
    for vec in v["test_vectors"]:
        chains = vec["chains"]
        for a in chains:
            for d in chains:
                sa, sd = _steps(a["path"]), _steps(d["path"])
                rest = sd[len(sa) :]
                if sd[: len(sa)] == sa and rest and not any(r.endswith("'") for r in rest):
                    out.append((a, d, "m/" + "/".join(rest)))
    return out


def test_vectors_cover_every_non_hardened_child() -> None:
    pairs = _pairs()
    # vector 1: m/0'/1, m/0'/1/2'/2, .../1000000000 (from m/0'/1/2' and from .../2);
    # vector 2: m/0, m/0/2147483647'/1, .../2147483646'/2. Vector 3 has none.
    children = {d["path"] for _, d, _ in pairs}
    assert len(children) == 6
    assert len(pairs) >= 7


def test_vectors_from_imported_xprv() -> None:
    """Import the ancestor's xprv as a 2-of-3 key; every non-hardened descendant's xpub is reproduced
    from the public side, the tweaked shares are the descendant's private key, and they sign."""
    for ancestor, child, rel in _pairs():
        imported = import_xprv(ancestor["ext_prv"], 2, [1, 2, 3])
        root = imported.xpub
        assert root is not None and root.to_xpub() == ancestor["ext_pub"]
        derived = derive(root, rel)
        assert derived.xpub == child["ext_pub"], (ancestor["path"], rel)
        child_shares = {i: derive_key_share(ks, root, rel) for i, ks in imported.shares.items()}
        expected_key = int.from_bytes(base58check_decode(child["ext_prv"])[46:], "big")
        assert secret_of(SECP256K1, child_shares, [1, 3]) == expected_key
        assert SECP256K1.eq(child_shares[1].public.group_public_key, derived.public_key)
        assert child_shares[1].public == derived.public_package(imported.public)
        # real threshold signatures under the child key, both ways of applying the tweak
        msg = b"\x42" * 32
        sig = frost_sign(FROST_BIP340, [child_shares[1], child_shares[2]], msg)
        assert PublicKeyXOnly(derived.node.key_bytes[1:]).verify(sig, msg)
        shares = [imported.shares[2], imported.shares[3]]
        sig2 = frost_sign(FROST_BIP340, shares, msg, tweak=derived.tweak)
        assert PublicKeyXOnly(derived.node.key_bytes[1:]).verify(sig2, msg)
        key = signing_public_key(FROST_SECP256K1_SHA256, imported.public, tweak=derived.tweak)
        assert key == derived.node.key_bytes


def test_vectors_from_xpub_only() -> None:
    for ancestor, child, rel in _pairs():
        root = ExtendedPublicKey.from_xpub(ancestor["ext_pub"])
        assert root.to_xpub() == ancestor["ext_pub"]
        assert derive(root, rel).xpub == child["ext_pub"]


def test_derivation_on_a_dkg_key_is_stepwise_consistent() -> None:
    shares = run_dkg(SECP256K1, 2, [1, 2, 3], b"bip32")
    root = ExtendedPublicKey.from_public_package(shares[1].public, b"\x07" * 32)
    full = derive(root, "m/0/7/42")
    step = derive(derive(derive(root, [0]).node, "7").node, "m/42")
    assert full.xpub == step.xpub
    assert full.node.depth == 3 and full.node.child_number == 42
    assert full.node.parent_fingerprint == hash160(derive(root, "m/0/7").node.key_bytes)[:4]
    child = {i: derive_key_share(ks, root, "m/0/7/42") for i, ks in shares.items()}
    frost_sign(FROST_BIP340, [child[1], child[3]], b"\x01" * 32)
    frost_sign(FROST_SECP256K1_SHA256, [child[2], child[3]], b"any message")
    assert derive(root, "m").tweak == 0 and derive(root, "m").xpub == root.to_xpub()


def test_embit_cross_check() -> None:
    embit_bip32 = pytest.importorskip("embit.bip32")
    shares = run_dkg(SECP256K1, 2, [1, 2, 3], b"embit")
    root = ExtendedPublicKey.from_public_package(shares[1].public, bytes(range(32)))
    theirs = embit_bip32.HDKey.from_string(root.to_xpub()).derive("m/3/1000/2147483647")
    assert derive(root, "m/3/1000/2147483647").xpub == theirs.to_base58()


@pytest.mark.parametrize("path", ["m/0'", "m/1/2h", "m/0H", [HARDENED], [1, HARDENED + 5]])
def test_hardened_is_refused(path: Any) -> None:
    root = ExtendedPublicKey(SECP256K1.base_mul(7), b"\x00" * 32)
    with pytest.raises(HardenedDerivationError, match="hardened"):
        derive(root, path)


@pytest.mark.parametrize("path", ["m/x", "m//1", "m/-1", "m/1.5", [-1], ["1"]])
def test_bad_paths(path: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_path(path)


def test_parse_path_forms() -> None:
    assert parse_path("m/0/7/42") == (0, 7, 42)
    assert parse_path("0/7") == (0, 7)
    assert parse_path("m") == ()
    assert parse_path([1, 2]) == (1, 2)


def test_bad_xpubs_and_nodes() -> None:
    v = load_json_vector("bip32", "bip32_test_vectors_1-3.json")
    chain = v["test_vectors"][0]["chains"][1]
    with pytest.raises(InvalidInput):
        ExtendedPublicKey.from_xpub(chain["ext_prv"])  # private version bytes
    with pytest.raises(InvalidInput):
        ExtendedPublicKey.from_xpub(chain["ext_pub"][:-1] + "z")
    with pytest.raises(InvalidElement):
        ExtendedPublicKey(None, b"\x00" * 32)
    with pytest.raises(InvalidInput):
        ExtendedPublicKey(SECP256K1.base_mul(3), b"\x00" * 31)


def test_derive_key_share_checks_root() -> None:
    shares = run_dkg(SECP256K1, 2, [1, 2], b"a")
    other = ExtendedPublicKey(SECP256K1.base_mul(5), b"\x00" * 32)
    with pytest.raises(InvalidInput):
        derive_key_share(shares[1], other, "m/1")
