"""RFC 9591 appendix E vectors and ZcashFoundation/frost vectors, for both supported suites.

Every intermediate value is checked: nonces from the fixed randomness, commitments, binding factor
inputs and binding factors, signature shares, the final signature; plus share verification and
independent verification of the signature.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import load_json_vector
from tests.crypto.helpers import INDEPENDENT_VERIFIERS
from tholos.crypto.frost import (
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    Ciphersuite,
    SignatureShare,
    SigningNonces,
    SigningPackage,
    aggregate,
    compute_binding_factors,
    compute_challenge,
    compute_group_commitment,
    nonce_generate,
    sign,
    verify_signature_share,
)
from tholos.crypto.hazmat.shamir import evaluate
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

CASES = [
    ("rfc9591_frost_ed25519_sha512.json", FROST_ED25519_SHA512),
    ("rfc9591_frost_secp256k1_sha256.json", FROST_SECP256K1_SHA256),
    ("zcash_frost_ed25519_signing_vectors.json", FROST_ED25519_SHA512),
    ("zcash_frost_secp256k1_signing_vectors.json", FROST_SECP256K1_SHA256),
    ("zcash_frost_ed25519_signing_vectors_big_identifier.json", FROST_ED25519_SHA512),
    ("zcash_frost_secp256k1_signing_vectors_big_identifier.json", FROST_SECP256K1_SHA256),
]


def _scalar(suite: Ciphersuite[Any], hexstr: str) -> int:
    return suite.group.deserialize_scalar(bytes.fromhex(hexstr))


@pytest.mark.parametrize(("filename", "suite"), CASES, ids=[c[0] for c in CASES])
def test_signing_vector(filename: str, suite: Ciphersuite[Any]) -> None:
    v = load_json_vector("frost", filename)
    g = suite.group
    inputs = v["inputs"]
    t = int(v["config"]["MIN_PARTICIPANTS"])
    msg = bytes.fromhex(inputs["message"])
    pk_hex = inputs.get("group_public_key", inputs.get("verifying_key_key"))
    group_key = g.deserialize_element(bytes.fromhex(pk_hex))
    sk = _scalar(suite, inputs["group_secret_key"])
    assert g.eq(g.base_mul(sk), group_key)

    # Trusted-dealer shares (RFC 9591 appendix C) from the vector's polynomial.
    coeffs = [sk] + [_scalar(suite, c) for c in inputs["share_polynomial_coefficients"]]
    shares = {
        p["identifier"]: _scalar(suite, p["participant_share"])
        for p in inputs["participant_shares"]
    }
    for i, s in shares.items():
        assert evaluate(coeffs, i, g.order) == s
    public = PublicKeyPackage(g, t, group_key, {i: g.base_mul(s) for i, s in shares.items()})
    public.check_consistent()

    # Round one: nonce_generate from the fixed randomness, commitments.
    round_one = {o["identifier"]: o for o in v["round_one_outputs"]["outputs"]}
    assert sorted(round_one) == sorted(inputs["participant_list"])
    nonces: dict[int, SigningNonces[Any]] = {}
    for i, o in round_one.items():
        sk_i = shares[i]
        hiding = nonce_generate(suite, sk_i, bytes.fromhex(o["hiding_nonce_randomness"]))
        binding = nonce_generate(suite, sk_i, bytes.fromhex(o["binding_nonce_randomness"]))
        assert hiding == _scalar(suite, o["hiding_nonce"])
        assert binding == _scalar(suite, o["binding_nonce"])
        nonces[i] = SigningNonces.from_nonces(suite, hiding, binding)
        assert nonces[i].commitments.hiding_enc.hex() == o["hiding_nonce_commitment"]
        assert nonces[i].commitments.binding_enc.hex() == o["binding_nonce_commitment"]

    package = SigningPackage({i: n.commitments for i, n in nonces.items()}, msg)
    key = suite.effective_key(group_key)
    rho = compute_binding_factors(suite, key, package)
    prefix = key.public_key_enc + suite.H4(msg) + suite.H5(package.encode_group_commitment_list())
    for i, o in round_one.items():
        assert (prefix + g.serialize_scalar(i)).hex() == o["binding_factor_input"]
        assert rho[i] == _scalar(suite, o["binding_factor"])

    # Round two: signature shares.
    expected_shares = {o["identifier"]: o["sig_share"] for o in v["round_two_outputs"]["outputs"]}
    sig_shares: dict[int, SignatureShare[Any]] = {}
    for i in round_one:
        ks = KeyShare(identifier=i, secret_share=SecretScalar(shares[i]), public=public)
        sig_shares[i] = sign(suite, package, nonces[i], ks)
        assert sig_shares[i].to_scalar_bytes().hex() == expected_shares[i]
        verify_signature_share(suite, i, sig_shares[i], package, public)

    # Aggregation and the final signature.
    signature = aggregate(suite, package, sig_shares, public)
    assert signature.hex() == v["final_output"]["sig"]
    r = compute_group_commitment(suite, package, rho)
    assert signature.startswith(g.serialize_element(r))
    c = compute_challenge(suite, r, key, msg)
    z = sum(s.share for s in sig_shares.values()) % g.order
    assert g.eq(g.base_mul(z), g.add(r, g.mul(group_key, c)))

    pk_bytes = suite.serialize_public_key(group_key)
    suite.verify(msg, signature, pk_bytes)
    INDEPENDENT_VERIFIERS[suite.name](msg, signature, pk_bytes)
