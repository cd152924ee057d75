"""DiSE threshold symmetric encryption: a DDH-based DPRF with Chaum–Pedersen proofs, and AEAD.

Reference: Agrawal, Mohassel, Mukherjee, Rindal, "DiSE: Distributed Symmetric-key Encryption",
ACM CCS 2018 (ePrint 2018/727): the generic threshold authenticated encryption from a DPRF, in its
instantiation with the Naor–Pinkas–Reingold DDH DPRF f_k(x) = H(x)^k plus NIZK proofs of correct
evaluation ("strong" correctness: a wrong partial is detected and attributed).

Construction, as we follow it (names from the paper):
  encrypt (party/client j, message m):
      ρ <- {0,1}^256;  α = Com(m; ρ) = SHA-256("tholos/dise/commit" || ρ || m)
      ask t nodes for f_{k_i}(j || α)                   (DPRF input = encryptor id || commitment)
      w = Σ λ_i·y_i = k·H(j || α)                         (after checking each proof)
      e = Enc_w(ρ || m)                                 (paper: PRG(w) XOR (m || ρ))
      ciphertext = (j, α, e)
  decrypt: ask t nodes for f_{k_i}(j || α) again, recompute w, open e, and accept only if
      α == Com(m; ρ).
Deliberate deviation: instead of XOR with PRG(w) we derive an AES-256-GCM key and nonce from w with
HKDF-SHA256 and encrypt under AES-256-GCM with the ciphertext header as associated data. Each (j, α)
gives a fresh key, so the fixed derivation of the nonce is safe; GCM adds integrity of the header
and body on top of the paper's commitment check (any flipped bit is refused).

Partial evaluation (node i, share k_i, verifying share Y_i = k_i·G): y_i = k_i·H(x) with a
Chaum–Pedersen proof (Crypto 1992) that log_G Y_i = log_H(x) y_i, Fiat–Shamir with SHA-512
(`hazmat.sigma`). A bad partial names its node (InvalidProof). Combination: Lagrange in the
exponent over any t valid partials. Deterministic partials make decryption possible any time later,
and a proactive refresh (a zero sharing added to the shares) does not change k, hence not w.

Group and hash to group: the prime-order subgroup of edwards25519 via libsodium.
H(x) = from_uniform(h0) + from_uniform(h1) with (h0, h1) = SHA-512("tholos/dise/h2g" || x), where
`crypto_core_ed25519_from_uniform` is Elligator 2 followed by cofactor clearing (its output is in
the prime-order subgroup). This is NOT the RFC 9380 edwards25519 suite (different
expand and field-element derivation); summing two independent Elligator 2 images is the standard
way (RFC 9380 section 2.2.3, "random oracle encodings") to get a map indistinguishable from a
random oracle into the group, which is what the DPRF's DDH security argument needs.

Policy the node layer must enforce (the paper's authenticity argument depends on it): for an
*encryption* request, the encryptor id must be the authenticated requester; nodes log every
evaluation (authenticity is "no more ciphertexts than evaluations").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl.bindings import crypto_core_ed25519_from_uniform

from tholos.crypto import _wire
from tholos.crypto.errors import (
    CryptoError,
    InvalidInput,
    InvalidParticipants,
    InvalidProof,
)
from tholos.crypto.groups.ed25519 import ED25519
from tholos.crypto.hazmat import sigma
from tholos.crypto.hazmat.shamir import interpolate_elements, lagrange_coefficients
from tholos.crypto.keys import KeyShare, PublicKeyPackage

SCHEME = "dise-ed25519-aes256gcm-v1"
FORMAT_VERSION = 1
_MAGIC = b"THDS"
_SCHEME_ID = 1  # one byte in the ciphertext header; 1 = SCHEME above
KEY_ID_LENGTH = 32
COMMITMENT_LENGTH = 32
RHO_LENGTH = 32
MAX_ENCRYPTOR_LENGTH = 255
_PROOF_TAG = b"tholos/dise/dleq"
G = ED25519
Purpose = Literal["encrypt", "decrypt"]


class InvalidCiphertext(InvalidInput):
    """A ciphertext that is malformed, for another key, tampered with, or whose commitment does
    not open. Nothing is returned."""


def _lp(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def hash_to_group(data: bytes) -> bytes:
    """H: bytes -> prime-order subgroup of edwards25519 (see module docstring).

    Not re-validated: libsodium's from_uniform clears the cofactor, so both images and their sum
    are in the prime-order subgroup (tests check it); only the identity (probability ~2^-252) is
    refused."""
    h = hashlib.sha512(_lp(b"tholos/dise/h2g/v1", data)).digest()
    p = G.add(crypto_core_ed25519_from_uniform(h[:32]), crypto_core_ed25519_from_uniform(h[32:]))
    return G.serialize_element(p)  # raises on the identity


# Encodings already checked by G.deserialize_element (a pure function of the bytes): a partial
# parsed by PartialEval.from_dict is not checked a second time when it is combined or verified.
_CHECKED_POINTS: dict[bytes, None] = {}


def _checked_point(data: bytes) -> bytes:
    if type(data) is bytes and data in _CHECKED_POINTS:
        return data
    out = G.deserialize_element(data)
    if len(_CHECKED_POINTS) >= 4096:
        _CHECKED_POINTS.clear()
    _CHECKED_POINTS[out] = None
    return out


def key_id(public: PublicKeyPackage[Any]) -> bytes:
    """32-byte key identifier: a hash of the group key (unchanged by refresh and reshare)."""
    return hashlib.sha256(
        _lp(b"tholos/dise/key-id", public.group.name.encode(), _group_key(public))
    ).digest()


def check_consistent(public: PublicKeyPackage[Any]) -> None:
    """Refuse (InvalidInput) a package whose verifying shares are not one degree t-1 sharing of
    the group key. Proofs are checked against the verifying shares: with a consistent package
    bound to a pinned group key, whoever chose the package knows at most t-1 of their discrete
    logarithms, so partials it forged cannot combine into a key it knows."""
    public = _check_package(public)
    ids = sorted(public.verifying_shares)
    t = public.threshold
    if len(ids) < t:
        raise InvalidInput("fewer verifying shares than the threshold")
    base = {i: public.verifying_shares[i] for i in ids[:t]}
    want = [(0, public.group_public_key)] + [(i, public.verifying_shares[i]) for i in ids[t:]]
    try:
        ok = all(G.eq(interpolate_elements(G, base, x), y) for x, y in want)
    except CryptoError:  # an interpolated identity
        ok = False
    if not ok:
        raise InvalidInput("verifying shares are inconsistent with the group key")


def _check_package(public: PublicKeyPackage[Any]) -> PublicKeyPackage[bytes]:
    if public.group is not ED25519:
        raise InvalidInput(f"DiSE keys are over {ED25519.name}, not {public.group.name}")
    return public


def _group_key(public: PublicKeyPackage[Any]) -> bytes:
    return G.serialize_element(_check_package(public).group_public_key)


def _check_encryptor(encryptor: str) -> bytes:
    if not isinstance(encryptor, str):
        raise InvalidInput("encryptor id must be a string")
    raw = encryptor.encode()
    if not 0 < len(raw) <= MAX_ENCRYPTOR_LENGTH:
        raise InvalidInput(f"encryptor id must be 1..{MAX_ENCRYPTOR_LENGTH} UTF-8 bytes")
    return raw


def commit(message: bytes, rho: bytes) -> bytes:
    """α = Com(m; ρ) = SHA-256("tholos/dise/commit" || ρ || m) (hiding in the ROM, binding by
    collision resistance; ρ has fixed length so the split is unambiguous)."""
    h = hashlib.sha256(b"tholos/dise/commit")
    h.update(rho)
    h.update(message)
    return h.digest()


# -- evaluation messages --------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalRequest:
    """What the gateway asks each node to evaluate: f_k(encryptor || α) for key `key_id`."""

    key_id: bytes
    encryptor: str
    alpha: bytes
    purpose: Purpose

    KIND = "dise_eval_request"

    def __post_init__(self) -> None:
        _check_encryptor(self.encryptor)
        for v, n in ((self.key_id, KEY_ID_LENGTH), (self.alpha, COMMITMENT_LENGTH)):
            if not isinstance(v, bytes) or len(v) != n:
                raise InvalidInput("key id and commitment must be 32 bytes")
        if self.purpose not in ("encrypt", "decrypt"):
            raise InvalidInput("purpose must be 'encrypt' or 'decrypt'")

    def prf_input(self) -> bytes:
        """x = (key id, encryptor id, α), length-prefixed."""
        return _lp(b"tholos/dise/prf-input/v1", self.key_id, self.encryptor.encode(), self.alpha)

    def to_dict(self) -> dict[str, Any]:
        return {
            **_wire.header(SCHEME, self.KIND),
            "key_id": self.key_id.hex(),
            "encryptor": self.encryptor,
            "alpha": self.alpha.hex(),
            "purpose": self.purpose,
        }

    @classmethod
    def from_dict(cls, d: Any) -> EvalRequest:
        with _wire.parse_guard(cls.KIND):
            _wire.check_message(d, SCHEME, cls.KIND, ["key_id", "encryptor", "alpha", "purpose"])
            purpose = _wire.get_str(d, "purpose")
            if purpose not in ("encrypt", "decrypt"):
                raise InvalidInput("purpose must be 'encrypt' or 'decrypt'")
            return cls(
                key_id=_wire.get_bytes(d, "key_id", KEY_ID_LENGTH),
                encryptor=_wire.get_str(d, "encryptor"),
                alpha=_wire.get_bytes(d, "alpha", COMMITMENT_LENGTH),
                purpose="encrypt" if purpose == "encrypt" else "decrypt",
            )


@dataclass(frozen=True)
class PartialEval:
    """y_i = k_i·H(x) from node `identifier`, with its Chaum–Pedersen proof. Public."""

    identifier: int
    point: bytes
    proof: sigma.LinearProof

    KIND = "dise_partial_eval"

    def to_dict(self) -> dict[str, Any]:
        return {
            **_wire.header(SCHEME, self.KIND),
            "identifier": self.identifier,
            "point": self.point.hex(),
            "proof": self.proof.to_bytes(G).hex(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> PartialEval:
        with _wire.parse_guard(cls.KIND):
            _wire.check_message(d, SCHEME, cls.KIND, ["identifier", "point", "proof"])
            return cls(
                identifier=_wire.get_int(d, "identifier", minimum=1),
                point=_checked_point(_wire.get_bytes(d, "point", G.element_length)),
                proof=sigma.LinearProof.from_bytes(G, _wire.get_bytes(d, "proof"), 1),
            )


def _dleq(y_i: bytes, hx: bytes, partial: bytes) -> list[sigma.Equation[bytes]]:
    return [
        sigma.Equation(((0, G.generator()),), y_i),
        sigma.Equation(((0, hx),), partial),
    ]


def _proof_context(request: EvalRequest, identifier: int) -> bytes:
    return _lp(request.prf_input(), str(identifier).encode())


def evaluate(key_share: KeyShare[Any], request: EvalRequest) -> PartialEval:
    """Node side: y_i = k_i·H(x) with a DLEQ proof. The node must first apply its policy (for
    purpose "encrypt": request.encryptor is the authenticated requester) and log the request."""
    public = _check_package(key_share.public)
    if request.key_id != key_id(public):
        raise InvalidInput("request is for another key")
    hx = hash_to_group(request.prf_input())
    k = key_share.secret_share.expose()
    y = G.mul(hx, k)
    proof = sigma.prove(
        G,
        _PROOF_TAG,
        _proof_context(request, key_share.identifier),
        [k],
        _dleq(public.verifying_shares[key_share.identifier], hx, y),
    )
    return PartialEval(key_share.identifier, y, proof)


def _index(
    public: PublicKeyPackage[bytes], partials: Sequence[PartialEval]
) -> dict[int, PartialEval]:
    return _wire.index_by_identifier(partials, PartialEval, public.verifying_shares, "partials")


def _valid(
    public: PublicKeyPackage[bytes], request: EvalRequest, hx: bytes, p: PartialEval
) -> bool:
    # A PartialEval built by the caller (not by from_dict) may hold any bytes: a point with a
    # small-order component makes libsodium raise a non-CryptoError, losing the attribution.
    try:
        _checked_point(p.point)
    except InvalidInput:
        return False
    return sigma.verify(
        G,
        _PROOF_TAG,
        _proof_context(request, p.identifier),
        _dleq(public.verifying_shares[p.identifier], hx, p.point),
        p.proof,
    )


def verify_partial(
    public: PublicKeyPackage[Any], request: EvalRequest, partial: PartialEval
) -> None:
    """Check one partial's proof; raises InvalidProof naming the node."""
    public = _check_package(public)
    _index(public, [partial])
    if not _valid(public, request, hash_to_group(request.prf_input()), partial):
        raise InvalidProof("DiSE partial evaluation proof does not verify", [partial.identifier])


def _prepare(
    public: PublicKeyPackage[Any], request: EvalRequest, partials: Sequence[PartialEval]
) -> tuple[PublicKeyPackage[bytes], dict[int, PartialEval]]:
    public = _check_package(public)
    if request.key_id != key_id(public):
        raise InvalidInput("request is for another key")
    by = _index(public, partials)
    if len(by) < public.threshold:
        raise InvalidParticipants(f"need {public.threshold} partial evaluations, got {len(by)}")
    return public, by


def _interpolate(by: dict[int, PartialEval], use: Sequence[int]) -> bytes:
    """w = Σ λ_i·y_i over `use` (encoded); InvalidInput for a malformed point or w = identity."""
    lam = lagrange_coefficients(list(use), G.order)
    return G.serialize_element(G.multi_mul([(_checked_point(by[i].point), lam[i]) for i in use]))


def combine_evaluations(
    public: PublicKeyPackage[Any],
    request: EvalRequest,
    partials: Sequence[PartialEval],
    *,
    exclude_invalid: bool = False,
) -> tuple[bytes, tuple[int, ...]]:
    """w = k·H(x) from >= t partials: (encoded w, excluded culprits).

    Every partial's proof is checked. By default any invalid partial raises InvalidProof naming
    all culprits; with exclude_invalid=True they are left out if t valid partials remain."""
    public, by = _prepare(public, request, partials)
    hx = hash_to_group(request.prf_input())
    bad = tuple(i for i in sorted(by) if not _valid(public, request, hx, by[i]))
    good = [i for i in sorted(by) if i not in bad]
    if bad and (not exclude_invalid or len(good) < public.threshold):
        raise InvalidProof("invalid DiSE partial evaluations", bad)
    return _interpolate(by, good[: public.threshold]), bad


# -- ciphertexts ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ciphertext:
    """Self-describing ciphertext: header (magic, version, scheme id, key id, encryptor id, α) and
    the AES-256-GCM body (encrypts ρ || m, 16-byte tag, header as associated data)."""

    key_id: bytes
    encryptor: str
    alpha: bytes
    body: bytes

    def header(self) -> bytes:
        enc = _check_encryptor(self.encryptor)
        return (
            _MAGIC
            + bytes([FORMAT_VERSION, _SCHEME_ID])
            + self.key_id
            + bytes([len(enc)])
            + enc
            + self.alpha
        )

    def to_bytes(self) -> bytes:
        return self.header() + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> Ciphertext:
        if not isinstance(data, bytes | bytearray):
            raise InvalidCiphertext("ciphertext must be bytes")
        data = bytes(data)
        fixed = len(_MAGIC) + 2 + KEY_ID_LENGTH + 1
        if len(data) < fixed or data[:4] != _MAGIC:
            raise InvalidCiphertext("not a tholos DiSE ciphertext")
        if data[4] != FORMAT_VERSION or data[5] != _SCHEME_ID:
            raise InvalidCiphertext(f"unsupported ciphertext version {data[4]} / scheme {data[5]}")
        kid = data[6 : 6 + KEY_ID_LENGTH]
        n = data[fixed - 1]
        rest = data[fixed:]
        if n == 0 or len(rest) < n + COMMITMENT_LENGTH + RHO_LENGTH + 16:
            raise InvalidCiphertext("truncated ciphertext")
        try:
            encryptor = rest[:n].decode()
        except UnicodeDecodeError:
            raise InvalidCiphertext("encryptor id is not UTF-8") from None
        alpha = rest[n : n + COMMITMENT_LENGTH]
        return cls(kid, encryptor, alpha, rest[n + COMMITMENT_LENGTH :])

    def eval_request(self) -> EvalRequest:
        return EvalRequest(self.key_id, self.encryptor, self.alpha, "decrypt")

    def to_dict(self) -> dict[str, Any]:
        """Metadata view (for logs and APIs); the body is summarised, not included."""
        return {
            **_wire.header(SCHEME, "dise_ciphertext"),
            "key_id": self.key_id.hex(),
            "encryptor": self.encryptor,
            "alpha": self.alpha.hex(),
            "body_length": len(self.body),
        }


def _aead(w: bytes, header: bytes) -> tuple[AESGCM, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=b"tholos/dise/v1", info=header).derive(w)
    return AESGCM(okm[:32]), okm[32:]


class EncryptionContext:
    """The encryptor's state between asking for evaluations and finishing: m and ρ (secret)."""

    __slots__ = ("_message", "_rho", "request")

    def __init__(self, message: bytes, rho: bytes, request: EvalRequest) -> None:
        self._message: bytes | None = message
        self._rho = rho
        self.request = request

    def __repr__(self) -> str:
        return f"EncryptionContext(key_id={self.request.key_id.hex()[:16]}…, secrets=<redacted>)"

    def take(self) -> tuple[bytes, bytes]:
        if self._message is None:
            from tholos.crypto.errors import StateError

            raise StateError("encryption context already used")
        m, self._message = self._message, None
        return m, self._rho


def encrypt_begin(
    public: PublicKeyPackage[Any], encryptor: str, plaintext: bytes
) -> tuple[EncryptionContext, EvalRequest]:
    """Encryptor side, step 1: commit to the message; the request goes to t nodes."""
    if not isinstance(plaintext, bytes | bytearray):
        raise InvalidInput("plaintext must be bytes")
    _check_encryptor(encryptor)
    rho = secrets.token_bytes(RHO_LENGTH)
    m = bytes(plaintext)
    request = EvalRequest(key_id(public), encryptor, commit(m, rho), "encrypt")
    return EncryptionContext(m, rho, request), request


def encrypt_finish(
    public: PublicKeyPackage[Any],
    context: EncryptionContext,
    partials: Sequence[PartialEval],
    *,
    exclude_invalid: bool = False,
) -> bytes:
    """Encryptor side, step 2: combine the partials (checking each) and produce the ciphertext."""
    w, _ = combine_evaluations(public, context.request, partials, exclude_invalid=exclude_invalid)
    m, rho = context.take()
    r = context.request
    ct = Ciphertext(r.key_id, r.encryptor, r.alpha, b"")
    header = ct.header()
    aead, nonce = _aead(w, header)
    return header + aead.encrypt(nonce, rho + m, header)


def decrypt_begin(public: PublicKeyPackage[Any], ciphertext: bytes) -> EvalRequest:
    """Decryptor side, step 1: parse the header; the request goes to t nodes."""
    ct = Ciphertext.from_bytes(ciphertext)
    if ct.key_id != key_id(public):
        raise InvalidCiphertext("ciphertext is for another key")
    return ct.eval_request()


def _open(w: bytes, ct: Ciphertext) -> bytes:
    """Open the AEAD under w and check the commitment α = Com(m; ρ); InvalidCiphertext if not."""
    header = ct.header()
    aead, nonce = _aead(w, header)
    try:
        opened = aead.decrypt(nonce, ct.body, header)
    except InvalidTag:
        raise InvalidCiphertext("ciphertext authentication failed") from None
    rho, m = opened[:RHO_LENGTH], opened[RHO_LENGTH:]
    if not hmac.compare_digest(commit(m, rho), ct.alpha):
        raise InvalidCiphertext("commitment does not open")
    return m


def decrypt_finish(
    public: PublicKeyPackage[Any],
    ciphertext: bytes,
    partials: Sequence[PartialEval],
    *,
    exclude_invalid: bool = False,
) -> bytes:
    """Decryptor side, step 2: recompute w, open the AEAD, check the commitment α = Com(m; ρ).

    Optimistic: the first t partials are combined without checking their proofs, and only if
    the AEAD or the commitment check then fails are the proofs checked (naming culprits, as
    `combine_evaluations`). Safe because the plaintext returned is always the m with
    Com(m; ρ) = α fixed at encryption, whatever w opened it (a wrong partial can make decryption
    fail, never change its result), and nothing derived from w leaves this function. Encryption
    cannot be optimistic: a ciphertext made under a wrong w would be lost or readable by whoever
    chose the wrong partials."""
    request = decrypt_begin(public, ciphertext)
    ct = Ciphertext.from_bytes(ciphertext)
    public, by = _prepare(public, request, partials)
    try:
        return _open(_interpolate(by, sorted(by)[: public.threshold]), ct)
    except InvalidInput:  # a wrong or malformed partial, or a bad ciphertext: find out which
        pass
    w, _ = combine_evaluations(public, request, partials, exclude_invalid=exclude_invalid)
    return _open(w, ct)


# -- in-memory drivers ------------------------------------------------------------------------------
def encrypt(key_shares: Sequence[KeyShare[Any]], encryptor: str, plaintext: bytes) -> bytes:
    """Encrypt with the given shares (>= t) in one process."""
    if not key_shares:
        raise InvalidParticipants("no key shares")
    public = key_shares[0].public
    ctx, request = encrypt_begin(public, encryptor, plaintext)
    return encrypt_finish(public, ctx, [evaluate(ks, request) for ks in key_shares])


def decrypt(key_shares: Sequence[KeyShare[Any]], ciphertext: bytes) -> bytes:
    """Decrypt with the given shares (>= t) in one process."""
    if not key_shares:
        raise InvalidParticipants("no key shares")
    public = key_shares[0].public
    request = decrypt_begin(public, ciphertext)
    return decrypt_finish(public, ciphertext, [evaluate(ks, request) for ks in key_shares])


__all__ = [
    "SCHEME",
    "Ciphertext",
    "EncryptionContext",
    "EvalRequest",
    "InvalidCiphertext",
    "PartialEval",
    "check_consistent",
    "combine_evaluations",
    "commit",
    "decrypt",
    "decrypt_begin",
    "decrypt_finish",
    "encrypt",
    "encrypt_begin",
    "encrypt_finish",
    "evaluate",
    "hash_to_group",
    "key_id",
    "verify_partial",
]
