"""Errors of the SDK: every 4xx/5xx answer of the gateway as an ApiError carrying the server's
code, message and status."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """The gateway refused (`status` 4xx) or failed (5xx); `code` is the server's stable code
    (e.g. unknown_key, forbidden, rate_limited), `body` the whole answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        err = body.get("error", body)
        self.code: str = str(err.get("code", "error")) if isinstance(err, dict) else "error"
        self.message: str = str(err.get("message", err)) if isinstance(err, dict) else str(err)
        super().__init__(f"HTTP {status}: {self.message}")


class NotFound(ApiError):
    """404: an unknown key, wallet, request or route."""


class Forbidden(ApiError):
    """403: not an API client, or the client's role may not call this route."""


class RateLimited(ApiError):
    """429 after the client's retries: `retry_after` seconds, if the server said."""

    @property
    def retry_after(self) -> float | None:
        v = self.body.get("error", {}).get("retry_after")
        return float(v) if v is not None else None


class Unavailable(ApiError):
    """5xx after the client's retries: too few nodes answered."""


def error_for(status: int, body: dict[str, Any]) -> ApiError:
    cls = {403: Forbidden, 404: NotFound, 429: RateLimited}.get(status)
    if cls is None:
        cls = Unavailable if status >= 500 else ApiError
    return cls(status, body)
