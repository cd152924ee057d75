"""Multi-process (real processes, mutual TLS): threshold ECDSA, threshold BLS and DiSE end to end
through the CLI, and a corrupt node named and excluded for each."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
Make = Callable[..., LocalCluster]


def cli(c: LocalCluster, *args: str, ok: bool = True) -> dict[str, Any]:
    p = subprocess.run(
        [sys.executable, "-m", "tholos", *args, "--json", "--dir", str(c.cd.root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    assert (p.returncode == 0) == ok, (out, p.stderr)
    return out


def _eip1559(c: LocalCluster, key_id: str, address: str) -> None:
    from eth_account import Account
    from eth_account.typed_transactions import TypedTransaction

    tx = {
        "type": 2,
        "chainId": 1,
        "nonce": 7,
        "maxPriorityFeePerGas": 2 * 10**9,
        "maxFeePerGas": 4 * 10**10,
        "gas": 21000,
        "to": "0x" + "22" * 20,
        "value": 12345,
        "data": b"",
        "accessList": [],
    }
    unsigned = TypedTransaction.from_dict(tx)
    r = cli(c, "sign", key_id, "--message", unsigned.hash().hex())
    sig = bytes.fromhex(r["signature"])
    signed = TypedTransaction.from_dict(
        {
            **tx,
            "v": r["recovery_id"],
            "r": int.from_bytes(sig[:32], "big"),
            "s": int.from_bytes(sig[32:], "big"),
        }
    )
    assert Account.recover_transaction(signed.encode()) == address


def test_round_schemes_end_to_end(make_cluster: Make, tmp_path: Path) -> None:
    from coincurve import PrivateKey, PublicKey
    from eth_keys import keys as eth_keys
    from py_ecc.bls import G2ProofOfPossession

    c = make_cluster()
    c.start()
    # -- ECDSA -----------------------------------------------------------------------------------
    key = cli(c, "keys", "create", "--scheme", "ecdsa")
    pk = bytes.fromhex(key["public_key"])
    assert len(pk) == 33
    assert cli(c, "keys", "presign", key["key_id"], "--count", "20")["available"] >= 20
    digest = hashlib.sha256(b"tholos ecdsa").digest()
    r = cli(c, "sign", key["key_id"], "--message", digest.hex())
    sig = bytes.fromhex(r["signature"])
    assert len(sig) == 64 and r["recovery_id"] in (0, 1)
    assert (
        int.from_bytes(sig[32:], "big")
        <= 0xFFFFFFFF_FFFFFFFF_FFFFFFFF_FFFFFFFE_BAAEDCE6_AF48A03B_BFD25E8C_D0364141 // 2
    )
    assert PublicKey(pk).verify(_der(sig), digest, hasher=None)  # coincurve (low-S only)
    eth = cli(c, "sign", key["key_id"], "--message", digest.hex(), "--ethereum")
    sig65 = bytes.fromhex(eth["signature"])
    assert len(sig65) == 65 and sig65[64] in (27, 28)
    epk = eth_keys.PublicKey.from_compressed_bytes(pk)
    rec = eth_keys.Signature(sig65[:64] + bytes([sig65[64] - 27])).recover_public_key_from_msg_hash(
        digest
    )
    assert rec.to_checksum_address() == epk.to_checksum_address()
    _eip1559(c, key["key_id"], epk.to_checksum_address())
    # BIP32 non-hardened derivation.
    d = cli(c, "keys", "derive", key["key_id"], "--path", "m/0/3")
    r = cli(c, "sign", key["key_id"], "--message", digest.hex(), "--path", "m/0/3")
    assert PublicKey(bytes.fromhex(d["public_key"])).verify(
        _der(bytes.fromhex(r["signature"])), digest, hasher=None
    )
    # A key imported from a known private key signs under the known public key.
    known = PrivateKey()
    secret = tmp_path / "secret.hex"
    secret.write_text(known.secret.hex())
    imp = cli(c, "keys", "import", "--scheme", "ecdsa", "--secret-file", str(secret))
    assert bytes.fromhex(imp["public_key"]) == known.public_key.format()
    r = cli(c, "sign", imp["key_id"], "--message", digest.hex())
    assert known.public_key.verify(_der(bytes.fromhex(r["signature"])), digest, hasher=None)
    # -- BLS ---------------------------------------------------------------------------------------
    bk = cli(c, "keys", "create", "--scheme", "bls12381")
    assert len(bytes.fromhex(bk["public_key"])) == 48
    for msg in (b"\x00", b"attestation data"):  # an empty message is refused (strict input)
        r = cli(c, "sign", bk["key_id"], "--message", msg.hex())
        bsig = bytes.fromhex(r["signature"])
        assert len(bsig) == 96
        assert G2ProofOfPossession.Verify(bytes.fromhex(bk["public_key"]), msg, bsig)
    # -- DiSE --------------------------------------------------------------------------------------
    dk = cli(c, "keys", "create", "--scheme", "dise")
    cts = {}
    for name, data in (("empty", b""), ("small", b"hello dise"), ("big", os.urandom(10 << 20))):
        src, ct, out = tmp_path / f"{name}.in", tmp_path / f"{name}.ct", tmp_path / f"{name}.out"
        src.write_bytes(data)
        cli(c, "encrypt", dk["key_id"], "--in", str(src), "--out", str(ct))
        cli(c, "decrypt", dk["key_id"], "--in", str(ct), "--out", str(out))
        assert out.read_bytes() == data
        cts[name] = (ct, data)
    ct, data = cts["small"]
    blob = ct.read_bytes()
    for pos in (5, 20, len(blob) - 40, len(blob) - 1):  # header, key id, body, tag
        bad = bytearray(blob)
        bad[pos] ^= 0x10
        (tmp_path / "bad.ct").write_bytes(bytes(bad))
        cli(
            c,
            "decrypt",
            dk["key_id"],
            "--in",
            str(tmp_path / "bad.ct"),
            "--out",
            "/dev/null",
            ok=False,
        )
    cli(c, "keys", "refresh", dk["key_id"])
    cli(c, "decrypt", dk["key_id"], "--in", str(ct), "--out", str(tmp_path / "after.out"))
    assert (tmp_path / "after.out").read_bytes() == data
    # Fewer than t nodes cannot decrypt.
    for i in (2, 3, 4):
        c.kill(f"node-{i}")
    err = cli(c, "decrypt", dk["key_id"], "--in", str(ct), "--out", "/dev/null", ok=False)
    assert err["error"]["status"] == 503


def _der(sig: bytes) -> bytes:
    from tholos.crypto.ecdsa.signature import EcdsaSignature

    return EcdsaSignature(
        int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), 0
    ).to_der()


def test_corrupt_node_named_round_schemes(make_cluster: Make, tmp_path: Path) -> None:
    c = make_cluster()
    c.configure_gateway(quarantine_seconds=1.0)
    c.start(node_args={2: ["--fault", "corrupt-shares"]})
    keys = {s: c.create_key(s) for s in ("ecdsa", "bls12381", "dise")}
    c.post(f"/v1/keys/{keys['ecdsa']['key_id']}/presign", {"count": 30})
    from tholos.crypto import dise
    from tholos.crypto.keys import PublicKeyPackage

    dpub = PublicKeyPackage.from_dict(
        c.get(f"/v1/keys/{keys['dise']['key_id']}")["public_key_package"]
    )
    for scheme, key in keys.items():
        named = None
        for i in range(12):
            if scheme == "dise":
                ctx, req = dise.encrypt_begin(dpub, "t", b"x%d" % i)
                res = c.post(
                    f"/v1/keys/{key['key_id']}/evaluate",
                    {
                        "alpha": req.alpha.hex(),
                        "encryptor": "t",
                        "purpose": "encrypt",
                        "verify": True,
                    },
                )
                parts = [dise.PartialEval.from_dict(p) for p in res["partials"]]
                dise.encrypt_finish(dpub, ctx, parts)
            else:
                msg = os.urandom(32)
                res = c.sign(key["key_id"], msg)
                assert "signature" in res, res
            assert 2 not in res["signers"]
            if res["excluded"]:
                named = res
                break
        assert named is not None, f"{scheme}: node 2 was never picked"
        assert set(named["excluded"]) == {"2"}, named
        time.sleep(1.2)  # quarantine over: node 2 is picked again for the next scheme
    assert "node 2 EXCLUDED" in c.log("gateway")
    # The CLI combines; on a bad proof it asks again with verify=true and still succeeds.
    src = tmp_path / "p.in"
    src.write_bytes(b"plain")
    for _ in range(3):
        cli(c, "encrypt", keys["dise"]["key_id"], "--in", str(src), "--out", str(tmp_path / "p.ct"))
        cli(
            c,
            "decrypt",
            keys["dise"]["key_id"],
            "--in",
            str(tmp_path / "p.ct"),
            "--out",
            str(tmp_path / "p.out"),
        )
        assert (tmp_path / "p.out").read_bytes() == b"plain"
