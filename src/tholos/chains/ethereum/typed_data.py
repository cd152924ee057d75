"""EIP-712 typed structured data: strict validation and the digest to sign, computed here.

digest = Keccak-256(0x19 0x01 || hashStruct(EIP712Domain, domain) || hashStruct(primaryType,
message)), hashStruct(T, v) = Keccak-256(typeHash(T) || encodeData(T, v)) (EIP-712, "Definition of
hashStruct"). Strictness, so that what is shown is what is signed: `types` must declare
EIP712Domain with fields among name, version, chainId, verifyingContract, salt (in that order and
with their standard types), the domain must carry exactly the declared fields and a chainId (a
chain-agnostic signature replays everywhere), every struct value must carry exactly its declared
fields, and `primaryType` may not be EIP712Domain. A `Permit` primary type must be EIP-2612's
Permit(owner, spender, value, nonce, deadline); it is decoded as an allowance for the spender.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tholos.chains.base import ChainError
from tholos.chains.ethereum.wallet import checksum_address, keccak256, parse_address

DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)
PERMIT_FIELDS = (
    ("owner", "address"),
    ("spender", "address"),
    ("value", "uint256"),
    ("nonce", "uint256"),
    ("deadline", "uint256"),
)
MAX_DEPTH = 16
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_ATOMIC = re.compile(
    r"(address|bool|string|bytes([1-9]|[12][0-9]|3[0-2])?|u?int(8|16|24|32|40|48|56|64|72|80|88|96|104|112|120|128|136|144|152|160|168|176|184|192|200|208|216|224|232|240|248|256))\Z"
)

Types = dict[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class TypedData:
    primary_type: str
    domain: dict[str, Any]
    message: dict[str, Any]
    digest: bytes


def _split_array(type_name: str) -> tuple[str, int | None] | None:
    """'T[3]' -> ('T', 3), 'T[]' -> ('T', None), otherwise None."""
    if not type_name.endswith("]"):
        return None
    i = type_name.rindex("[") if "[" in type_name else -1
    if i <= 0:
        raise ChainError(f"bad array type {type_name!r}", field="types")
    size = type_name[i + 1 : -1]
    if size == "":
        return type_name[:i], None
    if not (size.isascii() and size.isdigit()) or size.startswith("0"):
        raise ChainError(f"bad array length in {type_name!r}", field="types")
    return type_name[:i], int(size)


def _base(type_name: str) -> str:
    while (arr := _split_array(type_name)) is not None:
        type_name = arr[0]
    return type_name


def _check_types(raw: object) -> Types:
    if not isinstance(raw, dict):
        raise ChainError("an object of struct types", field="types")
    types: Types = {}
    for name, fields in raw.items():
        if not _NAME.match(name) or _ATOMIC.match(name):
            raise ChainError(f"bad struct name {name!r}", field="types")
        if not isinstance(fields, list):
            raise ChainError("a list of {name, type}", field=f"types.{name}")
        seen: set[str] = set()
        out = []
        for f in fields:
            if not isinstance(f, dict) or set(f) != {"name", "type"}:
                raise ChainError("each field is {name, type}", field=f"types.{name}")
            fname, ftype = f["name"], f["type"]
            if not isinstance(fname, str) or not _NAME.match(fname) or fname in seen:
                raise ChainError(f"bad or repeated field name {fname!r}", field=f"types.{name}")
            if not isinstance(ftype, str):
                raise ChainError("a field type is a string", field=f"types.{name}.{fname}")
            seen.add(fname)
            out.append((fname, ftype))
        types[name] = tuple(out)
    for name, fields in types.items():
        for fname, ftype in fields:
            base = _base(ftype)
            if not _ATOMIC.match(base) and base not in types:
                raise ChainError(f"unknown type {ftype!r}", field=f"types.{name}.{fname}")
    return types


def _dependencies(primary: str, types: Types) -> list[str]:
    found: list[str] = []
    stack = [primary]
    while stack:
        t = stack.pop()
        if t in found or t not in types:
            continue
        found.append(t)
        stack.extend(_base(ftype) for _, ftype in types[t])
    return found


def encode_type(primary: str, types: Types) -> str:
    deps = _dependencies(primary, types)
    ordered = [primary, *sorted(d for d in deps if d != primary)]
    return "".join(f"{t}({','.join(f'{ft} {fn}' for fn, ft in types[t])})" for t in ordered)


def _uint_value(value: object, bits: int, signed: bool, field: str) -> int:
    if isinstance(value, bool):
        raise ChainError("an integer, not a boolean", field=field)
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and re.fullmatch(r"0x[0-9a-fA-F]+", value):
        n = int(value, 16)
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        n = int(value)
    else:
        raise ChainError("an integer (number, decimal or 0x-hex string)", field=field)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    if not lo <= n < hi:
        raise ChainError(f"out of range for {'int' if signed else 'uint'}{bits}", field=field)
    return n % 2**256


def _hex_bytes(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"0x([0-9a-fA-F]{2})*", value):
        raise ChainError("bytes as a 0x-hex string", field=field)
    return bytes.fromhex(value[2:])


def _encode_value(type_name: str, value: object, types: Types, field: str, depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise ChainError(f"nested deeper than {MAX_DEPTH}", field=field)
    arr = _split_array(type_name)
    if arr is not None:
        elem, size = arr
        if not isinstance(value, list) or (size is not None and len(value) != size):
            raise ChainError(f"an array{f' of {size}' if size else ''}", field=field)
        return keccak256(
            b"".join(
                _encode_value(elem, v, types, f"{field}[{i}]", depth + 1)
                for i, v in enumerate(value)
            )
        )
    if type_name in types:
        return hash_struct(type_name, value, types, field, depth + 1)
    if type_name == "string":
        if not isinstance(value, str):
            raise ChainError("a string", field=field)
        try:
            return keccak256(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ChainError("not valid Unicode (lone surrogate)", field=field) from None
    if type_name == "bytes":
        return keccak256(_hex_bytes(value, field))
    if type_name == "bool":
        if not isinstance(value, bool):
            raise ChainError("true or false", field=field)
        return int(value).to_bytes(32, "big")
    if type_name == "address":
        return parse_address(value, field).rjust(32, b"\x00")
    if type_name.startswith("bytes"):
        raw = _hex_bytes(value, field)
        if len(raw) != int(type_name[5:]):
            raise ChainError(f"exactly {type_name[5:]} bytes", field=field)
        return raw.ljust(32, b"\x00")
    signed = type_name.startswith("int")
    bits = int(type_name[3:] if signed else type_name[4:])
    return _uint_value(value, bits, signed, field).to_bytes(32, "big")


def hash_struct(name: str, value: object, types: Types, field: str, depth: int = 0) -> bytes:
    if not isinstance(value, dict):
        raise ChainError(f"a {name} object", field=field)
    declared = [fn for fn, _ in types[name]]
    if set(value) != set(declared):
        missing = sorted(set(declared) - set(value))
        extra = sorted(set(value) - set(declared))
        raise ChainError(
            f"fields differ from {name}: missing {missing}, extra {extra}", field=field
        )
    type_hash = keccak256(encode_type(name, types).encode("ascii"))
    return keccak256(
        type_hash
        + b"".join(
            _encode_value(ft, value[fn], types, f"{field}.{fn}", depth) for fn, ft in types[name]
        )
    )


def parse_typed_data(raw: object, chain_id: int) -> TypedData:
    """Validate typed data (the JSON object eth_signTypedData_v4 takes) and compute its digest."""
    if not isinstance(raw, dict) or set(raw) != {"types", "primaryType", "domain", "message"}:
        raise ChainError(
            "an object of exactly types, primaryType, domain, message", field="typed_data"
        )
    types = _check_types(raw["types"])
    domain_fields = types.get("EIP712Domain")
    if domain_fields is None:
        raise ChainError("types must declare EIP712Domain", field="types.EIP712Domain")
    allowed = [f for f in DOMAIN_FIELDS if f in domain_fields]
    if list(domain_fields) != allowed:
        raise ChainError(
            "EIP712Domain fields are among name string, version string, chainId uint256, "
            "verifyingContract address, salt bytes32, in that order",
            field="types.EIP712Domain",
        )
    domain = raw["domain"]
    if not isinstance(domain, dict) or "chainId" not in domain:
        raise ChainError("the domain must name a chainId", field="domain.chainId")
    primary = raw["primaryType"]
    if not isinstance(primary, str) or primary not in types or primary == "EIP712Domain":
        raise ChainError("a struct type declared in types (not EIP712Domain)", field="primaryType")
    if primary == "Permit" and types["Permit"] != PERMIT_FIELDS:
        raise ChainError(
            "a Permit that is not EIP-2612's Permit(owner,spender,value,nonce,deadline)",
            field="types.Permit",
        )
    domain_hash = hash_struct("EIP712Domain", domain, types, "domain")
    if _uint_value(domain["chainId"], 256, False, "domain.chainId") != chain_id:
        raise ChainError(
            f"typed data for chain {domain['chainId']}, the wallet is on {chain_id}",
            field="domain.chainId",
        )
    message = raw["message"]
    digest = keccak256(b"\x19\x01" + domain_hash + hash_struct(primary, message, types, "message"))
    assert isinstance(message, dict)
    return TypedData(primary_type=primary, domain=domain, message=message, digest=digest)


def domain_details(td: TypedData) -> dict[str, str | int]:
    """The domain and primary type as intent details (addresses EIP-55, chainId an int)."""
    out: dict[str, str | int] = {"primary_type": td.primary_type}
    for name, _ in DOMAIN_FIELDS:
        if name not in td.domain:
            continue
        value = td.domain[name]
        if name == "chainId":
            out["domain.chainId"] = _uint_value(value, 256, False, "domain.chainId")
        elif name == "verifyingContract":
            out["domain.verifyingContract"] = checksum_address(parse_address(value, "domain"))
        else:
            out[f"domain.{name}"] = str(value)
    out["message"] = json.dumps(td.message, sort_keys=True, separators=(",", ":"))
    return out


@dataclass(frozen=True)
class Permit:
    """An EIP-2612 permit: `owner` lets `spender` move `value` of the token until `deadline`."""

    token: str
    owner: str
    spender: str
    value: int
    nonce: int
    deadline: int


def decode_permit(td: TypedData) -> Permit | None:
    """The EIP-2612 permit typed data carries (its layout was checked by `parse_typed_data`)."""
    if td.primary_type != "Permit":
        return None
    if "verifyingContract" not in td.domain:
        raise ChainError("a Permit names its token", field="domain.verifyingContract")
    m = td.message

    def address(name: str) -> str:
        return checksum_address(parse_address(m[name], f"message.{name}"))

    def uint(name: str) -> int:
        return _uint_value(m[name], 256, False, f"message.{name}")

    return Permit(
        token=checksum_address(parse_address(td.domain["verifyingContract"], "domain")),
        owner=address("owner"),
        spender=address("spender"),
        value=uint("value"),
        nonce=uint("nonce"),
        deadline=uint("deadline"),
    )
