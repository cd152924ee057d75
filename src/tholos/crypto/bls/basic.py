"""Single-key BLS signatures, min-pk, proof-of-possession ciphersuite used by Ethereum.

draft-irtf-cfrg-bls-signature-05: public keys in G1 (48 bytes compressed), signatures in G2 (96
bytes compressed), hash_to_point = hash_to_curve G2 with expand_message_xmd(SHA-256) and SSWU
(RFC 9380 suite BLS12381G2_XMD:SHA-256_SSWU_RO_), ciphersuite IDs

- signatures: ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` (section 4.2.3)
- proofs of possession: ``BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` (PopProve, section 3.3.2)

Verification raises (`InvalidSignature`; malformed encodings raise `InvalidElement`). These
functions are what the threshold code produces signatures for, and they are checked against the
Ethereum bls12-381-tests vectors.
"""

from __future__ import annotations

from pyblst import BlstP1Element, BlstP2Element, final_verify, miller_loop

from tholos.crypto.errors import InvalidScalar, InvalidSignature
from tholos.crypto.groups.bls12381 import BLS12_381_G1, BLS12_381_G2, R

SIG_DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
PUBLIC_KEY_LENGTH = 48
SIGNATURE_LENGTH = 96


def hash_to_g2(message: bytes, dst: bytes = SIG_DST) -> BlstP2Element:
    """hash_to_curve into G2 (RFC 9380, BLS12381G2_XMD:SHA-256_SSWU_RO_) under `dst`."""
    return BlstP2Element.hash_to_group(bytes(message), dst)


def _check_secret(sk: int) -> int:
    if not isinstance(sk, int) or isinstance(sk, bool) or not 0 < sk < R:
        raise InvalidScalar("BLS secret key must be in 1..r-1")
    return sk


def sk_to_pk(sk: int) -> bytes:
    """SkToPk: the 48-byte compressed public key sk·G1."""
    return BLS12_381_G1.serialize_element(BLS12_381_G1.base_mul(_check_secret(sk)))


def parse_public_key(pk: bytes) -> BlstP1Element:
    """KeyValidate: a canonical compressed G1 point in the subgroup, not the identity."""
    return BLS12_381_G1.deserialize_element(pk)


def parse_signature(signature: bytes) -> BlstP2Element:
    """signature_to_point plus subgroup check (CoreVerify step 2). The identity is refused: no
    honest key (sk != 0) produces it."""
    return BLS12_381_G2.deserialize_element(signature)


def core_verify_points(pk: BlstP1Element, hashed: BlstP2Element, sig: BlstP2Element) -> bool:
    """e(PK, H(m)) == e(G1, σ) with one shared final exponentiation."""
    return bool(final_verify(miller_loop(pk, hashed), miller_loop(BLS12_381_G1.generator(), sig)))


def sign(sk: int, message: bytes) -> bytes:
    """Sign (CoreSign with the POP ciphersuite's signature DST)."""
    return BLS12_381_G2.serialize_element(hash_to_g2(message).scalar_mul(_check_secret(sk)))


def verify(pk: bytes, message: bytes, signature: bytes, *, dst: bytes = SIG_DST) -> None:
    """Verify (CoreVerify); raises InvalidSignature, or InvalidElement for malformed encodings."""
    if not core_verify_points(
        parse_public_key(pk), hash_to_g2(message, dst), parse_signature(signature)
    ):
        raise InvalidSignature("BLS signature does not verify")


def pop_prove(sk: int) -> bytes:
    """PopProve: a signature over the 48-byte public key under the POP DST."""
    pk = sk_to_pk(sk)
    return BLS12_381_G2.serialize_element(hash_to_g2(pk, POP_DST).scalar_mul(sk))


def pop_verify(pk: bytes, proof: bytes) -> None:
    """PopVerify; raises InvalidSignature."""
    verify(pk, pk, proof, dst=POP_DST)
