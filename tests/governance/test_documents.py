"""Governance documents: genesis, adoption of the direct successor, and every refusal path."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tholos.governance import (
    GovernanceError,
    GovernanceState,
    InvalidDocument,
    InvalidSignature,
    QuorumNotMet,
    SignedDocument,
    User,
    VersionConflict,
    apply_document,
    apply_documents,
    load_genesis,
    public_key_hex,
    sign_document,
)

from .conftest import CLUSTER, Cluster


def _eve(cluster: Cluster, roles: tuple[str, ...] = ("admin",)) -> User:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    cluster.keys["eve"] = Ed25519PrivateKey.generate()
    return User(user_id="eve", public_key=public_key_hex(cluster.keys["eve"]), roles=roles)


def _snapshot(state: GovernanceState) -> tuple[int, bytes, bytes]:
    return state.version, state.hash, state.document.canonical()


def test_genesis_loads(cluster: Cluster) -> None:
    state = cluster.state()
    assert state.version == 0
    assert state.cluster_id == CLUSTER
    assert state.kill_switch is None
    assert state.key_wallet["k1"] == "hot"


def test_genesis_from_bytes_and_pinned_hash(cluster: Cluster) -> None:
    genesis = cluster.genesis()
    raw = genesis.model_dump_json().encode()
    state = load_genesis(raw, expected_hash=genesis.document.digest())
    assert state.hash == genesis.document.digest()
    with pytest.raises(InvalidDocument):
        load_genesis(raw, expected_hash=b"\x00" * 32)


def test_genesis_needs_its_admin_quorum(cluster: Cluster) -> None:
    with pytest.raises(QuorumNotMet):
        load_genesis(cluster.genesis(signers=("alice",)))
    with pytest.raises(InvalidSignature):
        load_genesis(cluster.genesis(signers=("alice", "ivan")))


def test_successor_adopted(cluster: Cluster) -> None:
    state = cluster.state()
    doc = cluster.next_doc(state, users=cluster.users([_eve(cluster, ("approver",))]))
    new = apply_document(state, cluster.sign(doc, ("alice", "carol")))
    assert new.version == 1
    assert new.hash == doc.digest()
    assert "eve" in new.registry
    assert "eve" not in state.registry  # old state untouched


def _refused(
    state: GovernanceState, signed: SignedDocument | bytes, error: type[Exception]
) -> None:
    before = _snapshot(state)
    with pytest.raises(error):
        apply_document(state, signed)
    assert _snapshot(state) == before


def test_forged_signature_refused(cluster: Cluster) -> None:
    state = cluster.state()
    doc = cluster.next_doc(state, admin_quorum=1)
    forged = sign_document(doc, "bob", cluster.keys["ivan"])  # bob's name, ivan's key
    signed = SignedDocument(
        document=doc, signatures=(sign_document(doc, "alice", cluster.keys["alice"]), forged)
    )
    _refused(state, signed, InvalidSignature)


def test_tampered_after_signing_refused(cluster: Cluster) -> None:
    state = cluster.state()
    signed = cluster.sign(cluster.next_doc(state), ("alice", "bob"))
    tampered = SignedDocument(
        document=signed.document.model_copy(update={"admin_quorum": 1}),
        signatures=signed.signatures,
    )
    _refused(state, tampered, InvalidSignature)


def test_too_few_admin_signatures_refused(cluster: Cluster) -> None:
    state = cluster.state()
    _refused(state, cluster.sign(cluster.next_doc(state), ("alice",)), QuorumNotMet)


def test_duplicate_signer_refused(cluster: Cluster) -> None:
    state = cluster.state()
    _refused(state, cluster.sign(cluster.next_doc(state), ("alice", "alice")), InvalidSignature)


def test_non_admin_signer_refused(cluster: Cluster) -> None:
    state = cluster.state()
    _refused(state, cluster.sign(cluster.next_doc(state), ("alice", "tina")), InvalidSignature)


def test_new_admin_cannot_vouch_for_own_document(cluster: Cluster) -> None:
    """Signatures are checked against the CURRENT registry, not the one the document installs."""
    state = cluster.state()
    doc = cluster.next_doc(state, users=cluster.users([_eve(cluster)]))
    _refused(state, cluster.sign(doc, ("alice", "eve")), InvalidSignature)


def test_replay_rollback_reorder_refused(cluster: Cluster) -> None:
    s0 = cluster.state()
    d1 = cluster.sign(cluster.next_doc(s0, note="one"), ("alice", "bob"))
    s1 = apply_document(s0, d1)
    d2 = cluster.sign(cluster.next_doc(s1, note="two"), ("bob", "carol"))
    d3_doc = cluster.next_doc(apply_document(s1, d2), note="three")
    d3 = cluster.sign(d3_doc, ("alice", "carol"))
    _refused(s0, d2, VersionConflict)  # reordered: 2 before 1
    _refused(s0, d3, VersionConflict)  # skipped
    _refused(s1, d1, VersionConflict)  # replayed
    s2 = apply_document(s1, d2)
    _refused(s2, d1, VersionConflict)  # rolled back
    _refused(s2, d2, VersionConflict)
    assert apply_documents(s0, [d1, d2, d3]).version == 3
    with pytest.raises(VersionConflict):
        apply_documents(s0, [d1, d3])


def test_wrong_prev_hash_refused(cluster: Cluster) -> None:
    state = cluster.state()
    doc = cluster.next_doc(state, prev_hash="ab" * 32)
    _refused(state, cluster.sign(doc, ("alice", "bob")), VersionConflict)


def test_fork_refused(cluster: Cluster) -> None:
    """Two different version-1 documents: after adopting one, the other is refused."""
    s0 = cluster.state()
    a = cluster.sign(cluster.next_doc(s0, note="a"), ("alice", "bob"))
    b = cluster.sign(cluster.next_doc(s0, note="b"), ("alice", "carol"))
    s1 = apply_document(s0, a)
    _refused(s1, b, VersionConflict)


def test_quorum_change_applies_to_next_document(cluster: Cluster) -> None:
    s0 = cluster.state()
    s1 = apply_document(s0, cluster.sign(cluster.next_doc(s0, admin_quorum=3), ("alice", "bob")))
    _refused(s1, cluster.sign(cluster.next_doc(s1), ("alice", "bob")), QuorumNotMet)
    assert apply_document(s1, cluster.sign(cluster.next_doc(s1), ("alice", "bob", "carol")))


def test_other_cluster_refused(cluster: Cluster) -> None:
    state = cluster.state()
    _refused(
        state,
        cluster.sign(cluster.next_doc(state, cluster_id="other"), ("alice", "bob")),
        InvalidDocument,
    )


def test_genesis_cannot_follow(cluster: Cluster) -> None:
    state = cluster.state()
    _refused(state, cluster.genesis(), InvalidDocument)


def test_unknown_field_refused(cluster: Cluster) -> None:
    state = cluster.state()
    obj = json.loads(cluster.sign(cluster.next_doc(state), ("alice", "bob")).model_dump_json())
    obj["document"]["policy"]["extra_rule"] = True
    _refused(state, json.dumps(obj).encode(), InvalidDocument)


def test_lockout_documents_refused(cluster: Cluster) -> None:
    state = cluster.state()
    with pytest.raises(ValidationError):
        cluster.next_doc(state, admin_quorum=4)
    obj = json.loads(cluster.sign(cluster.next_doc(state), ("alice", "bob")).model_dump_json())
    obj["document"]["admin_quorum"] = 4
    _refused(state, json.dumps(obj).encode(), InvalidDocument)
    # a rule needing more risk approvers than exist
    rules = list(state.policy.rules)
    big = rules[-1]
    req = big.approvals[1].model_copy(update={"count": 3})
    rules[-1] = big.model_copy(update={"approvals": (big.approvals[0], req)})
    doc = cluster.next_doc(state, policy=state.policy.model_copy(update={"rules": tuple(rules)}))
    _refused(state, cluster.sign(doc, ("alice", "bob")), InvalidDocument)


def test_removed_admin_cannot_sign_later(cluster: Cluster) -> None:
    s0 = cluster.state()
    users = tuple(u for u in s0.document.users if u.user_id != "carol")
    s1 = apply_document(s0, cluster.sign(cluster.next_doc(s0, users=users), ("alice", "carol")))
    _refused(s1, cluster.sign(cluster.next_doc(s1), ("alice", "carol")), InvalidSignature)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_byte_change_is_refused_or_harmless(cluster: Cluster, data: st.DataObject) -> None:
    """Changing one character of a signed document never yields a different adopted document."""
    state = cluster.state()
    signed = cluster.sign(cluster.next_doc(state, note="payroll"), ("alice", "bob"))
    raw = bytearray(signed.model_dump_json().encode())
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(32, 126).filter(lambda b: b != raw[index]))
    try:
        new = apply_document(state, bytes(raw))
    except (GovernanceError, ValueError):
        return
    assert new.document == signed.document  # only an encoding-level change survived


@pytest.mark.parametrize(
    "changes",
    [
        {"initiator": "ivan\n"},
        {"key_id": "k1\n"},
        {"request_id": "req-000001\n"},
        {"derivation_path": "m/1\n"},
    ],
)
def test_identifiers_with_a_final_newline_are_refused(
    cluster: Cluster, changes: dict[str, str]
) -> None:
    """Names, request ids and paths are matched whole (a regex "$" alone accepts "x\\n")."""
    from tholos.governance import Intent

    fields = {
        "request_id": "req-000001",
        "initiator": "ivan",
        "key_id": "k1",
        "chain": "btc",
        "asset": "BTC",
        "destination": "addr-a",
        "amount": 1,
        "created_at": 1,
        "expires_at": 2,
    }
    Intent(**fields)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Intent(**{**fields, **changes})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        User(user_id="eve\n", public_key="ab" * 32, roles=("admin",))
