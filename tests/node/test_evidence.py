"""Batched DKG evidence: one dealer signature per recipient and batch covers every private share."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tholos.crypto.dkg import Complaint, Round2Package
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.secret import SecretScalar
from tholos.node.protocols import EVIDENCE_BATCH_CONTEXT, EVIDENCE_CONTEXT, ProtocolRunner
from tholos.transport.e2e import Identity, generate_identity_secret


def runners() -> dict[int, ProtocolRunner]:
    secrets = {i: generate_identity_secret() for i in (1, 2, 3)}
    roster = {i: Identity(i, s).public for i, s in secrets.items()}
    return {i: ProtocolRunner(Identity(i, s, dict(roster)), vault=None) for i, s in secrets.items()}  # type: ignore[arg-type]


@pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)
def test_batch_evidence_proves_exactly_the_signed_shares(group: Any) -> None:
    r = runners()
    packages = [
        Round2Package(group, "dkg", hashlib.sha256(bytes([k])).digest(), 2, 1, SecretScalar(k + 5))
        for k in range(4)
    ]
    digests = b"".join(hashlib.sha256(p.signing_bytes()).digest() for p in packages)
    sig = r[2].identity.sign(EVIDENCE_BATCH_CONTEXT, digests)
    evidence = b"\x01" + sig + digests

    def complaint(pkg: Round2Package[Any], share: int, ev: bytes, accused: int = 2) -> Any:
        return Complaint(group, "dkg", pkg.session, 1, accused, share, ev)

    judge = r[3]
    for p in packages:  # each revealed share is proven by the one batch signature
        assert judge._evidence_ok(complaint(p, p.share.expose(), evidence))
    p = packages[1]
    assert not judge._evidence_ok(complaint(p, p.share.expose() + 1, evidence))  # other share
    assert not judge._evidence_ok(complaint(p, p.share.expose(), evidence, accused=3))
    assert not judge._evidence_ok(complaint(p, p.share.expose(), evidence[:-1]))
    forged = b"\x01" + r[1].identity.sign(EVIDENCE_BATCH_CONTEXT, digests) + digests
    assert not judge._evidence_ok(complaint(p, p.share.expose(), forged))
    wrong_ctx = b"\x01" + r[2].identity.sign(EVIDENCE_CONTEXT, digests) + digests
    assert not judge._evidence_ok(complaint(p, p.share.expose(), wrong_ctx))
    # The single-package form is still accepted.
    single = r[2].identity.sign(EVIDENCE_CONTEXT, p.signing_bytes())
    assert judge._evidence_ok(complaint(p, p.share.expose(), single))
