"""The one encryption barrier every stored secret passes through (AES-256-GCM).

The node master key (a random 256-bit data key) is stored wrapped under a key-encryption key that
is derived from the operator's passphrase with scrypt, or read from a key file. The associated data
of every sealed row is `table || row id`, so a row moved to another place (or another table) fails
to open instead of being silently accepted.

The node's identity secrets (E2E identity key, TLS private key) are files sealed under the same
passphrase or key file (`seal_file`, `open_file`), not under the master key in the database: a node
whose database is lost keeps its identity and can have its shares repaired.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

WRAP_AD = b"tholos-master-key-v1"
SEALED_FILE_FORMAT = "tholos-sealed-file-v1"
# scrypt cost: 2^15 * 8 * 128 B = 32 MiB, ~0.1 s; stored with the record so it can be raised later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


class WrongPassphrase(Exception):
    """The passphrase (or key file) does not unwrap this node's master key."""


class SealError(Exception):
    """A sealed row that fails authentication (tampered, swapped, or sealed under another key)."""


@dataclass(frozen=True)
class Unsealer:
    """How the operator unlocks the node: a passphrase (scrypt) or a 32-byte key file (hex)."""

    passphrase: bytes | None = None
    key_file: Path | None = None

    def kek(self, record: dict[str, Any]) -> bytes:
        kdf = record["kdf"]
        if kdf == "scrypt":
            if self.passphrase is None:
                raise WrongPassphrase(
                    "this node's master key is sealed with a passphrase; none given"
                )
            return Scrypt(
                salt=bytes.fromhex(record["salt"]),
                length=32,
                n=int(record["n"]),
                r=int(record["r"]),
                p=int(record["p"]),
            ).derive(self.passphrase)
        if kdf == "keyfile":
            if self.key_file is None:
                raise WrongPassphrase(
                    "this node's master key is sealed with a key file; none given"
                )
            return read_key_file(self.key_file)
        raise WrongPassphrase(f"unknown master key KDF {kdf!r}")

    def new_record(self) -> dict[str, Any]:
        if self.passphrase is not None:
            return {
                "version": 1,
                "kdf": "scrypt",
                "salt": os.urandom(16).hex(),
                "n": SCRYPT_N,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
            }
        if self.key_file is not None:
            return {"version": 1, "kdf": "keyfile"}
        raise WrongPassphrase("no passphrase or key file given")


def read_key_file(path: Path) -> bytes:
    raw = path.read_bytes().strip()
    try:
        key = bytes.fromhex(raw.decode())
    except ValueError:
        key = raw
    if len(key) != 32:
        raise WrongPassphrase(f"key file {path} must hold 32 bytes (64 hex digits)")
    return key


def create_master(unsealer: Unsealer) -> tuple[str, bytes]:
    """A fresh master key and its wrapped record (JSON) to store."""
    record = unsealer.new_record()
    master = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    record["wrapped"] = (nonce + AESGCM(unsealer.kek(record)).encrypt(nonce, master, WRAP_AD)).hex()
    return json.dumps(record, sort_keys=True), master


def open_master(unsealer: Unsealer, record_json: str) -> bytes:
    record = json.loads(record_json)
    blob = bytes.fromhex(record["wrapped"])
    try:
        return AESGCM(unsealer.kek(record)).decrypt(blob[:12], blob[12:], WRAP_AD)
    except InvalidTag:
        what = "passphrase" if record["kdf"] == "scrypt" else "key file"
        raise WrongPassphrase(f"wrong {what}: cannot unseal the node master key") from None


class Barrier:
    """AES-256-GCM under the node master key, associated data = table and row id."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        self._aead = AESGCM(master_key)

    def __repr__(self) -> str:
        return "Barrier(<sealed>)"

    @staticmethod
    def _ad(table: str, row_id: str | bytes) -> bytes:
        rid = row_id if isinstance(row_id, bytes) else row_id.encode()
        return b"tholos-barrier-v1\x00" + table.encode() + b"\x00" + rid

    def seal(self, table: str, row_id: str | bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, self._ad(table, row_id))

    def open(self, table: str, row_id: str | bytes, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], self._ad(table, row_id))
        except (InvalidTag, ValueError):
            raise SealError(f"sealed row {table}/{row_id!r} fails authentication") from None


def _file_ad(label: str) -> bytes:
    return SEALED_FILE_FORMAT.encode() + b"\x00" + label.encode()


def is_sealed_file(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_bytes()).get("format") == SEALED_FILE_FORMAT)
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False


def seal_file(unsealer: Unsealer, path: Path, plaintext: bytes, label: str) -> None:
    """Replace `path` (atomically, mode 0600) by `plaintext` sealed under the operator's
    passphrase or key file; `label` names what it is and is bound as associated data."""
    record = unsealer.new_record()
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(unsealer.kek(record)).encrypt(nonce, plaintext, _file_ad(label))
    body = json.dumps(
        {**record, "format": SEALED_FILE_FORMAT, "label": label, "sealed": sealed.hex()}
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def open_file(unsealer: Unsealer, path: Path, label: str) -> bytes:
    """The plaintext of a file sealed by `seal_file` (in memory only)."""
    record = json.loads(path.read_bytes())
    if record.get("format") != SEALED_FILE_FORMAT or record.get("label") != label:
        raise SealError(f"{path} is not a sealed {label}")
    blob = bytes.fromhex(record["sealed"])
    try:
        return AESGCM(unsealer.kek(record)).decrypt(blob[:12], blob[12:], _file_ad(label))
    except InvalidTag:
        what = "passphrase" if record["kdf"] == "scrypt" else "key file"
        raise WrongPassphrase(f"wrong {what}: cannot unseal {path.name}") from None
