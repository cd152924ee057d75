"""Threshold key material shared by DKG, signing, refresh, reshare and repair.

`PublicKeyPackage` is public (group key, every participant's verifying share, threshold).
`KeyShare` holds one participant's secret share; its repr is redacted and it is exported only
through the explicitly named `export_secret` / `import_secret` pair (for sealing at rest).
Every serialized form carries {version, group}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tholos.crypto.errors import InvalidInput, InvalidParticipants
from tholos.crypto.groups import ED25519, SECP256K1, Group
from tholos.crypto.hazmat.shamir import check_identifiers, interpolate_elements
from tholos.crypto.secret import SecretScalar

E = TypeVar("E")
FORMAT_VERSION = 1

_GROUPS: dict[str, Group[Any]] = {SECP256K1.name: SECP256K1, ED25519.name: ED25519}


def register_group(group: Group[Any]) -> None:
    """Make a group known to deserialization (BLS12-381 G1 registers itself on import)."""
    _GROUPS[group.name] = group


def group_by_name(name: str) -> Group[Any]:
    if name not in _GROUPS and name.startswith("bls12_381"):
        import tholos.crypto.groups.bls12381  # noqa: F401  (registers itself; loads blst lazily)
    try:
        return _GROUPS[name]
    except KeyError:
        raise InvalidInput(f"unknown group {name!r}") from None


@dataclass(frozen=True)
class PublicKeyPackage(Generic[E]):
    """The public outcome of a DKG: group key Y = s·G and verifying shares Y_i = s_i·G."""

    group: Group[E]
    threshold: int
    group_public_key: E
    verifying_shares: dict[int, E]

    def __post_init__(self) -> None:
        ids = list(self.verifying_shares)
        check_identifiers(ids, self.group.order)
        if not 1 <= self.threshold <= len(ids):
            raise InvalidParticipants(
                f"threshold {self.threshold} impossible with {len(ids)} participants"
            )

    @property
    def identifiers(self) -> list[int]:
        return sorted(self.verifying_shares)

    def check_consistent(self) -> None:
        """Verifying shares of every t-subset interpolate to the group key (spot check on the first t
        and the last t identifiers); raises InvalidInput otherwise."""
        ids = self.identifiers
        t = self.threshold
        for subset in (ids[:t], ids[-t:]):
            pts = {i: self.verifying_shares[i] for i in subset}
            if not self.group.eq(interpolate_elements(self.group, pts), self.group_public_key):
                raise InvalidInput("verifying shares do not interpolate to the group public key")

    def tweaked(self, tweak: int) -> PublicKeyPackage[E]:
        """Package of the key s + tweak: adding a constant to the sharing polynomial adds it to
        every share (Lagrange coefficients at 0 sum to 1). Used by BIP32 and BIP341 tweaks."""
        g = self.group
        tg = g.base_mul(tweak)
        return PublicKeyPackage(
            group=g,
            threshold=self.threshold,
            group_public_key=g.add(self.group_public_key, tg),
            verifying_shares={i: g.add(y, tg) for i, y in self.verifying_shares.items()},
        )

    def negated(self) -> PublicKeyPackage[E]:
        """Package of the key -s (BIP340 even-Y normalisation)."""
        g = self.group
        return PublicKeyPackage(
            group=g,
            threshold=self.threshold,
            group_public_key=g.neg(self.group_public_key),
            verifying_shares={i: g.neg(y) for i, y in self.verifying_shares.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        g = self.group
        return {
            "version": FORMAT_VERSION,
            "group": g.name,
            "threshold": self.threshold,
            "group_public_key": g.serialize_element(self.group_public_key).hex(),
            "verifying_shares": {
                str(i): g.serialize_element(y).hex()
                for i, y in sorted(self.verifying_shares.items())
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublicKeyPackage[Any]:
        if d.get("version") != FORMAT_VERSION:
            raise InvalidInput(f"unsupported public key package version {d.get('version')!r}")
        g = group_by_name(d["group"])
        try:
            return cls(
                group=g,
                threshold=int(d["threshold"]),
                group_public_key=g.deserialize_element(bytes.fromhex(d["group_public_key"])),
                verifying_shares={
                    int(i): g.deserialize_element(bytes.fromhex(y))
                    for i, y in d["verifying_shares"].items()
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"malformed public key package: {type(exc).__name__}") from None


@dataclass(frozen=True, repr=False)
class KeyShare(Generic[E]):
    """Participant `identifier`'s secret share s_i with the public package it belongs to."""

    identifier: int
    secret_share: SecretScalar = field(compare=False)
    public: PublicKeyPackage[E]

    def __post_init__(self) -> None:
        if self.identifier not in self.public.verifying_shares:
            raise InvalidParticipants(f"identifier {self.identifier} is not in the key package")
        g = self.public.group
        if not g.eq(
            g.base_mul(self.secret_share.expose()), self.public.verifying_shares[self.identifier]
        ):
            raise InvalidInput("secret share does not match its verifying share")

    @property
    def group(self) -> Group[E]:
        return self.public.group

    def __repr__(self) -> str:
        return f"KeyShare(identifier={self.identifier}, group={self.group.name}, secret=<redacted>)"

    def tweaked(self, tweak: int) -> KeyShare[E]:
        """This participant's share of s + tweak (see PublicKeyPackage.tweaked)."""
        q = self.group.order
        return KeyShare(
            identifier=self.identifier,
            secret_share=SecretScalar((self.secret_share.expose() + tweak) % q),
            public=self.public.tweaked(tweak),
        )

    def negated(self) -> KeyShare[E]:
        """This participant's share of -s."""
        q = self.group.order
        return KeyShare(
            identifier=self.identifier,
            secret_share=SecretScalar(-self.secret_share.expose() % q),
            public=self.public.negated(),
        )

    def export_secret(self) -> dict[str, Any]:
        """The full share including the secret, for sealing at rest only. Never log or send this."""
        return {
            "version": FORMAT_VERSION,
            "identifier": self.identifier,
            "secret_share": self.group.serialize_scalar(self.secret_share.expose()).hex(),
            "public": self.public.to_dict(),
        }

    @classmethod
    def import_secret(cls, d: dict[str, Any]) -> KeyShare[Any]:
        if d.get("version") != FORMAT_VERSION:
            raise InvalidInput(f"unsupported key share version {d.get('version')!r}")
        public = PublicKeyPackage.from_dict(d["public"])
        try:
            s = public.group.deserialize_scalar(bytes.fromhex(d["secret_share"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput("malformed key share") from None
        return cls(identifier=int(d["identifier"]), secret_share=SecretScalar(s), public=public)
