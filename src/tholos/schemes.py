"""The three signing schemes tholos serves, as the node and the gateway see them.

One small adapter per scheme over `tholos.crypto` (FROST suites, DKG): encodings, nonce pools,
signature shares, aggregation, and the DKG/refresh state machines. Node and gateway code import
only this module, never the hazmat layer.

| scheme    | FROST suite                 | public key              | signature           |
|-----------|-----------------------------|-------------------------|---------------------|
| bip340    | FROST-BIP340-v1             | x-only, 32 bytes        | BIP340, 64 bytes    |
| ed25519   | FROST-ED25519-SHA512-v1     | 32 bytes                | RFC 8032, 64 bytes  |
| secp256k1 | FROST-secp256k1-SHA256-v1   | compressed, 33 bytes    | R (33) || z (32)    |
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tholos.crypto.errors import InvalidInput
from tholos.crypto.frost.aggregate import aggregate
from tholos.crypto.frost.bip340 import FROST_BIP340
from tholos.crypto.frost.ciphersuite import Ciphersuite
from tholos.crypto.frost.round1 import SigningCommitments, SigningNonces
from tholos.crypto.frost.round2 import SignatureShare, sign
from tholos.crypto.frost.signing_package import SigningPackage
from tholos.crypto.frost.suites import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256
from tholos.crypto.groups import ED25519
from tholos.crypto.groups.base import Group
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

MAX_MESSAGE = 64 * 1024


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


class Scheme:
    """Adapter of one FROST suite. Stateless apart from a cache of derivation tweaks."""

    def __init__(self, name: str, suite: Ciphersuite[Any], public_key_length: int) -> None:
        self.name = name
        self.suite = suite
        self.group: Group[Any] = suite.group
        self.pool = suite.name  # nonces are tied to a suite: one pool per suite
        self.public_key_length = public_key_length
        self.signature_length = suite.signature_length
        self._pool_secret = secrets.randbelow(self.group.order - 1) + 1
        self._tweaks: dict[tuple[str, str], int] = {}

    def __repr__(self) -> str:
        return f"<Scheme {self.name}>"

    @property
    def supports_derivation(self) -> bool:
        return self.group.name == "secp256k1"

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

    # -- nonces ----------------------------------------------------------------------------------
    def new_nonces(self, count: int) -> list[tuple[bytes, bytes, bytes]]:
        """(sealable secret, hiding commitment, binding commitment) for a pool.

        Deviation from RFC 9591 section 4.1: pools are per suite, not per key, so the nonces are
        hedged with a per-process random secret instead of the signer's key share."""
        from tholos.crypto.frost.round1 import nonce_generate

        out = []
        for _ in range(count):
            d = nonce_generate(self.suite, self._pool_secret)
            e = nonce_generate(self.suite, self._pool_secret)
            if not d or not e:
                continue
            g = self.group
            hiding, binding = g.serialize_element(g.base_mul(d)), g.serialize_element(g.base_mul(e))
            # Sealed form: SerializeScalar(d) || SerializeScalar(e) || D || E (the barrier
            # authenticates it, so the commitments need not be recomputed when it is opened).
            out.append(
                (g.serialize_scalar(d) + g.serialize_scalar(e) + hiding + binding, hiding, binding)
            )
        return out

    def open_nonces(
        self, secret: bytes, package: SigningPackage[Any], identifier: int
    ) -> SigningNonces[Any]:
        """The sealed nonce pair as `SigningNonces`, checked against the package's commitment for
        this signer (so a request naming another nonce's commitment is refused)."""
        n = self.group.scalar_length
        m = self.group.element_length
        if len(secret) != 2 * n + 2 * m:
            raise InvalidInput("malformed sealed nonce")
        own = package.commitments.get(identifier)
        if own is None or (own.hiding_enc, own.binding_enc) != (
            secret[2 * n : 2 * n + m],
            secret[2 * n + m :],
        ):
            raise InvalidInput("the commitment in the request is not this nonce's")
        d = self.group.deserialize_scalar(secret[:n])
        e = self.group.deserialize_scalar(secret[n : 2 * n])
        return SigningNonces(self.suite, SecretScalar(d), SecretScalar(e), own)

    # -- signing ---------------------------------------------------------------------------------
    def check_request(self, public: PublicKeyPackage[Any], req: SigningRequest) -> None:
        if len(req.message) > MAX_MESSAGE:
            raise InvalidInput(f"message longer than {MAX_MESSAGE} bytes")
        if len(req.commitments) < public.threshold:
            raise InvalidInput("fewer signers than the threshold")
        unknown = set(req.commitments) - set(public.verifying_shares)
        if unknown:
            raise InvalidInput(f"signers {sorted(unknown)} do not hold this key")
        self.merkle_root(req.taproot, req.merkle_root)
        parse_path(req.path)

    def package(
        self,
        message: bytes,
        commitments: Mapping[int, SignerCommitment],
        own: int | None = None,
        unchecked: bool = False,
    ) -> SigningPackage[Any]:
        """The signing package; every commitment is validated (DeserializeElement) except, for
        Ed25519 where an element is its encoding, the signer's own (`own`): the caller compares
        those bytes with its sealed nonce's before using them, which is a stronger check than the
        subgroup test (~33 µs each in libsodium). `unchecked` (Ed25519 only) skips the check for
        every commitment: for the coordinator's fast path in `aggregate`, never for a signer."""
        g = self.group
        trusted_bytes = g.name == ED25519.name

        def parse(i: int, enc: bytes) -> Any:
            if (i == own or unchecked) and trusted_bytes and len(enc) == g.element_length:
                return bytes(enc)
            return g.deserialize_element(enc)

        return SigningPackage(
            {
                i: SigningCommitments(self.suite, parse(i, c.hiding), parse(i, c.binding))
                for i, c in commitments.items()
            },
            message,
        )

    def sign_share(
        self,
        share: KeyShare[Any],
        req: SigningRequest,
        nonce_secret: bytes,
        meta: Mapping[str, Any],
    ) -> bytes:
        package = self.package(req.message, req.commitments, own=share.identifier)
        nonces = self.open_nonces(nonce_secret, package, share.identifier)
        z = sign(
            self.suite,
            package,
            nonces,
            share,
            tweak=self.tweak(share.public, meta, req.path),
            merkle_root=self.merkle_root(req.taproot, req.merkle_root),
        )
        return z.to_scalar_bytes()

    def corrupt_share(self, share: bytes) -> bytes:
        """Test-only fault: a share that is off by one."""
        g = self.group
        return g.serialize_scalar((g.deserialize_scalar(share) + 1) % g.order)

    def aggregate(
        self,
        public: PublicKeyPackage[Any],
        meta: Mapping[str, Any],
        req: SigningRequest,
        shares: Mapping[int, bytes],
    ) -> bytes:
        """Verify (every share, see crypto.frost.aggregate) and combine; raises
        InvalidSignatureShare(culprits) naming the signers whose shares are wrong."""
        from tholos.crypto.errors import InvalidSignatureShare

        parsed: dict[int, SignatureShare[Any]] = {}
        bad = []
        for i, b in shares.items():
            try:
                parsed[i] = SignatureShare(self.suite, self.group.deserialize_scalar(b))
            except InvalidInput:
                bad.append(i)
        if bad:
            raise InvalidSignatureShare("malformed signature shares", culprits=bad)
        tweak = self.tweak(public, meta, req.path)
        root = self.merkle_root(req.taproot, req.merkle_root)
        if self.group.name == ED25519.name:
            # Coordinator fast path: the signers validated each other's commitments; here they are
            # used as raw encodings and the signature is returned only if libsodium's strict
            # verification accepts it, which it cannot when R has a torsion component ([z]B - [c]A
            # lies in the prime-order subgroup). Any failure is redone with validated commitments,
            # which names the culprits exactly as before.
            try:
                return aggregate(
                    self.suite,
                    self.package(req.message, req.commitments, unchecked=True),
                    parsed,
                    public,
                    tweak=tweak,
                    merkle_root=root,
                )
            except Exception:  # redone below with validated commitments
                pass
        return aggregate(
            self.suite,
            self.package(req.message, req.commitments),
            parsed,
            public,
            tweak=tweak,
            merkle_root=root,
        )

    def verify(self, message: bytes, signature: bytes, public_key: bytes) -> None:
        self.suite.verify(message, signature, public_key)

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


def chain_code_for(public: PublicKeyPackage[Any]) -> bytes:
    """BIP32 chain code of a DKG key (no seed exists): SHA-256 of a tag and the group key, so that
    every party derives the same xpub. Imported xprv keys keep their own chain code instead."""
    enc = public.group.serialize_element(public.group_public_key)
    return hashlib.sha256(b"tholos-bip32-chain-code-v1" + enc).digest()


SCHEMES: dict[str, Scheme] = {
    "bip340": Scheme("bip340", FROST_BIP340, 32),
    "ed25519": Scheme("ed25519", FROST_ED25519_SHA512, 32),
    "secp256k1": Scheme("secp256k1", FROST_SECP256K1_SHA256, 33),
}
POOLS: dict[str, Scheme] = {s.pool: s for s in SCHEMES.values()}
GROUP_NAMES = frozenset(POOLS)

# ECDSA, BLS and DiSE adapters register themselves into SCHEMES (not into POOLS: no FROST nonces).
import tholos.schemes_ecdsa_bls_dise  # noqa: E402, F401
