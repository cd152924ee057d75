"""SYNTHETIC evidence for tests: SEV-SNP reports and TDX quotes laid out per AMD 56860 and Intel's
TDX quote format, signed by keys generated here (a test ARK/ASK/VCEK, a test PCK chain and
attestation key). They are not recordings from hardware: none was available on this machine, and
third-party reports may not be committed. What they show is that our parser reads the spec's
offsets and our verifier checks the signatures, bindings and policy bits it claims to."""

from __future__ import annotations

import datetime
import hashlib
import struct
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tholos.attestation import sev_snp, tdx

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _cert(
    subject: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    pss: bool = False,
) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if pss:
        return b.sign(
            issuer_key,
            hashes.SHA384(),
            rsa_padding=padding.PSS(padding.MGF1(hashes.SHA384()), padding.PSS.DIGEST_LENGTH),
        )
    return b.sign(issuer_key, hashes.SHA256())


@dataclass
class SnpChain:
    """A test AMD chain shaped like the real one: RSA ARK and ASK signing with RSA-PSS/SHA-384,
    an ECDSA P-384 VCEK."""

    ark: x509.Certificate
    ask: x509.Certificate
    vcek: x509.Certificate
    vcek_key: ec.EllipticCurvePrivateKey


def snp_chain() -> SnpChain:
    ark_key = rsa.generate_private_key(65537, 2048)
    ask_key = rsa.generate_private_key(65537, 2048)
    vcek_key = ec.generate_private_key(ec.SECP384R1())
    ark = _cert("TEST-ARK", ark_key, "TEST-ARK", ark_key, ca=True, pss=True)
    ask = _cert("TEST-ASK", ask_key, "TEST-ARK", ark_key, ca=True, pss=True)
    vcek = _cert("TEST-VCEK", vcek_key, "TEST-ASK", ask_key, ca=False, pss=True)
    return SnpChain(ark, ask, vcek, vcek_key)


def snp_report(
    vcek_key: ec.EllipticCurvePrivateKey,
    report_data: bytes,
    measurement: bytes,
    *,
    policy: int = 0x30000,  # SMT allowed, bit 17 reserved-must-be-one, no debug
    version: int = 3,
    algo: int = 1,
) -> bytes:
    """An ATTESTATION_REPORT (0x4A0 bytes) at the offsets of AMD 56860, signed over 0x000-0x29F."""
    raw = bytearray(sev_snp.REPORT_SIZE)
    struct.pack_into("<IIQ", raw, 0x000, version, 1, policy)
    struct.pack_into("<IIQQI", raw, 0x030, 0, algo, 0x0D00000000000115, 0x3, 0)
    raw[0x050:0x090] = report_data
    raw[0x090:0x0C0] = measurement
    raw[0x0C0:0x0E0] = b"\x11" * 32  # HOST_DATA
    struct.pack_into("<Q", raw, 0x180, 0x0D00000000000115)  # REPORTED_TCB
    raw[0x1A0:0x1E0] = b"\xc1" * 64  # CHIP_ID
    der = vcek_key.sign(bytes(raw[: sev_snp.SIGNED_SIZE]), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    raw[0x2A0:0x2E8] = r.to_bytes(72, "little")
    raw[0x2E8:0x330] = s.to_bytes(72, "little")
    return bytes(raw)


def certificate_table(entries: dict[uuid.UUID, bytes]) -> bytes:
    """A GHCB certificate table: GUID | offset | length entries, a zero entry, then the data."""
    head = 24 * (len(entries) + 1)
    table, data = b"", b""
    for guid, blob in entries.items():
        table += guid.bytes_le + struct.pack("<II", head + len(data), len(blob))
        data += blob
    return table + b"\0" * 24 + data


@dataclass
class TdxChain:
    root: x509.Certificate
    pck_chain_pem: bytes
    pck_key: ec.EllipticCurvePrivateKey


def tdx_chain() -> TdxChain:
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    pck_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("TEST SGX Root CA", root_key, "TEST SGX Root CA", root_key, ca=True)
    inter = _cert("TEST SGX PCK Platform CA", inter_key, "TEST SGX Root CA", root_key, ca=True)
    pck = _cert(
        "TEST SGX PCK Certificate", pck_key, "TEST SGX PCK Platform CA", inter_key, ca=False
    )
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (pck, inter, root))
    return TdxChain(root, pem, pck_key)


def _p256_sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def td_quote(
    chain: TdxChain,
    report_data: bytes,
    mrtd: bytes,
    *,
    td_attributes: int = 0,
    attestation_key: ec.EllipticCurvePrivateKey | None = None,
    bind_ak: bool = True,
) -> bytes:
    """A v4 TD quote: header, TD report body, ECDSA signature data with a QE report (type 6)
    holding a PCK chain (type 5), the field order of Intel's TDX DCAP quote format."""
    ak = attestation_key or ec.generate_private_key(ec.SECP256R1())
    header = struct.pack("<HHIHH", 4, 2, 0x81, 0, 0) + b"\x93\x9a\x72\x33" + b"\0" * 12 + b"\0" * 20
    body = bytearray(tdx.BODY_SIZE)
    body[0:16] = b"\x05" * 16  # TEE_TCB_SVN
    body[16:64] = b"\x5e" * 48  # MRSEAM
    struct.pack_into("<QQ", body, 120, td_attributes, 0xE7)
    body[136:184] = mrtd
    for i in range(4):
        body[328 + 48 * i : 376 + 48 * i] = bytes([0xA0 + i]) * 48
    body[520:584] = report_data
    signed = header + bytes(body)
    ak_raw = ak.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]
    auth = b"\x00" * 32
    qe_report = bytearray(tdx.QE_REPORT_SIZE)
    binding = hashlib.sha256(ak_raw + auth).digest() if bind_ak else b"\x42" * 32
    qe_report[320:352] = binding
    inner = struct.pack("<HI", 5, len(chain.pck_chain_pem)) + chain.pck_chain_pem
    qe_cert = (
        bytes(qe_report)
        + _p256_sig(chain.pck_key, bytes(qe_report))
        + struct.pack("<H", len(auth))
        + auth
        + inner
    )
    sig_data = _p256_sig(ak, signed) + ak_raw + struct.pack("<HI", 6, len(qe_cert)) + qe_cert
    return signed + struct.pack("<I", len(sig_data)) + sig_data
