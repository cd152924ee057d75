"""Intel TDX guest attestation: a TD quote, version 4 (Intel TDX DCAP "Quote Format": a 48-byte
header, the 584-byte TD report body (MRTD, RTMR0-3, REPORTDATA, ...), then the ECDSA quote
signature data), obtained through configfs-tsm. /dev/tdx_guest alone yields only a TDREPORT,
MAC'd for the local platform and not verifiable remotely, so it is not used.

What `verify` checks, with `cryptography` only:
  1. header: version 4, TEE type 0x81 (TDX), attestation key type 2 (ECDSA P-256);
  2. the quote signature over header + body by the attestation key (AK) carried in the quote;
  3. the QE report's signature by the PCK certificate's key, and that the QE report's
     REPORTDATA[0:32] = SHA-256(AK || QE authentication data): the AK belongs to that QE;
  4. the PCK certificate chain (leaf <- intermediate <- root) up to the Intel root the operator
     pinned (`pck_root`), so a quote made with a key of our own choosing does not verify;
  5. REPORTDATA = our binding of nonce + node key + software measurement; debug TD refused.
What it does NOT check, because it needs Intel's Provisioning Certification Service collateral:
the QE identity (the QE's MRSIGNER / ISVSVN against Intel's signed QE identity), the TCB status
of the platform (TEE_TCB_SVN and the PCK certificate's TCB against Intel's signed TCB info) and
the PCK revocation lists. An operator who needs those runs Intel's quote verification library on
the same quote before pinning (docs/confidential-vm.md).

Tests use synthetic quotes laid out per the format and signed by test keys under a test root;
there is no TDX hardware here, so no quote recorded from hardware was available.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
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
from tholos.attestation.tsm import TSM_REPORT_ROOT, read_tsm_report

HEADER_SIZE = 48
BODY_SIZE = 584
QUOTE_VERSION = 4
TEE_TYPE_TDX = 0x81
ATT_KEY_ECDSA_P256 = 2
CERT_QE_REPORT = 6
CERT_PCK_CHAIN = 5
QE_REPORT_SIZE = 384
TD_ATTR_DEBUG = 1
PROTECTIONS = (
    "TD memory encrypted and integrity-protected from the host and VMM (TDX)",
    "MRTD/RTMRs in a quote signed by a QE key certified under the pinned Intel root",
    "debug TD refused",
)
UNVERIFIED = (
    "QE identity, platform TCB status and PCK revocation (Intel PCS collateral): operator's check",
)


@dataclass(frozen=True)
class TdQuote:
    version: int
    att_key_type: int
    tee_type: int
    qe_vendor_id: bytes
    tee_tcb_svn: bytes
    mrseam: bytes
    td_attributes: int
    xfam: int
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmr: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    signed: bytes  # header + body, what the attestation key signed
    signature: bytes  # 64: r || s, big-endian
    attestation_key: bytes  # 64: x || y
    qe_report: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes


def _need(raw: bytes, end: int, what: str) -> None:
    if len(raw) < end:
        raise AttestationError(f"TDX quote truncated in {what}: {len(raw)} bytes, need {end}")


def parse_quote(raw: bytes) -> TdQuote:
    """Parse a v4 TD quote with QE-report certification data (type 6 holding a type 5 chain)."""
    _need(raw, HEADER_SIZE + BODY_SIZE + 4, "header and TD report body")
    version, att_key_type, tee_type = struct.unpack_from("<HHI", raw, 0)
    if version != QUOTE_VERSION:
        raise AttestationError(f"TD quote version {version}: want {QUOTE_VERSION}")
    if tee_type != TEE_TYPE_TDX:
        raise AttestationError(f"TEE type {tee_type:#x}: want {TEE_TYPE_TDX:#x} (TDX)")
    if att_key_type != ATT_KEY_ECDSA_P256:
        raise AttestationError(f"attestation key type {att_key_type}: want 2 (ECDSA P-256)")
    b = HEADER_SIZE

    def f(off: int, n: int) -> bytes:
        return raw[b + off : b + off + n]

    td_attributes, xfam = struct.unpack_from("<QQ", raw, b + 120)
    (sig_len,) = struct.unpack_from("<I", raw, HEADER_SIZE + BODY_SIZE)
    p = HEADER_SIZE + BODY_SIZE + 4
    _need(raw, p + sig_len, "signature data")
    _need(raw, p + 134, "quote signature and certification data header")
    signature, akey = raw[p : p + 64], raw[p + 64 : p + 128]
    cert_type, cert_size = struct.unpack_from("<HI", raw, p + 128)
    q = p + 134
    _need(raw, q + cert_size, "certification data")
    if cert_type != CERT_QE_REPORT:
        raise AttestationError(f"certification data type {cert_type}: want 6 (QE report)")
    _need(raw, q + QE_REPORT_SIZE + 64 + 2, "QE report")
    qe_report = raw[q : q + QE_REPORT_SIZE]
    qe_sig = raw[q + QE_REPORT_SIZE : q + QE_REPORT_SIZE + 64]
    r = q + QE_REPORT_SIZE + 64
    (auth_len,) = struct.unpack_from("<H", raw, r)
    _need(raw, r + 2 + auth_len + 6, "QE authentication data")
    auth = raw[r + 2 : r + 2 + auth_len]
    s = r + 2 + auth_len
    inner_type, inner_size = struct.unpack_from("<HI", raw, s)
    _need(raw, s + 6 + inner_size, "PCK certificate chain")
    if inner_type != CERT_PCK_CHAIN:
        raise AttestationError(f"inner certification data type {inner_type}: want 5 (PCK chain)")
    return TdQuote(
        version=version,
        att_key_type=att_key_type,
        tee_type=tee_type,
        qe_vendor_id=raw[12:28],
        tee_tcb_svn=f(0, 16),
        mrseam=f(16, 48),
        td_attributes=td_attributes,
        xfam=xfam,
        mrtd=f(136, 48),
        mrconfigid=f(184, 48),
        mrowner=f(232, 48),
        mrownerconfig=f(280, 48),
        rtmr=(f(328, 48), f(376, 48), f(424, 48), f(472, 48)),
        report_data=f(520, 64),
        signed=raw[: HEADER_SIZE + BODY_SIZE],
        signature=signature,
        attestation_key=akey,
        qe_report=qe_report,
        qe_report_signature=qe_sig,
        qe_auth_data=auth,
        pck_chain_pem=raw[s + 6 : s + 6 + inner_size],
    )


def _p256_verify(key: ec.EllipticCurvePublicKey, sig: bytes, data: bytes, what: str) -> None:
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AttestationError(f"TDX quote: bad {what} signature") from None


class TdxProvider:
    """Evidence from configfs-tsm; verification up to the Intel root the operator pinned."""

    kind = "tdx"

    def __init__(
        self,
        *,
        node_public_key: bytes | None = None,
        software_measurement: bytes | None = None,
        pck_root: x509.Certificate | None = None,
        tsm_root: Path = TSM_REPORT_ROOT,
    ) -> None:
        self._pub = node_public_key
        self._measurement = software_measurement
        self._root = pck_root
        self._tsm_root = tsm_root

    def evidence(self, nonce: bytes) -> Attestation:
        if self._pub is None or self._measurement is None:
            raise AttestationError("this provider was built to verify only (no node identity)")
        rd = report_data(nonce, self._pub, self._measurement)
        try:
            rep = read_tsm_report(rd, self._tsm_root)
        except Exception as exc:
            raise AttestationError(f"no TDX quote: {exc}") from None
        if rep.provider != "tdx_guest":
            raise AttestationError(f"configfs-tsm provider is {rep.provider!r}, not tdx_guest")
        return Attestation(
            kind=self.kind,
            node_public_key=self._pub,
            nonce=nonce,
            software_measurement=self._measurement,
            evidence=rep.outblob,
        )

    def _pck_key(self, quote: TdQuote) -> ec.EllipticCurvePublicKey:
        if self._root is None:
            raise AttestationError("TDX verifier needs the pinned Intel PCK root certificate")
        try:
            chain = x509.load_pem_x509_certificates(quote.pck_chain_pem)
        except ValueError as exc:
            raise AttestationError(f"TDX PCK chain unreadable: {exc}") from None
        if len(chain) < 2:
            raise AttestationError(f"TDX PCK chain has {len(chain)} certificates, want 3")
        if chain[-1] != self._root:
            raise AttestationError("TDX PCK chain ends at a root other than the pinned one")
        try:
            for child, issuer in itertools.pairwise(chain):
                child.verify_directly_issued_by(issuer)
            self._root.verify_directly_issued_by(self._root)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise AttestationError(f"TDX PCK chain does not verify: {exc}") from None
        key = chain[0].public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise AttestationError("PCK certificate key is not ECDSA P-256")
        return key

    def verify(
        self, attestation: Attestation, *, nonce: bytes, node_public_key: bytes
    ) -> VerifiedAttestation:
        if attestation.kind != self.kind:
            raise AttestationError(f"a {attestation.kind} attestation given to the TDX verifier")
        rd = check_binding(attestation, nonce, node_public_key)
        quote = parse_quote(attestation.evidence)
        try:
            ak = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b"\x04" + quote.attestation_key
            )
        except ValueError:
            raise AttestationError("TDX attestation key is not a P-256 point") from None
        _p256_verify(ak, quote.signature, quote.signed, "attestation key")
        _p256_verify(self._pck_key(quote), quote.qe_report_signature, quote.qe_report, "QE report")
        bound = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
        if quote.qe_report[320:352] != bound or any(quote.qe_report[352:384]):
            raise AttestationError("TDX QE report does not bind the quote's attestation key")
        if quote.report_data != rd:
            raise AttestationError(
                "TDX REPORTDATA does not bind this nonce, node key and software measurement"
            )
        if quote.td_attributes & TD_ATTR_DEBUG:
            raise AttestationError("TDX TD attributes allow debugging: the host can read it")
        return VerifiedAttestation(
            kind=self.kind,
            hardware_guarantee=True,
            node_public_key=node_public_key,
            software_measurement=attestation.software_measurement,
            launch_measurement=quote.mrtd,
            registers={
                **{f"rtmr{i}": r.hex() for i, r in enumerate(quote.rtmr)},
                "mrconfigid": quote.mrconfigid.hex(),
                "mrowner": quote.mrowner.hex(),
                "mrseam": quote.mrseam.hex(),
                "td_attributes": f"{quote.td_attributes:#018x}",
                "tee_tcb_svn": quote.tee_tcb_svn.hex(),
            },
            protections=PROTECTIONS,
            unverified=UNVERIFIED,
        )
