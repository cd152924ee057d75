"""Strict parsing helpers for the dict wire forms of protocol messages.

Every message is a flat JSON-compatible dict with `version`, `scheme` and `kind`; parsing rejects
unknown or missing keys and wrong types with `InvalidInput`, so a malformed peer message never
produces a partial object.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import Any, Literal, TypeVar

from tholos.crypto.errors import CryptoError, InvalidInput, InvalidParticipants
from tholos.crypto.groups.base import Group

E = TypeVar("E")
T = TypeVar("T")
WIRE_VERSION = 1


def header(scheme: str, kind: str) -> dict[str, Any]:
    return {"version": WIRE_VERSION, "scheme": scheme, "kind": kind}


def check_message(d: Any, scheme: str, kind: str, fields: Iterable[str]) -> Mapping[str, Any]:
    """Check the header and that the keys are exactly the header plus `fields`."""
    if not isinstance(d, Mapping):
        raise InvalidInput(f"{kind}: message must be a mapping")
    if d.get("version") != WIRE_VERSION:
        raise InvalidInput(f"{kind}: unsupported version {d.get('version')!r}")
    if d.get("scheme") != scheme:
        raise InvalidInput(f"{kind}: wrong scheme {d.get('scheme')!r}, expected {scheme!r}")
    if d.get("kind") != kind:
        raise InvalidInput(f"wrong message kind {d.get('kind')!r}, expected {kind!r}")
    expected = {"version", "scheme", "kind", *fields}
    if set(d) != expected:
        extra = sorted(set(d) - expected)
        missing = sorted(expected - set(d))
        raise InvalidInput(f"{kind}: unexpected keys {extra}, missing keys {missing}")
    return d


def get_int(d: Mapping[str, Any], key: str, *, minimum: int = 0) -> int:
    v = d[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise InvalidInput(f"field {key!r} must be an int >= {minimum}")
    return v


def unhex(v: object, what: str) -> bytes:
    """A hex string's bytes; InvalidInput naming `what` otherwise."""
    if not isinstance(v, str):
        raise InvalidInput(f"{what} must be a hex string")
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise InvalidInput(f"{what} is not valid hex") from None


def get_bytes(d: Mapping[str, Any], key: str, length: int | None = None) -> bytes:
    b = unhex(d[key], f"field {key!r}")
    if length is not None and len(b) != length:
        raise InvalidInput(f"field {key!r} must be {length} bytes, got {len(b)}")
    return b


def get_str(d: Mapping[str, Any], key: str) -> str:
    v = d[key]
    if not isinstance(v, str):
        raise InvalidInput(f"field {key!r} must be a string")
    return v


def get_element(group: Group[E], d: Mapping[str, Any], key: str) -> E:
    return group.deserialize_element(get_bytes(d, key, group.element_length))


def get_element_or_identity(group: Group[E], d: Mapping[str, Any], key: str) -> E:
    """Like get_element, but the empty string stands for the identity."""
    if d[key] == "":
        return group.identity()
    return get_element(group, d, key)


def encode_element_or_identity(group: Group[E], e: E) -> str:
    return "" if group.is_identity(e) else group.serialize_element(e).hex()


def get_scalar(group: Group[E], d: Mapping[str, Any], key: str) -> int:
    return group.deserialize_scalar(get_bytes(d, key, group.scalar_length))


def get_element_list(group: Group[E], d: Mapping[str, Any], key: str, length: int) -> list[E]:
    v = d[key]
    if not isinstance(v, list) or len(v) != length:
        raise InvalidInput(f"field {key!r} must be a list of {length} elements")
    return [get_element(group, {key: x}, key) for x in v]


def is_decimal(s: object) -> bool:
    """A canonical decimal identifier: ASCII digits, no sign, no leading zero, no `_` (so that one
    identifier has exactly one spelling as a dict key)."""
    return (
        isinstance(s, str) and s.isascii() and s.isdigit() and (s == "0" or not s.startswith("0"))
    )


def get_id_map(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = d[key]
    if not isinstance(v, Mapping) or not all(is_decimal(k) for k in v):
        raise InvalidInput(f"field {key!r} must map decimal identifiers to values")
    return v


def parse_id_map(v: object, what: str) -> dict[int, Any]:
    """{"1": x, ...} -> {1: x, ...} with canonical decimal keys only."""
    if not isinstance(v, Mapping) or not all(is_decimal(k) for k in v):
        raise InvalidInput(f"{what} must map decimal identifiers to values")
    return {int(k): x for k, x in v.items()}


def index_by_identifier(
    items: Iterable[Any], cls: type[T], known: Container[int], what: str
) -> dict[int, T]:
    """{item.identifier: item}: every item a `cls`, from a `known` participant, one per participant;
    raises InvalidInput / InvalidParticipants otherwise."""
    out: dict[int, T] = {}
    for item in items:
        if not isinstance(item, cls):
            raise InvalidInput(f"{what} must be {cls.__name__} objects")
        i = item.identifier  # type: ignore[attr-defined]
        if i not in known:
            raise InvalidParticipants(f"{what}: participant {i} is not in the set")
        if i in out:
            raise InvalidParticipants(f"{what}: two from participant {i}")
        out[i] = item
    return out


def parse_guard(kind: str) -> _ParseGuard:
    """`with parse_guard("x"):` turns stray KeyError/TypeError/ValueError into InvalidInput."""
    return _ParseGuard(kind)


class _ParseGuard:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: Any
    ) -> Literal[False]:
        if ev is None or isinstance(ev, CryptoError):
            return False
        if isinstance(ev, KeyError | TypeError | ValueError | AttributeError):
            raise InvalidInput(f"malformed {self.kind}: {type(ev).__name__}") from None
        return False
