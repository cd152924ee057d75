"""Base class of every governance object: frozen, strict, unknown fields refused."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Final, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.config import JsonDict

from tholos.governance._canonical import canonical_json

FORMAT_VERSION: Final = 1
"""Version of the wire format of every governance object; bumped on incompatible change."""

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.:@-]{0,63}$")
HEX32_RE = r"^[0-9a-f]{64}$"
HEX64_RE = r"^[0-9a-f]{128}$"

Hex32 = Annotated[str, Field(pattern=HEX32_RE)]
"""32 bytes as lowercase hex (hashes, Ed25519 public keys)."""
Hex64 = Annotated[str, Field(pattern=HEX64_RE)]
"""64 bytes as lowercase hex (Ed25519 signatures)."""
UnixTime = Annotated[int, Field(ge=0, le=2**40)]
"""Seconds since the epoch, UTC."""


def _name(value: str) -> str:
    if not NAME_RE.fullmatch(value):  # not match: "$" also matches before a final newline
        raise ValueError(f"invalid name {value!r}: lowercase letters, digits and _.:@- only")
    return value


Name = Annotated[str, AfterValidator(_name), Field(json_schema_extra={"pattern": NAME_RE.pattern})]
"""An identifier (user id, role, group, rule id, key id): short, lowercase, no spaces."""


def _sorted_unique(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError("duplicate entries")
    return tuple(sorted(values))


NAMED_ONLY: Final[JsonDict] = {"additionalProperties": False}
"""JSON Schema of a mapping keyed by `Name`: pydantic publishes the key pattern as
patternProperties, which leaves other keys allowed; every key must match it."""

NameSet = Annotated[tuple[Name, ...], AfterValidator(_sorted_unique)]
"""A set of names, kept sorted so that its canonical encoding is unique."""
StrSet = Annotated[tuple[str, ...], AfterValidator(_sorted_unique)]
"""A set of free strings (addresses), kept sorted."""


class Model(BaseModel):
    """Frozen, strict, extra="forbid": what was signed is exactly what is used."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()
    """Fields added after documents were first signed: left out of the encoding while None, so
    the digests of documents that do not use them stay what they were."""

    @model_serializer(mode="wrap")
    def _omit_unused(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for name in self.OMIT_WHEN_NONE:
            if data.get(name, 0) is None:
                del data[name]
        return data

    def canonical(self) -> bytes:
        """Canonical JSON bytes of this object."""
        return canonical_json(self)


M = TypeVar("M", bound=Model)


def from_obj(cls: type[M], obj: Any) -> M:
    """Validate a JSON-shaped Python value (lists, dicts) as `cls`, with JSON strictness rules."""
    return cls.model_validate_json(canonical_json(obj))
