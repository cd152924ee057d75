"""In-memory cluster (n=4, t=2): threshold ECDSA with presignature pools, threshold BLS, DiSE."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from coincurve import PublicKey

from tholos.crypto import dise
from tholos.crypto.bls import basic as bls_basic
from tholos.crypto.ecdsa.signature import EcdsaSignature
from tholos.crypto.ecdsa.signature import verify as ecdsa_verify
from tholos.crypto.errors import InvalidProof
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.scheme_protocols import presignatures, rounds_for
from tholos.gateway.store import KeyRow
from tholos.node.scheme_protocols import for_service
from tholos.testing.faults import fault

from .conftest import Cluster

pytestmark = pytest.mark.asyncio


async def _key(c: Cluster, scheme: str) -> KeyRow:
    return (await c.gateway.create_keys(scheme))[0]


async def _sign(c: Cluster, key_id: str, msg: bytes, path: str = "") -> Any:
    ext = rounds_for(c.gateway)
    job = ext.job(key_id, msg, path)
    await ext.submit([job])
    return job


async def test_ecdsa_pool_sign_and_derive(cluster: Cluster) -> None:
    row = await _key(cluster, "ecdsa")
    assert len(bytes.fromhex(row.public_key)) == 33
    assert await presignatures(cluster.gateway).presign(row.key_id, 6) == 6
    assert presignatures(cluster.gateway).pool_size(row.key_id) == 6
    before = sum(for_service(s).presigs.count() for s in cluster.services.values())
    digest = hashlib.sha256(b"hello").digest()
    job = await _sign(cluster, row.key_id, digest)
    assert job.signature is not None and job.recovery_id in (0, 1), job.error
    sig = EcdsaSignature(
        int.from_bytes(job.signature[:32], "big"),
        int.from_bytes(job.signature[32:], "big"),
        job.recovery_id,
    )
    assert sig.is_low_s
    ecdsa_verify(bytes.fromhex(row.public_key), digest, sig)
    assert PublicKey(bytes.fromhex(row.public_key)).verify(sig.to_der(), digest, hasher=None)
    # 2t-1 = 3 signers consumed their rows of one presignature, durably.
    after = sum(for_service(s).presigs.count() for s in cluster.services.values())
    assert before - after == 3
    # BIP32 non-hardened derivation.
    d = cluster.gateway.derive(row.key_id, "m/0/7")
    job = await _sign(cluster, row.key_id, digest, "m/0/7")
    assert job.signature is not None
    sig = EcdsaSignature(
        int.from_bytes(job.signature[:32], "big"),
        int.from_bytes(job.signature[32:], "big"),
        job.recovery_id or 0,
    )
    ecdsa_verify(bytes.fromhex(d["public_key"]), digest, sig)


async def test_ecdsa_corrupt_node_named_and_signing_completes(cluster: Cluster) -> None:
    row = await _key(cluster, "ecdsa")
    await presignatures(cluster.gateway).presign(row.key_id, 10)
    cluster.services[2].vault.hooks = fault("corrupt-shares")
    digests = [os.urandom(32) for _ in range(4)]
    jobs = [rounds_for(cluster.gateway).job(row.key_id, d) for d in digests]
    await rounds_for(cluster.gateway).submit(jobs)
    for j, d in zip(jobs, digests, strict=True):
        assert j.signature is not None, j.error
        sig = EcdsaSignature(
            int.from_bytes(j.signature[:32], "big"),
            int.from_bytes(j.signature[32:], "big"),
            j.recovery_id or 0,
        )
        ecdsa_verify(bytes.fromhex(row.public_key), d, sig)
    assert any(j.excluded.get(2) == "invalid signature share" for j in jobs)
    assert 2 not in cluster.gateway.nodes.usable()


async def test_ecdsa_presign_culprit_and_eth(cluster: Cluster) -> None:
    from eth_account import Account
    from eth_keys import keys as eth_keys

    row = await _key(cluster, "ecdsa")
    digest = os.urandom(32)
    job = await _sign(cluster, row.key_id, digest)  # empty pool: presigns on demand
    assert job.signature is not None, job.error
    pk = eth_keys.PublicKey.from_compressed_bytes(bytes.fromhex(row.public_key))
    sig = eth_keys.Signature(job.signature + bytes([job.recovery_id]))
    assert sig.recover_public_key_from_msg_hash(digest) == pk
    address = pk.to_checksum_address()
    tx = {
        "type": 2,
        "chainId": 1,
        "nonce": 0,
        "maxPriorityFeePerGas": 10**9,
        "maxFeePerGas": 3 * 10**10,
        "gas": 21000,
        "to": "0x" + "11" * 20,
        "value": 10**15,
        "data": b"",
        "accessList": [],
    }
    from eth_account.typed_transactions import TypedTransaction

    unsigned = TypedTransaction.from_dict(tx)
    job = await _sign(cluster, row.key_id, unsigned.hash())
    assert job.signature is not None
    r, s = int.from_bytes(job.signature[:32], "big"), int.from_bytes(job.signature[32:], "big")
    signed = TypedTransaction.from_dict({**tx, "v": job.recovery_id, "r": r, "s": s})
    raw = signed.encode()
    assert Account.recover_transaction(raw) == address


async def test_bls_sign_and_culprit(cluster: Cluster) -> None:
    row = await _key(cluster, "bls12381")
    assert len(bytes.fromhex(row.public_key)) == 48
    job = await _sign(cluster, row.key_id, b"attestation")
    assert job.signature is not None and len(job.signature) == 96, job.error
    bls_basic.verify(bytes.fromhex(row.public_key), b"attestation", job.signature)
    cluster.services[3].vault.hooks = fault("corrupt-shares")
    jobs = [rounds_for(cluster.gateway).job(row.key_id, b"m%d" % i) for i in range(4)]
    await rounds_for(cluster.gateway).submit(jobs)
    for i, j in enumerate(jobs):
        assert j.signature is not None, j.error
        bls_basic.verify(bytes.fromhex(row.public_key), b"m%d" % i, j.signature)
    assert any(j.excluded.get(3) == "invalid signature share" for j in jobs)


async def _evaluate(c: Cluster, key_id: str, req: dise.EvalRequest, verify: bool = True) -> Any:
    ext = rounds_for(c.gateway)
    job = ext.job(
        key_id,
        b"",
        "",
        {
            "alpha": req.alpha.hex(),
            "encryptor": req.encryptor,
            "purpose": req.purpose,
            "verify": verify,
        },
    )
    await ext.submit([job])
    return job


@pytest.mark.parametrize("size", [0, 100])
async def test_dise_round_trip_refresh_and_culprit(cluster: Cluster, size: int) -> None:
    row = await _key(cluster, "dise")
    public = PublicKeyPackage.from_dict(row.package)
    plaintext = os.urandom(size)
    ctx, req = dise.encrypt_begin(public, "tester", plaintext)
    job = await _evaluate(cluster, row.key_id, req, verify=False)
    assert len(job.partials) == 2, job.error
    ct = dise.encrypt_finish(public, ctx, [dise.PartialEval.from_dict(p) for p in job.partials])
    # Refresh, then decrypt.
    new = await cluster.gateway.refresh(row.key_id)
    public2 = PublicKeyPackage.from_dict(new.package)
    dreq = dise.decrypt_begin(public2, ct)
    cluster.services[1].vault.hooks = fault("corrupt-shares")
    fast = [await _evaluate(cluster, row.key_id, dreq, verify=False) for _ in range(4)]
    for j in fast:
        parts = [dise.PartialEval.from_dict(p) for p in j.partials]
        if 1 in j.signers:
            with pytest.raises(InvalidProof) as e:
                dise.decrypt_finish(public2, ct, parts)
            assert e.value.culprits == (1,)
        else:
            assert dise.decrypt_finish(public2, ct, parts) == plaintext
    assert any(1 in j.signers for j in fast)
    jobs = [await _evaluate(cluster, row.key_id, dreq) for _ in range(3)]
    for j in jobs:
        assert len(j.partials) == 2, j.error
        parts = [dise.PartialEval.from_dict(p) for p in j.partials]
        assert dise.decrypt_finish(public2, ct, parts) == plaintext
    assert any(j.excluded.get(1) == "invalid partial evaluation" for j in jobs)
    # Flipped bits are refused.
    good = [dise.PartialEval.from_dict(p) for p in jobs[0].partials]
    for pos in (len(ct) - 1, 10, len(ct) // 2):
        bad = bytearray(ct)
        bad[pos] ^= 1
        with pytest.raises((dise.InvalidCiphertext, InvalidProof)):
            dise.decrypt_finish(public2, bytes(bad), good)
    # Fewer than t partials cannot decrypt.
    with pytest.raises(Exception):  # noqa: B017
        dise.decrypt_finish(public2, ct, good[:1])
    with pytest.raises(InvalidProof):
        dise.combine_evaluations(
            public2,
            dreq,
            [good[0], good[0].__class__(good[1].identifier, good[0].point, good[0].proof)],
        )


async def test_batcher_lingers_only_while_busy() -> None:
    """Idle: a lone item goes at once. Busy (a batch running): items arriving one by one are
    gathered into one batch of `min_batch` instead of several small ones."""
    import asyncio
    import time

    from tholos.gateway.batcher import Batcher

    batches: list[list[int]] = []
    release = asyncio.Event()

    async def handler(items: list[int]) -> None:
        batches.append(items)
        if items == [0]:
            await release.wait()  # the first batch stays in flight

    b: Batcher[int] = Batcher(handler, max_inflight=3, linger=0.5, min_batch=3)
    start = time.perf_counter()
    first = asyncio.create_task(b.submit([0]))
    await asyncio.sleep(0.01)
    assert batches == [[0]] and time.perf_counter() - start < 0.25  # idle: no lingering
    later = []
    for i in (1, 2, 3):
        later.append(asyncio.create_task(b.submit([i])))
        await asyncio.sleep(0.01)
    await asyncio.gather(*later)
    assert batches == [[0], [1, 2, 3]]
    assert time.perf_counter() - start < 0.4  # min_batch reached before the linger ran out
    release.set()
    await first
    await b.stop()


class _Audit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def append_many(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        self.rows.extend(rows)


class _Governed:
    governed = True

    def __init__(self) -> None:
        self.audit = _Audit()


async def test_governed_nodes_refuse_bls_and_dise_and_record_it(cluster: Cluster) -> None:
    """Until these paths check users and policy, a governed node gives no BLS partial or DiSE
    partial to whoever holds a gateway certificate; each refusal is in its audit chain."""
    bls_row = await _key(cluster, "bls12381")
    dise_row = await _key(cluster, "dise")
    public = PublicKeyPackage.from_dict(dise_row.package)
    _, req = dise.encrypt_begin(public, "tester", b"secret")
    for s in cluster.services.values():
        s.governance = _Governed()  # type: ignore[assignment]
    job = await _sign(cluster, bls_row.key_id, b"attestation")
    assert job.signature is None and job.status == 400 and "governed" in job.error
    ejob = await _evaluate(cluster, dise_row.key_id, req, verify=False)
    assert not ejob.partials and ejob.status == 400 and "governed" in ejob.error
    for i in set(job.signers) | set(ejob.signers):
        rows = cluster.services[i].governance.audit.rows  # type: ignore[union-attr]
        assert rows and all(kind == "decision" and not rec["accepted"] for kind, rec in rows)
        assert {rec["request_id"] for _, rec in rows} & {job.request_id, ejob.request_id}
    for s in cluster.services.values():
        s.governance = None
    job = await _sign(cluster, bls_row.key_id, b"attestation")
    assert job.signature is not None, job.error
