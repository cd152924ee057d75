"""The tholos SDK: typed sync (`Client`) and async (`AsyncClient`) clients of the gateway's REST
API (httpx; mutual TLS with the cluster CA), with retries that carry idempotency keys, paging
iterators and errors as exceptions with the server's code. The CLI is built on `Client`."""

from tholos.client.aio import AsyncClient
from tholos.client.errors import ApiError, Forbidden, NotFound, RateLimited, Unavailable
from tholos.client.models import Health, Key, KeyPage, Signature, SigningRequestState, VaultToken
from tholos.client.retry import RetryPolicy
from tholos.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "Forbidden",
    "Health",
    "Key",
    "KeyPage",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "Signature",
    "SigningRequestState",
    "Unavailable",
    "VaultToken",
]
