"""Vault transit, served by threshold keys: `/v1/transit/keys|sign|verify|encrypt|decrypt`.

Types: `ed25519` (FROST-Ed25519), `ecdsa-secp256k1` (threshold ECDSA; `hash_algorithm`
`sha2-256` (default) or `keccak-256`, or `prehashed` 32-byte input; `marshaling_algorithm` `asn1`
(DER, default) or `jws` (r||s)), `schnorr-bip340` (FROST BIP340) and `aes256-gcm96` (DiSE:
threshold PRF + AES-256-GCM; the ciphertext is `vault:vN:` + base64 of the DiSE ciphertext).
Signatures are checked here with libsodium / libsecp256k1 (`verify`). Encryption here makes the
gateway see plaintexts: a development-cluster service (a governed cluster's nodes evaluate only
for a user's signed authorization, so transit encryption is refused there by the nodes).
Callers authenticate with `X-Vault-Token` (gateway/vault_gate.py); answers have Vault's shape."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import coincurve
from Crypto.Hash import keccak
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from tholos.crypto import dise
from tholos.crypto.errors import CryptoError, InvalidInput
from tholos.gateway.access import client_of
from tholos.gateway.scheme_protocols import rounds_for
from tholos.gateway.service import Gateway, GatewayError
from tholos.gateway.vault_keys import NAME, SIGNING, TYPES, TransitKey, transit_of, view

MAX_BATCH = 4096
HASHES = ("sha2-256", "keccak-256")
router = APIRouter(include_in_schema=False)


class ItemError(ValueError):
    """One input's refusal: in a batch it becomes that item's `error`, alone a 400."""


class Failed(str):
    """An item the cluster could not serve (nodes unavailable...): alone, a 503."""

    __slots__ = ()


def _ok(data: dict[str, Any] | None, request: Request) -> JSONResponse:
    ignored = request.scope.get("state", {}).get("vault_ignored")
    warnings = [f"Endpoint ignored these unrecognized parameters: {ignored}"] if ignored else None
    return JSONResponse(
        {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": data,
            "wrap_info": None,
            "warnings": warnings,
            "auth": None,
        }
    )


def _bad(message: str) -> GatewayError:
    return GatewayError(400, "bad_request", message)


def _gw(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def _body(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:  # as Vault: ignored, and named in the answer's warnings (hvac sends "name")
        request.scope.setdefault("state", {})["vault_ignored"] = unknown
    return {k: v for k, v in body.items() if k in allowed}


def _name(name: str) -> str:
    if not NAME.match(name):
        raise _bad(f"invalid key name {name[:130]!r}: 1-128 of letters, digits, _ . -")
    return name


def _key(gw: Gateway, name: str, missing: str) -> TransitKey:
    key = transit_of(gw).get(_name(name))
    if key is None:
        raise _bad(missing)
    return key


def _int(body: dict[str, Any], field: str, default: int) -> int:
    v = body.get(field, default)
    if isinstance(v, str) and v.isdigit():  # Vault takes numbers as strings too
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ItemError(f"{field} must be a non-negative integer")
    return v


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ItemError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ItemError(f"unable to decode {what} as base64") from None


def _versioned(text: Any, key: TransitKey, what: str) -> tuple[int, bytes]:
    """`vault:vN:base64` -> (N, bytes), N a version of `key` allowed by its policy."""
    if not isinstance(text, str) or not text.startswith("vault:v"):
        raise ItemError(f"invalid {what}: no prefix")
    head, _, b64 = text[len("vault:v") :].partition(":")
    if not head.isdigit() or not _:
        raise ItemError(f"invalid {what}: bad version")
    version = int(head)
    if version not in key.versions:
        raise ItemError(f"invalid {what}: unknown key version {version}")
    if version < key.min_decryption_version:
        raise ItemError("ciphertext or signature version is disallowed by policy (too old)")
    return version, _b64(b64, what)


def _use_version(body: dict[str, Any], key: TransitKey) -> int:
    v = _int(body, "key_version", 0) or key.latest_version
    if v not in key.versions:
        raise ItemError(f"requested key version {v} is not a version of {key.name!r}")
    if v < max(key.min_encryption_version, key.min_decryption_version):
        raise ItemError(f"key version {v} is below the key's minimum for this operation")
    return v


def _items(body: dict[str, Any], fields: tuple[str, ...]) -> tuple[list[dict[str, Any]], bool]:
    """(items, batched): `batch_input` entries or the body's own fields as one item."""
    batch = body.get("batch_input")
    if batch is None:
        return [{k: body[k] for k in fields if k in body}], False
    if not isinstance(batch, list) or not batch or len(batch) > MAX_BATCH:
        raise _bad(f"batch_input must be a list of 1 to {MAX_BATCH} objects")
    out = []
    for i, it in enumerate(batch):
        if not isinstance(it, dict):
            raise _bad(f"batch_input[{i}] is not an object")
        known = {k: v for k, v in it.items() if k in fields or k == "reference"}
        out.append({**{k: body[k] for k in fields if k in body and k != "input"}, **known})
    return out, True


def _answer(results: list[dict[str, Any]], batched: bool, request: Request) -> JSONResponse:
    if not batched:
        r = results[0]
        if "error" in r:
            failed = isinstance(r["error"], Failed)
            raise GatewayError(503 if failed else 400, "bad_request", str(r["error"]))
        r.pop("reference", None)
        return _ok(r, request)
    if all("error" in r for r in results):
        return JSONResponse(
            status_code=400,
            content={
                "errors": [str(r["error"]) for r in results],
                "data": {"batch_results": results},
            },
        )
    return _ok({"batch_results": results}, request)


async def _each(
    items: list[dict[str, Any]],
    prepare: Callable[[dict[str, Any]], Any],
    run: Callable[[list[Any]], Awaitable[list[dict[str, Any] | str]]],
) -> list[dict[str, Any]]:
    """Prepare every item (an ItemError is that item's error), run the prepared ones together
    (one batched round), and put the answers back in order with each item's `reference`."""
    prepared: list[tuple[int, Any]] = []
    results: list[dict[str, Any]] = [{} for _ in items]
    for i, it in enumerate(items):
        try:
            prepared.append((i, prepare(it)))
        except ItemError as exc:
            results[i] = {"error": str(exc)}
    outs = await run([p for _, p in prepared]) if prepared else []
    for (i, _), out in zip(prepared, outs, strict=True):
        results[i] = {"error": out} if isinstance(out, str) else out
    for i, it in enumerate(items):
        results[i]["reference"] = str(it.get("reference", ""))
    return results


# -- keys -------------------------------------------------------------------------------------------
def _view(gw: Gateway, key: TransitKey) -> dict[str, Any]:
    return view(key, {v.key_id: gw.key(v.key_id).public_key for v in key.versions.values()})


@router.get("/v1/transit/keys")
async def list_keys(request: Request) -> JSONResponse:
    names = transit_of(_gw(request)).names()
    if not names:
        raise GatewayError(404, "unknown_transit_key", "no keys")
    return _ok({"keys": names}, request)


CREATE_FIELDS = frozenset(
    {
        "type",
        "exportable",
        "allow_plaintext_backup",
        "derived",
        "convergent_encryption",
        "auto_rotate_period",
    }
)


async def _create(gw: Gateway, name: str, type_: str) -> TransitKey:
    (row,) = await gw.create_keys(TYPES[type_], 1, f"transit:{name}:v1")
    return transit_of(gw).create(name, type_, row.key_id)


@router.post("/v1/transit/keys/{name}")
async def create_key(name: str, request: Request) -> JSONResponse:
    body = await _body(request, CREATE_FIELDS)
    gw = _gw(request)
    type_ = body.get("type", "aes256-gcm96")
    if type_ not in TYPES:
        raise _bad(f"unknown key type {str(type_)[:64]}")
    for flag in ("exportable", "allow_plaintext_backup", "derived", "convergent_encryption"):
        if body.get(flag) not in (None, False):
            raise _bad(f"{flag} is not supported: tholos keys never exist in one place")
    if body.get("auto_rotate_period") not in (None, 0, "0", "0s"):
        raise _bad("auto_rotate_period is not supported (rotate with POST .../rotate)")
    key = transit_of(gw).get(_name(name))
    if key is not None and key.type != type_:
        raise _bad(f"key {name!r} exists with type {key.type}")
    return _ok(_view(gw, key or await _create(gw, name, type_)), request)


@router.get("/v1/transit/keys/{name}")
async def read_key(name: str, request: Request) -> JSONResponse:
    gw = _gw(request)
    key = transit_of(gw).get(_name(name))
    if key is None:
        raise GatewayError(404, "unknown_transit_key", f"no key {name!r}")
    return _ok(_view(gw, key), request)


CONFIG_FIELDS = frozenset(
    {
        "min_decryption_version",
        "min_encryption_version",
        "deletion_allowed",
        "exportable",
        "allow_plaintext_backup",
        "auto_rotate_period",
    }
)


@router.post("/v1/transit/keys/{name}/config")
async def configure_key(name: str, request: Request) -> JSONResponse:
    body = await _body(request, CONFIG_FIELDS)
    gw = _gw(request)
    key = _key(gw, name, "no such key")
    for flag in ("exportable", "allow_plaintext_backup"):
        if body.get(flag) not in (None, False):
            raise _bad(f"{flag} is not supported: tholos keys never exist in one place")
    if body.get("auto_rotate_period") not in (None, 0, "0", "0s"):
        raise _bad("auto_rotate_period is not supported")
    try:
        dec = _int(body, "min_decryption_version", key.min_decryption_version)
        enc = _int(body, "min_encryption_version", key.min_encryption_version)
    except ItemError as exc:
        raise _bad(str(exc)) from None
    if not 1 <= dec <= key.latest_version:
        raise _bad(f"min_decryption_version must be between 1 and {key.latest_version}")
    if enc and not dec <= enc <= key.latest_version:
        raise _bad("min_encryption_version must be 0 or between min_decryption_version and latest")
    deletion = body.get("deletion_allowed", key.deletion_allowed)
    if not isinstance(deletion, bool):
        raise _bad("deletion_allowed must be true or false")
    key.min_decryption_version, key.min_encryption_version = dec, enc
    key.deletion_allowed = deletion
    transit_of(gw).set_config(key)
    return _ok(_view(gw, key), request)


@router.post("/v1/transit/keys/{name}/rotate")
async def rotate_key(name: str, request: Request) -> JSONResponse:
    await _body(request, frozenset())
    gw = _gw(request)
    key = _key(gw, name, "no such key")
    label = f"transit:{key.name}:v{key.latest_version + 1}"
    (row,) = await gw.create_keys(TYPES[key.type], 1, label)
    return _ok(_view(gw, transit_of(gw).add_version(key.name, row.key_id)), request)


@router.delete("/v1/transit/keys/{name}")
async def delete_key(name: str, request: Request) -> Response:
    from tholos.gateway.key_lifecycle import destroy

    gw = _gw(request)
    key = _key(gw, name, "no such key")
    if not key.deletion_allowed:
        raise _bad(f"error deleting key {key.name}: deletion is not allowed for this key")
    for v in key.versions.values():  # every node deletes its shares durably
        if gw.store.get_key(v.key_id) is not None:
            await destroy(gw, v.key_id, v.key_id)
    transit_of(gw).delete(key.name)
    return Response(status_code=204)


# -- sign and verify --------------------------------------------------------------------------------
SIGN_FIELDS = (
    "input",
    "key_version",
    "hash_algorithm",
    "prehashed",
    "marshaling_algorithm",
    "signature_algorithm",
    "context",
)
VERIFY_FIELDS = (
    "input",
    "signature",
    "hash_algorithm",
    "prehashed",
    "marshaling_algorithm",
    "signature_algorithm",
    "context",
)


def _message(key: TransitKey, it: dict[str, Any], path_hash: str | None) -> bytes:
    """What the tholos key signs: the input (ed25519, schnorr-bip340) or its 32-byte digest."""
    data = _b64(it.get("input"), "input")
    if it.get("context"):
        raise ItemError("context is not supported: tholos transit keys are not derived")
    if key.type != "ecdsa-secp256k1":
        if it.get("prehashed"):
            raise ItemError(f"prehashed is not supported for {key.type} keys")
        return data
    if it.get("prehashed"):
        if len(data) != 32:
            raise ItemError(f"prehashed input must be 32 bytes, got {len(data)}")
        return data
    alg = it.get("hash_algorithm") or path_hash or "sha2-256"
    if alg == "sha2-256":
        return hashlib.sha256(data).digest()
    if alg == "keccak-256":
        return keccak.new(digest_bits=256, data=data).digest()
    raise ItemError(f"invalid hash algorithm {str(alg)[:40]!r} (supported: {', '.join(HASHES)})")


def _marshaling(it: dict[str, Any]) -> str:
    m = it.get("marshaling_algorithm") or "asn1"
    if m not in ("asn1", "jws"):
        raise ItemError(f"invalid marshaling_algorithm {str(m)[:40]!r} (asn1 or jws)")
    return str(m)


def _encode_ecdsa(sig: bytes, marshaling: str) -> bytes:
    if marshaling == "jws":
        return sig
    return encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))


async def _sign_all(
    gw: Gateway, key: TransitKey, jobs: list[tuple[int, bytes, str]]
) -> list[dict[str, Any] | str]:
    """Sign (version, message, marshaling) items in one batch per scheme kind."""
    out: list[dict[str, Any] | str] = []
    if key.type == "ecdsa-secp256k1":
        rounds = rounds_for(gw)
        sjobs = [rounds.job(key.versions[v].key_id, m, "") for v, m, _ in jobs]
        await rounds.submit(sjobs)
        for (v, _, marshaling), sj in zip(jobs, sjobs, strict=True):
            if sj.signature is None:
                out.append(Failed(f"signing failed: {sj.error or 'unavailable'}"))
                continue
            sig = base64.b64encode(_encode_ecdsa(sj.signature, marshaling)).decode()
            out.append(
                {"signature": f"vault:v{v}:{sig}", "key_version": v, "recovery_id": sj.recovery_id}
            )
        return out
    fjobs = [gw.sign_job(key.versions[v].key_id, m) for v, m, _ in jobs]
    await gw.sign(fjobs)
    for (v, _, _), j in zip(jobs, fjobs, strict=True):
        if j.signature is None:
            out.append(Failed(f"signing failed: {j.error or 'unavailable'}"))
        else:
            sig = base64.b64encode(j.signature).decode()
            out.append({"signature": f"vault:v{v}:{sig}", "key_version": v})
    return out


async def _sign(request: Request, name: str, path_hash: str | None) -> JSONResponse:
    body = await _body(request, frozenset({*SIGN_FIELDS, "batch_input"}))
    gw = _gw(request)
    key = _key(gw, name, "signing key not found")
    if key.type not in SIGNING:
        raise _bad(f"key type {key.type} does not support signing")
    items, batched = _items(body, SIGN_FIELDS)

    def prepare(it: dict[str, Any]) -> tuple[int, bytes, str]:
        return _use_version(it, key), _message(key, it, path_hash), _marshaling(it)

    async def run(jobs: list[tuple[int, bytes, str]]) -> list[dict[str, Any] | str]:
        return await _sign_all(gw, key, jobs)

    return _answer(await _each(items, prepare, run), batched, request)


@router.post("/v1/transit/sign/{name}")
async def sign(name: str, request: Request) -> JSONResponse:
    return await _sign(request, name, None)


@router.post("/v1/transit/sign/{name}/{hash_algorithm}")
async def sign_hashed(name: str, hash_algorithm: str, request: Request) -> JSONResponse:
    return await _sign(request, name, hash_algorithm)


def _check(key: TransitKey, public_hex: str, message: bytes, sig: bytes, marshaling: str) -> bool:
    """Verify with libsodium (Ed25519) or libsecp256k1 (ECDSA low-S, BIP340)."""
    raw = bytes.fromhex(public_hex)
    try:
        if key.type == "ed25519":
            VerifyKey(raw).verify(message, sig)
            return True
        if key.type == "schnorr-bip340":
            xonly = raw[1:] if len(raw) == 33 else raw
            return len(sig) == 64 and coincurve.PublicKeyXOnly(xonly).verify(sig, message)
        if marshaling == "jws":
            if len(sig) != 64:
                return False
            sig = encode_dss_signature(
                int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            )
        decode_dss_signature(sig)  # well-formed DER, else ValueError
        return bool(coincurve.PublicKey(raw).verify(sig, message, hasher=None))
    except (BadSignatureError, ValueError, TypeError):
        return False


async def _verify(request: Request, name: str, path_hash: str | None) -> JSONResponse:
    body = await _body(request, frozenset({*VERIFY_FIELDS, "batch_input"}))
    gw = _gw(request)
    key = _key(gw, name, "signature verification key not found")
    if key.type not in SIGNING:
        raise _bad(f"key type {key.type} does not support verification")
    items, batched = _items(body, VERIFY_FIELDS)

    def prepare(it: dict[str, Any]) -> dict[str, Any]:
        version, sig = _versioned(it.get("signature"), key, "signature")
        message = _message(key, it, path_hash)
        public = gw.key(key.versions[version].key_id).public_key
        return {"valid": _check(key, public, message, sig, _marshaling(it))}

    async def run(done: list[dict[str, Any]]) -> list[dict[str, Any] | str]:
        return list(done)

    return _answer(await _each(items, prepare, run), batched, request)


@router.post("/v1/transit/verify/{name}")
async def verify(name: str, request: Request) -> JSONResponse:
    return await _verify(request, name, None)


@router.post("/v1/transit/verify/{name}/{hash_algorithm}")
async def verify_hashed(name: str, hash_algorithm: str, request: Request) -> JSONResponse:
    return await _verify(request, name, hash_algorithm)


# -- encrypt and decrypt ----------------------------------------------------------------------------
async def _evaluate(
    gw: Gateway, key_ids: list[str], requests: list[dise.EvalRequest], verify: bool
) -> list[list[dise.PartialEval] | str]:
    """t partial evaluations per request, in one batched round."""
    rounds = rounds_for(gw)
    jobs = [
        rounds.job(
            kid,
            b"",
            "",
            {
                "alpha": r.alpha.hex(),
                "encryptor": r.encryptor,
                "purpose": r.purpose,
                "verify": verify,
            },
        )
        for kid, r in zip(key_ids, requests, strict=True)
    ]
    await rounds.submit(jobs)
    return [
        [dise.PartialEval.from_dict(p) for p in j.partials]
        if j.partials
        else Failed(f"evaluation failed: {j.error or 'unavailable'}")
        for j in jobs
    ]


async def _finish(
    gw: Gateway,
    key_ids: list[str],
    requests: list[dise.EvalRequest],
    finish: Sequence[Callable[[list[dise.PartialEval]], bytes]],
) -> list[bytes | str]:
    """Evaluate and finish each item; an item whose partials do not combine is asked again
    with `verify` (the gateway then checks each proof and leaves a bad node out)."""
    out: list[bytes | str] = []
    got = await _evaluate(gw, key_ids, requests, False)
    again: list[int] = []
    for i, ps in enumerate(got):
        if isinstance(ps, str):
            out.append(ps)
            continue
        try:
            out.append(finish[i](ps))
        except dise.InvalidCiphertext:
            out.append("cipher: message authentication failed")
        except CryptoError:  # a bad partial or proof: ask again, checked at the gateway
            out.append("")
            again.append(i)
    if again:
        retry = await _evaluate(gw, [key_ids[i] for i in again], [requests[i] for i in again], True)
        for i, ps in zip(again, retry, strict=True):
            if isinstance(ps, str):
                out[i] = ps
                continue
            try:
                out[i] = finish[i](ps)
            except dise.InvalidCiphertext:
                out[i] = "cipher: message authentication failed"
            except CryptoError as exc:
                out[i] = f"evaluation failed: {exc}"
    return out


def _encrypt_finish(
    public: Any, ctx: dise.EncryptionContext, partials: list[dise.PartialEval]
) -> bytes:
    return dise.encrypt_finish(public, ctx, partials)


def _decrypt_finish(public: Any, ct: bytes, partials: list[dise.PartialEval]) -> bytes:
    return bytes(dise.decrypt_finish(public, ct, partials))


ENCRYPT_FIELDS = ("plaintext", "key_version", "context", "nonce", "type")


@router.post("/v1/transit/encrypt/{name}")
async def encrypt(name: str, request: Request) -> JSONResponse:
    body = await _body(request, frozenset({*ENCRYPT_FIELDS, "batch_input"}))
    gw = _gw(request)
    key = transit_of(gw).get(_name(name))
    if key is None:  # Vault creates the key on first use (upsert), given the right to
        if not client_of(request).may("operate"):
            raise _bad("encryption key not found")
        key = await _create(gw, name, str(body.get("type") or "aes256-gcm96"))
    if key.type in SIGNING:
        raise _bad(f"key type {key.type} does not support encryption")
    items, batched = _items(body, ENCRYPT_FIELDS)
    encryptor = f"vault:{client_of(request).name}"

    def prepare(it: dict[str, Any]) -> tuple[int, bytes]:
        if it.get("context") or it.get("nonce"):
            raise ItemError("context and nonce are not supported: tholos keys are not derived")
        return _use_version(it, key), _b64(it.get("plaintext", ""), "plaintext")

    async def run(jobs: list[tuple[int, bytes]]) -> list[dict[str, Any] | str]:
        kids, reqs, fins = [], [], []
        for v, plaintext in jobs:
            kid = key.versions[v].key_id
            public = gw._public(gw.key(kid))
            ctx, req = dise.encrypt_begin(public, encryptor, plaintext)
            kids.append(kid)
            reqs.append(req)
            fins.append(functools.partial(_encrypt_finish, public, ctx))
        cts = await _finish(gw, kids, reqs, fins)
        return [
            c
            if isinstance(c, str)
            else {"ciphertext": f"vault:v{v}:{base64.b64encode(c).decode()}", "key_version": v}
            for (v, _), c in zip(jobs, cts, strict=True)
        ]

    return _answer(await _each(items, prepare, run), batched, request)


DECRYPT_FIELDS = ("ciphertext", "context", "nonce")


@router.post("/v1/transit/decrypt/{name}")
async def decrypt(name: str, request: Request) -> JSONResponse:
    body = await _body(request, frozenset({*DECRYPT_FIELDS, "batch_input"}))
    gw = _gw(request)
    key = _key(gw, name, "encryption key not found")
    if key.type in SIGNING:
        raise _bad(f"key type {key.type} does not support decryption")
    items, batched = _items(body, DECRYPT_FIELDS)

    def prepare(it: dict[str, Any]) -> tuple[str, Any, bytes, dise.EvalRequest]:
        if it.get("context") or it.get("nonce"):
            raise ItemError("context and nonce are not supported: tholos keys are not derived")
        version, ct = _versioned(it.get("ciphertext"), key, "ciphertext")
        kid = key.versions[version].key_id
        public = gw._public(gw.key(kid))
        try:
            return kid, public, ct, dise.decrypt_begin(public, ct)
        except InvalidInput:
            raise ItemError("invalid ciphertext: not a ciphertext of this key version") from None

    async def run(jobs: list[Any]) -> list[dict[str, Any] | str]:
        fins = [
            lambda ps, p=public, c=ct: dise.decrypt_finish(p, c, ps) for _, public, ct, _ in jobs
        ]
        pts = await _finish(gw, [j[0] for j in jobs], [j[3] for j in jobs], fins)
        return [
            p if isinstance(p, str) else {"plaintext": base64.b64encode(p).decode()} for p in pts
        ]

    return _answer(await _each(items, prepare, run), batched, request)
