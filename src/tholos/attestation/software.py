"""Self-measured attestation: the node hashes its own installation and signs the result with its
Ed25519 identity key. It proves which key answered and what that process *says* it runs; it gives
NO hardware guarantee: whoever controls the host can run other code and sign any measurement with
a stolen identity key. Its value is catching honest mistakes (an unpinned build, a half-finished
upgrade) and recording, in the audit chain, what each node claimed.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tholos.attestation.providers import (
    Attestation,
    AttestationError,
    VerifiedAttestation,
    check_binding,
    report_data,
)

SIGNATURE_DOMAIN = b"tholos-software-attestation-v1"
PROTECTIONS = ("identity key possession", "self-reported build (no hardware guarantee)")
UNVERIFIED = ("hardware_guarantee: False: the measurement is the node's own claim",)


class SoftwareProvider:
    """`evidence` needs the node's identity key; `verify` needs nothing but the peer's public key."""

    kind = "software"

    def __init__(
        self, identity_key: Ed25519PrivateKey | None = None, measurement: bytes | None = None
    ) -> None:
        self._key = identity_key
        self._measurement = measurement

    def __repr__(self) -> str:
        return f"SoftwareProvider(hardware_guarantee=False, signer={self._key is not None})"

    def evidence(self, nonce: bytes) -> Attestation:
        if self._key is None or self._measurement is None:
            raise AttestationError("this provider was built to verify only (no identity key)")
        pub = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        rd = report_data(nonce, pub, self._measurement)
        return Attestation(
            kind=self.kind,
            node_public_key=pub,
            nonce=nonce,
            software_measurement=self._measurement,
            evidence=self._key.sign(SIGNATURE_DOMAIN + rd),
        )

    def verify(
        self, attestation: Attestation, *, nonce: bytes, node_public_key: bytes
    ) -> VerifiedAttestation:
        if attestation.kind != self.kind:
            raise AttestationError(
                f"a {attestation.kind} attestation given to the software verifier"
            )
        rd = check_binding(attestation, nonce, node_public_key)
        try:
            Ed25519PublicKey.from_public_bytes(node_public_key).verify(
                attestation.evidence, SIGNATURE_DOMAIN + rd
            )
        except InvalidSignature:
            raise AttestationError("software attestation: bad signature by the node key") from None
        return VerifiedAttestation(
            kind=self.kind,
            hardware_guarantee=False,
            node_public_key=node_public_key,
            software_measurement=attestation.software_measurement,
            launch_measurement=None,
            protections=PROTECTIONS,
            unverified=UNVERIFIED,
        )
