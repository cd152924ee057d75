"""Threshold ECDSA online signing: one round, each party sends s_i; the combiner checks, interpolates.

With a presignature (R = k^-1·G; party i holds k_i, c_i) and the key share x_i (degree t-1):

    ρ   = H(session, R, Y', δ, m)  (public re-randomiser)      R' = ρ·R,  r = x(R') mod n
    s_i = ρ^-1·k_i·(m + r·(x_i + δ)) + c_i                     (a point of a degree 2t-2 polynomial)
    s   = Σ λ_i·s_i over >= 2t-1 parties  =  (ρ·k^-1)^-1·(m + r·x')  -- ECDSA with nonce ρ·k^-1

where δ is an additive key tweak (BIP32 non-hardened derivation; 0 for the root key), x' = x + δ,
Y' = Y + δ·G. The mask c (a sharing of zero) makes the revealed s-polynomial uniform given s.

Share check (names the culprit): s_i·Γ == ρ^-1·(m·U_i + r·(V_i + δ·U_i)) + Z_i, with U_i = k_i·Γ,
V_i = x_i·U_i, Z_i = c_i·Γ proven correct during presigning.

Re-randomisation: Groth and Shoup ("On the security of ECDSA with additive key derivation and
presignatures", Eurocrypt 2022) show that presignatures combined with additive key derivation lose
tightness unless the presignature is publicly re-randomised at signing time with a hash of the
message and tweak. They re-randomise additively (R + δ·G); because our shares are of the inverse
nonce, we re-randomise multiplicatively (ρ·R, shares k_i/ρ), which keeps signing linear. This is a
deliberate deviation whose security argument we have not re-derived (a known gap, listed in
the package docstring).

Threshold nonces are random (not RFC 6979): RFC 6979 determinism needs the whole key in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coincurve import PublicKey

from tholos.crypto import _wire
from tholos.crypto.ecdsa.presign import (
    SCHEME,
    SESSION_LENGTH,
    Presignature,
    PresignaturePublic,
    key_fingerprint,
    min_participants,
)
from tholos.crypto.ecdsa.signature import EcdsaSignature, _digest, finish_signature
from tholos.crypto.errors import (
    InvalidInput,
    InvalidParticipants,
    InvalidSignature,
    InvalidSignatureShare,
    ProtocolAbort,
    StateError,
)
from tholos.crypto.groups.secp256k1 import SECP256K1, N
from tholos.crypto.hazmat.shamir import interpolate
from tholos.crypto.keys import KeyShare

G = SECP256K1


@dataclass(frozen=True)
class SignatureShare:
    """s_i from party `identifier` for presignature `session`. Public once sent."""

    session: bytes
    identifier: int
    s: int

    KIND = "ecdsa_signature_share"

    def to_dict(self) -> dict[str, Any]:
        return {
            **_wire.header(SCHEME, self.KIND),
            "session": self.session.hex(),
            "identifier": self.identifier,
            "s": G.serialize_scalar(self.s).hex(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> SignatureShare:
        with _wire.parse_guard(cls.KIND):
            _wire.check_message(d, SCHEME, cls.KIND, ["session", "identifier", "s"])
            return cls(
                session=_wire.get_bytes(d, "session", SESSION_LENGTH),
                identifier=_wire.get_int(d, "identifier", minimum=1),
                s=_wire.get_scalar(G, d, "s"),
            )


@dataclass(frozen=True)
class _Online:
    m: int
    r: int
    rho_inv: int
    tweak: int
    big_r: PublicKey
    public_key: PublicKey


def _online(pre: PresignaturePublic, msg_hash: bytes, tweak: int) -> _Online:
    digest = _digest(msg_hash)
    if not isinstance(tweak, int) or isinstance(tweak, bool) or not 0 <= tweak < N:
        raise InvalidInput("tweak must be an int in 0..n-1")
    y = G.add(pre.group_public_key, G.base_mul(tweak))
    if y is None:
        raise InvalidInput("the tweaked key is the identity")
    h = hashlib.sha512(b"tholos/ecdsa/rerandomize")
    for part in (
        pre.session,
        G.serialize_element(pre.big_r),
        G.serialize_element(y),
        tweak.to_bytes(32, "big"),
        digest,
    ):
        h.update(len(part).to_bytes(4, "big") + part)
    rho = int.from_bytes(h.digest(), "big") % N
    big_r = G.mul(pre.big_r, rho)
    if big_r is None:  # rho = 0, probability 2^-256
        raise ProtocolAbort("re-randomiser is zero; use another presignature", [])
    r = int.from_bytes(big_r.format(compressed=True)[1:], "big") % N
    if r == 0:  # pragma: no cover - probability 2^-256
        raise ProtocolAbort("r = 0; use another presignature", [])
    return _Online(int.from_bytes(digest, "big") % N, r, pow(rho, -1, N), tweak, big_r, y)


def sign_share(
    presignature: Presignature, key_share: KeyShare[Any], msg_hash: bytes, *, tweak: int = 0
) -> SignatureShare:
    """Node side, one round: consume the presignature and return s_i.

    `key_share` is the untweaked share the presignature was made for; `tweak` is the additive
    derivation tweak (BIP32 non-hardened path). Raises NonceReuse if the presignature was used."""
    pre = presignature.public
    if key_share.identifier != presignature.identifier:
        raise InvalidInput("key share and presignature belong to different participants")
    if key_fingerprint(key_share.public) != pre.key_fingerprint:
        raise StateError("presignature was made for another key package (refreshed or other key)")
    o = _online(pre, msg_hash, tweak)  # validates before anything is consumed
    k, c = presignature.consume()
    x = (key_share.secret_share.expose() + o.tweak) % N
    s = (o.rho_inv * k % N * ((o.m + o.r * x) % N) + c) % N
    return SignatureShare(pre.session, presignature.identifier, s)


def _share_ok(pre: PresignaturePublic, o: _Online, sh: SignatureShare) -> bool:
    i = sh.identifier
    u = pre.u[i]
    lhs = G.mul(pre.gamma, sh.s)
    inner = G.multi_mul([(u, (o.m + o.r * o.tweak) % N), (pre.v[i], o.r)])
    rhs = G.add(G.mul(inner, o.rho_inv), pre.z[i])
    return G.eq(lhs, rhs)


def verify_signature_share(
    pre: PresignaturePublic, msg_hash: bytes, share: SignatureShare, *, tweak: int = 0
) -> None:
    """Check one s_i; raises InvalidSignatureShare naming its sender."""
    _index(pre, [share])
    if not _share_ok(pre, _online(pre, msg_hash, tweak), share):
        raise InvalidSignatureShare("ECDSA signature share does not verify", [share.identifier])


def _index(pre: PresignaturePublic, shares: Sequence[SignatureShare]) -> dict[int, SignatureShare]:
    out = _wire.index_by_identifier(shares, SignatureShare, pre.participants, "signature shares")
    for i, sh in out.items():
        if sh.session != pre.session:
            raise InvalidInput(f"share of participant {i} is for another presignature")
    return out


@dataclass(frozen=True)
class CombineResult:
    signature: EcdsaSignature
    excluded: tuple[int, ...]
    """Participants whose shares were invalid and left out."""


def combine_robust(
    pre: PresignaturePublic,
    msg_hash: bytes,
    shares: Sequence[SignatureShare],
    *,
    tweak: int = 0,
) -> CombineResult:
    """Check every share, leave out invalid ones, interpolate s from the valid ones (>= 2t-1),
    normalise to low-S with the recovery id, and verify the result with libsecp256k1.

    Raises InvalidParticipants with fewer than 2t-1 shares, InvalidSignatureShare (all culprits)
    if fewer than 2t-1 valid shares remain."""
    by = _index(pre, shares)
    need = min_participants(pre.threshold)
    if len(by) < need:
        raise InvalidParticipants(f"need {need} signature shares (2t-1), got {len(by)}")
    o = _online(pre, msg_hash, tweak)
    bad = tuple(i for i in sorted(by) if not _share_ok(pre, o, by[i]))
    good = {i: by[i].s for i in sorted(by) if i not in bad}
    if len(good) < need:
        raise InvalidSignatureShare(f"only {len(good)} valid ECDSA shares, need {need}", bad)
    s = interpolate(good, N)
    if s == 0:  # pragma: no cover - probability 2^-256
        raise ProtocolAbort("s = 0; use another presignature", [])
    try:
        sig = finish_signature(o.big_r, s, o.public_key, msg_hash)
    except InvalidSignature:  # pragma: no cover - every share was checked
        raise ProtocolAbort("checked shares did not give a valid signature", []) from None
    return CombineResult(sig, bad)


def combine(
    pre: PresignaturePublic,
    msg_hash: bytes,
    shares: Sequence[SignatureShare],
    *,
    tweak: int = 0,
) -> EcdsaSignature:
    """Combine; raises InvalidSignatureShare naming every node whose s_i is wrong (the gateway
    drops them and combines again, if 2t-1 valid shares remain, or signs with another presig)."""
    result = combine_robust(pre, msg_hash, shares, tweak=tweak)
    if result.excluded:
        raise InvalidSignatureShare("invalid ECDSA signature shares", result.excluded)
    return result.signature
