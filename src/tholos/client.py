"""A small synchronous REST client for the CLI (httpx; mutual TLS with the cluster CA)."""

from __future__ import annotations

from typing import Any

import httpx

from tholos.transport.tls import TlsFiles, client_ssl_context


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        err = body.get("error", body)
        super().__init__(
            f"HTTP {status}: {err.get('message', err) if isinstance(err, dict) else err}"
        )


class Client:
    def __init__(self, base_url: str, tls: TlsFiles | None, timeout: float = 60.0) -> None:
        verify: Any = client_ssl_context(tls) if tls is not None else True
        self.http = httpx.Client(base_url=base_url, verify=verify, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _do(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        try:
            body = r.json()
        except ValueError:
            body = {"error": {"code": "bad_response", "message": r.text[:200]}}
        if r.status_code >= 400:
            raise ApiError(r.status_code, body)
        return body

    def get(self, url: str, params: dict[str, Any] | None = None) -> Any:
        return self._do("GET", url, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._do("POST", path, json=body or {})

    def delete(self, path: str) -> Any:
        return self._do("DELETE", path)
