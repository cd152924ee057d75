"""The coordinator's `SigningPackage`: the commitment list and the message (RFC 9591 section 5.2).

Validated on construction (non-empty, identifiers in 1..order-1, one suite, message bytes) and against
a key package by `check_against` (at least t signers, every signer in the key package). The wire form
lists commitments with their identifiers, so duplicates are rejected when parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from tholos.crypto._wire import unhex
from tholos.crypto.errors import InvalidInput, InvalidParticipants
from tholos.crypto.frost.ciphersuite import FORMAT_VERSION, Ciphersuite, check_suite, parse_dict
from tholos.crypto.frost.round1 import SigningCommitments
from tholos.crypto.keys import PublicKeyPackage

E = TypeVar("E")


class SigningPackage(Generic[E]):
    """Commitments of the chosen signers, by identifier, and the message to sign."""

    __slots__ = ("_encoded", "commitments", "identifiers", "message", "suite")

    def __init__(self, commitments: Mapping[int, SigningCommitments[E]], message: bytes) -> None:
        if not isinstance(message, bytes | bytearray):
            raise InvalidInput("message must be bytes")
        if not isinstance(commitments, Mapping) or not commitments:
            raise InvalidParticipants("a signing package needs at least one signer's commitments")
        first = next(iter(commitments.values()))
        if not isinstance(first, SigningCommitments):
            raise InvalidInput("commitments must be SigningCommitments")
        suite: Ciphersuite[E] = first.suite
        order = suite.group.order
        for i, c in commitments.items():
            if not isinstance(i, int) or isinstance(i, bool) or not 0 < i < order:
                raise InvalidParticipants(f"identifier {i!r} is not in 1..order-1")
            if not isinstance(c, SigningCommitments):
                raise InvalidInput("commitments must be SigningCommitments")
            check_suite(suite, c.suite, f"commitments of participant {i}")
        self.suite = suite
        # RFC 9591 section 4.3: the commitment list is sorted by identifier.
        self.identifiers: tuple[int, ...] = tuple(sorted(commitments))
        self.commitments: dict[int, SigningCommitments[E]] = {
            i: commitments[i] for i in self.identifiers
        }
        self.message = bytes(message)
        self._encoded: bytes | None = None

    def check_against(self, public: PublicKeyPackage[E]) -> None:
        """Raise InvalidParticipants unless there are >= t signers, all in the key package."""
        if public.group is not self.suite.group:
            raise InvalidInput(
                f"key package is over {public.group.name}, suite needs {self.suite.group.name}"
            )
        unknown = [i for i in self.identifiers if i not in public.verifying_shares]
        if unknown:
            raise InvalidParticipants(f"signers {unknown} are not in the key package")
        if len(self.identifiers) < public.threshold:
            raise InvalidParticipants(
                f"{len(self.identifiers)} signers, the threshold is {public.threshold}"
            )

    def encode_group_commitment_list(self) -> bytes:
        """RFC 9591 section 4.3: Σ SerializeScalar(id) || SerializeElement(D) || SerializeElement(E),
        sorted by identifier. Cached."""
        if self._encoded is None:
            ser = self.suite.group.serialize_scalar
            self._encoded = b"".join(
                ser(i) + c.hiding_enc + c.binding_enc for i, c in self.commitments.items()
            )
        return self._encoded

    def __repr__(self) -> str:
        return (
            f"SigningPackage(suite={self.suite.name}, signers={list(self.identifiers)}, "
            f"message={len(self.message)} bytes)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "suite": self.suite.name,
            "message": self.message.hex(),
            "commitments": [
                {
                    "identifier": i,
                    "hiding": c.hiding_enc.hex(),
                    "binding": c.binding_enc.hex(),
                }
                for i, c in self.commitments.items()
            ],
        }

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], suite: Ciphersuite[Any] | None = None
    ) -> SigningPackage[Any]:
        s, d = parse_dict(d, ("message", "commitments"), suite, "signing package")
        entries = d["commitments"]
        if not isinstance(entries, list):
            raise InvalidInput("signing package: commitments must be a list")
        commitments: dict[int, SigningCommitments[Any]] = {}
        for e in entries:
            if not isinstance(e, dict) or set(e) != {"identifier", "hiding", "binding"}:
                raise InvalidInput("signing package: malformed commitment entry")
            i = e["identifier"]
            if not isinstance(i, int) or isinstance(i, bool):
                raise InvalidParticipants(f"identifier {i!r} is not an int")
            if i in commitments:
                raise InvalidParticipants(f"identifier {i} appears twice")
            commitments[i] = SigningCommitments.from_dict(
                {
                    "version": FORMAT_VERSION,
                    "suite": s.name,
                    "hiding": e["hiding"],
                    "binding": e["binding"],
                },
                s,
            )
        return cls(commitments, unhex(d["message"], "message"))
