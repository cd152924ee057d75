"""The pinning check: an unpinned build is refused; an upgrade is rolled out by pinning the new
measurement first, then retiring the old one."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.attestation import fixtures
from tholos.attestation import (
    NotPinned,
    PinListError,
    SevSnpProvider,
    SoftwareProvider,
    VerifiedAttestation,
    check_pinned,
    report_data,
)
from tholos.attestation.providers import Attestation

OLD, NEW = b"\x01" * 32, b"\x02" * 32
LAUNCH = b"\x3c" * 48
NONCE = b"\x77" * 32


def _software(measurement: bytes) -> VerifiedAttestation:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    att = SoftwareProvider(key, measurement).evidence(NONCE)
    return SoftwareProvider().verify(att, nonce=NONCE, node_public_key=pub)


def _pin(kind: str, sw: bytes, launch: bytes | None = None, label: str = "") -> dict[str, Any]:
    d: dict[str, Any] = {"kind": kind, "software_measurement": sw.hex(), "label": label}
    if launch is not None:
        d["launch_measurement"] = launch.hex()
    return d


def test_unpinned_build_refused() -> None:
    allowed = [_pin("software", OLD, label="0.1.0")]
    assert check_pinned(allowed, _software(OLD)).label == "0.1.0"
    with pytest.raises(NotPinned, match=f"software measurement {NEW.hex()} is not pinned"):
        check_pinned(allowed, _software(NEW))


def test_upgrade_by_pinning_the_new_measurement_first() -> None:
    allowed = [_pin("software", OLD, label="0.1.0")]
    old_node, new_node = _software(OLD), _software(NEW)
    with pytest.raises(NotPinned):  # upgrading a node before the pin: refused
        check_pinned(allowed, new_node)
    allowed.append(_pin("software", NEW, label="0.2.0"))  # step 1: governance pins the new build
    assert check_pinned(allowed, old_node).label == "0.1.0"  # both run during the rollout
    assert check_pinned(allowed, new_node).label == "0.2.0"
    allowed = [p for p in allowed if p["label"] != "0.1.0"]  # step 3: the old build retired
    with pytest.raises(NotPinned):
        check_pinned(allowed, old_node)
    assert check_pinned(allowed, new_node).label == "0.2.0"


def test_kind_and_launch_measurement_must_match() -> None:
    chain = fixtures.snp_chain()
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw = fixtures.snp_report(chain.vcek_key, report_data(NONCE, pub, NEW), LAUNCH)
    v = SevSnpProvider(vcek=chain.vcek).verify(
        Attestation("sev-snp", pub, NONCE, NEW, raw), nonce=NONCE, node_public_key=pub
    )
    with pytest.raises(NotPinned, match="no sev-snp measurement is pinned"):
        check_pinned([_pin("software", NEW)], v)
    with pytest.raises(NotPinned, match="launch measurement"):
        check_pinned([_pin("sev-snp", NEW, b"\x00" * 48)], v)
    assert check_pinned([_pin("sev-snp", NEW, LAUNCH, "snp")], v).label == "snp"
    # a cluster that pins only hardware kinds refuses a self-measured node of the same build
    with pytest.raises(NotPinned, match="no software measurement"):
        check_pinned([_pin("sev-snp", NEW, LAUNCH)], _software(NEW))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "nitro", "software_measurement": "00" * 32}, "kind"),
        ({"kind": "software"}, "without"),
        ({"kind": "software", "software_measurement": "zz"}, "not hex"),
        ({"kind": "software", "software_measurement": "00" * 31}, "31 bytes"),
        ({"kind": "sev-snp", "software_measurement": "00" * 32}, "48-byte"),
        (
            {"kind": "software", "software_measurement": "00" * 32, "launch_measurement": "00"},
            "cannot carry",
        ),
    ],
)
def test_malformed_pin_list(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(PinListError, match=message):
        check_pinned([entry], _software(OLD))
