"""The three FROST schemes (RFC 9591 suites): nonce pools, signature shares, aggregation.

| scheme    | FROST suite                 | public key              | signature           |
|-----------|-----------------------------|-------------------------|---------------------|
| bip340    | FROST-BIP340-v1             | x-only, 32 bytes        | BIP340, 64 bytes    |
| ed25519   | FROST-ED25519-SHA512-v1     | 32 bytes                | RFC 8032, 64 bytes  |
| secp256k1 | FROST-secp256k1-SHA256-v1   | compressed, 33 bytes    | R (33) || z (32)    |

Signed by the node's `frost-sign` protocol (node/frost.py, shares in node/vault.py) and the
gateway's `FrostRounds` (gateway/frost.py), both registered like every other scheme.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from tholos.crypto.errors import InvalidInput
from tholos.crypto.frost.aggregate import aggregate
from tholos.crypto.frost.ciphersuite import Ciphersuite
from tholos.crypto.frost.round1 import SigningCommitments, SigningNonces
from tholos.crypto.frost.round2 import SignatureShare, sign
from tholos.crypto.frost.signing_package import SigningPackage
from tholos.crypto.groups import ED25519
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar
from tholos.schemes.base import MAX_MESSAGE, Scheme, SignerCommitment, SigningRequest, parse_path


class FrostScheme(Scheme):
    """Adapter of one FROST suite; its nonces are hedged with a per-process pool secret."""

    kind = "frost"

    def __init__(self, name: str, suite: Ciphersuite[Any], public_key_length: int) -> None:
        super().__init__(name, suite, public_key_length)
        self._pool_secret = secrets.randbelow(self.group.order - 1) + 1

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
