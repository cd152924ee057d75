"""Committee change documents: shape, and what `verify_committee_change` refuses (every refusal
names what is wrong; a signature over any other content does not verify)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.governance.conftest import CLUSTER, NOW, Cluster
from tholos.governance import InvalidDocument, InvalidSignature, QuorumNotMet, VersionConflict
from tholos.governance.committee_changes import (
    MAX_LIFETIME,
    CommitteeChange,
    SignedCommitteeChange,
    add_signature,
    new_committee_change,
    sign_committee_change,
    verify_committee_change,
)

KEY = "0" * 32


def _signed(c: Cluster, change: CommitteeChange, *who: str) -> SignedCommitteeChange:
    signed = SignedCommitteeChange(change=change, signatures=())
    for w in who:
        signed = add_signature(signed, sign_committee_change(change, w, c.keys[w]))
    return signed


def _change(**kw: Any) -> CommitteeChange:
    args: dict[str, Any] = {"keys": None, "min_threshold": None}
    args.update(kw)
    members = args.pop("members", [1, 2, 3, 4])
    threshold = args.pop("threshold", 3)
    return new_committee_change(CLUSTER, 0, members, threshold, NOW, **args)


def test_a_quorum_signed_change_verifies(cluster: Cluster) -> None:
    state = cluster.state()
    signed = _signed(cluster, _change(), "alice", "bob")
    got = verify_committee_change(state, signed, KEY, [4, 3, 2, 1], 3, 2, NOW + 60)
    assert got == signed.change
    # threshold None: each key keeps its own
    keep = _signed(cluster, _change(threshold=None), "alice", "carol")
    verify_committee_change(state, keep, KEY, [1, 2, 3, 4], 2, 2, NOW)
    with pytest.raises(InvalidDocument, match="sets threshold 2 for"):
        verify_committee_change(state, keep, KEY, [1, 2, 3, 4], 3, 2, NOW)


@pytest.mark.parametrize(
    ("members", "threshold", "now", "match", "error"),
    [
        ([1, 2, 3], 3, NOW, "names members", InvalidDocument),
        ([1, 2, 3, 4], 2, NOW, "sets threshold 3", InvalidDocument),
        ([1, 2, 3, 4], 3, NOW + 86_401, "expired", InvalidDocument),
        ([1, 2, 3, 4], 3, NOW - 301, "in the future", InvalidDocument),
    ],
)
def test_refused_for_another_reshare(
    cluster: Cluster,
    members: list[int],
    threshold: int,
    now: int,
    match: str,
    error: type[Exception],
) -> None:
    signed = _signed(cluster, _change(), "alice", "bob")
    with pytest.raises(error, match=match):
        verify_committee_change(cluster.state(), signed, KEY, members, threshold, 2, now)


def test_refused_signatures_key_cluster_and_version(cluster: Cluster) -> None:
    state = cluster.state()
    with pytest.raises(QuorumNotMet):
        verify_committee_change(
            state, _signed(cluster, _change(), "alice"), KEY, [1, 2, 3, 4], 3, 2, NOW
        )
    with pytest.raises(InvalidSignature, match="not an admin"):
        verify_committee_change(
            state, _signed(cluster, _change(), "alice", "tina"), KEY, [1, 2, 3, 4], 3, 2, NOW
        )
    other = _signed(cluster, _change(keys=["1" * 32]), "alice", "bob")
    with pytest.raises(InvalidDocument, match="does not cover key"):
        verify_committee_change(state, other, KEY, [1, 2, 3, 4], 3, 2, NOW)
    later = _signed(
        cluster,
        new_committee_change(CLUSTER, 1, [1, 2, 3, 4], 3, NOW),
        "alice",
        "bob",
    )
    with pytest.raises(VersionConflict, match="version 1"):
        verify_committee_change(state, later, KEY, [1, 2, 3, 4], 3, 2, NOW)
    foreign = _signed(
        cluster, new_committee_change("other-cluster", 0, [1, 2], 2, NOW), "alice", "bob"
    )
    with pytest.raises(InvalidDocument, match="for cluster other-cluster"):
        verify_committee_change(state, foreign, KEY, [1, 2], 2, 2, NOW)


@pytest.mark.parametrize(
    "fields",
    [
        {"members": (2, 1)},
        {"members": (1, 1, 2)},
        {"members": ()},
        {"threshold": 5},
        {"min_threshold": 4},
        {"expires_at": NOW + MAX_LIFETIME + 1},
        {"expires_at": NOW},
        {"keys": ("b" * 32, "a" * 32)},
        {"threshold": None, "min_threshold": 5},
    ],
)
def test_malformed_changes_are_refused(fields: dict[str, Any]) -> None:
    base = _change().model_dump(mode="json")
    base.update({k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()})
    with pytest.raises(ValidationError):
        CommitteeChange.model_validate_json(json.dumps(base))


@settings(max_examples=40, deadline=None)
@given(
    field=st.sampled_from(["members", "threshold", "keys", "min_threshold", "nonce", "expires_at"])
)
def test_signatures_bind_every_field(field: str) -> None:
    c = Cluster()
    change = _change(keys=[KEY], min_threshold=2)
    signed = _signed(c, change, "alice", "bob")
    other = {
        "members": (1, 2, 3, 4, 5),
        "threshold": 4,
        "keys": None,
        "min_threshold": 1,
        "nonce": "f" * 64,
        "expires_at": change.expires_at + 1,
    }[field]
    tampered = change.model_copy(update={field: other})
    forged = SignedCommitteeChange(change=tampered, signatures=signed.signatures)
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_committee_change(
            c.state(),
            forged,
            KEY,
            list(tampered.members),
            tampered.threshold or 2,
            2,
            NOW,
        )
