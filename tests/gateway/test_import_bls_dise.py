"""BLS12-381 and DiSE keys imported (split by the client, sealed per node) and used by the cluster.
BLS: a secret key of the Ethereum sign vectors; the cluster's threshold signature must be the
vector's (BLS is deterministic) and verify with pyblst. DiSE: the group key must be k·B as
libsodium computes it, and files encrypted by the cluster decrypt."""

from __future__ import annotations

import json
import os

import pytest
from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

from tests.conftest import load_json_vector
from tests.gateway.conftest import Cluster
from tholos.cli import split_secret
from tholos.crypto import dise
from tholos.crypto.bls import basic as bls_basic
from tholos.crypto.errors import InvalidInput
from tholos.crypto.groups import ED25519
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.scheme_protocols import rounds_for
from tholos.gateway.store import KeyRow
from tholos.transport.e2e import seal_to

pytestmark = pytest.mark.asyncio


async def import_into(cluster: Cluster, scheme: str, secret_hex: str) -> KeyRow:
    """What `tholos keys import` does: split here, seal each share to its node, post."""
    roster = {i: s.identity.public for i, s in cluster.services.items()}
    imported = split_secret(scheme, secret_hex, cluster.gateway.threshold, sorted(roster))
    sealed = {
        i: seal_to(roster[i], f"import|{i}".encode(), json.dumps(s.export_secret()).encode())
        for i, s in imported.shares.items()
    }
    return await cluster.gateway.import_key(scheme, None, imported.public.to_dict(), {}, sealed)


async def test_imported_bls_key_signs_as_the_original(cluster: Cluster) -> None:
    data = load_json_vector("bls", "eth_bls12381_pop_sign_vectors.json")
    case = next(c for c in data["cases"] if c["output"] is not None)
    sk_hex = case["input"]["privkey"].removeprefix("0x")
    msg = bytes.fromhex(case["input"]["message"].removeprefix("0x"))
    row = await import_into(cluster, "bls12381", sk_hex)
    assert bytes.fromhex(row.public_key) == bls_basic.sk_to_pk(int(sk_hex, 16))
    ext = rounds_for(cluster.gateway)
    job = ext.job(row.key_id, msg)
    await ext.submit([job])
    assert job.signature is not None, job.error
    assert job.signature.hex() == case["output"].removeprefix("0x"), case["name"]
    bls_basic.verify(bytes.fromhex(row.public_key), msg, job.signature)


async def test_imported_dise_key_encrypts_and_decrypts(cluster: Cluster) -> None:
    k = int.from_bytes(os.urandom(32), "little") % ED25519.order
    k_le = k.to_bytes(32, "little")
    row = await import_into(cluster, "dise", k_le.hex())
    public = PublicKeyPackage.from_dict(row.package)
    assert ED25519.serialize_element(public.group_public_key) == (
        crypto_scalarmult_ed25519_base_noclamp(k_le)
    )
    ext = rounds_for(cluster.gateway)

    async def evaluate(req: dise.EvalRequest) -> list[dise.PartialEval]:
        job = ext.job(
            row.key_id,
            b"",
            "",
            {"alpha": req.alpha.hex(), "encryptor": req.encryptor, "purpose": req.purpose},
        )
        await ext.submit([job])
        assert len(job.partials) == 2, job.error
        return [dise.PartialEval.from_dict(p) for p in job.partials]

    ctx, req = dise.encrypt_begin(public, "tester", b"imported secret")
    ct = dise.encrypt_finish(public, ctx, await evaluate(req))
    parts = await evaluate(dise.decrypt_begin(public, ct))
    assert dise.decrypt_finish(public, ct, parts) == b"imported secret"


@pytest.mark.parametrize(
    ("scheme", "secret"),
    [
        ("bls12381", "00" * 32),  # zero
        ("bls12381", "ff" * 32),  # >= r, never reduced
        ("bls12381", "aa" * 31),  # 31 bytes
        ("dise", "ff" * 32),  # >= L
        ("dise", "not hex"),
    ],
)
async def test_bad_bls_and_dise_secrets_are_refused(scheme: str, secret: str) -> None:
    with pytest.raises(InvalidInput):
        split_secret(scheme, secret, 2, [1, 2, 3, 4])
