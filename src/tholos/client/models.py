"""Typed models of the gateway's REST API: request bodies (their fields are checked against the
schemas of docs/openapi.json by tests/client) and the answers the SDK parses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scheme = Literal["bip340", "ed25519", "secp256k1", "ecdsa", "bls12381", "dise"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Answer(BaseModel):
    """Answers may grow fields: unknown ones are kept, never an error."""

    model_config = ConfigDict(extra="allow")


# -- request bodies (spec schema of the same name) ---------------------------------------------------
class CreateKey(_Request):
    scheme: Scheme
    label: str | None = None
    count: int = 1


class SignBody(_Request):
    message: str
    path: str = ""
    taproot_tweak: bool = False
    merkle_root: str | None = None


class BatchItem(SignBody):
    key_id: str


class BatchSign(_Request):
    requests: list[BatchItem]


class CreateToken(_Request):
    identity: str | None = None
    ttl: int = 86400


# -- answers ----------------------------------------------------------------------------------------
class Key(_Answer):
    key_id: str
    scheme: str
    public_key: str
    label: str | None = None
    imported: bool = False
    threshold: int
    participants: list[int]
    created: float
    disabled: bool = False
    tags: list[str] = Field(default_factory=list)


class KeyPage(_Answer):
    keys: list[Key]
    total: int
    limit: int
    offset: int
    next_offset: int | None = None


class Signature(_Answer):
    request_id: str | None = None
    key_id: str
    signature: str
    public_key: str
    excluded: dict[str, Any] = Field(default_factory=dict)
    recovery_id: int | None = None


class Health(_Answer):
    ok: bool
    nodes_up: int
    nodes: int
    threshold: int


class VaultToken(_Answer):
    token: str
    accessor: str
    identity: str
    created: float
    expires: float


class SigningRequestState(_Answer):
    """A governed signing request as the gateway shows it (GET /v1/signing-requests/{id})."""

    request_id: str
    status: str
    digest: str
    intent: dict[str, Any]
    approvals: list[str]
    signers: list[int] = Field(default_factory=list)
    signature: str | None = None
    public_key: str | None = None
    error: str | None = None


class ErrorBody(_Answer):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    CreateKey,
    SignBody,
    BatchItem,
    BatchSign,
    CreateToken,
)
