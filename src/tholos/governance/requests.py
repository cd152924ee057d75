"""Signing requests (intent + payload) and the approvals users sign over their digest.

The request digest is SHA-256("tholos/request/v1" || 0 || canonical(request without its
initiator signature, payload replaced by its SHA-256)). It covers the cluster, request id, key and
path, the BIP341 taproot tweak (when asked for), chain/asset/destination/amount/memo, expiry and
payload hash, so an approval cannot be moved to another request, key, tweak, payload or cluster.
Approvers sign "tholos/approval/v1" || digest; the initiator signs "tholos/initiation/v1" || digest,
and "tholos/cancel/v1" || digest to withdraw a request not signed yet.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AfterValidator, Field, model_validator

from tholos.governance import _keys
from tholos.governance._canonical import encode_checked, tagged_digest
from tholos.governance._model import FORMAT_VERSION, Hex32, Hex64, Model, Name, UnixTime

REQUEST_TAG = b"tholos/request/v1"
APPROVAL_TAG = b"tholos/approval/v1"
INITIATION_TAG = b"tholos/initiation/v1"
CANCEL_TAG = b"tholos/cancel/v1"

_PATH_RE = re.compile(r"^m(/[0-9]{1,10})*$")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def _path(value: str) -> str:
    if not _PATH_RE.fullmatch(value) or any(int(p) >= 2**31 for p in value.split("/")[1:]):
        raise ValueError("derivation path: m/i/j/... with non-hardened indices")
    return value


def _request_id(value: str) -> str:
    if not _REQUEST_ID_RE.fullmatch(value):
        raise ValueError("request id: 8..64 characters of [A-Za-z0-9_-]")
    return value


RequestId = Annotated[
    str, AfterValidator(_request_id), Field(json_schema_extra={"pattern": _REQUEST_ID_RE.pattern})
]


Asset = Annotated[str, Field(min_length=1, max_length=128)]
Address = Annotated[str, Field(min_length=1, max_length=256)]
BaseUnits = Annotated[int, Field(ge=0, lt=2**256)]
Action = Literal["transfer", "approve", "transfer_from", "permit", "contract_creation"]


class TransferIntent(Model):
    """One movement of value a chain transaction makes or authorises (tholos.chains.Transfer)."""

    asset: Asset
    to: Address
    amount: BaseUnits
    action: Action = "transfer"
    source: Annotated[str, Field(max_length=256)] = ""


class CallIntent(Model):
    """Calldata or an instruction not decoded into a transfer (tholos.chains.ContractCall)."""

    contract: Address
    selector: Annotated[str, Field(pattern=r"^(0x[0-9a-f]{8})?$")] = ""
    value: BaseUnits = 0


class TransactionIntent(Model):
    """The intent of a chain transaction as the initiator's client derived it from the payload.

    Every node derives it again from the payload with its own chain package and refuses the
    request, naming the field, on any difference: what approvers signed is what gets signed.
    """

    network: Annotated[str, Field(min_length=1, max_length=64)]
    address_type: Annotated[str, Field(min_length=1, max_length=32)]
    kind: Literal["transaction", "typed_data", "message", "proof_of_control"]
    transfers: tuple[TransferIntent, ...] = ()
    change: tuple[TransferIntent, ...] = ()
    fee: BaseUnits = 0
    fee_asset: Annotated[str, Field(max_length=128)] = ""
    calls: tuple[CallIntent, ...] = ()
    details: dict[Annotated[str, Field(max_length=64)], str | int] = Field(default_factory=dict)


class Intent(Model):
    """What the initiator asks for and the approvers approve, in the node's own terms.

    A plain request names one `asset`/`destination`/`amount` bound to a raw payload. A chain
    transaction instead carries `transaction` (every transfer, fee, change, call), and then
    `asset` and `destination` are empty and `amount` 0: the transfers say it all.
    """

    request_id: RequestId
    initiator: Name
    key_id: Name
    derivation_path: Annotated[
        str, AfterValidator(_path), Field(json_schema_extra={"pattern": _PATH_RE.pattern})
    ] = "m"
    chain: Annotated[str, Field(min_length=1, max_length=64)]
    asset: Annotated[str, Field(max_length=64)] = ""
    destination: Annotated[str, Field(max_length=256)] = ""
    amount: Annotated[int, Field(ge=0, lt=2**256)] = 0
    memo: Annotated[str, Field(max_length=512)] = ""
    created_at: UnixTime
    expires_at: UnixTime
    taproot: bool = False
    """Sign under the BIP341 output key (bip340 keys): the key-path tweak of `merkle_root`."""
    merkle_root: Hex32 | None = None
    OMIT_WHEN_NONE = frozenset({"transaction"})  # plain requests keep their digests
    transaction: TransactionIntent | None = None
    """Set for chain transactions (payload = the unsigned transaction); see the class docstring."""

    @model_validator(mode="after")
    def _check(self) -> Intent:
        if self.transaction is None and not (self.asset and self.destination):
            raise ValueError("asset and destination are required (or a transaction intent)")
        if self.transaction is not None and (self.asset or self.destination or self.amount):
            raise ValueError(
                "a transaction intent carries its transfers: no asset/destination/amount"
            )
        if self.transaction is not None and (self.taproot or self.merkle_root):
            raise ValueError("a transaction intent derives its own signing keys: no taproot flag")
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at must be after created_at")
        if self.merkle_root is not None and not self.taproot:
            raise ValueError("a merkle root needs the taproot tweak")
        return self


class SigningRequest(Model):
    """An intent and the opaque payload to sign, as the gateway forwards it to every node."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["signing_request"] = "signing_request"
    cluster_id: Name
    intent: Intent
    payload: Annotated[str, Field(pattern=r"^([0-9a-f]{2})*$", max_length=2 * 1024 * 1024)]
    initiator_signature: Hex64

    def payload_bytes(self) -> bytes:
        return bytes.fromhex(self.payload)

    def digest(self) -> bytes:
        """The digest initiator and approvers sign (see module docstring)."""
        return request_digest(self.cluster_id, self.intent, self.payload_bytes())


def request_digest(cluster_id: str, intent: Intent, payload: bytes) -> bytes:
    """Digest of a request from its parts (used by clients before the request exists)."""
    fields = intent.model_dump(mode="json")
    if not intent.taproot:  # absent when unused: digests of untweaked requests are unchanged
        del fields["taproot"], fields["merkle_root"]
    body = {
        "format": FORMAT_VERSION,
        "kind": "signing_request",
        "cluster_id": cluster_id,
        "intent": fields,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    return tagged_digest(REQUEST_TAG, encode_checked(body))  # strict model: ints, str keys


class Approval(Model):
    """One approver's signature over a request digest."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["approval"] = "approval"
    request_id: RequestId
    approver: Name
    digest: Hex32
    signature: Hex64

    def signing_message(self) -> bytes:
        return APPROVAL_TAG + bytes.fromhex(self.digest)


def new_request(
    cluster_id: str, intent: Intent, payload: bytes, initiator_key: Ed25519PrivateKey
) -> SigningRequest:
    """Build and sign a request as the initiator's client does."""
    digest = request_digest(cluster_id, intent, payload)
    return SigningRequest(
        cluster_id=cluster_id,
        intent=intent,
        payload=payload.hex(),
        initiator_signature=_keys.sign(initiator_key, INITIATION_TAG + digest),
    )


def approve(request: SigningRequest, approver: str, key: Ed25519PrivateKey) -> Approval:
    """An approver's signature over a request, as the approver's own device makes it."""
    digest = request.digest()
    return Approval(
        request_id=request.intent.request_id,
        approver=approver,
        digest=digest.hex(),
        signature=_keys.sign(key, APPROVAL_TAG + digest),
    )


def sign_cancellation(request: SigningRequest, key: Ed25519PrivateKey) -> str:
    """The initiator's signature withdrawing its own request (hex), checked by the gateway."""
    return _keys.sign(key, CANCEL_TAG + request.digest())
