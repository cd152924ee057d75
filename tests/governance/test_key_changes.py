"""Key change documents: what `verify_key_change` accepts, and that every signed field is bound."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.governance import GovernanceError, load_genesis
from tholos.governance.key_changes import (
    MAX_LIFETIME,
    KeyChange,
    SignedKeyChange,
    add_signature,
    new_key_change,
    sign_key_change,
    verify_key_change,
)

USERS = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
STATE = load_genesis(make_genesis("tholos-kc", USERS))
NOW = int(time.time())


def signed(change: KeyChange, *who: str) -> SignedKeyChange:
    return SignedKeyChange(
        change=change, signatures=tuple(sign_key_change(change, w, USERS[w]) for w in who)
    )


def test_a_quorum_signed_change_verifies() -> None:
    change = new_key_change("tholos-kc", 0, "k1", "destroy", NOW)
    doc = add_signature(
        signed(change, "admin-1"), sign_key_change(change, "admin-3", USERS["admin-3"])
    )
    assert verify_key_change(STATE, doc, "k1", "destroy", NOW) == change
    assert [s.signer for s in add_signature(doc, doc.signatures[0]).signatures] == [
        "admin-3",
        "admin-1",
    ]  # re-signing replaces, never counts twice
    assert new_key_change("tholos-kc", 0, "k1", "destroy", NOW).nonce != change.nonce


@pytest.mark.parametrize("lifetime", [0, -1, MAX_LIFETIME + 1])
def test_lifetime_is_bounded(lifetime: int) -> None:
    with pytest.raises(ValidationError, match="expires_at"):
        new_key_change("tholos-kc", 0, "k1", "disable", NOW, lifetime)


FIELDS: dict[str, Any] = {
    "cluster_id": st.just("other-cluster"),
    "governance_version": st.integers(1, 10),
    "key_id": st.just("k2"),
    "action": st.sampled_from(["enable", "disable"]),
    "nonce": st.binary(min_size=32, max_size=32).map(bytes.hex),
    "issued_at": st.integers(NOW - 1000, NOW - 1),
    "expires_at": st.integers(NOW + 10, NOW + 1000),
    "reason": st.text(min_size=1, max_size=20),
}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(FIELDS)).flatmap(lambda f: st.tuples(st.just(f), FIELDS[f])))
def test_every_field_is_signed(edit: tuple[str, Any]) -> None:
    """The admins' signatures over one change never validate another (any one field changed)."""
    name, value = edit
    change = new_key_change("tholos-kc", 0, "k1", "destroy", NOW)
    doc = signed(change, "admin-1", "admin-2")
    forged = SignedKeyChange(
        change=KeyChange.model_validate({**change.model_dump(), name: value}),
        signatures=doc.signatures,
    )
    key, action = forged.change.key_id, forged.change.action
    with pytest.raises(GovernanceError):
        verify_key_change(STATE, forged, key, action, NOW)
