"""Threshold ECDSA presignatures (offline phase), honest-majority, over Shamir shares of the key.

Design (after Gennaro, Jarecki, Krawczyk, Rabin, "Robust threshold DSS signatures", Eurocrypt 1996 /
Inf. & Comp. 2001, section 4 "DSS-thresh-sig-2": joint random k and a, product ka opened through
degree-2t sharings masked by joint zero sharings, R = (ka)^-1·(a·G)). Our variable names follow
DESIGN.md: the blinder a is γ. With key threshold t (polynomials of degree t-1) products have degree
2t-2, so **2t-1 participants** are needed both here and online (honest majority, n >= 2t-1).

Presigning among a set S (|S| >= 2t-1) for one key with shares x_i, X_i = x_i·G:

Round 1, dealer j (`PresignDeal` broadcast + `PresignShares` to each i in S, encrypted by the node
layer): random polynomials
    k^j  (degree t-1)  Pedersen-committed  K^j_l = k_l·G + k'_l·H
    γ^j  (degree t-1)  Feldman-committed   Γ^j_l = γ_l·G
    b^j, c^j (degree 2t-2, b(0) = c(0) = 0, blinding b'(0) = c'(0) = 0) Pedersen-committed, the
         constant term (the identity) omitted from the commitment, so "is a sharing of zero" is
         enforced by the commitment's shape.
  Each i checks its shares against every dealer's commitments; a bad dealer is named (InvalidShare).
  Sums: k_i = Σ_j k^j(i) etc.; Γ = Σ_j Γ^j_0 = γ·G.

Round 2, party i (`PresignOpen` broadcast): μ_i = k_i·γ_i + b_i (a point of the degree 2t-2
  polynomial kγ + b), U_i = k_i·Γ, V_i = x_i·U_i, Z_i = c_i·Γ, and one Fiat–Shamir proof of
  knowledge of (k_i, k'_i, b_i, b'_i, c_i, c'_i, x_i) with
      k_i·G + k'_i·H = K(i)    b_i·G + b'_i·H = B(i)    k_i·Γ_i + b_i·G = μ_i·G    k_i·Γ = U_i
      x_i·U_i = V_i            x_i·G = X_i              c_i·G + c'_i·H = C(i)      c_i·Γ = Z_i
  where K(i), B(i), C(i), Γ_i = γ_i·G are the aggregate commitments evaluated at i. A party whose
  proof fails is named (InvalidProof).

Finish (every party and the combiner, from public data): μ = kγ by interpolation, R = μ^-1·Γ =
  k^-1·G. The ECDSA nonce is k^-1, so s = k·(m + r·x). Each party keeps (k_i, c_i).

Why Pedersen for k, b and c: Feldman commitments would publish k·G = (nonce)^-1·G and (with b) the
product polynomial in the exponent; GJKR use unconditionally hiding commitments for the same reason
(their simulator cannot produce g^k). Values published in base Γ (U_i, Z_i) interpolate to k·Γ =
μ·G and 0, which are public anyway (the idea of Canetti et al., "UC non-interactive, proactive,
threshold ECDSA with identifiable aborts", CCS 2020, which checks shares in base Γ / R).

H is a nothing-up-my-sleeve generator: the first x = SHA-256("tholos/ecdsa/pedersen-H" || ctr) on
the curve, with even y. Nobody knows log_G H.

Known gaps (documented, not hidden): Feldman commitments to γ let a rushing adversary that aborts
selectively bias Γ (it cannot learn k or the key); presigning aborts on the first culprit and the
gateway restarts without it (no in-protocol exclusion); no commit-then-reveal round.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from coincurve import PublicKey

from tholos.crypto import _wire
from tholos.crypto.errors import (
    InvalidInput,
    InvalidParticipants,
    InvalidProof,
    InvalidShare,
    NonceReuse,
    ProtocolAbort,
    StateError,
)
from tholos.crypto.groups.secp256k1 import SECP256K1, N
from tholos.crypto.hazmat import sigma
from tholos.crypto.hazmat.shamir import (
    check_identifiers,
    evaluate,
    evaluate_commitment,
    interpolate,
    random_polynomial,
)
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

SCHEME = "ecdsa-secp256k1-hm-v1"
G = SECP256K1
Point = PublicKey | None


def _pedersen_h() -> PublicKey:
    ctr = 0
    while True:
        x = hashlib.sha256(b"tholos/ecdsa/pedersen-H" + ctr.to_bytes(4, "big")).digest()
        try:
            return PublicKey(b"\x02" + x)
        except ValueError:
            ctr += 1


H = _pedersen_h()
SESSION_LENGTH = 32
_PROOF_TAG = b"tholos/ecdsa/presign-open"
_N_WITNESSES = 7  # k, k', b, b', c, c', x


def min_participants(threshold: int) -> int:
    """Participants needed to presign and to sign: 2t-1 (products of degree-(t-1) sharings)."""
    return 2 * threshold - 1


_FINGERPRINTS: dict[int, tuple[PublicKeyPackage[Any], bytes]] = {}


def key_fingerprint(public: PublicKeyPackage[Any]) -> bytes:
    """Binds a presignature to one key package (group key and every verifying share): a refresh or
    reshare changes the shares, and presignatures made before it are useless. Memoised per package
    object (packages are immutable; the entry holds the object, so its id is not reused)."""
    hit = _FINGERPRINTS.get(id(public))
    if hit is not None and hit[0] is public:
        return hit[1]
    fp = _key_fingerprint(public)
    if len(_FINGERPRINTS) >= 4096:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[id(public)] = (public, fp)
    return fp


def _key_fingerprint(public: PublicKeyPackage[Any]) -> bytes:
    d = public.to_dict()
    h = hashlib.sha256(b"tholos/ecdsa/key-fingerprint")
    h.update(d["group_public_key"].encode())
    for i, y in d["verifying_shares"].items():
        h.update(f"|{i}:{y}".encode())
    h.update(f"|t={public.threshold}".encode())
    return h.digest()


def _check_key(public: PublicKeyPackage[Any]) -> PublicKeyPackage[Point]:
    if public.group is not SECP256K1:
        raise InvalidInput(f"threshold ECDSA needs a secp256k1 key, not {public.group.name}")
    return public


def _check_set(public: PublicKeyPackage[Any], participants: Sequence[int]) -> tuple[int, ...]:
    return tuple(public.check_members(participants, minimum=min_participants(public.threshold)))


def _context(session: bytes, fingerprint: bytes, participants: Sequence[int], who: int) -> bytes:
    return b"|".join(
        [session, fingerprint, ",".join(map(str, participants)).encode(), str(who).encode()]
    )


def _zero_eval(commitment: Sequence[Point], x: int) -> Point:
    """Σ_{l>=1} E_l·x^l: a zero sharing's commitment (constant term omitted) evaluated at x."""
    return evaluate_commitment(G, [None, *commitment], x)


def _enc_list(points: Sequence[Point]) -> list[str]:
    return [G.serialize_element(p).hex() for p in points]


# -- messages -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PresignDeal:
    """Round 1 broadcast of dealer `dealer`: commitments to its four polynomials."""

    session: bytes
    dealer: int
    gamma_commitment: tuple[Point, ...]
    k_commitment: tuple[Point, ...]
    b_commitment: tuple[Point, ...]
    c_commitment: tuple[Point, ...]

    KIND = "ecdsa_presign_deal"

    def to_dict(self) -> dict[str, Any]:
        return {
            **_wire.header(SCHEME, self.KIND),
            "session": self.session.hex(),
            "dealer": self.dealer,
            "gamma_commitment": _enc_list(self.gamma_commitment),
            "k_commitment": _enc_list(self.k_commitment),
            "b_commitment": _enc_list(self.b_commitment),
            "c_commitment": _enc_list(self.c_commitment),
        }

    @classmethod
    def from_dict(cls, d: Any, threshold: int) -> PresignDeal:
        """Parse for a key of the given threshold (which fixes the commitment lengths)."""
        fields = ["session", "dealer", "gamma_commitment", "k_commitment", "b_commitment"]
        with _wire.parse_guard(cls.KIND):
            _wire.check_message(d, SCHEME, cls.KIND, [*fields, "c_commitment"])
            t = threshold
            return cls(
                session=_wire.get_bytes(d, "session", SESSION_LENGTH),
                dealer=_wire.get_int(d, "dealer", minimum=1),
                gamma_commitment=tuple(_wire.get_element_list(G, d, "gamma_commitment", t)),
                k_commitment=tuple(_wire.get_element_list(G, d, "k_commitment", t)),
                b_commitment=tuple(_wire.get_element_list(G, d, "b_commitment", 2 * t - 2)),
                c_commitment=tuple(_wire.get_element_list(G, d, "c_commitment", 2 * t - 2)),
            )


_SHARE_NAMES = ("k", "k_blind", "gamma", "b", "b_blind", "c", "c_blind")


@dataclass(frozen=True, repr=False)
class PresignShares:
    """Round 1 private message dealer -> recipient: seven secret scalars. The node layer encrypts
    it end to end; never log it."""

    session: bytes
    dealer: int
    recipient: int
    values: tuple[int, ...] = field(compare=False)

    KIND = "ecdsa_presign_shares"

    def __repr__(self) -> str:
        return f"PresignShares(dealer={self.dealer}, recipient={self.recipient}, values=<redacted>)"

    def to_dict(self) -> dict[str, Any]:
        return {
            **_wire.header(SCHEME, self.KIND),
            "session": self.session.hex(),
            "dealer": self.dealer,
            "recipient": self.recipient,
            **{
                name: G.serialize_scalar(v).hex()
                for name, v in zip(_SHARE_NAMES, self.values, strict=True)
            },
        }

    @classmethod
    def from_dict(cls, d: Any) -> PresignShares:
        with _wire.parse_guard(cls.KIND):
            _wire.check_message(
                d, SCHEME, cls.KIND, ["session", "dealer", "recipient", *_SHARE_NAMES]
            )
            return cls(
                session=_wire.get_bytes(d, "session", SESSION_LENGTH),
                dealer=_wire.get_int(d, "dealer", minimum=1),
                recipient=_wire.get_int(d, "recipient", minimum=1),
                values=tuple(_wire.get_scalar(G, d, name) for name in _SHARE_NAMES),
            )


@dataclass(frozen=True)
class PresignOpen:
    """Round 2 broadcast of party `identifier`: μ_i, U_i, V_i, Z_i and the proof."""

    session: bytes
    identifier: int
    mu: int
    u: Point
    v: Point
    z: Point
    proof: sigma.LinearProof

    KIND = "ecdsa_presign_open"

    def to_dict(self) -> dict[str, Any]:
        return {
            **_wire.header(SCHEME, self.KIND),
            "session": self.session.hex(),
            "identifier": self.identifier,
            "mu": G.serialize_scalar(self.mu).hex(),
            "u": G.serialize_element(self.u).hex(),
            "v": G.serialize_element(self.v).hex(),
            # z = c_i·Γ is the identity when t = 1 (c is then the zero polynomial).
            "z": _wire.encode_element_or_identity(G, self.z),
            "proof": self.proof.to_bytes(G).hex(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> PresignOpen:
        with _wire.parse_guard(cls.KIND):
            _wire.check_message(
                d, SCHEME, cls.KIND, ["session", "identifier", "mu", "u", "v", "z", "proof"]
            )
            return cls(
                session=_wire.get_bytes(d, "session", SESSION_LENGTH),
                identifier=_wire.get_int(d, "identifier", minimum=1),
                mu=_wire.get_scalar(G, d, "mu"),
                u=_wire.get_element(G, d, "u"),
                v=_wire.get_element(G, d, "v"),
                z=_wire.get_element_or_identity(G, d, "z"),
                proof=sigma.LinearProof.from_bytes(G, _wire.get_bytes(d, "proof"), _N_WITNESSES),
            )


# -- public outcome -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PresignaturePublic:
    """Public part of a presignature: R = k^-1·G, Γ, and per party (U_i, V_i, Z_i) with which the
    combiner checks each signature share. Built from the verified transcript
    (`verify_transcript`); the gateway stores it, nodes hold the same data inside `Presignature`."""

    session: bytes
    key_fingerprint: bytes
    group_public_key: PublicKey
    threshold: int
    participants: tuple[int, ...]
    big_r: PublicKey
    gamma: PublicKey
    u: Mapping[int, PublicKey]
    v: Mapping[int, PublicKey]
    z: Mapping[int, Point]
    """Z_i = c_i·Γ (the identity for every i when t = 1)."""

    KIND = "ecdsa_presignature_public"

    def to_dict(self) -> dict[str, Any]:
        def pts(m: Mapping[int, Point]) -> dict[str, str]:
            return {str(i): _wire.encode_element_or_identity(G, m[i]) for i in self.participants}

        return {
            **_wire.header(SCHEME, self.KIND),
            "session": self.session.hex(),
            "key_fingerprint": self.key_fingerprint.hex(),
            "group_public_key": G.serialize_element(self.group_public_key).hex(),
            "threshold": self.threshold,
            "participants": list(self.participants),
            "big_r": G.serialize_element(self.big_r).hex(),
            "gamma": G.serialize_element(self.gamma).hex(),
            "u": pts(self.u),
            "v": pts(self.v),
            "z": pts(self.z),
        }

    @classmethod
    def from_dict(cls, d: Any) -> PresignaturePublic:
        fields = ["session", "key_fingerprint", "group_public_key", "threshold", "participants"]
        with _wire.parse_guard(cls.KIND):
            _wire.check_message(d, SCHEME, cls.KIND, [*fields, "big_r", "gamma", "u", "v", "z"])
            t = _wire.get_int(d, "threshold", minimum=1)
            ids = d["participants"]
            if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids
            ):
                raise InvalidInput("participants must be a list of ints")
            parts = tuple(sorted(ids))
            check_identifiers(parts, N, minimum=min_participants(t))

            def pts(key: str) -> dict[int, Point]:
                m = _wire.get_id_map(d, key)
                if sorted(int(i) for i in m) != list(parts):
                    raise InvalidInput(f"{key} must have one entry per participant")
                out: dict[int, Point] = {}
                for i in parts:
                    p = _wire.get_element_or_identity(G, {key: m[str(i)]}, key)
                    if p is None and (key != "z" or t != 1):
                        raise InvalidInput(f"{key}: identity not allowed")
                    out[i] = p
                return out

            def nonzero(m: dict[int, Point]) -> dict[int, PublicKey]:
                return {i: p for i, p in m.items() if p is not None}

            def pt(key: str) -> PublicKey:
                p = _wire.get_element(G, d, key)
                assert p is not None
                return p

            return cls(
                session=_wire.get_bytes(d, "session", SESSION_LENGTH),
                key_fingerprint=_wire.get_bytes(d, "key_fingerprint", 32),
                group_public_key=pt("group_public_key"),
                threshold=t,
                participants=parts,
                big_r=pt("big_r"),
                gamma=pt("gamma"),
                u=nonzero(pts("u")),
                v=nonzero(pts("v")),
                z=pts("z"),
            )


@dataclass(frozen=True)
class _Aggregate:
    gamma: tuple[Point, ...]
    k: tuple[Point, ...]
    b: tuple[Point, ...]
    c: tuple[Point, ...]

    @property
    def big_gamma(self) -> Point:
        return self.gamma[0]


def _check_deals(
    public: PublicKeyPackage[Point],
    session: bytes,
    participants: Sequence[int],
    deals: Sequence[PresignDeal],
) -> dict[int, PresignDeal]:
    t = public.threshold
    by: dict[int, PresignDeal] = {}
    for d in deals:
        if not isinstance(d, PresignDeal):
            raise InvalidInput("deals must be PresignDeal objects")
        if d.dealer not in participants:
            raise InvalidParticipants(f"deal from non-participant {d.dealer}")
        if d.dealer in by:
            raise ProtocolAbort("two different deals from one dealer", [d.dealer])
        if d.session != session:
            raise ProtocolAbort("deal for another session", [d.dealer])
        shape = (
            len(d.gamma_commitment),
            len(d.k_commitment),
            len(d.b_commitment),
            len(d.c_commitment),
        )
        if shape != (t, t, 2 * t - 2, 2 * t - 2) or any(
            p is None
            for p in (*d.gamma_commitment, *d.k_commitment, *d.b_commitment, *d.c_commitment)
        ):
            raise ProtocolAbort("deal with malformed commitments", [d.dealer])
        by[d.dealer] = d
    missing = [i for i in participants if i not in by]
    if missing:
        raise ProtocolAbort("missing presign deals", missing)
    return by


def _aggregate(deals: Mapping[int, PresignDeal], threshold: int) -> _Aggregate:
    t = threshold
    ds = list(deals.values())

    def colsum(vecs: list[tuple[Point, ...]], length: int) -> tuple[Point, ...]:
        return tuple(G.sum(v[col] for v in vecs) for col in range(length))

    agg = _Aggregate(
        gamma=colsum([d.gamma_commitment for d in ds], t),
        k=colsum([d.k_commitment for d in ds], t),
        b=colsum([d.b_commitment for d in ds], 2 * t - 2),
        c=colsum([d.c_commitment for d in ds], 2 * t - 2),
    )
    if agg.big_gamma is None:  # probability 2^-256
        raise ProtocolAbort("Γ is the identity; run presigning again", [])
    return agg


@dataclass(frozen=True)
class _Evaluated:
    """The aggregate commitments evaluated at one participant i: Γ_i = γ_i·G, K(i), B(i), C(i)."""

    gamma: Point
    k: Point
    b: Point
    c: Point


def _evaluate_at(agg: _Aggregate, i: int) -> _Evaluated:
    return _Evaluated(
        gamma=evaluate_commitment(G, agg.gamma, i),
        k=evaluate_commitment(G, agg.k, i),
        b=_zero_eval(agg.b, i),
        c=_zero_eval(agg.c, i),
    )


def _at(deal: PresignDeal, i: int) -> _Evaluated:
    """One dealer's commitments evaluated at participant i."""
    return _Evaluated(
        gamma=evaluate_commitment(G, deal.gamma_commitment, i),
        k=evaluate_commitment(G, deal.k_commitment, i),
        b=_zero_eval(deal.b_commitment, i),
        c=_zero_eval(deal.c_commitment, i),
    )


def _shares_match(values: Sequence[int], expected: _Evaluated) -> bool:
    """The seven share values (see _SHARE_NAMES) open the commitments evaluated at the recipient."""
    k, kb, gm, b, bb, c, cb = values
    gen = G.generator()
    return (
        G.eq(G.base_mul(gm), expected.gamma)
        and G.eq(G.multi_mul([(gen, k), (H, kb)]), expected.k)
        and G.eq(G.multi_mul([(gen, b), (H, bb)]), expected.b)
        and G.eq(G.multi_mul([(gen, c), (H, cb)]), expected.c)
    )


def _open_equations(
    agg: _Aggregate, at_i: _Evaluated, x_i: Point, opened: PresignOpen
) -> list[sigma.Equation[Point]]:
    gen = G.generator()
    big_gamma = agg.big_gamma
    E = sigma.Equation
    # witness order: 0 k, 1 k', 2 b, 3 b', 4 c, 5 c', 6 x
    return [
        E(((0, gen), (1, H)), at_i.k),
        E(((2, gen), (3, H)), at_i.b),
        E(((0, at_i.gamma), (2, gen)), G.base_mul(opened.mu)),
        E(((0, big_gamma),), opened.u),
        E(((6, opened.u),), opened.v),
        E(((6, gen),), x_i),
        E(((4, gen), (5, H)), at_i.c),
        E(((4, big_gamma),), opened.z),
    ]


def verify_transcript(
    public: PublicKeyPackage[Any],
    session: bytes,
    participants: Sequence[int],
    deals: Sequence[PresignDeal],
    opens: Sequence[PresignOpen],
    own: PresignOpen | None = None,
) -> PresignaturePublic:
    """Check every round-2 proof against the round-1 commitments and compute R. Raises
    ProtocolAbort (missing/duplicate messages) or InvalidProof naming every bad party.

    `own`: the opening this party made itself (PresignParticipant.finish). Its copy among `opens`
    must be identical (else ProtocolAbort: someone swapped it in transit); its proof, which this
    party computed, is not checked again (a quarter of a node's check at n = 4)."""
    public = _check_key(public)
    ids = _check_set(public, participants)
    by_dealer = _check_deals(public, session, ids, deals)
    agg = _aggregate(by_dealer, public.threshold)
    fp = key_fingerprint(public)
    by: dict[int, PresignOpen] = {}
    for o in opens:
        if not isinstance(o, PresignOpen):
            raise InvalidInput("opens must be PresignOpen objects")
        if o.identifier not in ids:
            raise InvalidParticipants(f"open from non-participant {o.identifier}")
        if o.identifier in by:
            raise ProtocolAbort("two different opens from one party", [o.identifier])
        if o.session != session:
            raise ProtocolAbort("open for another session", [o.identifier])
        by[o.identifier] = o
    missing = [i for i in ids if i not in by]
    if missing:
        raise ProtocolAbort("missing presign openings", missing)
    if own is not None and (
        own.identifier not in by or by[own.identifier].to_dict() != own.to_dict()
    ):
        raise ProtocolAbort("this party's own opening came back changed", [])
    bad = [
        i
        for i in ids
        if (own is None or i != own.identifier)
        and not sigma.verify(
            G,
            _PROOF_TAG,
            _context(session, fp, ids, i),
            _open_equations(agg, _evaluate_at(agg, i), public.verifying_shares[i], by[i]),
            by[i].proof,
        )
    ]
    if bad:
        raise InvalidProof("presign opening proof does not verify", bad)
    mu = interpolate({i: by[i].mu for i in ids}, N)
    if mu == 0:  # probability 2^-256
        raise ProtocolAbort("μ = 0; run presigning again", [])
    big_r = G.mul(agg.big_gamma, pow(mu, -1, N))
    assert big_r is not None and agg.big_gamma is not None
    u: dict[int, PublicKey] = {}
    v: dict[int, PublicKey] = {}
    z: dict[int, Point] = {}
    for i in ids:
        o = by[i]
        if o.u is None or o.v is None:  # pragma: no cover - parsing refuses these
            raise InvalidProof("identity in presign opening", [i])
        u[i], v[i], z[i] = o.u, o.v, o.z
    gpk = public.group_public_key
    assert gpk is not None
    return PresignaturePublic(
        session=session,
        key_fingerprint=fp,
        group_public_key=gpk,
        threshold=public.threshold,
        participants=ids,
        big_r=big_r,
        gamma=agg.big_gamma,
        u=u,
        v=v,
        z=z,
    )


# -- party-held secret result ---------------------------------------------------------------------
_CONSUME_LOCK = threading.Lock()


class Presignature:
    """Party `identifier`'s presignature: the public part plus secret shares k_i, c_i.

    Consumed at most once: `consume()` (called by `sign_share`) wipes the secrets and a second use
    raises NonceReuse. The node store must persist "used" before the signature share leaves."""

    __slots__ = ("_c", "_k", "identifier", "public")

    def __init__(self, identifier: int, public: PresignaturePublic, k: int, c: int) -> None:
        if identifier not in public.participants:
            raise InvalidParticipants(f"{identifier} did not take part in this presignature")
        self.identifier = identifier
        self.public = public
        self._k = SecretScalar(k % N)
        self._c = SecretScalar(c % N)

    def __repr__(self) -> str:
        state = "used" if self.used else "fresh"
        return (
            f"Presignature(identifier={self.identifier}, session={self.public.session.hex()[:16]}…, "
            f"{state}, secrets=<redacted>)"
        )

    @property
    def used(self) -> bool:
        return self._k.wiped

    def consume(self) -> tuple[int, int]:
        """Return (k_i, c_i) and wipe them; NonceReuse on a second call (atomic across threads:
        two concurrent calls must never both get k_i, which would reveal the key share)."""
        with _CONSUME_LOCK:
            if self._k.wiped:
                raise NonceReuse(f"presignature {self.public.session.hex()} was used already")
            k, c = self._k.expose(), self._c.expose()
            self._k.wipe()
            self._c.wipe()
        return k, c

    def export_secret(self) -> dict[str, Any]:
        """For sealing at rest only (never log or send). A used presignature cannot be exported."""
        if self.used:
            raise NonceReuse("a used presignature cannot be exported")
        return {
            **_wire.header(SCHEME, "ecdsa_presignature_secret"),
            "identifier": self.identifier,
            "public": self.public.to_dict(),
            "k": G.serialize_scalar(self._k.expose()).hex(),
            "c": G.serialize_scalar(self._c.expose()).hex(),
        }

    @classmethod
    def import_secret(cls, d: Any) -> Presignature:
        kind = "ecdsa_presignature_secret"
        with _wire.parse_guard(kind):
            _wire.check_message(d, SCHEME, kind, ["identifier", "public", "k", "c"])
            return cls(
                identifier=_wire.get_int(d, "identifier", minimum=1),
                public=PresignaturePublic.from_dict(d["public"]),
                k=_wire.get_scalar(G, d, "k"),
                c=_wire.get_scalar(G, d, "c"),
            )


# -- the per-party state machine ------------------------------------------------------------------
class PresignState(Enum):
    INIT = "init"
    DEALT = "dealt"
    OPENED = "opened"
    DONE = "done"
    FAILED = "failed"


TRANSITIONS: dict[PresignState, frozenset[PresignState]] = {
    PresignState.INIT: frozenset({PresignState.DEALT, PresignState.FAILED}),
    PresignState.DEALT: frozenset({PresignState.OPENED, PresignState.FAILED}),
    PresignState.OPENED: frozenset({PresignState.DONE, PresignState.FAILED}),
    PresignState.DONE: frozenset(),
    PresignState.FAILED: frozenset(),
}


class PresignParticipant:
    """One node's side of presigning: `round1()` -> `round2(deals, shares)` -> `finish(opens)`.

    Any verification failure moves to FAILED and raises an error naming the culprits; the gateway
    starts a new session without them. A node must never reuse a session id."""

    def __init__(
        self, key_share: KeyShare[Any], session: bytes, participants: Sequence[int]
    ) -> None:
        public = _check_key(key_share.public)
        if not isinstance(session, bytes) or len(session) != SESSION_LENGTH:
            raise InvalidInput(f"session id must be {SESSION_LENGTH} bytes")
        self.participants = _check_set(public, participants)
        if key_share.identifier not in self.participants:
            raise InvalidParticipants("this node is not in the participant set")
        self.identifier = key_share.identifier
        self.session = session
        self.state = PresignState.INIT
        self._key = key_share
        self._public = public
        self._polys: dict[str, list[int]] | None = None
        self._deals: list[PresignDeal] = []
        self._sums: tuple[int, ...] | None = None
        self._opened: PresignOpen | None = None

    def __repr__(self) -> str:
        return f"PresignParticipant(identifier={self.identifier}, state={self.state.value})"

    def _move(self, new: PresignState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise StateError(f"presign: cannot go from {self.state.value} to {new.value}")
        self.state = new

    def _fail(self) -> None:
        self.state = PresignState.FAILED
        self._polys = None
        self._sums = None

    def round1(self) -> tuple[PresignDeal, dict[int, PresignShares]]:
        """Deal: the broadcast commitments and one private message per participant (self too)."""
        self._move(PresignState.DEALT)
        t = self._public.threshold
        polys = {
            "k": random_polynomial(G, G.random_scalar(), t - 1),
            "k_blind": random_polynomial(G, G.random_scalar(), t - 1),
            "gamma": random_polynomial(G, G.random_scalar(), t - 1),
            "b": random_polynomial(G, 0, 2 * t - 2),
            "b_blind": random_polynomial(G, 0, 2 * t - 2),
            "c": random_polynomial(G, 0, 2 * t - 2),
            "c_blind": random_polynomial(G, 0, 2 * t - 2),
        }
        self._polys = polys

        def ped(a: list[int], a_blind: list[int], start: int) -> tuple[Point, ...]:
            return tuple(
                G.add(G.base_mul(x), G.mul(H, y))
                for x, y in zip(a[start:], a_blind[start:], strict=True)
            )

        deal = PresignDeal(
            session=self.session,
            dealer=self.identifier,
            gamma_commitment=tuple(G.base_mul(a) for a in polys["gamma"]),
            k_commitment=ped(polys["k"], polys["k_blind"], 0),
            b_commitment=ped(polys["b"], polys["b_blind"], 1),
            c_commitment=ped(polys["c"], polys["c_blind"], 1),
        )
        shares = {
            j: PresignShares(
                session=self.session,
                dealer=self.identifier,
                recipient=j,
                values=tuple(evaluate(polys[name], j, N) for name in _SHARE_NAMES),
            )
            for j in self.participants
        }
        return deal, shares

    def round2(self, deals: Sequence[PresignDeal], shares: Sequence[PresignShares]) -> PresignOpen:
        """Check every dealer's shares for us, then open μ_i with the proof."""
        if self.state is not PresignState.DEALT:
            raise StateError(f"presign: round2 in state {self.state.value}")
        try:
            return self._round2(deals, shares)
        except Exception:
            self._fail()
            raise

    def _round2(self, deals: Sequence[PresignDeal], shares: Sequence[PresignShares]) -> PresignOpen:
        me = self.identifier
        by_dealer = _check_deals(self._public, self.session, self.participants, deals)
        got: dict[int, PresignShares] = {}
        for s in shares:
            if not isinstance(s, PresignShares):
                raise InvalidInput("shares must be PresignShares objects")
            if s.recipient != me or s.session != self.session or s.dealer not in by_dealer:
                raise ProtocolAbort(
                    "share addressed to someone else or another session", [s.dealer]
                )
            if s.dealer in got:
                raise ProtocolAbort("two shares from one dealer", [s.dealer])
            got[s.dealer] = s
        missing = [j for j in self.participants if j not in got]
        if missing:
            raise ProtocolAbort("missing presign shares", missing)
        sums = tuple(sum(got[j].values[n] for j in self.participants) % N for n in range(7))
        agg = _aggregate(by_dealer, self._public.threshold)
        at_me = _evaluate_at(agg, me)
        # One check of the summed shares against the summed commitments instead of one per dealer:
        # only the sums are used from here on, and each other party checks its own sums the same
        # way, so the sums form a sharing consistent with the aggregate commitments, which is what
        # the proofs below and the other parties rely on. A lone bad dealer cannot pass it (the
        # honest dealers' shares are consistent); dealers that cancel each other's errors at this
        # point gain nothing, since the sums are then consistent. On a mismatch, the per-dealer
        # checks name the culprits.
        if not _shares_match(sums, at_me):
            bad = [
                j
                for j in self.participants
                if not _shares_match(got[j].values, _at(by_dealer[j], me))
            ]
            raise InvalidShare("presign shares do not match their dealer's commitments", bad)
        k, kb, gm, b, bb, c, cb = sums
        x = self._key.secret_share.expose()
        big_gamma = agg.big_gamma
        u = G.mul(big_gamma, k)
        opened = PresignOpen(
            session=self.session,
            identifier=me,
            mu=(k * gm + b) % N,
            u=u,
            v=G.mul(u, x),
            z=G.mul(big_gamma, c),
            proof=sigma.LinearProof(0, ()),
        )
        eqs = _open_equations(agg, at_me, self._public.verifying_shares[me], opened)
        proof = sigma.prove(
            G,
            _PROOF_TAG,
            _context(self.session, key_fingerprint(self._public), self.participants, me),
            [k, kb, b, bb, c, cb, x],
            eqs,
        )
        self._deals = list(by_dealer.values())
        self._sums = sums
        self._polys = None
        self._move(PresignState.OPENED)
        self._opened = PresignOpen(
            opened.session, me, opened.mu, opened.u, opened.v, opened.z, proof
        )
        return self._opened

    def finish(self, opens: Sequence[PresignOpen]) -> Presignature:
        """Verify every opening, compute R and return this node's presignature."""
        if self.state is not PresignState.OPENED or self._sums is None:
            raise StateError(f"presign: finish in state {self.state.value}")
        try:
            pub = verify_transcript(
                self._public, self.session, self.participants, self._deals, opens, self._opened
            )
        except Exception:
            self._fail()
            raise
        k, c = self._sums[0], self._sums[5]  # k and c (see _SHARE_NAMES)
        self._sums = None
        self._move(PresignState.DONE)
        return Presignature(self.identifier, pub, k, c)


def new_session_id() -> bytes:
    """A fresh random presign session id (chosen by the gateway)."""
    return secrets.token_bytes(SESSION_LENGTH)
