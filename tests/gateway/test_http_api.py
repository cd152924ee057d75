"""The HTTP layer of the gateway: bounds, paging, API clients and roles, rate limits and quotas,
body size, strict input, one error envelope, and the checked-in OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.gateway.conftest import Api, Cluster, expect_error
from tholos.gateway import openapi
from tholos.gateway.api import create_app
from tholos.gateway.identities import ApiClients, x509_pem
from tholos.gateway.request_body import DEFAULT_LIMIT, BodyGuard
from tholos.transport.pki import CertificateAuthority

pytestmark = pytest.mark.asyncio


# -- item 2: every integer parameter is bounded -----------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "limit=1&offset=9223372036854775808",
        "limit=-1",
        "offset=-5",
        "limit=0",
        "limit=100000",
        "limit=1e3",
        "limit=true",
    ],
)
async def test_list_bounds(api: Api, query: str) -> None:
    client, _ = api
    expect_error(await client.get(f"/v1/keys?{query}"), 400, "invalid_request")


async def test_other_integer_bounds(api: Api) -> None:
    client, _ = api
    expect_error(
        await client.get("/v1/signing-requests?limit=99999999999999999999"), 400, "invalid_request"
    )
    expect_error(await client.post("/v1/nodes/99999999999999999999/repair"), 400, "invalid_request")


# -- item 3: paging with a total, filters ----------------------------------------------------------
async def test_paging_and_filters(api: Api) -> None:
    client, _ = api
    r = await client.post("/v1/keys", json={"scheme": "ed25519", "count": 5, "label": "a"})
    assert r.status_code == 201, r.text
    made = r.json()["keys"]
    other = (await client.post("/v1/keys", json={"scheme": "secp256k1", "label": "b"})).json()
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = (await client.get("/v1/keys", params={"limit": 2, "offset": offset})).json()
        assert page["total"] == 6 and len(page["keys"]) <= 2
        seen += [k["key_id"] for k in page["keys"]]
        offset = page["next_offset"]
    everything = (await client.get("/v1/keys", params={"limit": 1000})).json()
    assert everything["next_offset"] is None and everything["total"] == 6
    assert seen == [k["key_id"] for k in everything["keys"]]
    assert set(seen) == {k["key_id"] for k in made} | {other["key_id"]}
    r = (await client.get("/v1/keys", params={"scheme": "secp256k1"})).json()
    assert [k["key_id"] for k in r["keys"]] == [other["key_id"]] and r["total"] == 1
    assert (await client.get("/v1/keys", params={"label": "a"})).json()["total"] == 5
    pk = made[2]["public_key"]
    r = (await client.get("/v1/keys", params={"public_key": pk.upper()})).json()
    assert [k["key_id"] for k in r["keys"]] == [made[2]["key_id"]]
    r = (await client.get("/v1/keys", params={"created_after": other["created"] - 1e-6})).json()
    assert r["total"] == 1
    r = (await client.get("/v1/keys", params={"created_before": other["created"]})).json()
    assert r["total"] == 5
    expect_error(await client.get("/v1/keys", params={"scheme": "rsa"}), 400, "invalid_request")


# -- item 4: named API clients, roles, rate limits and quotas ---------------------------------------
class WithCert:
    """What the gateway's uvicorn protocol does: the client certificate in the ASGI scope."""

    def __init__(self, app: Any, pem: str | None) -> None:
        self.app, self.pem = app, pem

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.pem is not None:
            scope = {**scope, "extensions": {"tls": {"client_cert_chain": [self.pem]}}}
        await self.app(scope, receive, send)


@pytest_asyncio.fixture
async def clients(tmp_path: Path) -> AsyncIterator[tuple[Any, dict[str, str], Cluster]]:
    from tholos.gateway.identities import fingerprint_pem

    ca = CertificateAuthority.create()
    pems = {
        n: ca.issue(n, server=False, client=True).cert_pem.decode()
        for n in ("reader", "signer", "operator", "admin", "gateway-client", "limited")
    }
    config = {
        n: {"fingerprint": fingerprint_pem(pems[n]), "role": n.replace("reader", "read-only")}
        for n in ("reader", "signer", "operator", "admin")
    }
    config["limited"] = {
        "fingerprint": fingerprint_pem(pems["limited"]),
        "role": "operator",
        "limits": {"rate": 0.001, "burst": 3, "keys_per_hour": 4, "max_count": 3},
    }
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway, ApiClients.from_config(config, {}))

    def as_(name: str | None) -> httpx.AsyncClient:
        t = httpx.ASGITransport(app=WithCert(app, None if name is None else pems[name]))
        return httpx.AsyncClient(transport=t, base_url="http://gw")

    async with app.router.lifespan_context(app):
        yield as_, pems, c


async def test_roles(clients: Any) -> None:
    as_, _, _ = clients
    async with as_("operator") as op:
        key = (await op.post("/v1/keys", json={"scheme": "ed25519"})).json()
        expect_error(
            await op.post(f"/v1/keys/{key['key_id']}/sign", json={"message": "00"}),
            403,
            "forbidden",
        )
    async with as_("signer") as s:
        r = await s.post(f"/v1/keys/{key['key_id']}/sign", json={"message": "00"})
        assert r.status_code == 200, r.text
        expect_error(await s.post("/v1/keys", json={"scheme": "ed25519"}), 403, "forbidden")
        assert (await s.get("/v1/keys")).status_code == 200
    async with as_("reader") as rd:
        assert (await rd.get(f"/v1/keys/{key['key_id']}")).status_code == 200
        expect_error(
            await rd.post(f"/v1/keys/{key['key_id']}/sign", json={"message": "00"}),
            403,
            "forbidden",
        )
        expect_error(await rd.post(f"/v1/keys/{key['key_id']}/refresh"), 403, "forbidden")
    async with as_("admin") as ad:
        assert (await ad.post(f"/v1/keys/{key['key_id']}/refresh")).status_code == 200


async def test_unknown_certificates_are_refused(clients: Any) -> None:
    as_, _, c = clients
    for who in ("gateway-client", None):  # the gateway's own node-client cert; no cert at all
        async with as_(who) as h:
            expect_error(await h.get("/v1/keys"), 403, "unknown_client")
            expect_error(
                await h.post("/v1/keys", json={"scheme": "ed25519"}), 403, "unknown_client"
            )
    assert c.gateway.store.count_keys() == 0


async def test_rate_limit_and_quota(clients: Any) -> None:
    as_, _, c = clients
    async with as_("limited") as h:
        expect_error(
            await h.post("/v1/keys", json={"scheme": "ed25519", "count": 4}),
            403,  # this client may not, whatever it waits: not a 429
            "count_over_limit",
        )
        assert (await h.post("/v1/keys", json={"scheme": "ed25519", "count": 3})).status_code == 201
        r = await h.post("/v1/keys", json={"scheme": "ed25519", "count": 2})
        expect_error(r, 429, "quota_exceeded")
        assert int(r.headers["Retry-After"]) >= 1
        r = await h.get("/v1/keys")  # the 4th request of a burst of 3
        expect_error(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
    assert c.gateway.store.count_keys() == 3
    async with as_("admin") as ad:  # limits are per client
        assert (await ad.get("/v1/keys")).status_code == 200


async def test_cluster_init_names_api_clients(tmp_path: Path) -> None:
    from tholos.cluster.layout import init_cluster
    from tholos.gateway.config import GatewayConfig

    init_cluster(tmp_path / "c", 3, 2)
    cfg = GatewayConfig.load(tmp_path / "c" / "gateway" / "gateway.json")
    assert cfg.api_clients is not None
    by_name = {cl.name: cl for cl in cfg.api_clients.by_fingerprint.values()}
    assert {n: cl.role for n, cl in by_name.items()} == {
        "admin": "admin",
        "reader": "read-only",
        "signer": "signer",
        "operator": "operator",
    }
    cli = (tmp_path / "c" / "client" / "client.pem").read_text()
    gw_client = (tmp_path / "c" / "gateway" / "node-client.pem").read_text()
    tls = {"extensions": {"tls": {"client_cert_chain": [cli]}}}
    assert cfg.api_clients.identify(tls) == by_name["admin"]
    tls = {"extensions": {"tls": {"client_cert_chain": [gw_client]}}}
    assert cfg.api_clients.identify(tls) is None


# -- item 5: bodies are refused by size before they are read whole ----------------------------------
async def test_oversize_by_content_length(api: Api) -> None:
    client, _c = api
    key = (await client.post("/v1/keys", json={"scheme": "ed25519"})).json()["key_id"]
    body = b'{"message": "' + b"00" * (DEFAULT_LIMIT // 2 + 1) + b'"}'
    r = await client.post(
        f"/v1/keys/{key}/sign", content=body, headers={"content-type": "application/json"}
    )
    expect_error(r, 413, "too_large")


async def test_oversize_while_streaming() -> None:
    """A chunked body (no Content-Length) is refused once past the limit: the app never asks
    for more than the limit plus one chunk."""
    reached: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:  # must never run
        reached.append(1)

    guard = BodyGuard(app)
    chunk = b"x" * 65536
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}  # endless

    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/keys/0123456789abcdef0123456789abcdef/sign",
        "headers": [(b"content-type", b"application/json")],
    }
    await guard(scope, receive, send)
    assert sent[0]["status"] == 413 and not reached
    assert pulled <= DEFAULT_LIMIT + len(chunk)
    assert json.loads(sent[1]["body"])["error"]["code"] == "too_large"


# -- item 9: strict types and input limits ---------------------------------------------------------
LOOSE = [
    ("/v1/keys", {"scheme": "ed25519", "count": "2"}, 400, "invalid_request"),
    ("/v1/keys", {"scheme": "ed25519", "count": True}, 400, "invalid_request"),
    ("/v1/keys", {"scheme": "ed25519", "count": 2.5}, 400, "invalid_request"),
    ("/v1/keys", {"scheme": "ed25519", "label": "a\x00b"}, 400, "invalid_request"),
    ("/v1/keys", {"scheme": "ed25519", "label": "evil\u202etxt"}, 400, "invalid_request"),
    ("/v1/keys", {"scheme": "ed25519", "label": "<script>x</script>"}, 400, "invalid_request"),
    ("/v1/keys", {"scheme": "ed25519", "label": ""}, 400, "invalid_request"),
    ("/v1/keys/{key}/sign", {"message": "0x00"}, 400, "malformed_hex"),
    ("/v1/keys/{key}/sign", {"message": ""}, 400, "bad_length"),
    ("/v1/keys/{key}/sign", {"message": "00", "path": "m" + "/0" * 255}, 400, "invalid_request"),
    ("/v1/keys/{key}/sign", {"message": "00", "taproot_tweak": "yes"}, 400, "invalid_request"),
]


@pytest.mark.parametrize(("path", "body", "status", "code"), LOOSE)
async def test_loose_input_is_refused(
    api: Api, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    client, c = api
    key = (await client.post("/v1/keys", json={"scheme": "ed25519", "label": "ok (1)"})).json()
    before = c.gateway.store.count_keys()
    expect_error(await client.post(path.replace("{key}", key["key_id"]), json=body), status, code)
    assert c.gateway.store.count_keys() == before


async def test_international_labels_are_kept(api: Api) -> None:
    client, _ = api
    r = await client.post("/v1/keys", json={"scheme": "ed25519", "label": "Trésor-été 2026"})
    assert r.status_code == 201 and r.json()["label"] == "Trésor-été 2026"


# -- item 10: one envelope, stable codes, no internals ---------------------------------------------
RAW = [
    (b'{"scheme": "ed25519", "label": "\xff"}', "invalid_json"),
    (b'{"scheme": "ed25519", "count": ' + b"1" * 5000 + b"}", "invalid_json"),
    (b'{"scheme": "ed25519", "x": ' + b"[" * 40 + b"]" * 40 + b"}", "invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    (b'{"scheme": "ed25519", "scheme": "bip340"}', "invalid_json"),
    (b'{"scheme": "ed25519", "count": NaN}', "invalid_json"),
    (b'{"scheme": ', "invalid_json"),
]


@pytest.mark.parametrize(("body", "code"), RAW)
async def test_bad_json_in_the_envelope(api: Api, body: bytes, code: str) -> None:
    client, c = api
    r = await client.post("/v1/keys", content=body, headers={"content-type": "application/json"})
    expect_error(r, 400, code)
    assert c.gateway.store.count_keys() == 0


async def test_envelope_everywhere(api: Api) -> None:
    client, _ = api
    expect_error(await client.get("/v1/nothing"), 404, "not_found")
    expect_error(await client.delete("/v1/keys"), 405, "method_not_allowed")
    r = await client.post("/v1/keys", content=b"scheme=ed25519")
    expect_error(r, 415, "unsupported_media_type")
    key = (await client.post("/v1/keys", json={"scheme": "dise"})).json()["key_id"]
    body = {"alpha": "zz" * 32, "encryptor": "me", "purpose": "encrypt"}
    err = expect_error(
        await client.post(f"/v1/keys/{key}/evaluate", json=body), 400, "invalid_request"
    )
    assert "ValueError" not in json.dumps(err) and "non-hexadecimal" not in json.dumps(err)


async def test_unexpected_errors_are_internal(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    client, c = api

    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("secret detail /var/lib/tholos")

    monkeypatch.setattr(c.gateway.store, "page_keys", boom)
    err = expect_error(await client.get("/v1/keys"), 500, "internal")
    assert "secret" not in json.dumps(err) and "RuntimeError" not in json.dumps(err)


# -- item 11: governance garbage in a development cluster ------------------------------------------
GARBAGE = [
    ("/v1/governance/proposals", {"document": {}}, 400, "invalid_request"),
    ("/v1/governance/documents", {"document": {}}, 400, "invalid_request"),
    ("/v1/governance/documents", {"document": {"a": 1}, "signatures": []}, 400, "invalid_request"),
    ("/v1/killswitch", {}, 400, "invalid_request"),
    ("/v1/killswitch", {"junk": True}, 400, "invalid_request"),
    (
        "/v1/audit/nodes",
        {"user": "x", "issued_at": "now", "signature": "zz"},
        400,
        "invalid_request",
    ),
    ("/v1/audit/nodes", {}, 400, "invalid_request"),
]


@pytest.mark.parametrize(("path", "body", "status", "code"), GARBAGE)
async def test_governance_garbage(
    api: Api, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    client, _c = api
    expect_error(await client.post(path, json=body), status, code)
    assert (await client.get("/v1/governance/proposals")).json()["proposals"] == []


async def test_well_formed_governance_in_a_development_cluster(api: Api) -> None:
    """A document that parses still changes nothing where there is no governance: 409."""
    from tests.governance.conftest import Cluster as People

    client, _ = api
    signed = People().genesis()
    body = json.loads(signed.model_dump_json())
    expect_error(await client.post("/v1/governance/documents", json=body), 409, "not_governed")
    r = await client.post("/v1/governance/proposals", json={"document": body["document"]})
    expect_error(r, 409, "not_governed")
    assert (await client.get("/v1/governance/proposals")).json()["proposals"] == []


# -- item 12: the OpenAPI document --------------------------------------------------------------
async def test_openapi_is_checked_in(api: Api) -> None:
    client, _ = api
    live = (await client.get("/openapi.json")).json()
    assert openapi.SPEC_FILE.exists(), "run `make openapi`"
    checked_in = json.loads(openapi.SPEC_FILE.read_text())
    assert live == checked_in, "docs/openapi.json is stale: run `make openapi`"


async def test_openapi_describes_errors_and_refs_resolve(api: Api) -> None:
    client, _ = api
    spec = (await client.get("/openapi.json")).json()
    text = json.dumps(spec)
    assert "#/$defs/" not in text
    schemas = spec["components"]["schemas"]
    for ref in {r.split("/")[-1] for r in _refs(spec)}:
        assert ref in schemas, ref
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"400", "403", "413", "422", "429", "500"} <= codes, (method, path)
            for code in codes - {"200", "201"}:  # every error is the one envelope
                ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorEnvelope"), (method, path, code)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if "$ref" in node else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_pem_helper_roundtrip() -> None:
    from cryptography import x509

    ca = CertificateAuthority.create()
    pem = ca.issue("x", server=False, client=True).cert_pem
    assert x509_pem(x509.load_pem_x509_certificate(pem)) == pem.decode()
