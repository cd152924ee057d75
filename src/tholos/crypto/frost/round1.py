"""Round one: nonce generation and commitment (RFC 9591 sections 4.1 and 5.1).

`commit` returns fresh `SigningNonces` (secret, kept by the signer, used exactly once) and their public
`SigningCommitments` (sent to the coordinator). Nodes pre-generate pools of these with `commit_many`.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any, Generic, TypeVar

from tholos.crypto._wire import unhex
from tholos.crypto.errors import InvalidInput, NonceReuse
from tholos.crypto.frost.ciphersuite import (
    FORMAT_VERSION,
    Ciphersuite,
    parse_compact,
    parse_dict,
)
from tholos.crypto.keys import KeyShare
from tholos.crypto.secret import SecretScalar

E = TypeVar("E")


def nonce_generate(suite: Ciphersuite[Any], secret: int, random_bytes: bytes | None = None) -> int:
    """RFC 9591 section 4.1: H3(random_bytes || SerializeScalar(secret)), 32 fresh random bytes.

    `random_bytes` is for test vectors only; production callers leave it None."""
    if random_bytes is None:
        random_bytes = secrets.token_bytes(32)
    elif len(random_bytes) != 32:
        raise InvalidInput("nonce randomness must be 32 bytes")
    return suite.H3(random_bytes + suite.group.serialize_scalar(secret))


class SigningCommitments(Generic[E]):
    """A participant's public nonce commitments (D, E) = (hiding·G, binding·G), RFC 9591 section 5.1.

    The serialized encodings are computed once and cached: binding factors hash them. Construct from
    received bytes only through `from_bytes` / `from_dict`, which validate the elements."""

    __slots__ = ("binding", "binding_enc", "hiding", "hiding_enc", "suite")

    def __init__(self, suite: Ciphersuite[E], hiding: E, binding: E) -> None:
        g = suite.group
        self.suite = suite
        self.hiding = hiding
        self.binding = binding
        self.hiding_enc = g.serialize_element(hiding)  # raises InvalidElement on the identity
        self.binding_enc = g.serialize_element(binding)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningCommitments):
            return NotImplemented
        return (
            self.suite is other.suite
            and self.hiding_enc == other.hiding_enc
            and self.binding_enc == other.binding_enc
        )

    def __hash__(self) -> int:
        return hash((self.suite.name, self.hiding_enc, self.binding_enc))

    def __repr__(self) -> str:
        return (
            f"SigningCommitments(suite={self.suite.name}, hiding={self.hiding_enc.hex()}, "
            f"binding={self.binding_enc.hex()})"
        )

    # -- wire forms -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """version (1 byte) || suite code (1 byte) || SerializeElement(D) || SerializeElement(E)."""
        return bytes([FORMAT_VERSION, self.suite.code]) + self.hiding_enc + self.binding_enc

    @classmethod
    def from_bytes(
        cls, data: bytes, suite: Ciphersuite[Any] | None = None
    ) -> SigningCommitments[Any]:
        s, body = parse_compact(data, suite, "signing commitments")
        g = s.group
        n = g.element_length
        if len(body) != 2 * n:
            raise InvalidInput(f"signing commitments: expected {2 + 2 * n} bytes")
        return cls(s, g.deserialize_element(body[:n]), g.deserialize_element(body[n:]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "suite": self.suite.name,
            "hiding": self.hiding_enc.hex(),
            "binding": self.binding_enc.hex(),
        }

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], suite: Ciphersuite[Any] | None = None
    ) -> SigningCommitments[Any]:
        s, d = parse_dict(d, ("hiding", "binding"), suite, "signing commitments")
        g = s.group
        return cls(
            s,
            g.deserialize_element(unhex(d["hiding"], "hiding")),
            g.deserialize_element(unhex(d["binding"], "binding")),
        )


_CONSUME_LOCK = threading.Lock()


class SigningNonces(Generic[E]):
    """A participant's secret nonce pair (hiding, binding) with its commitments. Single use.

    `round2.sign` consumes it: the scalars are wiped and any second use raises NonceReuse. The repr
    is redacted. For storage use `export_secret` / `import_secret` (the node seals the result and
    marks the pool entry used before a share leaves; an imported copy cannot know about earlier use).
    """

    __slots__ = ("_binding", "_hiding", "_used", "commitments", "suite")

    def __init__(
        self,
        suite: Ciphersuite[E],
        hiding: SecretScalar,
        binding: SecretScalar,
        commitments: SigningCommitments[E],
    ) -> None:
        self.suite = suite
        self._hiding = hiding
        self._binding = binding
        self.commitments = commitments
        self._used = False

    @classmethod
    def from_nonces(cls, suite: Ciphersuite[E], hiding: int, binding: int) -> SigningNonces[E]:
        """Nonces from given scalars, commitments computed (tests, vectors and import)."""
        g = suite.group
        for k in (hiding, binding):
            g.check_scalar(k)
            if k == 0:
                raise InvalidInput("a nonce may not be zero")
        return cls(
            suite,
            SecretScalar(hiding),
            SecretScalar(binding),
            SigningCommitments(suite, g.base_mul(hiding), g.base_mul(binding)),
        )

    @property
    def used(self) -> bool:
        return self._used

    def peek(self) -> tuple[int, int]:
        """(hiding, binding) without consuming; raises NonceReuse if already used. Internal to
        `round2.sign`, which consumes them before any value derived from them leaves."""
        if self._used:
            raise NonceReuse("these signing nonces were already used")
        return self._hiding.expose(), self._binding.expose()

    def consume(self) -> tuple[int, int]:
        """Return (hiding, binding) once, then wipe them; raises NonceReuse on any later call
        (atomic, also across threads)."""
        with _CONSUME_LOCK:
            if self._used:
                raise NonceReuse("these signing nonces were already used")
            self._used = True
        d, e = self._hiding.expose(), self._binding.expose()
        self._hiding.wipe()
        self._binding.wipe()
        return d, e

    def __repr__(self) -> str:
        state = "used" if self._used else "fresh"
        return f"SigningNonces(suite={self.suite.name}, {state}, secret=<redacted>)"

    def __reduce__(self) -> Any:
        raise TypeError("signing nonces are not pickled; use export_secret and seal the result")

    def export_secret(self) -> dict[str, Any]:
        """The secret nonces for sealing at rest only. Never log or send this."""
        if self._used:
            raise NonceReuse("these signing nonces were already used")
        g = self.suite.group
        return {
            "version": FORMAT_VERSION,
            "suite": self.suite.name,
            "hiding_nonce": g.serialize_scalar(self._hiding.expose()).hex(),
            "binding_nonce": g.serialize_scalar(self._binding.expose()).hex(),
            "commitments": self.commitments.to_dict(),
        }

    @classmethod
    def import_secret(cls, d: dict[str, Any], *, check: bool = True) -> SigningNonces[Any]:
        """Inverse of `export_secret`. With `check` (default) the commitments are recomputed from the
        nonces and compared (two base multiplications); pass check=False only for storage that is
        already authenticated (the node's AEAD barrier)."""
        fields = ("hiding_nonce", "binding_nonce", "commitments")
        suite, d = parse_dict(d, fields, None, "signing nonces")
        g = suite.group
        hiding = g.deserialize_scalar(unhex(d["hiding_nonce"], "hiding_nonce"))
        binding = g.deserialize_scalar(unhex(d["binding_nonce"], "binding_nonce"))
        if check:
            nonces = cls.from_nonces(suite, hiding, binding)
            if nonces.commitments != SigningCommitments.from_dict(d["commitments"], suite):
                raise InvalidInput("signing nonces: commitments do not match the nonces")
            return nonces
        if hiding == 0 or binding == 0:
            raise InvalidInput("a nonce may not be zero")
        return cls(
            suite,
            SecretScalar(hiding),
            SecretScalar(binding),
            SigningCommitments.from_dict(d["commitments"], suite),
        )


def commit(
    suite: Ciphersuite[E], key_share: KeyShare[E]
) -> tuple[SigningNonces[E], SigningCommitments[E]]:
    """RFC 9591 section 5.1: fresh nonces derived from the OS CSPRNG and the signer's share
    (hedged against a weak RNG), and their commitments."""
    if key_share.group is not suite.group:
        raise InvalidInput(
            f"key share is over {key_share.group.name}, suite needs {suite.group.name}"
        )
    s = key_share.secret_share.expose()
    g = suite.group
    while True:
        hiding = nonce_generate(suite, s)
        binding = nonce_generate(suite, s)
        if hiding and binding:  # zero has probability ~2^-252; RFC 9591 would fail serialization
            break
    comms = SigningCommitments(suite, g.base_mul(hiding), g.base_mul(binding))
    nonces = SigningNonces(suite, SecretScalar(hiding), SecretScalar(binding), comms)
    return nonces, comms


def commit_many(
    suite: Ciphersuite[E], key_share: KeyShare[E], count: int
) -> list[tuple[SigningNonces[E], SigningCommitments[E]]]:
    """`count` independent `commit` results, for a node's nonce pool."""
    if not isinstance(count, int) or count < 0:
        raise InvalidInput("count must be a non-negative int")
    return [commit(suite, key_share) for _ in range(count)]
