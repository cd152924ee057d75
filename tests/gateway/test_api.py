"""The REST API over an in-memory cluster: shapes of answers, and bad requests that change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.conftest import Api, Cluster

pytestmark = pytest.mark.asyncio


def _snapshot(c: Cluster) -> tuple[Any, ...]:
    nodes = tuple(
        (s.store.count_keys(), tuple(sorted(s.store.count_nonces().items())))
        for s in c.services.values()
    )
    reqs = c.gateway.store.db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    return nodes, c.gateway.store.count_keys(), reqs


async def test_create_show_sign(api: Api) -> None:
    client, _ = api
    r = await client.post("/v1/keys", json={"scheme": "ed25519", "label": "hot"})
    assert r.status_code == 201, r.text
    key = r.json()
    assert set(key) >= {"key_id", "scheme", "public_key"} and key["label"] == "hot"
    assert (await client.get(f"/v1/keys/{key['key_id']}")).json()["public_key"] == key["public_key"]
    r = await client.post(f"/v1/keys/{key['key_id']}/sign", json={"message": "00ff"})
    assert r.status_code == 200 and len(bytes.fromhex(r.json()["signature"])) == 64
    assert (await client.get("/docs")).status_code == 200
    assert "/v1/keys" in (await client.get("/openapi.json")).json()["paths"]


BAD = [
    ("post", "/v1/keys", {"scheme": "rsa"}, 400, "invalid_request"),
    ("post", "/v1/keys", {"scheme": "ed25519", "extra": 1}, 400, "invalid_request"),
    ("post", "/v1/keys", {"scheme": "ed25519", "count": 0}, 400, "invalid_request"),
    ("get", "/v1/keys/0123456789abcdef0123456789abcdef", None, 404, "unknown_key"),
    ("get", "/v1/keys/nonsense", None, 404, "unknown_key"),
    (
        "post",
        "/v1/keys/0123456789abcdef0123456789abcdef/sign",
        {"message": "00"},
        404,
        "unknown_key",
    ),
    ("post", "/v1/keys/{key}/sign", {"message": "zz"}, 400, "malformed_hex"),
    ("post", "/v1/keys/{key}/sign", {"message": "abc"}, 400, "malformed_hex"),
    ("post", "/v1/keys/{key}/sign", {}, 400, "invalid_request"),
    ("post", "/v1/keys/{key}/sign", {"message": "00" * 70_000}, 413, "too_large"),
    (
        "post",
        "/v1/keys/{key}/sign",
        {"message": "00", "merkle_root": "00" * 31, "taproot_tweak": True},
        400,
        "invalid_request",  # off the schema: checked before the scheme (ed25519 takes no tweak)
    ),
    (
        "post",
        "/v1/keys/{key}/sign",
        {"message": "00", "taproot_tweak": True},
        409,
        "option_not_for_scheme",
    ),
    (
        "post",
        "/v1/keys/{key}/sign",
        {"message": "00", "path": "m/0/1"},
        409,
        "option_not_for_scheme",  # ed25519 keys take no path at all
    ),
    ("get", "/v1/keys/{key}/derive?path=m/0", None, 409, "unsupported"),
    (
        "post",
        "/v1/sign",
        {"requests": [{"key_id": "{key}", "message": "0g"}]},
        400,
        "malformed_hex",
    ),
    (
        "post",
        "/v1/keys/import",
        {"scheme": "ed25519", "public": {}, "sealed": {}},
        422,
        "bad_request",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD)
async def test_bad_requests_change_nothing(
    api: Api, method: str, path: str, body: Any, status: int, code: str
) -> None:
    client, c = api
    key = (await client.post("/v1/keys", json={"scheme": "ed25519"})).json()["key_id"]
    before = _snapshot(c)
    path = path.replace("{key}", key)
    if isinstance(body, dict) and "requests" in body:
        body = {
            "requests": [
                {**it, "key_id": it["key_id"].replace("{key}", key)} for it in body["requests"]
            ]
        }
    r = await client.request(method.upper(), path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    assert _snapshot(c) == before
