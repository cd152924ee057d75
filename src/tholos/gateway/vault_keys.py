"""Transit keys: a Vault transit name -> its type, its configuration and its versions, each
version one tholos threshold key (a rotation is a new DKG under the same name; old versions
stay, so they still verify and decrypt). Stored in the gateway's database beside the keys
(tables `transit_keys`, `transit_versions`); `view` renders a key as Vault's `read_key` does."""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tholos.gateway.database import Database

# Vault transit type -> tholos scheme (ecdsa-secp256k1 and schnorr-bip340 are extensions)
TYPES: dict[str, str] = {
    "ed25519": "ed25519",
    "ecdsa-secp256k1": "ecdsa",
    "schnorr-bip340": "bip340",
    "aes256-gcm96": "dise",
}
SIGNING = frozenset({"ed25519", "ecdsa-secp256k1", "schnorr-bip340"})
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Version:
    version: int
    key_id: str
    created: float


@dataclass
class TransitKey:
    name: str
    type: str
    min_decryption_version: int = 1
    min_encryption_version: int = 0
    deletion_allowed: bool = False
    versions: dict[int, Version] = field(default_factory=dict)

    @property
    def latest_version(self) -> int:
        return max(self.versions)

    def config(self) -> dict[str, Any]:
        return {
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "deletion_allowed": self.deletion_allowed,
        }


class TransitStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM transit_keys ORDER BY name")]

    def get(self, name: str) -> TransitKey | None:
        row = self.db.execute(
            "SELECT type, config FROM transit_keys WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        key = TransitKey(name, row[0], **json.loads(row[1]))
        for v, kid, created in self.db.execute(
            "SELECT version, key_id, created FROM transit_versions WHERE name = ?", (name,)
        ):
            key.versions[int(v)] = Version(int(v), kid, created)
        return key

    def create(self, name: str, type_: str, key_id: str) -> TransitKey:
        """A new name with version 1; if the name exists (a racing create), the stored one."""
        now = time.time()
        key = TransitKey(name, type_)
        with self.db:
            cur = self.db.execute(
                "INSERT INTO transit_keys VALUES (?,?,?,?) ON CONFLICT (name) DO NOTHING",
                (name, type_, json.dumps(key.config()), now),
            )
            if cur.rowcount:
                self.db.execute(
                    "INSERT INTO transit_versions VALUES (?,?,?,?)", (name, 1, key_id, now)
                )
        got = self.get(name)
        assert got is not None
        return got

    def add_version(self, name: str, key_id: str) -> TransitKey:
        """The next version of `name`; a gateway racing on the same name takes the one after."""
        for _ in range(100):
            with self.db.transaction():
                (latest,) = self.db.execute(
                    "SELECT MAX(version) FROM transit_versions WHERE name = ?", (name,)
                ).one()
                added = self.db.execute(
                    "INSERT INTO transit_versions VALUES (?,?,?,?) "
                    "ON CONFLICT (name, version) DO NOTHING",
                    (name, int(latest) + 1, key_id, time.time()),
                ).rowcount
            if added:
                break
        got = self.get(name)
        assert got is not None
        return got

    def set_config(self, key: TransitKey) -> None:
        with self.db:
            self.db.execute(
                "UPDATE transit_keys SET config = ? WHERE name = ?",
                (json.dumps(key.config()), key.name),
            )

    def delete(self, name: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM transit_versions WHERE name = ?", (name,))
            self.db.execute("DELETE FROM transit_keys WHERE name = ?", (name,))


def transit_of(gw: Any) -> TransitStore:
    store: TransitStore | None = getattr(gw, "transit_keys", None)
    if store is None:
        store = TransitStore(gw.store.db)
        gw.transit_keys = store
    return store


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def public_key_text(type_: str, public_key_hex: str) -> str:
    """The public key as Vault shows it: base64 of the raw key (ed25519; schnorr-bip340: the
    32-byte x-only key), PEM SubjectPublicKeyInfo for ECDSA."""
    raw = bytes.fromhex(public_key_hex)
    if type_ == "ecdsa-secp256k1":
        pk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw)
        return pk.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    if type_ == "schnorr-bip340" and len(raw) == 33:
        raw = raw[1:]
    return base64.b64encode(raw).decode()


CURVE_NAMES = {"ed25519": "ed25519", "ecdsa-secp256k1": "secp256k1", "schnorr-bip340": "bip340"}


def view(key: TransitKey, public_keys: dict[str, str]) -> dict[str, Any]:
    """`read_key`'s `data`, with Vault's field names; versions below min_decryption_version are
    not shown (as Vault). `public_keys`: tholos key id -> public key hex."""
    signing = key.type in SIGNING
    keys: dict[str, Any] = {}
    for v, ver in sorted(key.versions.items()):
        if v < key.min_decryption_version:
            continue
        if signing:
            keys[str(v)] = {
                "certificate_chain": "",
                "creation_time": _rfc3339(ver.created),
                "name": CURVE_NAMES[key.type],
                "public_key": public_key_text(key.type, public_keys[ver.key_id]),
            }
        else:
            keys[str(v)] = int(ver.created)
    return {
        "allow_plaintext_backup": False,
        "auto_rotate_period": 0,
        "deletion_allowed": key.deletion_allowed,
        "derived": False,
        "exportable": False,
        "imported_key": False,
        "keys": keys,
        "latest_version": key.latest_version,
        "min_available_version": 0,
        "min_decryption_version": key.min_decryption_version,
        "min_encryption_version": key.min_encryption_version,
        "name": key.name,
        "soft_deleted": False,
        "supports_decryption": not signing,
        "supports_derivation": False,
        "supports_encryption": not signing,
        "supports_signing": signing,
        "type": key.type,
    }
