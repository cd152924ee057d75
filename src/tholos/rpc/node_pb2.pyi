from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

DESCRIPTOR: _descriptor.FileDescriptor

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoReply(_message.Message):
    __slots__ = (
        "broken_keys",
        "exchange_public_key",
        "fault",
        "identity_public_key",
        "keys",
        "node_id",
        "nonces_available",
        "pending_refresh",
        "protections",
        "shares_unchecked",
        "stale_keys",
        "version",
    )
    class NoncesAvailableEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: str | None = ..., value: int | None = ...) -> None: ...

    class ProtectionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: str | None = ..., value: str | None = ...) -> None: ...

    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NONCES_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    STALE_KEYS_FIELD_NUMBER: _ClassVar[int]
    PENDING_REFRESH_FIELD_NUMBER: _ClassVar[int]
    BROKEN_KEYS_FIELD_NUMBER: _ClassVar[int]
    SHARES_UNCHECKED_FIELD_NUMBER: _ClassVar[int]
    PROTECTIONS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    identity_public_key: bytes
    exchange_public_key: bytes
    nonces_available: _containers.ScalarMap[str, int]
    keys: int
    version: str
    fault: str
    stale_keys: _containers.RepeatedScalarFieldContainer[str]
    pending_refresh: int
    broken_keys: _containers.RepeatedScalarFieldContainer[str]
    shares_unchecked: int
    protections: _containers.ScalarMap[str, str]
    def __init__(
        self,
        node_id: int | None = ...,
        identity_public_key: bytes | None = ...,
        exchange_public_key: bytes | None = ...,
        nonces_available: _Mapping[str, int] | None = ...,
        keys: int | None = ...,
        version: str | None = ...,
        fault: str | None = ...,
        stale_keys: _Iterable[str] | None = ...,
        pending_refresh: int | None = ...,
        broken_keys: _Iterable[str] | None = ...,
        shares_unchecked: int | None = ...,
        protections: _Mapping[str, str] | None = ...,
    ) -> None: ...

class CommitmentsRequest(_message.Message):
    __slots__ = ("count", "group")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    group: str
    count: int
    def __init__(self, group: str | None = ..., count: int | None = ...) -> None: ...

class Commitment(_message.Message):
    __slots__ = ("binding", "hiding", "nonce_id")
    NONCE_ID_FIELD_NUMBER: _ClassVar[int]
    HIDING_FIELD_NUMBER: _ClassVar[int]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    nonce_id: bytes
    hiding: bytes
    binding: bytes
    def __init__(
        self,
        nonce_id: bytes | None = ...,
        hiding: bytes | None = ...,
        binding: bytes | None = ...,
    ) -> None: ...

class CommitmentsReply(_message.Message):
    __slots__ = ("commitments",)
    COMMITMENTS_FIELD_NUMBER: _ClassVar[int]
    commitments: _containers.RepeatedCompositeFieldContainer[Commitment]
    def __init__(self, commitments: _Iterable[Commitment | _Mapping] | None = ...) -> None: ...

class SignerCommitment(_message.Message):
    __slots__ = ("binding", "hiding", "nonce_id", "signer")
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    NONCE_ID_FIELD_NUMBER: _ClassVar[int]
    HIDING_FIELD_NUMBER: _ClassVar[int]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    signer: int
    nonce_id: bytes
    hiding: bytes
    binding: bytes
    def __init__(
        self,
        signer: int | None = ...,
        nonce_id: bytes | None = ...,
        hiding: bytes | None = ...,
        binding: bytes | None = ...,
    ) -> None: ...

class SignItem(_message.Message):
    __slots__ = (
        "commitments",
        "epoch",
        "governance",
        "key_id",
        "merkle_root",
        "message",
        "path",
        "request_id",
        "taproot",
    )
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    TAPROOT_FIELD_NUMBER: _ClassVar[int]
    MERKLE_ROOT_FIELD_NUMBER: _ClassVar[int]
    COMMITMENTS_FIELD_NUMBER: _ClassVar[int]
    GOVERNANCE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    key_id: str
    message: bytes
    path: str
    taproot: bool
    merkle_root: bytes
    commitments: _containers.RepeatedCompositeFieldContainer[SignerCommitment]
    governance: bytes
    epoch: int
    def __init__(
        self,
        request_id: str | None = ...,
        key_id: str | None = ...,
        message: bytes | None = ...,
        path: str | None = ...,
        taproot: bool | None = ...,
        merkle_root: bytes | None = ...,
        commitments: _Iterable[SignerCommitment | _Mapping] | None = ...,
        governance: bytes | None = ...,
        epoch: int | None = ...,
    ) -> None: ...

class SignResult(_message.Message):
    __slots__ = ("error", "request_id", "share")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    share: bytes
    error: str
    def __init__(
        self,
        request_id: str | None = ...,
        share: bytes | None = ...,
        error: str | None = ...,
    ) -> None: ...

class SignBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SignItem]
    def __init__(self, items: _Iterable[SignItem | _Mapping] | None = ...) -> None: ...

class SignBatchReply(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SignResult]
    def __init__(self, results: _Iterable[SignResult | _Mapping] | None = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("payload", "sender", "signature")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    sender: int
    payload: bytes
    signature: bytes
    def __init__(
        self,
        sender: int | None = ...,
        payload: bytes | None = ...,
        signature: bytes | None = ...,
    ) -> None: ...

class ProtocolRequest(_message.Message):
    __slots__ = ("envelopes", "payload", "phase", "protocol")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    phase: str
    payload: bytes
    envelopes: _containers.RepeatedCompositeFieldContainer[Envelope]
    def __init__(
        self,
        protocol: str | None = ...,
        phase: str | None = ...,
        payload: bytes | None = ...,
        envelopes: _Iterable[Envelope | _Mapping] | None = ...,
    ) -> None: ...

class ProtocolReply(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: Envelope
    def __init__(self, envelope: Envelope | _Mapping | None = ...) -> None: ...

class GovernanceRequest(_message.Message):
    __slots__ = ("op", "payload")
    OP_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    op: str
    payload: bytes
    def __init__(self, op: str | None = ..., payload: bytes | None = ...) -> None: ...

class GovernanceReply(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: bytes | None = ...) -> None: ...
