"""AMD SEV-SNP guest attestation: the ATTESTATION_REPORT of the SEV Secure Nested Paging
Firmware ABI Specification (AMD pub. 56860, "ATTESTATION_REPORT Structure", 0x4A0 bytes), signed by
the chip's VCEK (ECDSA P-384, SHA-384) over bytes 0x000-0x29F.

What `verify` checks: the layout and length, SIGNATURE_ALGO = 1 (ECDSA P-384/SHA-384), the
signature with the VCEK, REPORT_DATA = our binding of nonce + node key + software measurement,
the guest policy forbids debugging (bit 19); and, when the VCEK comes from the host rather than
from the operator, that it chains VCEK <- ASK <- ARK to the ARK the operator pinned.
What it does NOT check: the TCB version against the VCEK certificate's TCB extensions and AMD's
revocation list (KDS CRL), which need AMD's key distribution service; the operator does that when
fetching the VCEK for the chip (see docs/confidential-vm.md).

Tests use synthetic reports laid out per the spec and signed by a test VCEK; there is no SEV-SNP
hardware here, so no report recorded from hardware was available.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tholos.attestation.providers import (
    Attestation,
    AttestationError,
    VerifiedAttestation,
    check_binding,
    report_data,
)
from tholos.attestation.tsm import TSM_REPORT_ROOT, read_tsm_report, tsm_available

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0  # the signature covers bytes 0x000..0x29F
ECDSA_P384_SHA384 = 1
POLICY_DEBUG = 1 << 19
POLICY_MIGRATE_MA = 1 << 18
DEV_SEV_GUEST = Path("/dev/sev-guest")
# linux/include/uapi/linux/sev-guest.h: _IOWR('S', 0x0, struct snp_guest_request_ioctl /*32 B*/)
SNP_GET_REPORT = 0xC0205300
# GHCB spec, certificate table GUIDs (the host's extended-report certificates)
VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
PROTECTIONS = (
    "guest memory encrypted and integrity-protected from the host (SEV-SNP)",
    "launch measurement signed by the AMD chip's VCEK",
    "debugging disabled by guest policy",
)


@dataclass(frozen=True)
class SnpReport:
    """The fields of ATTESTATION_REPORT that tholos reads (offsets from AMD 56860)."""

    version: int  # 0x000
    guest_svn: int  # 0x004
    policy: int  # 0x008
    family_id: bytes  # 0x010, 16
    image_id: bytes  # 0x020, 16
    vmpl: int  # 0x030
    signature_algo: int  # 0x034
    current_tcb: int  # 0x038
    platform_info: int  # 0x040
    flags: int  # 0x048: AUTHOR_KEY_EN bit 0, MASK_CHIP_KEY bit 1, SIGNING_KEY bits 2-4
    report_data: bytes  # 0x050, 64
    measurement: bytes  # 0x090, 48
    host_data: bytes  # 0x0C0, 32
    id_key_digest: bytes  # 0x0E0, 48
    author_key_digest: bytes  # 0x110, 48
    report_id: bytes  # 0x140, 32
    reported_tcb: int  # 0x180
    chip_id: bytes  # 0x1A0, 64
    signature_r: int  # 0x2A0, 72 bytes little-endian
    signature_s: int  # 0x2E8, 72 bytes little-endian
    signed: bytes  # bytes 0x000..0x29F


def parse_report(raw: bytes) -> SnpReport:
    """Parse an ATTESTATION_REPORT; raise AttestationError on a wrong length or version."""
    if len(raw) != REPORT_SIZE:
        raise AttestationError(f"SEV-SNP report: {len(raw)} bytes, want {REPORT_SIZE} (truncated?)")
    version, guest_svn, policy = struct.unpack_from("<IIQ", raw, 0x000)
    if version < 2:
        raise AttestationError(f"SEV-SNP report version {version}: want 2 or later")
    vmpl, algo, current_tcb, platform_info, flags = struct.unpack_from("<IIQQI", raw, 0x030)

    def b(off: int, n: int) -> bytes:
        return raw[off : off + n]

    return SnpReport(
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=b(0x010, 16),
        image_id=b(0x020, 16),
        vmpl=vmpl,
        signature_algo=algo,
        current_tcb=current_tcb,
        platform_info=platform_info,
        flags=flags,
        report_data=b(0x050, 64),
        measurement=b(0x090, 48),
        host_data=b(0x0C0, 32),
        id_key_digest=b(0x0E0, 48),
        author_key_digest=b(0x110, 48),
        report_id=b(0x140, 32),
        reported_tcb=struct.unpack_from("<Q", raw, 0x180)[0],
        chip_id=b(0x1A0, 64),
        signature_r=int.from_bytes(b(0x2A0, 72), "little"),
        signature_s=int.from_bytes(b(0x2E8, 72), "little"),
        signed=raw[:SIGNED_SIZE],
    )


def parse_certificate_table(aux: bytes) -> dict[uuid.UUID, bytes]:
    """The host's certificate table (GHCB spec): entries of GUID(16) | offset u32 | length u32,
    ended by an all-zero entry; offsets count from the start of the table."""
    certs: dict[uuid.UUID, bytes] = {}
    pos = 0
    while pos + 24 <= len(aux):
        guid = uuid.UUID(bytes_le=aux[pos : pos + 16])
        off, length = struct.unpack_from("<II", aux, pos + 16)
        if guid.int == 0 and off == 0 and length == 0:
            return certs
        if off + length > len(aux):
            raise AttestationError(f"certificate table entry {guid}: past the end of the table")
        certs[guid] = aux[off : off + length]
        pos += 24
    if aux:
        raise AttestationError("certificate table: no terminating entry")
    return certs


def _load_cert(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise AttestationError(f"unreadable certificate: {exc}") from None


def _read_dev_sev_guest(user_data: bytes, device: Path) -> bytes:
    """SNP_GET_REPORT on /dev/sev-guest (linux/include/uapi/linux/sev-guest.h). The response's
    MSG_REPORT_RSP: status u32, report_size u32, 24 reserved bytes, then the report."""
    req = ctypes.create_string_buffer(user_data + b"\0" * 32, 96)  # user_data, vmpl=0, rsvd[28]
    resp = ctypes.create_string_buffer(4000)
    ioc = bytearray(struct.pack("<B7xQQQ", 1, ctypes.addressof(req), ctypes.addressof(resp), 0))
    fd = os.open(device, os.O_RDWR)
    try:
        fcntl.ioctl(fd, SNP_GET_REPORT, ioc, True)
    except OSError as exc:
        fw_err, vmm_err = struct.unpack_from("<II", ioc, 24)
        raise AttestationError(
            f"SNP_GET_REPORT failed: {exc.strerror} (firmware {fw_err:#x}, vmm {vmm_err:#x})"
        ) from None
    finally:
        os.close(fd)
    status, size = struct.unpack_from("<II", resp.raw, 0)
    if status != 0 or size != REPORT_SIZE:
        raise AttestationError(f"SNP_GET_REPORT: status {status:#x}, report size {size}")
    return resp.raw[32 : 32 + REPORT_SIZE]


class SevSnpProvider:
    """Evidence from configfs-tsm (preferred) or /dev/sev-guest; verification against a VCEK the
    operator fetched for this chip (`vcek`), or against the host-supplied VCEK chained to a pinned
    AMD root (`ark`, with its `ask`)."""

    kind = "sev-snp"

    def __init__(
        self,
        *,
        node_public_key: bytes | None = None,
        software_measurement: bytes | None = None,
        vcek: x509.Certificate | None = None,
        ask: x509.Certificate | None = None,
        ark: x509.Certificate | None = None,
        tsm_root: Path = TSM_REPORT_ROOT,
        device: Path = DEV_SEV_GUEST,
    ) -> None:
        self._pub = node_public_key
        self._measurement = software_measurement
        self._vcek, self._ask, self._ark = vcek, ask, ark
        self._tsm_root, self._device = tsm_root, device

    def evidence(self, nonce: bytes) -> Attestation:
        if self._pub is None or self._measurement is None:
            raise AttestationError("this provider was built to verify only (no node identity)")
        rd = report_data(nonce, self._pub, self._measurement)
        certificates = b""
        if tsm_available(self._tsm_root):
            rep = read_tsm_report(rd, self._tsm_root)
            if rep.provider != "sev_guest":
                raise AttestationError(f"configfs-tsm provider is {rep.provider!r}, not sev_guest")
            raw = rep.outblob
            vcek = parse_certificate_table(rep.auxblob).get(VCEK_GUID)
            certificates = vcek or b""
        elif self._device.exists():
            raw = _read_dev_sev_guest(rd, self._device)
        else:
            raise AttestationError(
                f"no SEV-SNP guest interface: neither {self._tsm_root} nor {self._device}"
            )
        return Attestation(
            kind=self.kind,
            node_public_key=self._pub,
            nonce=nonce,
            software_measurement=self._measurement,
            evidence=raw,
            certificates=certificates,
        )

    def _signing_key(self, attestation: Attestation) -> ec.EllipticCurvePublicKey:
        if self._vcek is not None:
            cert = self._vcek
        elif self._ark is not None and self._ask is not None:
            if not attestation.certificates:
                raise AttestationError("no VCEK: the host supplied none and none was configured")
            cert = _load_cert(attestation.certificates)
            try:
                self._ark.verify_directly_issued_by(self._ark)
                self._ask.verify_directly_issued_by(self._ark)
                cert.verify_directly_issued_by(self._ask)
            except (InvalidSignature, ValueError, TypeError) as exc:
                raise AttestationError(
                    f"VCEK does not chain to the pinned AMD ARK: {exc}"
                ) from None
        else:
            raise AttestationError("SEV-SNP verifier needs a VCEK, or the pinned ARK and ASK")
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise AttestationError("VCEK is not an ECDSA P-384 key")
        return key

    def verify(
        self, attestation: Attestation, *, nonce: bytes, node_public_key: bytes
    ) -> VerifiedAttestation:
        if attestation.kind != self.kind:
            raise AttestationError(
                f"a {attestation.kind} attestation given to the SEV-SNP verifier"
            )
        rd = check_binding(attestation, nonce, node_public_key)
        rep = parse_report(attestation.evidence)
        if rep.signature_algo != ECDSA_P384_SHA384:
            raise AttestationError(f"SEV-SNP SIGNATURE_ALGO {rep.signature_algo}: want 1 (P-384)")
        key = self._signing_key(attestation)
        try:
            key.verify(
                encode_dss_signature(rep.signature_r, rep.signature_s),
                rep.signed,
                ec.ECDSA(hashes.SHA384()),
            )
        except InvalidSignature:
            raise AttestationError("SEV-SNP report: bad VCEK signature") from None
        if rep.report_data != rd:
            raise AttestationError(
                "SEV-SNP REPORT_DATA does not bind this nonce, node key and software measurement"
            )
        if rep.policy & POLICY_DEBUG:
            raise AttestationError("SEV-SNP guest policy allows debugging: the host can read it")
        return VerifiedAttestation(
            kind=self.kind,
            hardware_guarantee=True,
            node_public_key=node_public_key,
            software_measurement=attestation.software_measurement,
            launch_measurement=rep.measurement,
            registers={
                "host_data": rep.host_data.hex(),
                "policy": f"{rep.policy:#x}",
                "vmpl": str(rep.vmpl),
                "reported_tcb": f"{rep.reported_tcb:#018x}",
                "chip_id": rep.chip_id.hex(),
                "id_key_digest": rep.id_key_digest.hex(),
            },
            protections=PROTECTIONS,
            unverified=(
                "TCB version against AMD KDS (VCEK TCB extensions, CRL): operator's check",
            ),
        )
