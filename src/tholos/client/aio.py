"""The asynchronous client: the same typed methods as `Client`, awaited; `iter_keys` is an async
iterator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.client.models import (
    CreateKey,
    CreateToken,
    Health,
    Key,
    KeyPage,
    Signature,
    SigningRequestState,
    VaultToken,
)
from tholos.client.retry import RETRY_STATUSES, RetryPolicy, new_idempotency_key
from tholos.client.sync import checked_request, parse
from tholos.governance import SigningRequest, approve
from tholos.governance.rejections import reject
from tholos.transport.tls import TlsFiles, client_ssl_context


class AsyncClient:
    def __init__(
        self,
        base_url: str,
        tls: TlsFiles | None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        verify: Any = client_ssl_context(tls) if tls is not None else True
        self.http = httpx.AsyncClient(
            base_url=base_url, verify=verify, timeout=timeout, transport=transport
        )
        self.retry = retry or RetryPolicy()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _do(
        self, method: str, path: str, idempotency_key: str | None = None, **kw: Any
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        retriable = method != "POST" or idempotency_key is not None
        attempts = self.retry.attempts if retriable else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                r = await self.http.request(method, path, headers=headers, **kw)
            except httpx.TransportError:
                if last:
                    raise
                await asyncio.sleep(self.retry.wait(attempt, None))
                continue
            if r.status_code in RETRY_STATUSES and not last:
                await asyncio.sleep(self.retry.wait(attempt, r.headers.get("retry-after")))
                continue
            return parse(r)
        raise AssertionError("unreachable")

    async def get(self, url: str, params: dict[str, Any] | None = None) -> Any:
        return await self._do("GET", url, params=params)

    async def post(
        self, path: str, body: dict[str, Any] | None = None, idempotency_key: str | None = None
    ) -> Any:
        return await self._do("POST", path, idempotency_key, json=body or {})

    async def delete(self, path: str) -> Any:
        return await self._do("DELETE", path)

    async def health(self) -> Health:
        return Health.model_validate(await self.get("/v1/health"))

    async def create_key(self, scheme: str, label: str | None = None) -> Key:
        body = CreateKey.model_validate({"scheme": scheme, "label": label})
        out = await self.post("/v1/keys", body.model_dump(exclude_none=True), new_idempotency_key())
        return Key.model_validate(out)

    async def key(self, key_id: str) -> Key:
        return Key.model_validate(await self.get(f"/v1/keys/{key_id}"))

    async def keys_page(self, limit: int = 100, offset: int = 0, **filters: Any) -> KeyPage:
        params = {"limit": limit, "offset": offset, **filters}
        return KeyPage.model_validate(await self.get("/v1/keys", params))

    async def iter_keys(self, page_size: int = 100, **filters: Any) -> AsyncIterator[Key]:
        offset: int | None = 0
        while offset is not None:
            page = await self.keys_page(page_size, offset, **filters)
            for k in page.keys:
                yield k
            offset = page.next_offset

    async def sign(self, key_id: str, message: bytes, path: str = "", **options: Any) -> Signature:
        body = {"message": message.hex(), **({"path": path} if path else {}), **options}
        out = await self.post(f"/v1/keys/{key_id}/sign", body, new_idempotency_key())
        return Signature.model_validate(out)

    async def signing_request(self, request_id: str) -> SigningRequestState:
        out = await self.get(f"/v1/signing-requests/{request_id}")
        return SigningRequestState.model_validate(out)

    async def _signed_request(self, request_id: str) -> SigningRequest:
        shown = await self.get(f"/v1/signing-requests/{request_id}")
        return checked_request(shown, await self.get(f"/v1/signing-requests/{request_id}/raw"))

    async def approve_request(
        self, request_id: str, approver: str, key: Ed25519PrivateKey
    ) -> SigningRequestState:
        """Approve a governed request with the approver's own key (signed here)."""
        approval = approve(await self._signed_request(request_id), approver, key)
        body = {"approval": approval.model_dump(mode="json")}
        out = await self.post(f"/v1/signing-requests/{request_id}/approvals", body)
        return SigningRequestState.model_validate(out)

    async def reject_request(
        self, request_id: str, approver: str, key: Ed25519PrivateKey
    ) -> SigningRequestState:
        """Reject a governed request for good with the approver's own key (signed here)."""
        rejection = reject(await self._signed_request(request_id), approver, key)
        body = {"rejection": rejection.model_dump(mode="json")}
        out = await self.post(f"/v1/signing-requests/{request_id}/reject", body)
        return SigningRequestState.model_validate(out)

    async def create_vault_token(self, identity: str | None = None, ttl: int = 86400) -> VaultToken:
        body = CreateToken(identity=identity, ttl=ttl).model_dump(exclude_none=True)
        return VaultToken.model_validate(await self.post("/v1/vault/tokens", body))
