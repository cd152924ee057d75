"""The gateway's one error: an HTTP status, a stable code and a message (the API's envelope)."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.status = status
        self.code = code
        self.extra = extra
        super().__init__(message)
