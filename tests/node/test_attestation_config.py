"""The node's attestation set-up from node.json (node/attestation.py): software by default, a
hardware provider refused at start when its device is missing, bad settings named, and the
test-only other-build fault changing only what the node attests to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tholos.attestation.session import Session
from tholos.node.attestation import DEV_SEV_GUEST, AttestationSettings, build
from tholos.node.hooks import NO_HOOKS
from tholos.testing.faults import OtherBuild, other_build_digest
from tholos.transport.e2e import Identity, generate_identity_secret


def config(tmp: Path, attestation: object = None) -> Path:
    p = tmp / "node.json"
    body: dict[str, object] = {"node_id": 1}
    if attestation is not None:
        body["attestation"] = attestation
    p.write_text(json.dumps(body))
    return p


def identity() -> Identity:
    s = generate_identity_secret()
    return Identity(1, s, {1: Identity(1, s).public})


def test_software_is_the_default_and_attests_to_the_running_build(tmp_path: Path) -> None:
    me = identity()
    att = build(config(tmp_path), me, NO_HOOKS, list, None)
    assert att.provider.kind == "software" and att.enforced is False
    assert att.verifiers.kinds == ("software",)
    status = att.status()
    assert status["hardware_guarantee"] is False and status["measurement"]["files"] > 0
    session = Session({1: bytes(32)}, bytes(32))
    wire = att.handle("attest", {"session": session.to_dict()})
    assert wire["attestation"]["software_measurement"] == att.measurement.hex
    assert wire["attestation"]["node_public_key"] == me.public.signing_key.hex()


def test_the_other_build_fault_changes_only_the_attested_measurement(tmp_path: Path) -> None:
    real = build(config(tmp_path), identity(), NO_HOOKS, list, None).measurement
    faked = build(config(tmp_path), identity(), OtherBuild(), list, None).measurement
    assert faked.digest == other_build_digest(real.digest) != real.digest
    assert faked.files == real.files and faked.version == real.version + "+other"


@pytest.mark.skipif(DEV_SEV_GUEST.exists(), reason="this machine is an SEV-SNP guest")
def test_a_hardware_provider_without_its_device_stops_the_node(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sev-snp: no /dev/sev-guest"):
        build(config(tmp_path, {"provider": "sev-snp"}), identity(), NO_HOOKS, list, None)


@pytest.mark.parametrize(
    ("section", "why"),
    [({"provider": "sgx"}, "provider 'sgx'"), ("software", "must be an object")],
)
def test_bad_attestation_settings_are_named(tmp_path: Path, section: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        AttestationSettings.from_config(config(tmp_path, section))


def test_a_missing_lock_file_stops_the_node(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lock file"):
        build(config(tmp_path, {"lock_file": "lock.txt"}), identity(), NO_HOOKS, list, None)
    (tmp_path / "lock.txt").write_text("pkg==1.0\n")
    m = build(config(tmp_path, {"lock_file": "lock.txt"}), identity(), NO_HOOKS, list, None)
    assert m.measurement.lock_digest is not None
