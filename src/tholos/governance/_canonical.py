"""Canonical encoding: deterministic JSON (sorted keys, no whitespace, UTF-8, no floats).

Every hash and signature in governance and audit is computed over these bytes, so two nodes that
parse the same object always agree on its digest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


def _reject_float(value: str) -> Any:
    raise ValueError(f"floats are not allowed in canonical JSON: {value}")


def _check(obj: Any) -> None:
    """Refuse values with no single canonical form (floats, non-str keys)."""
    if isinstance(obj, float):
        raise ValueError("floats are not allowed in canonical JSON")
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise ValueError("canonical JSON keys must be strings")
            _check(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _check(value)


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes of a JSON-compatible value or a pydantic model.

    Models are not walked for floats: every governance model types its numbers as int, which
    strict validation enforces. Plain values (audit payloads) are checked.
    """
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    else:
        _check(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def encode_checked(obj: Any) -> bytes:
    """Canonical JSON of a value already known to hold no float and only str keys (parsed with
    floats refused, or dumped from a strict model): `canonical_json` without the walk."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_model(model: BaseModel, exclude: set[str] | None = None) -> bytes:
    """Canonical JSON of a model without some fields (e.g. the signature being computed)."""
    return json.dumps(
        model.model_dump(mode="json", exclude=exclude),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def parse_canonical_json(data: bytes) -> Any:
    """Parse JSON and require that it is exactly in canonical form (no malleable encodings)."""
    obj = json.loads(data.decode("utf-8"), parse_float=_reject_float)
    if encode_checked(obj) != data:  # JSON gives str keys; floats were refused above
        raise ValueError("JSON is not in canonical form")
    return obj


def tagged_digest(tag: bytes, data: bytes) -> bytes:
    """SHA-256 over a domain-separation tag, a zero byte, then the data."""
    return hashlib.sha256(tag + b"\x00" + data).digest()
