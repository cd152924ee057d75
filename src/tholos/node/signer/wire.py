"""The signer's message set (version 1): length-prefixed JSON frames over a Unix socket.

A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON (at most MAX_FRAME).
A request is {"v": 1, "op": OP, "args": {...}} with OP one of OPS and exactly that op's argument
names; a reply is {"ok": true, "result": ...} or {"ok": false, "error": "..."} (with
"storage_full": true when the database's disk is full: the write rolled back). There is no
generic call: an unknown op, a wrong version, missing or extra arguments, a malformed or oversize
frame are refused before any handler runs (and an oversize frame also closes the connection,
since its bytes cannot be skipped safely). Errors never carry secrets.

| op         | args                         | result                                        |
|------------|------------------------------|-----------------------------------------------|
| status     | -                            | protections, broken keys, unchecked, pid      |
| nonces     | group, count                 | [[nonce id, hiding, binding]] (hex)           |
| frost_sign | requests, epochs             | [{request_id, share (hex), error}] in order   |
| bls_sign   | items [{request_id, key_id, message}]             | {request id: result} |
| dise_eval  | items [{request_id, key_id, request}]             | {request id: result} |
| ecdsa_sign | items [{request_id, key_id, presig, digest, tweak}] | {request id: result} |
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

VERSION = 1
MAX_FRAME = 16 * 1024 * 1024
OPS: dict[str, frozenset[str]] = {
    "status": frozenset(),
    "nonces": frozenset({"group", "count"}),
    "frost_sign": frozenset({"requests", "epochs"}),
    "bls_sign": frozenset({"items"}),
    "dise_eval": frozenset({"items"}),
    "ecdsa_sign": frozenset({"items"}),
}
_LEN = struct.Struct(">I")


class WireError(Exception):
    """A frame or request outside the message set. Safe to show (names what is wrong)."""


class FrameTooLarge(WireError):
    """A frame longer than MAX_FRAME: refused, and the connection closed."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise FrameTooLarge(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return _LEN.pack(len(body)) + body


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            if buf:
                raise WireError("connection closed inside a frame")
            return None
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket) -> dict[str, Any] | None:
    """The next frame's JSON object; None at a clean end of stream."""
    head = _read_exact(sock, _LEN.size)
    if head is None:
        return None
    (n,) = _LEN.unpack(head)
    if n > MAX_FRAME:
        raise FrameTooLarge(f"frame of {n} bytes exceeds {MAX_FRAME}")
    body = _read_exact(sock, n)
    if body is None:
        raise WireError("connection closed inside a frame")
    try:
        msg = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise WireError("frame is not UTF-8 JSON") from None
    if not isinstance(msg, dict):
        raise WireError("frame is not a JSON object")
    return msg


def request(op: str, **args: Any) -> dict[str, Any]:
    return {"v": VERSION, "op": op, "args": args}


def parse_request(msg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(op, args) of a request in the message set; WireError naming what is wrong otherwise."""
    if set(msg) != {"v", "op", "args"}:
        raise WireError("a request has exactly the fields v, op, args")
    if msg["v"] != VERSION:
        raise WireError(f"unsupported message set version {msg['v']!r} (this signer: {VERSION})")
    op, args = msg["op"], msg["args"]
    if not isinstance(op, str) or op not in OPS:
        raise WireError(f"unknown op {op!r}")
    if not isinstance(args, dict):
        raise WireError("args must be an object")
    if set(args) != OPS[op]:
        raise WireError(f"op {op} takes the arguments {sorted(OPS[op])}, got {sorted(args)}")
    return op, args


def ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def refused(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}
