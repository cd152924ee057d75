"""Attestation: what a node runs (its measurement), the evidence it presents for a verifier's
nonce (self-measured software, AMD SEV-SNP or Intel TDX), and the pinning check against the
measurements governance allows."""

from tholos.attestation.measure import Measurement, MeasurementError, measure_distribution
from tholos.attestation.pinning import NotPinned, PinListError, PinnedMeasurement, check_pinned
from tholos.attestation.providers import (
    Attestation,
    AttestationError,
    AttestationProvider,
    VerifiedAttestation,
    report_data,
)
from tholos.attestation.sev_snp import SevSnpProvider
from tholos.attestation.software import SoftwareProvider
from tholos.attestation.tdx import TdxProvider

__all__ = [
    "Attestation",
    "AttestationError",
    "AttestationProvider",
    "Measurement",
    "MeasurementError",
    "NotPinned",
    "PinListError",
    "PinnedMeasurement",
    "SevSnpProvider",
    "SoftwareProvider",
    "TdxProvider",
    "VerifiedAttestation",
    "check_pinned",
    "measure_distribution",
    "report_data",
]
