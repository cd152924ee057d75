"""What every attestation provider does: produce evidence for a verifier's nonce, and verify a
peer's evidence. A verified attestation says what the peer runs (`software_measurement`, the
distribution digest of `measure.py`), under what launch measurement when a CPU vouches for it,
and whether any hardware stands behind the claim (`hardware_guarantee`).

Every kind binds the same 64 bytes (`report_data`): SHA-512 over a domain tag, the verifier's
nonce, the node's Ed25519 identity key and its software measurement. A report made for another
nonce, another node key or another build does not verify.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

KINDS = ("software", "sev-snp", "tdx")
REPORT_DATA_DOMAIN = b"tholos-attestation-report-data-v1"
NONCE_MIN = 16
NONCE_MAX = 64


class AttestationError(Exception):
    """Evidence did not verify; the message names what is wrong."""


def report_data(nonce: bytes, node_public_key: bytes, software_measurement: bytes) -> bytes:
    """The 64 bytes every kind of evidence must carry (SNP REPORT_DATA, TDX REPORTDATA)."""
    check_nonce(nonce)
    if len(node_public_key) != 32:
        raise AttestationError(f"node public key: {len(node_public_key)} bytes, want 32 (Ed25519)")
    if len(software_measurement) != 32:
        raise AttestationError(f"software measurement: {len(software_measurement)} bytes, want 32")
    h = hashlib.sha512(REPORT_DATA_DOMAIN)
    for part in (nonce, node_public_key, software_measurement):
        h.update(len(part).to_bytes(2, "big") + part)
    return h.digest()


def check_nonce(nonce: bytes) -> None:
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise AttestationError(f"nonce: {len(nonce)} bytes, want {NONCE_MIN}..{NONCE_MAX}")


@dataclass(frozen=True)
class Attestation:
    """Evidence as it crosses the wire: nothing in it is trusted until a provider verifies it."""

    kind: str
    node_public_key: bytes
    nonce: bytes
    software_measurement: bytes
    evidence: bytes  # software: Ed25519 signature; sev-snp: ATTESTATION_REPORT; tdx: TD quote
    certificates: bytes = b""  # sev-snp: the VCEK (DER or PEM) the host supplied, if any
    version: int = 1

    @property
    def hardware_guarantee(self) -> bool:
        return self.kind != "software"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "hardware_guarantee": self.hardware_guarantee,
            "node_public_key": self.node_public_key.hex(),
            "nonce": self.nonce.hex(),
            "software_measurement": self.software_measurement.hex(),
            "evidence": base64.b64encode(self.evidence).decode(),
            "certificates": base64.b64encode(self.certificates).decode(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attestation:
        """Parse a wire object; `hardware_guarantee` is recomputed from `kind`, never read."""
        try:
            if int(d["version"]) != 1:
                raise AttestationError(f"attestation version {d['version']}: want 1")
            kind = str(d["kind"])
            if kind not in KINDS:
                raise AttestationError(f"attestation kind {kind!r}: want one of {KINDS}")
            return cls(
                kind=kind,
                node_public_key=bytes.fromhex(str(d["node_public_key"])),
                nonce=bytes.fromhex(str(d["nonce"])),
                software_measurement=bytes.fromhex(str(d["software_measurement"])),
                evidence=base64.b64decode(str(d["evidence"]), validate=True),
                certificates=base64.b64decode(str(d.get("certificates", "")), validate=True),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise AttestationError(f"malformed attestation: {exc}") from None


@dataclass(frozen=True)
class VerifiedAttestation:
    """What a verifier may rely on after `verify` returned (verification raises otherwise)."""

    kind: str
    hardware_guarantee: bool
    node_public_key: bytes
    software_measurement: bytes
    launch_measurement: bytes | None  # SNP MEASUREMENT (48 B) or TDX MRTD (48 B); None: software
    registers: dict[str, str] = field(default_factory=dict)  # e.g. rtmr0..3, host_data (hex)
    protections: tuple[str, ...] = ()  # what this kind protects, for `cluster status`
    unverified: tuple[str, ...] = ()  # what the verifier could not check, said plainly

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hardware_guarantee": self.hardware_guarantee,
            "node_public_key": self.node_public_key.hex(),
            "software_measurement": self.software_measurement.hex(),
            "launch_measurement": (
                self.launch_measurement.hex() if self.launch_measurement is not None else None
            ),
            "registers": dict(self.registers),
            "protections": list(self.protections),
            "unverified": list(self.unverified),
        }


class AttestationProvider(Protocol):
    """One kind of attestation: `evidence` runs on the node, `verify` on its peers and gateway."""

    kind: str

    def evidence(self, nonce: bytes) -> Attestation:
        """Fresh evidence bound to the verifier's `nonce` and this node's identity."""
        ...

    def verify(
        self, attestation: Attestation, *, nonce: bytes, node_public_key: bytes
    ) -> VerifiedAttestation:
        """Check `attestation` was made for `nonce` by the node holding `node_public_key`;
        raise AttestationError naming what is wrong."""
        ...


def check_binding(attestation: Attestation, nonce: bytes, node_public_key: bytes) -> bytes:
    """The common checks: the expected nonce and node key; returns the report_data to find."""
    if attestation.nonce != nonce:
        raise AttestationError("attestation was made for another nonce (replayed or stale)")
    if attestation.node_public_key != node_public_key:
        raise AttestationError("attestation names another node identity key")
    return report_data(nonce, node_public_key, attestation.software_measurement)
