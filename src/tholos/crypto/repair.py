"""Repair of one lost share by t helpers, without revealing the helpers' shares.

References: Laing-Stinson, "A survey and refinement of repairable threshold schemes" (2017,
https://eprint.iacr.org/2017/1155), the enrollment protocol; ZcashFoundation/frost
`frost-core/src/keys/repairable.rs` (`repair_share_step_1/2/3`, same arithmetic).

Helpers H (|H| >= t), lost participant r with f(r) = Σ_{i in H} ζ_i s_i, ζ_i = λ_i^H(r):
1. helper i splits ζ_i·s_i into |H| random summands δ_ij (Σ_j δ_ij = ζ_i s_i) and sends δ_ij to
   helper j (privately);
2. helper j sends σ_j = Σ_i δ_ij to r (privately);
3. r computes s_r = Σ_j σ_j and checks it against its public verifying share Y_r.

Addition (not in the RTS paper nor in Zcash): helper i also broadcasts D_ij = δ_ij·G. Anyone checks
Σ_j D_ij = ζ_i·Y_i (public), helper j checks δ_ij·G = D_ij, and r checks σ_j·G = Σ_i D_ij, so a helper
that sends a wrong value is named (InvalidShare(culprits=[i])) instead of only producing a bad share.
The D_ij reveal nothing new: their sum is the public ζ_i·Y_i and each δ_ij is uniformly random.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from tholos.crypto._wire import parse_id_map
from tholos.crypto.dkg import (
    _header,
    _parse_header,
    _parse_hex,
    _parse_int,
    session_id,
)
from tholos.crypto.errors import InvalidInput, InvalidParticipants, InvalidShare
from tholos.crypto.groups.base import Group
from tholos.crypto.hazmat.shamir import lagrange_coefficient
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

__all__ = [
    "RepairCommitment",
    "RepairDelta",
    "RepairSigma",
    "repair_session",
    "repair_step1",
    "repair_step2",
    "repair_step3",
    "run_repair",
    "sum_scalars",
]

E = TypeVar("E")


def sum_scalars(group: Group[Any], values: Iterable[int]) -> int:
    """Σ values mod order (steps 2 and 3 of the RTS; what Zcash's repair vectors check)."""
    total = 0
    for v in values:
        total = (total + group.check_scalar(v)) % group.order
    return total


def repair_session(
    public: PublicKeyPackage[Any], helpers: Sequence[int], lost: int, context: bytes
) -> bytes:
    """Session id binding the key, the helper set, the lost identifier and the caller's context."""
    g = public.group
    return session_id(
        "repair", g, context, lost, helpers, g.serialize_element(public.group_public_key)
    )


def _check_setup(public: PublicKeyPackage[Any], helpers: Sequence[int], lost: int) -> list[int]:
    hs = public.check_members(helpers, "helpers")
    if lost in hs:
        raise InvalidParticipants(f"participant {lost} cannot help repair its own share")
    if lost not in public.verifying_shares:
        raise InvalidParticipants(f"participant {lost} is not in the key package")
    return hs


@dataclass(frozen=True)
class RepairCommitment(Generic[E]):
    """Broadcast of step 1: D_ij = δ_ij·G for every helper j."""

    group: Group[E]
    session: bytes
    sender: int
    commitments: dict[int, E]

    TYPE: ClassVar[str] = "repair/commitment"

    def to_dict(self) -> dict[str, Any]:
        d = _header(self.TYPE, self.group, self.session)
        d["sender"] = self.sender
        d["commitments"] = {
            str(j): self.group.serialize_element(c).hex()
            for j, c in sorted(self.commitments.items())
        }
        return d

    @classmethod
    def from_dict(cls, d: object) -> RepairCommitment[Any]:
        d, g, session = _parse_header(d, cls.TYPE, {"sender", "commitments"})
        raw = parse_id_map(d["commitments"], "repair commitment")
        cs = {j: g.deserialize_element(_parse_hex(c, "commitment")) for j, c in raw.items()}
        return cls(g, session, _parse_int(d["sender"], "sender"), cs)


@dataclass(frozen=True, repr=False)
class RepairDelta(Generic[E]):
    """Private, helper `sender` to helper `recipient`: δ_sender,recipient."""

    group: Group[E]
    session: bytes
    sender: int
    recipient: int
    value: SecretScalar = field(compare=False)

    TYPE: ClassVar[str] = "repair/delta"

    def __repr__(self) -> str:
        return f"RepairDelta(sender={self.sender}, recipient={self.recipient}, value=<redacted>)"

    def to_dict(self) -> dict[str, Any]:
        """Contains a secret value: encrypt to the recipient."""
        d = _header(self.TYPE, self.group, self.session)
        d["sender"] = self.sender
        d["recipient"] = self.recipient
        d["value"] = self.group.serialize_scalar(self.value.expose()).hex()
        return d

    @classmethod
    def from_dict(cls, d: object) -> RepairDelta[Any]:
        d, g, session = _parse_header(d, cls.TYPE, {"sender", "recipient", "value"})
        value = g.deserialize_scalar(_parse_hex(d["value"], "value"))
        return cls(
            g,
            session,
            _parse_int(d["sender"], "sender"),
            _parse_int(d["recipient"], "recipient"),
            SecretScalar(value),
        )


@dataclass(frozen=True, repr=False)
class RepairSigma(Generic[E]):
    """Private, helper `sender` to the lost participant: σ_sender."""

    group: Group[E]
    session: bytes
    sender: int
    value: SecretScalar = field(compare=False)

    TYPE: ClassVar[str] = "repair/sigma"

    def __repr__(self) -> str:
        return f"RepairSigma(sender={self.sender}, value=<redacted>)"

    def to_dict(self) -> dict[str, Any]:
        """Contains a secret value: encrypt to the lost participant."""
        d = _header(self.TYPE, self.group, self.session)
        d["sender"] = self.sender
        d["value"] = self.group.serialize_scalar(self.value.expose()).hex()
        return d

    @classmethod
    def from_dict(cls, d: object) -> RepairSigma[Any]:
        d, g, session = _parse_header(d, cls.TYPE, {"sender", "value"})
        value = g.deserialize_scalar(_parse_hex(d["value"], "value"))
        return cls(g, session, _parse_int(d["sender"], "sender"), SecretScalar(value))


def repair_step1(
    key_share: KeyShare[E], helpers: Sequence[int], lost: int, context: bytes
) -> tuple[RepairCommitment[E], dict[int, RepairDelta[E]]]:
    """Helper i: split ζ_i·s_i into random δ_ij; returns (broadcast, {j: private delta}) where the
    delta for i itself is included (keep it, do not send it)."""
    public = key_share.public
    hs = _check_setup(public, helpers, lost)
    i = key_share.identifier
    if i not in hs:
        raise InvalidParticipants(f"{i} is not one of the helpers")
    g = public.group
    q = g.order
    session = repair_session(public, hs, lost, context)
    zeta = lagrange_coefficient(hs, i, q, x=lost)
    target = zeta * key_share.secret_share.expose() % q
    deltas = [g.random_scalar() for _ in hs[:-1]]
    deltas.append((target - sum(deltas)) % q)
    target = 0
    commitments = {j: g.base_mul(d) for j, d in zip(hs, deltas, strict=True)}
    out = {
        j: RepairDelta(g, session, i, j, SecretScalar(d)) for j, d in zip(hs, deltas, strict=True)
    }
    deltas[:] = [0] * len(deltas)
    return RepairCommitment(g, session, i, commitments), out


def _check_commitments(
    public: PublicKeyPackage[E],
    hs: list[int],
    lost: int,
    session: bytes,
    commitments: Mapping[int, RepairCommitment[E]],
) -> None:
    g = public.group
    if sorted(commitments) != hs:
        raise InvalidInput("need exactly one repair commitment from every helper")
    bad = []
    for i, c in commitments.items():
        if c.group is not g or c.session != session or c.sender != i:
            raise InvalidInput(f"repair commitment from {i} belongs to another session")
        if sorted(c.commitments) != hs:
            bad.append(i)
            continue
        zeta = lagrange_coefficient(hs, i, g.order, x=lost)
        if not g.eq(g.sum(c.commitments.values()), g.mul(public.verifying_shares[i], zeta)):
            bad.append(i)
    if bad:
        raise InvalidShare("repair commitments do not add up to ζ_i·Y_i", culprits=bad)


def repair_step2(
    key_share: KeyShare[E],
    helpers: Sequence[int],
    lost: int,
    context: bytes,
    commitments: Mapping[int, RepairCommitment[E]],
    deltas: Mapping[int, RepairDelta[E]],
) -> RepairSigma[E]:
    """Helper j: check and add the deltas received (its own included): σ_j = Σ_i δ_ij."""
    public = key_share.public
    hs = _check_setup(public, helpers, lost)
    j = key_share.identifier
    if j not in hs:
        raise InvalidParticipants(f"{j} is not one of the helpers")
    g = public.group
    session = repair_session(public, hs, lost, context)
    _check_commitments(public, hs, lost, session, commitments)
    if sorted(deltas) != hs:
        raise InvalidInput("need exactly one delta from every helper (our own included)")
    bad = []
    for i, d in deltas.items():
        if d.group is not g or d.session != session or d.sender != i or d.recipient != j:
            raise InvalidInput(f"delta from {i} is not for {j} in this session")
        if not g.eq(g.base_mul(d.value.expose()), commitments[i].commitments[j]):
            bad.append(i)
    if bad:
        raise InvalidShare("deltas inconsistent with their commitments", culprits=bad)
    sigma = sum_scalars(g, (d.value.expose() for d in deltas.values()))
    return RepairSigma(g, session, j, SecretScalar(sigma))


def repair_step3(
    public: PublicKeyPackage[E],
    helpers: Sequence[int],
    lost: int,
    context: bytes,
    commitments: Mapping[int, RepairCommitment[E]],
    sigmas: Mapping[int, RepairSigma[E]],
) -> KeyShare[E]:
    """The lost participant: s = Σ_j σ_j, checked against the commitments and Y_lost."""
    hs = _check_setup(public, helpers, lost)
    g = public.group
    session = repair_session(public, hs, lost, context)
    _check_commitments(public, hs, lost, session, commitments)
    if sorted(sigmas) != hs:
        raise InvalidInput("need exactly one sigma from every helper")
    bad = []
    for j, s in sigmas.items():
        if s.group is not g or s.session != session or s.sender != j:
            raise InvalidInput(f"sigma from {j} belongs to another session")
        expected = g.sum(commitments[i].commitments[j] for i in hs)
        if not g.eq(g.base_mul(s.value.expose()), expected):
            bad.append(j)
    if bad:
        raise InvalidShare("sigmas inconsistent with the delta commitments", culprits=bad)
    share = sum_scalars(g, (s.value.expose() for s in sigmas.values()))
    return KeyShare(lost, SecretScalar(share), public)


def run_repair(
    shares: Mapping[int, KeyShare[E]], lost: int, context: bytes = b"tholos-test-repair"
) -> KeyShare[E]:
    """In-memory repair of `lost`'s share by the holders of `shares` (tests)."""
    hs = sorted(shares)
    step1 = {i: repair_step1(shares[i], hs, lost, context) for i in hs}
    commitments = {i: c for i, (c, _) in step1.items()}
    sigmas = {
        j: repair_step2(shares[j], hs, lost, context, commitments, {i: step1[i][1][j] for i in hs})
        for j in hs
    }
    public = shares[hs[0]].public
    return repair_step3(public, hs, lost, context, commitments, sigmas)
