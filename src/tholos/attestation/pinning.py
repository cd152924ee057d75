"""Which measurements a cluster allows: the check the node and the gateway run on every verified
attestation before any protocol with that peer. The allowed list is what a quorum-signed
governance document carries, e.g.

    [{"kind": "software", "software_measurement": "ab12..", "label": "tholos 0.2.0 wheel"},
     {"kind": "sev-snp", "software_measurement": "ab12..", "launch_measurement": "9f0e..",
      "label": "0.2.0 in the SNP image of 2026-11"}]

An upgrade is rolled out by pinning the new build's entry first (old and new both allowed), then
upgrading the nodes, then removing the old entry. A kind with no entry is refused: a cluster that
lists only `sev-snp` entries refuses self-measured (software) nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tholos.attestation.providers import KINDS, VerifiedAttestation


class NotPinned(Exception):
    """The peer's measurement is not among the allowed ones; the message says which part."""


class PinListError(ValueError):
    """The allowed-measurements list itself is malformed."""


@dataclass(frozen=True)
class PinnedMeasurement:
    kind: str
    software_measurement: bytes
    launch_measurement: bytes | None
    label: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PinnedMeasurement:
        try:
            kind = str(d["kind"])
            if kind not in KINDS:
                raise PinListError(f"pinned kind {kind!r}: want one of {KINDS}")
            sw = bytes.fromhex(str(d["software_measurement"]))
            launch = d.get("launch_measurement")
            lm = bytes.fromhex(str(launch)) if launch is not None else None
        except KeyError as exc:
            raise PinListError(f"pinned measurement without {exc}") from None
        except ValueError as exc:
            if isinstance(exc, PinListError):
                raise
            raise PinListError(f"pinned measurement not hex: {exc}") from None
        if len(sw) != 32:
            raise PinListError(f"pinned software_measurement: {len(sw)} bytes, want 32")
        if kind == "software" and lm is not None:
            raise PinListError("a software pin cannot carry a launch_measurement")
        if kind != "software" and (lm is None or len(lm) != 48):
            raise PinListError(f"a {kind} pin needs a 48-byte launch_measurement")
        return cls(kind, sw, lm, str(d.get("label", "")))


def parse_pins(allowed: Sequence[Mapping[str, Any]]) -> list[PinnedMeasurement]:
    return [PinnedMeasurement.from_dict(d) for d in allowed]


def check_pinned(
    allowed: Sequence[Mapping[str, Any]], attestation: VerifiedAttestation
) -> PinnedMeasurement:
    """The pin that admits this verified attestation; raise NotPinned with the reason if none."""
    pins = parse_pins(allowed)
    same_kind = [p for p in pins if p.kind == attestation.kind]
    if not same_kind:
        raise NotPinned(
            f"no {attestation.kind} measurement is pinned: this cluster refuses the kind"
        )
    same_build = [
        p for p in same_kind if p.software_measurement == attestation.software_measurement
    ]
    if not same_build:
        raise NotPinned(
            f"software measurement {attestation.software_measurement.hex()} is not pinned"
        )
    for p in same_build:
        if p.launch_measurement == attestation.launch_measurement:
            return p
    lm = attestation.launch_measurement
    raise NotPinned(f"launch measurement {lm.hex() if lm else None} is not pinned for this build")
