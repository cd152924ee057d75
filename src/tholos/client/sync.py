"""The synchronous client (also the CLI's): raw `get`/`post`/`delete` returning JSON, and typed
methods returning models."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.client.errors import error_for
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
from tholos.governance import SigningRequest, approve
from tholos.governance.rejections import reject
from tholos.transport.tls import TlsFiles, client_ssl_context


def checked_request(shown: dict[str, Any], raw: dict[str, Any]) -> SigningRequest:
    """The signed request from /raw, refused unless its digest, computed here, is the one the
    gateway shows: a user signs the digest of what they checked, never the server's word."""
    request = SigningRequest.model_validate_json(json.dumps(raw["request"]))
    if request.digest().hex() != shown["digest"]:
        raise ValueError(
            f"request {shown['request_id']}: the gateway's digest is not the request's; not signed"
        )
    return request


def parse(r: httpx.Response) -> Any:
    try:
        body = r.json()
    except ValueError:
        body = {"error": {"code": "bad_response", "message": r.text[:200]}}
    if r.status_code >= 400:
        raise error_for(r.status_code, body if isinstance(body, dict) else {"error": body})
    return body


class Client:
    def __init__(
        self,
        base_url: str,
        tls: TlsFiles | None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        verify: Any = client_ssl_context(tls) if tls is not None else True
        self.http = httpx.Client(
            base_url=base_url, verify=verify, timeout=timeout, transport=transport
        )
        self.retry = retry or RetryPolicy(attempts=1)  # the CLI: one attempt unless asked

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _do(self, method: str, path: str, idempotency_key: str | None = None, **kw: Any) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        retriable = method != "POST" or idempotency_key is not None
        attempts = self.retry.attempts if retriable else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                r = self.http.request(method, path, headers=headers, **kw)
            except httpx.TransportError:
                if last:
                    raise
                time.sleep(self.retry.wait(attempt, None))
                continue
            if r.status_code in RETRY_STATUSES and not last:
                time.sleep(self.retry.wait(attempt, r.headers.get("retry-after")))
                continue
            return parse(r)
        raise AssertionError("unreachable")

    # -- raw JSON (the CLI) ---------------------------------------------------------------------------
    def get(self, url: str, params: dict[str, Any] | None = None) -> Any:
        return self._do("GET", url, params=params)

    def post(
        self, path: str, body: dict[str, Any] | None = None, idempotency_key: str | None = None
    ) -> Any:
        return self._do("POST", path, idempotency_key, json=body or {})

    def delete(self, path: str) -> Any:
        return self._do("DELETE", path)

    # -- typed ----------------------------------------------------------------------------------------
    def health(self) -> Health:
        return Health.model_validate(self.get("/v1/health"))

    def create_key(self, scheme: str, label: str | None = None) -> Key:
        """One key by DKG; retried under one idempotency key (never two keys for one call)."""
        body = CreateKey.model_validate({"scheme": scheme, "label": label})
        out = self.post("/v1/keys", body.model_dump(exclude_none=True), new_idempotency_key())
        return Key.model_validate(out)

    def key(self, key_id: str) -> Key:
        return Key.model_validate(self.get(f"/v1/keys/{key_id}"))

    def keys_page(self, limit: int = 100, offset: int = 0, **filters: Any) -> KeyPage:
        params = {"limit": limit, "offset": offset, **filters}
        return KeyPage.model_validate(self.get("/v1/keys", params))

    def iter_keys(self, page_size: int = 100, **filters: Any) -> Iterator[Key]:
        """Every key matching `filters`, oldest first, one page at a time."""
        offset: int | None = 0
        while offset is not None:
            page = self.keys_page(page_size, offset, **filters)
            yield from page.keys
            offset = page.next_offset

    def sign(self, key_id: str, message: bytes, path: str = "", **options: Any) -> Signature:
        """Sign `message` (bytes); retried under one idempotency key."""
        body = {"message": message.hex(), **({"path": path} if path else {}), **options}
        out = self.post(f"/v1/keys/{key_id}/sign", body, new_idempotency_key())
        return Signature.model_validate(out)

    def signing_request(self, request_id: str) -> SigningRequestState:
        return SigningRequestState.model_validate(self.get(f"/v1/signing-requests/{request_id}"))

    def _signed_request(self, request_id: str) -> SigningRequest:
        shown = self.get(f"/v1/signing-requests/{request_id}")
        return checked_request(shown, self.get(f"/v1/signing-requests/{request_id}/raw"))

    def approve_request(
        self, request_id: str, approver: str, key: Ed25519PrivateKey
    ) -> SigningRequestState:
        """Approve a governed request with the approver's own key (signed here)."""
        approval = approve(self._signed_request(request_id), approver, key)
        body = {"approval": approval.model_dump(mode="json")}
        out = self.post(f"/v1/signing-requests/{request_id}/approvals", body)
        return SigningRequestState.model_validate(out)

    def reject_request(
        self, request_id: str, approver: str, key: Ed25519PrivateKey
    ) -> SigningRequestState:
        """Reject a governed request for good with the approver's own key (signed here); every
        node checks the rejection and never signs the request after it."""
        rejection = reject(self._signed_request(request_id), approver, key)
        body = {"rejection": rejection.model_dump(mode="json")}
        out = self.post(f"/v1/signing-requests/{request_id}/reject", body)
        return SigningRequestState.model_validate(out)

    def create_vault_token(self, identity: str | None = None, ttl: int = 86400) -> VaultToken:
        body = CreateToken(identity=identity, ttl=ttl).model_dump(exclude_none=True)
        return VaultToken.model_validate(self.post("/v1/vault/tokens", body))
