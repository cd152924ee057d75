"""Non-interactive proofs of knowledge of a witness vector satisfying linear equations in a group.

Statement: public equations  Y_e = Σ_(j, B) w_j·B  (each term a witness index j and a base B);
the prover knows the scalars w. This is the generic Maurer / Camenisch–Stadler sigma protocol
("Unifying zero-knowledge proofs of knowledge", AFRICACRYPT 2009) made non-interactive by
Fiat–Shamir; it covers Schnorr, Chaum–Pedersen DLEQ (Crypto 1992) and Pedersen-opening proofs.

Proof = (challenge c, responses z_j = r_j + c·w_j). Verification recomputes the commitments
A_e = Σ z_j·B − c·Y_e and the challenge. The challenge hashes a caller-chosen domain tag, a context
(session, prover identifier, ...), every base and target and the commitments with SHA-512, reduced
mod the group order (bias < 2^-250). Hazmat: callers must bind enough context to prevent replays.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tholos.crypto.errors import InvalidInput, InvalidScalar
from tholos.crypto.groups.base import Group

E = TypeVar("E")


@dataclass(frozen=True)
class Equation(Generic[E]):
    """target = Σ w[index]·base over `terms`."""

    terms: tuple[tuple[int, E], ...]
    target: E


@dataclass(frozen=True)
class LinearProof:
    challenge: int
    responses: tuple[int, ...]

    def to_bytes(self, group: Group[E]) -> bytes:
        return b"".join(group.serialize_scalar(x) for x in (self.challenge, *self.responses))

    @classmethod
    def from_bytes(cls, group: Group[E], data: bytes, n_witnesses: int) -> LinearProof:
        n = group.scalar_length
        if not isinstance(data, bytes | bytearray) or len(data) != n * (n_witnesses + 1):
            raise InvalidInput(f"proof must be {n * (n_witnesses + 1)} bytes")
        vals = [
            group.deserialize_scalar(bytes(data[i * n : (i + 1) * n]))
            for i in range(n_witnesses + 1)
        ]
        return cls(vals[0], tuple(vals[1:]))


def _enc(group: Group[E], e: E) -> bytes:
    return b"\x00" if group.is_identity(e) else b"\x01" + group.serialize_element(e)


def _challenge(
    group: Group[E],
    tag: bytes,
    context: bytes,
    eqs: Sequence[Equation[E]],
    commitments: Sequence[E],
) -> int:
    h = hashlib.sha512()
    for part in (b"tholos/sigma/v1", tag, group.name.encode(), context):
        h.update(len(part).to_bytes(4, "big") + part)
    h.update(len(eqs).to_bytes(4, "big"))
    encoded: dict[int, bytes] = {}  # bases recur across equations (G, H, ...): encode each once

    def enc(e: E) -> bytes:
        got = encoded.get(id(e))
        if got is None:
            got = encoded[id(e)] = _enc(group, e)
        return got

    for eq in eqs:
        h.update(len(eq.terms).to_bytes(4, "big"))
        for j, base in eq.terms:
            h.update(j.to_bytes(4, "big") + enc(base))
        h.update(enc(eq.target))
    for a in commitments:
        h.update(_enc(group, a))
    return int.from_bytes(h.digest(), "big") % group.order


def _check_shape(eqs: Sequence[Equation[E]], n: int) -> None:
    """Every equation has terms, and the witnesses referenced are exactly 0..n-1."""
    if not eqs or any(not eq.terms for eq in eqs):
        raise InvalidInput("no equations, or an equation without terms")
    if {j for eq in eqs for j, _ in eq.terms} != set(range(n)):
        raise InvalidInput(f"the equations do not use exactly the witnesses 0..{n - 1}")


def prove(
    group: Group[E],
    tag: bytes,
    context: bytes,
    witnesses: Sequence[int],
    eqs: Sequence[Equation[E]],
) -> LinearProof:
    """Prove knowledge of `witnesses` satisfying `eqs` (the caller guarantees they do)."""
    _check_shape(eqs, len(witnesses))
    q = group.order
    nonces = [secrets.randbelow(q) for _ in witnesses]
    commitments = [group.multi_mul([(b, nonces[j]) for j, b in eq.terms]) for eq in eqs]
    c = _challenge(group, tag, context, eqs, commitments)
    return LinearProof(c, tuple((r + c * w) % q for r, w in zip(nonces, witnesses, strict=True)))


def verify(
    group: Group[E], tag: bytes, context: bytes, eqs: Sequence[Equation[E]], proof: LinearProof
) -> bool:
    """True iff the proof is valid for the equations and context (one response per witness the
    equations use: a proof with extra or missing responses is invalid, not malleable)."""
    try:
        _check_shape(eqs, len(proof.responses))
    except InvalidInput:
        return False
    q = group.order
    try:
        for x in (proof.challenge, *proof.responses):
            group.check_scalar(x)
    except InvalidScalar:
        return False
    c = proof.challenge
    commitments = [
        group.multi_mul([(b, proof.responses[j]) for j, b in eq.terms] + [(eq.target, q - c)])
        for eq in eqs
    ]
    return _challenge(group, tag, context, eqs, commitments) == c
