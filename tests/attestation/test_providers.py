"""Software, SEV-SNP and TDX providers: evidence binds the nonce, the node key and the build;
a wrong nonce, a wrong measurement, a bad signature or a truncated report is refused.
SEV-SNP and TDX evidence here is SYNTHETIC (spec layout, test keys; see fixtures.py)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.attestation import fixtures
from tholos.attestation import (
    Attestation,
    AttestationError,
    SevSnpProvider,
    SoftwareProvider,
    TdxProvider,
    report_data,
    sev_snp,
    tdx,
)

NONCE = bytes(range(32))
MEASURE = b"\x5a" * 32
LAUNCH = b"\x3c" * 48


def _pub(k: Ed25519PrivateKey) -> bytes:
    return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture(scope="module")
def snp() -> fixtures.SnpChain:
    return fixtures.snp_chain()


@pytest.fixture(scope="module")
def tdxc() -> fixtures.TdxChain:
    return fixtures.tdx_chain()


# -- software ------------------------------------------------------------------------------------
def test_software_round_trip_and_label() -> None:
    key = Ed25519PrivateKey.generate()
    prov = SoftwareProvider(key, MEASURE)
    att = prov.evidence(NONCE)
    wire = att.to_dict()
    assert wire["hardware_guarantee"] is False
    v = SoftwareProvider().verify(
        Attestation.from_dict(wire), nonce=NONCE, node_public_key=_pub(key)
    )
    assert v.hardware_guarantee is False and v.to_dict()["hardware_guarantee"] is False
    assert v.software_measurement == MEASURE and v.launch_measurement is None
    assert "hardware_guarantee=False" in repr(prov)


def test_software_refusals() -> None:
    key = Ed25519PrivateKey.generate()
    att = SoftwareProvider(key, MEASURE).evidence(NONCE)
    verifier = SoftwareProvider()
    with pytest.raises(AttestationError, match="another nonce"):
        verifier.verify(att, nonce=b"\x01" * 32, node_public_key=_pub(key))
    other = _pub(Ed25519PrivateKey.generate())
    with pytest.raises(AttestationError, match="another node"):
        verifier.verify(att, nonce=NONCE, node_public_key=other)
    # a claimed measurement the key did not sign
    forged = Attestation(**{**att.__dict__, "software_measurement": b"\x00" * 32})
    with pytest.raises(AttestationError, match="bad signature"):
        verifier.verify(forged, nonce=NONCE, node_public_key=_pub(key))
    with pytest.raises(AttestationError, match="nonce"):
        SoftwareProvider(key, MEASURE).evidence(b"short")
    with pytest.raises(AttestationError, match="verify only"):
        verifier.evidence(NONCE)


def test_wire_refuses_bad_fields_and_ignores_claimed_guarantee() -> None:
    att = SoftwareProvider(Ed25519PrivateKey.generate(), MEASURE).evidence(NONCE).to_dict()
    assert Attestation.from_dict({**att, "hardware_guarantee": True}).hardware_guarantee is False
    with pytest.raises(AttestationError, match="kind"):
        Attestation.from_dict({**att, "kind": "nitro"})
    with pytest.raises(AttestationError, match="version"):
        Attestation.from_dict({**att, "version": 2})
    with pytest.raises(AttestationError, match="malformed"):
        Attestation.from_dict({**att, "nonce": "zz"})


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=16, max_size=64), st.binary(min_size=16, max_size=64))
def test_report_data_separates_nonces(a: bytes, b: bytes) -> None:
    pub = b"\x07" * 32
    assert (report_data(a, pub, MEASURE) == report_data(b, pub, MEASURE)) == (a == b)


# -- SEV-SNP (synthetic reports) -----------------------------------------------------------------
def _snp_att(chain: fixtures.SnpChain, key: Ed25519PrivateKey, **kw: object) -> Attestation:
    rd = kw.pop("rd", None) or report_data(NONCE, _pub(key), MEASURE)
    raw = fixtures.snp_report(chain.vcek_key, rd, LAUNCH, **kw)  # type: ignore[arg-type]
    return Attestation("sev-snp", _pub(key), NONCE, MEASURE, raw)


def test_snp_parse_offsets(snp: fixtures.SnpChain) -> None:
    key = Ed25519PrivateKey.generate()
    rep = sev_snp.parse_report(_snp_att(snp, key).evidence)
    assert rep.version == 3 and rep.signature_algo == 1 and rep.policy == 0x30000
    assert rep.measurement == LAUNCH and rep.report_data == report_data(NONCE, _pub(key), MEASURE)
    assert rep.host_data == b"\x11" * 32 and rep.chip_id == b"\xc1" * 64


def test_snp_verifies_with_operator_vcek(snp: fixtures.SnpChain) -> None:
    key = Ed25519PrivateKey.generate()
    v = SevSnpProvider(vcek=snp.vcek).verify(
        _snp_att(snp, key), nonce=NONCE, node_public_key=_pub(key)
    )
    assert v.hardware_guarantee is True and v.launch_measurement == LAUNCH
    assert v.software_measurement == MEASURE and v.registers["host_data"] == "11" * 32
    assert v.unverified  # says what it could not check


def test_snp_host_vcek_must_chain_to_pinned_ark(snp: fixtures.SnpChain) -> None:
    key = Ed25519PrivateKey.generate()
    att = _snp_att(snp, key)
    der = snp.vcek.public_bytes(serialization.Encoding.DER)
    with_vcek = Attestation(**{**att.__dict__, "certificates": der})
    SevSnpProvider(ark=snp.ark, ask=snp.ask).verify(
        with_vcek, nonce=NONCE, node_public_key=_pub(key)
    )
    other = fixtures.snp_chain()
    with pytest.raises(AttestationError, match="does not chain"):
        SevSnpProvider(ark=other.ark, ask=other.ask).verify(
            with_vcek, nonce=NONCE, node_public_key=_pub(key)
        )
    with pytest.raises(AttestationError, match="no VCEK"):
        SevSnpProvider(ark=snp.ark, ask=snp.ask).verify(att, nonce=NONCE, node_public_key=_pub(key))


def test_snp_refusals(snp: fixtures.SnpChain) -> None:
    key = Ed25519PrivateKey.generate()
    pub = _pub(key)
    verifier = SevSnpProvider(vcek=snp.vcek)
    good = _snp_att(snp, key)
    with pytest.raises(AttestationError, match="another nonce"):
        verifier.verify(good, nonce=b"\x09" * 32, node_public_key=pub)
    # a report made for another nonce, relabelled with ours
    stale = _snp_att(snp, key, rd=report_data(b"\x09" * 32, pub, MEASURE))
    with pytest.raises(AttestationError, match="REPORT_DATA"):
        verifier.verify(stale, nonce=NONCE, node_public_key=pub)
    # a different software measurement claimed than the one bound in the report
    claimed = Attestation(**{**good.__dict__, "software_measurement": b"\x00" * 32})
    with pytest.raises(AttestationError, match="REPORT_DATA"):
        verifier.verify(claimed, nonce=NONCE, node_public_key=pub)
    flipped = bytearray(good.evidence)
    flipped[0x090] ^= 1  # the launch measurement, under the signature
    with pytest.raises(AttestationError, match="bad VCEK signature"):
        verifier.verify(
            Attestation(**{**good.__dict__, "evidence": bytes(flipped)}),
            nonce=NONCE,
            node_public_key=pub,
        )
    with pytest.raises(AttestationError, match="bad VCEK signature"):
        SevSnpProvider(vcek=fixtures.snp_chain().vcek).verify(
            good, nonce=NONCE, node_public_key=pub
        )
    with pytest.raises(AttestationError, match="truncated"):
        verifier.verify(
            Attestation(**{**good.__dict__, "evidence": good.evidence[:-1]}),
            nonce=NONCE,
            node_public_key=pub,
        )
    with pytest.raises(AttestationError, match="debugging"):
        verifier.verify(
            _snp_att(snp, key, policy=0x30000 | sev_snp.POLICY_DEBUG),
            nonce=NONCE,
            node_public_key=pub,
        )
    with pytest.raises(AttestationError, match="SIGNATURE_ALGO"):
        verifier.verify(_snp_att(snp, key, algo=2), nonce=NONCE, node_public_key=pub)
    with pytest.raises(AttestationError, match="version"):
        verifier.verify(_snp_att(snp, key, version=1), nonce=NONCE, node_public_key=pub)
    with pytest.raises(AttestationError, match="a software attestation given to the SEV-SNP"):
        verifier.verify(
            SoftwareProvider(key, MEASURE).evidence(NONCE), nonce=NONCE, node_public_key=pub
        )


def test_snp_certificate_table(snp: fixtures.SnpChain) -> None:
    der = snp.vcek.public_bytes(serialization.Encoding.DER)
    ask = snp.ask.public_bytes(serialization.Encoding.DER)
    table = fixtures.certificate_table({sev_snp.VCEK_GUID: der, sev_snp.ASK_GUID: ask})
    certs = sev_snp.parse_certificate_table(table)
    assert certs[sev_snp.VCEK_GUID] == der and certs[sev_snp.ASK_GUID] == ask
    assert sev_snp.parse_certificate_table(b"") == {}
    with pytest.raises(AttestationError, match="past the end"):
        sev_snp.parse_certificate_table(table[:48])
    with pytest.raises(AttestationError, match="terminating"):
        sev_snp.parse_certificate_table(
            sev_snp.VCEK_GUID.bytes_le + struct.pack("<II", 24, 4) + b"cert"
        )


def test_snp_evidence_without_device_names_both_interfaces(tmp_path: Path) -> None:
    prov = SevSnpProvider(
        node_public_key=b"\x01" * 32,
        software_measurement=MEASURE,
        tsm_root=tmp_path / "no-tsm",
        device=tmp_path / "no-sev-guest",
    )
    with pytest.raises(AttestationError, match="no SEV-SNP guest interface"):
        prov.evidence(NONCE)


# -- TDX (synthetic quotes) ----------------------------------------------------------------------
def _tdx_att(chain: fixtures.TdxChain, key: Ed25519PrivateKey, **kw: object) -> Attestation:
    rd = kw.pop("rd", None) or report_data(NONCE, _pub(key), MEASURE)
    return Attestation("tdx", _pub(key), NONCE, MEASURE, fixtures.td_quote(chain, rd, LAUNCH, **kw))  # type: ignore[arg-type]


def test_tdx_parse_and_verify(tdxc: fixtures.TdxChain) -> None:
    key = Ed25519PrivateKey.generate()
    att = _tdx_att(tdxc, key)
    q = tdx.parse_quote(att.evidence)
    assert q.version == 4 and q.tee_type == 0x81 and q.mrtd == LAUNCH
    assert q.rtmr[2] == b"\xa2" * 48 and q.td_attributes == 0
    v = TdxProvider(pck_root=tdxc.root).verify(att, nonce=NONCE, node_public_key=_pub(key))
    assert v.hardware_guarantee and v.launch_measurement == LAUNCH
    assert v.registers["rtmr0"] == "a0" * 48 and v.unverified


def test_tdx_refusals(tdxc: fixtures.TdxChain) -> None:
    key = Ed25519PrivateKey.generate()
    pub = _pub(key)
    verifier = TdxProvider(pck_root=tdxc.root)
    good = _tdx_att(tdxc, key)
    stale = _tdx_att(tdxc, key, rd=report_data(b"\x09" * 32, pub, MEASURE))
    with pytest.raises(AttestationError, match="REPORTDATA"):
        verifier.verify(stale, nonce=NONCE, node_public_key=pub)
    with pytest.raises(AttestationError, match="another nonce"):
        verifier.verify(good, nonce=b"\x09" * 32, node_public_key=pub)
    flipped = bytearray(good.evidence)
    flipped[48 + 136] ^= 1  # MRTD
    with pytest.raises(AttestationError, match="bad attestation key signature"):
        verifier.verify(
            Attestation(**{**good.__dict__, "evidence": bytes(flipped)}),
            nonce=NONCE,
            node_public_key=pub,
        )
    with pytest.raises(AttestationError, match="root other than the pinned"):
        TdxProvider(pck_root=fixtures.tdx_chain().root).verify(
            good, nonce=NONCE, node_public_key=pub
        )
    with pytest.raises(AttestationError, match="needs the pinned Intel"):
        TdxProvider().verify(good, nonce=NONCE, node_public_key=pub)
    # a quote whose QE report does not vouch for the attestation key that signed it
    with pytest.raises(AttestationError, match="does not bind the quote's attestation key"):
        verifier.verify(_tdx_att(tdxc, key, bind_ak=False), nonce=NONCE, node_public_key=pub)
    # a QE report signed by a PCK key that is not the certified one
    rogue = fixtures.TdxChain(
        tdxc.root, tdxc.pck_chain_pem, ec.generate_private_key(ec.SECP256R1())
    )
    with pytest.raises(AttestationError, match="bad QE report signature"):
        verifier.verify(_tdx_att(rogue, key), nonce=NONCE, node_public_key=pub)
    with pytest.raises(AttestationError, match="debugging"):
        verifier.verify(_tdx_att(tdxc, key, td_attributes=1), nonce=NONCE, node_public_key=pub)
    for cut in (10, 48 + 584, len(good.evidence) - 1):
        with pytest.raises(AttestationError, match="truncated"):
            verifier.verify(
                Attestation(**{**good.__dict__, "evidence": good.evidence[:cut]}),
                nonce=NONCE,
                node_public_key=pub,
            )


def test_tdx_evidence_without_tsm(tmp_path: Path) -> None:
    prov = TdxProvider(
        node_public_key=b"\x01" * 32, software_measurement=MEASURE, tsm_root=tmp_path / "x"
    )
    with pytest.raises(AttestationError, match="no TDX quote"):
        prov.evidence(NONCE)
    assert not os.path.exists(tmp_path / "x")
