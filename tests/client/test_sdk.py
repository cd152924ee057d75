"""The SDK (tholos.client) against a real gateway app over an in-memory cluster: models checked
against docs/openapi.json and against live answers, retries that reuse one idempotency key (a
lost answer is replayed, not a second key made), paging iterators, errors with the server's code."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from nacl.signing import VerifyKey

from tests.gateway.conftest import Cluster
from tholos.client import AsyncClient, Client, Key, NotFound, RetryPolicy, Signature
from tholos.client.models import REQUEST_MODELS, Health, KeyPage
from tholos.cluster.layout import free_port
from tholos.gateway import openapi
from tholos.gateway.api import create_app

SPEC = json.loads(openapi.SPEC_FILE.read_text())["components"]["schemas"]


@pytest.mark.parametrize("model", REQUEST_MODELS, ids=lambda m: m.__name__)
def test_request_models_match_the_spec(model: Any) -> None:
    schema = SPEC[model.__name__]
    assert set(model.model_fields) == set(schema["properties"])
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    assert required == set(schema.get("required", []))


def test_error_model_matches_the_spec() -> None:
    from tholos.client.models import ErrorBody

    assert set(ErrorBody.model_fields) == set(SPEC["ErrorBody"]["properties"])


@pytest_asyncio.fixture
async def sdk(tmp_path: Path) -> AsyncIterator[tuple[AsyncClient, Cluster]]:
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        client = AsyncClient("http://gw", None, transport=transport)
        yield client, c
        await client.aclose()


@pytest.mark.asyncio
async def test_answer_models_match_live_answers(sdk: tuple[AsyncClient, Cluster]) -> None:
    client, _ = sdk
    raw = await client.post("/v1/keys", {"scheme": "ed25519"})
    assert set(raw) == set(Key.model_fields)
    page = await client.get("/v1/keys")
    assert set(page) == set(KeyPage.model_fields)
    signed = await client.post(f"/v1/keys/{raw['key_id']}/sign", {"message": "00"})
    assert set(Signature.model_fields) - {"recovery_id"} <= set(signed)
    assert set(signed) - set(Signature.model_fields) == {"signers"}
    assert set(await client.get("/v1/health")) == set(Health.model_fields)


@pytest.mark.asyncio
async def test_typed_calls_paging_and_errors(sdk: tuple[AsyncClient, Cluster]) -> None:
    client, _ = sdk
    await client.post("/v1/keys", {"scheme": "ed25519", "count": 5})
    keys = [k async for k in client.iter_keys(page_size=2)]
    assert len(keys) == 5 and len({k.key_id for k in keys}) == 5
    assert [k.created for k in keys] == sorted(k.created for k in keys)
    sig = await client.sign(keys[0].key_id, b"hello")
    VerifyKey(bytes.fromhex(sig.public_key)).verify(b"hello", bytes.fromhex(sig.signature))
    with pytest.raises(NotFound) as exc:
        await client.key("0" * 32)
    assert exc.value.code == "unknown_key" and exc.value.status == 404


@pytest.mark.asyncio
async def test_idempotency_key_replays_the_first_answer(sdk: tuple[AsyncClient, Cluster]) -> None:
    client, c = sdk
    h = {"Idempotency-Key": "create-1"}
    first = await client.http.post("/v1/keys", json={"scheme": "ed25519"}, headers=h)
    again = await client.http.post("/v1/keys", json={"scheme": "ed25519"}, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert c.gateway.store.count_keys() == 1
    other = await client.http.post("/v1/keys", json={"scheme": "bip340"}, headers=h)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    kid = first.json()["key_id"]
    s = {"Idempotency-Key": "sign-1"}
    a = await client.http.post(f"/v1/keys/{kid}/sign", json={"message": "00"}, headers=s)
    b = await client.http.post(f"/v1/keys/{kid}/sign", json={"message": "00"}, headers=s)
    assert a.json()["signature"] == b.json()["signature"]  # FROST is randomised: a replay
    fresh = await client.http.post(f"/v1/keys/{kid}/sign", json={"message": "00"})
    assert fresh.json()["signature"] != a.json()["signature"]
    bad = await client.http.post(
        "/v1/keys", json={"scheme": "ed25519"}, headers={"Idempotency-Key": "two words"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_idempotency_key"
    refused = await client.http.post(
        "/v1/keys", json={"scheme": "rsa"}, headers={"Idempotency-Key": "k2"}
    )
    assert refused.status_code == 400
    replay = await client.http.post(
        "/v1/keys", json={"scheme": "rsa"}, headers={"Idempotency-Key": "k2"}
    )
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json() == refused.json()


class LoseFirstAnswer(httpx.HTTPTransport):
    """A real HTTP transport whose first POST reaches the server but whose answer is lost."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0
        self.keys_sent: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST":
            self.keys_sent.append(request.headers.get("idempotency-key"))
            if self.lost == 0:
                self.lost += 1
                response.read()
                raise httpx.ReadError("connection reset (test)", request=request)
        return response


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Cluster]]:
    """The gateway app on a real socket (uvicorn in a thread) over an in-memory cluster."""
    c = Cluster(tmp_path, 4, 2)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(lambda: c.gateway), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", c
    server.should_exit = True
    thread.join(timeout=30)


def test_sync_retry_reuses_the_idempotency_key(served: tuple[str, Cluster]) -> None:
    url, c = served
    transport = LoseFirstAnswer()
    with Client(url, None, retry=RetryPolicy(attempts=3, backoff=0.01), transport=transport) as sdk:
        key = sdk.create_key("ed25519", label="retried")
        assert key.label == "retried"
        assert len(transport.keys_sent) == 2 and transport.keys_sent[0] == transport.keys_sent[1]
        assert c.gateway.store.count_keys() == 1  # the retry got the first answer, not a 2nd DKG
        assert [k.key_id for k in sdk.iter_keys(page_size=1)] == [key.key_id]
        assert sdk.health().ok


def test_sync_post_without_idempotency_key_is_not_retried(served: tuple[str, Cluster]) -> None:
    url, _ = served
    transport = LoseFirstAnswer()
    with Client(url, None, retry=RetryPolicy(attempts=3, backoff=0.01), transport=transport) as sdk:
        with pytest.raises(httpx.ReadError):
            sdk.post("/v1/keys", {"scheme": "ed25519"})
        assert transport.keys_sent == [None]


def test_async_client_in_its_own_loop(served: tuple[str, Cluster]) -> None:
    url, _ = served

    async def run() -> list[str]:
        async with AsyncClient(url, None) as sdk:
            made = await sdk.create_key("bip340")
            return [k.key_id async for k in sdk.iter_keys()] + [made.key_id]

    ids = asyncio.run(run())
    assert ids[0] == ids[1]
