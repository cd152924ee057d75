"""The prime-order group interface every protocol is written against (RFC 9591, section 3.1).

Scalars are Python ints mod `order`. Elements are the native library's representation, opaque to
protocol code; the identity is representable (protocol code must never have to special-case it).
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from tholos.crypto.errors import InvalidScalar

E = TypeVar("E")


class Group(ABC, Generic[E]):
    """A prime-order group with canonical encodings. Implementations wrap native libraries."""

    name: str
    order: int
    element_length: int
    scalar_length: int

    # -- elements -------------------------------------------------------------------------------
    @abstractmethod
    def identity(self) -> E: ...

    @abstractmethod
    def generator(self) -> E: ...

    @abstractmethod
    def is_identity(self, a: E) -> bool: ...

    @abstractmethod
    def base_mul(self, k: int) -> E:
        """k·G for any int k (reduced mod order; 0 gives the identity)."""

    @abstractmethod
    def mul(self, a: E, k: int) -> E:
        """k·A for any int k (reduced mod order)."""

    @abstractmethod
    def add(self, a: E, b: E) -> E: ...

    @abstractmethod
    def neg(self, a: E) -> E: ...

    def sub(self, a: E, b: E) -> E:
        return self.add(a, self.neg(b))

    def sum(self, elements: Iterable[E]) -> E:
        """Sum of many elements; implementations override with a native batch add."""
        acc = self.identity()
        for e in elements:
            acc = self.add(acc, e)
        return acc

    def multi_mul(self, pairs: Sequence[tuple[E, int]]) -> E:
        """Σ k_i·A_i."""
        return self.sum(self.mul(a, k) for a, k in pairs)

    @abstractmethod
    def eq(self, a: E, b: E) -> bool: ...

    @abstractmethod
    def serialize_element(self, a: E) -> bytes:
        """Canonical encoding; raises InvalidElement for the identity (RFC 9591 SerializeElement)."""

    @abstractmethod
    def deserialize_element(self, data: bytes) -> E:
        """Parse and validate: raises InvalidElement on wrong length, off-curve, non-canonical,
        identity, or (where the curve has a cofactor) an element outside the prime-order subgroup."""

    # -- scalars ----------------------------------------------------------------------------------
    @abstractmethod
    def serialize_scalar(self, k: int) -> bytes: ...

    @abstractmethod
    def deserialize_scalar(self, data: bytes) -> int:
        """Parse a canonical scalar; raises InvalidScalar if the length is wrong or value >= order."""

    def random_scalar(self) -> int:
        """Uniform non-zero scalar from the OS CSPRNG."""
        while True:
            k = secrets.randbelow(self.order)
            if k:
                return k

    def check_scalar(self, k: int) -> int:
        """Validate an int scalar received from outside: 0 <= k < order."""
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < self.order:
            raise InvalidScalar(f"{self.name}: scalar out of range")
        return k

    def __repr__(self) -> str:
        return f"<Group {self.name}>"
