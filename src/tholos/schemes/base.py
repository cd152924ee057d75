"""What every scheme adapter offers node and gateway: keys, BIP32/Taproot derivation, verification,
and the DKG/refresh state machines over the scheme's group (`tholos.crypto`).

A scheme's signing side lives on each end in its own module (`tholos.node.<scheme>`,
`tholos.gateway.<scheme>`), found through `Scheme.kind`; see `tholos.schemes` for the registry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tholos.crypto.errors import InvalidInput
from tholos.crypto.frost.ciphersuite import Ciphersuite
from tholos.crypto.groups.base import Group
from tholos.crypto.keys import KeyShare, PublicKeyPackage

MAX_MESSAGE = 64 * 1024

SIGNING_OPTIONS = ("path", "taproot_tweak", "merkle_root")
"""Every per-request signing option a client may set; `Scheme.options` says which apply."""


class OptionNotForScheme(InvalidInput):
    """A signing option set for a scheme it does not apply to (refused, never ignored)."""

    def __init__(self, option: str, scheme: str, allowed: frozenset[str]) -> None:
        self.option = option
        self.scheme = scheme
        what = ", ".join(sorted(allowed)) or "none"
        super().__init__(f"option {option!r} does not apply to {scheme} keys (theirs: {what})")


@dataclass(frozen=True)
class SignerCommitment:
    nonce_id: bytes
    hiding: bytes
    binding: bytes


@dataclass(frozen=True)
class SigningRequest:
    """What a signer receives: the message, derivation, and every signer's commitments."""

    request_id: str
    key_id: str
    message: bytes
    path: str = ""
    taproot: bool = False
    merkle_root: bytes | None = None
    commitments: dict[int, SignerCommitment] = field(default_factory=dict)


def parse_path(path: str) -> list[int]:
    """'m/0/1' -> [0, 1]. Only non-hardened (public) derivation: a hardened step needs the secret."""
    if path in ("", "m"):
        return []
    parts = path.split("/")
    if parts[0] != "m":
        raise InvalidInput("derivation path must start with 'm'")
    out = []
    for p in parts[1:]:
        if p.endswith(("'", "h", "H")):
            raise InvalidInput("hardened derivation is impossible for a threshold key")
        if not p.isdigit() or int(p) >= 2**31:
            raise InvalidInput(f"bad derivation step {p!r}")
        out.append(int(p))
    if len(out) > 255:
        raise InvalidInput("derivation path too deep")
    return out


def chain_code_for(public: PublicKeyPackage[Any]) -> bytes:
    """BIP32 chain code of a DKG key (no seed exists): SHA-256 of a tag and the group key, so that
    every party derives the same xpub. Imported xprv keys keep their own chain code instead."""
    enc = public.group.serialize_element(public.group_public_key)
    return hashlib.sha256(b"tholos-bip32-chain-code-v1" + enc).digest()


class Scheme:
    """One scheme's keys as node and gateway see them. Stateless apart from a cache of tweaks.

    `kind` names the signing protocol family ("frost", "ecdsa", "bls", "dise") that node and
    gateway look up in their own registries; `suite` gives the key encoding and tweak rules."""

    kind = ""

    def __init__(self, name: str, suite: Ciphersuite[Any], public_key_length: int) -> None:
        self.name = name
        self.suite = suite
        self.group: Group[Any] = suite.group
        self.pool = suite.name  # FROST nonces are tied to a suite: one pool per suite
        self.public_key_length = public_key_length
        self.signature_length = suite.signature_length
        self._tweaks: dict[tuple[str, str], int] = {}

    def __repr__(self) -> str:
        return f"<Scheme {self.name}>"

    @property
    def supports_derivation(self) -> bool:
        return self.group.name == "secp256k1"

    @property
    def options(self) -> frozenset[str]:
        """The signing options (SIGNING_OPTIONS) this scheme's keys accept: the one list REST
        (plain and governed requests) and CLI consult."""
        out = {"path"} if self.supports_derivation else set()
        if self.name == "bip340":
            out |= {"taproot_tweak", "merkle_root"}
        return frozenset(out)

    def check_options(
        self, *, path: str = "", taproot_tweak: bool = False, merkle_root: object = None
    ) -> None:
        """Raise OptionNotForScheme for the first option set (non-default) that this scheme does
        not take: an option that does not apply is refused, never silently dropped."""
        given = {
            "path": path not in ("", "m"),
            "taproot_tweak": bool(taproot_tweak),
            "merkle_root": merkle_root not in (None, "", b""),
        }
        for option in SIGNING_OPTIONS:
            if given[option] and option not in self.options:
                raise OptionNotForScheme(option, self.name, self.options)

    def signers_needed(self, threshold: int) -> int:
        """How many signers one signature needs."""
        return threshold

    # -- keys and derivation ---------------------------------------------------------------------
    def tweak(self, public: PublicKeyPackage[Any], meta: Mapping[str, Any], path: str) -> int:
        """The additive BIP32 tweak of a non-hardened path (0 for none). Cached."""
        steps = parse_path(path)
        if not steps:
            return 0
        if not self.supports_derivation:
            raise InvalidInput(f"{self.name} keys do not support BIP32 derivation")
        pk_hex = self.group.serialize_element(public.group_public_key).hex()
        ck = (pk_hex, path)
        t = self._tweaks.get(ck)
        if t is None:
            t = self.derive(public, meta, path)[0]
            if len(self._tweaks) > 100_000:
                self._tweaks.clear()
            self._tweaks[ck] = t
        return t

    def derive(
        self, public: PublicKeyPackage[Any], meta: Mapping[str, Any], path: str
    ) -> tuple[int, str]:
        """(tweak, xpub) of a non-hardened BIP32 path from the group key and its chain code."""
        from tholos.crypto import bip32

        if not self.supports_derivation:
            raise InvalidInput(f"{self.name} keys do not support BIP32 derivation")
        parse_path(path)
        if meta.get("xpub"):
            root = bip32.ExtendedPublicKey.from_xpub(str(meta["xpub"]))
            if not self.group.eq(root.public_key, public.group_public_key):
                raise InvalidInput("stored xpub does not match the key")
        else:
            root = bip32.ExtendedPublicKey.from_public_package(public, chain_code_for(public))
        derived = bip32.derive(root, path or "m")
        return derived.tweak, derived.xpub

    def merkle_root(self, taproot: bool, merkle_root: bytes | None) -> bytes | None:
        if not taproot:
            if merkle_root:
                raise InvalidInput("a merkle root needs --taproot-tweak")
            return None
        if self.name != "bip340":
            raise InvalidInput("the taproot tweak is for bip340 keys only")
        return merkle_root or b""

    def public_key(
        self, public: PublicKeyPackage[Any], tweak: int = 0, merkle_root: bytes | None = None
    ) -> bytes:
        return self.suite.effective_key(
            public.group_public_key, tweak, merkle_root
        ).public_key_bytes

    def verify(self, message: bytes, signature: bytes, public_key: bytes) -> None:
        self.suite.verify(message, signature, public_key)

    # -- FROST nonces and signing: only FROST schemes (tholos.schemes.frost) have them ------------
    def new_nonces(self, count: int) -> list[tuple[bytes, bytes, bytes]]:
        raise InvalidInput(f"{self.name} keys do not use FROST nonces")

    def check_request(self, public: PublicKeyPackage[Any], req: SigningRequest) -> None:
        raise InvalidInput(f"{self.name} keys are not signed through the FROST path")

    # -- DKG and refresh state machines -------------------------------------------------------------
    def dkg_participant(
        self,
        identifier: int,
        threshold: int,
        participants: list[int],
        context: bytes,
        evidence_verifier: Callable[[Any], bool] | None = None,
    ) -> Any:
        from tholos.crypto.dkg import DkgParticipant

        return DkgParticipant(
            self.group,
            identifier,
            threshold,
            participants,
            context,
            evidence_verifier=evidence_verifier,
        )

    def refresh_participant(
        self,
        share: KeyShare[Any],
        participants: list[int],
        context: bytes,
        evidence_verifier: Callable[[Any], bool] | None = None,
    ) -> Any:
        from tholos.crypto.refresh import RefreshParticipant

        return RefreshParticipant(share, context, participants, evidence_verifier=evidence_verifier)


class UnderivableScheme(Scheme):
    """A scheme whose keys have no BIP32 or Taproot derivation (BLS, DiSE)."""

    @property
    def supports_derivation(self) -> bool:
        return False

    def public_key(
        self, public: PublicKeyPackage[Any], tweak: int = 0, merkle_root: bytes | None = None
    ) -> bytes:
        if tweak or merkle_root is not None:
            raise InvalidInput(f"{self.name} keys have no derivation")
        return self.group_key_bytes(public)

    def group_key_bytes(self, public: PublicKeyPackage[Any]) -> bytes:
        """The encoded group public key."""
        return bytes(public.group.serialize_element(public.group_public_key))
