"""An attestation session between real node attestation objects (node/attestation.py, software
provider signing with each node's identity key): evidence is accepted once, for a session that
holds the verifier's own fresh challenge, from the node whose identity key made it; a replayed
session, another node's evidence and a session without (or with a forged) challenge are refused;
protocol messages from an unattested or unpinned peer are refused only while pins exist."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.attestation import fixtures
from tholos.attestation import (
    Attestation,
    AttestationError,
    Measurement,
    SevSnpProvider,
    SoftwareProvider,
    report_data,
)
from tholos.attestation.roots import VendorRoots
from tholos.attestation.session import CHALLENGE_BYTES, Challenges, Session, Verifiers
from tholos.node.attestation import NodeAttestation, PeerNotAttested
from tholos.transport.e2e import Identity, generate_identity_secret


def measurement(tag: bytes) -> Measurement:
    return Measurement(
        digest=hashlib.sha256(tag).digest(),
        distribution="tholos",
        version="0.1.0",
        files=1,
        lock_digest=None,
        editable=False,
    )


BUILD_A, BUILD_B = measurement(b"build a"), measurement(b"build b")


class Nodes:
    """Three nodes' attestation objects; `pins` is what their governance document would pin."""

    def __init__(self, builds: dict[int, Measurement]) -> None:
        secrets = {i: generate_identity_secret() for i in builds}
        roster = {i: Identity(i, s).public for i, s in secrets.items()}
        self.pins: list[dict[str, Any]] = []
        self.nodes: dict[int, NodeAttestation] = {}
        for i, s in secrets.items():
            ident = Identity(i, s, dict(roster))
            provider = SoftwareProvider(
                Ed25519PrivateKey.from_private_bytes(s[:32]), builds[i].digest
            )
            self.nodes[i] = NodeAttestation(
                ident, builds[i], provider, VendorRoots().verifiers(), lambda: self.pins
            )

    def pin(self, *builds: Measurement) -> None:
        self.pins[:] = [{"kind": "software", "software_measurement": b.hex} for b in builds]

    def session(self) -> Session:
        challenges = {
            i: bytes.fromhex(n.handle("attest_challenge", {})["challenge"])
            for i, n in self.nodes.items()
        }
        return Session(challenges, os.urandom(CHALLENGE_BYTES))

    def evidence(self, session: Session) -> dict[str, Any]:
        body = {"session": session.to_dict()}
        return {str(i): n.handle("attest", body)["attestation"] for i, n in self.nodes.items()}

    def deliver(self, verifier: int, session: Session, evidence: dict[str, Any]) -> dict[str, Any]:
        body = {"session": session.to_dict(), "attestations": evidence}
        out: dict[str, Any] = self.nodes[verifier].handle("attest_peers", body)["peers"]
        return out


@pytest.fixture
def three() -> Nodes:
    return Nodes({1: BUILD_A, 2: BUILD_A, 3: BUILD_B})


def test_a_session_verifies_every_peer_and_pins_decide(three: Nodes) -> None:
    three.pin(BUILD_A)
    s = three.session()
    ev = three.evidence(s)
    got = three.deliver(1, s, ev)
    assert got["2"] == {"verified": True, "pinned": True, "reason": "pinned"}
    assert got["3"]["verified"] is True and got["3"]["pinned"] is False
    assert BUILD_B.hex in got["3"]["reason"] and "not pinned" in got["3"]["reason"]
    node1 = three.nodes[1]
    node1.check_peers([1, 2])  # itself and a pinned peer
    with pytest.raises(PeerNotAttested, match="node 3") as exc:
        node1.check_peers([2, 3])
    assert exc.value.culprits == (3,)
    status = node1.status()
    assert status["enforced"] is True and status["provider"] == "software"
    assert status["hardware_guarantee"] is False
    assert status["peers"]["3"]["software_measurement"] == BUILD_B.hex


def test_a_replayed_session_is_refused(three: Nodes) -> None:
    s = three.session()
    ev = three.evidence(s)
    three.deliver(1, s, ev)
    with pytest.raises(AttestationError, match="does not hold a challenge this verifier issued"):
        three.deliver(1, s, ev)


def test_evidence_of_an_earlier_session_is_refused(three: Nodes) -> None:
    old = three.session()
    old_ev = three.evidence(old)
    new = three.session()
    got = three.deliver(1, new, old_ev)  # the gateway replays last session's evidence
    for peer in ("2", "3"):
        assert got[peer]["verified"] is False
        assert "another nonce" in got[peer]["reason"]
    three.pin(BUILD_A, BUILD_B)
    with pytest.raises(PeerNotAttested, match="another nonce"):
        three.nodes[1].check_peers([2])


def test_another_nodes_evidence_is_refused(three: Nodes) -> None:
    s = three.session()
    ev = three.evidence(s)
    ev["3"] = ev["2"]  # node 3 (unpinned build) passes off node 2's evidence as its own
    got = three.deliver(1, s, ev)
    assert got["3"]["verified"] is False
    assert "another node identity key" in got["3"]["reason"]
    assert got["2"]["verified"] is True


def test_a_forged_signature_is_refused(three: Nodes) -> None:
    s = three.session()
    ev = three.evidence(s)
    ev["3"] = {**ev["3"], "software_measurement": BUILD_A.hex}  # claims the pinned build
    got = three.deliver(1, s, ev)
    assert got["3"]["verified"] is False and "bad signature" in got["3"]["reason"]


def test_a_session_without_the_verifiers_challenge_is_refused(three: Nodes) -> None:
    s = three.session()
    ev = three.evidence(s)
    forged = Session({**s.challenges, 1: os.urandom(CHALLENGE_BYTES)}, s.gateway)
    with pytest.raises(AttestationError, match="does not hold a challenge"):
        three.deliver(1, forged, ev)
    missing = Session({i: c for i, c in s.challenges.items() if i != 1}, s.gateway)
    with pytest.raises(AttestationError, match="no challenge of this node"):
        three.deliver(1, missing, ev)
    assert three.nodes[1].peers == {}  # nothing was accepted


def test_nothing_is_refused_while_no_measurement_is_pinned(three: Nodes) -> None:
    node1 = three.nodes[1]
    node1.check_peers([2, 3])  # no session at all, no pins: development
    assert node1.status()["enforced"] is False
    three.pin(BUILD_A)
    with pytest.raises(PeerNotAttested):
        node1.check_peers([2])


def test_an_unknown_op_and_malformed_sessions_are_refused(three: Nodes) -> None:
    node1 = three.nodes[1]
    with pytest.raises(AttestationError, match="unknown attestation op"):
        node1.handle("attest_everything", {})
    for body in ({}, {"session": {"challenges": {"1": "zz"}, "gateway": "00"}}, {"session": 5}):
        with pytest.raises(AttestationError, match="session"):
            node1.handle("attest", body)
    short = {"session": {"challenges": {"1": "ab" * 8}, "gateway": "cd" * 32}}
    with pytest.raises(AttestationError, match="node 1: 8 bytes"):
        node1.handle("attest", short)


def test_a_challenge_is_good_once_and_not_after_it_expires() -> None:
    now = [0.0]
    ch = Challenges(lambda: now[0])
    a, b = ch.issue(), ch.issue()
    ch.take(a)
    with pytest.raises(AttestationError, match="issued"):
        ch.take(a)
    now[0] = 1e6
    with pytest.raises(AttestationError, match="expired"):
        ch.take(b)


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(st.integers(1, 64), st.binary(min_size=32, max_size=32), min_size=1),
    st.binary(min_size=32, max_size=32),
    st.integers(1, 64),
    st.binary(min_size=32, max_size=32),
)
def test_the_session_nonce_changes_with_every_challenge(
    challenges: dict[int, bytes], gateway: bytes, who: int, other: bytes
) -> None:
    s = Session(challenges, gateway)
    assert Session.from_dict(s.to_dict()) == s
    assert Session.from_dict(s.to_dict()).nonce() == s.nonce()
    changed = Session({**challenges, who: other}, gateway)
    assert (changed.nonce() == s.nonce()) == (challenges.get(who) == other)
    assert (Session(challenges, other).nonce() == s.nonce()) == (gateway == other)


class SnpGuest:
    """A node in an SEV-SNP guest, its reports made from the synthetic fixtures (signed by a
    test VCEK chained to a test ARK/ASK) instead of /dev/sev-guest, for the session's nonce."""

    kind = "sev-snp"

    def __init__(self, snp: fixtures.SnpChain, pub: bytes, m: Measurement, launch: bytes) -> None:
        self.snp, self.pub, self.m, self.launch = snp, pub, m, launch

    def evidence(self, nonce: bytes) -> Attestation:
        rd = report_data(nonce, self.pub, self.m.digest)
        return Attestation(
            kind=self.kind,
            node_public_key=self.pub,
            nonce=nonce,
            software_measurement=self.m.digest,
            evidence=fixtures.snp_report(self.snp.vcek_key, rd, self.launch),
            certificates=self.snp.vcek.public_bytes(serialization.Encoding.DER),
        )

    def verify(self, attestation: Attestation, *, nonce: bytes, node_public_key: bytes) -> Any:
        raise AssertionError("a guest provider is not used to verify")


def test_a_hardware_peer_is_pinned_by_its_launch_measurement_too() -> None:
    snp = fixtures.snp_chain()
    launch, other_launch = b"\x3c" * 48, b"\x3d" * 48
    c = Nodes({1: BUILD_A, 2: BUILD_A, 3: BUILD_A})
    amd = Verifiers(
        {"software": SoftwareProvider(), "sev-snp": SevSnpProvider(ark=snp.ark, ask=snp.ask)}
    )
    c.nodes[1].verifiers = amd
    guest = c.nodes[3]
    guest.provider = SnpGuest(snp, guest.identity.public.signing_key, BUILD_A, launch)
    c.pins[:] = [
        {"kind": "software", "software_measurement": BUILD_A.hex},
        {
            "kind": "sev-snp",
            "software_measurement": BUILD_A.hex,
            "launch_measurement": other_launch.hex(),
        },
    ]
    s = c.session()
    ev = c.evidence(s)
    got = c.deliver(1, s, ev)
    assert got["3"]["verified"] is True and got["3"]["pinned"] is False
    assert "launch measurement" in got["3"]["reason"]
    view = c.nodes[1].status()["peers"]["3"]
    assert view["hardware_guarantee"] is True and view["launch_measurement"] == launch.hex()
    assert view["protections"] and view["unverified"]
    # node 2 has no AMD roots configured: it cannot verify the report, so it refuses it
    assert "no verifier configured" in c.deliver(2, s, ev)["3"]["reason"]
    c.pins.append(
        {"kind": "sev-snp", "software_measurement": BUILD_A.hex, "launch_measurement": launch.hex()}
    )
    s = c.session()
    assert c.deliver(1, s, c.evidence(s))["3"]["pinned"] is True
    c.nodes[1].check_peers([2, 3])
