"""Vault tokens: bearer tokens (`X-Vault-Token`) issued to named API identities, with expiry.

Only the SHA-256 of a token is stored (tokens are 32 random bytes, so a fast hash is enough: no
dictionary to guess from); each token has an accessor (a random public name) by which it is
listed and revoked. REST, admin only: `POST /v1/vault/tokens {"identity"?, "ttl"?}` ->
`{"token", "accessor", "identity", "expires"}` (the only time the token is shown),
`GET /v1/vault/tokens`, `DELETE /v1/vault/tokens/{accessor}`."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tholos.gateway.database import Database
from tholos.gateway.errors import GatewayError
from tholos.gateway.identities import ApiClient, ApiClients

TOKEN_PREFIX = "tvt."
MAX_TTL = 366 * 86400
DEFAULT_TTL = 86400
ACCESSOR = re.compile(r"^[0-9a-f]{24}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    accessor: str
    identity: str
    created: float
    expires: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "accessor": self.accessor,
            "identity": self.identity,
            "created": self.created,
            "expires": self.expires,
        }


class TokenStore:
    """Tokens in the gateway's database (table `vault_tokens`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, identity: str, ttl: float) -> tuple[str, TokenInfo]:
        """A new token for `identity` valid for `ttl` seconds: (token, its public record)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        info = TokenInfo(secrets.token_hex(12), identity, now, now + ttl)
        with self.db:
            self.db.execute(
                "INSERT INTO vault_tokens VALUES (?,?,?,?,?)",
                (info.accessor, token_hash(token), identity, info.created, info.expires),
            )
        return token, info

    def lookup(self, token: str, now: float | None = None) -> TokenInfo | None:
        """The live token's record; None if unknown, revoked or expired."""
        row = self.db.execute(
            "SELECT accessor, identity, created, expires FROM vault_tokens WHERE token_hash = ?",
            (token_hash(token),),
        ).fetchone()
        if row is None or row[3] <= (time.time() if now is None else now):
            return None
        return TokenInfo(row[0], row[1], row[2], row[3])

    def revoke(self, accessor: str) -> bool:
        with self.db:
            cur = self.db.execute("DELETE FROM vault_tokens WHERE accessor = ?", (accessor,))
        return cur.rowcount > 0

    def list(self) -> list[TokenInfo]:
        rows = self.db.execute(
            "SELECT accessor, identity, created, expires FROM vault_tokens ORDER BY created"
        ).fetchall()
        return [TokenInfo(*r) for r in rows]


def tokens_of(gw: Any) -> TokenStore:
    """The gateway's token store, made on first use."""
    store: TokenStore | None = getattr(gw, "vault_tokens", None)
    if store is None:
        store = TokenStore(gw.store.db)
        gw.vault_tokens = store
    return store


def identity_client(clients: ApiClients, name: str) -> ApiClient | None:
    """The API client called `name` (open-access gateways: only "anonymous", an admin)."""
    if clients.open_access:
        return clients.identify({}) if name == "anonymous" else None
    for c in clients.by_fingerprint.values():
        if c.name == name:
            return c
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateToken(_Strict):
    identity: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="API client the token acts as (default: the caller)",
    )
    ttl: int = Field(
        default=DEFAULT_TTL, ge=1, le=MAX_TTL, description="seconds until the token expires"
    )


router = APIRouter()


@router.post("/v1/vault/tokens", status_code=201)
async def create_token(body: CreateToken, request: Request) -> dict[str, Any]:
    """A Vault token for an API identity; the token is shown once and only its hash is kept."""
    clients: ApiClients = request.app.state.api_clients
    name = body.identity or request.scope["state"]["api_client"].name
    if identity_client(clients, name) is None:
        raise GatewayError(404, "unknown_identity", f"no API client called {name[:200]!r}")
    token, info = tokens_of(request.app.state.gateway).create(name, body.ttl)
    return {"token": token, **info.to_dict()}


@router.get("/v1/vault/tokens")
async def list_tokens(request: Request) -> dict[str, Any]:
    """Every token's accessor, identity and expiry (never the token)."""
    now = time.time()
    rows = tokens_of(request.app.state.gateway).list()
    return {"tokens": [{**t.to_dict(), "expired": t.expires <= now} for t in rows]}


@router.delete("/v1/vault/tokens/{accessor}")
async def revoke_token(
    accessor: Annotated[str, Field(max_length=64)], request: Request
) -> dict[str, Any]:
    if not ACCESSOR.match(accessor) or not tokens_of(request.app.state.gateway).revoke(accessor):
        raise GatewayError(404, "unknown_token", f"no token with accessor {accessor[:64]!r}")
    return {"accessor": accessor, "revoked": True}
