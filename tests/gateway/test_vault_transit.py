"""The Vault-transit-compatible API on an in-memory cluster (real node services): tokens, the
four key types, signatures checked by libsodium / libsecp256k1 (not by our code), DiSE
encryption round trips, rotation, batches, roles, and Vault's error form for every refusal."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import coincurve
import httpx
import pytest
import pytest_asyncio
from Crypto.Hash import keccak
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import VerifyKey

from tests.gateway.conftest import Cluster
from tests.gateway.test_http_api import WithCert
from tholos.gateway.api import create_app
from tholos.gateway.identities import ApiClients, fingerprint_pem
from tholos.gateway.vault_tokens import tokens_of
from tholos.transport.pki import CertificateAuthority

pytestmark = pytest.mark.asyncio
ROLES = {"reader": "read-only", "signer": "signer", "operator": "operator", "admin": "admin"}


class Vault:
    """One in-process gateway with named API clients and a Vault token for each."""

    def __init__(self, http: httpx.AsyncClient, tokens: dict[str, str], cluster: Cluster) -> None:
        self.http, self.tokens, self.cluster = http, tokens, cluster

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, who: str = "admin"
    ) -> httpx.Response:
        return await self.http.request(
            method, f"/v1/transit/{path}", json=body, headers={"X-Vault-Token": self.tokens[who]}
        )

    async def ok(
        self, method: str, path: str, body: dict[str, Any] | None = None, who: str = "admin"
    ) -> dict[str, Any]:
        r = await self.call(method, path, body, who)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data


def errors(r: httpx.Response, status: int) -> list[str]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) <= {"errors", "data"} and isinstance(body["errors"], list), body
    return [str(e) for e in body["errors"]]


@pytest_asyncio.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    ca = CertificateAuthority.create()
    pems = {n: ca.issue(n, server=False, client=True).cert_pem.decode() for n in ROLES}
    config = {n: {"fingerprint": fingerprint_pem(pems[n]), "role": r} for n, r in ROLES.items()}
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway, ApiClients.from_config(config, {}))
    # the certificate is the admin's: every transit call is named by its token alone
    t = httpx.ASGITransport(app=WithCert(app, pems["admin"]))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=t, base_url="http://gw", timeout=60) as http,
    ):
        tokens = {}
        for n in ROLES:
            r = await http.post("/v1/vault/tokens", json={"identity": n, "ttl": 600})
            assert r.status_code == 201, r.text
            tokens[n] = r.json()["token"]
        yield Vault(http, tokens, c)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sig_bytes(text: str, version: int = 1) -> bytes:
    prefix = f"vault:v{version}:"
    assert text.startswith(prefix), text
    return base64.b64decode(text[len(prefix) :])


# -- tokens -------------------------------------------------------------------------------------------
async def test_tokens_are_stored_hashed_and_expire(vault: Vault, tmp_path: Path) -> None:
    store = tokens_of(vault.cluster.gateway)
    token, info = store.create("signer", 60)
    dump = "\n".join(sqlite3.connect(tmp_path / "gw.db").iterdump())
    assert token not in dump and hashlib.sha256(token.encode()).hexdigest() in dump
    assert store.lookup(token) == info
    assert store.lookup(token, now=info.expires + 1) is None
    listed = (await vault.http.get("/v1/vault/tokens")).json()["tokens"]
    assert info.accessor in {t["accessor"] for t in listed}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    r = await vault.http.delete(f"/v1/vault/tokens/{info.accessor}")
    assert r.status_code == 200 and store.lookup(token) is None
    r = await vault.http.delete(f"/v1/vault/tokens/{info.accessor}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_token"


async def test_token_for_unknown_identity_is_refused(vault: Vault) -> None:
    r = await vault.http.post("/v1/vault/tokens", json={"identity": "nobody"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_identity"
    r = await vault.http.post("/v1/vault/tokens", json={"ttl": 0})
    assert r.status_code == 400


@pytest.mark.parametrize("token", [None, "", "tvt.wrong", "x" * 10_000])
async def test_bad_token_is_403_in_vault_form(vault: Vault, token: str | None) -> None:
    headers = {} if token is None else {"X-Vault-Token": token}
    r = await vault.http.get("/v1/transit/keys/any", headers=headers)
    assert errors(r, 403) == ["permission denied"]


async def test_expired_and_revoked_tokens(vault: Vault) -> None:
    store = tokens_of(vault.cluster.gateway)
    token, info = store.create("admin", 60)
    h = {"X-Vault-Token": token}
    assert (await vault.http.get("/v1/transit/keys/x", headers=h)).status_code == 404
    store.db.execute("UPDATE vault_tokens SET expires = 1 WHERE accessor = ?", (info.accessor,))
    errors(await vault.http.get("/v1/transit/keys/x", headers=h), 403)


async def test_roles_apply_to_the_token_identity(vault: Vault) -> None:
    errors(await vault.call("POST", "keys/k", {"type": "ed25519"}, who="signer"), 403)
    await vault.ok("POST", "keys/k", {"type": "ed25519"}, who="operator")
    errors(await vault.call("POST", "sign/k", {"input": b64(b"m")}, who="operator"), 403)
    errors(await vault.call("POST", "sign/k", {"input": b64(b"m")}, who="reader"), 403)
    await vault.ok("POST", "sign/k", {"input": b64(b"m")}, who="signer")
    assert (await vault.ok("GET", "keys/k", who="reader"))["type"] == "ed25519"
    errors(await vault.call("DELETE", "keys/k", who="operator"), 403)


# -- keys ---------------------------------------------------------------------------------------------
async def test_keys_create_read_list(vault: Vault) -> None:
    r = await vault.http.request(
        "LIST", "/v1/transit/keys", headers={"X-Vault-Token": vault.tokens["admin"]}
    )
    assert errors(r, 404) == []
    made = await vault.ok("POST", "keys/e", {"type": "ed25519"})
    assert made["latest_version"] == 1 and made["supports_signing"] and not made["exportable"]
    assert base64.b64decode(made["keys"]["1"]["public_key"]) == bytes.fromhex(
        vault.cluster.gateway.store.list_keys()[0].public_key
    )
    again = await vault.ok("POST", "keys/e", {"type": "ed25519"})  # Vault: create is an upsert
    assert again["keys"] == made["keys"]
    await vault.ok("POST", "keys/a", {})  # default type, as Vault: aes256-gcm96
    assert (await vault.ok("GET", "keys/a"))["type"] == "aes256-gcm96"
    assert (await vault.ok("GET", "keys?list=true"))["keys"] == ["a", "e"]
    r = await vault.http.request(
        "LIST", "/v1/transit/keys", headers={"X-Vault-Token": vault.tokens["reader"]}
    )
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["a", "e"]
    assert errors(await vault.call("GET", "keys/missing"), 404) == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"type": "rsa-2048"}, "unknown key type rsa-2048"),
        ({"type": "ed25519", "exportable": True}, "exportable"),
        ({"type": "aes256-gcm96", "derived": True}, "derived"),
        ({"type": "ed25519", "auto_rotate_period": "1h"}, "auto_rotate_period"),
    ],
)
async def test_create_refusals(vault: Vault, body: dict[str, Any], says: str) -> None:
    (msg,) = errors(await vault.call("POST", "keys/k", body), 400)
    assert says in msg
    assert vault.cluster.gateway.store.count_keys() == 0


async def test_unknown_parameters_are_ignored_with_a_warning(vault: Vault) -> None:
    r = await vault.call("POST", "keys/k", {"type": "ed25519", "name": "k", "colour": "red"})
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == [
        "Endpoint ignored these unrecognized parameters: ['colour', 'name']"
    ]
    r = await vault.call("GET", "keys/k")
    assert r.json()["warnings"] is None


async def test_bad_names_and_types(vault: Vault) -> None:
    errors(await vault.call("POST", "keys/bad%20name", {"type": "ed25519"}), 400)
    await vault.ok("POST", "keys/e", {"type": "ed25519"})
    (msg,) = errors(await vault.call("POST", "keys/e", {"type": "aes256-gcm96"}), 400)
    assert "exists with type ed25519" in msg


# -- signatures, checked by independent verifiers -------------------------------------------------------
async def test_ed25519_signature_verifies_with_libsodium(vault: Vault) -> None:
    key = await vault.ok("POST", "keys/e", {"type": "ed25519"})
    public = base64.b64decode(key["keys"]["1"]["public_key"])
    out = await vault.ok("POST", "sign/e", {"input": b64(b"hello")})
    assert out["key_version"] == 1
    VerifyKey(public).verify(b"hello", sig_bytes(out["signature"]))
    sig = {"signature": out["signature"]}
    assert (await vault.ok("POST", "verify/e", {"input": b64(b"hello"), **sig}))["valid"]
    assert not (await vault.ok("POST", "verify/e", {"input": b64(b"other"), **sig}))["valid"]


async def test_bip340_signature_verifies_with_libsecp256k1(vault: Vault) -> None:
    key = await vault.ok("POST", "keys/s", {"type": "schnorr-bip340"})
    xonly = base64.b64decode(key["keys"]["1"]["public_key"])
    assert len(xonly) == 32
    msg = hashlib.sha256(b"taproot").digest()
    out = await vault.ok("POST", "sign/s", {"input": b64(msg)})
    assert coincurve.PublicKeyXOnly(xonly).verify(sig_bytes(out["signature"]), msg)


@pytest.mark.parametrize("how", ["sha2-256", "keccak-256", "prehashed", "path"])
async def test_ecdsa_secp256k1_signature_verifies_with_libsecp256k1(vault: Vault, how: str) -> None:
    key = await vault.ok("POST", "keys/k", {"type": "ecdsa-secp256k1"})
    pem = key["keys"]["1"]["public_key"].encode()
    point = load_pem_public_key(pem)
    assert isinstance(point, ec.EllipticCurvePublicKey) and point.curve.name == "secp256k1"
    raw = point.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    data = b"pay 5 to bob"
    digest = {
        "sha2-256": hashlib.sha256(data).digest(),
        "path": hashlib.sha256(data).digest(),
        "keccak-256": keccak.new(digest_bits=256, data=data).digest(),
        "prehashed": hashlib.sha256(b"digest made elsewhere").digest(),
    }[how]
    body: dict[str, Any] = {"input": b64(data)}
    path = "sign/k"
    if how == "keccak-256":
        body["hash_algorithm"] = "keccak-256"
    elif how == "prehashed":
        body = {"input": b64(digest), "prehashed": True}
    elif how == "path":
        path = "sign/k/sha2-256"
    out = await vault.ok("POST", path, body)
    der = sig_bytes(out["signature"])
    assert coincurve.PublicKey(raw).verify(der, digest, hasher=None)
    rec = coincurve.PublicKey.from_signature_and_message(
        _recoverable(der, out), digest, hasher=None
    )
    assert rec.format() == raw  # the extension's recovery_id names the key
    check = {**body, "signature": out["signature"]}
    assert (await vault.ok("POST", path.replace("sign", "verify"), check))["valid"]
    jws = await vault.ok("POST", path, {**body, "marshaling_algorithm": "jws"})
    assert len(sig_bytes(jws["signature"])) == 64
    check = {**body, "signature": jws["signature"], "marshaling_algorithm": "jws"}
    assert (await vault.ok("POST", path.replace("sign", "verify"), check))["valid"]


def _recoverable(der: bytes, out: dict[str, Any]) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([out["recovery_id"]])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"input": "%%"}, "unable to decode input as base64"),
        ({"input": b64(b"x"), "hash_algorithm": "sha1"}, "invalid hash algorithm"),
        ({"input": b64(b"short"), "prehashed": True}, "prehashed input must be 32 bytes"),
        ({"input": b64(b"x"), "key_version": 7}, "not a version"),
        ({"input": b64(b"x"), "marshaling_algorithm": "pem"}, "marshaling_algorithm"),
        ({"input": b64(b"x"), "context": b64(b"c")}, "context is not supported"),
        ({"input": b64(b"x"), "key_version": True}, "key_version"),
    ],
)
async def test_sign_refusals(vault: Vault, body: dict[str, Any], says: str) -> None:
    await vault.ok("POST", "keys/k", {"type": "ecdsa-secp256k1"})
    (msg,) = errors(await vault.call("POST", "sign/k", body), 400)
    assert says in msg


async def test_sign_with_missing_or_wrong_key(vault: Vault) -> None:
    assert errors(await vault.call("POST", "sign/none", {"input": b64(b"x")}), 400) == [
        "signing key not found"
    ]
    await vault.ok("POST", "keys/a", {"type": "aes256-gcm96"})
    (msg,) = errors(await vault.call("POST", "sign/a", {"input": b64(b"x")}), 400)
    assert "does not support signing" in msg
    await vault.ok("POST", "keys/e", {"type": "ed25519"})
    (msg,) = errors(
        await vault.call("POST", "verify/e", {"input": b64(b"x"), "signature": "x"}), 400
    )
    assert msg == "invalid signature: no prefix"
    forged = {"input": b64(b"x"), "signature": "vault:v1:" + b64(bytes(64))}
    assert not (await vault.ok("POST", "verify/e", forged))["valid"]


async def test_batch_sign_with_a_bad_item(vault: Vault) -> None:
    key = await vault.ok("POST", "keys/e", {"type": "ed25519"})
    public = VerifyKey(base64.b64decode(key["keys"]["1"]["public_key"]))
    items = [{"input": b64(bytes([i])), "reference": f"r{i}"} for i in range(5)]
    items.insert(2, {"input": "%%", "reference": "bad"})
    out = (await vault.ok("POST", "sign/e", {"batch_input": items}))["batch_results"]
    assert [o["reference"] for o in out] == [i["reference"] for i in items]
    assert "unable to decode" in out[2]["error"] and "signature" not in out[2]
    for it, o in zip(items, out, strict=True):
        if it["reference"] != "bad":
            public.verify(base64.b64decode(it["input"]), sig_bytes(o["signature"]))
    check = [
        {"input": i["input"], "signature": o["signature"]}
        for i, o in zip(items, out, strict=True)
        if "signature" in o
    ]
    res = (await vault.ok("POST", "verify/e", {"batch_input": check}))["batch_results"]
    assert [r["valid"] for r in res] == [True] * 5
    r = await vault.call("POST", "sign/e", {"batch_input": [{"input": "%%"}]})
    errors(r, 400)
    errors(await vault.call("POST", "sign/e", {"batch_input": []}), 400)
    errors(await vault.call("POST", "sign/e", {"batch_input": ["x"]}), 400)


# -- encryption ----------------------------------------------------------------------------------------
async def test_encrypt_decrypt_rotate_and_policy(vault: Vault) -> None:
    await vault.ok("POST", "keys/a", {"type": "aes256-gcm96"})
    v1 = (await vault.ok("POST", "encrypt/a", {"plaintext": b64(b"secret one")}))["ciphertext"]
    assert v1.startswith("vault:v1:")
    assert (await vault.ok("POST", "decrypt/a", {"ciphertext": v1}))["plaintext"] == b64(
        b"secret one"
    )
    rotated = await vault.ok("POST", "keys/a/rotate")
    assert rotated["latest_version"] == 2 and set(rotated["keys"]) == {"1", "2"}
    kids = {r.key_id for r in vault.cluster.gateway.store.list_keys()}
    assert len(kids) == 2  # a new threshold key by DKG
    v2 = await vault.ok("POST", "encrypt/a", {"plaintext": b64(b"secret two")})
    assert v2["key_version"] == 2 and v2["ciphertext"].startswith("vault:v2:")
    old = await vault.ok("POST", "decrypt/a", {"ciphertext": v1})
    assert base64.b64decode(old["plaintext"]) == b"secret one"
    pinned = await vault.ok("POST", "encrypt/a", {"plaintext": b64(b"p"), "key_version": 1})
    assert pinned["ciphertext"].startswith("vault:v1:")
    cfg = await vault.ok("POST", "keys/a/config", {"min_decryption_version": 2})
    assert set(cfg["keys"]) == {"2"}  # as Vault: versions below the minimum are not shown
    (msg,) = errors(await vault.call("POST", "decrypt/a", {"ciphertext": v1}), 400)
    assert "disallowed by policy" in msg
    plain = await vault.ok("POST", "decrypt/a", {"ciphertext": v2["ciphertext"]})
    assert base64.b64decode(plain["plaintext"]) == b"secret two"


@pytest.mark.parametrize(
    "body",
    [
        {"min_decryption_version": 5},
        {"min_decryption_version": 0},
        {"min_decryption_version": "x"},
        {"min_encryption_version": 9},
        {"deletion_allowed": "yes"},
        {"exportable": True},
    ],
)
async def test_config_refusals_change_nothing(vault: Vault, body: dict[str, Any]) -> None:
    before = await vault.ok("POST", "keys/a", {"type": "aes256-gcm96"})
    errors(await vault.call("POST", "keys/a/config", body), 400)
    assert await vault.ok("GET", "keys/a") == before


async def test_tampered_and_foreign_ciphertexts(vault: Vault) -> None:
    await vault.ok("POST", "keys/a", {"type": "aes256-gcm96"})
    await vault.ok("POST", "keys/b", {"type": "aes256-gcm96"})
    ct = (await vault.ok("POST", "encrypt/a", {"plaintext": b64(b"data")}))["ciphertext"]
    raw = bytearray(sig_bytes(ct))
    raw[-1] ^= 1
    (msg,) = errors(
        await vault.call("POST", "decrypt/a", {"ciphertext": "vault:v1:" + b64(bytes(raw))}), 400
    )
    assert "authentication failed" in msg
    (msg,) = errors(await vault.call("POST", "decrypt/b", {"ciphertext": ct}), 400)
    assert "invalid ciphertext" in msg
    for bad in ("AAAA", "vault:v9:AAAA", "vault:vx:AAAA", "vault:v1:%%"):
        errors(await vault.call("POST", "decrypt/a", {"ciphertext": bad}), 400)
    (msg,) = errors(
        await vault.call("POST", "decrypt/a", {"ciphertext": ct, "context": "Yw=="}), 400
    )
    assert "context" in msg


async def test_encrypt_creates_the_key_for_an_operator_only(vault: Vault) -> None:
    out = await vault.ok("POST", "encrypt/auto", {"plaintext": b64(b"x")})  # admin: upsert
    assert out["key_version"] == 1
    assert errors(
        await vault.call("POST", "encrypt/other", {"plaintext": b64(b"x")}, "signer"), 400
    ) == ["encryption key not found"]


async def test_delete_needs_deletion_allowed_and_destroys_shares(vault: Vault) -> None:
    await vault.ok("POST", "keys/e", {"type": "ed25519"})
    (msg,) = errors(await vault.call("DELETE", "keys/e"), 400)
    assert "deletion is not allowed" in msg
    await vault.ok("POST", "keys/e/config", {"deletion_allowed": True})
    r = await vault.call("DELETE", "keys/e")
    assert r.status_code == 204, r.text
    assert vault.cluster.gateway.store.count_keys() == 0
    errors(await vault.call("GET", "keys/e"), 404)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=6))
async def test_batch_round_trip(vault: Vault, plaintexts: list[bytes]) -> None:
    await vault.ok("POST", "keys/p", {"type": "aes256-gcm96"})
    enc = await vault.ok(
        "POST", "encrypt/p", {"batch_input": [{"plaintext": b64(p)} for p in plaintexts]}
    )
    cts = [{"ciphertext": r["ciphertext"]} for r in enc["batch_results"]]
    dec = await vault.ok("POST", "decrypt/p", {"batch_input": cts})
    assert [base64.b64decode(r["plaintext"]) for r in dec["batch_results"]] == plaintexts
