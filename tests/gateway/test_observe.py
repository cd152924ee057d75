"""The gateway's request ids and /metrics over an in-memory cluster: the counters move by what
was done, read-only clients may scrape, unknown certificates may not, bad ids are replaced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import Cluster
from tests.gateway.test_http_api import WithCert
from tholos.gateway.api import create_app
from tholos.gateway.identities import ApiClients, fingerprint_pem
from tholos.transport.pki import CertificateAuthority

pytestmark = pytest.mark.asyncio
SIGN = "/v1/keys/{key_id}/sign"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample; 0 when absent (a counter not yet incremented)."""
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


@pytest_asyncio.fixture
async def as_(tmp_path: Path) -> AsyncIterator[Any]:
    ca = CertificateAuthority.create()
    pems = {
        n: ca.issue(n, server=False, client=True).cert_pem.decode()
        for n in ("reader", "signer", "stranger")
    }
    config = {
        "reader": {"fingerprint": fingerprint_pem(pems["reader"]), "role": "read-only"},
        "signer": {"fingerprint": fingerprint_pem(pems["signer"]), "role": "admin"},
    }
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway, ApiClients.from_config(config, {}))

    def client(name: str) -> httpx.AsyncClient:
        t = httpx.ASGITransport(app=WithCert(app, pems[name]))
        return httpx.AsyncClient(transport=t, base_url="http://gw")

    async with app.router.lifespan_context(app):
        yield client


async def test_sign_counts_by_route_scheme_and_outcome(as_: Any) -> None:
    async with as_("signer") as s, as_("reader") as rd:
        key = (await s.post("/v1/keys", json={"scheme": "ed25519"})).json()
        before = (await rd.get("/metrics")).text
        for i in range(3):
            r = await s.post(f"/v1/keys/{key['key_id']}/sign", json={"message": f"0{i}"})
            assert r.status_code == 200, r.text
        r = await s.post(f"/v1/keys/{key['key_id']}/sign", json={"message": "zz"})
        assert r.status_code == 400
        r = await s.post(f"/v1/keys/{'0' * 32}/sign", json={"message": "00"})
        assert r.status_code == 404
        after_r = await rd.get("/metrics")
        assert after_r.status_code == 200 and after_r.headers["content-type"].startswith(
            "text/plain"
        )
        after = after_r.text

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    ok = {"route": SIGN, "scheme": "ed25519", "outcome": "ok"}
    assert moved("tholos_gateway_requests_total", method="POST", **ok) == 3
    assert moved("tholos_gateway_request_seconds_count", **ok) == 3
    assert (
        moved("tholos_gateway_requests_total", route=SIGN, scheme="ed25519", outcome="refused") == 1
    )
    assert moved("tholos_gateway_requests_total", route=SIGN, scheme="none", outcome="refused") == 1
    assert sample(after, "tholos_gateway_nodes", state="up") == 4
    assert sample(after, "tholos_gateway_node_state", node="3", state="up") == 1
    group = "FROST-ED25519-SHA512-v1"
    assert sample(after, "tholos_gateway_commitment_pool", node="1", group=group) > 0
    assert "tholos_gateway_presignatures 0.0" in after
    assert 'tholos_node_stale_keys{node="2"} 0.0' in after


async def test_request_id_given_echoed_bad_replaced(as_: Any) -> None:
    async with as_("reader") as rd:
        r = await rd.get("/v1/health", headers={"X-Request-Id": "trace-42.a"})
        assert r.headers["x-request-id"] == "trace-42.a"
        made = (await rd.get("/v1/health")).headers["x-request-id"]
        assert len(made) == 32 and made != (await rd.get("/v1/health")).headers["x-request-id"]
        bad = await rd.get("/v1/health", headers={"X-Request-Id": "x" * 65})
        assert len(bad.headers["x-request-id"]) == 32
        assert bad.headers.get_list("x-request-id") == [bad.headers["x-request-id"]]


async def test_metrics_refused_to_unknown_certificates(as_: Any) -> None:
    async with as_("stranger") as st:
        r = await st.get("/metrics")
        assert r.status_code == 403 and r.json()["error"]["code"] == "unknown_client"
        assert "x-request-id" in r.headers  # refusals are traceable too
