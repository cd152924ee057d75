"""The coordinator's Ed25519 fast path: commitments used as raw encodings, the signature returned
only if strict verification accepts it; otherwise redone with validated commitments."""

from __future__ import annotations

import pytest
from nacl import bindings as sodium

from tests.gateway.conftest import Cluster
from tholos.crypto.dkg import run_dkg
from tholos.crypto.errors import CryptoError, InvalidSignatureShare
from tholos.crypto.frost import SigningPackage, commit, sign
from tholos.crypto.groups import ED25519
from tholos.node.hooks import NO_HOOKS
from tholos.schemes import SCHEMES, SignerCommitment, SigningRequest
from tholos.testing.faults import fault

# A point of order 2 on edwards25519 (y = -1): adding it leaves the curve but not the subgroup.
ORDER_2 = bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")


def signed(
    message: bytes, corrupt: int | None = None
) -> tuple[object, SigningRequest, dict[int, bytes]]:
    scheme = SCHEMES["ed25519"]
    shares = run_dkg(ED25519, 2, [1, 2, 3], b"agg-fast-path")
    signers = [shares[1], shares[2]]
    nonces, comms = {}, {}
    for ks in signers:
        nonces[ks.identifier], comms[ks.identifier] = commit(scheme.suite, ks)
    package = SigningPackage(comms, message)
    z = {
        ks.identifier: sign(scheme.suite, package, nonces[ks.identifier], ks).to_scalar_bytes()
        for ks in signers
    }
    if corrupt is not None:
        z[corrupt] = fault("corrupt-shares").frost_share(scheme, z[corrupt])
    req = SigningRequest(
        "r",
        "k",
        message,
        commitments={
            i: SignerCommitment(b"n", c.hiding_enc, c.binding_enc) for i, c in comms.items()
        },
    )
    return shares[1].public, req, z


def test_fast_path_signature_verifies() -> None:
    public, req, z = signed(b"fast")
    sig = SCHEMES["ed25519"].aggregate(public, {}, req, z)  # type: ignore[arg-type]
    SCHEMES["ed25519"].verify(b"fast", sig, SCHEMES["ed25519"].public_key(public))  # type: ignore[arg-type]


def test_bad_share_is_still_named() -> None:
    public, req, z = signed(b"bad share", corrupt=2)
    with pytest.raises(InvalidSignatureShare) as info:
        SCHEMES["ed25519"].aggregate(public, {}, req, z)  # type: ignore[arg-type]
    assert info.value.culprits == (2,)


def test_commitment_outside_the_subgroup_never_yields_a_signature() -> None:
    public, req, z = signed(b"torsion")
    c = req.commitments[2]
    torsioned = sodium.crypto_core_ed25519_add(c.binding, ORDER_2)
    assert not sodium.crypto_core_ed25519_is_valid_point(torsioned)
    bad = SigningRequest(
        req.request_id,
        req.key_id,
        req.message,
        commitments={**req.commitments, 2: SignerCommitment(c.nonce_id, c.hiding, torsioned)},
    )
    with pytest.raises(CryptoError):
        SCHEMES["ed25519"].aggregate(public, {}, bad, z)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_corrupt_ed25519_node_is_excluded(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("ed25519")
    for s in cluster.services.values():
        s.vault.hooks = fault("corrupt-shares") if s.identity.node_id == 3 else NO_HOOKS
    jobs = []
    for k in range(6):  # one request at a time: round-robin picks node 3 within a few
        (job,) = await gw.sign([gw.sign_job(row.key_id, bytes([k]) * 32)])
        jobs.append(job)
    assert any(j.excluded.get(3) == "invalid signature share" for j in jobs)
    for j in jobs:
        assert j.signature is not None and 3 not in j.signers
        SCHEMES["ed25519"].verify(j.message, j.signature, bytes.fromhex(row.public_key))
