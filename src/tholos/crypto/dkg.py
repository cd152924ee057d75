"""Distributed key generation: Pedersen DKG with Feldman commitments and proofs of knowledge.

References
- FROST paper (Komlo-Goldberg 2020, https://eprint.iacr.org/2020/852), figure 1 "KeyGen".
- ZcashFoundation/frost `frost-core/src/keys/dkg.rs` (the proof-of-knowledge challenge preimage
  `identifier || phi_0 || R` and the per-suite `HDKG` hash are kept so Zcash's DKG vectors verify).
- Gennaro-Jarecki-Krawczyk-Rabin, "Secure distributed key generation for discrete-log based
  cryptosystems" (J. Cryptology 2007): complaints and the qualified set QUAL.

The protocol, per participant (a state machine, see `DkgState` / `TRANSITIONS`):

1. `round1()`: sample f_i of degree t-1, broadcast the Feldman commitment C_i = [a_ik·G] and a
   Schnorr proof of knowledge of a_i0 bound to the identifier and the session.
2. `round2(round1 packages)`: a dealer whose proof or commitment is invalid is excluded publicly
   (everybody sees the same broadcast, so every honest participant excludes the same dealers); send
   f_i(j) privately to every participant j.
3. `round3(round2 packages)`: check every received share against its dealer's commitment and
   broadcast a `ComplaintsPackage` (possibly empty). A complaint reveals the share as evidence.
4. `finish(complaints packages)`: every participant resolves every complaint the same way
   (`verify_complaint`: the share matches the commitment -> the accuser lied; otherwise the dealer
   cheated), so all honest participants compute the same QUAL. With |QUAL| >= t the key share is
   s_j = sum of f_i(j) over QUAL; otherwise `ProtocolAbort(culprits=...)`.

Deviation from the two-round FROST KeyGen: the complaint round (3) is added so that a cheating dealer
is excluded instead of aborting the whole DKG, and all honest participants agree on QUAL. The
transport must give every participant the same broadcast messages (echo broadcast, DESIGN.md), and
must sign private messages so a revealed share can be attributed to its dealer (`EvidenceVerifier`).

Transport requirements (the node/gateway layer, not this module):
- Broadcasts (round-1 packages, complaints) reach everybody identically (echo broadcast). A missing
  round-1 package excludes its dealer; a missing complaints package counts as "no complaints"; a
  participant's own messages are always part of its view, so the echo layer must refuse a set that
  lacks a node's own broadcast.
- Private round-2 packages are encrypted to the recipient and signed by the sender over
  `Round2Package.signing_bytes()`. Pass an `evidence_verifier` checking that signature: without one,
  a malicious accuser can frame an honest dealer. That costs liveness only, never secrecy: QUAL must
  keep >= t dealers, so with at most t-1 corrupt parties at least one honest dealer is in QUAL.

Cost per participant (n participants, threshold t; G = fixed-base, P = variable-base scalar mult):
round 1: (t + 1) G; round 2: (n - 1)(G + P) for the proofs (R is not re-validated: it is only
compared with a computed point, `_parse_round1_proof`); round 3: one aggregate check, t·(n - 1)
additions, t - 1 small multiples and one G (below); finish: the n verifying shares by forward
differences, about (t - 1)·n additions (`_eval_commitment_many`).

Aggregate Feldman check (DKG only, `aggregate_check`). Receiver i checks the sum of its shares
Σ_j s_ij·G == (Σ_j C_j)(i) instead of every share against its dealer's commitment. Soundness: the
DKG uses only the sum; receiver i's final share Σ_{j in QUAL} s_ij is consistent with the final
aggregate commitment Σ_{j in QUAL} C_j (so with its verifying share Y_i) if and only if this sum
check passes over exactly QUAL, whatever the individual shares are. So:
- the sum check passes over every dealer and nobody is excluded later -> consistent (errors that
  cancel, +d from one dealer and -d from another, are harmless: both stay in);
- the sum check fails -> every share is checked on its own and the bad ones become complaints,
  exactly as without the fast path;
- the sum check passed but QUAL lost dealers in `finish` (complaints by others) -> the remaining
  shares are checked one by one; a failing one means its dealer cheated (its signed share does not
  match its own commitment; it hid behind a colluder's cancelling error) and, the complaint round
  being over, the participant aborts naming it (`ProtocolAbort.culprits`). This is the case that
  made the unweighted sum check unsound before: it is now detected, and costs liveness only.
Refresh and reshare keep one check per dealer: reshare combines with Lagrange weights, which the
unweighted sum check does not cover, and refresh is rare enough not to need the fast path.

The same engine (`VssParticipant`) runs proactive refresh (`tholos.crypto.refresh`) and resharing
(`tholos.crypto.reshare`); only the dealt constant, the commitment checks and the combination differ.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from tholos.crypto._wire import unhex
from tholos.crypto.errors import (
    CryptoError,
    InvalidInput,
    InvalidParticipants,
    ProtocolAbort,
    StateError,
)
from tholos.crypto.groups.base import Group
from tholos.crypto.hazmat.hash import expand_message_xmd_sha256, hash_to_field_sha256
from tholos.crypto.hazmat.shamir import check_identifiers, check_threshold, evaluate
from tholos.crypto.keys import FORMAT_VERSION, KeyShare, PublicKeyPackage, group_by_name
from tholos.crypto.secret import SecretScalar

__all__ = [
    "TRANSITIONS",
    "Complaint",
    "ComplaintsPackage",
    "DkgParticipant",
    "DkgState",
    "EvidenceVerifier",
    "ProofOfKnowledge",
    "Round1Package",
    "Round2Package",
    "VssParticipant",
    "compute_proof_of_knowledge",
    "dkg_challenge",
    "drive",
    "drive_shares",
    "expand_message_xmd",
    "run_dkg",
    "session_id",
    "verify_complaint",
    "verify_proof_of_knowledge",
]

E = TypeVar("E")


# =================================================================================================
# Hashing: the proof-of-knowledge challenge (HDKG of the Zcash FROST ciphersuites)
# =================================================================================================


expand_message_xmd = expand_message_xmd_sha256
"""RFC 9380 section 5.3.1, expand_message_xmd with SHA-256 (kept here under its old name)."""


def _hash_to_scalar(group: Group[Any], msg: bytes, tag: bytes) -> int:
    """The ciphersuite hash of RFC 9591 section 6 with `tag` ("dkg" gives Zcash's HDKG).

    - edwards25519: SHA-512(contextString || tag || msg) as a little-endian integer mod L.
    - secp256k1: hash_to_field(msg, DST = contextString || tag), expand_message_xmd SHA-256, 48 bytes.
    - any other group: the secp256k1 construction with DST "tholos-<group>-v1" || tag.
    """
    if group.name == "edwards25519":
        digest = hashlib.sha512(b"FROST-ED25519-SHA512-v1" + tag + msg).digest()
        return int.from_bytes(digest, "little") % group.order
    if group.name == "secp256k1":
        dst = b"FROST-secp256k1-SHA256-v1" + tag
    else:
        dst = b"tholos-" + group.name.encode() + b"-v1" + tag
    return hash_to_field_sha256(msg, dst, group.order)


def dkg_challenge(group: Group[E], identifier: int, verifying_key: E, r: E, context: bytes) -> int:
    """c = HDKG(ser(identifier) || ser(phi_0) || ser(R) || context).

    With an empty context this is exactly ZcashFoundation frost's `dkg::challenge`. tholos always
    passes the 32-byte session id as context (FROST paper: "Phi, a context string to prevent replay").
    """
    preimage = (
        group.serialize_scalar(identifier)
        + group.serialize_element(verifying_key)
        + group.serialize_element(r)
        + context
    )
    return _hash_to_scalar(group, preimage, b"dkg")


@dataclass(frozen=True)
class ProofOfKnowledge(Generic[E]):
    """Schnorr proof sigma = (R, mu) of knowledge of a_0 with phi_0 = a_0·G."""

    r: E
    mu: int

    def to_bytes(self, group: Group[E]) -> bytes:
        return group.serialize_element(self.r) + group.serialize_scalar(self.mu)

    @classmethod
    def from_bytes(cls, group: Group[E], data: bytes) -> ProofOfKnowledge[E]:
        n = group.element_length
        if len(data) != n + group.scalar_length:
            raise InvalidInput(
                f"{group.name}: proof of knowledge must be {n + group.scalar_length} bytes"
            )
        return cls(group.deserialize_element(data[:n]), group.deserialize_scalar(data[n:]))


def _parse_round1_proof(group: Group[E], data: bytes) -> ProofOfKnowledge[E]:
    """`ProofOfKnowledge.from_bytes` for a received round-1 proof, without validating R where that
    is expensive (edwards25519: a subgroup check per point, about a third of a DKG's parsing).

    Skipping it is sound because R is used only by `verify_proof_of_knowledge`, which hashes its
    bytes and accepts only if they equal the canonical encoding of mu·G - c·phi_0, a point it
    computed from validated inputs: an invalid or non-canonical R can never be accepted.
    """
    if group.name != "edwards25519":
        return ProofOfKnowledge.from_bytes(group, data)
    n = group.element_length
    if len(data) != n + group.scalar_length:
        raise InvalidInput(
            f"{group.name}: proof of knowledge must be {n + group.scalar_length} bytes"
        )
    r: Any = bytes(data[:n])  # edwards25519 elements are their 32-byte encodings
    return ProofOfKnowledge(r, group.deserialize_scalar(data[n:]))


def compute_proof_of_knowledge(
    group: Group[E], identifier: int, a0: int, phi0: E, context: bytes
) -> ProofOfKnowledge[E]:
    """k random, R = k·G, c = HDKG(id, phi_0, R, ctx), mu = k + a_0·c (FROST KeyGen round 1 step 2)."""
    k = group.random_scalar()
    r = group.base_mul(k)
    c = dkg_challenge(group, identifier, phi0, r, context)
    mu = (k + a0 * c) % group.order
    del k
    return ProofOfKnowledge(r, mu)


def verify_proof_of_knowledge(
    group: Group[E], identifier: int, phi0: E, proof: ProofOfKnowledge[E], context: bytes
) -> bool:
    """R == mu·G - c·phi_0 (FROST KeyGen round 1 step 5). Returns False instead of raising: the
    caller excludes the dealer, which is the attribution."""
    if group.is_identity(phi0) or group.is_identity(proof.r):
        return False
    c = dkg_challenge(group, identifier, phi0, proof.r, context)
    expected = group.sub(group.base_mul(proof.mu), group.mul(phi0, c))
    return group.eq(expected, proof.r)


# =================================================================================================
# Sessions and wire helpers
# =================================================================================================


def session_id(
    protocol: str, group: Group[Any], context: bytes, *fields: bytes | int | Iterable[int]
) -> bytes:
    """32-byte session id binding the protocol, group, caller's context and parameters.

    Every message carries it, and the proof of knowledge is bound to it, so a message from another
    session (or for other parameters) is rejected.
    """
    h = hashlib.sha256()

    def put(b: bytes) -> None:
        h.update(len(b).to_bytes(4, "big"))
        h.update(b)

    put(b"tholos/" + protocol.encode() + b"/v1")
    put(group.name.encode())
    put(context)
    for f in fields:
        if isinstance(f, bytes):
            put(f)
        elif isinstance(f, int):
            put(f.to_bytes(32, "big"))
        else:
            put(b"".join(i.to_bytes(32, "big") for i in sorted(f)))
    return h.digest()


def _as_dict(d: object, what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise InvalidInput(f"{what}: expected an object")
    return d


def _check_keys(d: dict[str, Any], keys: set[str], what: str) -> None:
    if set(d) != keys:
        missing = sorted(keys - set(d))
        extra = sorted(set(d) - keys)
        raise InvalidInput(f"{what}: missing fields {missing}, unexpected fields {extra}")


def _parse_int(v: object, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise InvalidInput(f"{what}: expected an integer")
    return v


_parse_hex = unhex


def _parse_header(
    d: object, type_: str, keys: set[str]
) -> tuple[dict[str, Any], Group[Any], bytes]:
    d = _as_dict(d, type_)
    _check_keys(d, keys | {"version", "type", "group", "session"}, type_)
    if d["version"] != FORMAT_VERSION:
        raise InvalidInput(f"{type_}: unsupported version {d['version']!r}")
    if d["type"] != type_:
        raise InvalidInput(f"expected a {type_}, got {d['type']!r}")
    if not isinstance(d["group"], str):
        raise InvalidInput(f"{type_}: group must be a string")
    group = group_by_name(d["group"])
    session = _parse_hex(d["session"], f"{type_}.session")
    if len(session) != 32:
        raise InvalidInput(f"{type_}: session id must be 32 bytes")
    return d, group, session


def _header(type_: str, group: Group[Any], session: bytes) -> dict[str, Any]:
    return {"version": FORMAT_VERSION, "type": type_, "group": group.name, "session": session.hex()}


# =================================================================================================
# Messages
# =================================================================================================

_PROTOCOLS = ("dkg", "refresh", "reshare")
#: Protocols whose dealt constant is zero: its commitment (the identity) is not sent.
_ZERO_CONSTANT = frozenset({"refresh"})


def _check_protocol(p: object) -> str:
    if p not in _PROTOCOLS:
        raise InvalidInput(f"unknown protocol {p!r}")
    assert isinstance(p, str)
    return p


@dataclass(frozen=True)
class Round1Package(Generic[E]):
    """Broadcast: dealer `sender`'s Feldman commitment and (DKG only) proof of knowledge.

    For refresh the constant term is zero and its commitment (the identity) is not sent.
    """

    group: Group[E]
    protocol: str
    session: bytes
    sender: int
    commitment: tuple[E, ...]
    proof: ProofOfKnowledge[E] | None = None

    TYPE: ClassVar[str] = "vss/round1"

    def to_dict(self) -> dict[str, Any]:
        g = self.group
        d = _header(self.TYPE, g, self.session)
        d["protocol"] = self.protocol
        d["sender"] = self.sender
        d["commitment"] = [g.serialize_element(c).hex() for c in self.commitment]
        d["proof"] = None if self.proof is None else self.proof.to_bytes(g).hex()
        return d

    @classmethod
    def from_dict(cls, d: object) -> Round1Package[Any]:
        d, g, session = _parse_header(d, cls.TYPE, {"protocol", "sender", "commitment", "proof"})
        if not isinstance(d["commitment"], list):
            raise InvalidInput("round1: commitment must be a list")
        commitment = tuple(
            g.deserialize_element(_parse_hex(c, "round1.commitment")) for c in d["commitment"]
        )
        proof = None
        if d["proof"] is not None:
            proof = _parse_round1_proof(g, _parse_hex(d["proof"], "round1.proof"))
        return cls(
            group=g,
            protocol=_check_protocol(d["protocol"]),
            session=session,
            sender=_parse_int(d["sender"], "round1.sender"),
            commitment=commitment,
            proof=proof,
        )


@dataclass(frozen=True, repr=False)
class Round2Package(Generic[E]):
    """Private: f_sender(recipient). The transport encrypts it to the recipient and signs it as the
    sender (`signing_bytes` is the canonical payload to sign), so a complaint can reveal it."""

    group: Group[E]
    protocol: str
    session: bytes
    sender: int
    recipient: int
    share: SecretScalar = field(compare=False)

    TYPE: ClassVar[str] = "vss/round2"

    def __repr__(self) -> str:
        return (
            f"Round2Package(protocol={self.protocol}, sender={self.sender}, "
            f"recipient={self.recipient}, share=<redacted>)"
        )

    def signing_bytes(self) -> bytes:
        """Canonical bytes for the transport's signature: every field, length-prefixed."""
        fields = [
            self.TYPE.encode(),
            self.group.name.encode(),
            self.protocol.encode(),
            self.session,
            self.sender.to_bytes(32, "big"),
            self.recipient.to_bytes(32, "big"),
            self.group.serialize_scalar(self.share.expose()),
        ]
        return b"".join(len(f).to_bytes(2, "big") + f for f in fields)

    def to_dict(self) -> dict[str, Any]:
        """Contains the secret share: encrypt before it leaves the process, never log it."""
        d = _header(self.TYPE, self.group, self.session)
        d["protocol"] = self.protocol
        d["sender"] = self.sender
        d["recipient"] = self.recipient
        d["share"] = self.group.serialize_scalar(self.share.expose()).hex()
        return d

    @classmethod
    def from_dict(cls, d: object) -> Round2Package[Any]:
        d, g, session = _parse_header(d, cls.TYPE, {"protocol", "sender", "recipient", "share"})
        return cls(
            group=g,
            protocol=_check_protocol(d["protocol"]),
            session=session,
            sender=_parse_int(d["sender"], "round2.sender"),
            recipient=_parse_int(d["recipient"], "round2.recipient"),
            share=SecretScalar(g.deserialize_scalar(_parse_hex(d["share"], "round2.share"))),
        )


@dataclass(frozen=True)
class Complaint(Generic[E]):
    """`accuser` says the share it got from `accused` does not match the accused's commitment.

    `share` is the revealed share (public evidence); None means no share arrived, which cannot be
    disproved without a reveal round, so the accused is excluded (safe: QUAL keeps >= t dealers or
    the DKG aborts). `evidence` is the transport's proof that the accused sent exactly
    `revealed_package()` (its signature over `Round2Package.signing_bytes()`), opaque here.
    """

    group: Group[E]
    protocol: str
    session: bytes
    accuser: int
    accused: int
    share: int | None
    evidence: bytes = b""

    TYPE: ClassVar[str] = "vss/complaint"

    def revealed_package(self) -> Round2Package[E]:
        if self.share is None:
            raise InvalidInput("complaint about a missing share reveals no package")
        return Round2Package(
            self.group,
            self.protocol,
            self.session,
            self.accused,
            self.accuser,
            SecretScalar(self.share),
        )

    def to_dict(self) -> dict[str, Any]:
        d = _header(self.TYPE, self.group, self.session)
        d["protocol"] = self.protocol
        d["accuser"] = self.accuser
        d["accused"] = self.accused
        d["share"] = None if self.share is None else self.group.serialize_scalar(self.share).hex()
        d["evidence"] = self.evidence.hex()
        return d

    @classmethod
    def from_dict(cls, d: object) -> Complaint[Any]:
        keys = {"protocol", "accuser", "accused", "share", "evidence"}
        d, g, session = _parse_header(d, cls.TYPE, keys)
        share = None
        if d["share"] is not None:
            share = g.deserialize_scalar(_parse_hex(d["share"], "complaint.share"))
        return cls(
            group=g,
            protocol=_check_protocol(d["protocol"]),
            session=session,
            accuser=_parse_int(d["accuser"], "complaint.accuser"),
            accused=_parse_int(d["accused"], "complaint.accused"),
            share=share,
            evidence=_parse_hex(d["evidence"], "complaint.evidence"),
        )


@dataclass(frozen=True)
class ComplaintsPackage(Generic[E]):
    """Broadcast of round 3: every complaint of `sender` (an empty tuple means "all shares OK")."""

    group: Group[E]
    protocol: str
    session: bytes
    sender: int
    complaints: tuple[Complaint[E], ...] = ()

    TYPE: ClassVar[str] = "vss/complaints"

    def to_dict(self) -> dict[str, Any]:
        d = _header(self.TYPE, self.group, self.session)
        d["protocol"] = self.protocol
        d["sender"] = self.sender
        d["complaints"] = [c.to_dict() for c in self.complaints]
        return d

    @classmethod
    def from_dict(cls, d: object) -> ComplaintsPackage[Any]:
        d, g, session = _parse_header(d, cls.TYPE, {"protocol", "sender", "complaints"})
        if not isinstance(d["complaints"], list):
            raise InvalidInput("complaints: expected a list")
        complaints = tuple(Complaint.from_dict(c) for c in d["complaints"])
        for c in complaints:
            if c.group is not g or c.session != session:
                raise InvalidInput("complaints: a complaint of another group or session")
        return cls(
            group=g,
            protocol=_check_protocol(d["protocol"]),
            session=session,
            sender=_parse_int(d["sender"], "complaints.sender"),
            complaints=complaints,
        )


EvidenceVerifier = Callable[[Complaint[Any]], bool]
"""Transport hook: True iff `complaint.evidence` proves `complaint.accused` signed
`complaint.revealed_package().signing_bytes()`. Without one, revealed shares are trusted as sent
(in-memory tests, or a transport that already authenticates private messages end to end)."""


# =================================================================================================
# Feldman helpers (public data only, so variable-time shortcuts are fine)
# =================================================================================================


def _mul_small(group: Group[E], a: E, k: int) -> E:
    """k·A for a small public k >= 1 by double-and-add (variable time: public data only)."""
    acc = a
    for bit in bin(k)[3:]:
        acc = group.add(acc, acc)
        if bit == "1":
            acc = group.add(acc, a)
    return acc


def _small_is_cheaper(group: Group[Any], x: int) -> bool:
    """Whether x·A is cheaper by additions than by a scalar multiplication. libsodium's
    multiplication costs the same for every scalar (about 5.5 additions); libsecp256k1's is already
    cheap for small scalars, so there only x = 1 is special-cased."""
    return x == 1 or (group.name == "edwards25519" and x < 16)


def _eval_commitment(group: Group[E], commitment: Sequence[E], x: int) -> E:
    """Σ C_k·x^k: the public image of the committed polynomial at x (all public data).

    Horner's rule with small-multiplier double-and-add when x is small (identifiers usually are),
    otherwise one multiplication per term k >= 1, the k = 0 term being added without one.
    """
    if not commitment:
        return group.identity()
    if len(commitment) == 1:
        return commitment[0]
    if _small_is_cheaper(group, x):
        acc = commitment[-1]
        for c in reversed(commitment[:-1]):
            acc = group.add(_mul_small(group, acc, x), c)
        return acc
    q = group.order
    pairs: list[tuple[E, int]] = []
    power = 1
    for c in commitment[1:]:
        power = power * x % q
        pairs.append((c, power))
    return group.add(commitment[0], group.multi_mul(pairs))


def _small_multiple(group: Group[E], a: E, k: int) -> E:
    """k·A for a public k >= 0 (additions when cheaper than a multiplication)."""
    if k == 0:
        return group.identity()
    if _small_is_cheaper(group, k):
        return _mul_small(group, a, k)
    return group.mul(a, k)


def _eval_commitment_many(group: Group[E], commitment: Sequence[E], xs: Sequence[int]) -> list[E]:
    """`_eval_commitment` at every x of `xs`; by forward differences when `xs` are consecutive.

    For a polynomial P of degree d, the differences Δ^j P(x0) (j = 0..d) are fixed small-integer
    combinations of the commitment terms (Δ^j x^k at x0 is a non-negative integer), and stepping
    from x to x + 1 is d additions: D_j += D_{j+1}. With identifiers 1..n that is about d·n
    additions for all n evaluations instead of n evaluations of d multiplications each (the
    verifying shares of a DKG).
    """
    xs = list(xs)
    d = len(commitment) - 1
    if d < 1 or len(xs) <= d + 1 or any(b != a + 1 for a, b in itertools.pairwise(xs)):
        return [_eval_commitment(group, commitment, x) for x in xs]
    x0 = xs[0]
    rows = [[(x0 + i) ** k for k in range(d + 1)] for i in range(d + 1)]
    coeffs: list[list[int]] = []
    for _ in range(d + 1):
        coeffs.append(rows[0])
        rows = [[b - a for a, b in zip(r, r2, strict=True)] for r, r2 in itertools.pairwise(rows)]
    diffs = [
        group.sum(_small_multiple(group, c, m) for c, m in zip(commitment, row, strict=True))
        for row in coeffs
    ]
    out = [diffs[0]]
    for _ in xs[1:]:
        for j in range(d):
            diffs[j] = group.add(diffs[j], diffs[j + 1])
        out.append(diffs[0])
    return out


def _share_matches(group: Group[E], commitment: Sequence[E], x: int, share: int) -> bool:
    if not 0 <= share < group.order:
        return False
    return group.eq(group.base_mul(share), _eval_commitment(group, commitment, x))


def verify_complaint(
    complaint: Complaint[E],
    accused_round1: Round1Package[E],
    *,
    evidence_verifier: EvidenceVerifier | None = None,
) -> int:
    """Decide a complaint: return the culprit, the accused dealer or the accuser.

    Anyone can run this with the accused's broadcast round-1 package. The accuser is at fault when
    the revealed share matches the commitment (false accusation) or when the transport evidence does
    not prove that the dealer sent that share (forged evidence).
    """
    if (
        accused_round1.sender != complaint.accused
        or accused_round1.session != complaint.session
        or accused_round1.protocol != complaint.protocol
        or accused_round1.group is not complaint.group
    ):
        raise InvalidInput(
            "verify_complaint: the round-1 package is not the accused's in this session"
        )
    if complaint.share is None:
        return complaint.accused
    if evidence_verifier is not None and not evidence_verifier(complaint):
        return complaint.accuser
    full = _full_commitment(accused_round1)
    if _share_matches(complaint.group, full, complaint.accuser, complaint.share):
        return complaint.accuser
    return complaint.accused


def _full_commitment(pkg: Round1Package[E]) -> tuple[E, ...]:
    if pkg.protocol in _ZERO_CONSTANT:
        return (pkg.group.identity(), *pkg.commitment)
    return pkg.commitment


# =================================================================================================
# The state machine
# =================================================================================================


class DkgState(enum.Enum):
    INIT = "init"
    ROUND1 = "round1-sent"
    ROUND2 = "round2-sent"
    ROUND3 = "complaints-sent"
    DONE = "done"
    FAILED = "failed"


TRANSITIONS: dict[DkgState, frozenset[DkgState]] = {
    DkgState.INIT: frozenset({DkgState.ROUND1, DkgState.FAILED}),
    DkgState.ROUND1: frozenset({DkgState.ROUND2, DkgState.FAILED}),
    DkgState.ROUND2: frozenset({DkgState.ROUND3, DkgState.FAILED}),
    DkgState.ROUND3: frozenset({DkgState.DONE, DkgState.FAILED}),
    DkgState.DONE: frozenset(),
    DkgState.FAILED: frozenset(),
}


class VssParticipant(Generic[E]):
    """One participant of a VSS-based protocol run by `n` dealers for `m` receivers.

    Subclasses choose the dealt constant (`_constant`), validate dealers' round-1 packages
    (`_round1_problem`) and combine the qualified dealings (`_combine`). Methods are called in the
    order round1, round2, round3, finish; anything else raises `StateError`. An `InvalidInput` from a
    method leaves the state unchanged (nothing was consumed); a `ProtocolAbort` moves to FAILED and
    wipes the secrets.
    """

    protocol: ClassVar[str] = "dkg"
    #: Check received shares by their sum against the aggregate commitment (see `round3`). Only
    #: for protocols whose result is the unweighted sum of the qualified dealings.
    aggregate_check: ClassVar[bool] = False

    def __init__(
        self,
        group: Group[E],
        identifier: int,
        threshold: int,
        dealers: Sequence[int],
        receivers: Sequence[int],
        min_qualified: int,
        session: bytes,
        *,
        evidence_verifier: EvidenceVerifier | None = None,
    ) -> None:
        check_identifiers(list(dealers), group.order)
        check_identifiers(list(receivers), group.order)
        check_threshold(threshold, len(receivers))
        if not 1 <= min_qualified <= len(dealers):
            raise InvalidParticipants(f"need at least {min_qualified} dealers, got {len(dealers)}")
        if identifier not in dealers and identifier not in receivers:
            raise InvalidParticipants(f"identifier {identifier} is neither dealer nor receiver")
        self.group = group
        self.identifier = identifier
        self.threshold = threshold
        self.dealers: tuple[int, ...] = tuple(sorted(dealers))
        self.receivers: tuple[int, ...] = tuple(sorted(receivers))
        self.min_qualified = min_qualified
        self.session = session
        self.evidence_verifier = evidence_verifier
        self._state = DkgState.INIT
        self._coefficients: list[SecretScalar] = []
        self._own_package: Round1Package[E] | None = None
        self._round1: dict[int, Round1Package[E]] = {}
        self._full: dict[int, tuple[E, ...]] = {}
        self._shares: dict[int, SecretScalar] = {}
        self._own_complaints: ComplaintsPackage[E] | None = None
        #: dealers whose share was checked on its own against the dealer's commitment.
        self._checked: set[int] = set()
        #: (dealers, Σ of their full commitments, its value at our identifier) when the sum of
        #: those dealers' shares was checked against it in round 3.
        self._sum_checked: tuple[frozenset[int], tuple[E, ...], E] | None = None
        #: dealer -> reason, for every dealer not in QUAL (public, identical at all honest parties).
        self.excluded: dict[int, str] = {}
        #: receivers shown to have made false or forged accusations.
        self.false_accusers: set[int] = set()
        self.qualified: tuple[int, ...] = ()

    # -- state machine ----------------------------------------------------------------------------
    @property
    def state(self) -> DkgState:
        return self._state

    @property
    def is_dealer(self) -> bool:
        return self.identifier in self.dealers

    @property
    def is_receiver(self) -> bool:
        return self.identifier in self.receivers

    def _require(self, state: DkgState, action: str) -> None:
        if self._state is not state:
            raise StateError(f"{self.protocol}: cannot {action} in state {self._state.value}")

    def _move(self, new: DkgState) -> None:
        if new not in TRANSITIONS[self._state]:
            raise StateError(
                f"{self.protocol}: transition {self._state.value} -> {new.value} not allowed"
            )
        self._state = new

    def _fail(self, exc: CryptoError) -> CryptoError:
        self._wipe()
        self._move(DkgState.FAILED)
        return exc

    def _wipe(self) -> None:
        for c in self._coefficients:
            c.wipe()
        self._coefficients = []
        for s in self._shares.values():
            s.wipe()
        self._shares = {}

    # -- hooks ------------------------------------------------------------------------------------
    def _constant(self) -> int:
        raise NotImplementedError

    def _sent_commitment(self, full: list[E]) -> tuple[E, ...]:
        return tuple(full)

    def _proof(self, full: list[E]) -> ProofOfKnowledge[E] | None:
        return None

    def _round1_problem(self, pkg: Round1Package[E]) -> str | None:
        """Why this dealer's (authentic, well-formed) broadcast is unacceptable, or None."""
        if pkg.proof is not None:
            return "unexpected proof of knowledge"
        return None

    def _combine(self, qualified: tuple[int, ...]) -> KeyShare[E] | None:
        raise NotImplementedError

    # -- rounds -----------------------------------------------------------------------------------
    def round1(self) -> Round1Package[E]:
        """Sample the dealing polynomial and return the broadcast package."""
        self._require(DkgState.INIT, "run round 1")
        if not self.is_dealer:
            raise StateError(f"{self.protocol}: participant {self.identifier} is not a dealer")
        g = self.group
        coeffs = [self._constant() % g.order] + [
            g.random_scalar() for _ in range(self.threshold - 1)
        ]
        full = [g.base_mul(a) for a in coeffs]
        self._coefficients = [SecretScalar(a) for a in coeffs]
        proof = self._proof(full)
        del coeffs
        pkg = Round1Package(
            group=g,
            protocol=self.protocol,
            session=self.session,
            sender=self.identifier,
            commitment=self._sent_commitment(full),
            proof=proof,
        )
        self._own_package = pkg
        self._move(DkgState.ROUND1)
        return pkg

    def skip_round1(self) -> None:
        """For a participant that only receives (a new member in reshare)."""
        self._require(DkgState.INIT, "skip round 1")
        if self.is_dealer:
            raise StateError(f"{self.protocol}: a dealer must run round 1")
        self._move(DkgState.ROUND1)

    def _check_message(self, pkg: Any, key: int, sender: int, cls: type[Any]) -> None:
        if not isinstance(pkg, cls):
            raise InvalidInput(f"expected a {cls.__name__} from {key}")
        if pkg.group is not self.group:
            raise InvalidInput(f"message from {key} is for group {pkg.group.name}")
        if pkg.protocol != self.protocol:
            raise InvalidInput(f"message from {key} is for protocol {pkg.protocol}")
        if pkg.session != self.session:
            raise InvalidInput(f"message from {key} belongs to another session")
        if sender != key:
            raise InvalidInput(f"message under key {key} says it is from {sender}")

    def round2(self, received: Mapping[int, Round1Package[E]]) -> dict[int, Round2Package[E]]:
        """Check every dealer's broadcast, exclude the invalid ones, and return the private shares
        for every receiver (a receiver that is this participant is kept, not returned)."""
        self._require(DkgState.ROUND1, "run round 2")
        g = self.group
        for key, pkg in received.items():
            if key not in self.dealers:
                raise InvalidParticipants(f"round-1 package from {key}, who is not a dealer")
            self._check_message(pkg, key, getattr(pkg, "sender", key), Round1Package)
        own = self._own_package
        if own is not None and self.identifier in received and received[self.identifier] != own:
            raise InvalidInput("received a different round-1 package under our own identifier")
        packages = dict(received)
        if own is not None:
            packages[self.identifier] = own
        excluded: dict[int, str] = {}
        full: dict[int, tuple[E, ...]] = {}
        for dealer in self.dealers:
            pkg_or_none = packages.get(dealer)
            if pkg_or_none is None:
                excluded[dealer] = "no round-1 package"
                continue
            expected = self.threshold - (1 if self.protocol in _ZERO_CONSTANT else 0)
            if len(pkg_or_none.commitment) != expected:
                excluded[dealer] = (
                    f"commitment has {len(pkg_or_none.commitment)} terms, not {expected}"
                )
                continue
            problem = None if dealer == self.identifier else self._round1_problem(pkg_or_none)
            if problem is not None:
                excluded[dealer] = problem
                continue
            full[dealer] = _full_commitment(pkg_or_none)
        out: dict[int, Round2Package[E]] = {}
        if self.is_dealer:
            coeffs = [c.expose() for c in self._coefficients]
            for r in self.receivers:
                s = SecretScalar(evaluate(coeffs, r, g.order))
                if r == self.identifier:
                    self._shares[r] = s
                else:
                    out[r] = Round2Package(g, self.protocol, self.session, self.identifier, r, s)
            del coeffs
            # The polynomial is no longer needed: only the shares (and our own) are kept.
            for c in self._coefficients:
                c.wipe()
            self._coefficients = []
        self._round1 = {d: packages[d] for d in full}
        self._full = full
        self.excluded = excluded
        self._move(DkgState.ROUND2)
        return out

    def round3(
        self,
        received: Mapping[int, Round2Package[E]],
        evidence: Mapping[int, bytes] | None = None,
    ) -> ComplaintsPackage[E]:
        """Check the private shares against the dealers' commitments; broadcast the complaints.

        `evidence[dealer]` is the transport's signed envelope of that dealer's private message, put
        into a complaint so others can check the revealed share came from the dealer.
        """
        self._require(DkgState.ROUND2, "run round 3")
        g = self.group
        for key, pkg in received.items():
            if key not in self.dealers:
                raise InvalidParticipants(f"round-2 package from {key}, who is not a dealer")
            self._check_message(pkg, key, getattr(pkg, "sender", key), Round2Package)
            if pkg.recipient != self.identifier:
                raise InvalidInput(f"round-2 package from {key} is addressed to {pkg.recipient}")
        complaints: list[Complaint[E]] = []
        shares: dict[int, SecretScalar] = {}
        if self.is_receiver and self.aggregate_check and self._sum_check(received):
            for dealer, pkg in received.items():
                if dealer in self._full and dealer != self.identifier:
                    shares[dealer] = SecretScalar(pkg.share.expose())
            for dealer in self._full:
                if dealer != self.identifier and dealer not in received:
                    complaints.append(
                        Complaint(g, self.protocol, self.session, self.identifier, dealer, None)
                    )
        elif self.is_receiver:
            for dealer, full in self._full.items():
                if dealer == self.identifier:
                    continue
                r2 = received.get(dealer)
                if r2 is None:
                    complaints.append(
                        Complaint(g, self.protocol, self.session, self.identifier, dealer, None)
                    )
                    continue
                s = r2.share.expose()
                if not _share_matches(g, full, self.identifier, s):
                    ev = b"" if evidence is None else evidence.get(dealer, b"")
                    complaints.append(
                        Complaint(g, self.protocol, self.session, self.identifier, dealer, s, ev)
                    )
                    continue
                shares[dealer] = SecretScalar(s)
                self._checked.add(dealer)
        self._shares.update(shares)
        out = ComplaintsPackage(g, self.protocol, self.session, self.identifier, tuple(complaints))
        self._own_complaints = out
        self._move(DkgState.ROUND3)
        return out

    def _sum_check(self, received: Mapping[int, Round2Package[E]]) -> bool:
        """Round 3's fast path: Σ_j s_j·G == (Σ_j C_j)(i) over every dealer j that sent us a
        share (and our own dealing), t multiplications instead of one check per dealer.

        Passing means our share of the sum of those dealings is consistent with the sum of their
        commitments, whatever the individual shares are: errors that cancel (colluding dealers
        sending +d and -d) do no harm while both dealers stay in QUAL, because only the sum is
        ever used. `finish` re-checks when QUAL turns out different (`_check_qualified`). On
        failure, the caller checks every share on its own to name the culprits (complaints).
        """
        g = self.group
        q = g.order
        included: list[int] = []
        total = 0
        for d in self._full:
            if d == self.identifier:
                own = self._shares.get(d)
                if own is None:
                    continue
                s = own.expose()
            elif d in received:
                s = received[d].share.expose()
            else:
                continue
            if not 0 <= s < q:
                return False
            total += s
            included.append(d)
        if not included:
            return True
        aggregate = tuple(
            g.sum(self._full[d][k] for d in included) for k in range(len(self._full[included[0]]))
        )
        expected = _eval_commitment(g, aggregate, self.identifier)
        ok = g.eq(g.base_mul(total % q), expected)
        del total
        if ok:
            self._sum_checked = (frozenset(included), aggregate, expected)
        return ok

    def _check_qualified(self, qualified: tuple[int, ...]) -> None:
        """After QUAL is fixed, make sure our final share is consistent with the final aggregate
        commitment, Σ over QUAL. That holds if round 3 checked exactly QUAL's sum, or checked each
        of QUAL's shares on its own. Otherwise (QUAL lost dealers after a passing sum check) each
        remaining share is checked on its own, and a dealer whose share fails is named in a
        `ProtocolAbort`: the complaint round is over, so nobody else can exclude it now. Sound:
        a failing share was authenticated as the dealer's (signed private message) and does not
        match the dealer's own broadcast commitment.
        """
        if self._sum_checked is not None and self._sum_checked[0] == frozenset(qualified):
            return
        bad = [
            d
            for d in qualified
            if d != self.identifier
            and d not in self._checked
            and d in self._shares
            and not _share_matches(
                self.group, self._full[d], self.identifier, self._shares[d].expose()
            )
        ]
        self._checked.update(d for d in qualified if d in self._shares and d not in bad)
        if bad:
            raise ProtocolAbort(
                f"{self.protocol}: dealers {bad} sent participant {self.identifier} shares that "
                "do not match their commitments (hidden by the sum check until QUAL changed)",
                bad,
            )

    def finish(self, received: Mapping[int, ComplaintsPackage[E]]) -> KeyShare[E] | None:
        """Resolve all complaints identically to every honest participant, fix QUAL and combine.

        Returns this participant's new KeyShare (None for a dealer that does not receive).
        Raises ProtocolAbort(culprits) when fewer than `min_qualified` dealers remain.
        """
        self._require(DkgState.ROUND3, "finish")
        for key, pkg in received.items():
            if key not in self.receivers:
                raise InvalidParticipants(f"complaints from {key}, who is not a receiver")
            self._check_message(pkg, key, getattr(pkg, "sender", key), ComplaintsPackage)
            for c in pkg.complaints:
                if (
                    c.group is not self.group
                    or c.session != self.session
                    or c.protocol != self.protocol
                ):
                    raise InvalidInput(f"complaint from {key} belongs to another session")
        packages = dict(received)
        if self.is_receiver and self._own_complaints is not None:
            packages[self.identifier] = self._own_complaints
        excluded = dict(self.excluded)
        false_accusers: set[int] = set()
        for sender in sorted(packages):
            for c in packages[sender].complaints:
                if c.accuser != sender:
                    # A complaint in someone else's name: the sender broadcast garbage.
                    false_accusers.add(sender)
                    continue
                if c.accused not in self._round1 or c.accused in excluded:
                    continue  # already out, or never in: nothing to decide
                culprit = verify_complaint(
                    c, self._round1[c.accused], evidence_verifier=self.evidence_verifier
                )
                if culprit == c.accused:
                    excluded[c.accused] = (
                        f"no share for {c.accuser}"
                        if c.share is None
                        else f"bad share for {c.accuser}"
                    )
                else:
                    false_accusers.add(c.accuser)
        for a in false_accusers:
            if a in self._round1 and a not in excluded:
                excluded[a] = "false accusation"
        self.excluded = excluded
        self.false_accusers = false_accusers
        qualified = tuple(d for d in self.dealers if d not in excluded)
        self.qualified = qualified
        if len(qualified) < self.min_qualified:
            raise self._fail(
                ProtocolAbort(
                    f"{self.protocol}: only {len(qualified)} qualified dealers, "
                    f"need {self.min_qualified}",
                    culprits=sorted(excluded),
                )
            )
        try:
            if self.aggregate_check and self.is_receiver:
                self._check_qualified(qualified)
            result = self._combine(qualified)
        except ProtocolAbort as exc:
            raise self._fail(exc) from None
        self._wipe()
        self._move(DkgState.DONE)
        return result

    # -- helpers for _combine ---------------------------------------------------------------------
    def _qualified_share_sum(
        self, qualified: Sequence[int], weights: Mapping[int, int] | None = None
    ) -> int:
        q = self.group.order
        total = 0
        for d in qualified:
            s = self._shares.get(d)
            if s is None:  # impossible for an honest receiver: complaints exclude such dealers
                raise ProtocolAbort(
                    f"{self.protocol}: no valid share from qualified dealer {d}", [d]
                )
            w = 1 if weights is None else weights[d]
            total = (total + w * s.expose()) % q
        return total

    def _verifying_shares(
        self, aggregate: Sequence[E], ids: Iterable[int], base: Mapping[int, E] | None = None
    ) -> dict[int, E]:
        """Y_l = base_l + Σ_k A_k·l^k for every l (forward differences over consecutive ids)."""
        g = self.group
        out: dict[int, E] = {}
        order = sorted(ids)
        for l_, y in zip(order, _eval_commitment_many(g, aggregate, order), strict=True):
            if base is not None:
                y = g.add(base[l_], y)
            if g.is_identity(y):
                raise ProtocolAbort(f"{self.protocol}: verifying share of {l_} is the identity", [])
            out[l_] = y
        return out


class DkgParticipant(VssParticipant[E]):
    """A participant of the Pedersen DKG with proofs of knowledge (FROST KeyGen + complaints).

    `context` must be unique per DKG run (a session id chosen by the gateway); it is bound, with the
    group, threshold and participant set, into the session id every message carries.
    """

    protocol: ClassVar[str] = "dkg"
    aggregate_check: ClassVar[bool] = True

    def __init__(
        self,
        group: Group[E],
        identifier: int,
        threshold: int,
        participants: Sequence[int],
        context: bytes,
        *,
        evidence_verifier: EvidenceVerifier | None = None,
    ) -> None:
        participants = list(participants)
        check_identifiers(participants, group.order)
        check_threshold(threshold, len(participants))
        if identifier not in participants:
            raise InvalidParticipants(f"identifier {identifier} is not a participant")
        if not isinstance(context, bytes):
            raise InvalidInput("context must be bytes")
        sid = session_id("dkg", group, context, threshold, participants)
        super().__init__(
            group,
            identifier,
            threshold,
            participants,
            participants,
            threshold,
            sid,
            evidence_verifier=evidence_verifier,
        )

    def finish(self, received: Mapping[int, ComplaintsPackage[E]]) -> KeyShare[E]:
        """See `VssParticipant.finish`; every DKG participant receives a share."""
        result = super().finish(received)
        assert result is not None
        return result

    def _constant(self) -> int:
        return self.group.random_scalar()

    def _proof(self, full: list[E]) -> ProofOfKnowledge[E]:
        a0 = self._coefficients[0].expose()
        return compute_proof_of_knowledge(self.group, self.identifier, a0, full[0], self.session)

    def _round1_problem(self, pkg: Round1Package[E]) -> str | None:
        if pkg.proof is None:
            return "missing proof of knowledge"
        if not verify_proof_of_knowledge(
            self.group, pkg.sender, pkg.commitment[0], pkg.proof, self.session
        ):
            return "invalid proof of knowledge"
        return None

    def _combine(self, qualified: tuple[int, ...]) -> KeyShare[E]:
        g = self.group
        s = self._qualified_share_sum(qualified)
        checked = self._sum_checked
        if checked is not None and checked[0] == frozenset(qualified):
            aggregate = list(checked[1])  # computed by round 3's sum check
        else:
            aggregate = [g.sum(self._full[d][k] for d in qualified) for k in range(self.threshold)]
        if g.is_identity(aggregate[0]):
            raise ProtocolAbort("dkg: the group public key is the identity", [])
        vshares = self._verifying_shares(aggregate, self.receivers)
        public = PublicKeyPackage(g, self.threshold, aggregate[0], vshares)
        if s == 0:
            raise ProtocolAbort("dkg: our key share is zero", [])
        try:
            return KeyShare(self.identifier, SecretScalar(s), public)
        except InvalidInput:  # cannot happen: every qualified share was checked
            raise ProtocolAbort("dkg: key share inconsistent with the commitments", []) from None


# =================================================================================================
# In-memory drivers
# =================================================================================================


def drive(
    parties: Mapping[int, VssParticipant[E]],
    *,
    round1_hook: Callable[[dict[int, Round1Package[E]]], object] | None = None,
    round2_hook: Callable[[dict[int, dict[int, Round2Package[E]]]], object] | None = None,
    round3_hook: Callable[[dict[int, ComplaintsPackage[E]]], object] | None = None,
) -> dict[int, KeyShare[E] | None]:
    """Run a VSS protocol among in-memory participants with perfect broadcast.

    Hooks may modify the messages in flight (tests use them to play cheating dealers):
    `round1_hook(broadcasts)`, `round2_hook(outboxes[sender][recipient])`, `round3_hook(complaints)`.
    """
    r1: dict[int, Round1Package[E]] = {}
    for i, p in parties.items():
        if p.is_dealer:
            r1[i] = p.round1()
        else:
            p.skip_round1()
    if round1_hook is not None:
        round1_hook(r1)
    outboxes: dict[int, dict[int, Round2Package[E]]] = {}
    for i, p in parties.items():
        outboxes[i] = p.round2({d: pkg for d, pkg in r1.items() if d != i})
    if round2_hook is not None:
        round2_hook(outboxes)
    r3: dict[int, ComplaintsPackage[E]] = {}
    for i, p in parties.items():
        inbox = {s: box[i] for s, box in outboxes.items() if i in box}
        pkg = p.round3(inbox)
        if p.is_receiver:
            r3[i] = pkg
    if round3_hook is not None:
        round3_hook(r3)
    return {i: p.finish({s: c for s, c in r3.items() if s != i}) for i, p in parties.items()}


def drive_shares(parties: Mapping[int, VssParticipant[E]]) -> dict[int, KeyShare[E]]:
    """`drive`, keeping the new KeyShares (a participant that only deals gets none)."""
    return {i: ks for i, ks in drive(parties).items() if ks is not None}


def run_dkg(
    group: Group[E], threshold: int, participants: Sequence[int], context: bytes = b"tholos-test"
) -> dict[int, KeyShare[E]]:
    """Run a whole DKG in memory (tests and benchmarks): {identifier: KeyShare}."""
    parties = {i: DkgParticipant(group, i, threshold, participants, context) for i in participants}
    return drive_shares(parties)
