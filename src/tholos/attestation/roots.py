"""The vendor roots a verifier (node or gateway) checks hardware evidence against, as an operator
configures them, and the verifiers they give: software always, SEV-SNP once the AMD ARK and ASK
are pinned, TDX once the Intel PCK root is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from tholos.attestation.providers import AttestationProvider
from tholos.attestation.session import Verifiers
from tholos.attestation.sev_snp import SevSnpProvider
from tholos.attestation.software import SoftwareProvider
from tholos.attestation.tdx import TdxProvider

ROOT_KEYS = ("amd_ark", "amd_ask", "intel_pck_root")


@dataclass(frozen=True)
class VendorRoots:
    """PEM files of the pinned vendor roots; None: that kind is not verified here."""

    amd_ark: Path | None = None
    amd_ask: Path | None = None
    intel_pck_root: Path | None = None

    @classmethod
    def from_config(cls, section: Mapping[str, Any], base: Path) -> VendorRoots:
        """From a config's "attestation" object; paths relative to the config's folder."""

        def p(key: str) -> Path | None:
            v = section.get(key)
            return None if v is None else (base / str(v)).resolve()

        return cls(p("amd_ark"), p("amd_ask"), p("intel_pck_root"))

    def verifiers(self) -> Verifiers:
        found: dict[str, AttestationProvider] = {"software": SoftwareProvider()}
        ark, ask = _cert(self.amd_ark), _cert(self.amd_ask)
        if ark is not None and ask is not None:
            found["sev-snp"] = SevSnpProvider(ark=ark, ask=ask)
        root = _cert(self.intel_pck_root)
        if root is not None:
            found["tdx"] = TdxProvider(pck_root=root)
        return Verifiers(found)


def _cert(path: Path | None) -> x509.Certificate | None:
    return None if path is None else x509.load_pem_x509_certificate(path.read_bytes())
