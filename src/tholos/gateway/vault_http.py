"""Vault's `LIST` method over the gateway's HTTP server: httptools (llhttp) refuses a method it
does not know, so the request line `LIST /v1/transit/... HTTP/1.1` is rewritten, before the
parser sees it, to `GET /v1/transit/...?list=true` (what Vault itself treats as the same call).

Only a chunk that begins a request is looked at (every client that does not pipeline); a LIST
elsewhere, or on another path, still meets the parser's 400."""

from __future__ import annotations

from tholos.gateway.identities import TlsClientProtocol

PREFIX = b"LIST /v1/transit/"


def list_as_get(data: bytes) -> bytes:
    """`LIST target HTTP/x` -> `GET target?list=true HTTP/x` for transit paths; else unchanged."""
    if not data.startswith(PREFIX):
        return data
    end = data.find(b" ", len(b"LIST "))
    if end < 0:
        return data
    target = data[len(b"LIST ") : end]
    target += (b"&" if b"?" in target else b"?") + b"list=true"
    return b"GET " + target + data[end:]


class VaultHttpProtocol(TlsClientProtocol):
    """The gateway's protocol (client certificates in the scope), plus Vault's LIST."""

    _request_starts = True

    def data_received(self, data: bytes) -> None:
        if self._request_starts:
            self._request_starts = False
            data = list_as_get(data)
        super().data_received(data)

    def on_message_complete(self) -> None:
        self._request_starts = True
        super().on_message_complete()
