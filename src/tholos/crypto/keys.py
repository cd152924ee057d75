"""Threshold key material shared by DKG, signing, refresh, reshare and repair.

`PublicKeyPackage` is public (group key, every participant's verifying share, threshold).
`KeyShare` holds one participant's secret share; its repr is redacted and it is exported only
through the explicitly named `export_secret` / `import_secret` pair (for sealing at rest).
Every serialized form carries {version, group}.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tholos.crypto import _wire
from tholos.crypto.errors import InvalidElement, InvalidInput, InvalidParticipants
from tholos.crypto.groups import ED25519, SECP256K1, Group
from tholos.crypto.hazmat.shamir import check_identifiers, check_threshold, interpolate_elements
from tholos.crypto.secret import SecretScalar

E = TypeVar("E")
FORMAT_VERSION = 1

_GROUPS: dict[str, Group[Any]] = {SECP256K1.name: SECP256K1, ED25519.name: ED25519}


def register_group(group: Group[Any]) -> None:
    """Make a group known to deserialization (BLS12-381 is added on first use, below)."""
    _GROUPS[group.name] = group


def group_by_name(name: str) -> Group[Any]:
    if name not in _GROUPS and name.startswith("bls12_381"):
        from tholos.crypto.groups.bls12381 import BLS12_381_G1, BLS12_381_G2  # loads blst lazily

        register_group(BLS12_381_G1)
        register_group(BLS12_381_G2)
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
        check_threshold(self.threshold, len(ids))
        g = self.group
        if g.is_identity(self.group_public_key):
            raise InvalidElement("the group public key is the identity")
        bad = [i for i, y in self.verifying_shares.items() if g.is_identity(y)]
        if bad:
            raise InvalidElement(f"the verifying shares of {bad} are the identity")

    @property
    def identifiers(self) -> list[int]:
        return sorted(self.verifying_shares)

    def check_members(
        self, ids: Iterable[int], what: str = "participants", *, minimum: int | None = None
    ) -> list[int]:
        """`ids` sorted, after checking they are valid distinct identifiers that all hold a share of
        this key, at least `minimum` (default: the threshold) of them; raises InvalidParticipants."""
        out = list(ids)
        check_identifiers(out, self.group.order)
        unknown = sorted(set(out) - set(self.verifying_shares))
        if unknown:
            raise InvalidParticipants(f"{what} {unknown} hold no share of this key")
        need = self.threshold if minimum is None else minimum
        if len(out) < need:
            raise InvalidParticipants(f"need at least {need} {what}, got {len(out)}")
        return sorted(out)

    def check_consistent(self) -> None:
        """All verifying shares lie on one polynomial of degree t-1 whose value at 0 is the group
        key (so every t-subset interpolates to it); raises InvalidInput otherwise.

        The first t shares fix the polynomial; every other share is checked against it, at a cost of
        (n - t + 1)·t scalar multiplications."""
        g = self.group
        ids = self.identifiers
        base = {i: self.verifying_shares[i] for i in ids[: self.threshold]}
        for x in [0, *ids[self.threshold :]]:
            expected = self.group_public_key if x == 0 else self.verifying_shares[x]
            if not g.eq(interpolate_elements(g, base, x), expected):
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
        """Strict inverse of `to_dict`: exact keys, int threshold, canonical decimal identifiers,
        valid non-identity elements; anything else raises InvalidInput."""
        with _wire.parse_guard("public key package"):
            _check_dict(
                d,
                {"group", "threshold", "group_public_key", "verifying_shares"},
                "public key package",
            )
            g = group_by_name(_wire.get_str(d, "group"))
            return cls(
                group=g,
                threshold=_wire.get_int(d, "threshold", minimum=1),
                group_public_key=_wire.get_element(g, d, "group_public_key"),
                verifying_shares={
                    i: _wire.get_element(g, {f"verifying share {i}": y}, f"verifying share {i}")
                    for i, y in _wire.parse_id_map(
                        d["verifying_shares"], "verifying_shares"
                    ).items()
                },
            )


def _check_dict(d: object, fields: set[str], what: str) -> None:
    """{version, *fields} exactly, with the supported version."""
    if not isinstance(d, dict):
        raise InvalidInput(f"{what}: expected a dict")
    if d.get("version") != FORMAT_VERSION:
        raise InvalidInput(f"unsupported {what} version {d.get('version')!r}")
    if set(d) != {"version", *fields}:
        raise InvalidInput(f"{what}: expected keys {sorted({'version', *fields})}")


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
        with _wire.parse_guard("key share"):
            _check_dict(d, {"identifier", "secret_share", "public"}, "key share")
            public = PublicKeyPackage.from_dict(d["public"])
            s = _wire.get_scalar(public.group, d, "secret_share")
            return cls(
                identifier=_wire.get_int(d, "identifier", minimum=1),
                secret_share=SecretScalar(s),
                public=public,
            )
