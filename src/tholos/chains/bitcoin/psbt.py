"""Loading a PSBT (BIP174 v0, BIP370 v2, BIP371 Taproot fields) strictly, before embit reads it.

embit parses the fields; first this module checks the key-value framing itself, because embit
allocates one scope per input/output count before it reads them (a v2 count of 2^64 would hang),
keeps the last of two identical taproot derivation keys silently, and reads truncated global
transactions without complaint. Here every map must be well formed, no key may repeat within a
map, the number of maps must be exactly 1 + inputs + outputs, and a v0 unsigned transaction must
round-trip byte for byte with empty scriptSigs and no witness. Every refusal is a ChainError.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from embit.psbt import PSBT
from embit.transaction import Transaction

from tholos.chains.base import ChainError

MAGIC = b"psbt\xff"
MAX_PSBT_BYTES = 4_000_000  # a block's weight limit: no PSBT of a standard transaction is larger
TAP_KEY_SIG = b"\x13"  # PSBT_IN_TAP_KEY_SIG, which embit 0.8.0 leaves in `unknown`
IN_REQUIRED_LOCKTIMES = (b"\x11", b"\x12")  # PSBT_IN_REQUIRED_{TIME,HEIGHT}_LOCKTIME (v2)


def decode_payload(payload: bytes | str) -> bytes:
    """Raw PSBT bytes from raw bytes or base64 text."""
    if isinstance(payload, str):
        payload = payload.encode("ascii", "replace")
    if not isinstance(payload, bytes | bytearray):
        raise ChainError("a PSBT is bytes or base64 text", field="psbt")
    raw = bytes(payload)
    if len(raw) > MAX_PSBT_BYTES * 2:
        raise ChainError(f"longer than {MAX_PSBT_BYTES} bytes", field="psbt")
    if not raw.startswith(MAGIC):
        try:
            raw = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ChainError("neither PSBT bytes nor base64 text", field="psbt") from None
        if not raw.startswith(MAGIC):
            raise ChainError("no PSBT magic (psbt 0xff)", field="psbt")
    if len(raw) > MAX_PSBT_BYTES:
        raise ChainError(f"longer than {MAX_PSBT_BYTES} bytes", field="psbt")
    return raw


def _compact(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise ChainError("truncated", field="psbt")
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    if pos + 1 + size > len(data):
        raise ChainError("truncated", field="psbt")
    value = int.from_bytes(data[pos + 1 : pos + 1 + size], "little")
    if value < {2: 0xFD, 4: 0x10000, 8: 0x100000000}[size]:
        raise ChainError("non-canonical compact size", field="psbt")
    return value, pos + 1 + size


def _maps(raw: bytes) -> list[dict[bytes, bytes]]:
    """Split the PSBT after its magic into key-value maps (each ends with a 0x00 separator)."""
    maps: list[dict[bytes, bytes]] = []
    pos = len(MAGIC)
    current: dict[bytes, bytes] = {}
    while pos < len(raw):
        klen, pos = _compact(raw, pos)
        if klen == 0:
            maps.append(current)
            current = {}
            continue
        if pos + klen > len(raw):
            raise ChainError("truncated key", field="psbt")
        key = raw[pos : pos + klen]
        vlen, pos = _compact(raw, pos + klen)
        if pos + vlen > len(raw):
            raise ChainError("truncated value", field="psbt")
        if key in current:
            raise ChainError(f"duplicate key 0x{key[:34].hex()} in map {len(maps)}", field="psbt")
        current[key] = raw[pos : pos + vlen]
        pos += vlen
    if current:
        raise ChainError("the last map has no separator", field="psbt")
    return maps


def _count(value: bytes | None, what: str) -> int:
    if value is None:
        raise ChainError(f"a v2 PSBT needs its {what} count", field="psbt")
    n, end = _compact(value, 0)
    if end != len(value):
        raise ChainError(f"malformed {what} count", field="psbt")
    return n


@dataclass(frozen=True)
class Framing:
    """A PSBT whose framing is sound: its bytes, its maps (global, inputs, outputs), its version
    and, for v0, the unsigned transaction (embit's, checked to round-trip)."""

    raw: bytes
    maps: list[dict[bytes, bytes]]
    version: int
    tx: Any  # embit Transaction for v0, None for v2
    n_in: int
    n_out: int


def frame_psbt(payload: bytes | str, *, round_trip: bool = True) -> Framing:
    """Check a payload's key-value framing; ChainError(field="psbt...") otherwise. With
    `round_trip=False` the caller checks that the v0 unsigned transaction re-serialises to the
    same bytes (`fields.read_psbt` does, on the transaction it rebuilds anyway)."""
    raw = decode_payload(payload)
    maps = _maps(raw)
    if not maps:
        raise ChainError("no global map", field="psbt")
    glob = maps[0]
    version_field = glob.get(b"\xfb")
    version = int.from_bytes(version_field, "little") if version_field is not None else 0
    if (version_field is not None and len(version_field) != 4) or version not in (0, 2):
        raise ChainError(f"PSBT version {version} (0 and 2 are understood)", field="psbt.version")
    tx = None
    if version == 0:
        unsigned = glob.get(b"\x00")
        if unsigned is None:
            raise ChainError("a v0 PSBT needs its unsigned transaction", field="psbt")
        try:
            tx = Transaction.parse(unsigned)
            exact = not round_trip or tx.serialize() == unsigned
        except Exception:
            raise ChainError("malformed unsigned transaction", field="psbt.tx") from None
        if not exact or any(vin.script_sig.data or vin.witness.items for vin in tx.vin):
            raise ChainError("the unsigned transaction is not bare and unsigned", field="psbt.tx")
        n_in, n_out = len(tx.vin), len(tx.vout)
    else:
        if b"\x00" in glob:
            raise ChainError("a v2 PSBT carries no global transaction", field="psbt")
        n_in, n_out = _count(glob.get(b"\x04"), "input"), _count(glob.get(b"\x05"), "output")
        if b"\x02" not in glob:
            raise ChainError("a v2 PSBT needs its transaction version", field="psbt.tx_version")
    if len(maps) != 1 + n_in + n_out:
        raise ChainError(
            f"{len(maps) - 1} maps for {n_in} inputs and {n_out} outputs", field="psbt"
        )
    if n_in == 0 or n_out == 0:
        raise ChainError("a transaction needs inputs and outputs", field="psbt")
    return Framing(raw, maps, version, tx, n_in, n_out)


def load_psbt(payload: bytes | str) -> Any:
    """The embit PSBT of a payload whose framing is sound; ChainError(field="psbt") otherwise."""
    raw = frame_psbt(payload).raw
    try:
        return PSBT.parse(raw)
    except Exception:  # embit raises PSBTError, ValueError, IndexError, ... on malformed fields
        raise ChainError("malformed PSBT field", field="psbt") from None
